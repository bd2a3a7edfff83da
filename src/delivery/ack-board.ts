/**
 * The receive side's "how far has my application got" word for one peer,
 * shared by the host (writer: it dispatches messages to the application)
 * and the connection actor in an IO worker (reader: it turns progress into
 * ACK frames). A seqlock keeps (stream, seq) consistent: the reader never
 * sees a new stream with an old sequence number, which could ack messages
 * the application never took.
 *
 * ```
 *  i32[0] version   odd while the host writes
 *  i32[1] stream    the peer's stream epoch being acked
 *  i32[2] owner     IO worker index + 1 currently consuming this peer's send ring (| OWNER_BUSY while it reads or releases records)
 *  i32[3] urgent    bumped by the host when the ACK should go out now (the
 *                   sender waits on it, or much is unacknowledged); the
 *                   actor otherwise delays ACKs to ride on its own traffic
 *  i32[4] seq lo    (byte 16) highest sequence handed to the application,
 *  i32[5] seq hi    as two 32-bit halves written and read with Atomics: a
 *                   plain float64 read could be reordered past the closing
 *                   version load on weakly ordered CPUs (arm64) and escape
 *                   the seqlock check
 *  f64[3] committed (byte 24) send side: highest own sequence the host has
 *                   made durable; the actor sends nothing beyond it (so a
 *                   sender that crashes never put a number on the wire that
 *                   its restarted self would reuse). +Infinity without a
 *                   durable outbox.
 *  f64[5] rttMs     (byte 40) latest heartbeat RTT, written by the worker on
 *                   every pong, read by the host when asked (no wake-up);
 *                   -1 before the first (0 is a sample, not "none")
 *  f64[4] dropped   (byte 32) unreliable messages the actor discarded
 *                   oldest-first (sendQueue.policy 'drop-oldest'); written
 *                   by the worker only, read by the host for metrics.
 *  i32[12] waiting  (byte 48) 1 when the actor has stopped looking for
 *                   progress (the host took nothing for a while, see
 *                   PeerActor.ackDeadline): the host's next publish
 *                   takes it and prompts the ACK (markUrgent + doorbell)
 *  i32[13] parked   (byte 52) send side: 1 while the actor cannot send the
 *                   reliable frames it has queued (no credit left, or its
 *                   socket is write-blocked); the host's doorbell rings for
 *                   new ones would only wake the worker to find that out.
 *                   The worker rings itself when it ends (an ACK, a
 *                   writable socket) and clears it on attach and detach.
 *  i32[14..21]     (byte 56) receive side, under the seqlock with stream
 *   discarded       and seq: up to MAX_DISCARDED seqs (lo, hi pairs) of
 *                   that stream, one of each of the latest chunked messages
 *                   the host discarded unfinished (their first chunks went
 *                   to this node's previous process, or they outgrew
 *                   maxMessageBytes), 0 for none. They ride in the ACK so
 *                   the sender reports those messages `undelivered` instead
 *                   of taking the acknowledgement of their chunks as
 *                   delivery. Several: a restart cuts one message per lane.
 *  i32[22]  prev    (byte 88) receive side, under the seqlock: the stream
 *  i32[23]  stream  the host left when it last switched to another one,
 *  i32[24]          and how far it had got in it (seq lo, hi); 0, 0, 0
 *                   before any switch. The slot above follows the epoch
 *                   heard from last, so a stale frame of another epoch
 *                   (relayed late) can take it before the actor acked the
 *                   live epoch's last frames: the actor sends this one's
 *                   ACK too (PeerActor #takeAck), or a live sender with
 *                   nothing more to send waited for its ACK until it sent
 *                   again or reconnected.
 *  i32[25+w] taken (byte 100) receive side, one per IO worker w: inbound
 *                   data records of this peer from worker w the host has
 *                   handled, counted after any publish they caused (see
 *                   PeerActor.hostBehind)
 * ```
 *
 * @module
 */

