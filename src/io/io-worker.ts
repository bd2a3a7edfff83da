import { randomBytes } from 'node:crypto'
import { WebSocket } from 'ws'
import { wrap, expose, type Remote } from 'comlink'
import { setImmediate as yieldToIo } from 'node:timers/promises'
import { resourceLimits } from 'node:worker_threads'
import { Doorbell } from '../ring/doorbell.js'
import { concatBytes } from '../ring/copy-bytes.js'
import { Connection, ONE_WAY_HEARTBEAT, type ConnectionOwner, type FrameSink } from '../connection/connection.js'
import { CrossKind, CrossWorkerRings, RemoteHop, routedHome } from './cross-worker.js'
import { ACK_DELAY_MS, BATCH_BYTES, PeerActor } from '../connection/peer-actor.js'
import { SendSlab } from '../connection/send-slab.js'
import { InboundWriter } from './inbound-writer.js'
import { WsListener } from '../transport/ws-listener.js'
import { PROTOCOL_VERSION, CloseCode, FrameType, Lane, STREAM_FRAME_TYPES } from '../codec/frame.js'
import { encodeFrame } from '../codec/encode.js'
import { forEachFrame } from '../codec/decode.js'
import { decodeControl } from '../codec/control.js'
import type { CodecLimits } from '../codec/limits.js'
import { identityFromDer, signBytes, verifyFrom, type Identity } from '../identity/identity.js'
import { WorkerLogger } from '../observability/worker-logger.js'
import { MeshError, ErrorCode, toWire } from '../errors.js'
import { nodeEndpoint } from '../actor/endpoint.js'
import type { HandshakeConfig, HandshakeResult, RejectReason, DecideStage } from '../handshake/handshake.js'
import { Backoff } from '../liveness/backoff.js'
import { meshKeyProof, verifyMeshKeyProof } from '../identity/mesh-key.js'
import type { HealthConfig, HealthOutput } from '../liveness/health-monitor.js'
import { FlowPinner } from '../routing/flow-pinning.js'
import { hostSlowdown } from '../routing/link-cost.js'
import { HeartbeatScheduler } from '../liveness/heartbeat-scheduler.js'
import { collectGarbage } from '../util/gc.js'
import type { DialResult, ForwardingEntry, HostCallbacks, IoWorkerApi, IoWorkerData, IoWorkerStats, IoPeerControl, LinkSnapshot, LinkStatsReport, RouterApi } from '../actor/protocol.js'
import { MAX_DISCARDED } from '../delivery/ack-board.js'
import { addBounded } from '../util/bounded-set.js'

/** Features this build speaks; negotiated down to the common set in the handshake. */
export const FEATURES = ['batch', 'raw-payload', ONE_WAY_HEARTBEAT] as const
/** Protocol versions this build speaks. */
export const VERSIONS: readonly number[] = [PROTOCOL_VERSION]
/** Upgraded connections still in their handshake, above which new ones are refused. */
export const MAX_PENDING_HANDSHAKES = 64
/** Header room on top of a payload for one frame's msgpack envelope. */
export const FRAME_OVERHEAD = 256
/** Largest payload of one frame: bigger messages travel as chunks of this size (lanes stay responsive). */
export const CHUNK_BYTES = 64 * 1024
/** Messages a peer reported discarded that an actor remembers, so each is reported once (PeerActor.discardReported). */
const MAX_DISCARD_REPORTS = 16
/**
 * Largest FORWARD envelope payload every node accepts, whatever its
 * maxMessageBytes: one chunk frame wrapped once, with room to spare. Relays
 * and senders rely on it (PeerActor's INNER_BATCH_BYTES, a relayed chunk);
 * the destination checks each inner frame against its own limit.
 */
export const ENVELOPE_PAYLOAD_BYTES = CHUNK_BYTES + 2 * FRAME_OVERHEAD
/** ws `generateMask`: leave the 4-byte key zero (see #dialOnce). */
function zeroMask (mask: Buffer): void { mask.fill(0) }
/** Largest WebSocket message: a batch of frames, or one chunk (see PeerActor.pump). */
export const MAX_WS_MESSAGE_BYTES = 512 * 1024
/** How often RTT samples reach the host (for the metrics histogram), and link measurements the router (link costs). */
export const RTT_REPORT_MS = 5_000
/** Report periods whose smallest RTT a link's cost takes the minimum of (30 s). */
export const RTT_MIN_PERIODS = 6
/** Least pings in a report period for a loss figure (link costs). */
export const LOSS_MIN_PINGS = 3
/** Credit a receiver grants each sender (bytes in flight beyond its last ACK), at most. */
export const MAX_RECEIVE_WINDOW = 4 * 1024 * 1024

/** The credit an IO worker whose inbound ring has `inboundRingBytes` (SharedArrayBuffer size) grants a sender, at most: half its ring. */
export function receiveWindowBytes (inboundRingBytes: number): number {
  return Math.min(MAX_RECEIVE_WINDOW, Math.floor(inboundRingBytes / 2))
}
/**
 * ACK timeout of a routed peer's stream (ms): with frames in flight and no
 * ACK progress for this long, resend from the oldest unacknowledged frame.
 * A relay can drop frames on an open connection (no route while tables
 * converge, hop limit), and the receiver drops everything after a gap, so
 * without this a relayed stream could stall until the next re-attach.
 * Doubles per timeout without progress, up to RELAY_RTO_MAX_MS (a slow
 * receiving host that simply has not taken the frames yet costs little).
 * Direct links need none: an open connection loses nothing, and a new one
 * rewinds (PeerActor.attach).
 */
export const RELAY_RTO_MS = 300
/**
 * How long discovery leaves a peer alone after it replaced our live link
 * with another connection from our id (ms): only another process holding our
 * key makes one (LinkRegistry: a dialer never makes a second itself), and
 * the two would otherwise take the link from each other for ever.
 */
export const EVICTED_QUIET_MS = 60_000
/** Largest ACK timeout of a routed peer's stream (ms); see RELAY_RTO_MS. */
export const RELAY_RTO_MAX_MS = 5_000
/** A routed peer whose frames keep arriving is re-sent our latest ACK at most this often (ms): the ACK it lost to a relay would otherwise only be superseded by the next delivery. */
export const RELAY_REACK_MS = 100

/**
 * The send pump's safety net (ms): it sleeps on its doorbell, which every
 * producer rings, but if some path ever forgot to ring, queued frames would
 * wait for the next unrelated ring. Waking this often when idle costs almost
 * nothing (~0.25 ms of CPU per wake-up); finding work then is a bug, counted
 * (IoWorkerStats.pumpRescues) and logged, and the tests assert it stays 0.
 */
export const PUMP_SAFETY_NET_MS = 5_000

interface PendingDial { resolve: (r: DialResult) => void; reject: (e: MeshError) => void }

/**
 * An outbound link this worker keeps up: re-dialed with backoff when it drops.
 * Registered after the first successful handshake (or at once for bootstrap).
 */
interface DialTarget {
  url: string
  /** Pinned after the first handshake, so a different node at the address is refused. */
  expectedId: string | undefined
  backoff: Backoff
  timer: NodeJS.Timeout | undefined
  /** The connection currently dialed for this target. */
  conn: Connection | undefined
}

/** Handshake refusals after which re-dialing the same address cannot help. */
const PERMANENT_REFUSALS = new Set(['id-mismatch', 'version', 'unauthorized', 'self', 'bad-signature'])

/**
 * An IO worker: hosts the listeners, the connections and the per-peer
 * connection actors of its share of the peers. Everything here runs off the
 * host's main thread.
 */
export class IoWorker implements ConnectionOwner {
  readonly index: number
  readonly limits: CodecLimits
  readonly log: WorkerLogger
  readonly counters = { framesIn: 0, bytesIn: 0, wsMessagesIn: 0, framesOut: 0, bytesOut: 0, wsMessagesOut: 0 }
  readonly heartbeat: HealthConfig
  readonly heartbeats = new HeartbeatScheduler()
  readonly #data: IoWorkerData
  readonly #identity: Identity
  readonly #host: Remote<HostCallbacks>
  readonly #router: Remote<RouterApi>
  readonly #doorbell: Doorbell
  readonly #inbound: InboundWriter
  /** Outgoing batches of every actor are carved from here (see SendSlab). */
  readonly #slab = new SendSlab(BATCH_BYTES)
  readonly #listeners: WsListener[] = []
  readonly #conns = new Map<number, Connection>()
  readonly #actors = new Map<string, PeerActor>()
  readonly #dials = new Map<Connection, PendingDial>()
  readonly #targets = new Map<string, DialTarget>()
  #reconnectAttempts = 0
  readonly #rejected: Record<string, number> = {}
  readonly #refused: Record<string, number> = {}
  #listenUrls: string[] = []
  readonly #meshKey: HandshakeConfig['meshKey']
  #nextConn = 1
  #nextHandle = 1
  #closing = false
  /** Doorbell wake-ups of the send pump (IoWorkerStats.pumpWakes). */
  #pumpWakes = 0
  /** Safety-net wake-ups that found work nobody rang for (IoWorkerStats.pumpRescues; a missed doorbell). */
  #pumpRescues = 0
  #pumping = false
  readonly #maxWsMessage: number
  readonly #receiveWindow: number
  #expiryTimer: NodeJS.Timeout | undefined
  /** Peers that replaced our live link with another connection from our id (CloseCode.DUPLICATE), until when discovery leaves them alone. */
  readonly #evicted = new Map<string, number>()
  /** Routed peers' ACK timeouts (see RELAY_RTO_MS). */
  #rtoTimer: NodeJS.Timeout | undefined
  readonly #rto = new WeakMap<PeerActor, { since: number; rto: number }>()
  readonly #reAckAt = new WeakMap<PeerActor, number>()
  /**
   * `routing.multipath`: our own flows to routed peers (one per destination
   * for now: sender = this node, receiver, stream 0) pinned to one of the
   * forwarding table's first hops by weight (flow-pinning.ts). Relayed
   * frames of other nodes always take the primary next hop.
   */
  readonly #pinner: FlowPinner | undefined
  /**
   * Rings to and from this node's other IO workers (absent with one): a
   * relay's envelope whose next hop is linked on another worker goes there
   * through them, and so do a routed peer's batches and the envelopes from a
   * routed peer whose actor lives there (see #hostsRouted).
   */
  readonly #cross: CrossWorkerRings | undefined
  /** Every link of this node by neighbour, from the router (IoPeerControl.setLinks): the worker owning it, and whether it is up. */
  #linkWorker = new Map<string, { worker: number; up: boolean }>()
  /** Links of other workers as next hops, one object per (worker, neighbour) so actors can compare them. */
  readonly #remoteHops = new Map<string, RemoteHop>()

