import { EventEmitter } from 'node:events'
import type { Logger } from 'pino'
import { MeshError, ErrorCode } from './errors.js'
import { resolveOptions, toWorkerConfig, parseDialAddress, type MeshOptions, type ResolvedMeshOptions } from './options.js'
import { loadIdentity, type Identity } from './identity/identity.js'
import { createLogger } from './observability/logger.js'
import { Supervisor, type IoSlot } from './supervisor/supervisor.js'
import { RingBuffer } from './ring/ring-buffer.js'
import { InboundKind, INBOUND_ENVELOPE_BYTES, readHandle, readKind } from './actor/inbound-record.js'
import { decodeControl } from './codec/control.js'
import { decodeFrame, forEachFrame, frameScratch } from './codec/decode.js'
import { encodeHeaderOnlyInto } from './codec/encode.js'
import { FrameFlag, FrameType, Lane, MAX_LANE, PROTOCOL_VERSION, type FrameHeader } from './codec/frame.js'
import { encodePayload, encodePayloadTo, decodePayload, type EncodedPayload } from './codec/payload.js'
import { CHUNK_BYTES, FRAME_OVERHEAD, MAX_WS_MESSAGE_BYTES, receiveWindowBytes } from './io/io-worker.js'
import { routedHome } from './io/cross-worker.js'
import type { HeapAfterGc } from './util/gc.js'
import { ackEagerBytes, asksForAck } from './delivery/ack-pacing.js'
import { AckBoard, MAX_DISCARDED } from './delivery/ack-board.js'
import { MAX_RETIRED_STREAMS, ReceiveStream, StreamAssemblies, type ReceivePosition } from './delivery/receive-stream.js'
import { LaneQueue } from './delivery/lane-queue.js'
import { SEND_PREFIX_BYTES, SendRecordFlag, writeSendPrefix, type SendRecordPrefix } from './delivery/send-record.js'
import { randomBytes } from 'node:crypto'
import { addBounded } from './util/bounded-set.js'
import { OutboxStore } from './delivery/outbox-store.js'
import { DataDirLock } from './identity/data-dir-lock.js'
import { MeshMetrics } from './observability/metrics.js'
import type { Registry } from 'prom-client'
import type { InboundEvent, IoWorkerStats } from './actor/protocol.js'
import type { RoutingStats } from './router/routing-service.js'
import type { LaneName, MeshEvents, MeshStatus, PeerInfo, RouteInfo } from './events.js'
import { PayloadLender } from './codec/payload-lender.js'
import { decimal } from './util/decimal.js'
import { BufferPool } from './util/buffer-pool.js'

/** Options of {@link Mesh.send}. */
export interface SendOptions {
  /**
   * Messages are in order per sender *and lane*. While the send queue is
   * full, waiting `priority` messages are queued before waiting `bulk` ones,
   * also between the chunks of a large bulk message: a priority message
   * waits for what is already in the queue, not for the rest of a 50 MB
   * transfer. @default 'priority'
   */
  lane?: 'priority' | 'bulk'
  /** Abort a send that is waiting for queue space (or, with `ack`, for the acknowledgement). */
  signal?: AbortSignal
  /**
   * Resolve only when the receiver's application has taken the message (its
   * `message` listeners ran), instead of when it is queued. @default false
   */
  ack?: boolean
  /**
   * `false`: best effort — sent at most once while a connection is up, never
   * acknowledged, resent or held for a peer that is away; when its queue is
   * full it is dropped by `sendQueue.policy` (counted in
   * `meshwork_peer_dropped_total`) and `send` still resolves. At most 64 KiB.
   * Not ordered with reliable messages. @default true
   */
  reliable?: boolean
}

/** Options of {@link Mesh.request}. */
export interface RequestOptions {
  /** Give up (MeshError TIMEOUT) after this long. @default 30000 */
  timeoutMs?: number
  /** Abort the request (MeshError TIMEOUT with the signal's reason as cause). */
  signal?: AbortSignal
  /** @default 'priority' */
  lane?: 'priority' | 'bulk'
}

/** What a request handler gets besides the payload. */
export interface RequestContext {
  /** The requesting peer. */
  from: string
  /** The method called. */
  method: string
}

/** A request handler: its return value (or resolved promise) is the response; a throw becomes REMOTE_ERROR at the caller. */
export type RequestHandler = (payload: any, ctx: RequestContext) => unknown

/** A pub/sub subscriber. */
export type TopicHandler = (message: { from: string; payload: any; lane: LaneName; topic: string; id: string }) => void

/** Default `request` timeout. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000

const LANES: readonly LaneName[] = ['control', 'priority', 'bulk']
/** Own message ids reported undelivered that a peer entry remembers (see PeerEntry.givenUp). */
const MAX_GIVEN_UP = 64
/** Immediate sends after which one send resolves on a macrotask (host event-loop fairness). */
const YIELD_EVERY = 512
/** …or after this long (checked every 32 sends), whichever comes first. */
const YIELD_AFTER_MS = 2
/**
 * Free chunk buffers each of the host's pools keeps (64 KiB each, so ≤ 1 MiB
 * per pool): enough for a 1 MiB message in flight through either pool,
 * little to hold once bulk traffic stops.
 */
const POOL_FREE_BUFFERS = 16
const LANE_NUMBER = { priority: Lane.PRIORITY, bulk: Lane.BULK } as const

/** A peer as the host tracks it: its outbound ring outlives connections and IO worker restarts. */
interface PeerEntry {
  info: PeerInfo
  ring: RingBuffer
  /** Receive side: how far this host's application got with the peer's stream (read by the IO worker for ACKs). */
  board: AckBoard
  rx: ReceiveStream
  /** Chunked messages being reassembled, per stream epoch and lane (lanes interleave their chunks). */
  reassembly: StreamAssemblies
  /**
   * Per stream epoch, a seq of each of its latest chunked messages discarded
   * unfinished (MAX_DISCARDED): told to the sender with our ACKs of that
   * epoch. Per epoch: a stale epoch's discard must not replace the live one's.
   */
  discarded: Map<number, number[]>
  /** Ids of own messages reported undelivered lately (MAX_GIVEN_UP): a send of one that was still being queued rejects. */
  givenUp: Set<number>
  /** Requests out to the peer, by the message id of their REQUEST: one reported undelivered fails at once. */
  requestsByMessage: Map<number, number>
  /** `ack: true` sends waiting for the peer's acknowledgement, by last seq (ascending). */
  ackWaiters: Array<{ id: number; last: number; resolve: (id: string) => void; reject: (e: MeshError) => void }>
  /** Topics the peer subscribes to (it tells us with SUBSCRIBE frames). */
  remoteTopics: Set<string>
  /** Topics the peer published to us while we did not subscribe, and we told it so (see #unwanted). */
  unwanted: Set<string> | undefined
  /**
   * Whether the peer has been given our whole subscription set since it
   * became reachable (peer:up, or its route appeared). Not the same as "we
   * have an entry for it": an IO worker makes the entry (ringFor) as soon as
   * it routes to the peer, which may be before our route table names it.
   */
  topicsSent: boolean
  /** Unreliable messages (`reliable: false`): their own small queue, sent at most once. */
  datagrams: RingBuffer
  /** Unreliable messages refused because their queue was full (drop-newest, or drop-oldest faster than the worker sheds). */
  droppedNewest: number
  /** The IO worker whose actor last served this peer (kept while the peer is away: it sheds unreliable messages). */
  home: IoSlot | undefined
  slot: IoSlot | undefined
  handle: number
  seq: number
  /** Sends waiting for queue room, per lane in call order (a waiting send is never overtaken in its lane). */
  sends: LaneQueue<PendingSend>
  /** The send pump (#pumpSends) is running. */
  pumping: boolean
  /** A durable-outbox reload still writing this peer's stored messages: new sends queue behind it. */
  reloading: Promise<void> | undefined
  // Metrics: plain counters on the host, read when scraped.
  messagesSent: number
  bytesSent: number
  messagesReceived: number
  bytesReceived: number
  /** Frame bytes taken since the peer's ACK was last asked for at once (see delivery/ack-pacing.ts). */
  ackBytes: number
  /** Bulk-lane frames were among them: the lower threshold applies (ackEagerBytes). */
  ackBulk: boolean
  /** Record bytes queued to the peer since we last asked it for a prompt ACK (see delivery/ack-pacing.ts). */
  unaskedBytes: number
  /** Membership forgot the peer (dead or left for delivery.forgetAfterMs): drop the entry once idle (#forget). */
  forget: boolean
  /** #forget is asking the IO workers to drop their actors. */
  forgetting: boolean
  /** Bumped whenever an IO worker takes the entry's rings (ringFor) or the peer is back: a #forget in progress gives up. */
  gen: number
}

/** What is kept of a forgotten peer (Mesh.#forget): where both streams stand, so that meeting it again loses and repeats nothing. */
interface ForgottenPeer {
  /** The last sequence number this node sent the peer: the next message continues the stream after it. */
  seq: number
  /** How far this node's application got with the peer's stream(s). */
  rx: ReceivePosition
  /** Chunked messages of the current stream we discarded unfinished (PeerEntry.discarded): our ACKs still say so. */
  discarded: number[] | undefined
}

/** A send waiting in a peer's LaneQueue for queue room (see Mesh.#pumpSends). */
interface PendingSend {
  type: number
  laneNo: number
  /** Frame flags of the message (CONTINUATION/MORE are added per chunk). */
  flags: number
  /** The message's bytes, copied into chunks of the host's chunk pool (each handed back once written). */
  parts: Buffer[]
  /** The message's size in bytes. */
  size: number
  /** Date.now() at send(): every chunk's enqueue time (they expire together). */
  now: number
  recFlags: number
  signal: AbortSignal | undefined
  /** True once nobody waits for this message any more (a request that timed out or failed): dropped if still unwritten. */
  over: (() => boolean) | undefined
  wantAck: boolean
  /** Chunks written so far. */
  next: number
  /** Sequence numbers of the first and the last chunk written. */
  first: number
  last: number
  durable: Promise<void> | undefined
  /** Reported undelivered while being queued: only an empty closing chunk is left to write, and it is already rejected. */
  cut?: true
  resolve: (id: string) => void
  reject: (err: unknown) => void
}

/**
 * Forgotten peers whose stream positions a node keeps (Mesh.#forget), about
 * 0.5 KiB each. Beyond that the oldest record goes: should that peer come
 * back, our stream to it goes on after every number this node ever used
 * (#seqFloor), so nothing is lost; what it resends that our application had
 * already taken unacknowledged may be delivered again (at most a few
 * milliseconds' worth, as after a receiver restart).
 */
const MAX_FORGOTTEN = 10_000

/** A request whose REQUEST message was given up on (reported undelivered; it may have arrived, only its ACK missing). */
function requestGivenUp (peer: string, reason: string): MeshError {
  return new MeshError(ErrorCode.TIMEOUT, `request to ${peer} was given up on (${reason}): the peer may still have handled it; its response is no longer awaited`, { details: { peer, reason } })
}

/** The rejection of an { ack: true } send whose message was given up on (`reason` as reported). */
function givenUpError (peer: string, id: number, reason?: string): MeshError {
  return new MeshError(ErrorCode.TIMEOUT, `message ${id} to ${peer} was given up on${reason === undefined ? '' : `: ${reason}`}`, { details: { peer, id: String(id), ...(reason === undefined ? {} : { reason }) } })
}

/** Longest request() timeout: what setTimeout takes. */
const MAX_REQUEST_TIMEOUT_MS = 2 ** 31 - 1

/** What #decodeOrDrop returns for a payload it dropped. */
const MALFORMED: unique symbol = Symbol('malformed')

/** One peer's line of Mesh._deliveryStats(). */
interface PeerDeliveryStats { stream: number | undefined; delivered: number; duplicates: number; gaps: number; sent: number; queuedBytes: number; unwantedTopics: number }

/** Topics per peer remembered as told 'del' (see Mesh.#unwanted), at most: the oldest goes first. */
export const MAX_UNWANTED_TOPICS = 1024

/** The closing chunk of a message cut short (see the 'undelivered' event): CONTINUATION without MORE, no bytes. */
const CLOSING_CHUNK = Buffer.alloc(0)

/** Event name → listener arguments, in the form node:events' typed EventEmitter takes. */
export type MeshEventArgs = { [K in keyof MeshEvents]: [MeshEvents[K]] }

/**
 * A mesh node. Made by {@link createMesh}. The main thread only validates,
 * encodes into rings and dispatches events: sockets, timers and handshakes
 * live in worker threads.
 */