const VERSION = 0
const STREAM = 1
const OWNER = 2
/** Owner bit: the owner is reading or releasing the ring's records (PeerActor: send, ACK, retention, shedding): a claim waits for it. */
const OWNER_BUSY = 0x4000_0000
/** A claim waits at most this long (ms) for a busy owner: one still busy by then died in the act (its worker crashed). */
const CLAIM_WAIT_MS = 1_000
const URGENT = 3
const SEQ_LO = 4
const SEQ_HI = 5
const COMMITTED_F64 = 3
const DROPPED_F64 = 4
const RTT_F64 = 5
const WAITING = 12
const PARKED = 13
const DISC = 14
const PREV_STREAM = 22
const PREV_SEQ_LO = 23
const PREV_SEQ_HI = 24
const TAKEN = 25
/** Discarded messages an ACK can report at once (see the layout). */
export const MAX_DISCARDED = 4
/** Bytes before the per-worker `taken` counters. */
const BASE_BYTES = 100
/** A board's size for `workers` IO workers (a multiple of 8: the Float64Array view). */
function boardBytes (workers: number): number { return (BASE_BYTES + 4 * workers + 7) & ~7 }
const NONE: readonly number[] = []

/** One peer's ack board. */
export class AckBoard {
  readonly sab: SharedArrayBuffer
  readonly #i32: Int32Array
  readonly #f64: Float64Array
  /** Host: the last publish wrote discarded seqs (the slots hold some). One host writes a board. */
  #discards = false
  /** Host: the stream and seq of its last publish (for the prev slot). */
  #stream: number | undefined
  #seq = 0

  private constructor (sab: SharedArrayBuffer) {
    this.sab = sab
    this.#i32 = new Int32Array(sab, 0, sab.byteLength / 4)
    this.#f64 = new Float64Array(sab, 0, sab.byteLength / 8)
  }

  /**
   * @param durable - sends wait for {@link commit} before they may leave (durable outbox).
   * @param workers - IO workers that may hand this peer's records to the host (threads.io).
   */
  static create (durable = false, workers = 1): AckBoard {
    if (!(Number.isInteger(workers) && workers >= 1)) throw new RangeError(`AckBoard.create: workers must be a positive integer (got ${String(workers)})`)
    const b = new AckBoard(new SharedArrayBuffer(boardBytes(workers)))
    b.#f64[COMMITTED_F64] = durable ? 0 : Infinity
    b.#f64[RTT_F64] = -1
    return b
  }
  static attach (sab: SharedArrayBuffer): AckBoard {
    if (!(sab instanceof SharedArrayBuffer) || sab.byteLength < boardBytes(1) || sab.byteLength % 8 !== 0) throw new TypeError('AckBoard.attach: expected a SharedArrayBuffer from AckBoard.create()')
    return new AckBoard(sab)
  }

