import { describe, it, expect, afterEach } from 'vitest'
import { readdirSync, readFileSync } from 'node:fs'
import { makeMesh, closeAll } from '../helpers/mesh.js'

afterEach(closeAll)

/** Nice value of each thread of this process (Linux: field 19 of /proc/self/task/<tid>/stat). */
function niceByThread (): Map<number, number> {
  const out = new Map<number, number>()
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8')
      // Fields after "(comm) " start at field 3 (state); the nice value is field 19.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      out.set(Number(tid), Number(fields[16]))
    } catch { /* the thread ended meanwhile */ }
  }
  return out
}

/** The threads started since `before`, with their nice values. */
const newThreads = (before: Map<number, number>): number[] => [...niceByThread()].filter(([tid]) => !before.has(tid)).map(([, nice]) => nice)

describe.runIf(process.platform === 'linux')('threads.nice: the mesh\'s worker threads run below the host\'s main thread', () => {
  const base = niceByThread().get(process.pid) ?? 0

  it('threads.nice 3: the router and both IO workers run 3 steps below the main thread, which keeps its priority', async () => {
    const before = niceByThread()
    await makeMesh({ threads: { io: 2, nice: 3 } })
    const niced = newThreads(before).filter((n) => n === Math.min(19, base + 3))
    // router + 2 IO workers (Node may add helper threads of its own for each worker, at the main thread's priority)
    expect(niced.length).toBeGreaterThanOrEqual(3)
    expect(niceByThread().get(process.pid)).toBe(base)
  })

  it('threads.nice 0: no thread of the mesh changes priority', async () => {
    const before = niceByThread()
    await makeMesh({ threads: { io: 2, nice: 0 } })
    const started = newThreads(before)
    expect(started.length).toBeGreaterThanOrEqual(3)
    expect(started.filter((n) => n !== base)).toEqual([])
  })
})
