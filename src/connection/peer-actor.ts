import { RingBuffer, type RingPlace } from '../ring/ring-buffer.js'
import { AckBoard } from '../delivery/ack-board.js'
import { SendWindow, type AckResult, type Expired } from '../delivery/send-window.js'
import { encodeFrame } from '../codec/encode.js'
import { encodeControl } from '../codec/control.js'
import { decodeFrame } from '../codec/decode.js'
import { publicationTopic } from '../codec/payload.js'
import { FrameType, Lane, PROTOCOL_VERSION } from '../codec/frame.js'
import type { Connection, FrameSink } from './connection.js'
import { SendSlab } from './send-slab.js'
import { copyBytes, copyWordsOut, FILL_MIN_BYTES } from '../ring/copy-bytes.js'

/** Largest WebSocket message the pump builds from queued frames (dense traffic batches up to this). */
export const BATCH_BYTES = 256 * 1024
/** Frames at least this large go out as their own WebSocket message, straight from ring memory (see pump). */
export const DIRECT_BYTES = 16 * 1024
/**
 * How long an ACK may wait for outgoing traffic to ride on (ms). A lone ACK
 * costs a socket write here and a wake-up of the peer's IO worker; under
 * request/response traffic the response (or the next request) carries it.
 * The host asks for a prompt ACK (AckBoard.markUrgent) when the sender waits
 * on it (`send({ ack: true })`) or much is unacknowledged, and a routed
 * peer's ACK always goes at once (a relay may drop it).
 */
export const ACK_DELAY_MS = 10
/**
 * An expected ACK whose frames the host has not made due after this many
 * ACK_DELAY_MS periods stops the worker's ACK timer (frames that advanced
 * nothing: duplicates, or a host stalled that long). The ACK still goes with
 * the next traffic to the peer, or when the host next publishes progress
 * (AckBoard.setWaiting: the host then prompts it).
 */
export const ACK_EXPECT_PERIODS = 20
/**
 * Credit on a fast link: enough bytes in flight for the link's speed, and no
 * more, since every byte in flight is queued in front of our heartbeats and
 * ACKs on the same TCP connection (on loopback 2 MiB of bulk data put 10-20 ms
 * in front of a PING; 1 MiB halved that and kept the bulk rate). A link with
 * a longer round trip gets CREDIT_BYTES_PER_MS for each ms of its lowest RTT,
 * up to the receive window the IO worker allows.
 */
export const MIN_CREDIT_BYTES = 1024 * 1024
/** See MIN_CREDIT_BYTES: about 400 MB/s of in-flight data per ms of round trip. */
export const CREDIT_BYTES_PER_MS = 400 * 1000
/**
 * Bulk-lane messages may have in flight only what the link's round trip
 * needs (CREDIT_BYTES_PER_MS per ms of its lowest RTT), at least this much:
 * not the MIN_CREDIT_BYTES a fast link gets to ride out the threads'
 * scheduling delays, since every byte in flight is queued in front of our
 * heartbeats, ACKs and priority messages (in socket buffers the lanes cannot
 * reorder). On loopback on our 2-core machine a 100 MiB bulk transfer put
 * heartbeat RTT p99 at 6.5-10 ms with the whole credit, 2.7-5.0 ms with
 * this (perf reliability part c, 3 and 5 runs), for less bulk throughput
 * (370-400 MiB/s against 170-250). On a link whose RTT's share is the whole
 * credit (2.5 ms and more), bulk runs as fast as priority.
 */
export const BULK_MIN_CREDIT_BYTES = 128 * 1024
/**
 * Inner frames to a routed peer share FORWARD envelopes of up to this many
 * payload bytes. Every node accepts an envelope payload of
 * ENVELOPE_PAYLOAD_BYTES (io-worker.ts: 64 KiB and change) whatever its
 * maxMessageBytes, so a batch this size passes every relay and the
 * destination; larger frames go one per envelope. 32 KiB: a few dozen
 * 1 KiB messages per envelope take most of the per-envelope cost off the
 * relay (relayed 1 KiB, 3 runs each: 1 KiB envelopes 0.46 of direct,
 * 16 KiB 0.59-0.73, 32 KiB 0.69-0.91), while one envelope stays well under a
 * 256 KiB batch.
 */