  /**
   * Host: one more inbound data record of this peer from IO worker `worker`
   * handled, after whatever it published. Atomics.add (seq-cst): a worker
   * that reads the new count ({@link taken}) and then the board sees that
   * publish.
   */
  noteTaken (worker: number): void { Atomics.add(this.#i32, this.#takenSlot(worker), 1) }

  /** Worker `worker`: its inbound data records of this peer the host has handled (wraps at 2^32; compare with `(a - b) | 0`). */
  taken (worker: number): number { return Atomics.load(this.#i32, this.#takenSlot(worker)) }

  #takenSlot (worker: number): number {
    const i = TAKEN + worker
    if (!(Number.isInteger(worker) && worker >= 0 && i < this.#i32.length)) throw new RangeError(`AckBoard: no taken counter for IO worker ${String(worker)}`)
    return i
  }

  /** Worker: whether the host's rings for new reliable frames are of no use now (see the layout: parked). */
  setParked (parked: boolean): void {
    // Atomics.store (seq-cst): against the host's load in parked(). Clearing
    // precedes the worker's own look at the ring (Atomics.load of HEAD), so a
    // host that still read 1 had published its frame before: it is seen.
    Atomics.store(this.#i32, PARKED, parked ? 1 : 0)
  }

  /** Host: see {@link setParked}. Read after publishing the frame it would ring for. */
  parked (): boolean {
    // Atomics.load (seq-cst): after the ring's HEAD store (the frame's publish).
    return Atomics.load(this.#i32, PARKED) !== 0
  }

  /**
   * Host: the application has taken everything of `stream` up to `seq`;
   * `discarded`: seqs of that stream's latest chunked messages discarded
   * unfinished, one each, at most MAX_DISCARDED (the latest ones are kept;
   * see the layout).
   */
  publish (stream: number, seq: number, discarded: readonly number[] = NONE): void {
    const i32 = this.#i32
    // Atomics.add (seq-cst): version becomes odd before the fields change, even after.
    Atomics.add(i32, VERSION, 1)
    if (this.#stream !== undefined && (stream | 0) !== (this.#stream | 0)) {
      // Left for another epoch: where the one left behind got to (see the layout: prev).
      Atomics.store(i32, PREV_STREAM, this.#stream | 0)
      Atomics.store(i32, PREV_SEQ_LO, this.#seq % 0x1_0000_0000 | 0)
      Atomics.store(i32, PREV_SEQ_HI, Math.floor(this.#seq / 0x1_0000_0000) | 0)
    }
    this.#stream = stream
    this.#seq = seq
    Atomics.store(i32, STREAM, stream | 0)
    Atomics.store(i32, SEQ_LO, seq % 0x1_0000_0000 | 0)
    Atomics.store(i32, SEQ_HI, Math.floor(seq / 0x1_0000_0000) | 0)
    // Nothing to write while no discard was ever published by this host (the common case: no extra stores per publish).
    if (discarded.length > 0 || this.#discards) {
      this.#discards = discarded.length > 0
      const skip = Math.max(0, discarded.length - MAX_DISCARDED)
      for (let i = 0; i < MAX_DISCARDED; i++) {
        const d = discarded[skip + i] ?? 0
        Atomics.store(i32, DISC + 2 * i, d % 0x1_0000_0000 | 0)
        Atomics.store(i32, DISC + 2 * i + 1, Math.floor(d / 0x1_0000_0000) | 0)
      }
    }
    Atomics.add(i32, VERSION, 1)
  }

  /** Current version (even when stable); cheap "anything new?" check for the reader. */
  version (): number { return Atomics.load(this.#i32, VERSION) }

  /**
   * Worker: a consistent (stream, seq, discarded) snapshot, or undefined if
   * nothing was published yet. `prev`: the stream the host last left for
   * another, and how far it got in it (undefined before any switch).
   */
  read (): { version: number; stream: number; seq: number; discarded: readonly number[]; prev: { stream: number; seq: number } | undefined } | undefined {
    const i32 = this.#i32
    for (;;) {
      const v1 = Atomics.load(i32, VERSION)
      if ((v1 & 1) !== 0) continue // writer mid-update: a few instructions, spin
      if (v1 === 0) return undefined
      const stream = Atomics.load(i32, STREAM) >>> 0
      const seq = (Atomics.load(i32, SEQ_HI) >>> 0) * 0x1_0000_0000 + (Atomics.load(i32, SEQ_LO) >>> 0)
      let discarded = NONE
      for (let i = 0; i < MAX_DISCARDED; i++) {
        const d = (Atomics.load(i32, DISC + 2 * i + 1) >>> 0) * 0x1_0000_0000 + (Atomics.load(i32, DISC + 2 * i) >>> 0)
        if (d !== 0) discarded = discarded === NONE ? [d] : [...discarded, d]
      }
      const prevSeq = (Atomics.load(i32, PREV_SEQ_HI) >>> 0) * 0x1_0000_0000 + (Atomics.load(i32, PREV_SEQ_LO) >>> 0)
      const prevStream = Atomics.load(i32, PREV_STREAM) >>> 0
      // Sequence numbers start at 1: seq 0 is "no switch yet" (or a stream left before anything was taken: nothing to ack).
      const prev = prevSeq === 0 ? undefined : { stream: prevStream, seq: prevSeq }
      // Atomics.load (seq-cst) after the field loads: if the version is unchanged, no write overlapped them.
      if (Atomics.load(i32, VERSION) === v1) return { version: v1, stream, seq, discarded, prev }
    }
  }

  /**
   * Host: own messages up to `seq` are durable and may be sent. Monotonic.
   * A plain float64 write: a stale read only delays a send until the next
   * doorbell, never sends early (the value only grows).
   */
  commit (seq: number): void {
    if (seq > (this.#f64[COMMITTED_F64] as number)) this.#f64[COMMITTED_F64] = seq
  }

  /** Worker: the highest own sequence number that may be sent. */
  committed (): number { return this.#f64[COMMITTED_F64] as number }

  /** Worker: the latest heartbeat RTT. */
  setRtt (ms: number): void { this.#f64[RTT_F64] = ms }
  /** The latest heartbeat RTT in ms (-1 before the first pong). */
  rtt (): number { return this.#f64[RTT_F64] as number }

  /** Worker: count unreliable messages it discarded. */
  addDropped (n: number): void { this.#f64[DROPPED_F64] = (this.#f64[DROPPED_F64] as number) + n }
  /** Unreliable messages the worker discarded (oldest first). */
  dropped (): number { return this.#f64[DROPPED_F64] as number }

  /**
   * Host: ask for the ACK of what is published (or about to be) without the
   * actor's usual delay. Publish and then mark, or mark and then publish:
   * the actor reads the token before the board, so either order ends in a prompt ACK.
   */
  markUrgent (): void { Atomics.add(this.#i32, URGENT, 1) }

  /**
   * Worker: stop polling for the host's progress; its next {@link publish}
   * prompts the ACK instead ({@link takeWaiting}). Atomics.store (seq-cst),
   * then the caller reads the board again: the Dekker pair with the host's
   * publish-then-takeWaiting, so progress published meanwhile is seen by
   * one side or the other, never by neither.
   */
  setWaiting (): void { Atomics.store(this.#i32, WAITING, 1) }

  /**
   * Host, after {@link publish}: true once if the actor stopped polling for
   * progress (then it must markUrgent and ring the worker's doorbell, or the
   * ACK waits for the next traffic to the peer).
   */
  takeWaiting (): boolean { return Atomics.load(this.#i32, WAITING) !== 0 && Atomics.exchange(this.#i32, WAITING, 0) === 1 }

  /** Worker: the urgency token; a value other than the last one acted on means "ACK now". */
  urgentToken (): number { return Atomics.load(this.#i32, URGENT) }

  /**
   * Worker: claim consumption of the peer's send ring (the newest attach
   * wins). Waits (blocking this worker, for as long as one batch, ACK or
   * retention pass takes) while another worker holds it busy (see
   * {@link holdBusy}): its release of records must land before this worker
   * reads the ring.
   */
  claim (workerIndex: number): void {
    const deadline = performance.now() + CLAIM_WAIT_MS
    for (;;) {
      const cur = Atomics.load(this.#i32, OWNER)
      if ((cur & OWNER_BUSY) !== 0 && performance.now() < deadline) {
        Atomics.wait(this.#i32, OWNER, cur, 1)
        continue
      }
      if (Atomics.compareExchange(this.#i32, OWNER, cur, workerIndex + 1) === cur) return
    }
  }

  /**
   * Worker: as the owner, keep other workers from claiming the ring while
   * this one reads or releases its records. False if `workerIndex` does not
   * own it. Pair with {@link endBusy}.
   */
  holdBusy (workerIndex: number): boolean {
    return Atomics.compareExchange(this.#i32, OWNER, workerIndex + 1, (workerIndex + 1) | OWNER_BUSY) === workerIndex + 1
  }

  /** Worker: the work {@link holdBusy} guarded is done. */
  endBusy (workerIndex: number): void {
    Atomics.compareExchange(this.#i32, OWNER, (workerIndex + 1) | OWNER_BUSY, workerIndex + 1)
    Atomics.notify(this.#i32, OWNER)
  }
  /** Worker: claim consumption of the ring only if no worker has (see PeerActor.adopt). True if claimed. */
  claimIfFree (workerIndex: number): boolean { return Atomics.compareExchange(this.#i32, OWNER, 0, workerIndex + 1) === 0 }
  /** Host: a dead worker consumes nothing: clear its claim (if it is still the claimant). */
  disown (workerIndex: number): void {
    Atomics.compareExchange(this.#i32, OWNER, workerIndex + 1, 0)
    // It may have died holding the ring busy.
    Atomics.compareExchange(this.#i32, OWNER, (workerIndex + 1) | OWNER_BUSY, 0)
    Atomics.notify(this.#i32, OWNER)
  }
  /** Host: the index of the IO worker consuming the ring now, if any (the one to wake for it). */
  owner (): number | undefined {
    const o = Atomics.load(this.#i32, OWNER) & ~OWNER_BUSY
    return o === 0 ? undefined : o - 1
  }

  /** Worker: does `workerIndex` currently consume the ring? */
  ownedBy (workerIndex: number): boolean { return (Atomics.load(this.#i32, OWNER) & ~OWNER_BUSY) === workerIndex + 1 }
}
