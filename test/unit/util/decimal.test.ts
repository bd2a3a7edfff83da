import { describe, it, expect } from 'vitest'
import fc from 'fast-check'
import { decimal } from '../../../src/util/decimal.js'

describe('decimal (ids without the number-string cache)', () => {
  it('matches String() at the edges', () => {
    for (const n of [0, 1, 9, 10, 11, 99, 100, 101, 999, 1000, 10_001, 123_456_789, 2 ** 31 - 1, 2 ** 32, 2 ** 53 - 1]) expect(decimal(n)).toBe(String(n))
  })

  it('property: equals String(n) for every non-negative safe integer', () => {
    fc.assert(fc.property(fc.maxSafeNat(), (n) => decimal(n) === String(n)), { numRuns: 2000 })
  })

  it('anything else falls back to String(): negatives, fractions, NaN, infinities, -0, beyond 2^53', () => {
    for (const n of [-1, -0, 1.5, Number.NaN, Infinity, -Infinity, 2 ** 53, 1e21]) expect(decimal(n)).toBe(String(n))
  })
})
