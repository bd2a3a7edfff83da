// holdWorkerHeapFloor (src/supervisor/worker-heap.ts): the process-wide V8 flag that gives IO worker
// isolates an old-generation floor is set while any hold is open and put back after the last release.
import { describe, it, expect, vi, beforeEach, afterEach } from 'vitest'

const calls: string[] = []
vi.mock('node:v8', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:v8')>()
  return { ...real, setFlagsFromString: (f: string) => { calls.push(f) } }
})

const { holdWorkerHeapFloor, IO_WORKER_OLD_SPACE_FLOOR_MB } = await import('../../../src/supervisor/worker-heap.js')

describe('holdWorkerHeapFloor', () => {
  const execArgv = process.execArgv
  beforeEach(() => { calls.length = 0 })
  afterEach(() => { process.execArgv = execArgv })

  it('sets the floor on the first hold and V8 default (0) after the last release; releasing twice counts once', () => {
    const a = holdWorkerHeapFloor()
    expect(calls).toEqual([`--initial-old-space-size=${IO_WORKER_OLD_SPACE_FLOOR_MB}`])
    const b = holdWorkerHeapFloor()
    expect(calls).toHaveLength(1)
    a()
    a()
    expect(calls).toHaveLength(1) // b still holds it
    b()
    expect(calls).toEqual([`--initial-old-space-size=${IO_WORKER_OLD_SPACE_FLOOR_MB}`, '--initial-old-space-size=0'])
    const c = holdWorkerHeapFloor()
    c()
    expect(calls).toHaveLength(4)
  })

  it("leaves an operator's own initial heap sizing alone (--initial-old-space-size or --initial-heap-size, either spelling)", () => {
    process.execArgv = [...execArgv, '--initial-old-space-size=256']
    holdWorkerHeapFloor()()
    process.execArgv = [...execArgv, '--initial_heap_size=128']
    holdWorkerHeapFloor()()
    expect(calls).toEqual([])
  })
})
