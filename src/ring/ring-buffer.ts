/**
 * Single-producer single-consumer ring buffer of length-prefixed records on a
 * SharedArrayBuffer: the data plane between threads (DESIGN.md §1 "Ring
 * buffers"). Exactly one thread produces (tryWrite / tryAppend / publish /
 * waitForSpace) and exactly one thread consumes (drain / waitForData); either
 * side may read stats or close.
 *
 * ## Shared memory layout
 * ```
 *  byte   0 ┌──────────────────────────────────────────────┐ cache line 0: producer-written
 *           │ i32 HEAD        write position (free-running) │
 *         8 │ f64 RECORDS_WRITTEN  f64 BYTES_WRITTEN        │
 *        24 │ f64 FULL_EVENTS                               │
 *        64 ├──────────────────────────────────────────────┤ cache line 1: consumer-written
 *           │ i32 TAIL        read position (free-running)  │
 *        72 │ f64 RECORDS_READ                              │
 *       128 ├──────────────────────────────────────────────┤ cache line 2: read-mostly
 *           │ i32 CONSUMER_SLEEPING  i32 PRODUCER_WAITING   │ (WAITING: bytes the producer waits for, 0 = none)
 *           │ i32 CLOSED  i32 MAGIC  i32 VERSION  i32 CAP   │
 *       192 ├──────────────────────────────────────────────┤
 *           │ data: `capacity` bytes (a power of two)       │
 *           └──────────────────────────────────────────────┘
 * ```
 * HEAD and TAIL live on separate 64-byte lines so the producer's HEAD stores
 * and the consumer's TAIL stores do not false-share. The flags are written
 * only on sleep/wake transitions and read on every publish/drain, so their
 * line stays shared in both caches on the hot path.
 *
 * ## Records
 * A record is a u32 little-endian length, the payload, and zero to three
 * bytes of padding so the next record starts 4-byte aligned:
 * `recordSize(n) = 4 + ((n + 3) & ~3)`. A record never straddles the end of
 * the data area: when it does not fit before the end, the producer writes the
 * WRAP marker (length 0xFFFFFFFF) in the remaining space and the record
 * starts at offset 0. So drain() can hand out contiguous views.
 *
 * ## Positions and invariants
 * HEAD and TAIL are free-running uint32 byte counters (wrap at 2^32, always
 * combined with `>>> 0`); `pos & (C - 1)` is the offset in the data area of
 * capacity C. `used = (HEAD - TAIL) >>> 0`, and `0 <= used <= C` always.
 * Below, T and H are the offsets of TAIL and HEAD; `.` is free space.
 * ```
 *  empty    HEAD == TAIL                                   used = 0
 *           [.......................................]
 *                      T,H
 *
 *  in use   records lie between T and H                    used = HEAD - TAIL
 *           [.......|len|payload.|len|pay|..........]
 *                   T                     H
 *
 *  wrapped  the next record did not fit before the end: a WRAP marker fills
 *           the rest of the lap and the record starts at offset 0
 *           [|len|pay|.............|len|payload|WRAP~~~]
 *                    H             T
 *           (the skipped bytes count as used until TAIL passes the end)
 *
 *  full     HEAD - TAIL == C (so H == T as offsets), or the free space is
 *           smaller than the next record plus its wrap skip: tryWrite → false
 *           [|len|payload|len|pay|len|payload|len|pay|]
 *            T,H
 * ```
 * The free space a record of size S needs is S, plus `capacity - offset` if
 * it must wrap. Since S <= capacity/2 (see maxRecordBytes), a wrapping record
 * has offset > capacity/2 >= S, so it fits once the consumer has drained
 * everything: a maximal record can never wedge the ring.
 *
 * ## Memory ordering
 * The payload copy and length prefix are plain (non-atomic) writes. The
 * producer's seq-cst `Atomics.store(HEAD)` comes after them and the
 * consumer's seq-cst `Atomics.load(HEAD)` comes before it reads them, so the
 * plain writes happen-before the plain reads (ECMAScript memory model,
 * synchronize-with on seq-cst accesses to the same location); symmetrically
 * for TAIL, which hands the bytes back to the producer for reuse. Every
 * Atomics call below says which race it closes.
 *
 * ## Counters
 * Counters are Float64 slots, each written by its owner thread only
 * (RECORDS_WRITTEN, BYTES_WRITTEN, FULL_EVENTS by the producer, RECORDS_READ
 * by the consumer) with plain writes before the owner's HEAD/TAIL store, and
 * read by anyone with plain reads. A float64 counts exactly up to 2^53, so
 * bytesWritten does not overflow at 2^32. A cross-thread read may see a value
 * one publish old; ECMAScript does not promise tear-free float64 accesses,
 * but V8 emits one aligned 8-byte move on x64/arm64, and the values are
 * diagnostics, never used for control.
 *
 * @module
 */

import { type Doorbell, checkTimeout, waitAsyncRef } from './doorbell.js'
import { copyBytes, FILL_MIN_BYTES } from './copy-bytes.js'

