import { describe, it, expect, vi } from 'vitest'
import fc from 'fast-check'
import { Backoff, backoffBaseDelay } from '../../../src/liveness/backoff.js'
import type { BackoffConfig } from '../../../src/liveness/backoff.js'
import { ErrorCode, MeshError } from '../../../src/errors.js'

/** The documented defaults of `reconnect` (options.ts). */
const DEFAULT: BackoffConfig = { initialDelayMs: 100, maxDelayMs: 10_000, multiplier: 2, jitter: 1, maxRetries: Infinity }
const ALMOST_ONE = 1 - Number.EPSILON / 2 // largest double below 1

const constant = (v: number) => (): number => v

/** The next `n` results of `next()`. */
function take (b: Backoff, n: number): Array<number | undefined> {
  return Array.from({ length: n }, () => b.next())
}

describe('Backoff config', () => {
  it.each([
    ['initialDelayMs negative', { initialDelayMs: -1 }, 'reconnect.initialDelayMs'],
    ['initialDelayMs NaN', { initialDelayMs: NaN }, 'reconnect.initialDelayMs'],
    ['initialDelayMs Infinity', { initialDelayMs: Infinity }, 'reconnect.initialDelayMs'],
    ['maxDelayMs below initialDelayMs', { maxDelayMs: 99 }, 'reconnect.maxDelayMs'],
    ['maxDelayMs Infinity', { maxDelayMs: Infinity }, 'reconnect.maxDelayMs'],
    ['multiplier below 1', { multiplier: 0.5 }, 'reconnect.multiplier'],
    ['multiplier NaN', { multiplier: NaN }, 'reconnect.multiplier'],
    ['multiplier Infinity', { multiplier: Infinity }, 'reconnect.multiplier'],
    ['jitter negative', { jitter: -0.1 }, 'reconnect.jitter'],
    ['jitter above 1', { jitter: 1.01 }, 'reconnect.jitter'],
    ['jitter NaN', { jitter: NaN }, 'reconnect.jitter'],
    ['maxRetries negative', { maxRetries: -1 }, 'reconnect.maxRetries'],
    ['maxRetries fractional', { maxRetries: 2.5 }, 'reconnect.maxRetries'],
    ['maxRetries NaN', { maxRetries: NaN }, 'reconnect.maxRetries'],
    ['maxRetries -Infinity', { maxRetries: -Infinity }, 'reconnect.maxRetries'],
  ])('rejects %s', (_name, patch, path) => {
    let err: unknown
    try { new Backoff({ ...DEFAULT, ...patch }, Math.random) } catch (e) { err = e }
    expect(err).toBeInstanceOf(MeshError)
    expect((err as MeshError).code).toBe(ErrorCode.INVALID_OPTIONS)
    expect((err as MeshError).details).toEqual({ path })
    expect((err as MeshError).message).toContain(`options.${path}`)
  })

  it('rejects a random that is not a function', () => {
    expect(() => new Backoff(DEFAULT, undefined as unknown as () => number)).toThrow(TypeError)
  })

  it('accepts edge values: initialDelayMs 0, maxDelayMs = initialDelayMs, multiplier 1, jitter 0 and 1, maxRetries 0', () => {
    expect(() => new Backoff({ initialDelayMs: 0, maxDelayMs: 0, multiplier: 1, jitter: 0, maxRetries: 0 }, Math.random)).not.toThrow()
    expect(() => new Backoff({ ...DEFAULT, maxDelayMs: 100, jitter: 0 }, Math.random)).not.toThrow()
  })

  it('copies the config: later mutation of the caller object has no effect', () => {
    const cfg = { ...DEFAULT, jitter: 0 }
    const b = new Backoff(cfg, Math.random)
    cfg.initialDelayMs = 1
    expect(b.next()).toBe(100)
  })
})