export class Mesh extends EventEmitter<MeshEventArgs> {
  /** This node's peer id (base32 of its ed25519 public key). */
  readonly id: string
  readonly #opts: ResolvedMeshOptions
  readonly #log: Logger
  readonly #peers = new Map<string, PeerEntry>()
  /** Each member's incarnation as last heard (its start time: a higher one is a restart); dropped when membership forgets it. */
  readonly #incarnations = new Map<string, number>()
  /** Peers dropped from #peers after membership forgot them (see #forget), oldest first: at most MAX_FORGOTTEN. */
  readonly #forgotten = new Map<string, ForgottenPeer>()
  /**
   * The highest `seq` of a ForgottenPeer dropped from #forgotten: a peer with
   * no record starts its stream after it. It may be that peer's (its receiver
   * may still stand there), and a higher start only costs the receiver a SKIP.
   */
  #seqFloor = 0
  #maxForgotten = MAX_FORGOTTEN
  readonly #byHandle = new Map<IoSlot, Map<number, PeerEntry>>()
  readonly #upWaiters = new Map<string, Array<() => void>>()
  readonly #header = new Uint8Array(SEND_PREFIX_BYTES + FRAME_OVERHEAD)
  readonly #headerView = new DataView(this.#header.buffer, this.#header.byteOffset, this.#header.byteLength)
  /** This process's stream epoch: receivers key their dedup state by it. */
  readonly #epoch: number
  readonly #chunkBytes: number
  /** Copies of messages waiting for send-queue room, one buffer per chunk. */
  readonly #chunkPool: BufferPool
  /** Copies of received chunks until their message is whole (shared by every peer's Reassembly). */
  readonly #assemblyPool = new BufferPool(CHUNK_BYTES, POOL_FREE_BUFFERS)
  /** `borrowPayloads`: lends one reused buffer to the `message` listeners. */
  readonly #lender: PayloadLender | undefined
  readonly #handlers = new Map<string, RequestHandler>()
  readonly #requests = new Map<number, { peer: string; resolve: (v: unknown) => void; reject: (e: MeshError) => void; timer: NodeJS.Timeout | undefined; cleanup: () => void }>()
  // Random start (per process): a restarted node with the same id must not take a response meant for its
  // previous process's request (still queued at the peer, or resent from its outbox) for its own new one.
  #nextRequest = randomBytes(4).readUInt32LE(0) * 0x1000
  readonly #topics = new Map<string, Set<TopicHandler>>()
  #sup!: Supervisor
  readonly #metrics: MeshMetrics
  #addresses: string[] = []
  #closing: Promise<void> | undefined
  #closed = false
  /** Request handlers running (their responses not yet queued): a graceful close() waits for them. */
  #serving = 0
  /** Called when #serving falls to 0 (close() waiting for it). */
  #servedAll: (() => void) | undefined
  /**
   * A graceful close() is under way and the workers still run: responses
   * (of handlers that were running, and CLOSED refusals) may still be queued,
   * and sends queued before close() keep being written, while nothing new is
   * accepted from the application.
   */
  #answering = false
  /** Ends close()'s wait for #serving early (destroy() during a graceful close). */
  #endDrain: (() => void) | undefined
  #sinceYield = 0
  #lastYield = 0
  /** With dataDir: unacknowledged reliable messages, durable across a restart of this process. */
  readonly #store: OutboxStore | undefined
  /** With dataDir: this node's claim on it (one node per dataDir). */
  readonly #lock: DataDirLock | undefined
  /** Until create() resolves (see #onLockLost). */
  #starting = true
  /** The dataDir lock went to another process (see #onLockLost). */
  #lockLost: MeshError | undefined
  #discarded = 0
  #unreliableSent = 0
  // Scratch objects of the send path, filled per message and read synchronously
  // (never kept): at 64 B a send allocated ~820 B of young objects, ~300 B of
  // it these three and a header view (sampling heap profiler).
  readonly #enc: EncodedPayload = { bytes: new Uint8Array(0), flags: 0 }
  readonly #frameHeader: FrameHeader = { version: PROTOCOL_VERSION, type: 0, lane: 0, flags: 0, src: null, dst: null, stream: 0, seq: 0 }
  readonly #prefix: SendRecordPrefix = { seq: 0, enqueuedAt: 0, stream: 0, chunk: 0, flags: 0 }
  /** Inbound frames are parsed into this one object (forEachFrame `into`), unless a listener re-entered #dispatch (then `#rxFrameBusy`). */
  readonly #rxFrame = frameScratch()
  #rxFrameBusy = false
  #localPublishes = 0
  #status: MeshStatus = { state: 'healthy', members: 0, reachable: 0, unreachable: 0 }
  #routes: RouteInfo[] = []
  /** Destinations of #routes (other than this node): what #routed looks up. */
  #reachable = new Set<string>()

