// perf/scenarios/paths.ts: the pool figure's verdict, and perf/lib/measure.ts
// TimerLateness, the event-loop delay it is measured with.
import { describe, it, expect, vi } from 'vitest'
import { poolEldMet, ELD_DELTA_BOUND_MS } from '../../../perf/scenarios/paths.js'
import { TimerLateness } from '../../../perf/lib/measure.js'

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }
const block = (ms: number): void => { const end = performance.now() + ms; while (performance.now() < end) { /* busy */ } }

describe('paths pool verdict', () => {
  it('met while the p99 rises by less than the bound, missed at or above it', () => {
    expect(ELD_DELTA_BOUND_MS).toBe(10)
    expect(poolEldMet(0.4, 5.1)).toBe(true)
    expect(poolEldMet(0.4, 10.4)).toBe(false)
    expect(poolEldMet(2, 40)).toBe(false)
  })

  it('inconclusive when the idle windows alone were as late as the bound', () => {
    expect(poolEldMet(10, 11)).toBeNull()
    expect(poolEldMet(81.3, 109)).toBeNull()
    expect(poolEldMet(9.9, 11)).toBe(true)
  })
})

describe('TimerLateness', () => {
  it('does not count the gaps between windows (monitorEventLoopDelay does: its first sample per window is the gap)', () => {
    vi.useFakeTimers({ toFake: ['performance', 'setTimeout', 'clearTimeout'] })
    try {
      const t = new TimerLateness(10)
      for (let i = 0; i < 3; i++) {
        t.start()
        vi.advanceTimersByTime(60) // timers on time: 6 samples of 0
        t.stop()
        vi.advanceTimersByTime(150) // a gap: not a delay of the loop
      }
      expect(t.summary()).toEqual({ p50Ms: 0, p99Ms: 0, maxMs: 0, samples: 18 })
    } finally {
      vi.useRealTimers()
    }
  })

  it('counts a blocked loop, also one still blocked when the window stops', async () => {
    const t = new TimerLateness(10)
    t.start()
    await sleep(25)
    block(60)
    await sleep(25)
    t.stop()
    expect(t.summary().maxMs).toBeGreaterThanOrEqual(45)
    const u = new TimerLateness(10)
    u.start()
    block(40) // the window ends while the loop is still blocked
    u.stop()
    expect(u.summary()).toMatchObject({ samples: 1 })
    expect(u.summary().maxMs).toBeGreaterThanOrEqual(25)
  })
})