describe('Backoff exact sequences', () => {
  it('jitter 0: exactly the capped exponential bases, without calling random', () => {
    const random = vi.fn(constant(0.5))
    const b = new Backoff({ ...DEFAULT, jitter: 0 }, random)
    expect(take(b, 10)).toEqual([100, 200, 400, 800, 1_600, 3_200, 6_400, 10_000, 10_000, 10_000])
    expect(random).not.toHaveBeenCalled()
  })

  it('full jitter with random() = 0: every delay is 0', () => {
    const b = new Backoff(DEFAULT, constant(0))
    expect(take(b, 10)).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
  })

  it('full jitter with random() = 0.5: half of each base', () => {
    const b = new Backoff(DEFAULT, constant(0.5))
    expect(take(b, 10)).toEqual([50, 100, 200, 400, 800, 1_600, 3_200, 5_000, 5_000, 5_000])
  })

  it('full jitter with random() = 0.999…: just under each base', () => {
    const b = new Backoff(DEFAULT, constant(ALMOST_ONE))
    const bases = [100, 200, 400, 800, 1_600, 3_200, 6_400, 10_000, 10_000]
    const got = take(b, bases.length) as number[]
    got.forEach((d, i) => {
      expect(d).toBeLessThanOrEqual(bases[i]!)
      expect(d).toBeCloseTo(bases[i]!, 9)
    })
  })

  it('full jitter with random() = 0.999: 99.9 % of each base', () => {
    const b = new Backoff(DEFAULT, constant(0.999))
    const got = take(b, 4) as number[]
    ;[99.9, 199.8, 399.6, 799.2].forEach((v, i) => expect(got[i]).toBeCloseTo(v, 9))
  })

  it('partial jitter 0.5: delay = base/2 + random × base/2', () => {
    const seq = [0, 0.5, ALMOST_ONE, 0.25]
    let i = 0
    const b = new Backoff({ ...DEFAULT, jitter: 0.5 }, () => seq[i++]!)
    const got = take(b, 4) as number[]
    expect(got[0]).toBe(50) // base 100, r 0
    expect(got[1]).toBe(150) // base 200, r 0.5
    expect(got[2]).toBeCloseTo(400, 9) // base 400, r → 1
    expect(got[2]).toBeLessThanOrEqual(400)
    expect(got[3]).toBe(500) // base 800, r 0.25: 400 + 0.25 × 400
  })

  it('draws exactly one random() per delay handed out, none once exhausted', () => {
    const random = vi.fn(constant(0.3))
    const b = new Backoff({ ...DEFAULT, maxRetries: 2 }, random)
    take(b, 5)
    expect(random).toHaveBeenCalledTimes(2)
  })

  it('a fractional multiplier grows as specified and is capped at maxDelayMs', () => {
    const b = new Backoff({ initialDelayMs: 1_000, maxDelayMs: 3_000, multiplier: 1.5, jitter: 0, maxRetries: Infinity }, Math.random)
    expect(take(b, 5)).toEqual([1_000, 1_500, 2_250, 3_000, 3_000])
  })

  it('multiplier 1 gives a constant delay', () => {
    const b = new Backoff({ ...DEFAULT, multiplier: 1, jitter: 0 }, Math.random)
    expect(take(b, 5)).toEqual([100, 100, 100, 100, 100])
  })

  it('random() returning exactly 1 is tolerated and gives the base', () => {
    const b = new Backoff(DEFAULT, constant(1))
    expect(take(b, 3)).toEqual([100, 200, 400])
  })

  it.each([NaN, -0.1, 1.5, Infinity])('random() returning %s throws RangeError', (v) => {
    const b = new Backoff(DEFAULT, constant(v))
    expect(() => b.next()).toThrow(RangeError)
  })
})

describe('Backoff retries and reset', () => {
  it('maxRetries 0: gives up at once', () => {
    const b = new Backoff({ ...DEFAULT, maxRetries: 0 }, constant(0.5))
    expect(b.exhausted).toBe(true)
    expect(b.next()).toBeUndefined()
    expect(b.attempts).toBe(0)
  })

  it('maxRetries 3: three delays, then undefined for good', () => {
    const b = new Backoff({ ...DEFAULT, maxRetries: 3, jitter: 0 }, Math.random)
    expect(take(b, 6)).toEqual([100, 200, 400, undefined, undefined, undefined])
    expect(b.attempts).toBe(3)
    expect(b.exhausted).toBe(true)
  })

  it('maxRetries Infinity: never gives up, and stays at maxDelayMs without overflow', () => {
    const b = new Backoff({ ...DEFAULT, jitter: 0 }, Math.random)
    let last: number | undefined
    for (let i = 0; i < 5_000; i++) last = b.next()
    expect(last).toBe(10_000)
    expect(b.attempts).toBe(5_000)
    expect(b.exhausted).toBe(false)
  })

  it('attempts counts the delays handed out', () => {
    const b = new Backoff(DEFAULT, constant(0))
    expect(b.attempts).toBe(0)
    b.next()
    b.next()
    expect(b.attempts).toBe(2)
  })

  it('reset() starts over from initialDelayMs, also after exhaustion', () => {
    const b = new Backoff({ ...DEFAULT, jitter: 0, maxRetries: 2 }, Math.random)
    expect(take(b, 3)).toEqual([100, 200, undefined])
    b.reset()
    expect(b.attempts).toBe(0)
    expect(b.exhausted).toBe(false)
    expect(take(b, 3)).toEqual([100, 200, undefined])
  })

  it('reset() mid-sequence (a connection succeeded) brings the delay back down', () => {
    const b = new Backoff({ ...DEFAULT, jitter: 0 }, Math.random)
    take(b, 6)
    b.reset()
    expect(b.next()).toBe(100)
  })
})

