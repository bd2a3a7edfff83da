import { describe, it, expect } from 'vitest'
import fc from 'fast-check'
import { DEFAULT_COST_WEIGHTS, hostSlowdown, linkCost, significantCostChange } from '../../../src/routing/link-cost.js'

describe('linkCost', () => {
  it('is about the expected delay in ms, plus a hop, as an integer >= 1', () => {
    expect(linkCost({ rttMs: 10 })).toBe(20)
    expect(linkCost({ rttMs: 0 })).toBe(10)
    expect(linkCost({ rttMs: 0.2 })).toBe(11) // ceil(10.2)
    expect(linkCost({})).toBe(DEFAULT_COST_WEIGHTS.defaultRttMs + DEFAULT_COST_WEIGHTS.hopMs) // no measurement yet
    expect(linkCost({ rttMs: 0 }, { ...DEFAULT_COST_WEIGHTS, hopMs: 0 })).toBe(1)
  })

  it('adds queueing delay and multiplies by loss (ETX-like, squared)', () => {
    expect(linkCost({ rttMs: 10, queueBytes: 1024 * 1024 })).toBe(Math.ceil(10 + 102.4 + 10))
    expect(linkCost({ rttMs: 10, loss: 0.5 })).toBe(80) // 20 / 0.25
    expect(linkCost({ rttMs: 10, loss: 1 })).toBe(Math.ceil(20 / (1 - 0.9) ** 2)) // clamped at maxLoss
  })

  it('treats invalid inputs as absent', () => {
    expect(linkCost({ rttMs: -5, loss: NaN, queueBytes: -1 })).toBe(linkCost({}))
  })

  it('is monotone in rtt, loss and queue', () => {
    fc.assert(fc.property(fc.double({ min: 0, max: 1e4, noNaN: true }), fc.double({ min: 0, max: 1, noNaN: true }), fc.nat(1e8),
      fc.double({ min: 0, max: 100, noNaN: true }), (rtt, loss, q, d) => {
        const c = linkCost({ rttMs: rtt, loss, queueBytes: q })
        expect(Number.isInteger(c) && c >= 1).toBe(true)
        expect(linkCost({ rttMs: rtt + d, loss, queueBytes: q })).toBeGreaterThanOrEqual(c)
        expect(linkCost({ rttMs: rtt, loss: Math.min(1, loss + d / 100), queueBytes: q })).toBeGreaterThanOrEqual(c)
        expect(linkCost({ rttMs: rtt, loss, queueBytes: q + Math.round(d * 1000) })).toBeGreaterThanOrEqual(c)
      }), { numRuns: 300 })
  })

  it('significantCostChange applies both the relative and the absolute threshold', () => {
    expect(significantCostChange(undefined, 5)).toBe(true)
    expect(significantCostChange(100, 119)).toBe(false) // < 20 %
    expect(significantCostChange(100, 120)).toBe(true)
    expect(significantCostChange(100, 80)).toBe(true)
    expect(significantCostChange(11, 20)).toBe(false) // 80 % but under a hop (minDelta 10)
    expect(significantCostChange(11, 21)).toBe(true)
    const fine = { ...DEFAULT_COST_WEIGHTS, minDelta: 2 }
    expect(significantCostChange(2, 3, fine)).toBe(false) // 50 % but only 1 unit
    expect(significantCostChange(2, 4, fine)).toBe(true)
  })
})

describe('hostSlowdown', () => {
  const l = (rttMs: number | undefined, before: number | undefined): { rttMs: number | undefined; before: number | undefined } => ({ rttMs, before })
  it('most links slower at once is the host, not the links', () => {
    expect(hostSlowdown([l(30, 1), l(40, 1), l(25, 2), l(1, 1)])).toBe(true) // 3 of 4
    expect(hostSlowdown([l(30, 1), l(40, 1), l(1, 2), l(1, 1)])).toBe(false) // 2 of 4: those links
    expect(hostSlowdown([l(30, 1), l(40, 1)])).toBe(false) // too few links to tell
    expect(hostSlowdown([l(5.5, 1), l(5.5, 1), l(5.5, 1)])).toBe(false) // within 5 ms
    expect(hostSlowdown([l(30, undefined), l(40, undefined), l(50, undefined)])).toBe(false) // first reports
    expect(hostSlowdown([l(30, 1), l(40, 1), l(50, 1)], 4)).toBe(false)
  })
})