  constructor (data: IoWorkerData) {
    this.#data = data
    this.index = data.index
    this.#identity = identityFromDer(data.identityDer)
    this.#host = wrap<HostCallbacks>(nodeEndpoint(data.hostPort))
    this.#router = wrap<RouterApi>(nodeEndpoint(data.routerPort))
    this.#doorbell = Doorbell.attach(data.doorbell)
    this.#cross = data.cross === undefined ? undefined : new CrossWorkerRings(data.index, data.cross)
    this.#nextHandle = data.handleBase + 1
    const control: IoPeerControl = {
      dropConnection: async (k, r) => { await this.dropConnection(k, r) },
      sendMembership: async (peerId, payload) => this.membershipOut(peerId, payload),
      // A batch of LSAs for one neighbour goes out as one WebSocket message (a flood storm is many).
      sendRouting: async (peerId, payload) => Array.isArray(payload) ? this.#controlOutMany(peerId, FrameType.ROUTING, payload) : this.#controlOut(peerId, FrameType.ROUTING, payload),
      sendRoutingMany: async (batch) => {
        const failed: string[] = []
        for (const b of batch) if (!this.#controlOutMany(b.to, FrameType.ROUTING, b.payloads)) failed.push(b.to)
        return failed
      },
      setRoutes: async (table) => { this.#setRoutes(table) },
      setLinks: async (links) => { this.#setLinks(links) },
      discover: async (url, peerId) => {
        // Never dial a peer we already have a connection with (see the router's check).
        let connected = false
        for (const c of this.#conns.values()) if (c.peerId === peerId && c.state !== 'closed') connected = true
        const quietUntil = this.#evicted.get(peerId)
        if (quietUntil !== undefined && performance.now() < quietUntil) return false
        this.#evicted.delete(peerId)
        // Discovery is best effort: the router asks again (after a backoff) if this ends unlinked.
        if (!connected) await this.dial(url, peerId).catch(() => {})
        return this.#actors.get(peerId)?.direct !== undefined
      },
    }
    expose(control, nodeEndpoint(data.controlPort))
    this.log = new WorkerLogger((recs) => { void this.#host.log(recs) }, data.logLevel, { component: `io${data.index}` })
    const maxPayloadBytes = Math.min(data.config.maxMessageBytes, CHUNK_BYTES) + FRAME_OVERHEAD
    this.limits = { maxPayloadBytes, maxEnvelopeBytes: Math.max(maxPayloadBytes, ENVELOPE_PAYLOAD_BYTES), maxIdBytes: 64 }
    this.#maxWsMessage = Math.max(MAX_WS_MESSAGE_BYTES, ENVELOPE_PAYLOAD_BYTES + FRAME_OVERHEAD)
    // Each sender's credit: half the inbound ring (a ring-full of in-flight data
    // per ack round trip); several fast senders beyond that are held back by
    // the inbound writer pausing their sockets.
    this.#receiveWindow = receiveWindowBytes(data.inboundRing.byteLength)
    this.heartbeat = data.config.heartbeat
    const key = data.config.meshKey
    this.#meshKey = key === undefined
      ? (data.config.join === 'key' ? { prove: () => new Uint8Array(0), verify: () => false, required: true } : undefined)
      : {
          prove: (role, transcript) => meshKeyProof(key, role, transcript),
          verify: (role, transcript, proof) => verifyMeshKeyProof(key, role, transcript, proof),
          required: data.config.join !== 'open',
        }
    this.#inbound = new InboundWriter(data.inboundRing, (blocked) => {
      // Host not keeping up: stop reading sockets so TCP holds the senders back.
      for (const c of this.#conns.values()) if (c.state === 'open') c.pause(blocked)
    })
    void this.#pumpLoop()
    // Retention: messages for a peer that stays away are given up on after
    // delivery.retainMs and reported (`undelivered`), never dropped silently.
    this.#pinner = data.config.routing.multipath ? new FlowPinner() : undefined
  }

  /** The comlink-facing API for the supervisor. */
  api (): IoWorkerApi {
    return {
      listen: async () => await this.listen(),
      dial: async (url, expectedId, persistent) => await this.dial(url, expectedId, persistent === true),
      close: async (deadlineMs) => { await this.close(deadlineMs) },
      stats: async () => this.stats(),
      halt: async () => { this.halt() },
      collectGarbage: async () => collectGarbage(),
      adopt: async (peerIds) => {
        const out: string[] = []
        for (const id of peerIds) if (!this.#closing && (await this.#ensureActor(id)).adopt()) out.push(id)
        if (out.length > 0) this.log.debug({ event: 'queue:adopted', peers: out.length }, `looking after the queues of ${out.length} unlinked peer(s)`)
        return out
      },
      forget: async (peerId) => this.forget(peerId),
      hasActor: async (peerId) => this.#actors.has(peerId),
      crash: () => { setImmediate(() => { throw new Error('meshwork test hook: IO worker crash requested') }) },
      dropRelayed: async (to, count) => { if (count > 0) this.#testDrops.set(to, count); else this.#testDrops.delete(to) },
      echoRelayed: async (to, count) => {
        if (count > 0) { this.#testEchoes.set(to, { left: count, kept: [] }); return }
        const e = this.#testEchoes.get(to)
        this.#testEchoes.delete(to)
        for (const k of e?.kept ?? []) this.forward(k.conn, k.f)
      },
    }
  }

  /** Peers whose rings this worker asked the host for (#ensureActor), with the number of asks in flight. */
  readonly #ringsAwaited = new Map<string, number>()

  /** See IoWorkerApi.forget. */
  forget (peerId: string): boolean {
    // An answer to ringFor may be on its way on another port, carrying the rings the host would drop.
    if (this.#ringsAwaited.has(peerId)) return false
    const a = this.#actors.get(peerId)
    if (a === undefined) return true
    if (a.connection !== undefined || (a.owns && a.window.pending)) return false
    this.#actors.delete(peerId)
    a.forget()
    this.#pinner?.setPaths(peerId, [], [], performance.now())
    this.log.debug({ event: 'peer:forgotten', peer: peerId }, 'dropped the actor of a peer membership forgot')
    return true
  }

  async listen (): Promise<string[]> {
    const out: string[] = []
    for (const url of this.#data.listen) {
      const u = new URL(url)
      const l = new WsListener({
        host: u.hostname.replace(/^\[|\]$/g, ''),
        port: Number(u.port),
        maxPayload: this.#maxWsMessage,
        handshakeTimeoutMs: this.#data.config.handshakeTimeoutMs,
        maxPending: () => this.#pendingHandshakes() >= MAX_PENDING_HANDSHAKES,
        onConnection: (ws, req) => { this.#accept(ws, `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? 0}`) },
        onRefused: (reason) => { this.#refused[reason] = (this.#refused[reason] ?? 0) + 1 },
      })
      out.push(await l.listen())
      this.#listeners.push(l)
    }
    this.#listenUrls = out
    if (out.length > 0) this.log.debug({ event: 'listen', addresses: out }, 'listening')
    return out
  }

  async dial (url: string, expectedId: string | undefined, persistent = false): Promise<DialResult> {
    if (this.#closing) throw new MeshError(ErrorCode.CLOSED, 'the mesh is closing')
    const existing = this.#targets.get(url)
    if (existing !== undefined) {
      // Already kept up by this worker: dial now instead of waiting out the backoff.
      clearTimeout(existing.timer)
      existing.timer = undefined
      if (existing.conn !== undefined && existing.conn.state !== 'closed' && existing.conn.peerId !== undefined &&
          this.#actors.get(existing.conn.peerId)?.direct === existing.conn) {
        return { peerId: existing.conn.peerId, already: true }
      }
    }
    const target = existing ?? this.#addTarget(url, expectedId)
    try {
      return await this.#dialOnce(url, target.expectedId ?? expectedId, target)
    } catch (err) {
      // A plain connect() that never linked is the caller's to retry; a kept link or bootstrap retries itself.
      if (existing === undefined && !persistent) this.#targets.delete(url)
      else this.#scheduleRedial(target, err as MeshError)
      throw err
    }
  }

  #dialOnce (url: string, expectedId: string | undefined, target: DialTarget | undefined): Promise<DialResult> {
    const ws = new WebSocket(url, {
      maxPayload: this.#maxWsMessage,
      perMessageDeflate: false,
      // A backstop only: the connection's own handshake deadline (same length, from just after
      // this) ends a dial with TIMEOUT. ws's timer at the same length sometimes fired first and the
      // dial failed as an unreachable address (NO_ROUTE) instead, seen under load.
      handshakeTimeout: this.#data.config.handshakeTimeoutMs + 1000,
      // A zero masking key (RFC 6455 §5.3 masks client frames so that script
      // in a browser cannot steer bytes on the wire to poison an HTTP proxy's
      // cache). Both ends here are meshwork nodes and every frame's bytes are
      // ours, so masking protects nothing; with a zero key ws neither copies
      // nor XORs the payload on send and skips unmasking on receive (half the
      // dialer's CPU per byte at 64 KiB). Use wss:// for confidentiality.
      generateMask: zeroMask,
    })
    const conn = this.#makeConnection(ws, 'outbound', url, expectedId)
    if (target !== undefined) target.conn = conn
    const done = new Promise<DialResult>((resolve, reject) => { this.#dials.set(conn, { resolve, reject }) })
    ws.once('open', () => { conn.start() })
    return done
  }

  #addTarget (url: string, expectedId: string | undefined): DialTarget {
    const t: DialTarget = { url, expectedId, backoff: new Backoff(this.#data.config.reconnect, Math.random), timer: undefined, conn: undefined }
    this.#targets.set(url, t)
    return t
  }

  /** The target's connection ended (or a dial failed): re-dial after the next backoff delay, or give up. */
  #scheduleRedial (t: DialTarget, failure: MeshError | undefined): void {
    if (this.#closing || t.timer !== undefined) return
    const reason = String(failure?.details?.reason ?? '')
    if (PERMANENT_REFUSALS.has(reason)) {
      this.#targets.delete(t.url)
      this.log.warn({ event: 'reconnect:stop', address: t.url, peer: t.expectedId, reason }, `not re-dialing ${t.url}: ${failure?.message ?? reason}`)
      return
    }
    const delay = t.backoff.next()
    if (delay === undefined) {
      this.#targets.delete(t.url)
      this.log.warn({ event: 'reconnect:failed', address: t.url, peer: t.expectedId, attempts: t.backoff.attempts }, `giving up on ${t.url} after ${t.backoff.attempts} attempts`)
      if (t.expectedId !== undefined) {
        const actor = this.#actors.get(t.expectedId)
        this.#inbound.event(actor?.handle ?? 0, { type: 'peer:failed', peerId: t.expectedId, reason: `reconnect gave up after ${t.backoff.attempts} attempts` })
        // Nothing queued for it can be delivered any more: report it now rather than at retention.
        this.#expireAll(Date.now(), -Infinity, 'peer-failed', t.expectedId)
      }
      return
    }
    this.log.debug({ event: 'reconnect:scheduled', address: t.url, peer: t.expectedId, delayMs: Math.round(delay), attempt: t.backoff.attempts }, 're-dial scheduled')
    t.timer = setTimeout(() => {
      t.timer = undefined
      if (this.#closing || this.#targets.get(t.url) !== t) return
      this.#reconnectAttempts++
      this.#dialOnce(t.url, t.expectedId, t).then(() => { t.backoff.reset() }, (err: MeshError) => { this.#scheduleRedial(t, err) })
    }, delay)
    t.timer.unref()
  }

  // ---- ConnectionOwner ----

  async decide (conn: Connection, peerId: string, stage: DecideStage): Promise<{ reason: RejectReason; message: string } | undefined> {
    if (this.#closing) return { reason: 'busy', message: 'node is shutting down' }
    // The allow list binds both directions: we neither accept nor dial anyone outside it.
    // Checked at 'hello' too (the id is unproven there, but refusing early costs nothing).
    const allow = this.#data.config.allow
    if (allow !== undefined && !allow.includes(peerId)) {
      return { reason: 'unauthorized', message: `peer ${peerId} is not in this node's allow list` }
    }
    if (stage === 'hello') return undefined // the id is not proven yet: claim only after the signature checks
    const dialerId = conn.direction === 'outbound' ? this.#identity.id : peerId
    const r = await this.#router.claim({ connKey: conn.key, worker: this.index, peerId, dialerId })
    if (!r.ok) return { reason: r.code, message: r.reason }
    // The actor (and the peer's outbound ring) must exist before the first frame can arrive.
    await this.#ensureActor(peerId)
    return undefined
  }

  established (conn: Connection, result: HandshakeResult): void {
    const actor = this.#actors.get(result.peerId)
    if (actor === undefined || conn.state !== 'open') { conn.close(CloseCode.HANDSHAKE_FAILED, 'internal: no actor'); return }
    const prev = actor.direct // not a relay's connection the actor was routed over
    if (prev !== undefined && prev !== conn) prev.close(CloseCode.DUPLICATE, 'duplicate')
    actor.attach(conn)
    void this.#router.linkUp(conn.key, result.peerListen).catch(() => {})
    if (this.#inbound.blocked) conn.pause(true)
    this.#inbound.event(actor.handle, {
      type: 'peer:up',
      peerId: result.peerId,
      address: conn.direction === 'outbound' ? conn.address : result.peerListen[0],
      direction: conn.direction,
      listen: result.peerListen,
      features: result.features,
    })
    this.log.debug({ event: 'peer:up', peer: result.peerId, conn: conn.key, direction: conn.direction }, 'peer connected')
    const d = this.#dials.get(conn)
    if (d !== undefined) { this.#dials.delete(conn); d.resolve({ peerId: result.peerId, already: false }) }
    const t = conn.direction === 'outbound' ? this.#targets.get(conn.address) : undefined
    if (t !== undefined && t.conn === conn) { t.backoff.reset(); t.expectedId = result.peerId }
    this.#doorbell.ring() // frames may have queued while the peer was away
  }

  data (conn: Connection, frames: Uint8Array): void {
    const actor = conn.peerId === undefined ? undefined : this.#actors.get(conn.peerId)
    if (actor === undefined || actor.direct !== conn) return
    this.#handOff(actor, frames)
    this.#expectAck(actor)
  }

  #ackTimer: NodeJS.Timeout | undefined
  #ackTimerRuns = 0
  #ackTimerAcks = 0

  /** Frames from `actor`'s peer went to the host: make sure its ACK goes within ACK_DELAY_MS of being due. */
  #expectAck (actor: PeerActor): void {
    actor.expectAck(performance.now())
    this.#armAckTimer()
  }

  #armAckTimer (): void { this.#ackTimer ??= setTimeout(this.#onAckTimer, ACK_DELAY_MS) }

  /** One inbound data record of `actor`'s peer to the host, counted for its ACK clock (PeerActor.hostBehind). */
  #handOff (actor: PeerActor, frames: Uint8Array): void {
    this.#inbound.data(actor.handle, frames)
    actor.handedOff()
  }

  /**
   * Send the ACKs that waited ACK_DELAY_MS for traffic to ride on (most
   * ride on the next batch to the peer and never get here), and come back
   * for any the host has not made due yet. Runs only while frames from some
   * peer are unacknowledged: an idle worker has no timer here.
   */
  readonly #onAckTimer = (): void => {
    this.#ackTimer = undefined
    this.#ackTimerRuns++
    if (this.#closing) return
    const now = performance.now()
    let next = Infinity
    for (const a of this.#actors.values()) {
      let d = a.ackDeadline(now)
      if (d <= now) {
        if (a.flushAck()) this.#ackTimerAcks++
        // Frames the host had not taken when the ACK went keep the clock running (PeerActor.hostBehind).
        d = a.ackDeadline(now)
      }
      if (d > now && d < next) next = d
    }
    if (next !== Infinity) this.#ackTimer = setTimeout(this.#onAckTimer, Math.max(1, next - now))
  }

  writable (_conn: Connection): void { this.#doorbell.ring() }

  membership (conn: Connection, payload: Uint8Array): void {
    if (conn.peerId === undefined) return
    void this.#router.membership(conn.peerId, Uint8Array.prototype.slice.call(payload)).catch(() => {})
  }

  ack (conn: Connection, stream: number, seq: number, payload: Uint8Array | null): void {
    const actor = conn.peerId === undefined ? undefined : this.#actors.get(conn.peerId)
    if (actor === undefined || actor.direct !== conn) return
    this.#onAck(actor, stream, seq, payload)
  }

  #onAck (actor: PeerActor, stream: number, seq: number, payload: Uint8Array | null): void {
    let w: number | undefined
    let d: number[] | undefined
    if (payload !== null) {
      try {
        const v = decodeControl(payload) as { w?: unknown, d?: unknown }
        if (typeof v.w === 'number' && Number.isInteger(v.w) && v.w > 0) w = v.w
        // At most MAX_DISCARDED (the latest) from a well-behaved peer: each costs a walk of the queue's head.
        if (Array.isArray(v.d)) d = v.d.slice(-MAX_DISCARDED).filter((x): x is number => typeof x === 'number' && Number.isInteger(x) && x > 0 && x <= seq)
      } catch {
        // A malformed credit is ignored; the ACK itself is still good.
      }
    }
    // The peer discarded a chunked message unfinished (it restarted between its chunks, or the message
    // outgrew its maxMessageBytes): report it before the ACK releases its last chunks, which would read as delivery.
    // (Read from the ring: only as its owner, see PeerActor.onAck.)
    const r = actor.onAck(stream, seq, w, d === undefined ? undefined : () => { for (const x of d) this.#discarded(actor, stream, x) })
    actor.settleSkip(stream, seq)
    if (r.released > 0 && actor.via !== undefined) this.#rto.set(actor, { since: performance.now(), rto: RELAY_RTO_MS })
    // The seq of the last record released, not the peer's: the host settles its outbox and ack waiters through it.
    if (r.notify) this.#inbound.event(actor.handle, { type: 'acked', peerId: actor.peerId, stream, seq: r.throughSeq })
    // Credit opened: pump, if that lets anything go (a wake-up of our own loop costs a syscall).
    if ((r.released > 0 || w !== undefined) && actor.ready) this.#doorbell.ring()
  }

  #discarded (actor: PeerActor, stream: number, seq: number): void {
    const m = actor.window.messageOf(stream, seq)
    // Records already released (an ACK carrying the same report again), or the mesh's own message (no id the application knows).
    if (m === undefined || m.internal) return
    const id = m.id
    if (actor.discardReported.has(id)) return
    addBounded(actor.discardReported, id, MAX_DISCARD_REPORTS)
    const reason = 'discarded by the receiver (it restarted between the chunks, or the message exceeds its maxMessageBytes)'
    this.log.info({ event: 'undelivered', peer: actor.peerId, messages: 1, reason }, `message ${id} to ${actor.peerId} was ${reason}`)
    const f = actor.window.frameOf(stream, id)
    const topic = f === undefined ? undefined : actor.topicAt(f.start, f.len)
    this.#inbound.event(actor.handle, { type: 'undelivered', peerId: actor.peerId, ids: [id], reason, stream, throughSeq: 0, ...(topic === undefined ? {} : { topics: [[id, topic]] }) })
  }

  readonly #rttSamples = new Map<PeerActor, number[]>()
  readonly #rttReports = new WeakMap<PeerActor, number>()
  /** Smallest RTT of each of the last RTT_MIN_PERIODS report periods, per link (see #linkReport). */
  readonly #minRtts = new WeakMap<PeerActor, number[]>()
  #rttTimer: NodeJS.Timeout | undefined

  #flushRtt (): void {
    this.#rttTimer = undefined
    const reports: Array<{ a: PeerActor; r: LinkStatsReport }> = []
    for (const [a, samples] of this.#rttSamples) {
      if (samples.length === 0) continue
      this.#inbound.event(a.handle, { type: 'peer:rtt', peerId: a.peerId, rttMs: samples[samples.length - 1] as number, samples })
      const r = this.#linkReport(a, samples)
      if (r !== undefined) reports.push({ a, r })
    }
    this.#rttSamples.clear()
    // Most of our links slower at once: that is this host (its CPU starved), not
    // the links; their RTTs stay as last reported, so no LSA floods for it.
    const slowdown = hostSlowdown(reports.map(({ a, r }) => ({ rttMs: r.rttMs, before: this.#reportedRtt.get(a) })))
    if (slowdown) this.#linkSlowdowns++
    for (const { a, r } of reports) {
      const before = this.#reportedRtt.get(a)
      if (slowdown && before !== undefined && r.rttMs !== undefined) r.rttMs = Math.min(r.rttMs, before)
      if (r.rttMs !== undefined) this.#reportedRtt.set(a, r.rttMs)
    }
    if (reports.length > 0) void this.#router.linkStats(reports.map((x) => x.r)).catch(() => {})
  }

  /** The RTT last reported to the router, per link. */
  readonly #reportedRtt = new WeakMap<PeerActor, number>()
  /** Report periods in which most links slowed down together (held back, see #flushRtt). */
  #linkSlowdowns = 0

  /** Ping counts at the last link report, per connection (loss is measured between reports). */
  readonly #pingsAtReport = new WeakMap<Connection, { sent: number; lost: number }>()

  /**
   * What the router needs to cost the link to `a` (link-cost.ts): the
   * smallest RTT of the last RTT_MIN_PERIODS periods (the link's own delay,
   * like BBR's min RTT: larger samples add both hosts' scheduling delay,
   * and a starved host slows all its links at once, which would re-cost
   * them all and flood LSAs for nothing; congestion shows as queued bytes, a
   * stall as lost pings), the share of our pings known lost since the last
   * report, and the bytes queued to the peer now. Reported every
   * RTT_REPORT_MS, not at a link's first beats: until then it costs a LAN
   * link (`routing.cost.defaultRttMs`), which on a LAN is what it is.
   */
  #linkReport (a: PeerActor, samples: number[]): LinkStatsReport | undefined {
    const conn = a.direct
    if (conn === undefined || conn.state !== 'open') return undefined
    let min = Infinity
    for (const x of samples) if (x < min) min = x
    let mins = this.#minRtts.get(a)
    if (mins === undefined) this.#minRtts.set(a, mins = [])
    mins.push(min)
    if (mins.length > RTT_MIN_PERIODS) mins.shift()
    const r: LinkStatsReport = { connKey: conn.key, rttMs: Math.min(...mins), queueBytes: a.ring.usedBytes() }
    const now = conn.pingCounts()
    if (now !== undefined) {
      const then = this.#pingsAtReport.get(conn) ?? { sent: 0, lost: 0 }
      const sent = now.sent - then.sent
      // Judge periods of a few pings only (one lost of two is not 50 % loss).
      if (sent >= LOSS_MIN_PINGS) {
        r.loss = Math.min(1, (now.lost - then.lost) / sent)
        this.#pingsAtReport.set(conn, now)
      }
    }
    return r
  }

  /**
   * Run the retention check (see delivery.retainMs) while some peer has no
   * connection: only a disconnected peer's messages can expire
   * (PeerActor.expire). An idle worker whose peers are all linked takes no
   * wake-ups for it: the check stops itself once every peer has a connection
   * again, and a peer losing its connection (PeerActor.onDetach) or a new
   * actor (created without one) starts it.
   */
  #armExpiry (): void {
    if (this.#expiryTimer !== undefined || this.#closing) return
    const retainMs = this.#data.config.delivery.retainMs
    this.#expiryTimer = setInterval(() => {
      this.#expireAll(Date.now(), retainMs, 'expired')
      for (const a of this.#actors.values()) if (a.connection === undefined) return
      clearInterval(this.#expiryTimer)
      this.#expiryTimer = undefined
    }, Math.max(50, Math.min(1000, retainMs / 4)))
    this.#expiryTimer.unref()
  }

  #expireAll (now: number, retainMs: number, reason: string, only?: string): void {
    for (const a of this.#actors.values()) {
      if (only !== undefined && a.peerId !== only) continue
      const e = a.expire(now, retainMs)
      if (e === undefined) continue
      if (e.ids.length > 0) this.log.info({ event: 'undelivered', peer: a.peerId, messages: e.ids.length, reason }, `gave up on ${e.ids.length} message(s) to ${a.peerId}: ${reason}`)
      else this.log.debug({ event: 'undelivered', peer: a.peerId, messages: 0, reason }, `gave up on queued subscription updates to ${a.peerId}: ${reason}`)
      this.#inbound.event(a.handle, { type: 'undelivered', peerId: a.peerId, ids: e.ids, reason, stream: e.stream, throughSeq: e.throughSeq, ...(e.topics === undefined ? {} : { topics: [...e.topics] }) })
    }
  }

  membershipOut (peerId: string, payload: Uint8Array): boolean {
    return this.#controlOut(peerId, FrameType.MEMBERSHIP, payload)
  }

  #controlOut (peerId: string, type: number, payload: Uint8Array): boolean {
    const c = this.#actors.get(peerId)?.direct
    if (c === undefined || c.state !== 'open') return false
    c.send(encodeFrame({ version: PROTOCOL_VERSION, type, lane: Lane.CONTROL, flags: 0, src: null, dst: null, stream: 0, seq: 0, payload }), 1)
    return true
  }

  /**
   * LSAs from a neighbour, collected per neighbour and handed to the router
   * in one call per socket read (a microtask later): one control-plane
   * message per batch, not per LSA, during a flood.
   */
  routing (conn: Connection, payload: Uint8Array): void {
    const from = conn.peerId
    if (from === undefined) return
    let list = this.#routingIn.get(from)
    if (list === undefined) { list = []; this.#routingIn.set(from, list) }
    list.push(Uint8Array.prototype.slice.call(payload))
    if (this.#routingInQueued) return
    this.#routingInQueued = true
    queueMicrotask(() => {
      this.#routingInQueued = false
      for (const [peer, batch] of this.#routingIn) void this.#router.routing(peer, batch.length === 1 ? batch[0] as Uint8Array : batch).catch(() => {})
      this.#routingIn.clear()
    })
  }

  readonly #routingIn = new Map<string, Uint8Array[]>()
  #routingInQueued = false

  #controlOutMany (peerId: string, type: number, payloads: Uint8Array[]): boolean {
    const c = this.#actors.get(peerId)?.direct
    if (c === undefined || c.state !== 'open') return false
    const frames = payloads.map((payload) => encodeFrame({ version: PROTOCOL_VERSION, type, lane: Lane.CONTROL, flags: 0, src: null, dst: null, stream: 0, seq: 0, payload }))
    c.send(Buffer.concat(frames), frames.length)
    return true
  }

  /** Frames relayed for other nodes, and those dropped by reason (hop limit, no route, bad inner frame). */
  readonly relay = { forwarded: 0, delivered: 0, dropped: {} as Record<string, number>, retransmits: 0 }

  /** Test hook (IoWorkerApi.dropRelayed): envelopes for others still to drop, by destination. */
  readonly #testDrops = new Map<string, number>()

  #testDrop (dst: string): boolean {
    const n = this.#testDrops.get(dst)
    if (n === undefined) return false
    if (n <= 1) this.#testDrops.delete(dst)
    else this.#testDrops.set(dst, n - 1)
    this.#dropRelayed('test')
    return true
  }

  /** Test hook (IoWorkerApi.echoRelayed): envelopes for others to keep a copy of, and the copies, by destination. */
  readonly #testEchoes = new Map<string, { left: number; kept: Array<{ conn: Connection; f: { src: string; dst: string; seq: number; flags: number; payload: Uint8Array } }> }>()

  #testEcho (conn: Connection, f: { src: string; dst: string; seq: number; flags: number; payload: Uint8Array }): void {
    const e = this.#testEchoes.get(f.dst)
    if (e === undefined || e.left === 0) return
    e.left--
    e.kept.push({ conn, f: { src: f.src, dst: f.dst, seq: f.seq, flags: f.flags, payload: Uint8Array.prototype.slice.call(f.payload) } })
  }

  #dropRelayed (reason: string): void { this.relay.dropped[reason] = (this.relay.dropped[reason] ?? 0) + 1 }

  /**
   * A FORWARD frame from a neighbour. For us: unwrap it and treat the inner
   * frame as coming from its origin (through that origin's routed actor, so
   * the host sees it like any peer's). For someone else: pass it on towards
   * its destination with one hop less, never surfacing it to our host.
   */
  forward (conn: Connection, f: { src: string | null; dst: string | null; seq: number; flags: number; payload: Uint8Array | null }): void {
    const self = this.#identity.id
    if (f.src === null || f.dst === null || f.payload === null || f.src === self) { this.#dropRelayed('malformed'); return }
    if (f.dst !== self) {
      if (f.seq <= 1) { this.#dropRelayed('hop-limit'); return }
      if (this.#testDrops.size !== 0 && this.#testDrop(f.dst)) return
      if (this.#testEchoes.size !== 0) this.#testEcho(conn, { src: f.src, dst: f.dst, seq: f.seq, flags: f.flags, payload: f.payload })
      const next = this.#nextHop(f.dst)
      if (next === undefined || next === conn || next.peerId === conn.peerId) { this.#dropRelayed('no-route'); return }
      const out = encodeFrame({ version: PROTOCOL_VERSION, type: FrameType.FORWARD, lane: Lane.PRIORITY, flags: f.flags, src: f.src, dst: f.dst, stream: 0, seq: f.seq - 1, payload: f.payload })
      if (next instanceof RemoteHop) {
        // The next hop is linked on another IO worker: through the ring to it
        // (published with the batch, see #flushRelayed). A full ring drops:
        // reliable streams are end to end, the origin resends after its RTO.
        if (this.#cross?.append(next.worker, CrossKind.RELAY, next.peerId, out) !== true) return // counted as 'cross-worker-full' (stats)
      } else {
        // Batched per next hop until the current socket read is handled (see #flushRelayed).
        const q = this.#relayOut.get(next)
        if (q === undefined) this.#relayOut.set(next, [out])
        else q.push(out)
      }
      this.#queueRelayFlush()
      this.relay.forwarded++
      return
    }
    const home = this.#actorWorker(f.src)
    if (home !== this.index) {
      // The origin's routed actor lives on another IO worker (one per peer):
      // its envelopes go there, so its ACKs meet its send window.
      if (this.#cross?.append(home, CrossKind.DELIVER, f.src, f.payload) !== true) return // counted as 'cross-worker-full' (stats)
      this.#queueRelayFlush()
      return
    }
    this.#deliverSelf(f.src, f.payload, conn)
  }

  /**
   * An envelope's inner message for this node from `origin` (from a
   * neighbour's connection, or from another IO worker: `conn` undefined):
   * through the origin's routed actor, so the host sees it like any peer's.
   */
  #deliverSelf (origin: string, payload: Uint8Array, conn: Connection | undefined): void {
    // Validate the whole inner message first (one parse, no allocation per frame):
    // a bad one is dropped whole, like a bad WebSocket message on a direct link.
    try {
      forEachFrame(payload, this.limits, (x) => {
        if (x.type !== FrameType.ACK && !STREAM_FRAME_TYPES.has(x.type)) throw new Error('unexpected')
      })
    } catch (err) {
      // The relay is not at fault for its origin's garbage: drop, count, keep the link.
      this.#dropRelayed(err instanceof MeshError ? 'bad-inner-frame' : 'unexpected-inner-frame')
      return
    }
    this.relay.delivered++
    const ready = this.#actors.get(origin)
    if (ready !== undefined && ready.announced && ready.connection !== undefined) {
      // The common case: the origin's actor exists and is attached; no promise per frame.
      this.#deliverRouted(ready, payload)
      return
    }
    // Copy: the view dies with this message, and the actor is made asynchronously.
    const bytes = Uint8Array.prototype.slice.call(payload)
    void this.#routedActor(origin, conn).then((actor) => {
      if (actor !== undefined) this.#deliverRouted(actor, bytes)
    })
  }

  /**
   * One validated inner message from a routed peer: ACKs go to its actor,
   * stream frames to the host as they are (byte ranges of the message,
   * never re-encoded), contiguous runs in one inbound record.
   */
  #deliverRouted (actor: PeerActor, bytes: Uint8Array): void {
    this.#maybeReAck(actor)
    let runStart = -1
    let runEnd = -1
    let delivered = false
    forEachFrame(bytes, this.limits, (x, start, end) => {
      if (x.type === FrameType.ACK) {
        if (runStart >= 0) { this.#handOff(actor, bytes.subarray(runStart, runEnd)); runStart = -1 }
        this.#onAck(actor, x.stream, x.seq, x.payload)
        return
      }
      delivered = true
      if (runStart < 0) runStart = start
      runEnd = end
    })
    if (runStart >= 0) this.#handOff(actor, bytes.subarray(runStart, runEnd))
    // Only stream frames make an ACK due (an envelope of ACKs alone must not start the ACK clock).
    if (delivered) this.#expectAck(actor)
  }

  /** Relayed frames waiting for {@link #flushRelayed}, by next-hop connection (in arrival order). */
  readonly #relayOut = new Map<FrameSink, Uint8Array[]>()
  #relayFlushQueued = false

  /** Flush what this socket read queued for other links and workers once the read is handled. */
  #queueRelayFlush (): void {
    if (this.#relayFlushQueued) return
    this.#relayFlushQueued = true
    queueMicrotask(() => { this.#flushRelayed() })
  }

  /**
   * Send the relayed frames queued since the last flush, one WebSocket
   * message per BATCH_BYTES per next hop. Queued from forward() and flushed
   * in a microtask, i.e. once the socket read that carried them (every ws
   * message in it is emitted synchronously) is handled: one write per read
   * instead of one per frame — per-frame writes were most of a relay's time
   * in `perf relay` (writev ~36 % of the relay's IO thread).
   */
  #flushRelayed (copy = false): void {
    this.#relayFlushQueued = false
    for (const [conn, frames] of this.#relayOut) {
      if (conn.state !== 'open') { this.relay.dropped['no-route'] = (this.relay.dropped['no-route'] ?? 0) + frames.length; continue }
      let i = 0
      while (i < frames.length) {
        let bytes = 0
        let j = i
        while (j < frames.length && (j === i || bytes + frames[j]!.length <= BATCH_BYTES)) bytes += frames[j++]!.length
        // `copy`: the frames are views of a cross-worker ring, released after this (ws may keep what it is given).
        conn.send(j - i === 1 && !copy ? frames[i]! : concatBytes(frames.slice(i, j), bytes), j - i)
        i = j
      }
    }
    this.#relayOut.clear()
    // Envelopes for other IO workers queued by the same read: one publish (and at most one wake-up) per ring.
    this.#cross?.flush()
  }

  /**
   * Records other IO workers of this node left for us: relayed envelopes
   * and routed peers' batches go out on our links (batched per link like
   * forward()'s), envelopes for this node reach their origin's actor here.
   * Never sent on to a third worker (no ping-pong while link lists settle).
   */
  #drainCross (): number {
    const cross = this.#cross
    if (cross === undefined) return 0
    return cross.drain((_from, kind, id, body, frames) => {
      if (kind === CrossKind.DELIVER) { this.#deliverSelf(id, body, undefined); return }
      const c = this.#actors.get(id)?.direct
      if (c === undefined || c.state !== 'open') { this.#dropRelayed('no-route'); return }
      if (kind === CrossKind.SEND) { c.send(Buffer.from(body), frames); return }
      const q = this.#relayOut.get(c)
      if (q === undefined) this.#relayOut.set(c, [body])
      else q.push(body)
    }, () => { this.#flushRelayed(true) })
  }

  /** The IO worker whose actor serves `peerId` (its direct link's, else its routed home). */
  #actorWorker (peerId: string): number {
    const cross = this.#cross
    if (cross === undefined || this.#actors.get(peerId)?.direct !== undefined) return this.index
    const l = this.#linkWorker.get(peerId)
    return l !== undefined ? l.worker : routedHome(peerId, cross.count)
  }

  /**
   * Whether this worker hosts `peerId`'s actor while the peer is reached
   * through relays. Exactly one worker does (the peer's send ring has one
   * consumer): the one linked to it directly if any (that actor serves
   * it), else its routedHome. A link of our own counts as gone here: this is
   * asked when it closes, before the router's new link list arrives.
   */
  #hostsRouted (peerId: string): boolean {
    const cross = this.#cross
    if (cross === undefined) return true
    const l = this.#linkWorker.get(peerId)
    if (l !== undefined && l.worker !== this.index) return false
    return routedHome(peerId, cross.count) === this.index
  }

  /** A link of this node as a next hop: ours, else (several IO workers) another worker's that is up. */
  #hopSink (hop: string): FrameSink | undefined {
    const c = this.#actors.get(hop)?.direct
    if (c !== undefined && c.state === 'open') return c
    const cross = this.#cross
    const l = this.#linkWorker.get(hop)
    if (cross === undefined || l === undefined || !l.up || l.worker === this.index) return undefined
    const key = `${l.worker}:${hop}`
    let r = this.#remoteHops.get(key)
    if (r === undefined) {
      const worker = l.worker
      r = new RemoteHop(worker, hop, cross, () => { const x = this.#linkWorker.get(hop); return x !== undefined && x.up && x.worker === worker }, () => { this.#doorbell.ring() })
      this.#remoteHops.set(key, r)
    }
    return r
  }

  /**
   * The router's list of every link of this node. Routed actors of peers
   * now linked on another worker stop (before that worker's actor starts:
   * the router waits for this on a claim); routed peers whose next hop was
   * another worker's link that went down move at once (fast reroute); peers
   * that are ours to serve now (their direct link elsewhere ended) get their
   * routed actor.
   */
  #setLinks (links: LinkSnapshot[]): void {
    const m = new Map<string, { worker: number; up: boolean }>()
    for (const l of links) if (!(m.get(l.peerId)?.up ?? false)) m.set(l.peerId, { worker: l.worker, up: l.up })
    this.#linkWorker = m
    const lost = new Set<string>()
    for (const a of this.#actors.values()) {
      const c = a.connection
      if (c === undefined || a.direct !== undefined) continue
      if (!this.#hostsRouted(a.peerId)) { a.detach(c); continue }
      if (c instanceof RemoteHop && c.state !== 'open') lost.add(c.peerId)
    }
    for (const hop of lost) this.#rerouteAround(hop)
    this.#attachRouted(performance.now())
    this.#doorbell.ring()
  }

  /** The router's forwarding table, by destination. */
  #routes = new Map<string, ForwardingEntry>()

  #setRoutes (table: ForwardingEntry[]): void {
    const prev = this.#routes
    this.#routes = new Map(table.map((r) => [r.to, r]))
    const self = this.#identity.id
    const now = performance.now()
    if (this.#pinner !== undefined) {
      // Paths are keyed [self, first hop]: a first hop whose cost rose drains (flow-pinning.ts).
      for (const r of table) {
        if (r.via === r.to || r.to === self) { this.#pinner.setPaths(r.to, [], [], now); continue }
        // One path per first hop, at the cost of the best path through it: the k
        // paths may share a first hop (a→b→d and a→b→c→d once b and c link), and
        // a later, dearer one must not stand for that hop's weight.
        const best = new Map<string, number>()
        for (const p of r.paths) best.set(p.via, Math.min(best.get(p.via) ?? Infinity, p.cost))
        this.#pinner.setPaths(r.to, [...best.keys()].map((via) => [self, via]), [...best.values()], now)
      }
      for (const to of prev.keys()) if (!this.#routes.has(to)) this.#pinner.setPaths(to, [], [], now)
    }
    this.#attachRouted(now)
  }

  /** Attach every routed peer this worker serves (#hostsRouted) to its next hop, and detach those with no route. */
  #attachRouted (now: number): void {
    const self = this.#identity.id
    for (const r of this.#routes.values()) {
      if (r.via === r.to || r.to === self) continue
      const actor = this.#actors.get(r.to)
      if (actor?.direct !== undefined) continue // linked directly: that wins
      if (!this.#hostsRouted(r.to)) continue // another IO worker's actor serves it
      // Multipath: a routed flow with nothing in flight re-chooses over the new path set (one pinned while a single path existed spreads once a second appears).
      const via = this.#flowHop(r.to, now, actor !== undefined && actor.window.inFlightBytes === 0)
      if (via === undefined) continue
      if (actor !== undefined && actor.connection === via) continue
      void this.#routedActor(r.to, via)
    }
    // Routed peers with no route any more wait (their messages stay queued) until one appears.
    for (const a of this.#actors.values()) {
      if (a.via === undefined) continue
      const r = this.#routes.get(a.peerId)
      if (r === undefined || r.via === r.to) { const c = a.connection; if (c !== undefined) a.detach(c) }
    }
  }

  /**
   * The open connection our own frames for `dst` go out on: with multipath,
   * the first hop its flow is pinned to (while that link is open), else as
   * {@link #nextHop}.
   */
  #flowHop (dst: string, now: number, quiescent = false): FrameSink | undefined {
    if (this.#pinner !== undefined && this.#actors.get(dst)?.direct === undefined) {
      const hop = this.#pinner.pathFor({ sender: this.#identity.id, receiver: dst, stream: 0 }, now, quiescent)?.[1]
      const c = hop === undefined ? undefined : this.#hopSink(hop)
      if (c !== undefined && c.state === 'open') return c
    }
    return this.#nextHop(dst)
  }

  /** Multipath: move a routed peer's actor to the first hop its flow is pinned to now (a new path, or a drained one left after an idle gap). */
  #repin (a: PeerActor, now: number, quiescent = false): void {
    const c = this.#flowHop(a.peerId, now, quiescent)
    if (c === undefined || c === a.connection || c.peerId === undefined) return
    a.attach(c, { selfId: this.#identity.id, via: c.peerId, hops: Math.max(2, this.#data.config.routing.maxHops) })
    this.#rto.set(a, { since: now, rto: RELAY_RTO_MS })
    this.log.debug({ event: 'route:repin', peer: a.peerId, via: c.peerId }, 'flow pinned to another path')
  }

  /**
   * Start the relay timeout check (a routed peer has frames in flight). It
   * runs only while some routed peer has: an idle worker takes no wake-ups
   * for it. The timeouts start now (nothing was in flight before).
   */
  #ensureRto (now: number): void {
    if (this.#rtoTimer !== undefined || this.#closing) return
    for (const a of this.#actors.values()) { const t = this.#rto.get(a); if (t !== undefined) t.since = now }
    this.#rtoTimer = setInterval(() => { this.#relayTimeouts(performance.now()) }, Math.max(20, RELAY_RTO_MS / 3))
    this.#rtoTimer.unref()
  }

  /** Routed peers with frames in flight and no ACK progress for their timeout: resend (see RELAY_RTO_MS). */
  #relayTimeouts (now: number): void {
    let inFlight = false
    for (const a of this.#actors.values()) {
      // (Another worker's link took the ring over: its own timeouts are that worker's.)
      if (a.via === undefined || !a.owns) continue
      if (a.window.inFlightBytes > 0) inFlight = true
      const c = a.connection
      let t = this.#rto.get(a)
      if (t === undefined || c === undefined || c.state !== 'open' || a.window.inFlightBytes === 0) {
        // Nothing in flight (or nowhere to send): the timeout starts with the next frame out.
        if (t === undefined) this.#rto.set(a, { since: now, rto: RELAY_RTO_MS })
        else t.since = now
        continue
      }
      if (now - t.since < t.rto) continue
      a.window.rewind()
      this.relay.retransmits++
      t = { since: now, rto: Math.min(RELAY_RTO_MAX_MS, t.rto * 2) }
      this.#rto.set(a, t)
      this.#doorbell.ring()
    }
    if (!inFlight) {
      // Nothing unacknowledged on any routed peer: sleep until the next frame goes out (#ensureRto).
      clearInterval(this.#rtoTimer)
      this.#rtoTimer = undefined
    }
  }

  /** Frames from a routed peer arrived: re-send our latest ACK now and then (a relay may have dropped the last one). */
  #maybeReAck (a: PeerActor): void {
    const now = performance.now()
    if (now - (this.#reAckAt.get(a) ?? 0) < RELAY_REACK_MS) return
    this.#reAckAt.set(a, now)
    if (a.resendAck()) this.#doorbell.ring()
  }

  /**
   * The open link frames for `dst` go out on: direct, else the route's next
   * hop, else its alternate; a link of another IO worker of this node (a
   * RemoteHop) when that worker owns it.
   */
  #nextHop (dst: string): FrameSink | undefined {
    const direct = this.#actors.get(dst)?.direct
    if (direct !== undefined && direct.state === 'open') return direct
    const r = this.#routes.get(dst)
    if (r === undefined) return undefined
    for (const hop of [r.via, r.alt]) {
      if (hop === undefined) continue
      const c = this.#hopSink(hop)
      if (c !== undefined && c.state === 'open') return c
    }
    return undefined
  }

  /**
   * The actor of a peer reached through relays, attached to the right next
   * hop (the route's, else `fallback`: the link its frames came in on). The
   * host learns its handle before any of its frames (an ordered event).
   */
  async #routedActor (peerId: string, fallback: FrameSink | undefined): Promise<PeerActor | undefined> {
    const actor = await this.#ensureActor(peerId)
    if (!actor.announced) {
      actor.announced = true
      this.#inbound.event(actor.handle, { type: 'peer:routed', peerId })
    }
    if (actor.direct === undefined && this.#hostsRouted(peerId)) {
      const r = this.#routes.get(peerId)
      const via = this.#flowHop(peerId, performance.now()) ?? (fallback?.state === 'open' ? fallback : undefined)
      const viaId = via?.peerId
      if (via !== undefined && viaId !== undefined && actor.connection !== via) {
        // Taking the peer over from another IO worker (its direct link there ended): the host must ring us for it now.
        if (actor.connection === undefined && this.#cross !== undefined) this.#inbound.event(actor.handle, { type: 'peer:routed', peerId })
        actor.attach(via, { selfId: this.#identity.id, via: viaId, hops: Math.max(2, this.#data.config.routing.maxHops) })
        this.#rto.set(actor, { since: performance.now(), rto: RELAY_RTO_MS })
        this.log.debug({ event: 'route:attach', peer: peerId, via: viaId, hops: r?.hops }, 'routing via a relay')
        this.#doorbell.ring()
      }
    }
    return actor
  }

  /** Fast reroute: a link died; every peer routed through it moves to its alternate next hop at once (before link-state floods). */
  #rerouteAround (lost: string): void {
    for (const a of this.#actors.values()) {
      if (a.direct !== undefined || (a.via !== lost && a.peerId !== lost)) continue
      const c = a.connection
      if (c !== undefined && c.state !== 'open') a.detach(c)
      // A peer whose direct link here ended is served through relays by its routedHome worker (when that is another: it attaches once the router's link list arrives).
      if (!this.#hostsRouted(a.peerId)) { if (a.connection !== undefined) a.detach(a.connection); continue }
      const next = this.#flowHop(a.peerId, performance.now())
      if (next !== undefined && next.peerId !== undefined) {
        a.attach(next, { selfId: this.#identity.id, via: next.peerId, hops: Math.max(2, this.#data.config.routing.maxHops) })
        this.#rto.set(a, { since: performance.now(), rto: RELAY_RTO_MS })
        this.log.debug({ event: 'route:reroute', peer: a.peerId, via: next.peerId, lost }, 'fast reroute to the alternate next hop')
      }
    }
    this.#doorbell.ring()
  }

  health (conn: Connection, ev: Extract<HealthOutput, { kind: 'transition' }> | { kind: 'rtt'; rttMs: number }): void {
    const actor = conn.peerId === undefined ? undefined : this.#actors.get(conn.peerId)
    if (actor === undefined || actor.direct !== conn) return
    if (ev.kind === 'rtt') {
      // The latest RTT goes to shared memory (read by peers() on demand);
      // samples for the histogram are batched, so an idle mesh does not wake
      // the host on every pong.
      actor.board.setRtt(ev.rttMs)
      actor.noteRtt(ev.rttMs)
      let list = this.#rttSamples.get(actor)
      if (list === undefined) { list = []; this.#rttSamples.set(actor, list) }
      if (list.length < 1000) list.push(ev.rttMs)
      // The first few samples of a link go out at once (a new link shows its RTT promptly).
      const n = (this.#rttReports.get(actor) ?? 0) + 1
      this.#rttReports.set(actor, n)
      if (n <= 3) { this.#inbound.event(actor.handle, { type: 'peer:rtt', peerId: actor.peerId, rttMs: ev.rttMs, samples: list.splice(0) }); return }
      this.#rttTimer ??= setTimeout(() => { this.#flushRtt() }, RTT_REPORT_MS).unref()
      return
    }
    if (ev.state === 'dead' || ev.previous === 'dead') return // death is reported as peer:down by closed()
    // SWIM answers its direct pings from healthy links (router-service.ts #act): tell it when that stops or resumes.
    void this.#router.linkHealth(conn.key, ev.state === 'healthy').catch(() => {})
    this.log.debug({ event: 'peer:health', peer: actor.peerId, state: ev.state, previous: ev.previous, rttMs: ev.rttMs }, `peer ${ev.state}`)
    this.#inbound.event(actor.handle, { type: 'peer:health', peerId: actor.peerId, state: ev.state, previous: ev.previous, rttMs: ev.rttMs })
  }

  rejected (_conn: Connection, reason: string): void {
    this.#rejected[reason] = (this.#rejected[reason] ?? 0) + 1
  }

  refused (conn: Connection, reason: string, remote: boolean): void {
    const key = remote ? `by-peer:${reason}` : reason
    this.#refused[key] = (this.#refused[key] ?? 0) + 1
    if (reason === 'unauthorized' && !remote) {
      this.log.warn({ event: 'handshake:refused', conn: conn.key, peer: conn.peerId, address: conn.address, reason }, `refused ${conn.peerId ?? conn.address}: not admitted`)
    }
  }

  closed (conn: Connection, code: number, reason: string, failure: MeshError | undefined): void {
    this.#conns.delete(conn.id)
    void this.#router.release(conn.key).catch(() => {})
    const actor = conn.peerId === undefined ? undefined : this.#actors.get(conn.peerId)
    const wasUp = actor !== undefined && actor.detach(conn)
    if (wasUp) {
      this.#inbound.event(actor.handle, { type: 'peer:down', peerId: actor.peerId, reason: `${code}${reason === '' ? '' : ` ${reason}`}` })
      this.log.debug({ event: 'peer:down', peer: actor.peerId, conn: conn.key, code, reason }, 'peer disconnected')
    }
    // Peers reached through this link (and the peer itself, if a relay can reach it) move at once.
    if (conn.peerId !== undefined && conn.state === 'closed') this.#rerouteAround(conn.peerId)
    const t = conn.direction === 'outbound' ? this.#targets.get(conn.address) : undefined
    // Closed by the peer as a duplicate, even once established: the peer keeps another connection from
    // this id (ours, or one of another process holding the same key). Dialing again would take it
    // back, and that process would do the same: two such processes evicted each other for ever.
    const duplicate = failure?.details?.reason === 'duplicate' || code === CloseCode.DUPLICATE
    if (t !== undefined && t.conn === conn && !this.#dials.has(conn) && !duplicate) {
      // An established link dropped: keep it up.
      this.#scheduleRedial(t, failure)
    }
    if (code === CloseCode.DUPLICATE && wasUp && conn.peerId !== undefined && this.#actors.get(conn.peerId)?.direct === undefined) {
      // Our live link was replaced by one we do not have: another process holds our key. Discovery
      // would dial it back in seconds (and that process again): leave the peer to it for a while.
      if (!this.#evicted.has(conn.peerId)) this.log.warn({ event: 'link:evicted', peer: conn.peerId, conn: conn.key }, `${conn.peerId} replaced our link with another connection from this node's id: is another process running with this node's key? Not dialing it for ${EVICTED_QUIET_MS / 1000} s`)
      this.#evicted.set(conn.peerId, performance.now() + EVICTED_QUIET_MS)
    }
    const d = this.#dials.get(conn)
    if (d !== undefined) {
      this.#dials.delete(conn)
      // Lost the duplicate tie-break: the peer is (or is about to be) linked
      // through the surviving connection, so the dial succeeded.
      if (failure?.details?.reason === 'duplicate' && conn.peerId !== undefined) {
        d.resolve({ peerId: conn.peerId, already: true })
      } else {
        d.reject(failure ?? new MeshError(ErrorCode.NO_ROUTE, `connection to ${conn.address} closed (${code} ${reason})`))
      }
    } else if (failure?.code === ErrorCode.UNAUTHORIZED && failure.details?.remote === true) {
      // Refused by the peer with no caller to tell (an inbound connection, a re-dial): the host hears it as `error`.
      this.#inbound.event(0, { type: 'error', error: toWire(failure) })
    }
  }

  // ---- IoPeerControl (called by the router) ----

  async dropConnection (connKey: string, reason: string): Promise<void> {
    for (const c of this.#conns.values()) {
      if (c.key !== connKey) continue
      const actor = c.peerId === undefined ? undefined : this.#actors.get(c.peerId)
      // Stop consuming the ring now (SPSC: the winner may be on another worker).
      const wasUp = actor?.detach(c) === true
      c.close(CloseCode.DUPLICATE, reason, new MeshError(ErrorCode.PROTOCOL, `duplicate connection to ${c.peerId ?? '?'}`, { details: { reason: 'duplicate' } }))
      // The host heard peer:up for this link and hears no peer:down for it
      // (detached above): the winner's peer:up is meant to follow. If the
      // winner fails its handshake instead (seen under heavy load: its
      // deadline passed while the router decided), the host would show the
      // peer healthy with no link at all, and the peer, which saw the close,
      // would not. So: no direct link again by the winner's deadline → peer:down.
      if (wasUp && actor !== undefined) {
        const t = setTimeout(() => {
          if (this.#closing || actor.direct !== undefined || this.#actors.get(actor.peerId) !== actor) return
          this.#inbound.event(actor.handle, { type: 'peer:down', peerId: actor.peerId, reason: `${CloseCode.DUPLICATE} duplicate (the connection kept instead did not complete)` })
          this.log.debug({ event: 'peer:down', peer: actor.peerId, conn: c.key, reason: 'duplicate-replacement-failed' }, 'the connection kept instead of a duplicate did not complete')
        }, this.#data.config.handshakeTimeoutMs + 500)
        t.unref()
      }
    }
  }

  stats (): IoWorkerStats {
    return {
      connections: this.#conns.size,
      peers: [...this.#actors.values()].filter((a) => a.direct !== undefined).length,
      ...this.counters,
      rejectedFrames: { ...this.#rejected },
      refusedHandshakes: { ...this.#refused },
      reconnectAttempts: this.#reconnectAttempts,
      ackTimerRuns: this.#ackTimerRuns,
      ackTimerAcks: this.#ackTimerAcks,
      pumpWakes: this.#pumpWakes,
      pumpRescues: this.#pumpRescues,
      youngGenerationMb: resourceLimits.maxYoungGenerationSizeMb ?? 0,
      retentionCheck: this.#expiryTimer !== undefined,
      linkSlowdowns: this.#linkSlowdowns,
      relay: {
        ...this.relay,
        dropped: { ...this.relay.dropped, ...(this.#cross === undefined || this.#cross.counters.full === 0 ? {} : { 'cross-worker-full': this.#cross.counters.full }) },
        crossOut: this.#cross?.counters.out ?? 0,
        crossIn: this.#cross?.counters.in ?? 0,
      },
      routedVia: Object.fromEntries([...this.#actors.values()].flatMap((a) => a.via === undefined ? [] : [[a.peerId, a.via]])),
      routePaths: Object.fromEntries([...this.#routes.values()].filter((r) => r.via !== r.to).map((r) => [r.to, new Set(r.paths.map((p) => p.via)).size])),
    }
  }

  /**
   * Immediate stop (destroy): nothing more is parsed or sent. Called before
   * the supervisor terminates this worker, because terminating a worker
   * while its HTTP parser handles a socket read aborts the whole process
   * (Node: "v8::ToLocalChecked Empty MaybeLocal" in llhttp, seen in the suite).
   */
  halt (): void {
    this.#closing = true
    this.#doorbell.ring() // the pump loop sleeps without a timeout: let it see #closing and end
    for (const l of this.#listeners) l.halt()
    this.#stopTimers()
    this.heartbeats.stop()
    for (const c of this.#conns.values()) c.terminate()
  }

  /** No more re-dials, expiry, relay timeouts or RTT reports (halt and close). */
  #stopTimers (): void {
    for (const t of this.#targets.values()) clearTimeout(t.timer)
    this.#targets.clear()
    clearInterval(this.#expiryTimer)
    this.#expiryTimer = undefined
    clearInterval(this.#rtoTimer)
    this.#rtoTimer = undefined
    clearTimeout(this.#rttTimer)
    clearTimeout(this.#ackTimer)
    this.#ackTimer = undefined
  }

  async close (deadlineMs: number): Promise<void> {
    if (this.#closing) return
    this.#closing = true
    this.#doorbell.ring() // see halt()
    const deadline = Date.now() + deadlineMs
    for (const l of this.#listeners) l.close()
    this.#stopTimers()
    for (const [conn, d] of this.#dials) { d.reject(new MeshError(ErrorCode.CLOSED, 'the mesh closed before the connection completed')); this.#dials.delete(conn) }
    // Flush what the host queued, within the deadline.
    while (Date.now() < deadline) {
      let pending = false
      for (const a of this.#actors.values()) {
        a.pump()
        a.flushAck() // nothing is held back now: the peers learn what our host took before we go
        const c = a.connection
        // Graceful close waits for the peer to acknowledge what was queued (within the deadline).
        // (Only the ring's owner can see its messages acknowledged: another worker's link replaced ours.)
        if (c !== undefined && c.state === 'open' && ((a.owns && a.window.pending) || c.bufferedBytes > 0)) pending = true
      }
      if (!pending) break
      await new Promise<void>((resolve) => { setTimeout(resolve, 2).unref() })
    }
    const closing = [...this.#conns.values()].map(async (c) => await new Promise<void>((resolve) => {
      if (c.state === 'closed') { resolve(); return }
      const t = setInterval(() => { if (c.state === 'closed') { clearInterval(t); resolve() } }, 5)
      c.close(CloseCode.GOING_AWAY, 'node shutting down')
    }))
    const remaining = Math.max(50, deadline - Date.now())
    await Promise.race([Promise.all(closing), new Promise<void>((resolve) => { setTimeout(resolve, remaining).unref() })])
    for (const c of this.#conns.values()) c.terminate()
    // Anything the HTTP servers still parse (a request that never upgraded) goes too: the worker is terminated next.
    for (const l of this.#listeners) l.halt()
    await Promise.race([this.#inbound.flushed(), new Promise<void>((resolve) => { setTimeout(resolve, 1000).unref() })])
  }

  // ---- internals ----

  #accept (ws: WebSocket, remote: string): void {
    if (this.#closing) { ws.close(CloseCode.GOING_AWAY, 'node shutting down'); return }
    this.#makeConnection(ws, 'inbound', remote, undefined)
  }

  #makeConnection (ws: WebSocket, direction: 'inbound' | 'outbound', address: string, expectedId: string | undefined): Connection {
    const id = this.#nextConn++
    const conn = new Connection(id, this.index, ws, direction, address, this, {
      role: direction === 'outbound' ? 'dialer' : 'responder',
      selfId: this.#identity.id,
      sign: (d) => signBytes(this.#identity, d),
      verify: verifyFrom,
      nonce: randomBytes(32),
      versions: VERSIONS,
      features: FEATURES,
      listen: this.#listenUrls,
      expectedId,
      deadline: Date.now() + this.#data.config.handshakeTimeoutMs,
      meshKey: this.#meshKey,
    })
    this.#conns.set(id, conn)
    return conn
  }

  async #ensureActor (peerId: string): Promise<PeerActor> {
    let a = this.#actors.get(peerId)
    if (a !== undefined) return a
    // forget() refuses meanwhile: the host may have handed out rings it is about to drop.
    this.#ringsAwaited.set(peerId, (this.#ringsAwaited.get(peerId) ?? 0) + 1)
    let sabs
    try {
      sabs = await this.#host.ringFor(peerId)
    } finally {
      const n = (this.#ringsAwaited.get(peerId) ?? 1) - 1
      if (n > 0) this.#ringsAwaited.set(peerId, n)
      else this.#ringsAwaited.delete(peerId)
    }
    a = this.#actors.get(peerId) // another connection may have raced us here
    if (a !== undefined) return a
    a = new PeerActor(peerId, this.#nextHandle++, sabs.ring, sabs.board, sabs.datagrams, this.index, this.#receiveWindow, this.#data.config.sendQueue.policy === 'drop-oldest', this.#slab)
    this.#actors.set(peerId, a)
    a.onDetach = () => { this.#armExpiry() }
    this.#armExpiry()
    return a
  }

  #pendingHandshakes (): number {
    let n = 0
    for (const c of this.#conns.values()) if (c.state === 'handshaking') n++
    return n
  }

  #hasReady (): boolean {
    for (const a of this.#actors.values()) if (a.ready) return true
    return this.#cross?.hasData() === true
  }

  /**
   * Moves host-queued frames to sockets. Sleeps on the doorbell while no
   * actor has both queued frames and a writable socket; the host rings it
   * after each write, and connections ring it when their socket drains.
   */
  async #pumpLoop (): Promise<void> {
    if (this.#pumping) return
    this.#pumping = true
    while (!this.#closing) {
      let progressed = false
      const pinner = this.#pinner
      const now = pinner === undefined ? 0 : performance.now()
      if (this.#drainCross() > 0) progressed = true
      for (const a of this.#actors.values()) {
        // Multipath: a flow with frames sent and not yet acknowledged is active (refreshes its
        // pin); one with nothing in flight (queued frames not sent yet are not) is quiescent and
        // may move at once, to a path that appeared or off a draining one: nothing can be overtaken.
        if (pinner !== undefined && a.via !== undefined && a.owns) this.#repin(a, now, a.window.inFlightBytes === 0)
        if (a.pump()) {
          progressed = true
          if (a.via !== undefined && this.#rtoTimer === undefined && a.window.inFlightBytes > 0) this.#ensureRto(performance.now())
        }
      }
      if (progressed) {
        await yieldToIo() // let the socket writes and reads run between batches
        continue
      }
      // An ACK held back just now (PeerActor ready/pump) needs the ACK timer to come back for it.
      if (this.#ackTimer === undefined) {
        const now2 = performance.now()
        if ([...this.#actors.values()].some((a) => a.ackDeadline(now2) !== Infinity)) this.#armAckTimer()
      }
      // Everything that makes an actor ready rings the doorbell (the host's
      // writes, ACKs and credit, a writable socket, an attach); a short poll
      // would wake an idle worker every period for nothing (each wake-up
      // costs ~0.25 ms of CPU on a VM: issue 2, idle CPU). The long timeout
      // is only a safety net (PUMP_SAFETY_NET_MS).
      const r = await this.#doorbell.sleep(() => this.#closing || this.#hasReady(), PUMP_SAFETY_NET_MS)
      if (r === 'ok') this.#pumpWakes++
      else if (!this.#closing && this.#hasReady()) {
        this.#pumpRescues++
        this.log.warn({ event: 'pump:rescued', rescues: this.#pumpRescues }, 'send pump found queued frames nobody rang for (a missed doorbell: please report)')
      }
    }
    this.#pumping = false
  }
}
