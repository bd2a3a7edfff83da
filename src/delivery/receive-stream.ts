/**
 * The receiving half of one peer's reliable stream (sans-IO): exactly-once,
 * in-order hand-off to the application, and reassembly of chunked messages.
 *
 * Each sender numbers its frames 1, 2, 3… within a stream epoch (a random
 * id per sender process; a sender restarted with a durable outbox resends
 * its stored messages in the epochs they were first sent in, then goes on in
 * its own, its seqs continuing past theirs behind a SKIP base). A
 * sender resends from its oldest unacknowledged frame after a reconnect, so
 * the receiver sees duplicates (dropped here) but never a reordering on one
 * link; a frame beyond the next expected one means something in between was
 * lost in a relay or worker restart: it is dropped too, and arrives again
 * when the sender rewinds.
 *
 * A stream the receiver has no state for (a new epoch: the sender
 * restarted, or this receiver restarted) starts at seq 1, or
 * where the sender's base says: after every rewind the sender puts a SKIP
 * to the seq before its oldest unacknowledged frame ahead of that frame
 * (everything up to it was taken, or given up on). Any other first frame is
 * dropped as a gap: it is not the start when a relay lost the frames before
 * it (routed streams rewind on a timeout, and the base comes again).
 *
 * The receiver also remembers where it left the last few epochs it moved
 * away from ({@link MAX_RETIRED_STREAMS}). A relay can still hold frames of a
 * sender's previous process (its SKIP base, its first frames) and hand them
 * over after the new epoch started. Without that memory such a stale frame
 * switched the stream back and restarted the old epoch at it: everything
 * after it was delivered a second time, and the live epoch's next frames were
 * gaps until its sender rewound (never, on a direct link, which has no relay
 * timeout). Now a frame of a remembered epoch is a duplicate up to where it
 * was left, the next frame after that resumes it, and a stale SKIP changes
 * nothing: no message twice, and the live epoch goes on at its next frame.
 * The one ACK slot (AckBoard) follows the epoch heard from last, duplicates
 * included: a live sender that resends because a stale frame took the slot
 * before its ACK went out gets that ACK then.
 *
 * @module
 */

import { copyOut, concatBytes } from '../ring/copy-bytes.js'
import type { BufferPool } from '../util/buffer-pool.js'

/** What to do with an incoming stream frame. */
export type Verdict = 'deliver' | 'duplicate' | 'gap'

/**
 * Epochs a receiver remembers after moving away from them (besides the
 * current one): a sender that restarted a few times while frames of its
 * earlier processes were still in relays. An epoch forgotten beyond these is
 * unknown again (it starts only at seq 1 or after a base).
 */
export const MAX_RETIRED_STREAMS = 4

/** Where a {@link ReceiveStream} stands, without its counters: see {@link ReceiveStream.position}. */
export interface ReceivePosition {
  readonly stream: number | undefined
  readonly delivered: number
  /** Epochs left → the highest seq handed on in each, oldest first. */
  readonly retired: ReadonlyArray<readonly [number, number]>
}

/** Sequencing state of one peer's incoming stream. */
export class ReceiveStream {
  /** The sender's current stream epoch (undefined until its first frame). */
  stream: number | undefined
  /** Highest sequence number handed on (0 = none). */
  delivered = 0
  /** Frames dropped as duplicates (resends after a reconnect). */
  duplicates = 0
  /** Frames dropped because one before them is missing. */
  gaps = 0
  /** Epochs moved away from → the highest seq handed on in each; oldest first. */
  readonly #retired = new Map<number, number>()

