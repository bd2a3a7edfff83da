import type { RingBuffer } from '../ring/ring-buffer.js'
import { SEND_PREFIX_BYTES, SendRecordFlag, SendRecordReader } from './send-record.js'

/** What acknowledging released. */
export interface AckResult {
  /** Records released. */
  released: number
  /** A released record asked for an `acked` event (SendRecordFlag.NOTIFY_ACK). */
  notify: boolean
  /**
   * Sequence number of the last record released (0 if none): what the ACK
   * settled in this queue, whatever seq the peer named (a stale ACK of an
   * epoch whose seqs ran higher must not settle this queue's later records).
   */
  throughSeq: number
}

/** Messages given up on by {@link SendWindow.expire}. */
export interface Expired {
  stream: number
  /** Highest sequence number given up on: the receiver is told to skip to it. */
  throughSeq: number
  /** Ids of the messages given up on (first-chunk seqs), ascending, each once. */
  ids: number[]
  /** Publications among them whose first record was still queued: id → topic (see PeerActor.expire). */
  topics?: Map<number, string>
}

/** Credit assumed before the receiver's first ACK. */
export const INITIAL_WINDOW_BYTES = 256 * 1024

/**
 * The sending half of one reliable stream, over the peer's send queue ring
 * (sans-IO: no socket, no clock). The ring is the retransmit buffer:
 * records are read at a cursor and stay in the ring until the receiver's
 * cumulative ACK releases them, so the queue's byte bound is also the bound
 * on unacknowledged data, and a new connection (or a restarted IO worker)
 * resends from the oldest unacknowledged record.
 *
 * ```
 *   TAIL (readStart)          cursor                HEAD
 *   | sent, awaiting ACK      | queued, not yet sent |
 * ```
 *
 * The queue may hold records of more than one stream epoch: a sender
 * restarted with a durable outbox resends its stored messages in the epochs
 * they were sent in, and sends new ones in an epoch of its own (a new epoch
 * per process, so that no sequence number of an earlier process is ever
 * reused, even one sent without a durable copy). Stored messages can also
 * skip a seq (one whose outbox write failed was sent without a copy). A
 * record that does not follow the one before it (another epoch, or not the
 * next seq) goes out only once every record before it is acknowledged, and
 * after a base (see {@link base}): a receiver's ACK names one epoch, and one
 * that moved on to the next epoch could no longer acknowledge the rest of the
 * last; a receiver would take the skipped seq for a loss and drop what
 * follows it.
 */
export class SendWindow {
  readonly ring: RingBuffer
  readonly #rd: SendRecordReader
  #cursor: number
  #window = INITIAL_WINDOW_BYTES
  /** The next record sent must be preceded by the stream's base (see {@link base}). */
  #baseDue = true
  /** Epoch of the records taken since the last base (undefined: none since a rewind). */
  #epoch: number | undefined
  /** The seq the next record taken should have (after the last taken, or the base). */
  #nextSeq = 0

  /** The ring's whole SharedArrayBuffer as 32-bit words and as bytes: where {@link nextAt}'s frames are. */
  readonly words: { readonly i32: Int32Array; readonly u8: Uint8Array }

  constructor (ring: RingBuffer) {
    this.ring = ring
    this.#rd = new SendRecordReader(ring.sab)
    this.words = { i32: new Int32Array(ring.sab, 0, ring.sab.byteLength >> 2), u8: new Uint8Array(ring.sab) }
    this.#cursor = ring.readStart
  }

