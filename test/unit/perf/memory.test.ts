// perf/lib/measure.ts memory helpers: worker heaps added to a sample, V8 page slack, what a process holds.
import { describe, it, expect } from 'vitest'
import { heapSlackBytes, heldBytes, residentByMapping, withWorkerHeaps } from '../../../perf/lib/measure.js'

const main = { rss: 100_000, heapUsed: 10, external: 0, arrayBuffers: 0, heapsUsed: 4_000, heapsPhysical: 6_000 }

describe('perf memory helpers', () => {
  it('adds every node\'s worker heaps to the sample\'s V8 totals', () => {
    const m = withWorkerHeaps(main, [{ collected: 2, usedBytes: 1_000, physicalBytes: 3_000 }, { collected: 2, usedBytes: 500, physicalBytes: 700 }])
    expect(m).toMatchObject({ rss: 100_000, workerHeapsCollected: 4, heapsUsed: 5_500, heapsPhysical: 9_700, workerHeapsPhysical: 3_700 })
  })

  it('slack is resident minus live; held is RSS less the slack; NaN when the heaps were not sampled', () => {
    expect(heapSlackBytes(main)).toBe(2_000)
    expect(heldBytes(main)).toBe(98_000)
    const bare = { rss: 1, heapUsed: 0, external: 0, arrayBuffers: 0 }
    expect(heapSlackBytes(bare)).toBeNaN()
    expect(heldBytes(bare)).toBeNaN()
  })

  it.runIf(process.platform === 'linux')('sorts this process\'s resident memory by kind of mapping, summing to about its RSS', () => {
    const r = residentByMapping()!
    expect(r['file']).toBeGreaterThan(0) // the node binary
    expect(r['malloc']).toBeGreaterThan(0) // at least the brk heap
    const total = Object.values(r).reduce((a, b) => a + b, 0) * 1024
    const rss = process.memoryUsage.rss()
    expect(Math.abs(total - rss) / rss).toBeLessThan(0.2)
  })
})