  private constructor (opts: ResolvedMeshOptions, identity: Identity, log: Logger, store: OutboxStore | undefined, lock: DataDirLock | undefined) {
    super()
    this.#opts = opts
    this.id = identity.id
    this.#log = log
    this.#store = store
    this.#lock = lock
    // A new epoch per process, with a durable outbox too: its stored messages are resent in the
    // epochs they were first sent in (their frames say which), so receivers dedup them, while new
    // messages never take a (epoch, seq) an earlier process may have sent, even without a durable
    // copy (a failed outbox write, then a crash: lastSeq never saw it).
    this.#epoch = randomBytes(4).readUInt32LE(0) || 1
    this.#lender = opts.borrowPayloads ? new PayloadLender(CHUNK_BYTES) : undefined
    // A chunk plus its record framing must fit half the send queue ring.
    this.#chunkBytes = Math.min(CHUNK_BYTES, Math.floor(opts.sendQueue.capacityBytes / 2) - SEND_PREFIX_BYTES - FRAME_OVERHEAD - 64)
    this.#chunkPool = new BufferPool(this.#chunkBytes, POOL_FREE_BUFFERS)
    this.#metrics = new MeshMetrics({
      peers: () => [...this.#peers.values()].map((e) => ({
        id: e.info.id,
        state: e.info.state,
        messagesSent: e.messagesSent,
        messagesReceived: e.messagesReceived,
        bytesSent: e.bytesSent,
        bytesReceived: e.bytesReceived,
        queueBytes: e.ring.usedBytes(),
        queueCapacity: e.ring.capacity,
        dropped: e.droppedNewest + e.board.dropped(),
      })),
      ioStats: async () => await this._ioStats(),
      inboundRings: () => this.#sup.slots.map((sl) => ({ worker: sl.index, usedBytes: sl.inbound.usedBytes(), capacity: sl.inbound.capacity })),
      workerRestarts: () => this.#sup.restarts,
    }, opts.metrics?.registry as Registry | undefined)
  }

  /** @internal use {@link createMesh}. */
  static async create (options?: MeshOptions): Promise<Mesh> {
    const opts = resolveOptions(options)
    refuseUnenforced(opts)
    const log = createLogger(opts.logger)
    const lock = opts.dataDir === undefined ? undefined : await DataDirLock.acquire(opts.dataDir)
    let store: OutboxStore | undefined
    const undo = async (): Promise<void> => {
      try {
        await store?.close()
      } catch (err) {
        log.warn({ component: 'mesh', event: 'outbox:close-failed', err: (err as Error).message }, 'closing the durable outbox failed')
      } finally {
        await lock?.release()
      }
    }
    let identity: Identity
    try {
      identity = await loadIdentity({ dataDir: opts.dataDir, identity: opts.identity as any })
    } catch (err) {
      await undo()
      throw err
    }
    if (opts.dataDir !== undefined) {
      try {
        // noSync: a committed message survives a crash or kill of this
        // process (it is in the OS page cache), not a power loss; an fsync per
        // commit would cost every durable send about a disk flush.
        store = await OutboxStore.open(opts.dataDir, { noSync: true })
      } catch (err) {
        await undo()
        throw new MeshError(ErrorCode.INVALID_OPTIONS, `options.dataDir: cannot open the outbox in ${opts.dataDir}: ${(err as Error).message}`, { cause: err, details: { path: 'options.dataDir' } })
      }
    }
    let mesh: Mesh
    try {
      mesh = new Mesh(opts, identity, log.child({ node: identity.id }), store, lock)
    } catch (err) {
      await undo()
      // prom-client refuses a second registration of the same metric name.
      throw new MeshError(ErrorCode.INVALID_OPTIONS, `options.metrics.registry: ${(err as Error).message} (use one registry per mesh)`, { cause: err, details: { path: 'options.metrics.registry' } })
    }
    try {
      await mesh.#start(identity)
    } catch (err) {
      await undo()
      throw err
    }
    mesh.#starting = false
    if (mesh.#lockLost !== undefined) {
      // Lost before anyone could listen for `error`: the caller hears it here.
      await mesh.destroy()
      throw mesh.#lockLost
    }
    // Peers may already be linked and sending: their messages and events are
    // dispatched from the next macrotask on, after the caller's `await
    // createMesh()` has resumed and attached its listeners.
    setImmediate(() => { mesh.#sup.openInbound() })
    return mesh
  }

  /** Resolved listen URLs, e.g. `['ws://127.0.0.1:41231']`. Empty for a dial-only node. */
  get addresses (): string[] { return [...this.#addresses] }

  /** The resolved, frozen options. */
  get options (): ResolvedMeshOptions { return this.#opts }

  async #start (identity: Identity): Promise<void> {
    const level = typeof this.#log.level === 'string' ? this.#log.level : 'info'
    // The inbound ring must hold several of the largest WebSocket messages.
    const ringBytes = Math.max(this.#opts.ringBytes, 4 * (MAX_WS_MESSAGE_BYTES + FRAME_OVERHEAD + 64))
    this.#sup = new Supervisor({
      selfId: this.id,
      identityDer: identity.privateDer,
      config: toWorkerConfig(this.#opts),
      listen: this.#opts.listen.map((l) => l.url),
      ioThreads: this.#opts.threads.io,
      ringBytes,
      logger: this.#log,
      logLevel: level,
      lock: this.#lock === undefined ? undefined : { file: this.#lock.file, text: this.#lock.text },
      host: {
        ringFor: (peerId) => { const e = this.#entryFor(peerId); e.gen++; return { ring: { sab: e.ring.sab, byteOffset: e.ring.byteOffset }, board: e.board.sab, datagrams: { sab: e.datagrams.sab, byteOffset: e.datagrams.byteOffset } } },
        dispatch: (slot, rec) => { this.#dispatch(slot, rec) },
        workerLost: (slot) => { this.#workerLost(slot) },
        workerRestarted: (slot) => { this.#redial(slot); this.#adoptOrphans() },
        membership: {
          routes: (routes, changes) => { this.#onRoutes(routes, changes) },
          status: (st) => { this.#onStatus(st) },
          member: (m) => { this.#onMember(m) },
          forgotten: async (id) => await this.#onForgotten(id),
          lockLost: (why) => { this.#onLockLost(why) },
          lockRecreated: (why) => { this.#log.warn({ component: 'mesh', event: 'lock:recreated', err: why }, 'dataDir lock file was missing; created again') },
        },
      },
    })
    try {
      this.#addresses = await this.#sup.start()
    } catch (err) {
      await this.#sup.destroy()
      throw new MeshError(ErrorCode.INVALID_OPTIONS, `cannot listen on ${this.#opts.listen.map((l) => l.url).join(', ')}: ${(err as Error).message}`, { cause: err })
    }
    this.#log.info({ component: 'mesh', event: 'start', peer: this.id, addresses: this.#addresses }, `meshwork node ${this.id} started`)
    // Not awaited: a backlog larger than a queue waits for the peer to come back.
    this.#reloadOutbox().catch((err: unknown) => { this.#error(new MeshError(ErrorCode.CLOSED, `reloading the durable outbox failed: ${(err as Error).message}`, { cause: err })) })
    for (const b of this.#opts.bootstrap) {
      // The IO worker keeps retrying with backoff: a bootstrap peer that is
      // not up yet is no fault. Refusals that cannot heal are logged there.
      this.#dial(b.url, b.peerId, true).catch((err: MeshError) => {
        this.#log.info({ component: 'mesh', event: 'bootstrap:retrying', address: b.url, err: err.message }, 'bootstrap peer not reachable yet; retrying')
      })
    }
  }

  /**
   * Send `payload` to peer `to`, reliably: delivered to its application
   * exactly once and in order (per sender and lane), across reconnects; held while the
   * peer is away (up to `delivery.retainMs`, then reported `undelivered`).
   * Resolves with the message id once the message is queued (in this node's
   * send queue for that peer), or, with `{ ack: true }`, once the receiver's
   * application has taken it. Messages larger than 64 KiB travel in chunks.
   * @throws MeshError UNKNOWN_PEER (never linked), PAYLOAD_TOO_LARGE, QUEUE_FULL
   *   (no room within sendQueue.blockTimeoutMs), TIMEOUT (aborted, or an acked
   *   send given up on), CLOSED.
   */
  send (to: string, payload: unknown, options?: SendOptions): Promise<string> {
    const laneNo = laneNumber(options?.lane)
    if (laneNo instanceof MeshError) return Promise.reject(laneNo)
    if (options?.reliable === false) {
      if (options.ack === true) return Promise.reject(new MeshError(ErrorCode.INVALID_OPTIONS, 'options.ack cannot be combined with options.reliable: false (nothing acknowledges an unreliable message)'))
      return this.#sendUnreliable(to, laneNo, payload)
    }
    return this.#send(to, FrameType.DATA, laneNo, payload, options?.ack === true, options?.signal)
  }

  /**
   * The checks every send starts with: open, a known peer, an encodable
   * payload within the limit (`unreliable`: one record of the peer's
   * unreliable queue, never chunked). The encoded payload is left in
   * this.#enc, valid until the next send.
   */
  #target (to: string, payload: unknown, unreliable: boolean, response = false): PeerEntry | MeshError {
    // During a graceful close, responses still go (see #answering).
    if (this.#closing !== undefined && !(response && this.#answering)) return new MeshError(ErrorCode.CLOSED, 'the mesh is closed')
    const entry = this.#peers.get(to)
    if (entry === undefined) return new MeshError(ErrorCode.UNKNOWN_PEER, `unknown peer ${String(to)}: not linked to this node`, { details: { peer: to } })
    let enc
    try {
      enc = encodePayloadTo(payload, this.#enc)
    } catch (err) {
      return new MeshError(ErrorCode.INVALID_OPTIONS, `payload cannot be encoded: ${(err as Error).message}`, { cause: err })
    }
    const m = unreliable ? Math.min(this.#opts.maxMessageBytes, this.#chunkBytes, entry.datagrams.maxRecordBytes - FRAME_OVERHEAD) : this.#opts.maxMessageBytes
    if (enc.bytes.length > m) {
      const limit = unreliable ? 'unreliable messages are not chunked' : 'maxMessageBytes'
      return new MeshError(ErrorCode.PAYLOAD_TOO_LARGE, `payload of ${enc.bytes.length} bytes exceeds ${m} (${limit})`, { details: { bytes: enc.bytes.length, max: m } })
    }
    return entry
  }

  #sendUnreliable (to: string, laneNo: number, payload: unknown): Promise<string> {
    const entry = this.#target(to, payload, true)
    if (entry instanceof MeshError) return Promise.reject(entry)
    const enc = this.#enc
    // Stream 0, seq 0: outside every reliable stream (epochs are never 0).
    const h = this.#header
    const fh = this.#frameHeader
    fh.type = FrameType.DATA; fh.lane = laneNo; fh.flags = enc.flags; fh.stream = 0; fh.seq = 0
    const n = encodeHeaderOnlyInto(fh, enc.bytes.length, h, 0)
    const id = 'u' + decimal(++this.#unreliableSent)
    if (entry.datagrams.tryWriteHeaded(h, n, enc.bytes)) {
      entry.messagesSent++
      entry.bytesSent += enc.bytes.length
    } else {
      // Full: the newest is refused here (drop-newest, or drop-oldest while the
      // worker has not shed yet); counted, never an error for best effort.
      entry.droppedNewest++
    }
    // Either way the worker serving the peer looks: it sends, or sheds the oldest.
    this.#wake(entry)
    return this.#settled(id)
  }

  /**
   * The promise of a send that is done at once. A `for (;;) await send()`
   * loop whose sends all resolve at once would never let the event loop turn
   * (the host's own timers and I/O, and our inbound dispatch, would starve):
   * every YIELD_EVERY such sends, or after YIELD_AFTER_MS, one resolves on the
   * next macrotask instead. Reliable and unreliable sends count together.
   */
  #settled (id: string): Promise<string> {
    if (++this.#sinceYield >= YIELD_EVERY || (this.#sinceYield & 31) === 0 && performance.now() - this.#lastYield > YIELD_AFTER_MS) {
      this.#sinceYield = 0
      this.#lastYield = performance.now()
      return new Promise((resolve) => { setImmediate(resolve, id) })
    }
    return Promise.resolve(id)
  }

  #send (to: string, type: number, laneNo: number, payload: unknown, ack: boolean, signal: AbortSignal | undefined, over?: () => boolean): Promise<string> {
    const entry = this.#target(to, payload, false, type === FrameType.RESPONSE)
    if (entry instanceof MeshError) return Promise.reject(entry)
    const enc = this.#enc
    const bytes = enc.bytes
    // The receiver acknowledges at once what a caller waits on (it may otherwise hold its ACK back briefly).
    const flags = ack ? enc.flags | FrameFlag.ACK_REQUESTED : enc.flags
    const chunks = Math.max(1, Math.ceil(bytes.length / this.#chunkBytes))
    const now = Date.now()
    // The durable outbox deletes what the peer acknowledged: it needs every ack.
    // An expired SUBSCRIBE update is not reported: the application never saw its id.
    const notify = (ack || this.#store !== undefined ? SendRecordFlag.NOTIFY_ACK : 0) | (type === FrameType.SUBSCRIBE ? SendRecordFlag.INTERNAL : 0)
    // Fast path: one record, nobody waiting on this lane or a higher one, and room now. Sequence numbers are
    // taken only when a record is written, so ring order = sequence order and
    // a send that gives up leaves no gap.
    if (chunks === 1 && entry.reloading === undefined && !entry.sends.busyFor(laneNo)) {
      const seq = entry.seq + 1
      const asked = flags | this.#askFlag(entry, bytes.length)
      const n = this.#recordHeader(type, laneNo, asked, seq, 0, now, notify, bytes.length)
      if (n < 0) return Promise.reject(new MeshError(ErrorCode.PROTOCOL, 'internal: frame header does not fit its scratch buffer'))
      if (laneRoom(entry.ring, laneNo, n + bytes.length) && entry.ring.tryWriteHeaded(this.#header, n, bytes)) {
        entry.seq = seq
        this.#queued(entry, asked, bytes.length)
        this.#wake(entry, true)
        if (type !== FrameType.SUBSCRIBE) { entry.messagesSent++; entry.bytesSent += bytes.length }
        const durable = this.#persist(entry, seq, seq, now, n, bytes)
        if (durable !== undefined) {
          return durable.then(async () => {
            if (!ack) return decimal(seq)
            // Given up on (expired) while its durable copy was being written: no waiter existed to reject.
            if (entry.givenUp.has(seq)) throw givenUpError(entry.info.id, seq)
            return await this.#ackPromise(entry, seq, seq, signal)
          })
        }
        if (ack) return this.#ackPromise(entry, seq, seq, signal)
        return this.#settled(decimal(seq))
      }
    }
    // Copy: the caller may reuse its buffer, and msgpackr reuses its own, while
    // we wait. Into recycled chunk buffers (see util/buffer-pool.ts): a fresh
    // copy of a 1 MiB bulk message cost the sending host ~0.7 ms.
    return this.#sendBlocking(entry, type, laneNo, flags, this.#chunkPool.copyIn(bytes), bytes.length, now, notify, signal, ack, over)
  }

  /**
   * FrameFlag.ACK_REQUESTED if a record of `bytes` more asks the peer for a
   * prompt ACK (delivery/ack-pacing.ts asksForAck), else 0.
   */
  #askFlag (entry: PeerEntry, bytes: number): number {
    return asksForAck(entry.unaskedBytes, bytes, entry.ring.capacity) ? FrameFlag.ACK_REQUESTED : 0
  }

  /** A record of `bytes` with frame `flags` is in the peer's queue: count it towards the next ask, or start over if it asked. */
  #queued (entry: PeerEntry, flags: number, bytes: number): void {
    entry.unaskedBytes = (flags & FrameFlag.ACK_REQUESTED) !== 0 ? 0 : entry.unaskedBytes + bytes
  }

  /** Encode the send-queue record prefix and frame header of one chunk into the scratch buffer. */
  #recordHeader (type: number, laneNo: number, flags: number, seq: number, chunk: number, now: number, recFlags: number, payloadBytes: number): number {
    const h = this.#header
    const p = this.#prefix
    p.seq = seq; p.enqueuedAt = now; p.stream = this.#epoch; p.chunk = chunk; p.flags = laneNo === Lane.BULK ? recFlags | SendRecordFlag.BULK : recFlags
    writeSendPrefix(h, 0, p, this.#headerView)
    const fh = this.#frameHeader
    fh.type = type; fh.lane = laneNo; fh.flags = flags; fh.stream = this.#epoch; fh.seq = seq
    const n = encodeHeaderOnlyInto(fh, payloadBytes, h, SEND_PREFIX_BYTES)
    return n < 0 ? n : SEND_PREFIX_BYTES + n
  }

  /**
   * A send that must wait for queue room, or behind others: queued on its
   * lane (see LaneQueue) for the peer's send pump. Resolves like a fast-path
   * send once every chunk is in the queue (and, as asked, stored or acked).
   */
  #sendBlocking (entry: PeerEntry, type: number, laneNo: number, flags: number, parts: Buffer[], size: number, now: number, recFlags: number, signal: AbortSignal | undefined, wantAck: boolean, over?: () => boolean): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      entry.sends.push(laneNo, { type, laneNo, flags, parts, size, now, recFlags, signal, over, wantAck, next: 0, first: 0, last: 0, durable: undefined, resolve, reject })
      void this.#pumpSends(entry)
    })
  }

  /**
   * Write waiting sends into the peer's queue as room frees, highest lane
   * first, chunk by chunk: a priority message waits for the queue to drain
   * what is already in it, not for the rest of a large bulk message. Ring
   * order is sequence order (numbers are taken as records are written), so
   * the stream stays in order on the wire; the receiver reassembles chunked
   * messages per lane. A send that has written nothing is refused with
   * QUEUE_FULL once no record could be written for blockTimeoutMs; one that
   * is partly queued always finishes (the receiver would wait for the rest),
   * unless the receiver reported it discarded: then it is closed with one
   * empty chunk (see the 'undelivered' event).
   */
  async #pumpSends (entry: PeerEntry): Promise<void> {
    if (entry.pumping) return
    entry.pumping = true
    try {
      if (entry.reloading !== undefined) await entry.reloading
      const blockMs = this.#opts.sendQueue.blockTimeoutMs
      let progressAt = Date.now()
      let warned = false
      for (;;) {
        const p = entry.sends.peek()
        if (p === undefined) return
        if (this.#closing !== undefined && !this.#answering) {
          for (const q of entry.sends.removeWhere(() => true)) q.reject(new MeshError(ErrorCode.CLOSED, 'the mesh closed while the send waited for queue space'))
          return
        }
        // Aborted, or a request that ended (its deadline) while it waited for queue room: never sent, so a handler never runs.
        const aborted = p.signal?.aborted === true
        if (p.next === 0 && (aborted || p.over?.() === true)) {
          entry.sends.shift(p.laneNo)
          for (const b of p.parts) this.#chunkPool.give(b)
          p.reject(aborted
            ? new MeshError(ErrorCode.TIMEOUT, 'send aborted', { cause: p.signal?.reason })
            : new MeshError(ErrorCode.TIMEOUT, 'request ended before it was queued'))
          continue
        }
        const before = p.next
        const need = this.#writeChunks(entry, p)
        if (p.next > before) { progressAt = Date.now(); warned = false }
        if (need === 0) {
          entry.sends.shift(p.laneNo)
          // A cut message was settled when it was cut (see the 'undelivered' event).
          if (p.cut !== true) this.#finishSend(entry, p).then(p.resolve, p.reject)
          continue
        }
        let left = progressAt + blockMs - Date.now()
        if (left <= 0) {
          // The queue stayed full: refuse what has not started (it can be retried); a partly queued message goes on.
          for (const q of entry.sends.removeWhere((q) => q.next === 0)) {
            q.reject(new MeshError(ErrorCode.QUEUE_FULL, `send queue to ${entry.info.id} stayed full for ${blockMs} ms`, { details: { peer: entry.info.id, capacityBytes: this.#opts.sendQueue.capacityBytes } }))
          }
          if (entry.sends.size === 0) return
          if (!warned) {
            warned = true
            this.#log.warn({ component: 'mesh', event: 'send:stalled', peer: entry.info.id, chunk: p.next, chunks: p.parts.length }, 'chunked message stalled half-queued; still waiting')
          }
          left = blockMs
        }
        // Atomics.waitAsync inside: no timer on the host's loop. Wait for a
        // quarter of the ring, not just this chunk: one wake-up then admits
        // many records instead of ping-ponging per record.
        await entry.ring.waitForSpace(Math.max(need, Math.min(entry.ring.maxRecordBytes, entry.ring.capacity >> 2)), Math.min(left, 250))
      }
    } finally {
      entry.pumping = false
    }
  }

  /**
   * Write as many of `p`'s remaining chunks as fit now. Returns 0 when the
   * whole message is queued, else the record size the next chunk needs.
   */
  #writeChunks (entry: PeerEntry, p: PendingSend): number {
    const chunks = p.parts.length
    while (p.next < chunks) {
      const i = p.next
      const part = p.parts[i] as Buffer
      const more = i < chunks - 1
      const cflags = p.flags | (i > 0 ? FrameFlag.CONTINUATION : 0) | (more ? FrameFlag.MORE : 0) | this.#askFlag(entry, part.length)
      const seq = entry.seq + 1
      // A chunk's record carries its distance to the first chunk (seq - first = message id), which
      // other lanes' messages may make larger than its index, and whether more chunks follow.
      const n = this.#recordHeader(p.type, p.laneNo, cflags, seq, i === 0 ? 0 : seq - p.first, p.now, p.recFlags | (more ? SendRecordFlag.MORE : 0), part.length)
      // A cut send's empty closing chunk takes any room (see the 'undelivered' event): it must not wait behind the lane's reserve.
      if (p.cut !== true && !laneRoom(entry.ring, p.laneNo, n + part.length)) return Math.min(entry.ring.maxRecordBytes, n + part.length + laneReserve(entry.ring, p.laneNo))
      if (!entry.ring.tryWriteHeaded(this.#header, n, part)) return n + part.length
      entry.seq = seq
      this.#queued(entry, cflags, part.length)
      if (i === 0) p.first = seq
      p.last = seq
      p.next++
      this.#wake(entry, true)
      p.durable = this.#persist(entry, seq, p.first, p.now, n, part) ?? p.durable
      // In the ring (and copied by #persist): the buffer serves the next send.
      this.#chunkPool.give(part)
    }
    return 0
  }

  /** A send whose chunks are all queued: count it, then resolve as asked (stored, acked, or at once). */
  async #finishSend (entry: PeerEntry, p: PendingSend): Promise<string> {
    if (p.type !== FrameType.SUBSCRIBE) { entry.messagesSent++; entry.bytesSent += p.size }
    const last = p.last
    // Reported undelivered while its chunks were being queued or stored (see the 'undelivered' event).
    if (p.wantAck && entry.givenUp.has(p.first)) throw givenUpError(entry.info.id, p.first)
    const acked = (p.recFlags & SendRecordFlag.NOTIFY_ACK) !== 0 && this.#store === undefined ? this.#ackPromise(entry, p.first, last, p.signal) : undefined
    if (p.durable !== undefined) await p.durable
    if (this.#store !== undefined && p.wantAck) {
      if (entry.givenUp.has(p.first)) throw givenUpError(entry.info.id, p.first)
      return await this.#ackPromise(entry, p.first, last, p.signal)
    }
    if (acked !== undefined) return await acked
    return decimal(p.first)
  }

  /**
   * Durable outbox: store the record just written (header scratch bytes
   * SEND_PREFIX_BYTES..n plus `payload`) and, once committed, let the IO
   * worker send it. Undefined without a dataDir.
   */
  #persist (entry: PeerEntry, seq: number, messageId: number, now: number, n: number, payload: Uint8Array): Promise<void> | undefined {
    const store = this.#store
    if (store === undefined) return undefined
    const h = this.#header
    const frame = Buffer.allocUnsafe(n - SEND_PREFIX_BYTES + payload.length)
    frame.set(h.subarray(SEND_PREFIX_BYTES, n), 0)
    frame.set(payload, n - SEND_PREFIX_BYTES)
    const release = (): void => { entry.board.commit(seq); this.#wake(entry) }
    return store.put(entry.info.id, seq, frame, now, messageId).then(release, (err: unknown) => {
      // Still send it (the stream must not stall), but say the guarantee is gone for it.
      release()
      this.#error(new MeshError(ErrorCode.CLOSED, `durable outbox write failed for message ${messageId} to ${entry.info.id}: ${(err as Error).message}; sent without a durable copy`, { cause: err }))
    })
  }

  /**
   * After a restart with the same dataDir: put every stored, unacknowledged
   * message back into its peer's send queue (same stream epoch and sequence
   * numbers, so receivers drop what they already had). Runs before any dial.
   */
  async #reloadOutbox (): Promise<void> {
    const store = this.#store
    if (store === undefined) return
    const byPeer = new Map<string, Array<{ seq: number; frame: Uint8Array; enqueuedAt: number; messageId: number }>>()
    for (const m of store.pending()) {
      let list = byPeer.get(m.peer)
      if (list === undefined) { list = []; byPeer.set(m.peer, list) }
      list.push(m)
    }
    let n = 0
    const reloads = Promise.all([...byPeer].map(async ([peer, list]) => {
      const e = this.#entryFor(peer)
      for (const m of list) if (m.seq > e.seq) e.seq = m.seq
      // A message's last stored record: the records before it carry MORE (see SendWindow.expire).
      const lastOf = new Map<number, number>()
      for (const m of list) lastOf.set(m.messageId, Math.max(m.seq, lastOf.get(m.messageId) ?? 0))
      // New sends queue behind the reload (#pumpSends waits for it; the fast
      // path is closed): their higher sequence numbers must not overtake these.
      const mine = (async () => {
        for (const m of list) {
          const prefix = new Uint8Array(SEND_PREFIX_BYTES)
          const more = m.seq < (lastOf.get(m.messageId) ?? m.seq) ? SendRecordFlag.MORE : 0
          // The stored frame is ours: its type says whether it is the mesh's own (a SUBSCRIBE update), its lane whether it is bulk.
          const f = decodeFrame(m.frame, 0).frame
          const kind = (f.type === FrameType.SUBSCRIBE ? SendRecordFlag.INTERNAL : 0) | (f.lane === Lane.BULK ? SendRecordFlag.BULK : 0)
          writeSendPrefix(prefix, 0, { seq: m.seq, enqueuedAt: m.enqueuedAt, stream: f.stream, chunk: m.seq - m.messageId, flags: SendRecordFlag.NOTIFY_ACK | more | kind })
          while (!e.ring.tryWrite2(prefix, m.frame)) {
            if (this.#closing !== undefined) return
            // More stored than one queue holds: the worker drains it once the peer is back.
            await e.ring.waitForSpace(m.frame.length + SEND_PREFIX_BYTES, 1000)
          }
          e.board.commit(m.seq)
          this.#wake(e)
          n++
        }
      })()
      e.reloading = mine
      try { await mine } finally {
        e.reloading = undefined
        if (e.sends.size > 0) void this.#pumpSends(e)
      }
    }))
    // Each peer's entry exists now (#entryFor above): a peer that never links again must not hold its messages forever.
    this.#adoptOrphans(byPeer.keys())
    await reloads
    if (n > 0) this.#log.info({ component: 'mesh', event: 'outbox:reloaded', messages: n }, `resending ${n} unacknowledged message(s) from the durable outbox`)
  }

  #ackPromise (entry: PeerEntry, first: number, last: number, signal: AbortSignal | undefined): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      if (signal === undefined) {
        entry.ackWaiters.push({ id: first, last, resolve, reject })
        return
      }
      const onAbort = (): void => {
        this.#dropAckWaiter(entry, first)
        reject(new MeshError(ErrorCode.TIMEOUT, 'send aborted while waiting for the acknowledgement (the message stays queued)', { cause: signal.reason }))
      }
      signal.addEventListener('abort', onAbort, { once: true })
      // Settled otherwise: let go of the listener (a long-lived signal passed to many sends collected one each).
      const done = (): void => { signal.removeEventListener('abort', onAbort) }
      entry.ackWaiters.push({ id: first, last, resolve: (id) => { done(); resolve(id) }, reject: (e) => { done(); reject(e) } })
    })
  }

  #dropAckWaiter (entry: PeerEntry, id: number): void {
    const i = entry.ackWaiters.findIndex((w) => w.id === id)
    if (i >= 0) entry.ackWaiters.splice(i, 1)
  }

  /**
   * Dial a peer at run time: `ws://host:port` or `<peerId>@ws://host:port`.
   * Resolves with the peer once linked (also when it already was).
   * @throws MeshError INVALID_OPTIONS (bad URL), PROTOCOL/UNAUTHORIZED (refused), NO_ROUTE (unreachable), TIMEOUT, CLOSED.
   */
  async connect (url: string): Promise<PeerInfo> {
    const addr = parseDialAddress(url, 'connect(url)')
    if (addr.url.startsWith('wss:')) throw new MeshError(ErrorCode.INVALID_OPTIONS, 'connect(url): wss:// is not supported by this version of meshwork yet')
    const peerId = await this.#dial(addr.url, addr.peerId)
    await this.#waitUp(peerId)
    const e = this.#peers.get(peerId)
    if (e === undefined) throw new MeshError(ErrorCode.NO_ROUTE, `peer ${peerId} disconnected right after the handshake`)
    return { ...e.info }
  }

  /**
   * Prometheus text exposition of this node's metrics (`meshwork_*`): per-peer
   * messages, bytes, queue fill, state and heartbeat RTT histogram; frames
   * rejected and handshakes refused by reason; transport totals; reconnect
   * attempts; ring fill; worker restarts. With `options.metrics.registry` the
   * same series live in the host's prom-client registry.
   */
  async metrics (): Promise<string> {
    return await this.#metrics.text()
  }

  /**
   * The mesh's state as this node sees it (SWIM membership): `healthy`,
   * `degraded` (some known members unreachable) or `critical` (half or more).
   */
  status (): MeshStatus { return { ...this.#status } }

  #onStatus (st: MeshStatus): void {
    const prev = this.#status
    this.#status = { state: st.state, members: st.members, reachable: st.reachable, unreachable: st.unreachable }
    if (prev.state !== st.state || prev.members !== st.members || prev.unreachable !== st.unreachable) this.#emitSafe('status', { ...this.#status })
  }

  /**
   * The route table (link-state routing, computed in the router worker): per
   * reachable destination its next hop, hop count, cost and the k shortest
   * loop-free paths (each a list of peer ids from this node's next hop to
   * the destination). Directly linked peers appear with `via === to`.
   */
  routes (): RouteInfo[] { return this.#routes.map((r) => ({ ...r, paths: r.paths.map((p) => [...p]) })) }

  #onRoutes (routes: RouteInfo[], changes: Array<{ to: string; via: string | undefined; previousVia: string | undefined }>): void {
    this.#routes = routes
    // Reachable through relays: such a peer can be sent to (its queue is made
    // now), and learns our subscriptions like a direct peer does.
    const reachable = new Set<string>()
    this.#reachable = reachable
    for (const r of routes) {
      if (r.to === this.id) continue
      reachable.add(r.to)
      const e = this.#entryFor(r.to)
      // Reachable: not departed (membership may not have heard yet).
      if (e.forget) this.#isBack(e)
      if (e.topicsSent) continue
      e.topicsSent = true
      // An empty set tells a new peer nothing (its view of us starts empty), and
      // every node joining a mesh of N would cost 2N relayed frames and their ACKs.
      // A view left from an earlier run of this node under its id is put right
      // by its first stray publication (see #unwanted).
      if (this.#topics.size > 0) this.#announce('set', [...this.#topics.keys()], e)
    }
    // A peer gone from the routes may come back restarted (same id, dataDir)
    // with an empty view of us: it gets the set again when its route returns.
    for (const e of this.#peers.values()) if (e.topicsSent && !reachable.has(e.info.id) && e.slot === undefined) e.topicsSent = false
    for (const c of changes) this.#emitSafe('route:change', { to: c.to, via: c.via ?? null, previousVia: c.previousVia ?? null })
    // A forgotten peer waits for its route to go (link-state ages it out).
    for (const e of this.#peers.values()) if (e.forget) this.#maybeForget(e)
  }

  /** Every peer this node has linked with (current state included). */
  peers (): PeerInfo[] {
    return [...this.#peers.values()].filter((e) => e.handle !== 0 || e.info.state !== 'connecting').map((e) => {
      // The IO worker keeps the latest RTT in shared memory: fresh without a
      // wake-up per pong. (A sample of 0 is one: falling back to the last
      // event's value for it showed a stale RTT.)
      const rtt = e.board.rtt()
      return { ...e.info, ...(rtt >= 0 && e.slot !== undefined ? { rttMs: rtt } : {}), lanes: [...e.info.lanes] }
    })
  }

  /**
   * Graceful close: stop accepting (requests from peers are answered CLOSED
   * unrun), let the request handlers already running queue their responses
   * (up to closeTimeoutMs), flush queued frames (up to closeTimeoutMs again),
   * close sockets, stop workers. Idempotent.
   */
  async close (): Promise<void> {
    this.#closing ??= (async () => {
      try {
        this.#answering = true
        try {
          await this.#drainHandlers(Date.now() + this.#opts.closeTimeoutMs)
          // Its own budget: a slow handler must not cut the flush of what the application queued before close().
          await this.#sup.close(this.#opts.closeTimeoutMs)
        } finally {
          this.#answering = false
        }
        this.#finish()
        await this.#closeStore()
      } finally {
        await this.#lock?.release()
      }
    })()
    await this.#closing
  }

  /**
   * Close the durable outbox. Its failure (an earlier write failed: already
   * reported as an 'error' event, or the final flush) is logged, not thrown:
   * close() and destroy() must still finish and release the dataDir.
   */
  async #closeStore (): Promise<void> {
    try {
      await this.#store?.close()
    } catch (err) {
      this.#log.warn({ component: 'mesh', event: 'outbox:close-failed', err: (err as Error).message }, 'closing the durable outbox failed')
    }
  }

  /**
   * Graceful close, first step: let the request handlers already running
   * finish and queue their responses (until `deadline`), so a caller gets its
   * answer instead of a TIMEOUT. Requests arriving meanwhile are refused
   * (CLOSED) without running, so the count only falls.
   */
  async #drainHandlers (deadline: number): Promise<void> {
    if (this.#serving === 0) return
    let timer: NodeJS.Timeout | undefined
    try {
      await new Promise<void>((resolve) => {
        this.#servedAll = resolve
        this.#endDrain = resolve
        timer = setTimeout(resolve, Math.max(0, deadline - Date.now()))
      })
      if (this.#serving > 0) this.#log.warn({ component: 'mesh', event: 'close:handlers-cut', handlers: this.#serving }, `closing with ${this.#serving} request handler(s) still running: a response goes only if it comes while queued messages are flushed`)
    } finally {
      clearTimeout(timer)
      this.#servedAll = undefined
      this.#endDrain = undefined
    }
  }

  /** Immediate close: queued frames are dropped (also during a graceful close, which then ends at once). Idempotent. */
  async destroy (): Promise<void> {
    if (this.#closing !== undefined && this.#answering) {
      // A graceful close under way: stop waiting for its handlers and its flush.
      this.#endDrain?.()
      await this.#sup.destroy()
    }
    if (this.#closing === undefined) {
      this.#closing = (async () => {
        try {
          await this.#sup.destroy()
          this.#finish()
          await this.#closeStore()
        } finally {
          await this.#lock?.release()
        }
      })()
    }
    await this.#closing
  }

  /** @internal test/diagnostic hook: per IO worker counters (none once the mesh is closing: its workers are stopping). */
  async _ioStats (): Promise<IoWorkerStats[]> {
    if (this.#closing !== undefined) return []
    return await Promise.all(this.#sup.slots.map(async (s) => await s.api.stats()))
  }

  /** @internal test/diagnostic hook: the router worker's link-state routing counters. */
  async _routingStats (): Promise<RoutingStats | undefined> {
    return await this.#sup.router.routingCounters()
  }

  /**
   * @internal diagnostics (perf's RSS samples): collect the heap of every
   * worker of this node, when the process runs with --expose-gc. How many
   * worker heaps were collected (0 without it) and what they hold after it,
   * summed (and each: the IO workers in order, then the router).
   */
  async _collectGarbage (): Promise<{ collected: number; usedBytes: number; physicalBytes: number; arrayBufferBytes: number; workers: Array<HeapAfterGc | null> }> {
    const done = await Promise.all([...this.#sup.slots.map(async (s) => await s.api.collectGarbage()), this.#sup.router.collectGarbage()])
    let collected = 0
    let usedBytes = 0
    let physicalBytes = 0
    let arrayBufferBytes = 0
    for (const h of done) {
      if (h === null) continue
      collected++
      usedBytes += h.usedBytes
      physicalBytes += h.physicalBytes
      arrayBufferBytes += h.arrayBufferBytes
    }
    return { collected, usedBytes, physicalBytes, arrayBufferBytes, workers: done }
  }

  /** @internal diagnostics: ring fill and counters (host side). */
  _ringStats (): { inbound: Array<ReturnType<RingBuffer['stats']>>; outbound: Record<string, ReturnType<RingBuffer['stats']>> } {
    const outbound: Record<string, ReturnType<RingBuffer['stats']>> = {}
    for (const [id, e] of this.#peers) outbound[id] = e.ring.stats()
    return { inbound: this.#sup.slots.map((s) => s.inbound.stats()), outbound }
  }

  /** @internal diagnostics: receive-side stream state per peer, and messages discarded. */
  _deliveryStats (): { discarded: number; peers: Record<string, PeerDeliveryStats> } {
    const peers: Record<string, PeerDeliveryStats> = {}
    for (const [id, e] of this.#peers) peers[id] = { stream: e.rx.stream, delivered: e.rx.delivered, duplicates: e.rx.duplicates, gaps: e.rx.gaps, sent: e.seq, queuedBytes: e.ring.usedBytes(), unwantedTopics: e.unwanted?.size ?? 0 }
    return { discarded: this.#discarded, peers }
  }

  /** @internal test hook: as a relay, drop the next `count` envelopes for `to` that pass through this node (a lossy relay). */
  async _dropRelayed (to: string, count: number): Promise<void> {
    await Promise.all(this.#sup.slots.map(async (s) => { await s.api.dropRelayed(to, count) }))
  }

  /**
   * @internal test hook: as a relay, keep a copy of the next `count`
   * envelopes for `to` while relaying them; `count` 0 relays the copies a
   * second time (a relay that duplicates late).
   */
  async _echoRelayed (to: string, count: number): Promise<void> {
    await Promise.all(this.#sup.slots.map(async (s) => { await s.api.echoRelayed(to, count) }))
  }

  /** @internal test hook: whether any IO worker holds an actor for `peerId`. */
  async _hasActor (peerId: string): Promise<boolean> {
    return (await Promise.all(this.#sup.slots.map(async (s) => await s.api.hasActor(peerId)))).some((x) => x)
  }

  /** @internal test hook: keep at most `n` forgotten peers' stream positions (MAX_FORGOTTEN). */
  _setMaxForgotten (n: number): void { this.#maxForgotten = n }

  /** @internal test hook: crash IO worker `index` (it is restarted). */
  _crashIoWorker (index = 0): void { this.#sup.crashIo(index) }

  /** @internal test hook: make every durable-outbox write from now on fail with `message` (as a failed commit does). */
  _failOutboxWrites (message: string): void { this.#store?._failWrites(new Error(message)) }

  async #dial (url: string, expectedId: string | undefined, persistent = false): Promise<string> {
    if (this.#closing !== undefined) throw new MeshError(ErrorCode.CLOSED, 'the mesh is closed')
    // The worker that already keeps this address up, else the least loaded.
    const slot = this.#sup.slots.find((s) => s.dials.has(url)) ?? this.#sup.pickSlot()
    slot.dials.set(url, expectedId)
    try {
      const r = await slot.api.dial(url, expectedId, persistent)
      return r.peerId
    } catch (err) {
      if (!persistent) slot.dials.delete(url)
      throw err instanceof MeshError ? err : reviveError(err)
    }
  }

  /**
   * A peer's send queue and datagram ring, in one SharedArrayBuffer (see
   * RingPlace: one calloc per peer instead of two; measured, one costs
   * 45 KiB resident once a mesh has run in the process).
   */
  #peerRings (): { ring: RingBuffer; datagrams: RingBuffer } {
    const cap = this.#opts.sendQueue.capacityBytes
    const dcap = Math.max(64 * 1024, cap >> 2)
    const first = RingBuffer.bytesFor(cap)
    const sab = new SharedArrayBuffer(first + RingBuffer.bytesFor(dcap))
    return {
      ring: RingBuffer.create(cap, { keepAlive: false }, { sab, byteOffset: 0 }),
      datagrams: RingBuffer.create(dcap, { keepAlive: false }, { sab, byteOffset: first }),
    }
  }

  #entryFor (peerId: string): PeerEntry {
    let e = this.#peers.get(peerId)
    if (e === undefined) {
      // Met again after #forget: both streams go on where they stood.
      const was = this.#forgotten.get(peerId)
      this.#forgotten.delete(peerId)
      const rings = this.#peerRings()
      e = {
        info: { id: peerId, direction: 'outbound', state: 'connecting', since: Date.now(), lanes: [...LANES] },
        ring: rings.ring,
        board: AckBoard.create(this.#store !== undefined, this.#opts.threads.io),
        rx: was === undefined ? new ReceiveStream() : ReceiveStream.at(was.rx),
        reassembly: new StreamAssemblies(MAX_LANE + 1, this.#opts.maxMessageBytes, this.#assemblyPool),
        discarded: new Map(),
        givenUp: new Set(),
        requestsByMessage: new Map(),
        ackWaiters: [],
        remoteTopics: new Set(),
        unwanted: undefined,
        topicsSent: false,
        datagrams: rings.datagrams,
        droppedNewest: 0,
        home: undefined,
        slot: undefined,
        handle: 0,
        // Never reuse a number a previous run of this node (or this run, before it forgot the peer) put on the wire.
        seq: Math.max(this.#store?.lastSeq(peerId) ?? 0, was?.seq ?? this.#seqFloor),
        sends: new LaneQueue<PendingSend>(MAX_LANE + 1),
        pumping: false,
        reloading: undefined,
        messagesSent: 0,
        bytesSent: 0,
        messagesReceived: 0,
        bytesReceived: 0,
        ackBytes: 0,
        ackBulk: false,
        unaskedBytes: 0,
        // Made again for a peer membership forgot: forgotten again unless it is back (peer:up, a route, alive).
        forget: was !== undefined,
        forgetting: false,
        gen: 0,
      }
      this.#peers.set(peerId, e)
      if (was !== undefined) {
        // The ACKs the IO worker sends say how far we got before we forgot the peer.
        const stream = e.rx.stream
        if (stream !== undefined) {
          if (was.discarded !== undefined) e.discarded.set(stream, was.discarded)
          e.board.publish(stream, e.rx.delivered, was.discarded)
        }
        // Something made it (a late frame, a worker adopting queues): the router asks us again later.
        if (this.#closing === undefined) void this.#sup.router.forgetLater(peerId).catch(() => {})
      }
    }
    return e
  }

  /**
   * Membership forgot `peerId` (dead or left for delivery.forgetAfterMs), or
   * the router asks again: drop its entry if nothing is queued to it. True
   * once nothing is kept for it; false while it is (the router asks again).
   */
  async #onForgotten (peerId: string): Promise<boolean> {
    const e = this.#peers.get(peerId)
    if (e === undefined) { this.#incarnations.delete(peerId); return true }
    // Linked again, or reachable through relays, before membership heard of it: not departed. (A stale
    // route goes with link-state aging; the router asks again.)
    if (e.slot !== undefined || this.#routed(peerId)) return false
    if (!e.forget) this.#log.debug({ component: 'mesh', event: 'member:forgotten', peer: peerId }, 'membership forgot a departed peer: its state goes once nothing is queued to it')
    e.forget = true
    if (e.forgetting || !this.#idle(e)) return false
    // Its incarnation goes with the entry: while the entry is kept, a restart that shows up as a
    // member again is still told apart (the peer's new process needs our subscriptions).
    const dropped = await this.#forget(e)
    if (dropped) this.#incarnations.delete(peerId)
    return dropped
  }

  /**
   * The peer is linked, routed or a member again: its entry stays, and a
   * #forget in progress gives up. (A subscription broadcast it missed while
   * flagged reaches it with the whole set: peer:up, or #onRoutes.)
   */
  #isBack (e: PeerEntry): void {
    e.forget = false
    e.gen++
  }

  #onMember (m: { id: string; state: string; previous: string | undefined; incarnation: number }): void {
    this.#log.debug({ component: 'membership', event: 'member', peer: m.id, state: m.state, previous: m.previous }, `member ${m.state}`)
    // Every member's, entry or not: a peer's first record (and its incarnation) often comes before its route.
    const was = this.#incarnations.get(m.id)
    if (was === undefined || m.incarnation > was) this.#incarnations.set(m.id, m.incarnation)
    if (m.state !== 'alive') return
    const e = this.#peers.get(m.id)
    if (e === undefined) return
    // Back before its entry was dropped: keep it.
    this.#isBack(e)
    const restarted = was !== undefined && m.incarnation > was
    // Restarted (same id), and its new process knows none of our subscriptions. A direct link
    // hears them again at peer:up and a route that went hears them when it comes back, but a
    // routed peer whose route never went (it came back before the route aged out, or by another
    // path) would never be told: tell it now.
    if (restarted && e.slot === undefined && this.#routed(m.id)) {
      e.topicsSent = true
      if (this.#topics.size > 0) this.#announce('set', [...this.#topics.keys()], e)
    }
  }

  /** Whether the route table names `peerId` (reachable, directly or through relays). */
  #routed (peerId: string): boolean {
    return this.#reachable.has(peerId)
  }

  /** Something that kept a forgotten peer's entry may have ended (see #forget). */
  #maybeForget (e: PeerEntry): void {
    if (e.forget && !e.forgetting && this.#idle(e)) void this.#forget(e)
  }

  /**
   * Nothing for the peer is in flight here: not linked, no route, nothing
   * queued or unacknowledged (the queue empties by ACKs or by retention,
   * delivery.retainMs), no send waiting and no acked send waiting.
   */
  #idle (e: PeerEntry): boolean {
    return e.slot === undefined && !e.pumping && e.sends.size === 0 && e.reloading === undefined && e.ackWaiters.length === 0 &&
      e.ring.usedBytes() === 0 && !this.#routed(e.info.id)
  }

  /**
   * Drop what this node keeps for a peer membership forgot, keeping only
   * where the two streams stand (#forgotten): the IO workers drop their
   * actors first (a worker keeps one that is in use), then the host drops the
   * entry, its rings, its metric series, unless the peer came back
   * meanwhile (a worker took its rings: `gen`), or it is in use again.
   * Unreliable messages still queued to it go with it (logged).
   */
  async #forget (e: PeerEntry): Promise<boolean> {
    const id = e.info.id
    const gen = ++e.gen
    e.forgetting = true
    let dropped = false
    try {
      const answers = await Promise.all(this.#sup.slots.map(async (s) => await s.api.forget(id).catch(() => false)))
      if (this.#closing !== undefined || this.#peers.get(id) !== e) return false
      if (e.gen !== gen || !e.forget || !answers.every((ok) => ok) || !this.#idle(e)) {
        // Kept after all: a worker that dropped its actor no longer looks after the queue (retention).
        if (e.slot === undefined && answers.some((ok) => ok)) {
          e.home = undefined
          this.#adoptOrphans([id])
        }
        return false
      }
      dropped = true
      this.#peers.delete(id)
      for (const m of this.#byHandle.values()) for (const [h, x] of m) if (x === e) m.delete(h)
      const stream = e.rx.stream
      this.#forgotten.set(id, { seq: e.seq, rx: e.rx.position(), discarded: stream === undefined ? undefined : e.discarded.get(stream) })
      if (this.#forgotten.size > this.#maxForgotten) {
        // The oldest record goes: its stream positions are lost (see MAX_FORGOTTEN).
        const [oldId, old] = this.#forgotten.entries().next().value as [string, ForgottenPeer]
        this.#forgotten.delete(oldId)
        this.#seqFloor = Math.max(this.#seqFloor, old.seq)
      }
      this.#metrics.forgetPeer(id)
      const datagrams = e.datagrams.usedBytes()
      e.ring.close()
      e.datagrams.close()
      this.#log.info({ component: 'mesh', event: 'peer:forgotten', peer: id, ...(datagrams > 0 ? { unreliableBytesDropped: datagrams } : {}) }, 'forgot a peer that left the mesh')
      return true
    } finally {
      if (!dropped) e.forgetting = false
    }
  }

  #dispatch (slot: IoSlot, rec: Uint8Array): void {
    const kind = readKind(rec)
    const handle = readHandle(rec)
    const body = rec.subarray(INBOUND_ENVELOPE_BYTES)
    if (kind === InboundKind.DATA) {
      const entry = this.#byHandle.get(slot)?.get(handle)
      if (entry === undefined) return
      const rx = entry.rx
      const before = rx.delivered
      const stream = rx.stream
      const dups = rx.duplicates
      let urgent = false
      let bulk = false
      // Frames were validated by the IO worker; parsing them again here is cheap and keeps one decoder.
      // Into one reused object (nothing below keeps `f`), except in a delivery nested in a listener
      // (e.g. one that closes the mesh), whose outer frame is still being read.
      const into = this.#rxFrameBusy ? undefined : this.#rxFrame
      if (into !== undefined) this.#rxFrameBusy = true
      try {
        forEachFrame(body, undefined, (f) => {
          if (f.type === FrameType.SKIP) { rx.skip(f.stream, f.seq); return }
          // Stream 0: an unreliable message, outside sequencing (and never chunked).
          if (f.stream !== 0 ? rx.accept(f.stream, f.seq) !== 'deliver' : f.type !== FrameType.DATA || (f.flags & (FrameFlag.MORE | FrameFlag.CONTINUATION)) !== 0) return
          if ((f.flags & FrameFlag.ACK_REQUESTED) !== 0) urgent = true
          if (f.lane === Lane.BULK) bulk = true
          try {
            this.#deliver(entry, f)
          } catch (err) {
            // A throwing listener must not lose the rest of the batch: rethrow it outside the dispatch loop.
            process.nextTick(() => { throw err })
          }
        }, into)
      } finally {
        if (into !== undefined) this.#rxFrameBusy = false
      }
      // Duplicates only: the sender resends what it has not seen acknowledged (after a reconnect,
      // or a restarted sender's stored messages), and may send nothing new until it has: ack them
      // at once (the position did not move, so nothing else would).
      const resent = rx.duplicates !== dups
      if (rx.delivered !== before || rx.stream !== stream || resent) {
        // Everything up to rx.delivered is now the application's: the IO worker acks it,
        // at once if the sender waits for that or much is unacknowledged.
        // Otherwise the worker finds the progress when it next sends to the
        // peer (the ACK rides along) or by its ACK timer: no wake-up here.
        entry.ackBytes += body.length
        if (bulk) entry.ackBulk = true
        // The threshold follows the credit the IO worker grants, from the same ring size it uses.
        const prompt = urgent || resent || entry.ackBytes >= ackEagerBytes(receiveWindowBytes(slot.inbound.sab.byteLength), entry.ackBulk) || rx.stream !== stream
        if (prompt) {
          entry.ackBytes = 0
          entry.ackBulk = false
          entry.board.markUrgent()
        }
        entry.board.publish(rx.stream ?? 0, rx.delivered, rx.stream === undefined ? undefined : entry.discarded.get(rx.stream))
        // After the publish, before the doorbell: the actor keeps its ACK clock for records not yet counted (PeerActor.hostBehind).
        entry.board.noteTaken(slot.index)
        if (prompt) slot.doorbell.ring()
        else if (entry.board.takeWaiting()) {
          // The actor stopped looking for our progress (we took nothing for a while): prompt it.
          entry.board.markUrgent()
          slot.doorbell.ring()
        }
      } else {
        entry.board.noteTaken(slot.index)
      }
      return
    }
    if (kind === InboundKind.EVENT) {
      let ev: InboundEvent
      // Copy out of shared memory: msgpackr's string decoding refuses SharedArrayBuffer views.
      try { ev = decodeControl(Buffer.from(body)) as InboundEvent } catch { return }
      this.#onEvent(slot, handle, ev)
    }
  }

  /** Hand one in-order stream frame to the application (or reassembly, a request handler, a pending request). */
  #deliver (entry: PeerEntry, f: { type: number; lane: number; flags: number; stream: number; seq: number; payload: Uint8Array | null }): void {
    const from = entry.info.id
    const lane = LANES[f.lane] ?? 'bulk'
    let bytes = f.payload
    let id = f.seq
    let owned = false
    if ((f.flags & (FrameFlag.MORE | FrameFlag.CONTINUATION)) !== 0) {
      // f.lane was validated (0..MAX_LANE) by the IO worker's decoder.
      const r = entry.reassembly.get(f.stream, f.lane).push(f.payload ?? new Uint8Array(0), f.seq, (f.flags & FrameFlag.CONTINUATION) !== 0, (f.flags & FrameFlag.MORE) !== 0)
      if (r.kind === 'partial') return
      if (r.kind === 'orphan' || r.kind === 'too-large') {
        // Our ACKs cover its chunks: they tell the sender, which reports it undelivered.
        const ds = entry.discarded
        const seqs = ds.get(f.stream) ?? []
        seqs.push(f.seq)
        if (seqs.length > MAX_DISCARDED) seqs.shift()
        // Least recently discarded epoch out first, never the current one; as many as ReceiveStream remembers.
        ds.delete(f.stream)
        ds.set(f.stream, seqs)
        for (const s of ds.keys()) {
          if (ds.size <= MAX_RETIRED_STREAMS + 1) break
          if (s !== entry.rx.stream) ds.delete(s)
        }
        this.#log.warn({ component: 'mesh', event: 'message:discarded', peer: from, reason: r.kind }, r.kind === 'orphan'
          ? 'discarded the rest of a chunked message whose start went to a previous incarnation of this node'
          : `discarded a chunked message larger than maxMessageBytes (${this.#opts.maxMessageBytes})`)
        this.#discarded++
        return
      }
      bytes = r.bytes
      id = r.firstSeq
      owned = r.owned
    }
    if (f.type !== FrameType.SUBSCRIBE) {
      entry.messagesReceived++
      entry.bytesReceived += bytes?.length ?? 0
    }
    switch (f.type) {
      case FrameType.DATA: {
        const lender = this.#lender
        // Lent (borrowPayloads): the listeners get the reused buffer, taken back (detached) when they return.
        const lent = lender !== undefined && !owned && bytes !== null && (f.flags & FrameFlag.RAW_PAYLOAD) !== 0 && lender.canLend(bytes.length) ? lender.lend(bytes) : undefined
        try {
          let payload: unknown = lent
          if (lent === undefined) {
            payload = this.#decodeOrDrop(entry, f.type, bytes, f.flags, owned)
            if (payload === MALFORMED) return
          }
          this.emit('message', { from, payload, lane, id: f.stream === 0 ? 'unreliable' : decimal(id) })
        } finally {
          if (lent !== undefined) lender?.revoke()
        }
        return
      }
      case FrameType.REQUEST: {
        const x = this.#decodeOrDrop(entry, f.type, bytes, f.flags, owned, (v) => Array.isArray(v) && v.length === 3 && Number.isSafeInteger(v[0]) && typeof v[1] === 'string')
        if (x === MALFORMED) return
        const [reqId, method, value] = x as [number, string, unknown]
        this.#serve(entry, reqId, method, value, f.lane)
        return
      }
      case FrameType.RESPONSE: {
        const x = this.#decodeOrDrop(entry, f.type, bytes, f.flags, owned, (v) => Array.isArray(v) && v.length === 3 && Number.isSafeInteger(v[0]) && (v[1] === 0 || v[1] === 1))
        if (x === MALFORMED) return
        const [reqId, ok, value] = x as [number, number, unknown]
        const r = this.#requests.get(reqId)
        if (r === undefined || r.peer !== from) return // timed out or aborted meanwhile
        this.#requests.delete(reqId)
        r.cleanup()
        if (ok === 1) { r.resolve(value); return }
        const e = (value ?? {}) as { code?: unknown; message?: unknown }
        // CLOSED: the peer was closing and did not run it (safe to retry elsewhere).
        const code = e.code === ErrorCode.NO_HANDLER || e.code === ErrorCode.CLOSED ? e.code : ErrorCode.REMOTE_ERROR
        r.reject(new MeshError(code, `${from}: ${String(e.message ?? 'remote error')}`, { details: { peer: from, remoteMessage: String(e.message ?? '') } }))
        return
      }
      case FrameType.PUBLISH: {
        const x = this.#decodeOrDrop(entry, f.type, bytes, f.flags, owned, (v) => Array.isArray(v) && v.length === 2 && typeof v[0] === 'string')
        if (x === MALFORMED) return
        const [topic, value] = x as [string, unknown]
        const handlers = this.#topics.get(topic)
        if (handlers === undefined || handlers.size === 0) { this.#unwanted(entry, topic); return } // not ours to see
        const msg = { from, payload: value, lane, topic, id: decimal(id) }
        // A throwing 'message' listener must not cost the topic's handlers the publication.
        try { this.emit('message', msg) } catch (err) { process.nextTick(() => { throw err }) }
        for (const h of [...handlers]) {
          try { h(msg) } catch (err) { process.nextTick(() => { throw err }) }
        }
        return
      }
      case FrameType.SUBSCRIBE: {
        const x = this.#decodeOrDrop(entry, f.type, bytes, f.flags, owned, (v) => Array.isArray(v) && v.length === 2 && (v[0] === 'set' || v[0] === 'add' || v[0] === 'del') && Array.isArray(v[1]) && (v[1] as unknown[]).every((t) => typeof t === 'string'))
        if (x === MALFORMED) return
        const [op, topics] = x as [string, string[]]
        if (op === 'set') entry.remoteTopics = new Set(topics)
        else if (op === 'add') for (const t of topics) entry.remoteTopics.add(t)
        else if (op === 'del') for (const t of topics) entry.remoteTopics.delete(t)
      }
    }
  }

  /**
   * A received payload, decoded, or MALFORMED (logged, counted as discarded)
   * when it does not decode or, for the mesh's own frame types, does not
   * have the shape `ok` checks. A peer's bad bytes must not throw out of the
   * dispatch: its rethrow (meant for the application's listeners) would end
   * the host process.
   */
  #decodeOrDrop (entry: PeerEntry, type: number, bytes: Uint8Array | null, flags: number, owned: boolean, ok?: (v: unknown) => boolean): unknown {
    let v: unknown
    try {
      v = decodePayload(bytes, flags, owned)
    } catch (err) {
      return this.#malformed(entry, type, (err as Error).message)
    }
    if (ok !== undefined && !ok(v)) return this.#malformed(entry, type, 'unexpected shape')
    return v
  }

  #malformed (entry: PeerEntry, type: number, why: string): typeof MALFORMED {
    this.#discarded++
    this.#log.warn({ component: 'mesh', event: 'message:malformed', peer: entry.info.id, type, err: why }, `discarded a message from ${entry.info.id} whose payload is malformed: ${why}`)
    return MALFORMED
  }

  #serve (entry: PeerEntry, reqId: number, method: string, value: unknown, laneNo: number): void {
    const from = entry.info.id
    const handler = this.#handlers.get(method)
    // Settles once the response is queued (or could not be).
    const reply = async (ok: 0 | 1, v: unknown): Promise<void> => {
      if (this.#closing !== undefined && !this.#answering) return
      try {
        await this.#send(from, FrameType.RESPONSE, laneNo, [reqId, ok, v], false, undefined)
      } catch (e) {
        const err = e as MeshError
        this.#log.warn({ component: 'mesh', event: 'response:failed', peer: from, method, err: err.message }, 'could not queue a response')
        // The result could not go (too large, not encodable, queue full): the caller gets REMOTE_ERROR now
        // instead of its TIMEOUT later. Once: an error reply that cannot go either is only logged.
        if (ok === 1 && err.code !== ErrorCode.CLOSED) await reply(0, { code: ErrorCode.REMOTE_ERROR, message: `the response could not be sent: ${err.message}` })
      }
    }
    if (this.#closing !== undefined) {
      // close() began: refused without running (the handlers already running may still answer).
      void reply(0, { code: ErrorCode.CLOSED, message: 'the node is closing; the request was not run' })
      return
    }
    if (handler === undefined) {
      void reply(0, { code: ErrorCode.NO_HANDLER, message: `no handler for method ${JSON.stringify(method)}` })
      return
    }
    // Counted as running before the handler is called: one that calls close() itself must be waited for.
    this.#serving++
    let result: unknown
    try {
      result = handler(value, { from, method })
    } catch (err) {
      result = Promise.reject(err)
    }
    void Promise.resolve(result).then(async (v) => { await reply(1, v) }, async (err: unknown) => {
      await reply(0, { code: ErrorCode.REMOTE_ERROR, message: errorText(err) })
    }).finally(() => {
      if (--this.#serving === 0) this.#servedAll?.()
    })
  }

  /**
   * Serve `method`: `fn(payload, ctx)` runs for each request; its return
   * value (or resolved promise) is the response, a throw or rejection reaches
   * the caller as MeshError REMOTE_ERROR with the message. One handler per
   * method (a second call replaces the first). Returns a function that removes it.
   */
  handle (method: string, fn: RequestHandler): () => void {
    if (typeof method !== 'string' || method === '') throw new MeshError(ErrorCode.INVALID_OPTIONS, 'handle(method, fn): method must be a non-empty string')
    if (typeof fn !== 'function') throw new MeshError(ErrorCode.INVALID_OPTIONS, 'handle(method, fn): fn must be a function')
    this.#handlers.set(method, fn)
    return () => { if (this.#handlers.get(method) === fn) this.#handlers.delete(method) }
  }

  /**
   * Call `method` on peer `to` and resolve with its handler's result. The
   * request and the response are reliable messages (held while the peer is
   * away); `timeoutMs` bounds the whole call.
   * @throws MeshError REMOTE_ERROR (the handler threw; message included),
   *   NO_HANDLER, TIMEOUT (timeoutMs passed or signal aborted), UNKNOWN_PEER,
   *   PAYLOAD_TOO_LARGE, QUEUE_FULL, CLOSED.
   */
  request (to: string, method: string, payload?: unknown, options?: RequestOptions): Promise<any> {
    if (typeof method !== 'string' || method === '') return Promise.reject(new MeshError(ErrorCode.INVALID_OPTIONS, 'request(to, method): method must be a non-empty string'))
    const timeoutMs = options?.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS
    // setTimeout takes at most 2^31 - 1 ms; Node runs a longer delay after 1 ms.
    if (!(Number.isFinite(timeoutMs) && timeoutMs > 0 && timeoutMs <= MAX_REQUEST_TIMEOUT_MS)) return Promise.reject(new MeshError(ErrorCode.INVALID_OPTIONS, `options.timeoutMs must be a positive number of ms up to ${MAX_REQUEST_TIMEOUT_MS} (got ${String(timeoutMs)})`))
    const laneNo = laneNumber(options?.lane)
    if (laneNo instanceof MeshError) return Promise.reject(laneNo)
    const signal = options?.signal
    if (signal?.aborted === true) return Promise.reject(new MeshError(ErrorCode.TIMEOUT, `request ${method} to ${to} aborted`, { cause: signal.reason }))
    const reqId = ++this.#nextRequest
    return new Promise((resolve, reject) => {
      const fail = (e: MeshError): void => { this.#failRequest(reqId, e) }
      const onAbort = (): void => { fail(new MeshError(ErrorCode.TIMEOUT, `request ${method} to ${to} aborted`, { cause: signal?.reason, details: { peer: to, method } })) }
      // The caller's own deadline: the one timer of the mesh's on the host thread, and only while a request is out.
      const timer = setTimeout(() => { fail(new MeshError(ErrorCode.TIMEOUT, `request ${method} to ${to} got no response within ${timeoutMs} ms`, { details: { peer: to, method, timeoutMs } })) }, timeoutMs)
      timer.unref()
      let byMessage: { entry: PeerEntry; id: number } | undefined
      const cleanup = (): void => {
        clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
        if (byMessage !== undefined) byMessage.entry.requestsByMessage.delete(byMessage.id)
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      this.#requests.set(reqId, { peer: to, resolve, reject, timer, cleanup })
      // A request that is over (deadline, abort) before its message got into the queue is not sent at all.
      this.#send(to, FrameType.REQUEST, laneNo, [reqId, method, payload], false, signal, () => !this.#requests.has(reqId)).then((msgId) => {
        const entry = this.#peers.get(to)
        // Still out (a fast response may have settled it already): an 'undelivered' report of its message fails it.
        if (entry === undefined || !this.#requests.has(reqId)) return
        const id = Number(msgId)
        // Reported before send() resolved (a durable send waits for its commit): fail now.
        if (entry.givenUp.has(id)) { fail(requestGivenUp(to, 'given up on before it was sent')); return }
        byMessage = { entry, id }
        entry.requestsByMessage.set(byMessage.id, reqId)
      }, (err: MeshError) => { fail(err) })
    })
  }

  /** Settle request `reqId` with `err` if it is still out: forget it, clear its timer and listeners. */
  #failRequest (reqId: number, err: MeshError): void {
    const r = this.#requests.get(reqId)
    if (r === undefined) return
    this.#requests.delete(reqId)
    r.cleanup()
    r.reject(err)
  }

  /**
   * Subscribe to `topic` mesh-wide: `handler` gets every message published
   * to it (by any node, this one included) from now on, once, in order per
   * publisher. Returns the unsubscribe function.
   */
  subscribe (topic: string, handler: TopicHandler): () => void {
    if (typeof topic !== 'string' || topic === '') throw new MeshError(ErrorCode.INVALID_OPTIONS, 'subscribe(topic, handler): topic must be a non-empty string')
    if (typeof handler !== 'function') throw new MeshError(ErrorCode.INVALID_OPTIONS, 'subscribe(topic, handler): handler must be a function')
    let set = this.#topics.get(topic)
    if (set === undefined) {
      set = new Set()
      this.#topics.set(topic, set)
      this.#announce('add', [topic])
    }
    // A wrapper per subscription: the same function subscribed twice is two subscriptions (one Set entry each).
    const mine: TopicHandler = (m) => { handler(m) }
    set.add(mine)
    let done = false
    return () => {
      if (done) return
      done = true
      const s = this.#topics.get(topic)
      if (s === undefined) return
      s.delete(mine)
      if (s.size === 0) {
        this.#topics.delete(topic)
        this.#announce('del', [topic])
      }
    }
  }

  /**
   * Publish `payload` on `topic`: every current subscriber in the mesh gets it
   * once, reliably like {@link send}. Resolves once queued for all of them;
   * the number of subscribing nodes it was queued for (this one included).
   */
  async publish (topic: string, payload: unknown, options?: { lane?: 'priority' | 'bulk' }): Promise<number> {
    if (typeof topic !== 'string' || topic === '') throw new MeshError(ErrorCode.INVALID_OPTIONS, 'publish(topic, payload): topic must be a non-empty string')
    if (this.#closing !== undefined) throw new MeshError(ErrorCode.CLOSED, 'the mesh is closed')
    const lane = options?.lane ?? 'priority'
    const laneNo = laneNumber(lane)
    if (laneNo instanceof MeshError) throw laneNo
    // The local copy first: a payload msgpack cannot encode throws here, before any send to a peer was
    // started (a send rejected in `sends` and never awaited was an unhandled rejection).
    const local = this.#topics.get(topic)
    let localMsg: Parameters<TopicHandler>[0] | undefined
    if (local !== undefined && local.size > 0) {
      let enc
      try {
        enc = encodePayload(payload)
      } catch (err) {
        throw new MeshError(ErrorCode.INVALID_OPTIONS, `payload cannot be encoded: ${(err as Error).message}`, { cause: err })
      }
      // Through msgpack, like a remote subscriber would see it: no aliasing of the caller's object.
      localMsg = { from: this.id, payload: decodePayload(enc.bytes, enc.flags), lane, topic, id: `local-${++this.#localPublishes}` }
    }
    const sends: Array<Promise<string>> = []
    for (const e of this.#peers.values()) {
      // Not to a peer membership forgot (dead, or gone for delivery.forgetAfterMs): each publication
      // would hold its entry for another retainMs (see #idle), so it would never be dropped, and fill its
      // queue until publish() rejected QUEUE_FULL. Back, it sends its subscriptions again.
      if (e.remoteTopics.has(topic) && !e.forget) sends.push(this.#send(e.info.id, FrameType.PUBLISH, laneNo, [topic, payload], false, undefined))
    }
    let n = sends.length
    if (localMsg !== undefined) {
      n++
      const msg = localMsg
      queueMicrotask(() => {
        for (const h of [...(this.#topics.get(topic) ?? [])]) {
          try { h(msg) } catch (err) { process.nextTick(() => { throw err }) }
        }
      })
    }
    await Promise.all(sends)
    return n
  }

  /**
   * A publication on a topic we do not subscribe to: unsubscribed meanwhile
   * (our 'del' is on its way), or the publisher holds the subscriptions of
   * an earlier run of this node (same id, dataDir) — routed peers get no
   * empty 'set' from us (see #onRoutes). Either way a 'del' puts it right;
   * once per topic and peer until we subscribe to it again.
   */
  #unwanted (entry: PeerEntry, topic: string): void {
    entry.unwanted ??= new Set()
    if (entry.unwanted.has(topic)) return
    // Bounded: a peer publishing to ever new topics we do not take must not grow it without end.
    // A topic let go of costs one more 'del' if the peer publishes to it again.
    if (entry.unwanted.size >= MAX_UNWANTED_TOPICS) entry.unwanted.delete(entry.unwanted.values().next().value as string)
    entry.unwanted.add(topic)
    this.#announce('del', [topic], entry)
  }

  /** Tell every linked peer about a change of this node's subscriptions (reliable, in stream order). */
  #announce (op: 'set' | 'add' | 'del', topics: string[], only?: PeerEntry): void {
    for (const e of only !== undefined ? [only] : this.#peers.values()) {
      // Not to a peer membership forgot: the update would hold its entry (see #idle) for
      // another retainMs. It gets the whole set when it is back (peer:up, #onRoutes).
      if (e.forget && only === undefined) { e.topicsSent = false; continue }
      if (op !== 'del') for (const t of topics) e.unwanted?.delete(t)
      this.#send(e.info.id, FrameType.SUBSCRIBE, Lane.PRIORITY, [op, topics], false, undefined).catch((err: MeshError) => {
        if (err.code !== ErrorCode.CLOSED) this.#log.warn({ component: 'mesh', event: 'subscribe:failed', peer: e.info.id, err: err.message }, 'could not queue a subscription update')
      })
    }
  }

  #onEvent (slot: IoSlot, handle: number, ev: InboundEvent): void {
    switch (ev.type) {
      case 'peer:up': {
        const e = this.#entryFor(ev.peerId)
        this.#isBack(e)
        e.slot = slot
        e.home = slot
        e.handle = handle
        let m = this.#byHandle.get(slot)
        if (m === undefined) { m = new Map(); this.#byHandle.set(slot, m) }
        m.set(handle, e)
        e.info = { ...e.info, address: ev.address, direction: ev.direction, state: 'healthy', since: Date.now() }
        // Our subscriptions, in full: the peer may have restarted and forgotten them.
        this.#announce('set', [...this.#topics.keys()], e)
        e.topicsSent = true
        this.#emitSafe('peer:up', { ...e.info })
        for (const w of this.#upWaiters.get(ev.peerId) ?? []) w()
        this.#upWaiters.delete(ev.peerId)
        break
      }
      case 'peer:routed': {
        const e = this.#entryFor(ev.peerId)
        this.#isBack(e)
        let m = this.#byHandle.get(slot)
        if (m === undefined) { m = new Map(); this.#byHandle.set(slot, m) }
        m.set(handle, e)
        // The worker whose actor now serves the routed peer (with several IO
        // workers it may move there from the one its direct link was on).
        if (e.slot === undefined) e.home = slot
        break
      }
      case 'peer:down': {
        const e = this.#byHandle.get(slot)?.get(handle)
        if (e === undefined) return
        // The handle stays mapped: the actor lives on in its worker (until #forget drops it, or the
        // worker dies), and may go on through a relay at once (fast reroute) without announcing
        // itself again; its frames must still reach the peer's entry, or they are dropped here and
        // never acknowledged (the stream stalls both ways).
        if (e.slot === slot && e.handle === handle) this.#markDown(e)
        this.#maybeForget(e)
        break
      }
      case 'peer:health': {
        const e = this.#byHandle.get(slot)?.get(handle)
        if (e === undefined || e.slot !== slot) return
        e.info = { ...e.info, state: ev.state, rttMs: ev.rttMs ?? e.info.rttMs, since: Date.now() }
        this.#emitSafe('peer:health', { peer: e.info.id, state: ev.state, previous: ev.previous, rttMs: e.info.rttMs })
        break
      }
      case 'peer:rtt': {
        const e = this.#byHandle.get(slot)?.get(handle)
        if (e !== undefined && e.slot === slot) {
          e.info.rttMs = ev.rttMs
          for (const ms of ev.samples) this.#metrics.observeRtt(e.info.id, ms)
        }
        break
      }
      case 'peer:failed': {
        const e = this.#peers.get(ev.peerId)
        if (e === undefined || e.info.state === 'failed' || e.slot !== undefined) return
        const previous = e.info.state
        e.info = { ...e.info, state: 'failed', since: Date.now() }
        this.#emitSafe('peer:health', { peer: e.info.id, state: 'failed', previous, rttMs: e.info.rttMs })
        break
      }
      case 'acked': {
        // ev.seq is the last record the ACK released (any epoch: reloaded messages keep theirs), and
        // the queue holds records in seq order: the store drops exactly what was released.
        this.#store?.ackThrough(ev.peerId, ev.seq)
        const e = this.#peers.get(ev.peerId)
        if (e === undefined) return
        while (e.ackWaiters.length > 0 && (e.ackWaiters[0]?.last ?? Infinity) <= ev.seq) {
          const w = e.ackWaiters.shift()
          w?.resolve(decimal(w.id))
        }
        this.#maybeForget(e)
        break
      }
      case 'undelivered': {
        this.#store?.ackThrough(ev.peerId, ev.throughSeq)
        const e = this.#peers.get(ev.peerId)
        // Reported once: a message the receiver said it discarded may expire later with its queued rest.
        const fresh = e === undefined ? ev.ids : ev.ids.filter((id) => !e.givenUp.has(id))
        if (e !== undefined) {
          // A send still being queued (the receiver discarded what it got of it): queue no more of its
          // bytes and reject it as the { ack: true } send of a message given up on. One empty chunk still
          // closes it in the queue: a message whose last queued record says more follows could never be
          // given up on whole by retention (SendWindow.expire), and would hold the queue while the peer is
          // away. One queued but not yet waiting for its ACK (its durable copy pending) finds its id in givenUp.
          e.sends.forEach((q) => {
            if (q.next === 0 || q.cut === true || !ev.ids.includes(q.first)) return
            for (const b of q.parts.splice(q.next, Infinity, CLOSING_CHUNK)) this.#chunkPool.give(b)
            q.cut = true
            q.reject(givenUpError(ev.peerId, q.first, ev.reason))
          })
          for (const id of fresh) addBounded(e.givenUp, id, MAX_GIVEN_UP)
        }
        const topics = ev.topics === undefined ? undefined : new Map(ev.topics)
        for (const id of fresh) {
          const i = e === undefined ? -1 : e.ackWaiters.findIndex((w) => w.id === id)
          if (e !== undefined && i >= 0) {
            const [w] = e.ackWaiters.splice(i, 1)
            w?.reject(givenUpError(ev.peerId, id, ev.reason))
          }
          // A request whose REQUEST will never arrive fails now, not at its timeout.
          const reqId = e?.requestsByMessage.get(id)
          if (reqId !== undefined) this.#failRequest(reqId, requestGivenUp(ev.peerId, ev.reason))
          const topic = topics?.get(id)
          this.#emitSafe('undelivered', topic === undefined ? { to: ev.peerId, id: String(id), reason: ev.reason } : { to: ev.peerId, id: String(id), reason: ev.reason, topic })
        }
        if (e !== undefined) this.#maybeForget(e)
        break
      }
      case 'error':
        this.#error(reviveError(ev.error))
        break
    }
  }

  /**
   * Ring the doorbell of the IO worker serving a peer: its current link's,
   * else the one that routes to it or served it last. Before the host knows
   * either (a routed peer's first messages can be queued before its
   * peer:routed event is read), every worker's: the one whose actor reads the
   * queue may already have looked at it while it was still empty, and its
   * send pump sleeps until rung. For a new reliable frame (`reliable`), not
   * while the peer's actor is parked (no credit or a write-blocked socket:
   * see AckBoard.setParked); it rings itself when that ends.
   */
  #wake (e: PeerEntry, reliable = false): void {
    // The worker consuming the peer's queue, as the queue itself says: the events that move a peer
    // between workers (peer:down on one, peer:routed on another) can reach us in either order, and
    // a worker that does not serve the peer may announce it too while the router's link list is in
    // flight; waking another than the consumer left sends for the 5 s safety net (issue 4).
    const owner = e.board.owner()
    const s = (owner === undefined ? undefined : this.#sup.slots[owner]) ?? e.slot ?? e.home
    if (s !== undefined) {
      if (!reliable || !e.board.parked()) s.doorbell.ring()
    } else {
      for (const x of this.#sup.slots) x.doorbell.ring()
    }
  }

  #markDown (e: PeerEntry): void {
    e.slot = undefined
    e.handle = 0
    if (e.info.state === 'disconnected' || e.info.state === 'failed') return
    const previous = e.info.state
    e.info = { ...e.info, state: 'disconnected', since: Date.now() }
    this.#emitSafe('peer:health', { peer: e.info.id, state: 'disconnected', previous, rttMs: e.info.rttMs })
    this.#emitSafe('peer:down', { ...e.info })
  }

  #workerLost (slot: IoSlot): void {
    const m = this.#byHandle.get(slot)
    this.#byHandle.delete(slot)
    for (const e of this.#peers.values()) {
      if (e.home === slot) e.home = undefined
      // Its actors are gone: their queues are free for another worker to adopt (see #adoptOrphans).
      e.board.disown(slot.index)
    }
    for (const e of m?.values() ?? []) if (e.slot === slot) this.#markDown(e)
  }

  /**
   * Hand the queues of peers no IO worker looks after to one, so that what
   * waits in them expires after delivery.retainMs (and is reported
   * `undelivered`) if the peer never comes back: messages reloaded from the
   * durable outbox for a peer this process has not linked (`only`), and,
   * after an IO worker restart, every peer neither linked nor served
   * through a relay (their actors died with the worker). A worker takes a
   * queue only if no other consumes it (PeerActor.adopt); a peer linking
   * later takes it over.
   */
  #adoptOrphans (only?: Iterable<string>): void {
    const slots = this.#sup.slots
    if (slots.length === 0 || this.#closing !== undefined) return
    const bySlot = new Map<IoSlot, string[]>()
    const entries = only === undefined ? this.#peers.values() : [...only].map((id) => this.#peers.get(id))
    for (const e of entries) {
      // Not linked, and no worker serving it through a relay (home) either.
      if (e === undefined || e.slot !== undefined || e.home !== undefined) continue
      const id = e.info.id
      // The worker that serves the peer through relays too (routedHome): no handover when it is routed later.
      const s = slots[routedHome(id, slots.length)] as IoSlot
      const list = bySlot.get(s)
      if (list === undefined) bySlot.set(s, [id])
      else list.push(id)
    }
    for (const [s, ids] of bySlot) {
      s.api.adopt(ids).catch((err: unknown) => {
        if (this.#closing === undefined) this.#log.warn({ component: 'mesh', event: 'queue:adopt-failed', peers: ids.length, err: (err as Error).message }, 'could not hand unlinked peers\' queues to an IO worker (their messages expire when a worker next serves them)')
      })
    }
  }

  #redial (slot: IoSlot): void {
    for (const [url, id] of slot.dials) {
      slot.api.dial(url, id, true).catch((err: unknown) => {
        this.#log.warn({ component: 'mesh', event: 'redial:failed', address: url, err: (err as Error).message }, 'redial after worker restart failed')
      })
    }
  }

  /**
   * Wait until the host has seen `peer:up` for `peerId`. Bounded: when the dial
   * lost the duplicate rule, the surviving connection may still fail its
   * handshake, and connect() must not hang on it.
   */
  async #waitUp (peerId: string): Promise<void> {
    const e = this.#peers.get(peerId)
    if (e !== undefined && e.slot !== undefined) return
    const timeout = new MeshError(ErrorCode.TIMEOUT, `peer ${peerId} was not linked within ${this.#opts.handshakeTimeoutMs} ms`, { details: { peer: peerId } })
    let timer: NodeJS.Timeout | undefined
    let waiter: (() => void) | undefined
    try {
      await new Promise<void>((resolve, reject) => {
        waiter = resolve
        const list = this.#upWaiters.get(peerId) ?? []
        list.push(resolve)
        this.#upWaiters.set(peerId, list)
        timer = setTimeout(() => { reject(timeout) }, this.#opts.handshakeTimeoutMs + 1000)
      })
    } finally {
      clearTimeout(timer)
      const list = this.#upWaiters.get(peerId)
      if (list !== undefined && waiter !== undefined) {
        const rest = list.filter((w) => w !== waiter)
        if (rest.length === 0) this.#upWaiters.delete(peerId)
        else this.#upWaiters.set(peerId, rest)
      }
    }
  }

  #finish (): void {
    if (this.#closed) return
    this.#closed = true
    this.#metrics.close()
    for (const e of this.#peers.values()) if (e.slot !== undefined) this.#markDown(e)
    for (const e of this.#peers.values()) { e.ring.close(); e.datagrams.close() }
    const closed = (): MeshError => new MeshError(ErrorCode.CLOSED, 'the mesh closed')
    for (const id of [...this.#requests.keys()]) this.#failRequest(id, closed())
    for (const e of this.#peers.values()) for (const w of e.ackWaiters.splice(0)) w.reject(closed())
    for (const list of this.#upWaiters.values()) for (const w of list) w()
    this.#upWaiters.clear()
    this.#log.info({ component: 'mesh', event: 'close', peer: this.id }, 'meshwork node closed')
  }

  #emitSafe<K extends keyof MeshEvents>(event: K, arg: MeshEvents[K]): void {
    try {
      (this.emit as (e: K, a: MeshEvents[K]) => boolean)(event, arg)
    } catch (err) {
      process.nextTick(() => { throw err })
    }
  }

  /**
   * Another process holds our dataDir's lock now: it judged ours stale (this
   * process was paused, or could not refresh it, for over 30 s where the
   * other could not check our pid) and runs as this node, same id, same
   * outbox. Two of us would displace each other's links and write one
   * store: this one stops, at once (a graceful close would still send as
   * the id, and announce it leaving). Reported as `error` (CLOSED).
   */
  #onLockLost (why: string): void {
    if (this.#closing !== undefined || this.#lockLost !== undefined) return
    const err = new MeshError(ErrorCode.CLOSED, `dataDir lock lost: ${why}; this node stops (one node per dataDir)`, { details: { path: 'options.dataDir', reason: 'lock-lost' } })
    this.#lockLost = err
    this.#log.error({ component: 'mesh', event: 'lock:lost', err: err.message }, 'dataDir lock lost; stopping this node')
    // Still starting: create() stops the node and rejects with it (nobody listens for `error` yet).
    if (this.#starting) return
    // Stopping first: a handler of `error` that calls close() must not turn this into a graceful close.
    this.destroy().catch((e: unknown) => { this.#log.error({ component: 'mesh', event: 'lock:lost', err: (e as Error).message }, 'stopping after the lost lock failed') })
    this.#error(err)
  }

  /** `error` is emitted only when someone listens: an unheard library fault must not crash the host. */
  #error (err: MeshError): void {
    if (this.listenerCount('error') > 0) this.#emitSafe('error', err)
  }
}

/**
 * TLS options are validated but not enforced by this version. Accepting them
 * silently would let a user believe the links are encrypted when they are
 * not, so they are refused until wss:// lands.
 */
function refuseUnenforced (o: ResolvedMeshOptions): void {
  const refuse = (path: string, what: string): never => {
    throw new MeshError(ErrorCode.INVALID_OPTIONS, `options.${path}: ${what} is not supported by this version of meshwork yet; refusing rather than running unprotected`, { details: { path: `options.${path}` } })
  }
  if (o.tls !== undefined) refuse('tls', 'TLS (wss://)')
  if (o.listen.some((l) => l.protocol === 'wss')) refuse('listen', 'wss://')
  if (o.bootstrap.some((b) => b.url.startsWith('wss:'))) refuse('bootstrap', 'wss://')
}

function reviveError (err: unknown): MeshError {
  if (err instanceof MeshError) return err
  const e = err as { code?: unknown; message?: unknown; details?: unknown } | undefined
  if (e !== undefined && typeof e.code === 'string' && (Object.values(ErrorCode) as string[]).includes(e.code)) {
    return new MeshError(e.code as ErrorCode, String(e.message), e.details === undefined ? undefined : { details: e.details as Record<string, unknown> })
  }
  return new MeshError(ErrorCode.PROTOCOL, String((err as Error)?.message ?? err))
}

/**
 * Start a mesh node: validate options, load the identity, spawn the workers,
 * bind the listeners and dial `bootstrap` in the background.
 *
 * Peers may link (and send) as soon as the listeners are bound. Nothing
 * reaches the application before `createMesh()` has resolved: messages and
 * events are held until the next macrotask after it, so listeners attached
 * right after `await createMesh(...)` see everything. (Attach them before
 * awaiting anything else.)
 * @throws MeshError INVALID_OPTIONS naming the option and the problem.
 */
export async function createMesh (options?: MeshOptions): Promise<Mesh> {
  return await Mesh.create(options)
}

/**
 * Room a record on `laneNo` must leave free in a send queue: bulk messages
 * leave the last quarter to the other lanes, so a priority message sent
 * during a large transfer finds room at once (it still follows what is queued
 * ahead of it) and is never refused QUEUE_FULL because of bulk data.
 */
function laneReserve (ring: RingBuffer, laneNo: number): number { return laneNo === Lane.BULK ? ring.capacity >> 2 : 0 }

/** A handler's error as text for its caller; never throws (`String()` of an object without a prototype does). */
function errorText (err: unknown): string {
  try {
    const m = (err as { message?: unknown } | null)?.message
    return typeof m === 'string' ? m : String(err)
  } catch {
    return 'the handler failed with a value that cannot be shown as text'
  }
}

/** False if a record of `bytes` on `laneNo` would eat into its lane's reserve (tryWrite2 still decides whether it fits). */
function laneRoom (ring: RingBuffer, laneNo: number, bytes: number): boolean {
  const reserve = laneReserve(ring, laneNo)
  // + 8: a record's length prefix and padding.
  return reserve === 0 || ring.capacity - ring.usedBytes() >= bytes + 8 + reserve
}

/** A lane option's wire number, or the INVALID_OPTIONS error naming what was given. */
function laneNumber (lane: unknown = 'priority'): number | MeshError {
  const n = (LANE_NUMBER as Record<string, number | undefined>)[String(lane)]
  return typeof lane === 'string' && n !== undefined ? n : new MeshError(ErrorCode.INVALID_OPTIONS, `options.lane must be 'priority' or 'bulk' (got ${JSON.stringify(lane)})`)
}