  /**
   * Classify frame `seq` of `stream`. 'deliver' advances the stream: the
   * caller must hand the frame to the application (or reassembly) now.
   */
  accept (stream: number, seq: number): Verdict {
    if (stream !== this.stream) {
      const left = this.#retired.get(stream)
      if (left === undefined) {
        // Not the start of the stream, and no base for it yet: see the module comment.
        if (seq !== 1) { this.gaps++; return 'gap' }
      } else {
        // An epoch we left: where we left it is known, as for the current one.
        // A duplicate makes it current again all the same: the acknowledgement
        // follows the epoch heard from last. Its sender resends what it has
        // not seen acknowledged; the ACK it waits for is this epoch's, which
        // a stale frame of another epoch may have replaced meanwhile.
        if (seq <= left) { this.duplicates++; this.#switchTo(stream, left); return 'duplicate' }
        if (seq !== left + 1) { this.gaps++; return 'gap' }
      }
      this.#switchTo(stream, seq)
      return 'deliver'
    }
    if (seq <= this.delivered) { this.duplicates++; return 'duplicate' }
    if (seq !== this.delivered + 1) { this.gaps++; return 'gap' }
    this.delivered = seq
    return 'deliver'
  }

  /**
   * The sender gave up on, or was acknowledged, everything up to `seq` (SKIP
   * frame: after expiry, and as the stream's base after each rewind): do not
   * wait for it. For an unknown epoch this starts the stream after `seq`; for
   * an epoch we left, a SKIP to where we left it or before is stale and
   * changes nothing.
   */
  skip (stream: number, seq: number): void {
    if (stream !== this.stream) {
      const left = this.#retired.get(stream)
      if (left !== undefined && seq <= left) return
      this.#switchTo(stream, seq)
      return
    }
    if (seq > this.delivered) this.delivered = seq
  }

  /**
   * Where the stream stands: all a receiver must keep to go on exactly once
   * with a sender it dropped everything else of (Mesh forgets a departed
   * peer, see delivery.forgetAfterMs, and may meet it again).
   */
  position (): ReceivePosition {
    return { stream: this.stream, delivered: this.delivered, retired: [...this.#retired] }
  }

  /** A stream that stands where {@link position} said (counters start at 0). */
  static at (p: ReceivePosition): ReceiveStream {
    const rx = new ReceiveStream()
    rx.stream = p.stream
    rx.delivered = p.delivered
    for (const [s, left] of p.retired.slice(-MAX_RETIRED_STREAMS)) if (s !== p.stream) rx.#retired.set(s, left)
    return rx
  }

  /** Make `stream` current at `delivered`, remembering where the current one was left. */
  #switchTo (stream: number, delivered: number): void {
    const r = this.#retired
    r.delete(stream)
    if (this.stream !== undefined) {
      r.set(this.stream, this.delivered) // never in the map while current: goes in last, as the most recently left
      if (r.size > MAX_RETIRED_STREAMS) r.delete(r.keys().next().value as number)
    }
    this.stream = stream
    this.delivered = delivered
  }
}

/** Result of {@link Reassembly.push}. */
export type Assembled =
  | { kind: 'partial' }
  /** `owned`: `bytes` is a fresh copy (joined chunks), not the view that was pushed. */
  | { kind: 'message'; bytes: Uint8Array; firstSeq: number; owned: boolean }
  | { kind: 'orphan' }
  | { kind: 'too-large'; bytes: number }

/**
 * Joins the chunks of a large message (frames flagged MORE, then the last
 * one without). Chunks arrive in stream order, so one message at a time.
 */
export class Reassembly {
  readonly #maxBytes: number
  #parts: Uint8Array[] = []
  #bytes = 0
  #firstSeq = 0
  #discarding = false

  readonly #pool: BufferPool | undefined

  /** `pool`: where chunk copies come from and go back to (fresh buffers without one). */
  constructor (maxBytes: number, pool?: BufferPool) {
    this.#maxBytes = maxBytes
    this.#pool = pool
  }

  /** Bytes held for the message being assembled. */
  get heldBytes (): number { return this.#bytes }

  /**
   * Add the next in-order frame's payload (copied when kept). `continuation`
   * is the frame's CONTINUATION flag (it is not a message's first chunk),
   * `more` its MORE flag (chunks follow).
   */
  push (payload: Uint8Array, seq: number, continuation: boolean, more: boolean): Assembled {
    if (!continuation) {
      this.#reset()
      this.#firstSeq = seq
    } else if (this.#parts.length === 0 && !this.#discarding) {
      // A middle chunk with no start: its first chunks went to a previous incarnation of this receiver.
      this.#discarding = more
      return { kind: 'orphan' }
    }
    if (this.#discarding) {
      if (!more) this.#discarding = false
      return { kind: 'partial' }
    }
    this.#bytes += payload.length
    if (this.#bytes > this.#maxBytes) {
      const bytes = this.#bytes
      this.#reset()
      this.#discarding = more
      return { kind: 'too-large', bytes }
    }
    if (!more && this.#parts.length === 0) {
      this.#bytes = 0 // nothing is held: heldBytes must not report the passed-through message
      return { kind: 'message', bytes: payload, firstSeq: seq, owned: false }
    }
    // Chunks are views of the inbound ring: copy them out at memcpy speed (slice()
    // copies shared memory a byte at a time, see ring/copy-bytes.ts; it was 29 %
    // of a receiving host's CPU in a 1 MiB bulk flood), into recycled buffers.
    if (this.#pool !== undefined) for (const b of this.#pool.copyIn(payload)) this.#parts.push(b)
    else this.#parts.push(copyOut(payload))
    if (more) return { kind: 'partial' }
    const out = concatBytes(this.#parts, this.#bytes)
    const firstSeq = this.#firstSeq
    if (this.#pool !== undefined) for (const b of this.#parts) this.#pool.give(b)
    this.#reset()
    return { kind: 'message', bytes: out, firstSeq, owned: true }
  }

  /** Nothing held and nothing being discarded: no message in progress. */
  get idle (): boolean { return this.#parts.length === 0 && !this.#discarding }

  #reset (): void { this.#parts = []; this.#bytes = 0; this.#discarding = false }
}

/**
 * The chunked messages being joined for one peer: one {@link Reassembly}
 * per stream epoch and lane. The chunks of a message are consecutive frames
 * of one epoch, but a frame of another epoch can come between them (a stale
 * frame of the sender's previous process, which {@link ReceiveStream}
 * delivers if it never did). With one assembly per lane, that frame started
 * over the message in progress, and its remaining chunks, already counted as
 * delivered, were discarded as orphans. Which epoch is the live one cannot
 * be told from here (a stale frame of a dead one looks like any other), so
 * a message an epoch left half sent is kept until that epoch is forgotten:
 * the least recently used of more than MAX_RETIRED_STREAMS + 1 epochs with
 * state, idle ones first. At most that many half messages per lane, each up
 * to maxMessageBytes, and only after a sender died mid-message.
 */
export class StreamAssemblies {
  readonly #byStream = new Map<number, Reassembly[]>()
  /** The epoch of the last get() (already last in #byStream). */
  #last: number | undefined
  readonly #lanes: number
  readonly #maxBytes: number
  readonly #pool: BufferPool | undefined

  /** `lanes`: lane numbers 0..lanes-1; `maxBytes` and `pool` as for {@link Reassembly}. */
  constructor (lanes: number, maxBytes: number, pool?: BufferPool) {
    this.#lanes = lanes
    this.#maxBytes = maxBytes
    this.#pool = pool
  }

  /** Epochs with assembly state (at most MAX_RETIRED_STREAMS + 1). */
  get streams (): number { return this.#byStream.size }

  /** The assembly of `lane` (0..lanes-1) in epoch `stream`. */
  get (stream: number, lane: number): Reassembly {
    let set = this.#byStream.get(stream)
    if (set !== undefined && this.#last !== stream) {
      // Least recently used goes first when one must: the epoch in use moves to the end.
      this.#byStream.delete(stream)
      this.#byStream.set(stream, set)
    }
    this.#last = stream
    if (set === undefined) {
      // Forget epochs with no message in progress, then the oldest (as ReceiveStream forgets epochs).
      for (const [s, a] of this.#byStream) if (a.every((r) => r.idle)) this.#byStream.delete(s)
      while (this.#byStream.size > MAX_RETIRED_STREAMS) this.#byStream.delete(this.#byStream.keys().next().value as number)
      set = Array.from({ length: this.#lanes }, () => new Reassembly(this.#maxBytes, this.#pool))
      this.#byStream.set(stream, set)
    }
    const r = set[lane]
    if (r === undefined) throw new RangeError(`lane ${lane} is not in 0..${this.#lanes - 1}`)
    return r
  }
}
