/**
 * Per-peer heartbeat and health state machine — a sans-IO core (STYLE.md §1,
 * after quinn-proto): no timers, no clock, no sockets. The connection actor
 * that owns it feeds inputs stamped with its own monotonic clock and carries
 * out the outputs:
 *
 * ```
 *   inputs (all take `now`, ms)          outputs
 *   ─────────────────────────────        ─────────────────────────────────────
 *   start(now)                           poll() → { kind: 'send-ping', seq, sentAt }
 *   onPong(seq, now)        ──▶ core ──▶ poll() → { kind: 'transition', state, previous, rttMs }
 *   onActivity(now)                      nextDeadline() → when to call tick() next
 *   tick(now)
 * ```
 *
 * States (DESIGN.md §2 `peer:health`; `heartbeat` options):
 *
 * ```
 *            misses >= missesUnhealthy           misses >= missesDead
 *  healthy ─────────────────────────▶ unhealthy ───────────────────────▶ dead (terminal)
 *     ▲  ◀────── proof of life ───────────┘                                 ▲
 *     └──────────────────── misses >= missesDead (late tick) ───────────────┘
 * ```
 *
 * A *miss* is one whole `intervalMs` elapsed since the last proof of life,
 * where proof of life is a pong or any other inbound frame. So with the
 * defaults (1000 / 3 / 6) a peer that falls silent at `t` is `unhealthy` at
 * `t + 3000` and `dead` at `t + 6000`, as soon as `tick()` runs at or after
 * those instants — {@link HealthMonitor.nextDeadline} names them exactly.
 *
 * Owner loop (per connection actor):
 *
 * ```ts
 * const hm = new HealthMonitor(resolved.heartbeat)
 * hm.start(clock.now())
 * // on every inbound frame, *before* any tick for the same turn:
 * //   PONG → hm.onPong(frame.seq, now); anything else → hm.onActivity(now)
 * // on the timer: hm.tick(now)
 * // after every call: drain hm.poll(), then re-arm the timer at hm.nextDeadline()
 * ```
 *
 * @module
 */
import * as hdr from 'hdr-histogram-js'
import { ErrorCode, MeshError } from '../errors.js'

/**
 * Health states of one peer, as an `as const` table (STYLE.md §2: no enums).
 * `dead` is terminal: the owner closes the connection and drops the monitor.
 */
export const HealthState = {
  HEALTHY: 'healthy',
  UNHEALTHY: 'unhealthy',
  DEAD: 'dead',
} as const
/** `'healthy' | 'unhealthy' | 'dead'`. See {@link HealthState}. */
export type HealthState = typeof HealthState[keyof typeof HealthState]

/**
 * Heartbeat configuration; structurally the same as `ResolvedHeartbeatOptions`
 * in `options.ts`, which supplies the defaults and the user-facing validation.
 */
export interface HealthConfig {
  /** Time between pings, and the length of one "missed beat", in ms. Finite, > 0. Default (in options.ts): 1000. */
  readonly intervalMs: number
  /** Missed beats after which the peer is `unhealthy`. Integer >= 1. Default (in options.ts): 3. */
  readonly missesUnhealthy: number
  /** Missed beats after which the peer is `dead`. Integer > `missesUnhealthy`. Default (in options.ts): 6. */
  readonly missesDead: number
}

/**
 * What the monitor asks its owner to do, read with {@link HealthMonitor.poll}:
 *
 * - `send-ping`: send a PING frame on the control lane carrying `seq`
 *   (the frame header's `seq`); the peer echoes it in its PONG. `sentAt` is
 *   the time (ms, the owner's clock) the RTT will be measured from.
 * - `transition`: the health state changed; the owner emits `peer:health`
 *   (`{ peer, state, previous, rttMs }`), and on `dead` closes the connection.
 *   `rttMs` is the last RTT sample in ms, or `undefined` before the first one.
 */
export type HealthOutput =
  | { readonly kind: 'send-ping', readonly seq: number, readonly sentAt: number }
  | { readonly kind: 'transition', readonly state: HealthState, readonly previous: HealthState, readonly rttMs: number | undefined }

