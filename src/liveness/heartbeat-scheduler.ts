/**
 * One timer for every connection's heartbeats in an IO worker.
 *
 * Each connection's {@link HealthMonitor} names the instant it must be ticked
 * next ({@link HealthMonitor.nextDeadline}). Arming one `setTimeout` per
 * connection per beat woke an idle worker once per peer per interval (15
 * wake-ups a second for 15 peers at the default 1000 ms), and each re-arm
 * allocated a timer and re-sorted Node's timer lists. Here the worker keeps a
 * single timer at the earliest deadline of all its connections; when it
 * fires, every connection due by then is ticked in the same turn. Together
 * with ping grids aligned to {@link HeartbeatScheduler.origin} (see
 * `HealthMonitor.start`), all pings of a worker leave in one wake-up per
 * interval, and their pongs come back together.
 *
 * The deadline a client reports may move later without telling the
 * scheduler (proof of life pushes a miss boundary out): the timer then fires
 * early, finds nothing due, and re-arms — one spurious wake at most. A
 * deadline that moves *earlier* must be reported with {@link wake}.
 *
 * @module
 */

/** A connection as the scheduler sees it. */
export interface HeartbeatClient {
  /** When {@link onHeartbeatTimer} must run next (ms on the scheduler's clock); `Infinity` = never. */
  heartbeatDeadline (): number
  /**
   * The deadline has come: tick the health monitor at `now` (≥ the deadline).
   * `clock` is the clock's actual reading, up to DUE_SLACK_MS earlier than
   * `now` when the timer fired that much early: what a ping sent now is timed from.
   */
  onHeartbeatTimer (now: number, clock: number): void
}

/** Clock and timer functions, injectable for tests. */
export interface SchedulerTimers {
  now: () => number
  setTimeout: (fn: () => void, ms: number) => unknown
  clearTimeout: (t: unknown) => void
}

const realTimers: SchedulerTimers = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms)
    // Heartbeats never keep a worker alive on their own.
    t.unref()
    return t
  },
  clearTimeout: (t) => { clearTimeout(t as NodeJS.Timeout) },
}

/**
 * Node timers have millisecond resolution and may run a fraction of a
 * millisecond before the instant asked for: a client whose deadline is this
 * close counts as due (and is ticked at its deadline), instead of costing a
 * second wake-up a millisecond later.
 */
const DUE_SLACK_MS = 1

/** Single-timer heartbeat clock of one IO worker; see the module doc. */
export class HeartbeatScheduler {
  /** Origin of the ping grid every connection of this worker shares (ms on the scheduler's clock). */
  readonly origin: number
  readonly #clients = new Set<HeartbeatClient>()
  readonly #t: SchedulerTimers
  #timer: unknown = undefined
  #armedAt = Infinity
  /** Timer callbacks run (for tests and diagnostics). */
  wakeups = 0

  constructor (timers: SchedulerTimers = realTimers) {
    this.#t = timers
    this.origin = timers.now()
  }

  /** Number of clients. */
  get size (): number { return this.#clients.size }

  /** Current clock reading (ms). */
  now (): number { return this.#t.now() }

  /** Start ticking `c` at its deadline. */
  add (c: HeartbeatClient): void {
    this.#clients.add(c)
    this.wake(c.heartbeatDeadline())
  }

  /** Stop ticking `c` (its connection closed). A timer armed for it may still fire once, harmlessly. */
  remove (c: HeartbeatClient): void {
    this.#clients.delete(c)
    if (this.#clients.size === 0) this.#disarm()
  }

  /** A client's deadline is now `at` (it may have moved earlier): make sure the timer fires by then. */
  wake (at: number): void {
    if (at < this.#armedAt) this.#arm(at)
  }

  /** Stop: no more ticks (the worker is closing). */
  stop (): void {
    this.#clients.clear()
    this.#disarm()
  }

  #arm (at: number): void {
    if (this.#timer !== undefined) this.#t.clearTimeout(this.#timer)
    this.#armedAt = at
    this.#timer = Number.isFinite(at) ? this.#t.setTimeout(() => { this.#fire() }, Math.max(0, at - this.#t.now())) : undefined
  }

  #disarm (): void {
    if (this.#timer !== undefined) this.#t.clearTimeout(this.#timer)
    this.#timer = undefined
    this.#armedAt = Infinity
  }

  #fire (): void {
    this.#timer = undefined
    this.#armedAt = Infinity
    this.wakeups++
    const now = this.#t.now()
    let next = Infinity
    // A client may close (and remove itself) while ticked: iterate a snapshot.
    for (const c of [...this.#clients]) {
      if (!this.#clients.has(c)) continue // removed by an earlier client's tick
      let d = c.heartbeatDeadline()
      if (d <= now + DUE_SLACK_MS) {
        c.onHeartbeatTimer(Math.max(now, d), now)
        if (!this.#clients.has(c)) continue
        d = c.heartbeatDeadline()
      }
      if (d < next) next = d
    }
    // Clients added or woken during the ticks have already armed an earlier timer if they needed one.
    // (A deadline that did not move past `now` is retried a millisecond later, never in a tight loop.)
    if (next < this.#armedAt) this.#arm(Math.max(next, now + DUE_SLACK_MS))
  }
}
