/**
 * Doorbell: one wake-up word shared by one consumer thread and any number of
 * producer threads (e.g. one IO worker that consumes many per-peer rings and
 * wants to sleep on all of them at once).
 *
 * Also home of {@link waitAsyncRef}, the one place that calls
 * `Atomics.waitAsync` (shared with ring-buffer.ts; it belongs in ring/wait.ts
 * per STYLE.md §1 once that file exists).
 *
 * Layout of the 128-byte SharedArrayBuffer (Int32 words):
 * ```
 *   byte 0   SEQ       bumped by every ring() (any producer)    cache line 0
 *   byte 64  SLEEPING  1 while the consumer is (about to be)    cache line 1
 *                      parked in Atomics.waitAsync; written
 *                      only by the consumer
 *   byte 68  MAGIC     constant, checked by attach()
 * ```
 * SEQ and SLEEPING sit on separate cache lines so producers' RMWs on SEQ do
 * not keep invalidating the line the consumer writes.
 *
 * @module
 */

const SEQ = 0
const SLEEPING = 16
const MAGIC = 17
const MAGIC_VALUE = 0x4d574442 // 'MWDB'
const DOORBELL_BYTES = 128

/** Result of {@link waitAsyncRef}: the shape of `Atomics.waitAsync` (ES2024). */
export type WaitAsyncResult =
  | { async: false, value: 'not-equal' | 'timed-out' }
  | { async: true, value: Promise<'ok' | 'timed-out'> }

// tsconfig targets lib ES2023, which lacks the ES2024 typing of waitAsync;
// Node >= 16 has the function itself.
const atomicsWaitAsync = (Atomics as unknown as {
  waitAsync (typedArray: Int32Array, index: number, value: number, timeout?: number): WaitAsyncResult
}).waitAsync

if (typeof atomicsWaitAsync !== 'function') {
  throw new Error('meshwork requires Atomics.waitAsync (Node >= 16)')
}

// Two Node 20 / V8 11.3 problems with Atomics.waitAsync shape this helper:
//
// 1. A pending wait does not keep the event loop alive (its timeout task is
//    unref'd), so a worker whose only pending work is "wait for the ring"
//    simply exits: https://github.com/nodejs/node/issues/44729,
//    https://github.com/nodejs/node/issues/61941 (fix proposed in
//    https://github.com/nodejs/node/pull/44409). So every pending wait holds
//    a ref'd timer, like a setTimeout would.
// 2. Under two-thread ping-pong load, waits given a *finite* V8 timeout are
//    sometimes resolved seconds after the Atomics.notify that woke them
//    (observed: 0.2-12 s stalls on both sides at once in
//    test/unit/ring/ring-stress.test.ts, 3 of 24 runs hitting a 30 s
//    deadline); with no V8 timeout the same runs show no stall at all. So we
//    never pass a timeout to V8: the ref'd timer of (1) implements it by
//    marking the wait timed out and notifying the word from this thread.
//    That self-notify also wakes any other waiter on the same word, so every
//    caller treats a wake-up as a hint and re-checks its condition.
const MAX_TIMER_MS = 2 ** 31 - 1 // larger setTimeout delays are clamped to 1 ms by Node

function noop (): void {}

/**
 * `Atomics.waitAsync(i32, index, value, timeoutMs)` that keeps the calling
 * thread's event loop alive (like a timer) while the wait is pending, and
 * implements the timeout with a Node timer (see the comment above). May
 * resolve 'ok' spuriously (another waiter's timeout on the same word):
 * callers must re-check their condition. Internal to src/ring.
 *
 * @param timeoutMs - milliseconds, `Infinity` for no timeout (as are values
 *   above 2^31 - 1); already validated by {@link checkTimeout}.
 * @internal
 */
