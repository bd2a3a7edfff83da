// perf/lib/cpu-steal.ts: hypervisor steal between two /proc/stat readings.
import { describe, it, expect } from 'vitest'
import { cpuTicks, stealPct } from '../../../perf/lib/cpu-steal.js'

describe('cpu steal', () => {
  it('is the steal share of all CPU time between two readings', () => {
    expect(stealPct({ steal: 10, total: 1000 }, { steal: 25, total: 1100 })).toBeCloseTo(15)
    expect(stealPct({ steal: 10, total: 1000 }, { steal: 10, total: 1000 })).toBeUndefined() // no time passed
    expect(stealPct(undefined, { steal: 1, total: 2 })).toBeUndefined()
  })

  it.runIf(process.platform === 'linux')('reads the cpu line of /proc/stat (monotonic, steal within total)', () => {
    const a = cpuTicks()
    expect(a).toBeDefined()
    let x = 0
    for (let i = 0; i < 2e6; i++) x += i // let some ticks pass
    const b = cpuTicks()
    expect(x).toBeGreaterThan(0)
    expect(b!.total).toBeGreaterThanOrEqual(a!.total)
    expect(b!.steal).toBeGreaterThanOrEqual(a!.steal)
    expect(a!.steal).toBeLessThanOrEqual(a!.total)
  })
})
