// The supervisor gives each IO worker's isolate an old-generation floor (src/supervisor/worker-heap.ts)
// through a process-wide V8 flag, and puts V8's default back once the worker is online, restarts included.
import { describe, it, expect, vi, afterEach } from 'vitest'
import { makeMesh, closeAll, waitFor } from '../helpers/mesh.js'

const flags: string[] = []
vi.mock('node:v8', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:v8')>()
  return { ...real, setFlagsFromString: (f: string) => { flags.push(f); real.setFlagsFromString(f) } }
})

const { IO_WORKER_OLD_SPACE_FLOOR_MB } = await import('../../dist/src/supervisor/worker-heap.js')
const floor = `--initial-old-space-size=${IO_WORKER_OLD_SPACE_FLOOR_MB}`
const restored = '--initial-old-space-size=0'

afterEach(closeAll)

describe('IO worker heap floor', () => {
  it('is set while the IO workers start and restored once they are online, also for a restarted worker', async () => {
    flags.length = 0
    const a = await makeMesh({ threads: { io: 2 } })
    // Both workers may start under one hold; every hold ends restored.
    expect(flags.length).toBeGreaterThanOrEqual(2)
    expect(flags.filter((f) => f !== floor && f !== restored)).toEqual([])
    expect(flags[0]).toBe(floor)
    expect(flags.at(-1)).toBe(restored)

    const b = await makeMesh()
    await a.connect(b.addresses[0] as string)
    flags.length = 0
    const up = waitFor(a, 'peer:up', { label: 'a re-links b after the restart', timeoutMs: 10_000 })
    a._crashIoWorker(0)
    await up
    expect(flags).toEqual([floor, restored])
  })
})