export function waitAsyncRef (i32: Int32Array, index: number, value: number, timeoutMs: number, keepAlive = true): WaitAsyncResult {
  // Atomics.waitAsync: in one critical section of the waiter list it reads
  // i32[index] (seq-cst) and, if it still equals `value`, enqueues us. A
  // notify on the same word takes the same critical section, so a notify
  // that follows a store which changed the word either finds us enqueued or
  // we saw the new value ('not-equal'): no wake-up can fall between the
  // check and the enqueue. A zero timeout is passed through: V8 answers it
  // synchronously ('not-equal' | 'timed-out') without arming anything.
  if (timeoutMs <= 0) return atomicsWaitAsync(i32, index, value, 0)
  const r = atomicsWaitAsync(i32, index, value)
  if (!r.async) return r
  // keepAlive false (the host's main thread, kept alive by the mesh's worker
  // threads anyway): an untimed wait holds no handle at all, so the host's
  // loop carries no timer of ours.
  if (!keepAlive && timeoutMs >= MAX_TIMER_MS) return r
  let timedOut = false
  const timer = timeoutMs >= MAX_TIMER_MS
    ? setInterval(noop, MAX_TIMER_MS)
    : setTimeout(() => {
      timedOut = true
      // Atomics.notify from this thread: resolves our own pending wait (and
      // any other waiter on this word, which re-checks and waits again).
      Atomics.notify(i32, index)
    }, timeoutMs)
  return {
    async: true,
    value: r.value.then(
      (v) => { clearTimeout(timer); return timedOut ? 'timed-out' : v },
      (err: unknown) => { clearTimeout(timer); throw err },
    ),
  }
}

/**
 * Validate a user-supplied timeout: `undefined` means no timeout.
 * @throws RangeError if not a number >= 0 (Infinity allowed).
 * @internal
 */
export function checkTimeout (timeoutMs: number | undefined, name = 'timeoutMs'): number {
  if (timeoutMs === undefined) return Infinity
  if (typeof timeoutMs !== 'number' || Number.isNaN(timeoutMs) || timeoutMs < 0) {
    throw new RangeError(`${name} must be a number >= 0 (or Infinity), got ${String(timeoutMs)}`)
  }
  return timeoutMs
}

/**
 * A wake-up word shared by one consumer and any number of producers (e.g. one
 * IO worker consuming many per-peer rings). Producers call {@link ring} after
 * publishing data; the consumer calls {@link sleep} with a `hasWork` check
 * over everything it consumes. The consumer is woken only when it actually
 * sleeps: `ring()` costs one atomic add and one load otherwise.
 *
 * Pass `doorbell.sab` to other threads (postMessage / workerData) and
 * {@link Doorbell.attach} it there.
 */
export class Doorbell {
  /** The 128-byte shared memory behind this doorbell; send it to other threads. */
  readonly sab: SharedArrayBuffer
  readonly #i32: Int32Array
  // Number of sleep() calls pending on this instance (consumer thread only).
  // SLEEPING is cleared only when the last one leaves, so two overlapping
  // sleeps cannot clear the flag under each other.
  #sleepers = 0

  private constructor (sab: SharedArrayBuffer) {
    this.sab = sab
    this.#i32 = new Int32Array(sab, 0, DOORBELL_BYTES / 4)
  }

  /** Allocate a new doorbell with its own small (128-byte) SharedArrayBuffer. */
  static create (): Doorbell {
    const sab = new SharedArrayBuffer(DOORBELL_BYTES)
    const bell = new Doorbell(sab)
    // Plain initialisation; it is published to other threads by postMessage,
    // which synchronises (the receiver attaches after the send).
    bell.#i32[MAGIC] = MAGIC_VALUE
    return bell
  }

