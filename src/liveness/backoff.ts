/**
 * Reconnect backoff with (full) jitter — a sans-IO core: it computes delays
 * and never sleeps, reads no clock, and draws randomness only from the
 * injected `random`, so tests get exact sequences.
 *
 * Attempt `n` (0-based, counted since the last `reset()`) has the base delay
 *
 * ```
 *   base(n)  = min(maxDelayMs, initialDelayMs × multiplier^n)
 *   delay(n) = base × (1 − jitter) + random() × base × jitter
 * ```
 *
 * so `delay ∈ [base × (1 − jitter), base]`. `jitter = 1` is AWS's "full
 * jitter" (uniform in `[0, base]`), which spreads a crowd of peers that lost
 * the same node so they do not redial it in lock-step
 * (https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/);
 * `jitter = 0` gives exactly `base`.
 *
 * @module
 */
import { ErrorCode, MeshError } from '../errors.js'

/**
 * Backoff settings; structurally the same as `ResolvedReconnectOptions` in
 * `options.ts`, which supplies the defaults and the user-facing validation.
 */
export interface BackoffConfig {
  /** Base delay of the first attempt, in ms. Finite, >= 0. Default (in options.ts): 100. */
  readonly initialDelayMs: number
  /** Upper bound of the base delay, in ms. Finite, >= `initialDelayMs`. Default (in options.ts): 10000. */
  readonly maxDelayMs: number
  /** Growth factor of the base delay per attempt (unitless). Finite, >= 1. Default (in options.ts): 2. */
  readonly multiplier: number
  /** Random fraction of each delay, 0..1: 0 = exact, 1 = full jitter. Default (in options.ts): 1. */
  readonly jitter: number
  /** Attempts allowed before giving up. Integer >= 0, or `Infinity`. Default (in options.ts): `Infinity`. */
  readonly maxRetries: number
}

/**
 * Base delay (ms, before jitter) of attempt `attempt` (0-based):
 * `min(maxDelayMs, initialDelayMs × multiplier^attempt)`. Never `NaN` or
 * `Infinity`, however large `attempt` is: a product that overflows is capped
 * at `maxDelayMs`. Non-decreasing in `attempt`. Assumes a valid config (see
 * {@link Backoff}).
 */
export function backoffBaseDelay (config: BackoffConfig, attempt: number): number {
  const { initialDelayMs, maxDelayMs, multiplier } = config
  // 0 × Infinity would be NaN once multiplier^attempt overflows.
  if (initialDelayMs === 0) return 0
  // multiplier >= 1 and attempt >= 0, so the power is >= 1 or +Infinity, never
  // NaN; the comparison caps both a large finite product and an overflow.
  const grown = initialDelayMs * multiplier ** attempt
  return grown >= maxDelayMs ? maxDelayMs : grown
}

/**
 * Delay generator for one peer's redials. Call {@link next} before each
 * redial and wait the returned ms; call {@link reset} once a connection has
 * completed its handshake. Not tied to any timer: the owner schedules.
 */
export class Backoff {
  readonly #config: BackoffConfig
  readonly #random: () => number
  #attempts = 0

  /**
   * @param config backoff settings, usually `resolvedOptions.reconnect`.
   * @param random source of uniform numbers in [0, 1) (`Math.random` in
   *   production, a stub in tests). 1 is tolerated (gives `base`).
   * @throws MeshError `INVALID_OPTIONS` when a field is out of range
   *   (`details.path` names it, e.g. `reconnect.jitter`).
   */
  constructor (config: BackoffConfig, random: () => number) {
    const { initialDelayMs, maxDelayMs, multiplier, jitter, maxRetries } = config
    if (!isFiniteNumber(initialDelayMs) || initialDelayMs < 0) {
      throw invalid('reconnect.initialDelayMs', `must be a finite number >= 0, got ${String(initialDelayMs)}`)
    }
    if (!isFiniteNumber(maxDelayMs) || maxDelayMs < initialDelayMs) {
      throw invalid('reconnect.maxDelayMs', `must be a finite number >= reconnect.initialDelayMs (${initialDelayMs}), got ${String(maxDelayMs)}`)
    }
    if (!isFiniteNumber(multiplier) || multiplier < 1) {
      throw invalid('reconnect.multiplier', `must be a finite number >= 1, got ${String(multiplier)}`)
    }
    if (!isFiniteNumber(jitter) || jitter < 0 || jitter > 1) {
      throw invalid('reconnect.jitter', `must be a number in 0..1, got ${String(jitter)}`)
    }
    if (!(maxRetries === Infinity || (Number.isInteger(maxRetries) && maxRetries >= 0))) {
      throw invalid('reconnect.maxRetries', `must be an integer >= 0 or Infinity, got ${String(maxRetries)}`)
    }
    if (typeof random !== 'function') {
      throw new TypeError('random must be a function returning a number in [0, 1)')
    }
    this.#config = { initialDelayMs, maxDelayMs, multiplier, jitter, maxRetries }
    this.#random = random
  }

  /** Delays handed out by {@link next} since construction or the last {@link reset}. */
  get attempts (): number { return this.#attempts }

  /** Whether `maxRetries` attempts are used up (the next `next()` returns `undefined`). */
  get exhausted (): boolean { return this.#attempts >= this.#config.maxRetries }

  /**
   * The delay in ms (a non-negative finite float, not rounded) before the next
   * redial, within `[base × (1 − jitter), base]` for the current attempt; or
   * `undefined` once `maxRetries` delays have been handed out, meaning give
   * up (the peer becomes `failed`). Draws one `random()` per returned delay,
   * none when `jitter` is 0 or the attempts are exhausted.
   *
   * @throws RangeError if `random()` returns something outside [0, 1].
   */
  next (): number | undefined {
    if (this.exhausted) return undefined
    const base = backoffBaseDelay(this.#config, this.#attempts)
    this.#attempts++
    const { jitter } = this.#config
    if (jitter === 0) return base
    const r = this.#random()
    if (!(r >= 0 && r <= 1)) throw new RangeError(`random() must return a number in [0, 1), got ${String(r)}`)
    const lo = base * (1 - jitter)
    const delay = lo + r * base * jitter
    // Rounding can step one ulp outside the interval; the bound is the contract.
    return Math.min(base, Math.max(lo, delay))
  }

  /** Start over from attempt 0 (after a successful connection). */
  reset (): void {
    this.#attempts = 0
  }
}

function isFiniteNumber (v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v)
}

function invalid (path: string, what: string): MeshError {
  return new MeshError(ErrorCode.INVALID_OPTIONS, `options.${path} ${what}`, { details: { path } })
}