// ---- layout (indices into the Int32 / Float64 views of the header) ----
const HEAD = 0 //             i32, byte 0
const F_RECORDS_WRITTEN = 1 // f64, byte 8
const F_BYTES_WRITTEN = 2 //   f64, byte 16
const F_FULL_EVENTS = 3 //     f64, byte 24
const TAIL = 16 //             i32, byte 64
const F_RECORDS_READ = 9 //    f64, byte 72
const CONSUMER_SLEEPING = 32 // i32, byte 128
const PRODUCER_WAITING = 33 // i32, byte 132
const CLOSED = 34 //           i32, byte 136
const MAGIC = 35 //            i32, byte 140
const VERSION = 36 //          i32, byte 144
const CAPACITY = 37 //         i32, byte 148
const HEADER_BYTES = 192
const MAGIC_VALUE = 0x4d575242 // 'MWRB'
const LAYOUT_VERSION = 1
const WRAP = 0xffffffff
const MIN_CAPACITY = 1024
const MAX_CAPACITY = 2 ** 30

/**
 * Where a ring lives when it shares a SharedArrayBuffer with others: the
 * buffer and the byte offset of the ring's header in it (a multiple of 8),
 * with {@link RingBuffer.bytesFor} bytes free from there. Why share: each
 * SharedArrayBuffer is a calloc. Once glibc's dynamic mmap threshold has
 * risen (freeing any mmapped chunk raises it to that chunk's size, up to
 * 32 MiB), buffers of ring size come from the malloc heap, and each one
 * makes memory resident however little of it is written, where an mmapped
 * one costs only the pages written. Measured on Node 20, 48 buffers of
 * 4 MiB with one byte written: 5 KiB resident each in a fresh process,
 * 45 KiB in one where a mesh had run, 133 KiB after freeing an 8 MiB
 * Buffer (256 KiB to 4 MiB alike). A peer's send queue and datagram ring
 * in one buffer pay that once.
 */
export interface RingPlace {
  readonly sab: SharedArrayBuffer
  readonly byteOffset: number
}

/** The data capacity {@link RingBuffer.create} gives a ring asked for `capacityBytes`: a power of two, >= MIN_CAPACITY. */
function ringCapacity (capacityBytes: number): number {
  if (typeof capacityBytes !== 'number' || !Number.isInteger(capacityBytes) ||
      capacityBytes < 1 || capacityBytes > MAX_CAPACITY) {
    throw new RangeError(`capacityBytes must be an integer in [1, ${MAX_CAPACITY}], got ${String(capacityBytes)}`)
  }
  let capacity = MIN_CAPACITY
  while (capacity < capacityBytes) capacity *= 2
  return capacity
}

/** Options of {@link RingBuffer.create} and {@link RingBuffer.attach}. */
export interface RingBufferOptions {
  /**
   * If given, every publish (tryWrite, tryWrite2, publish) and close() also
   * calls `doorbell.ring()`, so a consumer serving several rings can sleep on
   * one doorbell. Give it on the producer's instance. @default none
   */
  doorbell?: Doorbell
  /**
   * Whether a pending wait keeps this thread's event loop alive (a ref'd
   * timer handle). Set false on the host's main thread, which the mesh's
   * worker threads keep alive: an untimed wait then holds no handle.
   * @default true
   */
  keepAlive?: boolean
}

/** Snapshot returned by {@link RingBuffer.stats}. */
export interface RingBufferStats {
  /** Records published by the producer since creation. */
  recordsWritten: number
  /** Payload bytes published (length prefixes and padding excluded); exact up to 2^53. */
  bytesWritten: number
  /** Records consumed by drain(). */
  recordsRead: number
  /** Writes refused for lack of space (tryWrite/tryWrite2/tryAppend returned false on an open ring). */
  fullEvents: number
  /** Bytes in use now, including length prefixes, padding and wrap skips. */
  usedBytes: number
  /** Data capacity in bytes. */
  capacity: number
}

/** Bytes a record of `payloadBytes` occupies in the ring: u32 prefix + payload padded to 4. */
function recordSize (payloadBytes: number): number {
  return 4 + ((payloadBytes + 3) & ~3)
}

/**
 * SPSC ring buffer of length-prefixed byte records in a SharedArrayBuffer.
 * See the module comment for the layout, invariants and memory ordering.
 *
 * ```ts
 * // main thread (producer)
 * const ring = RingBuffer.create(1 << 20)
 * worker.postMessage({ sab: ring.sab })
 * while (!ring.tryWrite(frame)) await ring.waitForSpace(frame.length)
 *
 * // worker (consumer)
 * const ring = RingBuffer.attach(sab)
 * for (;;) {
 *   ring.drain((rec) => { handle(rec) })   // rec is a view: copy to keep it
 *   if (await ring.waitForData() === 'closed') break   // closed and drained
 * }
 * ```
 */
export class RingBuffer {
  /** The shared memory (header + data); send it to the other thread and {@link RingBuffer.attach} it there. */
  readonly sab: SharedArrayBuffer
  /** Where in {@link sab} the ring starts (its header): 0, or the offset it was created at (see {@link RingPlace}). */
  readonly byteOffset: number
  /** Data bytes; a power of two, >= 1024. */
  readonly capacity: number
  /**
   * Largest payload one record may carry: `capacity / 2 - 4` bytes. Bounding a
   * record (prefix included) to half the ring guarantees it fits after a wrap
   * once the consumer has caught up (see the module comment).
   */
  readonly maxRecordBytes: number

  readonly #i32: Int32Array
  readonly #f64: Float64Array
  readonly #u8: Uint8Array
  /** The data area as 32-bit words (records start 4-aligned): see #headWords. */
  readonly #d32: Int32Array
  /** The last record head seen by #append, and its 32-bit word view once it came twice in a row. */
  #head8: Uint8Array | undefined
  #head32: Int32Array | undefined
  readonly #dv: DataView
  readonly #mask: number
  readonly #doorbell: Doorbell | undefined
  readonly #keepAlive: boolean