describe('backoffBaseDelay', () => {
  it('never overflows to Infinity or NaN for huge attempt numbers', () => {
    expect(backoffBaseDelay(DEFAULT, 1_024)).toBe(10_000) // 2^1024 overflows
    expect(backoffBaseDelay(DEFAULT, 1e9)).toBe(10_000)
    expect(backoffBaseDelay(DEFAULT, Number.MAX_SAFE_INTEGER)).toBe(10_000)
    expect(backoffBaseDelay({ ...DEFAULT, multiplier: 1e308 }, 2)).toBe(10_000)
  })

  it('initialDelayMs 0 stays 0 for every attempt (0 × Infinity would be NaN)', () => {
    const cfg = { ...DEFAULT, initialDelayMs: 0 }
    for (const n of [0, 1, 10, 1_100, 1e9]) expect(backoffBaseDelay(cfg, n)).toBe(0)
  })

  it('maxDelayMs equal to initialDelayMs is a constant', () => {
    const cfg = { ...DEFAULT, maxDelayMs: 100 }
    expect([0, 1, 2, 50].map((n) => backoffBaseDelay(cfg, n))).toEqual([100, 100, 100, 100])
  })
})

describe('Backoff properties', () => {
  const cfgArb: fc.Arbitrary<BackoffConfig> = fc.record({
    initialDelayMs: fc.double({ min: 0, max: 1e6, noNaN: true }),
    extra: fc.double({ min: 0, max: 1e7, noNaN: true }),
    multiplier: fc.double({ min: 1, max: 1e3, noNaN: true }),
    jitter: fc.double({ min: 0, max: 1, noNaN: true }),
    maxRetries: fc.oneof(fc.integer({ min: 0, max: 50 }), fc.constant(Infinity)),
  }).map(({ extra, ...c }) => ({ ...c, maxDelayMs: c.initialDelayMs + extra }))
  const randomsArb = fc.array(fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), { minLength: 1, maxLength: 80 })

  it('every delay is finite, non-negative and within [base × (1 − jitter), base]', () => {
    fc.assert(fc.property(cfgArb, randomsArb, (cfg, rs) => {
      let i = 0
      const b = new Backoff(cfg, () => rs[i++ % rs.length]!)
      // Plain checks, one expect per run: vitest's expect is slow in a hot loop.
      const bad: string[] = []
      for (let n = 0; n < 80; n++) {
        const d = b.next()
        if (n >= cfg.maxRetries) {
          if (d !== undefined) bad.push(`#${n}: ${d} after maxRetries`)
          continue
        }
        const base = backoffBaseDelay(cfg, n)
        const ok = d !== undefined && Number.isFinite(d) && d >= 0 && d <= base && d >= base * (1 - cfg.jitter)
        if (!ok) bad.push(`#${n}: ${String(d)} not in [${base * (1 - cfg.jitter)}, ${base}]`)
      }
      expect(bad).toEqual([])
      expect(b.attempts).toBe(Math.min(80, cfg.maxRetries))
    }), { numRuns: 500 })
  })

  it('bases are finite, within [initialDelayMs, maxDelayMs] and non-decreasing in the attempt number', () => {
    fc.assert(fc.property(cfgArb, fc.array(fc.nat({ max: 1e7 }), { minLength: 2, maxLength: 30 }), (cfg, ns) => {
      const sorted = [...ns].sort((a, b) => a - b)
      let prev = -Infinity
      for (const n of sorted) {
        const base = backoffBaseDelay(cfg, n)
        expect(Number.isFinite(base)).toBe(true)
        expect(base).toBeGreaterThanOrEqual(cfg.initialDelayMs)
        expect(base).toBeLessThanOrEqual(cfg.maxDelayMs)
        expect(base).toBeGreaterThanOrEqual(prev)
        prev = base
      }
    }), { numRuns: 500 })
  })

  it('jitter 0 is deterministic and random-free; jitter 1 with r is exactly r × base', () => {
    fc.assert(fc.property(cfgArb, fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (cfg, r) => {
      const exact = new Backoff({ ...cfg, jitter: 0, maxRetries: Infinity }, () => { throw new Error('random called') })
      const full = new Backoff({ ...cfg, jitter: 1, maxRetries: Infinity }, () => r)
      for (let n = 0; n < 20; n++) {
        const base = backoffBaseDelay(cfg, n)
        expect(exact.next()).toBe(base)
        const d = full.next()!
        expect(d).toBeLessThanOrEqual(base)
        expect(d).toBeCloseTo(r * base, 6)
      }
    }), { numRuns: 300 })
  })

  it('after reset() the sequence repeats exactly for the same randoms', () => {
    fc.assert(fc.property(cfgArb, randomsArb, (cfg, rs) => {
      let i = 0
      const b = new Backoff(cfg, () => rs[i++ % rs.length]!)
      const first = take(b, rs.length)
      b.reset()
      i = 0
      expect(take(b, rs.length)).toEqual(first)
    }), { numRuns: 200 })
  })
})