export const INNER_BATCH_BYTES = 32 * 1024
/** Smallest slab room a batch starts in: a batch does not begin in the last few bytes of a slab. */
const MIN_ROOM_BYTES = 8 * 1024

/**
 * The connection actor of one peer inside an IO worker: the peer's send
 * queue (a ring the host writes), the sending half of the reliable stream
 * (records stay queued until the peer acknowledges them), the receive-side
 * ack board, and the active connection. Hosted M:N — one IO worker runs
 * many of these on its event loop. The actor outlives connections: a new
 * connection resends everything unacknowledged.
 */
export class PeerActor {
  readonly peerId: string
  readonly handle: number
  readonly ring: RingBuffer
  readonly window: SendWindow
  readonly board: AckBoard
  /** Unreliable messages (`reliable: false`): sent once when a connection is up, never acknowledged. */
  readonly datagrams: RingBuffer
  readonly #dropOldest: boolean
  readonly #worker: number
  readonly #receiveWindow: number
  #conn: FrameSink | undefined
  /**
   * Set while the peer is reached through another node: `#conn` is then the
   * next hop's connection and every frame goes out wrapped in a FORWARD
   * envelope addressed to the peer (multi-hop routing).
   */
  #relay: { selfId: string; via: string; hops: number } | undefined
  /** Whether the host was told this actor's handle for a routed peer (ordered before its frames). */
  announced = false
  /** Board version last turned into an ACK frame on the current connection. */
  #ackedVersion = -1
  /** (stream, seq) of the last ACK sent on the current connection for the board's slot, and for its prev slot (-1: none). */
  #ackSentStream = -1
  #ackSentSeq = -1
  #prevSentStream = -1
  #prevSentSeq = -1
  /** Frames in the bytes the last #takeAck returned (2 with a left epoch's ACK first). */
  #ackFrames = 1
  /** Board urgency token last acted on (see AckBoard.markUrgent). */
  #urgentSeen = 0
  /** Since when an ACK is expected or held back (performance.now()), undefined if none is. */
  #ackHeldSince: number | undefined
  /** ACK_DELAY_MS periods an expected ACK has waited for the host (see ACK_EXPECT_PERIODS). */
  #ackWaits = 0
  /** The first ACK on a new connection goes at once (the peer resumes from it). */
  #ackPrompt = true
  /** Lowest heartbeat RTT seen on the current connection (ms): the link's own delay, without queueing. */
  #baseRttMs = Infinity
  /** Expired messages the peer must be told to skip (sent first on the next connection). */
  #skip: { stream: number; seq: number } | undefined
  /** Messages the peer said it discarded unfinished (an ACK's `d`), reported once each (the latest few). */
  readonly discardReported = new Set<number>()
  /** What we last told the host through AckBoard parked (see pump()). */
  #parked = false
  /** Inbound data records handed to the host for this peer (see {@link handedOff}); the board's `taken` counts them back. */
  #handed: number

  readonly #slab: SendSlab
  /** Scratch for inner frames sharing one FORWARD envelope (copied out by the envelope's encoding). */
  #innerScratch: Buffer | undefined
  get #inner (): Buffer { return (this.#innerScratch ??= Buffer.allocUnsafe(INNER_BATCH_BYTES)) }

  /** `slab`: where outgoing batches are built (one per IO worker; a private one if omitted). */
  constructor (peerId: string, handle: number, ringSab: SharedArrayBuffer | RingPlace, boardSab: SharedArrayBuffer, datagramSab: SharedArrayBuffer | RingPlace, worker: number, receiveWindow: number, dropOldest: boolean, slab: SendSlab = new SendSlab(BATCH_BYTES)) {
    this.#slab = slab
    this.peerId = peerId
    this.handle = handle
    this.ring = RingBuffer.attach(ringSab)
    this.datagrams = RingBuffer.attach(datagramSab)
    this.#dropOldest = dropOldest
    this.window = new SendWindow(this.ring)
    this.board = AckBoard.attach(boardSab)
    // Records an earlier actor handed over are the board's to count, not ours.
    this.#handed = this.board.taken(worker)
    this.#worker = worker
    this.#receiveWindow = receiveWindow
  }