  // ---- producer-local state (meaningful on the producer's instance only) ----
  /** Write position including appended-but-unpublished records. */
  #head: number
  /** Last value of HEAD we stored. */
  #publishedHead: number
  /** Last TAIL we loaded; reloaded only when the cached view says "full". */
  #tailCache: number
  #pendingRecords = 0
  #pendingBytes = 0
  #spaceWaiters = 0

  // ---- consumer-local state ----
  /** Read position; TAIL is stored from it at the end of each drain. */
  #tail: number
  #dataWaiters = 0
  #draining = false

  /** Byte offset of the data area in {@link sab} (byteOffset + header). */
  readonly #data: number

  private constructor (sab: SharedArrayBuffer, byteOffset: number, capacity: number, options: RingBufferOptions | undefined) {
    this.sab = sab
    this.byteOffset = byteOffset
    this.capacity = capacity
    this.maxRecordBytes = capacity / 2 - 4
    this.#mask = capacity - 1
    this.#data = byteOffset + HEADER_BYTES
    this.#i32 = new Int32Array(sab, byteOffset, HEADER_BYTES / 4)
    this.#f64 = new Float64Array(sab, byteOffset, HEADER_BYTES / 8)
    this.#u8 = new Uint8Array(sab, this.#data, capacity)
    this.#d32 = new Int32Array(sab, this.#data, capacity >> 2)
    this.#dv = new DataView(sab, this.#data, capacity)
    this.#doorbell = options?.doorbell
    this.#keepAlive = options?.keepAlive ?? true
    // Atomics.load (seq-cst): pick up the positions as of attach time. The
    // owner of each word keeps it in a local from here on (the producer owns
    // HEAD, the consumer TAIL), so these loads only matter for the side that
    // owns the word; the other side reloads it whenever it needs it.
    this.#head = Atomics.load(this.#i32, HEAD) >>> 0
    this.#publishedHead = this.#head
    this.#tail = Atomics.load(this.#i32, TAIL) >>> 0
    this.#tailCache = this.#tail
  }

  /**
   * Allocate a new ring with `capacityBytes` of data space, rounded up to a
   * power of two and to at least 1024. The SharedArrayBuffer is
   * `capacity + 192` bytes (header).
   *
   * @param capacityBytes - requested data bytes: an integer in [1, 2^30].
   * @throws RangeError if `capacityBytes` is not an integer in [1, 2^30].
   */
  static create (capacityBytes: number, options?: RingBufferOptions, place?: RingPlace): RingBuffer {
    const capacity = ringCapacity(capacityBytes)
    let sab: SharedArrayBuffer
    let offset = 0
    if (place === undefined) {
      sab = new SharedArrayBuffer(HEADER_BYTES + capacity)
    } else {
      sab = place.sab
      offset = place.byteOffset
      if (!(sab instanceof SharedArrayBuffer)) throw new TypeError('RingBuffer.create: place.sab must be a SharedArrayBuffer')
      if (!Number.isInteger(offset) || offset < 0 || offset % 8 !== 0 || offset + HEADER_BYTES + capacity > sab.byteLength) {
        throw new RangeError(`RingBuffer.create: a ring of ${capacity} bytes does not fit at byte ${String(offset)} (a multiple of 8) of a ${sab.byteLength}-byte buffer`)
      }
    }
    const i32 = new Int32Array(sab, offset, HEADER_BYTES / 4)
    // Plain initialisation: nobody else can see `sab` yet; postMessage of it
    // to another thread synchronises these writes with that thread's attach.
    // (A placed ring's memory is fresh too: its header words are all 0.)
    i32[MAGIC] = MAGIC_VALUE
    i32[VERSION] = LAYOUT_VERSION
    i32[CAPACITY] = capacity
    return new RingBuffer(sab, offset, capacity, options)
  }

  /**
   * Bytes a ring of `capacityBytes` (rounded as {@link create} does) takes in
   * shared memory, header included: what a {@link RingPlace} must leave it.
   * @throws RangeError as {@link create}.
   */
  static bytesFor (capacityBytes: number): number {
    return HEADER_BYTES + ringCapacity(capacityBytes)
  }

  /**
   * The other thread's view of a ring made by {@link RingBuffer.create}: its
   * SharedArrayBuffer, or the {@link RingPlace} it was created at.
   * @throws TypeError if there is no ring buffer of this layout version there
   *   (e.g. a stale build on one side).
   */
  static attach (where: SharedArrayBuffer | RingPlace, options?: RingBufferOptions): RingBuffer {
    const sab = where instanceof SharedArrayBuffer ? where : where?.sab
    const offset = where instanceof SharedArrayBuffer ? 0 : where?.byteOffset
    if (!(sab instanceof SharedArrayBuffer) || !Number.isInteger(offset) || offset < 0 || offset % 8 !== 0 || sab.byteLength < offset + HEADER_BYTES + MIN_CAPACITY) {
      throw new TypeError('RingBuffer.attach: expected a SharedArrayBuffer (or a place in one) from RingBuffer.create()')
    }
    const i32 = new Int32Array(sab, offset, HEADER_BYTES / 4)
    // Atomics.load (seq-cst): these words are constant after create(), and a
    // SAB that arrived by postMessage is already synchronised with it; the
    // atomic loads keep the check well-defined however the SAB was shared.
    const magic = Atomics.load(i32, MAGIC)
    const version = Atomics.load(i32, VERSION)
    const capacity = Atomics.load(i32, CAPACITY)
    if (magic !== MAGIC_VALUE) throw new TypeError('RingBuffer.attach: buffer is not a ring buffer (bad magic)')
    if (version !== LAYOUT_VERSION) {
      throw new TypeError(`RingBuffer.attach: layout version ${version}, this build expects ${LAYOUT_VERSION}`)
    }
    // A ring of its own fills its buffer exactly; a placed one fits in it.
    const fits = offset === 0 && where instanceof SharedArrayBuffer ? sab.byteLength === HEADER_BYTES + capacity : offset + HEADER_BYTES + capacity <= sab.byteLength
    if (capacity < MIN_CAPACITY || (capacity & (capacity - 1)) !== 0 || !fits) {
      throw new TypeError(`RingBuffer.attach: corrupt header (capacity ${capacity}, byteLength ${sab.byteLength}, at ${offset})`)
    }
    return new RingBuffer(sab, offset, capacity, options)
  }