  /**
   * View a doorbell created (on any thread) by {@link Doorbell.create}.
   * @throws TypeError if `sab` is not a SharedArrayBuffer made by `create()`.
   */
  static attach (sab: SharedArrayBuffer): Doorbell {
    if (!(sab instanceof SharedArrayBuffer) || sab.byteLength !== DOORBELL_BYTES) {
      throw new TypeError(`Doorbell.attach: expected a ${DOORBELL_BYTES}-byte SharedArrayBuffer from Doorbell.create()`)
    }
    const bell = new Doorbell(sab)
    // Atomics.load (seq-cst): MAGIC is constant after create(), and a SAB
    // that arrived by postMessage is already synchronised with it; the atomic
    // load keeps the check well-defined however the SAB was shared.
    if (Atomics.load(bell.#i32, MAGIC) !== MAGIC_VALUE) {
      throw new TypeError('Doorbell.attach: buffer is not a doorbell (bad magic)')
    }
    return bell
  }

  /**
   * Producer side, after publishing data (after the seq-cst store that makes
   * it visible): bump the sequence word, and `Atomics.notify` only if the
   * consumer is asleep. Safe from any number of threads.
   */
  ring (): void {
    // Atomics.load (seq-cst): the producer half of the Dekker pair (publish
    // data; then read SLEEPING) against the consumer's (store SLEEPING=1; then
    // read data). Sequential consistency forbids both reads missing the other
    // side's store: if we read 0, the consumer's SLEEPING store comes later in
    // the total order, so its hasWork() sees our data and it does not sleep.
    // An awake consumer thus costs one plain load and no locked add: this runs
    // once per send on the host.
    if (Atomics.load(this.#i32, SLEEPING) !== 0) {
      // Atomics.add (seq-cst RMW): the consumer read SEQ before it stored
      // SLEEPING=1, so its waitAsync sees a new value ('not-equal') even if it
      // has not enqueued yet...
      Atomics.add(this.#i32, SEQ, 1)
      // ...and Atomics.notify wakes it if it has.
      Atomics.notify(this.#i32, SEQ)
    }
  }


  /**
   * Consumer side (one thread): sleep until {@link ring} is called after this
   * call began, unless `hasWork()` is already true.
   *
   * @param hasWork - checked once after announcing the sleep; must read the
   *   shared state with Atomics (e.g. `() => !ring.isEmpty()`).
   * @param timeoutMs - give up after this many milliseconds. @default Infinity
   * @returns `'ok'` when rung (or work was already there), `'timed-out'`.
   * @throws RangeError on a negative or NaN timeout.
   */
  sleep (hasWork: () => boolean, timeoutMs?: number): Promise<'ok' | 'timed-out'> {
    // Bad arguments throw synchronously (STYLE.md §3), not as a rejection.
    return this.#sleep(hasWork, checkTimeout(timeoutMs))
  }

  async #sleep (hasWork: () => boolean, timeout: number): Promise<'ok' | 'timed-out'> {
    const i32 = this.#i32
    // Atomics.load (seq-cst) of SEQ *before* announcing the sleep: any ring()
    // that starts after this point bumps SEQ past `seq`, so waitAsync below
    // returns 'not-equal' for it even if its notify came too early.
    const seq = Atomics.load(i32, SEQ)
    // Atomics.store (seq-cst): consumer half of the Dekker pair (see ring()).
    // It is ordered before the hasWork() loads, so a producer whose publish
    // those loads miss is guaranteed to read SLEEPING=1 and notify.
    if (this.#sleepers++ === 0) Atomics.store(i32, SLEEPING, 1)
    try {
      if (hasWork()) return 'ok'
      const deadline = performance.now() + timeout
      for (;;) {
        const remaining = deadline - performance.now()
        const r = waitAsyncRef(i32, SEQ, seq, remaining > 0 ? remaining : 0)
        if (!r.async) return r.value === 'not-equal' ? 'ok' : 'timed-out'
        const v = await r.value
        // Atomics.load (seq-cst): a ring() always bumps SEQ, so an unchanged
        // SEQ means a spurious wake-up (waitAsyncRef's self-notify for an
        // overlapping sleep's timeout): wait again, unless we timed out.
        if (Atomics.load(i32, SEQ) !== seq) return 'ok'
        if (v === 'timed-out') return 'timed-out'
      }
    } finally {
      // Atomics.store (seq-cst): producers stop notifying. A ring() that
      // still reads 1 just sends a harmless extra notify.
      if (--this.#sleepers === 0) Atomics.store(i32, SLEEPING, 0)
    }
  }
}