  get connection (): FrameSink | undefined { return this.#conn }

  /**
   * Take over sending on `conn`: resend everything unacknowledged, after any
   * pending SKIP. With `relay`, `conn` is the next hop's connection and the
   * peer is `relay.hops` hops away at most (the hop limit of our envelopes).
   */
  attach (conn: Connection): void
  attach (conn: FrameSink, relay: { selfId: string; via: string; hops: number }): void
  attach (conn: FrameSink, relay?: { selfId: string; via: string; hops: number }): void {
    this.#conn = conn
    this.#relay = relay
    this.board.claim(this.#worker)
    // Whatever the flag says, it was the previous owner's (which may have been another worker): cleared.
    this.#parked = false
    this.board.setParked(false)
    // An actor of another worker may have consumed the queues since this one
    // last did (the peer was served through a relay from there meanwhile).
    this.ring.resyncConsumer()
    this.datagrams.resyncConsumer()
    this.window.rewind()
    this.#ackedVersion = -1
    this.#ackSentStream = this.#prevSentStream = -1
    this.#ackPrompt = true
    this.#baseRttMs = Infinity
    this.window.bulkLimit = Infinity
    if (this.#skip !== undefined) this.#sendSkip(conn, this.#skip)
  }

  /**
   * Look after the peer's queue without a connection: messages queued for a
   * peer no worker has linked in this process (reloaded from the durable
   * outbox, or orphaned by a restarted IO worker) can then expire
   * (delivery.retainMs) instead of waiting forever. Only if no worker
   * consumes the queue yet; any later attach takes it over. True if adopted.
   */
  adopt (): boolean {
    if (this.#conn !== undefined || !this.board.claimIfFree(this.#worker)) return false
    this.ring.resyncConsumer()
    this.datagrams.resyncConsumer()
    this.window.rewind()
    return true
  }

  /**
   * Called after the actor loses its connection: the owner starts what only
   * a disconnected peer needs (the IO worker's retention timer, see
   * {@link expire}).
   */
  onDetach: (() => void) | undefined

  /** Stop using `conn`. True if it was the active one. */
  detach (conn: FrameSink): boolean {
    if (this.#conn !== conn) return false
    this.#conn = undefined
    this.#relay = undefined
    // Not waiting for this connection's ACKs any more: the host rings again
    // (whoever attaches next, maybe another worker, learns of new frames).
    // Only as the ring's owner: another worker's actor may have parked it since.
    this.#park(false)
    this.#parked = false
    this.onDetach?.()
    return true
  }

  /**
   * The IO worker drops this actor (the host is forgetting the peer: see
   * delivery.forgetAfterMs). Only without a connection. Gives up the ring
   * (if ours) so that, should the host keep the peer after all, another
   * actor may adopt it.
   */
  forget (): void {
    if (this.#conn !== undefined) throw new Error('PeerActor.forget: the actor still has a connection')
    this.board.disown(this.#worker)
  }

  /** The peer's own connection, when linked directly (not through a relay). */
  // The attach overloads make a sink without a relay the peer's own Connection.
  get direct (): Connection | undefined { return this.#relay === undefined ? this.#conn as Connection | undefined : undefined }

  /** The next hop, while the peer is reached through a relay. */
  get via (): string | undefined { return this.#relay?.via }

  /** Wrap a frame for a routed peer (identity when direct). */
  #out (frame: Uint8Array): Uint8Array {
    const r = this.#relay
    if (r === undefined) return frame
    return encodeFrame({ version: PROTOCOL_VERSION, type: FrameType.FORWARD, lane: Lane.PRIORITY, flags: 0, src: r.selfId, dst: this.peerId, stream: 0, seq: r.hops, payload: frame })
  }

  /** Does this worker's actor consume the peer's ring (another worker's may have taken over)? */
  get owns (): boolean { return this.board.ownedBy(this.#worker) }

  /** Frames to send (with credit) or an ACK that cannot wait, and a socket able to take them. */
  get ready (): boolean {
    const c = this.#conn
    if (c === undefined || c.state !== 'open' || c.writeBlocked) return this.#datagramPressure
    const ack = this.ackDue && this.#ackNow(performance.now())
    // Not the ring's owner (another worker's link replaced ours): only our ACK can go (see #pump).
    if (!this.owns) return ack
    return ack || !this.datagrams.isEmpty() || this.window.canSend(this.board.committed())
  }

  /**
   * One inbound data record of this peer's frames was handed to the host
   * (call per record, with {@link expectAck} for its ACK).
   */
  handedOff (): void { this.#handed = (this.#handed + 1) | 0 }

  /**
   * Records handed to the host that it has not handled yet: their progress
   * may not be on the board. Read before the board: false then means every
   * hand-off's publish is visible (the host counts a record as taken after
   * publishing for it, on this worker's own counter). A count ahead of ours
   * (records an earlier actor of this worker handed over) is taken as ours.
   */
  get hostBehind (): boolean {
    const taken = this.board.taken(this.#worker)
    const d = (this.#handed - taken) | 0
    if (d < 0) this.#handed = taken
    return d > 0
  }

  /** A heartbeat RTT sample of the direct link (ms). */
  noteRtt (ms: number): void {
    if (!(ms > 0 && ms < this.#baseRttMs)) return
    this.#baseRttMs = ms
    // (A routed peer's credit is the whole window, and so is its bulk share: its RTT is not this link's.)
    this.window.bulkLimit = this.#relay === undefined ? Math.max(BULK_MIN_CREDIT_BYTES, Math.ceil(ms * CREDIT_BYTES_PER_MS)) : Infinity
  }

  /**
   * The credit our ACKs grant the peer: the worker's receive window, less on
   * a link whose round trip is short (see MIN_CREDIT_BYTES). Until an RTT is
   * known, and for a routed peer, the whole window.
   */
  get credit (): number {
    const rtt = this.#baseRttMs
    if (this.#relay !== undefined || rtt === Infinity) return this.#receiveWindow
    return Math.min(this.#receiveWindow, Math.max(MIN_CREDIT_BYTES, Math.ceil(rtt * CREDIT_BYTES_PER_MS)))
  }

  /**
   * Frames from the peer just went to the host: an ACK will be due once the
   * application has taken them. The host asks for it at once only when it is
   * urgent (AckBoard.markUrgent rings us); otherwise this starts the clock
   * by which it goes even with no traffic to ride on (see ackDeadline).
   */
  expectAck (now: number): void {
    this.#ackHeldSince ??= now
    this.#ackWaits = 0
  }

  /**
   * When a held-back ACK must go even with nothing to ride on
   * (performance.now() scale), Infinity if none is held. While the host has
   * not taken the frames yet, the deadline moves on by ACK_DELAY_MS each
   * time it passes: the worker looks again then (a slow host costs a wake-up
   * per ACK_DELAY_MS, nothing per message).
   */
  ackDeadline (now: number): number {
    const c = this.#conn
    let since = this.#ackHeldSince
    if (since === undefined || c === undefined || c.state !== 'open' || c.writeBlocked) return Infinity
    // The host handled every record handed over and published nothing new for them (duplicates
    // it dropped, unreliable messages): no ACK is coming. hostBehind before the board (see there).
    if (!this.hostBehind && !this.ackDue) {
      this.#ackHeldSince = undefined
      this.#ackWaits = 0
      return Infinity
    }
    if (!this.ackDue && now - since >= ACK_DELAY_MS) {
      if (++this.#ackWaits >= ACK_EXPECT_PERIODS) {
        this.#ackHeldSince = undefined
        this.#ackWaits = 0
        // Stop polling: the host's next publish prompts the ACK (AckBoard.setWaiting).
        // Read the board again after the flag: progress published just
        // before it was set would otherwise wait for the next traffic.
        this.board.setWaiting()
        if (!this.ackDue) return Infinity
        this.#ackHeldSince = since = now - ACK_DELAY_MS
      } else {
        this.#ackHeldSince = since = now
      }
    }
    return since + ACK_DELAY_MS
  }

  /** A due ACK goes now (else it waits up to ACK_DELAY_MS for traffic to ride on). */
  #ackNow (now: number): boolean {
    if (this.#ackPrompt || this.#relay !== undefined || this.board.urgentToken() !== this.#urgentSeen) return true
    const since = this.#ackHeldSince
    if (since === undefined) { this.#ackHeldSince = now; return false }
    return now - since >= ACK_DELAY_MS
  }

  /** drop-oldest: the unreliable queue is over 3/4 full and cannot be sent now. */
  get #datagramPressure (): boolean {
    return this.#dropOldest && this.owns && this.datagrams.usedBytes() > (this.datagrams.capacity >> 2) * 3
  }

  /**
   * sendQueue.policy 'drop-oldest': while unreliable messages cannot be sent
   * (no connection, socket full), discard the oldest down to half the queue
   * so new ones keep fitting. Counted on the board. ('drop-newest' needs
   * nothing here: the host refuses what does not fit, and counts it.)
   */
  shedDatagrams (): number {
    if (!this.#datagramPressure) return 0
    return this.#asOwner(() => {
      const target = this.datagrams.capacity >> 1
      // Counted by position (wrap skips included), then released at once: the ring's own usedBytes()
      // does not fall while records are visited (reading it inside drain() shed the whole queue).
      const d = this.datagrams
      const used = d.usedBytes()
      const start = d.readStart
      let stop = start
      let n = 0
      d.peekAt(start, (_at, _len, end) => {
        if (used - ((stop - start) >>> 0) <= target) return false
        stop = end
        n++
        return true
      })
      if (n > 0) {
        d.releaseTo(stop, n)
        this.board.addDropped(n)
      }
      return n
    }) ?? 0
  }

  /**
   * Run `fn` as the owner of the peer's send ring, holding it busy: no other
   * worker claims the ring (and reads it, or clears the parked flag) until
   * `fn` is done. Whatever reads or releases ring records, or sets the flag,
   * runs in here. Undefined, `fn` not run, if another worker owns the ring.
   */
  #asOwner<T> (fn: () => T): T | undefined {
    if (!this.board.holdBusy(this.#worker)) return undefined
    try {
      return fn()
    } finally {
      this.board.endBusy(this.#worker)
    }
  }

  /** The host handed the peer's messages to its application since our last ACK. */
  get ackDue (): boolean {
    const v = this.board.version()
    return v !== 0 && v !== this.#ackedVersion // 0: the host has taken nothing of the peer's yet
  }

  /**
   * Send the cumulative ACK for what the host's application has taken, with
   * our credit (the peer may have that many bytes in flight beyond it).
   * Control lane, straight to the socket: never queued behind data.
   */
  flushAck (): boolean {
    const c = this.#conn
    if (c === undefined || c.state !== 'open') return false
    const ack = this.#takeAck()
    if (ack === undefined) return false
    c.send(ack, this.#ackFrames)
    return true
  }

  /** The ACK frame for what the board shows (undefined if that was acked already); it counts as sent. */
  #takeAck (): Uint8Array | undefined {
    // Before the board: see hostBehind.
    const behind = this.hostBehind
    // The token before the board: an urgent mark made after this read is seen next time.
    const token = this.board.urgentToken()
    const b = this.board.read()
    this.#urgentSeen = token
    if (b === undefined || b.version === this.#ackedVersion) return undefined
    this.#ackedVersion = b.version
    // Frames the host has not taken yet still owe an ACK: the clock keeps running for them
    // (ackDeadline). Stopped here, their publish (neither urgent nor awaited through
    // AckBoard.setWaiting) rang nobody, and the ACK waited for the next traffic to the peer or
    // the send pump's 5 s safety net, holding back a sender out of credit (issue 4).
    this.#ackHeldSince = behind ? performance.now() : undefined
    this.#ackWaits = 0
    this.#ackPrompt = false
    // d: a chunked message the host discarded unfinished (AckBoard layout), for the sender to report.
    const control = b.discarded.length > 0 ? { w: this.credit, d: b.discarded } : { w: this.credit }
    const ack = this.#out(encodeFrame({ version: PROTOCOL_VERSION, type: FrameType.ACK, lane: Lane.CONTROL, flags: 0, src: null, dst: null, stream: b.stream, seq: b.seq, payload: encodeControl(control) }))
    // The epoch the host left last (AckBoard layout: prev), unless this connection carried its ACK
    // already: a stale frame of another epoch may have taken the slot before the live epoch's last
    // frames were acked. Its ACK goes first; a peer no longer sending that epoch ignores it.
    const p = b.prev
    const prevOwed = p !== undefined && p.stream !== b.stream &&
      !(p.stream === this.#prevSentStream && p.seq === this.#prevSentSeq) &&
      !(p.stream === this.#ackSentStream && p.seq === this.#ackSentSeq)
    this.#ackSentStream = b.stream
    this.#ackSentSeq = b.seq
    this.#ackFrames = 1
    if (!prevOwed) return ack
    this.#prevSentStream = p.stream
    this.#prevSentSeq = p.seq
    this.#ackFrames = 2
    const prev = this.#out(encodeFrame({ version: PROTOCOL_VERSION, type: FrameType.ACK, lane: Lane.CONTROL, flags: 0, src: null, dst: null, stream: p.stream, seq: p.seq, payload: encodeControl({ w: this.credit }) }))
    return Buffer.concat([prev, ack])
  }

  /**
   * Send the current ACK again at the next pump even if it was sent already
   * (routed peers: a relay may have dropped it). True if there is one.
   */
  resendAck (): boolean {
    if (this.board.version() === 0) return false
    this.#ackedVersion = -1
    this.#ackSentStream = this.#prevSentStream = -1
    return true
  }

  /**
   * The peer's ACK for our stream. Ignored unless this worker owns the ring:
   * an ACK still arriving on a link another worker has replaced must not
   * release records that worker now reads (it gets the peer's ACK on its own
   * link: the peer sends one when a link comes up).
   */
  onAck (stream: number, seq: number, windowBytes: number | undefined, beforeRelease?: () => void): AckResult {
    return this.#asOwner(() => {
      // What must read the acknowledged records before they go (the ACK's discard reports), as the owner.
      beforeRelease?.()
      return this.window.ack(stream, seq, windowBytes)
    }) ?? NOTHING_ACKED
  }

  /** Give up on messages older than `retainMs` (only while no connection is up). */
  expire (now: number, retainMs: number): Expired | undefined {
    // Busy: another worker attaching meanwhile waits for our release before it reads the ring.
    if (this.#conn !== undefined) return undefined
    return this.#asOwner(() => {
      // Messages the peer reported discarded: the host cuts them short (an empty closing chunk, which may
      // not have found room yet); their queued chunks must not hold back retention.
      let topics: Map<number, string> | undefined
      const e = this.window.expire(now, retainMs, this.discardReported, (id, start, len) => {
        const topic = this.topicAt(start, len)
        if (topic !== undefined) (topics ??= new Map()).set(id, topic)
      })
      if (e !== undefined) {
        this.#skip = { stream: e.stream, seq: e.throughSeq }
        if (topics !== undefined) e.topics = topics
      }
      return e
    })
  }

  /**
   * The topic of the publication whose first frame is at byte `start` of the
   * send ring's memory (`len` bytes: see SendWindow.expire), undefined if the
   * frame is not a publication's (or its topic is not all in it). For the
   * 'undelivered' report, so a publisher can tell what was given up on.
   */
  topicAt (start: number, len: number): string | undefined {
    try {
      const f = decodeFrame(new Uint8Array(this.window.words.u8.buffer, start, len), 0).frame
      return f.type === FrameType.PUBLISH && f.payload !== null ? publicationTopic(f.payload) : undefined
    } catch {
      return undefined // our own record: cannot fail to decode, but a report is not worth a crash
    }
  }

  /**
   * Move queued frames to the socket while the peer's credit lasts, in
   * WebSocket messages of up to BATCH_BYTES, a due ACK at the head of the
   * first one (alone only once it cannot wait: see ACK_DELAY_MS).
   * Each ring record holds one complete encoded frame after its prefix, so
   * bytes are copied as they are — no per-frame decode. Returns true if
   * anything was sent.
   */
  pump (): boolean {
    const sent = this.#pump()
    const c = this.#conn
    // Parked: what we queued cannot go until an ACK or a writable socket,
    // and both ring this worker's doorbell themselves. In a reliable flood
    // the host otherwise rang at every send while we waited for credit: the
    // worker woke ~10,000 times a second to find nothing it could send.
    // (The parked flag is the ring owner's: #park does nothing for another worker's actor.)
    this.#park(c !== undefined && c.state === 'open' && (c.writeBlocked || this.window.creditBlocked))
    return sent
  }

  /**
   * Set the board's parked flag, which is the ring owner's: as the owner, so
   * that no other worker claims the ring (and clears the flag for itself)
   * between our ownership check and our write.
   */
  #park (parked: boolean): void {
    if (parked === this.#parked) return
    this.#asOwner(() => {
      this.#parked = parked
      this.board.setParked(parked)
    })
  }

  #pump (): boolean {
    const conn = this.#conn
    if (conn === undefined || conn.state !== 'open' || conn.writeBlocked) return this.shedDatagrams() > 0
    // Only the ring's owner reads and releases its records, and it holds the ring busy meanwhile so that
    // no other worker claims it mid-batch. A link of ours that another worker's replaced (it claimed the
    // ring; ours is closing) sends nothing of the queue: what it read could be released under it.
    // The hold (two compare-and-swaps and a notify) only when there is something to send: the pump
    // loop visits every linked actor each pass, most of them idle.
    if (!this.owns) return this.#ackOnly(conn)
    const limit = this.board.committed()
    const datagrams = !this.datagrams.isEmpty()
    if (!datagrams && !this.window.canSend(limit)) return this.#ackOnly(conn)
    return this.#asOwner(() => this.#send(conn, limit, datagrams)) ?? this.#ackOnly(conn)
  }

  /** Nothing of the queue to send (or not the ring's owner): our ACK for the peer's stream may still go, alone, if it cannot wait. */
  #ackOnly (conn: FrameSink): boolean {
    const ack = this.ackDue && this.#ackNow(performance.now()) ? this.#takeAck() : undefined
    if (ack === undefined) return false
    conn.send(ack, this.#ackFrames)
    return true
  }

  /** Send what is queued (`datagrams`: unreliable messages are; reliable ones may be, up to `limit`), as the ring's owner. */
  #send (conn: FrameSink, limit: number, datagrams: boolean): boolean {
    // A due ACK rides at the head of the first batch.
    const ack = this.ackDue ? this.#takeAck() : undefined
    const out = new Batches(conn, this.#slab)
    if (ack !== undefined) out.add(ack, this.#ackFrames)
    // Unreliable messages first (they are small and time-sensitive), copied: released as read.
    if (datagrams) this.datagrams.drain((raw) => { out.add(this.#out(raw)); return !conn.writeBlocked })
    let total = 0
    let full = false
    // A routed peer: small frames share one FORWARD envelope (one header with
    // both ids, one parse at each hop, one inbound record at the end).
    const relay = this.#relay !== undefined
    let innerOff = 0
    // A large frame goes out as its own message, as a view of ring memory.
    // That is safe on both kinds of socket: a masking (dialing) socket
    // copies it synchronously inside send(); an unmasked one may keep the
    // view until written, but the record stays in the ring until the peer
    // acknowledges it, which it cannot do before receiving these bytes,
    // and a dead socket's unwritten buffers are discarded with it.
    const put = (frame: Uint8Array): void => { if (frame.length >= DIRECT_BYTES) out.alone(frame); else out.add(frame) }
    const flushInner = (): void => {
      if (innerOff === 0) return
      put(this.#out(this.#inner.subarray(0, innerOff)))
      innerOff = 0
    }
    const frame = (raw: Uint8Array): void => {
      if (!relay) put(raw)
      else if (raw.length > INNER_BATCH_BYTES) {
        flushInner()
        put(this.#out(raw))
      } else {
        if (innerOff + raw.length > INNER_BATCH_BYTES) flushInner()
        copyBytes(this.#inner, innerOff, raw)
        innerOff += raw.length
      }
    }
    // After a rewind the stream's base goes first, in the same envelope as
    // what follows it when routed (see SendWindow.base): lost or kept together.
    let base = this.window.base()
    const words = this.window.words
    if (this.window.canSend(limit)) this.window.nextAt((start, len) => {
      if (full || conn.writeBlocked) return false
      if (base !== undefined) {
        frame(skipFrame(base))
        this.window.baseSent()
        base = undefined
      }
      // The common case, a small frame to a linked peer, is copied from the ring without a view (no garbage per message).
      if (!relay && len < FILL_MIN_BYTES) out.addWords(words, start, len)
      else frame(new Uint8Array(words.u8.buffer, start, len))
      total += len
      // Stop after a batch's worth so one busy peer cannot starve the others; the loop comes back.
      if (total >= BATCH_BYTES - 1024) full = true
      return true
    }, limit)
    flushInner()
    out.flush()
    return out.sent || datagrams
  }

  #sendSkip (conn: FrameSink, s: { stream: number; seq: number }): void {
    conn.send(this.#out(skipFrame(s)), 1)
  }

  /** The peer acknowledged past the skip point: it no longer needs telling. */
  settleSkip (stream: number, seq: number): void {
    if (this.#skip !== undefined && this.#skip.stream === stream && seq >= this.#skip.seq) this.#skip = undefined
  }
}

/** onAck's result for an actor that does not own the ring. */
const NOTHING_ACKED: AckResult = Object.freeze({ released: 0, notify: false, throughSeq: 0 })

/** A SKIP frame: everything of `s.stream` up to `s.seq` is settled (expired, or the stream's base after a rewind). */
function skipFrame (s: { stream: number; seq: number }): Uint8Array {
  return encodeFrame({ version: PROTOCOL_VERSION, type: FrameType.SKIP, lane: Lane.CONTROL, flags: 0, src: null, dst: null, stream: s.stream, seq: s.seq, payload: null })
}

/**
 * The WebSocket messages one pump builds for a connection: frames copied
 * back to back into regions of the worker's slab, sent a message at a time.
 */
class Batches {
  readonly #conn: FrameSink
  readonly #slab: SendSlab
  #room: Buffer | undefined
  /** A DataView of #room, made when the first frame is copied into it by words. */
  #roomView: DataView | undefined
  #off = 0
  #frames = 0
  /** Whether anything went to the socket. */
  sent = false

  constructor (conn: FrameSink, slab: SendSlab) {
    this.#conn = conn
    this.#slab = slab
  }

  /** Append a copy of `frame` (`frames` encoded frames back to back) to the current message (a new one if it does not fit). */
  add (frame: Uint8Array, frames = 1): void {
    const room = this.#roomFor(frame.length)
    // Usually a view of a send ring: see copy-bytes.ts for why not set().
    copyBytes(room, this.#off, frame)
    this.#off += frame.length
    this.#frames += frames
  }

  /** {@link add} of the `len` bytes at `start` (4-aligned) of a SharedArrayBuffer seen as `words`, under FILL_MIN_BYTES: copied without a view. */
  addWords (words: { readonly i32: Int32Array; readonly u8: Uint8Array }, start: number, len: number): void {
    const room = this.#roomFor(len)
    const view = this.#roomView ??= new DataView(room.buffer, room.byteOffset, room.length)
    copyWordsOut(words.i32, words.u8, start, len, room, view, this.#off)
    this.#off += len
    this.#frames++
  }

  /** The current message's room with `len` bytes free at #off (the message so far sent first, if they do not fit). */
  #roomFor (len: number): Buffer {
    const room = this.#room
    if (room !== undefined && this.#off + len <= room.length) return room
    this.flush()
    return (this.#room = this.#slab.room(Math.max(len, MIN_ROOM_BYTES)))
  }

  /** Send `frame` as a message of its own, as it is (no copy), after what is batched. */
  alone (frame: Uint8Array): void {
    this.flush()
    this.#conn.send(Buffer.from(frame.buffer, frame.byteOffset, frame.length), 1)
    this.sent = true
  }

  /** Send the current message, if it holds anything. */
  flush (): void {
    if (this.#off > 0) {
      this.#conn.send(this.#slab.take(this.#off), this.#frames)
      this.sent = true
    }
    this.#room = undefined
    this.#roomView = undefined
    this.#off = 0
    this.#frames = 0
  }
}