  /**
   * Bytes a record with a `payloadBytes` payload occupies in the ring
   * (4-byte length prefix + payload padded to 4), excluding a possible wrap skip.
   */
  static recordSize (payloadBytes: number): number {
    return recordSize(payloadBytes)
  }

  // ======================= producer (one thread) =======================

  /**
   * Append one record (a copy of `bytes`) and publish it (together with any
   * records appended before it).
   * @returns false when there is not enough space now (the full signal; see
   *   {@link waitForSpace}) or the ring is closed.
   * @throws RangeError if `bytes.length > maxRecordBytes`.
   */
  tryWrite (bytes: Uint8Array): boolean {
    if (!this.#append(bytes, bytes.length, undefined, bytes.length)) return false
    this.publish()
    return true
  }

  /**
   * Like {@link tryWrite}, but the record is the concatenation `a ‖ b`
   * (header + body), copied straight into the ring without a concat.
   * @throws RangeError if `a.length + b.length > maxRecordBytes`.
   */
  tryWrite2 (a: Uint8Array, b: Uint8Array): boolean {
    if (!this.#append(a, a.length, b, a.length + b.length)) return false
    this.publish()
    return true
  }

  /**
   * Like {@link tryWrite2} with the first `headLength` bytes of `head` as
   * `a`: a header encoded into a reused scratch buffer goes in without a
   * `subarray()` view (one object per record on a host's send path).
   * @throws RangeError if `headLength` is not an integer in 0..head.length,
   *   or the record exceeds maxRecordBytes.
   */
  tryWriteHeaded (head: Uint8Array, headLength: number, body: Uint8Array): boolean {
    if (!(headLength >= 0 && headLength <= head.length && Number.isInteger(headLength))) {
      throw new RangeError(`headLength must be an integer in 0..${head.length}, got ${String(headLength)}`)
    }
    if (!this.#append(head, headLength, body, headLength + body.length)) return false
    this.publish()
    return true
  }

  /**
   * Batch form of {@link tryWrite}: append one record without publishing it.
   * The consumer sees nothing until {@link publish}, which makes every
   * appended record visible at once.
   * @returns false when there is not enough space or the ring is closed.
   * @throws RangeError if `bytes.length > maxRecordBytes`.
   */
  tryAppend (bytes: Uint8Array): boolean {
    return this.#append(bytes, bytes.length, undefined, bytes.length)
  }

  /**
   * Like {@link tryAppend} for the concatenation `a ‖ b`.
   * @throws RangeError if `a.length + b.length > maxRecordBytes`.
   */
  tryAppend2 (a: Uint8Array, b: Uint8Array): boolean {
    return this.#append(a, a.length, b, a.length + b.length)
  }

  /**
   * Make all appended records visible to the consumer: one Atomics store, at
   * most one notify (only if the consumer sleeps), and one doorbell ring if
   * configured. A no-op when nothing is pending.
   */
  publish (): void {
    const head = this.#head
    if (head === this.#publishedHead) return
    // Owner-only plain writes, ordered before the HEAD store below, so a
    // consumer that sees the new HEAD also sees counters at least this big.
    const f64 = this.#f64
    f64[F_RECORDS_WRITTEN] = (f64[F_RECORDS_WRITTEN] as number) + this.#pendingRecords
    f64[F_BYTES_WRITTEN] = (f64[F_BYTES_WRITTEN] as number) + this.#pendingBytes
    this.#pendingRecords = 0
    this.#pendingBytes = 0
    this.#publishedHead = head
    // Atomics.store (seq-cst) = the release of the records: every plain write
    // of payload and length prefixes above happens-before a consumer's
    // Atomics.load(HEAD) that reads this value. It is also the producer half
    // of the Dekker pair with waitForData (store HEAD, then load SLEEPING).
    Atomics.store(this.#i32, HEAD, head | 0)
    // Atomics.load (seq-cst), after the HEAD store: if the consumer's re-check
    // of HEAD in waitForData missed our store, its SLEEPING=1 store precedes
    // that re-check and so precedes this load (sequential consistency), and
    // we see 1 here. Either it sees the data or we notify: no lost wake-up.
    if (Atomics.load(this.#i32, CONSUMER_SLEEPING) !== 0) {
      // Atomics.notify: wake the consumer parked on HEAD. If it has not
      // enqueued yet, its waitAsync sees HEAD != the value it compares and
      // returns 'not-equal'.
      Atomics.notify(this.#i32, HEAD)
    }
    this.#doorbell?.ring()
  }

  /**
   * True if a record with a `payloadBytes` payload would fit now (including
   * a wrap skip). Producer side. Does not check `closed`.
   * @throws RangeError if `payloadBytes > maxRecordBytes` or negative.
   */
  canWrite (payloadBytes: number): boolean {
    this.#checkPayload(payloadBytes)
    return this.#fits(recordSize(payloadBytes))
  }

  /**
   * Resolve true when a record with a `bytes`-byte payload fits (so the next
   * tryWrite of that size succeeds), false on timeout or close. Publishes any
   * appended-but-unpublished records first: the consumer cannot free space
   * for records it cannot see. Sleeps in `Atomics.waitAsync` on TAIL; the
   * consumer notifies only while a producer waits. A pending wait keeps the
   * event loop alive, like a timer.
   *
   * @param bytes - payload size of the record to be written.
   * @param timeoutMs - @default Infinity
   * @throws RangeError if `bytes` is not in [0, maxRecordBytes] or the timeout is negative/NaN.
   */
  waitForSpace (bytes: number, timeoutMs?: number): Promise<boolean> {
    // Bad arguments throw synchronously (STYLE.md §3), not as a rejection.
    this.#checkPayload(bytes)
    return this.#waitForSpace(recordSize(bytes), checkTimeout(timeoutMs))
  }

  async #waitForSpace (need: number, timeout: number): Promise<boolean> {
    this.publish()
    if (this.closed) return false
    if (this.#fits(need)) return true
    const i32 = this.#i32
    const deadline = performance.now() + timeout
    // Atomics.store (seq-cst): producer half of the Dekker pair with drain()
    // (which stores TAIL, then loads PRODUCER_WAITING). Ordered before our
    // re-load of TAIL below, so if that load misses the consumer's TAIL
    // store, the consumer's load of PRODUCER_WAITING sees our need and it
    // notifies if the space it just freed makes the record fit.
    // The word holds the smallest need of the pending waits (> 0: a record
    // is at least 4 bytes), so a consumer wakes us only once enough is free
    // instead of on every release (an Atomics.notify of a waitAsync costs
    // ~25 µs on a loaded machine: per released record, that was ~5 % of an
    // IO worker flooding 64 KiB messages). It never grows while waits are
    // pending, so no waiter's need is ever above it.
    const word = this.#spaceWaiters++ === 0 ? need : Math.min(need, Atomics.load(i32, PRODUCER_WAITING))
    Atomics.store(i32, PRODUCER_WAITING, word)
    try {
      for (;;) {
        // Atomics.load (seq-cst): re-read TAIL after announcing the wait.
        const tail = Atomics.load(i32, TAIL)
        this.#tailCache = tail >>> 0
        if (this.#fitsWith(this.#tailCache, need)) return true
        // Atomics.load (seq-cst): close() stores CLOSED before it notifies.
        if (Atomics.load(i32, CLOSED) !== 0) return false
        const remaining = deadline - performance.now()
        if (remaining <= 0) return false
        const r = waitAsyncRef(i32, TAIL, tail, remaining, this.#keepAlive)
        if (!r.async) {
          if (r.value === 'timed-out') return false
          continue // 'not-equal': TAIL moved between the load and the wait
        }
        // Atomics.load (seq-cst) *after* enqueueing: close() stores CLOSED
        // and then notifies TAIL. If that notify ran before we enqueued, this
        // load follows its CLOSED store and sees 1; we then wake ourselves
        // (Atomics.notify: only this producer waits on TAIL). Otherwise we
        // were enqueued in time and close()'s own notify wakes us.
        if (Atomics.load(i32, CLOSED) !== 0) Atomics.notify(i32, TAIL)
        const v = await r.value
        // #fits reloads TAIL: space may have been freed as the timeout fired.
        if (v === 'timed-out' && !this.#fits(need)) return false
      }
    } finally {
      // Atomics.store (seq-cst): the consumer stops notifying; a drain that
      // still read 1 sends one harmless extra notify.
      if (--this.#spaceWaiters === 0) Atomics.store(i32, PRODUCER_WAITING, 0)
    }
  }

  // ======================= consumer (one thread) =======================

  /**
   * Call `fn` for each available record, oldest first, up to `maxRecords`;
   * then release all consumed space with ONE TAIL store (and notify the
   * producer only if it waits for space).
   *
   * `record` is a VIEW into the shared ring, valid only during the call:
   * copy it (`record.slice()`) to keep it. If `fn` returns false, draining
   * stops after that record (it counts as consumed). If `fn` throws, the
   * records before it and the throwing record are consumed, and the error
   * propagates.
   *
   * @param maxRecords - @default Infinity
   * @returns the number of records consumed.
   * @throws Error if the ring memory is corrupt (a length that runs past the
   *   end), or if called re-entrantly from `fn`.
   */
  drain (fn: (record: Uint8Array) => boolean | void, maxRecords = Infinity): number {
    // Atomics.load (seq-cst) = the acquire of the producer's records: every
    // length prefix and payload the producer wrote before storing this HEAD
    // value is visible to the plain reads below.
    const head = Atomics.load(this.#i32, HEAD) >>> 0
    let tail = this.#tail
    if (tail === head) return 0
    if (this.#draining) throw new Error('RingBuffer.drain: called re-entrantly from its own callback')
    this.#draining = true
    const dv = this.#dv
    const mask = this.#mask
    const capacity = this.capacity
    const sab = this.sab
    let n = 0
    try {
      while (tail !== head && n < maxRecords) {
        const off = tail & mask
        const len = dv.getUint32(off, true)
        if (len === WRAP) {
          // The rest of the data area is skip space; the next record is at 0.
          tail = (tail + capacity - off) >>> 0
          continue
        }
        if (off + 4 + len > capacity) {
          throw new Error(`RingBuffer: corrupt record length ${len} at offset ${off}`)
        }
        // Advance before calling fn, so a throwing fn still consumes its record.
        tail = (tail + 4 + ((len + 3) & ~3)) >>> 0
        n++
        if (fn(new Uint8Array(sab, this.#data + off + 4, len)) === false) break
      }
    } finally {
      this.#draining = false
      if (tail !== this.#tail) this.#release(tail, n)
    }
    return n
  }

  /**
   * Consumer, cursor mode (a retransmit window): the position of the oldest
   * record not yet released, i.e. where {@link peek} starts after a reset.
   * Records stay in the ring until {@link releaseTo} passes them, so they can
   * be read again (resent) any number of times.
   */
  get readStart (): number { return this.#tail }

  /**
   * Consumer handover: another instance (another thread) consumed from this
   * ring since this one last did; take the read position from shared memory.
   * Call when this instance becomes the consumer again, while no other one
   * consumes. Without it the instance resumed at its own stale position:
   * released records were read as if they were live (resent, or misread as
   * corrupt once overwritten), and a later release moved TAIL backwards.
   */
  resyncConsumer (): void {
    // Atomics.load (seq-cst) = acquire of the other consumer's last TAIL store.
    this.#tail = Atomics.load(this.#i32, TAIL) >>> 0
  }

  /**
   * Consumer, cursor mode: visit published records from `cursor` (a position
   * returned by {@link readStart} or an earlier peek) WITHOUT releasing them.
   * `fn(record, end)` gets a view of the record (valid until it is released)
   * and the position just after it; returning false stops BEFORE that record
   * (it is not counted and the returned cursor points at it).
   * @returns the position after the last record visited.
   * @throws Error if the ring memory is corrupt.
   */
  peek (cursor: number, fn: (record: Uint8Array, end: number) => boolean | void): number {
    const sab = this.sab
    return this.peekAt(cursor, (at, len, end) => fn(new Uint8Array(sab, at, len), end))
  }

  /**
   * {@link peek} without a view per record: `fn(at, len, end)` gets the byte
   * offset of the record's payload in {@link sab}, its length, and the
   * position after it. For hot loops that read a few fields through their
   * own DataView (a send window walking acknowledged records): one typed
   * array allocation less per record.
   * @returns the position after the last record visited.
   * @throws Error if the ring memory is corrupt.
   */
  peekAt (cursor: number, fn: (at: number, len: number, end: number) => boolean | void): number {
    // Atomics.load (seq-cst) = acquire of the producer's records, as in drain().
    const head = Atomics.load(this.#i32, HEAD) >>> 0
    let pos = cursor >>> 0
    const dv = this.#dv
    const mask = this.#mask
    const capacity = this.capacity
    while (pos !== head) {
      const off = pos & mask
      const len = dv.getUint32(off, true)
      if (len === WRAP) { pos = (pos + capacity - off) >>> 0; continue }
      if (off + 4 + len > capacity) throw new Error(`RingBuffer: corrupt record length ${len} at offset ${off}`)
      const end = (pos + 4 + ((len + 3) & ~3)) >>> 0
      if (fn(this.#data + off + 4, len, end) === false) break
      pos = end
    }
    return pos
  }

  /**
   * Consumer, cursor mode: hand the space of every record before position
   * `pos` (a record boundary from {@link peek}) back to the producer, with
   * one TAIL store; `records` is how many records that is (for the counter).
   */
  releaseTo (pos: number, records: number): void {
    if ((pos >>> 0) === this.#tail) return
    this.#release(pos >>> 0, records)
  }

  /** Bytes between the oldest unreleased record and `cursor` (a peek position): what is read but not released. */
  bytesBefore (cursor: number): number { return ((cursor >>> 0) - this.#tail) >>> 0 }

  /** Consumer, cursor mode: true if a published record lies at or after `cursor`. */
  hasDataAt (cursor: number): boolean {
    // Atomics.load (seq-cst): see isEmpty().
    return (Atomics.load(this.#i32, HEAD) >>> 0) !== (cursor >>> 0)
  }

  /**
   * Resolve `'ok'` when the ring is non-empty, `'closed'` when it is closed
   * and empty, `'timed-out'` after `timeoutMs`. Consumer side. Uses the same
   * no-lost-wake-up protocol as {@link Doorbell.sleep}, with HEAD as the
   * sequence word. A pending wait keeps the event loop alive, like a timer.
   *
   * @param timeoutMs - @default Infinity
   * @throws RangeError on a negative or NaN timeout.
   */
  waitForData (timeoutMs?: number): Promise<'ok' | 'timed-out' | 'closed'> {
    return this.#waitForData(checkTimeout(timeoutMs))
  }

  async #waitForData (timeout: number): Promise<'ok' | 'timed-out' | 'closed'> {
    const i32 = this.#i32
    // Atomics.load (seq-cst): fast path, data already published.
    if ((Atomics.load(i32, HEAD) >>> 0) !== this.#tail) return 'ok'
    const deadline = performance.now() + timeout
    // Atomics.store (seq-cst): consumer half of the Dekker pair with
    // publish() (store HEAD, then load SLEEPING). Ordered before the HEAD
    // re-load below: if that load misses a publish, the publisher's load of
    // SLEEPING follows our store and sees 1, so it notifies.
    if (this.#dataWaiters++ === 0) Atomics.store(i32, CONSUMER_SLEEPING, 1)
    try {
      for (;;) {
        // Atomics.load (seq-cst): HEAD is both the data and the sequence word.
        const head = Atomics.load(i32, HEAD)
        if ((head >>> 0) !== this.#tail) return 'ok'
        // Atomics.load (seq-cst): see close(); checked after the data so a
        // closed ring is drained to the end before reporting 'closed'.
        if (Atomics.load(i32, CLOSED) !== 0) return 'closed'
        const remaining = deadline - performance.now()
        if (remaining <= 0) return 'timed-out'
        const r = waitAsyncRef(i32, HEAD, head, remaining, this.#keepAlive)
        if (!r.async) {
          if (r.value === 'timed-out') return 'timed-out'
          continue // 'not-equal': a publish landed between the load and the wait
        }
        // Atomics.load (seq-cst) after enqueueing closes the close() race:
        // close() does store CLOSED, then notify HEAD. If its notify ran
        // before we enqueued, this load comes after its store and sees 1, and
        // we wake ourselves (only this consumer waits on HEAD).
        if (Atomics.load(i32, CLOSED) !== 0) Atomics.notify(i32, HEAD)
        const v = await r.value
        // Atomics.load (seq-cst): a publish may race the timeout.
        if (v === 'timed-out' && (Atomics.load(i32, HEAD) >>> 0) === this.#tail) {
          return Atomics.load(i32, CLOSED) !== 0 ? 'closed' : 'timed-out'
        }
      }
    } finally {
      // Atomics.store (seq-cst): producers stop notifying; a publish that
      // still read 1 sends one harmless extra notify.
      if (--this.#dataWaiters === 0) Atomics.store(i32, CONSUMER_SLEEPING, 0)
    }
  }

  // ======================= either side =======================

  /**
   * True if no published record is waiting (as of the last publish/drain;
   * records appended but not yet published do not count).
   */
  isEmpty (): boolean {
    // Atomics.load x2 (seq-cst): a consistent-enough snapshot; each word has
    // one writer, so the answer is exact on that writer's thread and may be
    // one step stale on the other.
    return Atomics.load(this.#i32, HEAD) === Atomics.load(this.#i32, TAIL)
  }

  /** Bytes occupied by published, unconsumed records, incl. length prefixes, padding and wrap skips. */
  usedBytes (): number {
    // Atomics.load x2 (seq-cst): see isEmpty(). Free-running uint32
    // difference; never exceeds capacity (< 2^32).
    return (Atomics.load(this.#i32, HEAD) - Atomics.load(this.#i32, TAIL)) >>> 0
  }

  /**
   * Mark the ring closed and wake every waiter on both sides (this thread's
   * and the other's). Idempotent; either side may call it. Records appended
   * on this instance are published first; published records stay drainable.
   * Afterwards writes return false, waitForSpace resolves false, and
   * waitForData resolves 'closed' once the ring is empty.
   */
  close (): void {
    this.publish()
    // Atomics.store (seq-cst) before the notifies: a waiter either enqueued
    // before our notify (and is woken by it) or re-checks CLOSED after
    // enqueueing and sees 1 (see waitForData/waitForSpace).
    Atomics.store(this.#i32, CLOSED, 1)
    // Atomics.notify x2: wake the consumer (HEAD) and the producer (TAIL).
    Atomics.notify(this.#i32, HEAD)
    Atomics.notify(this.#i32, TAIL)
    this.#doorbell?.ring()
  }

  /** True once either side has called {@link close}. */
  get closed (): boolean {
    // Atomics.load (seq-cst): observes a close() from the other thread.
    return Atomics.load(this.#i32, CLOSED) !== 0
  }

  /**
   * Cumulative counters kept in the shared header, readable from either
   * thread. A counter owned by the other thread may be one publish/drain old.
   */
  stats (): RingBufferStats {
    const f64 = this.#f64
    // Plain reads of owner-written float64 slots (module comment, "Counters").
    return {
      recordsWritten: f64[F_RECORDS_WRITTEN] as number,
      bytesWritten: f64[F_BYTES_WRITTEN] as number,
      recordsRead: f64[F_RECORDS_READ] as number,
      fullEvents: f64[F_FULL_EVENTS] as number,
      usedBytes: this.usedBytes(),
      capacity: this.capacity,
    }
  }

  // ======================= internals =======================

  #checkPayload (bytes: number): void {
    if (!(bytes >= 0 && bytes <= this.maxRecordBytes) || !Number.isInteger(bytes)) {
      throw new RangeError(`record of ${String(bytes)} bytes: must be an integer in [0, maxRecordBytes=${this.maxRecordBytes}]`)
    }
  }

  /** Producer: does a record of `need` bytes (prefix+padding) fit if TAIL is `tail`? */
  #fitsWith (tail: number, need: number): boolean {
    const off = this.#head & this.#mask
    const toEnd = this.capacity - off
    // A record that does not fit before the end also consumes the skip.
    const total = toEnd < need ? toEnd + need : need
    return this.capacity - ((this.#head - tail) >>> 0) >= total
  }

  /** Producer: does a record of `need` bytes fit now? Reloads TAIL only if the cached one says no. */
  #fits (need: number): boolean {
    if (this.#fitsWith(this.#tailCache, need)) return true
    // Atomics.load (seq-cst) = acquire of the consumer's release: the bytes
    // it finished reading before storing TAIL may now be overwritten.
    this.#tailCache = Atomics.load(this.#i32, TAIL) >>> 0
    return this.#fitsWith(this.#tailCache, need)
  }

  /**
   * A 32-bit view of `a` when it is the same head buffer as last time (a
   * caller's reused scratch) and word-aligned; undefined otherwise, so a
   * caller passing a new view each time allocates nothing here.
   */
  #headWords (a: Uint8Array): Int32Array | undefined {
    if (a !== this.#head8) {
      this.#head8 = a
      this.#head32 = undefined
      return undefined
    }
    if (this.#head32 === undefined && (a.byteOffset & 3) === 0 && a.length >= 4) this.#head32 = new Int32Array(a.buffer, a.byteOffset, a.length >> 2)
    return this.#head32
  }

  /** Append the record `a[0, aLen) ‖ b` (`len` = aLen + b's length). */
  #append (a: Uint8Array, aLen: number, b: Uint8Array | undefined, len: number): boolean {
    if (len > this.maxRecordBytes) {
      throw new RangeError(`record of ${len} bytes exceeds maxRecordBytes=${this.maxRecordBytes}`)
    }
    // Atomics.load (seq-cst): observe a close() from either thread before
    // writing; a write racing a concurrent close may still land, and stays
    // drainable like any record published before the close.
    if (Atomics.load(this.#i32, CLOSED) !== 0) return false
    const need = recordSize(len)
    const capacity = this.capacity
    let head = this.#head
    let off = head & this.#mask
    const toEnd = capacity - off
    const skip = toEnd < need ? toEnd : 0
    if (capacity - ((head - this.#tailCache) >>> 0) < skip + need) {
      // Atomics.load (seq-cst): refresh the consumer's TAIL only when the
      // cached one says "full" (keeps the hot path off the consumer's line).
      this.#tailCache = Atomics.load(this.#i32, TAIL) >>> 0
      if (capacity - ((head - this.#tailCache) >>> 0) < skip + need) {
        this.#f64[F_FULL_EVENTS] = (this.#f64[F_FULL_EVENTS] as number) + 1
        return false
      }
    }
    const dv = this.#dv
    if (skip !== 0) {
      dv.setUint32(off, WRAP, true)
      head = (head + skip) >>> 0
      off = 0
    }
    // Plain writes; published by the HEAD store in publish().
    dv.setUint32(off, len, true)
    const u8 = this.#u8
    const whole = aLen === a.length
    if (len < FILL_MIN_BYTES) {
      // Small records (the common case) stay on the inlined set() path.
      const a32 = this.#headWords(a)
      const words = (aLen + 3) >> 2
      if (a32 !== undefined && words <= a32.length) {
        // A reused header scratch (the host's send path): whole words into the
        // word-aligned record, 2× faster than bytes or set() into shared
        // memory. Up to 3 bytes past aLen land where b goes next, or in the
        // record's padding (its size is rounded up to 4).
        const d32 = this.#d32
        const base = (off + 4) >> 2
        for (let i = 0; i < words; i++) d32[base + i] = a32[i] as number
      } else if (whole) u8.set(a, off + 4)
      else for (let i = 0; i < aLen; i++) u8[off + 4 + i] = a[i] as number
      if (b !== undefined) u8.set(b, off + 4 + aLen)
    } else {
      copyBytes(u8, off + 4, whole ? a : a.subarray(0, aLen))
      if (b !== undefined) copyBytes(u8, off + 4 + aLen, b)
    }
    this.#head = (head + need) >>> 0
    this.#pendingRecords++
    this.#pendingBytes += len
    return true
  }

  /**
   * Consumer: would a record of `need` bytes (prefix + padding) fit with TAIL
   * at `tail`? The producer's test ({@link #fitsWith}) with the HEAD it last
   * published. Appends made since only raise what the record needs (they use
   * space, or pay the wrap skip themselves), so a stale HEAD errs towards a
   * spurious notify, never a missed one.
   */
  #fitsFor (tail: number, need: number): boolean {
    // Atomics.load (seq-cst): the producer's latest published HEAD.
    const head = Atomics.load(this.#i32, HEAD) >>> 0
    const toEnd = this.capacity - (head & this.#mask)
    const total = toEnd < need ? toEnd + need : need
    return this.capacity - ((head - tail) >>> 0) >= total
  }

  #release (tail: number, records: number): void {
    this.#tail = tail
    const f64 = this.#f64
    // Owner-only plain write, ordered before the TAIL store.
    f64[F_RECORDS_READ] = (f64[F_RECORDS_READ] as number) + records
    // Atomics.store (seq-cst) = release of the consumed bytes back to the
    // producer: our plain reads of them happen-before the producer's
    // Atomics.load(TAIL) that sees this value and lets it overwrite them.
    // Also the consumer half of the Dekker pair with waitForSpace.
    Atomics.store(this.#i32, TAIL, tail | 0)
    // Atomics.load (seq-cst) after the TAIL store: if the producer's re-load
    // of TAIL in waitForSpace missed our store, its PRODUCER_WAITING store
    // precedes that load and hence this one, so we see its need and notify
    // if it now fits. If it does not fit with our TAIL, it did not fit for
    // the producer either, which then sleeps; a later release re-checks.
    const need = Atomics.load(this.#i32, PRODUCER_WAITING)
    if (need !== 0 && this.#fitsFor(tail, need)) {
      // Atomics.notify: wake the producer parked on TAIL (or make its
      // pending waitAsync see 'not-equal').
      Atomics.notify(this.#i32, TAIL)
    }
  }
}