/** RTT distribution in ms, see {@link HealthMonitor.rttStats}. All zero while `count` is 0. */
export interface RttStats {
  /** Median RTT, ms. */
  readonly p50: number
  /** 90th percentile RTT, ms. */
  readonly p90: number
  /** 99th percentile RTT, ms. */
  readonly p99: number
  /** Largest RTT recorded, ms (to histogram precision: 3 significant digits). */
  readonly max: number
  /** Number of RTT samples. */
  readonly count: number
}

/**
 * Pings kept waiting for their pong. A busy link stays alive on traffic alone,
 * so a peer that never answers pings would otherwise grow this map forever;
 * past the cap the oldest ping is forgotten and its late pong yields no RTT
 * sample (it still counts as proof of life). 64 intervals is far beyond any
 * RTT the state machine tolerates anyway.
 */
const MAX_OUTSTANDING_PINGS = 64

/** RTT samples are recorded in integer µs; the histogram covers 1 µs .. 60 s. */
const US_PER_MS = 1000
const HIST_MAX_US = 60_000_000

/**
 * The RTT histogram (for {@link HealthMonitor.rttStats}): 3 significant
 * digits over 1 µs .. 60 s, in hdr's *packed* (sparse) counts array. A flat
 * counts array costs one cell per bucket whatever is recorded — 17,408
 * cells, 68 KiB with hdr's default 32-bit buckets, zero-filled (so
 * resident) at construction — and an IO worker holds one monitor per peer
 * link: that array was most of an idle link's memory in the worker (issue 2,
 * RSS per idle link). Heartbeat RTTs fill few buckets, so the packed array
 * stays at a few hundred bytes to a few KiB, with the same buckets and so the
 * same percentiles; recording costs ~2 µs instead of ~0.3, which one sample
 * per heartbeat does not notice. Pure JS (useWebAssembly: false) so
 * construction is synchronous and works in every worker without a wasm init
 * step. Made at the first sample.
 */
function rttHistogram (): hdr.Histogram {
  return hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: HIST_MAX_US,
    numberOfSignificantValueDigits: 3,
    bitBucketSize: 'packed',
    useWebAssembly: false,
  })
}

/** Lifecycle of the monitor itself (not the peer's health). */
const Phase = { IDLE: 0, RUNNING: 1, STOPPED: 2 } as const
type Phase = typeof Phase[keyof typeof Phase]

/**
 * Heartbeat + health state machine for one peer. Deterministic: time is an
 * input (`now`, ms, from a monotonic clock such as `performance.now()`), and
 * nothing happens between calls.
 *
 * Contract with the owner:
 * - Call `poll()` until `undefined` after *every* input, then re-arm the one
 *   timer at `nextDeadline()` (`Infinity` = no timer needed).
 * - Feed `onPong` / `onActivity` for frames that arrived *before* calling
 *   `tick` in the same event-loop turn. A worker whose loop was busy and ticks
 *   late then sees the proof of life first and does not declare a live peer
 *   dead just because its own timer fired late. Proof-of-life inputs never
 *   evaluate timeouts; only `tick` does, and boundaries it slept through are
 *   not replayed.
 * - `now` should never decrease; an earlier `now` is treated as the latest
 *   one seen, so a misbehaving clock cannot produce negative RTTs or move the
 *   state backwards.
 *
 * The state starts at `healthy` with no transition output; the first ping is
 * queued by `start()` so an RTT is known after one round trip.
 */
export class HealthMonitor {
  readonly #intervalMs: number
  readonly #missesUnhealthy: number
  readonly #missesDead: number

  #phase: Phase = Phase.IDLE
  #state: HealthState = HealthState.HEALTHY
  /** Latest time seen on any input, ms. */
  #now = -Infinity
  /** Time of the last proof of life (start, pong, activity), ms. */
  #lastAlive = 0
  /** Missed beats as of the last input. */
  #misses = 0
  #pingsSent = 0
  #pingsAnswered = 0
  #pingsLost = 0
  /** When the next PING is due, ms. Pings run on a fixed grid anchored at `start`. */
  #nextPingAt = Infinity
  #nextSeq = 0
  /** Highest seq answered so far; pongs at or below it are stale. */
  #newestAnswered = -1
  /** seq → sentAt of pings not yet answered, in ascending seq order (Map keeps insertion order). */
  readonly #outstanding = new Map<number, number>()
  #rttMs: number | undefined = undefined
  /** RTT samples in µs; made at the first one (see {@link rttHistogram}). */
  #rtt: hdr.Histogram | undefined
  readonly #queue: HealthOutput[] = []

