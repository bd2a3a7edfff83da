// The supervisor gives each IO worker's isolate an old-generation floor (src/supervisor/worker-heap.ts)
// through a process-wide V8 flag, and puts V8's default back once the worker is online, restarts included.
import { describe, it, expect, vi, afterEach } from 'vitest'
import { makeMesh, closeAll, waitFor } from '../helpers/mesh.js'

const flags: string[] = []
vi.mock('node:v8', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:v8')>()
  return { ...real, setFlagsFromString: (f: string) => { flags.push(f); real.setFlagsFromString(f) } }
})

// IO workers' lives in the same log: 'construct' when the supervisor creates one, 'online' once
// its isolate exists (a listener added in the constructor runs before the supervisor's own).
vi.mock('node:worker_threads', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:worker_threads')>()
  class Worker extends real.Worker {
    constructor (url: string | URL, o?: import('node:worker_threads').WorkerOptions) {
      super(url, o)
      if (!String(o?.name).startsWith('meshwork-io-')) return
      flags.push('construct')
      this.once('online', () => { flags.push('online') })
    }
  }
  return { ...real, Worker }
})

const { IO_WORKER_OLD_SPACE_FLOOR_MB } = await import('../../dist/src/supervisor/worker-heap.js')
const floor = `--initial-old-space-size=${IO_WORKER_OLD_SPACE_FLOOR_MB}`
const restored = '--initial-old-space-size=0'

afterEach(closeAll)

/** Every IO worker is created under the floor, and the default comes back only once each created so far is online. */
function expectFloorWhileStarting (log: readonly string[]): void {
  let set = false
  let created = 0
  let online = 0
  for (const e of log) {
    if (e === floor) set = true
    else if (e === restored) {
      expect(online, `restored with ${created - online} IO worker(s) not yet online: ${log.join(' ')}`).toBe(created)
      set = false
    } else if (e === 'construct') {
      expect(set, `an IO worker created without the floor: ${log.join(' ')}`).toBe(true)
      created++
    } else if (e === 'online') online++
    else throw new Error(`unexpected entry ${e}`)
  }
}

describe('IO worker heap floor', () => {
  it('is set while the IO workers start and restored once they are online, also for a restarted worker', async () => {
    flags.length = 0
    const a = await makeMesh({ threads: { io: 2 } })
    // Both workers may start under one hold; every hold ends restored.
    expect(flags.filter((f) => f === 'construct')).toHaveLength(2)
    expect(flags[0]).toBe(floor)
    expect(flags.at(-1)).toBe(restored)
    expectFloorWhileStarting(flags)

    const b = await makeMesh()
    await a.connect(b.addresses[0] as string)
    flags.length = 0
    const up = waitFor(a, 'peer:up', { label: 'a re-links b after the restart', timeoutMs: 10_000 })
    a._crashIoWorker(0)
    await up
    expect(flags).toEqual([floor, 'construct', 'online', restored])
  })
})