  /** Unacknowledged bytes already sent (ring positions, incl. framing). */
  get inFlightBytes (): number { return this.ring.bytesBefore(this.#cursor) }

  /** The receiver's credit: bytes that may be in flight. */
  get windowBytes (): number { return this.#window }

  /**
   * Bytes in flight that bulk-lane records (SendRecordFlag.BULK) may go out
   * behind, at most the credit (PeerActor sets it from the link's RTT; see
   * BULK_MIN_CREDIT_BYTES there). Infinity: the whole credit.
   */
  bulkLimit = Infinity

  /**
   * Records queued beyond the cursor, credit to send some, and the next one
   * allowed out (its seq at most `limitSeq`: see AckBoard.committed).
   */
  canSend (limitSeq = Infinity): boolean {
    if (!this.ring.hasDataAt(this.#cursor)) return false
    const inFlight = this.inFlightBytes
    if (inFlight >= this.#window) return false
    let ok = false
    this.ring.peekAt(this.#cursor, (at) => { ok = this.#rd.seq(at) <= limitSeq && (inFlight === 0 || (inFlight < this.#creditFor(at) && !this.#breakAt(at))); return false })
    return ok
  }

  /**
   * The record at `at` does not follow the records taken before it (another
   * epoch, or a seq skipped): it waits for their ACK, then goes behind a base.
   */
  #breakAt (at: number): boolean {
    return this.#epoch !== undefined && (this.#rd.stream(at) !== this.#epoch || this.#rd.seq(at) !== this.#nextSeq)
  }

  /** Records are queued beyond the cursor but the credit (its share for the next record) is used up: only an ACK lets them go. */
  get creditBlocked (): boolean {
    const inFlight = this.inFlightBytes
    if (inFlight === 0) return false
    let blocked = false
    this.ring.peekAt(this.#cursor, (at) => { blocked = inFlight >= this.#creditFor(at); return false })
    return blocked
  }

  /** The bytes in flight the record at `at` may go out behind: the credit, or less for bulk ({@link bulkLimit}). */
  #creditFor (at: number): number {
    return (this.#rd.flags(at) & SendRecordFlag.BULK) === 0 ? this.#window : Math.min(this.#window, this.bulkLimit)
  }

  /** Anything not yet acknowledged (sent or not)? */
  get pending (): boolean { return this.ring.hasDataAt(this.ring.readStart) }

  /** Start over from the oldest unacknowledged record (a new connection, or a relayed stream's timeout). */
  rewind (): void {
    this.#cursor = this.ring.readStart
    this.#baseDue = true
    this.#epoch = undefined
  }

  /**
   * Where the stream resumes, owed ahead of the first record sent after a
   * rewind (and after construction): the record's epoch and the seq before it.
   * Everything up to that seq was acknowledged or given up on, so a receiver
   * with no state for the epoch may start there; without it, such a
   * receiver could not tell a resumed stream from one whose first frames a
   * relay dropped (it would take the first frame to arrive as the start and
   * silently lose those before it). Undefined when none is owed, or nothing
   * is queued to send. Also owed ahead of a record that does not follow the
   * one before it (another epoch, a skipped seq), once nothing is in flight.
   */
  base (): { stream: number; seq: number } | undefined {
    let b: { stream: number; seq: number } | undefined
    this.ring.peekAt(this.#cursor, (at) => {
      if (this.#baseDue || (this.#breakAt(at) && this.inFlightBytes === 0)) b = { stream: this.#rd.stream(at), seq: this.#rd.seq(at) - 1 }
      return false
    })
    return b
  }

  /** The base {@link base} returned went out ahead of the record at the cursor. */
  baseSent (): void {
    this.#baseDue = false
    this.ring.peekAt(this.#cursor, (at) => { this.#epoch = this.#rd.stream(at); this.#nextSeq = this.#rd.seq(at); return false })
  }

  /**
   * The message id (its first chunk's seq) of queued record `seq` of
   * `stream`, and whether it is one of the mesh's own (INTERNAL), or
   * undefined if no unacknowledged record has that seq.
   */
  messageOf (stream: number, seq: number): { id: number; internal: boolean } | undefined {
    const rd = this.#rd
    let m: { id: number; internal: boolean } | undefined
    this.ring.peekAt(this.ring.readStart, (at) => {
      const s = rd.seq(at)
      if (rd.stream(at) === stream && s === seq) m = { id: s - rd.chunk(at), internal: (rd.flags(at) & SendRecordFlag.INTERNAL) !== 0 }
      return m === undefined && s < seq
    })
    return m
  }

  /** Where unacknowledged record `seq` of `stream` is (its frame: byte offset into the ring's memory and length, as {@link nextAt} gives), if queued. */
  frameOf (stream: number, seq: number): { start: number; len: number } | undefined {
    const rd = this.#rd
    let r: { start: number; len: number } | undefined
    this.ring.peekAt(this.ring.readStart, (at, len) => {
      const s = rd.seq(at)
      if (rd.stream(at) === stream && s === seq) r = { start: at + SEND_PREFIX_BYTES, len: len - SEND_PREFIX_BYTES }
      return r === undefined && s < seq
    })
    return r
  }

  /**
   * Visit records to send, in order, while credit lasts (with nothing in flight
   * one record always goes, so a record larger than the window is not stuck).
   * `fn` gets where each frame is, without a view of it: `start`, a byte
   * offset into the ring's SharedArrayBuffer (a multiple of 4; see
   * {@link words}), and its length; the send path copies small frames from
   * there itself (copyWordsOut). `fn` returns false to stop before a record
   * (it stays for the next call). Records with a seq above `limitSeq` are not
   * sent yet (not yet durable). A record that does not follow the one before
   * it (another epoch, a skipped seq) waits until none is in flight; the
   * caller sends {@link base} (owed then) ahead of it.
   * @returns records taken.
   */
  nextAt (fn: (start: number, len: number) => boolean, limitSeq = Infinity): number {
    let n = 0
    let inFlight = this.inFlightBytes
    const rd = this.#rd
    // The new cursor is the end of the last record taken, not where peek()
    // stopped: when it stops in front of a record that follows a WRAP marker
    // it has already stepped over the skip, and those bytes would then count
    // as in flight. Once the sent records were acknowledged, a window no
    // larger than the skip would leave canSend() false forever with nothing
    // in flight (issue 4).
    let cursor = this.#cursor
    this.ring.peekAt(cursor, (at, len, end) => {
      if (inFlight !== 0 && inFlight >= this.#creditFor(at)) return false
      if (limitSeq !== Infinity && rd.seq(at) > limitSeq) return false
      // Not the next record of the stream (another epoch, a skipped seq): only once everything
      // before it is acknowledged; its base (from base()) goes first.
      if (inFlight !== 0 && this.#breakAt(at)) return false
      if (!fn(at + SEND_PREFIX_BYTES, len - SEND_PREFIX_BYTES)) return false
      this.#epoch ??= rd.stream(at)
      this.#nextSeq = rd.seq(at) + 1
      cursor = end
      inFlight = this.ring.bytesBefore(end)
      n++
      return true
    })
    this.#cursor = cursor
    return n
  }


  /**
   * The receiver's cumulative ACK: its application has taken everything of
   * `stream` up to `seq`; `windowBytes` is its credit beyond that.
   */
  ack (stream: number, seq: number, windowBytes: number | undefined): AckResult {
    if (windowBytes !== undefined && windowBytes > 0) this.#window = windowBytes
    const rd = this.#rd
    let pos = this.ring.readStart
    let released = 0
    let notify = false
    let throughSeq = 0
    this.ring.peekAt(pos, (at, _len, end) => {
      if (rd.stream(at) !== stream || rd.seq(at) > seq) return false
      if ((rd.flags(at) & SendRecordFlag.NOTIFY_ACK) !== 0) notify = true
      throughSeq = rd.seq(at)
      pos = end
      released++
      return true
    })
    if (released > 0) this.#releaseTo(pos, released)
    return { released, notify, throughSeq }
  }

  /**
   * Give up on messages queued before `now - retainMs` (call only while the
   * peer is unreachable): the longest run of such records from the oldest
   * that holds whole messages only. All chunks of a message share its
   * enqueue time, but another lane's later message may sit between them: the
   * run then stops before the split message, which goes once the records
   * after it are due too. (A message whose first chunks were acknowledged
   * already is given up on with its remaining chunks, all at once.) Ids in
   * `cut` count as whole whatever is queued of them (see PeerActor).
   * `onFirst(id, start, len)` sees the frame of each reported message's first
   * record (as {@link nextAt} gives it) before the records are released.
   */
  expire (now: number, retainMs: number, cut?: ReadonlySet<number>, onFirst?: (id: number, start: number, len: number) => void): Expired | undefined {
    const rd = this.#rd
    const limit = now - retainMs
    const ends: number[] = []
    const seqs: number[] = []
    const idOf: number[] = []
    const streams: number[] = []
    const internal: boolean[] = []
    const starts: number[] = []
    const lens: number[] = []
    // Messages with chunks still to come in the run: id → index of their first record in it.
    const open = new Map<number, number>()
    this.ring.peekAt(this.ring.readStart, (at, len, end) => {
      if (rd.enqueuedAt(at) > limit) return false
      const seq = rd.seq(at)
      const id = seq - rd.chunk(at)
      // `cut`: messages the receiver reported discarded, closed by the host with an empty last chunk
      // that may not be queued yet: whole as far as they are queued.
      if ((rd.flags(at) & SendRecordFlag.MORE) !== 0 && cut?.has(id) !== true) {
        if (!open.has(id)) open.set(id, ends.length)
      } else {
        open.delete(id)
      }
      streams.push(rd.stream(at))
      internal.push((rd.flags(at) & SendRecordFlag.INTERNAL) !== 0)
      ends.push(end)
      starts.push(at)
      lens.push(len)
      seqs.push(seq)
      idOf.push(id)
      return true
    })
    let n = ends.length
    for (const first of open.values()) if (first < n) n = first
    if (n === 0) return undefined
    // The mesh's own messages go too, unreported (see SendRecordFlag.INTERNAL): ids may be empty.
    const ids = [...new Set(idOf.slice(0, n).filter((_, i) => !internal[i]))].sort((a, b) => a - b)
    // Reported messages' first records, read before they are released (the host may then overwrite them).
    if (onFirst !== undefined) {
      for (let i = 0; i < n; i++) {
        if (internal[i] === true || seqs[i] !== idOf[i]) continue
        onFirst(seqs[i] as number, (starts[i] as number) + SEND_PREFIX_BYTES, (lens[i] as number) - SEND_PREFIX_BYTES)
      }
    }
    this.#releaseTo(ends[n - 1] as number, n)
    return { stream: streams[n - 1] as number, throughSeq: seqs[n - 1] as number, ids }
  }

  /** Enqueue time of the oldest unacknowledged record, if any. */
  oldestEnqueuedAt (): number | undefined {
    let t: number | undefined
    this.ring.peekAt(this.ring.readStart, (at) => { t = this.#rd.enqueuedAt(at); return false })
    return t
  }

  #releaseTo (pos: number, records: number): void {
    this.ring.releaseTo(pos, records)
    // The cursor never lags the released edge (e.g. an ACK for frames of a previous connection).
    if (this.ring.bytesBefore(this.#cursor) > this.ring.capacity) this.#cursor = this.ring.readStart
  }
}