  /**
   * @param config heartbeat settings, usually `resolvedOptions.heartbeat`.
   * @throws MeshError `INVALID_OPTIONS` when a field is out of range
   *   (`details.path` names it, e.g. `heartbeat.missesDead`).
   */
  constructor (config: HealthConfig) {
    const { intervalMs, missesUnhealthy, missesDead } = config
    if (typeof intervalMs !== 'number' || !Number.isFinite(intervalMs) || intervalMs <= 0) {
      throw invalid('heartbeat.intervalMs', `must be a finite number > 0, got ${String(intervalMs)}`)
    }
    if (!Number.isInteger(missesUnhealthy) || missesUnhealthy < 1) {
      throw invalid('heartbeat.missesUnhealthy', `must be an integer >= 1, got ${String(missesUnhealthy)}`)
    }
    if (!Number.isInteger(missesDead) || missesDead <= missesUnhealthy) {
      throw invalid('heartbeat.missesDead', `must be an integer > heartbeat.missesUnhealthy (${missesUnhealthy}), got ${String(missesDead)}`)
    }
    this.#intervalMs = intervalMs
    this.#missesUnhealthy = missesUnhealthy
    this.#missesDead = missesDead
  }

  /** Current health state. `healthy` before `start()`. */
  get state (): HealthState { return this.#state }

  /** Last RTT sample in ms, or `undefined` before the first answered ping. */
  get rttMs (): number | undefined { return this.#rttMs }

  /** Pings queued since start (cumulative; with {@link pingsAnswered}, the link's loss over a period). */
  get pingsSent (): number { return this.#pingsSent }
  /** Pings answered in time to count (an RTT sample), since start. */
  get pingsAnswered (): number { return this.#pingsAnswered }
  /**
   * Pings known unanswered, since start: overtaken by the answer to a later
   * one, or dropped from tracking. One still awaiting its answer is not lost
   * (so a loss figure does not flap with the timing of the last ping).
   */
  get pingsLost (): number { return this.#pingsLost }

  /** Whole intervals elapsed since the last proof of life, as of the last `tick()` (0 before `start()` and after proof of life). */
  get misses (): number { return this.#misses }

  /**
   * Begin monitoring at `now` (ms). `now` counts as proof of life: the
   * connection has just completed its handshake. Queues the first `send-ping`
   * immediately; later pings follow every `intervalMs`, on a grid anchored at
   * `now`, or at `o.gridOrigin` when given: then the second ping goes at the
   * first `gridOrigin + k × intervalMs` after `now`, so the connections of one
   * worker sharing an origin all ping in the same instant (one wake-up; see
   * HeartbeatScheduler).
   *
   * `o.ping: false` (one-way heartbeats, the peer pings): never ping; the
   * peer's pings are the proof of life (fed with {@link onActivity}) and its
   * measured RTT arrives with them ({@link onRemoteRtt}). Health is judged on
   * the same thresholds. Calling `start` again, or after `stop()`, does nothing.
   */
  start (now: number, o: { gridOrigin?: number; ping?: boolean } = {}): void {
    if (this.#phase !== Phase.IDLE) return
    this.#phase = Phase.RUNNING
    this.#now = now
    this.#lastAlive = now
    this.#misses = 0
    if (o.ping === false) return
    this.#sendPing(now)
    this.#nextPingAt = now + this.#intervalMs
    const origin = o.gridOrigin
    if (origin !== undefined && Number.isFinite(origin) && origin <= now) {
      const iv = this.#intervalMs
      let at = origin + Math.ceil((now - origin) / iv) * iv
      if (at <= now) at += iv // now on the grid, or float rounding
      this.#nextPingAt = at
    }
  }

  /**
   * The peer measured `rttMs` on this link (one-way heartbeats: it pings, we
   * answer, and it reports what it measured). Recorded as an RTT sample like
   * our own; not proof of life by itself (the frame carrying it is, through
   * {@link onActivity}). Ignored unless running and `rttMs` is finite and ≥ 0.
   */
  onRemoteRtt (rttMs: number): void {
    if (this.#phase !== Phase.RUNNING || this.#state === HealthState.DEAD) return
    if (!Number.isFinite(rttMs) || rttMs < 0) return
    this.#recordRtt(rttMs)
  }

  /**
   * A PONG with `seq` arrived at `now` (ms). Any pong is inbound traffic and so
   * proof of life. It yields an RTT sample (`now - sentAt` of that ping) only
   * if `seq` is an outstanding ping newer than every ping answered before;
   * unknown, duplicate or stale seqs give no sample and never move the RTT or
   * the state backwards. The owner need not also call `onActivity` for it.
   *
   * @returns whether an RTT sample was recorded.
   */
  onPong (seq: number, now: number): boolean {
    if (this.#phase !== Phase.RUNNING || this.#state === HealthState.DEAD) return false
    const t = this.#advance(now)
    let sampled = false
    const sentAt = seq > this.#newestAnswered ? this.#outstanding.get(seq) : undefined
    if (sentAt !== undefined) {
      this.#newestAnswered = seq
      // Every ping up to `seq` is now answered or lost (frames on one
      // connection arrive in order), so a later pong for one of them is stale.
      for (const s of this.#outstanding.keys()) {
        if (s > seq) break
        if (s < seq) this.#pingsLost++ // a newer one was answered: this one never will be
        this.#outstanding.delete(s)
      }
      // The clock as read, not `t`: time advanced past it by a rounded-up
      // tick (see tick()) is not part of the round trip.
      this.#recordRtt(Math.max(0, now - sentAt))
      this.#pingsAnswered++
      sampled = true
    }
    this.#alive(t)
    return sampled
  }

  /**
   * Any inbound frame other than a PONG arrived at `now` (ms): proof of life
   * without an RTT sample. Keeps a busy link healthy between pongs, and brings
   * an `unhealthy` peer back to `healthy` at once. Ignored before `start()`,
   * after `stop()`, and once `dead`.
   */
  onActivity (now: number): void {
    if (this.#phase !== Phase.RUNNING || this.#state === HealthState.DEAD) return
    this.#alive(this.#advance(now))
  }

  /**
   * Advance time to `now` (ms): count missed beats, change state when a
   * threshold is crossed, and queue a `send-ping` when one is due. Call it at
   * (or after) {@link nextDeadline}; calling it earlier or more often is
   * harmless. A tick that comes several intervals late sends one ping, not a
   * burst, and may go straight from `healthy` to `dead` (one transition).
   *
   * `clock` is the clock's actual reading when the owner ticks a deadline it
   * rounds up to (a timer that fires a fraction of a millisecond early, see
   * heartbeat-scheduler.ts): a ping sent now is timed from `clock`, so its RTT
   * is the real one. Timing it from the deadline in the future made a pong
   * that came back within that fraction an RTT of 0, and every other one
   * short by up to the fraction. Default: `now`.
   */
  tick (now: number, clock: number = now): void {
    if (this.#phase !== Phase.RUNNING || this.#state === HealthState.DEAD) return
    const t = this.#advance(now)
    // Liveness first: proof of life fed before this tick has already moved
    // `#lastAlive`, so a late tick judges by the latest evidence.
    this.#misses = this.#missesAt(t)
    if (this.#misses >= this.#missesDead) {
      this.#transition(HealthState.DEAD)
      // Terminal: no more pings, nothing left to wait for.
      this.#nextPingAt = Infinity
      this.#outstanding.clear()
      return
    }
    if (this.#misses >= this.#missesUnhealthy && this.#state === HealthState.HEALTHY) {
      this.#transition(HealthState.UNHEALTHY)
    }
    if (t >= this.#nextPingAt) {
      this.#sendPing(Math.min(t, clock))
      // Stay on the grid anchored at start(); skip slots a late tick missed.
      const behind = Math.floor((t - this.#nextPingAt) / this.#intervalMs) + 1
      this.#nextPingAt += behind * this.#intervalMs
      if (this.#nextPingAt <= t) this.#nextPingAt = t + this.#intervalMs // float guard
    }
  }

  /** Next queued output, or `undefined` when there is none. Drain after every input. */
  poll (): HealthOutput | undefined {
    return this.#queue.shift()
  }

  /**
   * Absolute time (ms, the owner's clock) at which `tick()` must be called
   * next: the earlier of the next ping and the next boundary where the state
   * would change (`missesUnhealthy` whole intervals since the last proof of
   * life while healthy, `missesDead` after). Boundaries in between change
   * nothing but {@link misses}, so an owner that follows this alone is not
   * woken by a link that stays alive (each proof of life pushes the boundary
   * out). `Infinity` before `start()`, after `stop()`, and once `dead`.
   */
  nextDeadline (): number {
    if (this.#phase !== Phase.RUNNING || this.#state === HealthState.DEAD) return Infinity
    const k = this.#state === HealthState.HEALTHY ? this.#missesUnhealthy : this.#missesDead
    return Math.min(this.#nextPingAt, this.#lastAlive + k * this.#intervalMs)
  }

  /**
   * RTT distribution in ms over all samples since construction (p50, p90,
   * p99, max; 3 significant digits, recorded in integer µs, capped at 60 s).
   * As usual for HdrHistogram, a percentile is the upper edge of its bucket,
   * so it may exceed `max` by < 0.1 % (one 12 ms sample: p50 12.007, max 12).
   * All fields are 0 while `count` is 0.
   */
  rttStats (): RttStats {
    const h = this.#rtt
    const count = h?.totalCount ?? 0
    if (h === undefined || count === 0) return { p50: 0, p90: 0, p99: 0, max: 0, count: 0 }
    return {
      p50: h.getValueAtPercentile(50) / US_PER_MS,
      p90: h.getValueAtPercentile(90) / US_PER_MS,
      p99: h.getValueAtPercentile(99) / US_PER_MS,
      max: h.maxValue / US_PER_MS,
      count,
    }
  }

  /**
   * Bytes the RTT histogram holds (hdr's estimate: its counts array and
   * fields), 0 before the first sample. One monitor lives per peer link, so
   * this is a per-link cost; a test keeps it small.
   */
  get rttHistogramBytes (): number { return this.#rtt?.estimatedFootprintInBytes ?? 0 }

  /**
   * Stop monitoring (the connection closed). Idempotent. Queued outputs are
   * dropped, later inputs are ignored, `nextDeadline()` is `Infinity`; `state`,
   * `rttMs` and `rttStats()` stay readable.
   */
  stop (): void {
    this.#phase = Phase.STOPPED
    this.#queue.length = 0
    this.#outstanding.clear()
    this.#nextPingAt = Infinity
  }

  /** Clamp `now` so time never runs backwards inside the core. */
  #advance (now: number): number {
    if (now > this.#now) this.#now = now
    return this.#now
  }

  /** Whole intervals elapsed between the last proof of life and `t`. */
  #missesAt (t: number): number {
    const elapsed = t - this.#lastAlive
    if (elapsed <= 0) return 0
    let m = Math.floor(elapsed / this.#intervalMs)
    // Division can round across a boundary for non-integer intervals; settle
    // on the same multiplication nextDeadline() uses so the two always agree.
    while (this.#lastAlive + (m + 1) * this.#intervalMs <= t) m++
    while (m > 0 && this.#lastAlive + m * this.#intervalMs > t) m--
    return m
  }

  #alive (t: number): void {
    this.#lastAlive = t
    this.#misses = 0
    if (this.#state === HealthState.UNHEALTHY) this.#transition(HealthState.HEALTHY)
  }

  #sendPing (t: number): void {
    this.#pingsSent++
    const seq = this.#nextSeq++
    this.#outstanding.set(seq, t)
    if (this.#outstanding.size > MAX_OUTSTANDING_PINGS) {
      const oldest = this.#outstanding.keys().next()
      if (oldest.done !== true) { this.#outstanding.delete(oldest.value); this.#pingsLost++ }
    }
    this.#queue.push({ kind: 'send-ping', seq, sentAt: t })
  }

  #recordRtt (ms: number): void {
    this.#rttMs = ms
    // Integer µs, clamped into the histogram's range so an absurd sample
    // (a pong after a minute) is still counted instead of throwing.
    const us = Math.min(HIST_MAX_US, Math.max(0, Math.round(ms * US_PER_MS)))
    const h = this.#rtt ?? (this.#rtt = rttHistogram())
    h.recordValue(us)
  }

  #transition (state: HealthState): void {
    const previous = this.#state
    if (previous === state) return
    this.#state = state
    this.#queue.push({ kind: 'transition', state, previous, rttMs: this.#rttMs })
  }
}

function invalid (path: string, what: string): MeshError {
  return new MeshError(ErrorCode.INVALID_OPTIONS, `options.${path} ${what}`, { details: { path } })
}
