/**
 * Message types shared by the main side and the worker side of each actor
 * (like piscina's types.ts). Control plane only: these cross threads through
 * comlink/postMessage. Hot data crosses through rings (see ./inbound-record.ts).
 */
import type { WorkerConfig } from '../options.js'
import type { WireError } from '../errors.js'
import type { MessagePort } from 'node:worker_threads'
import type { CrossWorkerData } from '../io/cross-worker.js'
import type { RoutingStats } from '../router/routing-service.js'
import type { HeapAfterGc } from '../util/gc.js'
import type { RingPlace } from '../ring/ring-buffer.js'

/** Plain-data start-up parameters of an IO worker (workerData). */
export interface IoWorkerData {
  kind: 'io'
  index: number
  config: WorkerConfig
  /** PKCS#8 DER of the node key. */
  identityDer: Uint8Array
  /** Listen URLs this worker owns (ports may be 0 on first start, concrete after a restart). */
  listen: string[]
  /** Worker → host ring carrying delivered frames and ordered events. */
  inboundRing: SharedArrayBuffer
  /** Rung by the host after writing any per-peer outbound ring this worker consumes. */
  doorbell: SharedArrayBuffer
  /** comlink port on which the router exposes RouterApi. */
  routerPort: MessagePort
  /** comlink port on which this worker exposes IoPeerControl to the router. */
  controlPort: MessagePort
  /** comlink port on which the host exposes HostCallbacks. */
  hostPort: MessagePort
  /** Rings to and from the node's other IO workers (relaying between them); absent with one IO worker. */
  cross?: CrossWorkerData | undefined
  /** First peer handle of this worker generation (handles never repeat across restarts). */
  handleBase: number
  /** Log level threshold for forwarding worker logs. */
  logLevel: string
}

/** Plain-data start-up parameters of the router worker. */
export interface RouterWorkerData {
  kind: 'router'
  selfId: string
  /** PKCS#8 DER of the node key: the router signs this node's link-state advertisements. */
  identityDer: Uint8Array
  config: WorkerConfig
  logLevel: string
  /** With dataDir: the lock file to keep fresh, and its exact content (keepLockFresh). */
  lock?: { file: string; text: string }
}

/** What an IO worker exposes to the supervisor over comlink. */
export interface IoWorkerApi {
  /** Bind this worker's listeners; resolves to the concrete URLs. */
  listen (): Promise<string[]>
  /**
   * Dial a peer; resolves once the handshake completed (or the peer was already linked).
   * After a first success the worker keeps the link: when it drops it re-dials
   * with backoff. `persistent` (bootstrap) retries from the first attempt too.
   */
  dial (url: string, expectedId: string | undefined, persistent?: boolean): Promise<DialResult>
  /** Graceful: stop accepting, flush rings to sockets within deadlineMs, close sockets. */
  close (deadlineMs: number): Promise<void>
  /** Counters for metrics and tests. */
  stats (): Promise<IoWorkerStats>
  /** Immediate stop before termination: listeners closed, every socket destroyed, no timers. */
  halt (): Promise<void>
  /** Diagnostics (util/gc.ts): collect this worker's heap and say what is left; null without --expose-gc. */
  collectGarbage (): Promise<HeapAfterGc | null>
  /**
   * Look after the queues of peers no worker consumes (PeerActor.adopt), so
   * that what waits in them expires after delivery.retainMs. Resolves with
   * the peers adopted.
   */
  adopt (peerIds: string[]): Promise<string[]>
  /**
   * Drop this worker's actor for a peer the host is forgetting (see
   * delivery.forgetAfterMs). False, keeping it, while the actor has a
   * connection or a relay to the peer, or unacknowledged messages; true when
   * it is gone (or there was none).
   */
  forget (peerId: string): Promise<boolean>
  /** Test hook: whether this worker holds an actor for the peer. */
  hasActor (peerId: string): Promise<boolean>
  /** Test hook: crash this worker with an uncaught exception. */
  crash (): void
  /** Test hook: as a relay, drop the next `count` FORWARD envelopes for `to` (a lossy relay; counted as dropped 'test'). */
  dropRelayed (to: string, count: number): Promise<void>
  /**
   * Test hook: as a relay, keep a copy of the next `count` FORWARD envelopes
   * for `to` while relaying them; `count` 0 relays the copies kept so far a
   * second time (a relay that duplicates late, e.g. across a sender's restart).
   */
  echoRelayed (to: string, count: number): Promise<void>
}

/** What an IO worker exposes to the router (on its controlPort). */
export interface IoPeerControl {
  /** Close one connection (it lost the duplicate tie-break). Resolves when it no longer consumes the peer's ring. */
  dropConnection (connKey: string, reason: string): Promise<void>
  /** Send a membership payload to a linked peer (control lane). False if not linked here. */
  sendMembership (peerId: string, payload: Uint8Array): Promise<boolean>
  /** Dial a member learned by gossip (discovery); not kept up if it fails. Resolves whether the peer is linked (directly) afterwards. */
  discover (url: string, peerId: string): Promise<boolean>
  /** Send a link-state routing payload (an encoded LSA) to a linked peer (control lane). False if not linked here. */
  sendRouting (peerId: string, payload: Uint8Array | Uint8Array[]): Promise<boolean>
  /**
   * {@link sendRouting} to several linked peers in one control-plane call (a
   * flood reaches every neighbour; an LSA in several entries is cloned once).
   * Resolves the peers whose payloads could not go (no open connection
   * here: not linked, or a connection being replaced).
   */
  sendRoutingMany (batch: Array<{ to: string; payloads: Uint8Array[] }>): Promise<string[]>
  /** The router's current forwarding table (replaces the previous one). */
  setRoutes (table: ForwardingEntry[]): Promise<void>
  /**
   * Every link of this node, on any IO worker (replaces the previous list):
   * which worker owns the connection to each neighbour. Pushed on every
   * change; on a claim the router waits for it (a worker stops consuming a
   * routed peer's send ring before the peer's direct link elsewhere starts).
   */
  setLinks (links: LinkSnapshot[]): Promise<void>
}

/** One forwarding-table row the router pushes to the IO workers. */
export interface ForwardingEntry {
  /** Destination peer id. */
  to: string
  /** Next hop: a directly linked peer (`via === to` for a direct link). */
  via: string
  /** Precomputed alternate next hop for fast reroute (a different first hop), if any. */
  alt: string | undefined
  /** Hops of the primary path. */
  hops: number
  /**
   * First hops usable for multipath spreading (`routing.multipath`), each
   * with the cost of its cheapest path, the primary's first: the primary and
   * the loop-free alternate (RFC 5286 §3.6) when there is one, so a flow
   * pinned to either never bounces back through this node. One entry per
   * first hop (relays forward by their own tables, not by source route).
   */
  paths: Array<{ via: string; cost: number }>
}

/** What the router exposes to IO workers and the supervisor. */
export interface RouterApi {
  /** An IO worker's control port arrives (on start and restart). */
  attachWorker (index: number, controlPort: MessagePort, apiPort?: MessagePort): Promise<void>
  /** A connection learned its peer id; resolves whether it may go on (the duplicate tie-break). */
  claim (c: LinkClaim): Promise<ClaimResult>
  /** The connection is established (handshake done); `listen` is what the peer advertised. */
  linkUp (connKey: string, listen?: string[]): Promise<void>
  /** A membership payload arrived from a linked peer. */
  membership (from: string, payload: Uint8Array): Promise<void>
  /** A link-state routing payload (an encoded LSA) arrived from a linked peer. */
  routing (from: string, payload: Uint8Array | Uint8Array[]): Promise<void>
  /** The connection closed or failed. */
  release (connKey: string): Promise<void>
  /** The heartbeat verdict on an up link changed (healthy ⇄ unhealthy); see RouterService #act (local acks). */
  linkHealth (connKey: string, healthy: boolean): Promise<void>
  /** Recent measurements of up links: they set the costs this node advertises for them. */
  linkStats (reports: LinkStatsReport[]): Promise<void>
  /** Everything a worker held is gone (it crashed). */
  releaseWorker (index: number): Promise<void>
  /** Current direct links, for status and routes. */
  links (): Promise<LinkSnapshot[]>
  /** Start membership: our listen URLs and where to report. */
  startMembership (addresses: string[], host: RouterHostCallbacks): Promise<void>
  /** Graceful leave: announce it to the members. */
  leave (): Promise<void>
  /**
   * The host made state again for a peer membership had forgotten (a late
   * frame, an outbox reload): ask it to drop it again later, unless the peer
   * is a member again by then (see RouterHostCallbacks.forgotten).
   */
  forgetLater (id: string): Promise<void>
  /** Counters of link-state routing (diagnostics and tests; undefined without routing). */
  routingCounters (): Promise<RoutingStats | undefined>
  /** Diagnostics (util/gc.ts): collect the router worker's heap and say what is left; null without --expose-gc. */
  collectGarbage (): Promise<HeapAfterGc | null>
}

/** What an IO worker measured on one connection lately (see routing/link-cost.ts). */
export interface LinkStatsReport {
  connKey: string
  /** Smallest heartbeat RTT over the report period, ms (absent: no sample). */
  rttMs?: number
  /** Share of heartbeats unanswered over the period, 0..1 (absent: this side does not ping). */
  loss?: number
  /** Bytes queued to the peer now (send queue, unacknowledged included). */
  queueBytes?: number
}

export interface LinkClaim {
  connKey: string
  worker: number
  peerId: string
  /** Peer id of the side that dialed this connection. */
  dialerId: string
}
export type ClaimResult = { ok: true } | { ok: false; reason: string; code: 'duplicate' | 'unauthorized' }

export interface LinkSnapshot { peerId: string; worker: number; connKey: string; dialerId: string; up: boolean }

export interface DialResult { peerId: string; already: boolean }

/** What the router tells the host (comlink proxy the supervisor hands it). */
export interface RouterHostCallbacks {
  status (status: { state: 'healthy' | 'degraded' | 'critical'; members: number; reachable: number; unreachable: number }): void
  /** A member's record changed (state, or incarnation: a higher one while alive is a restart of that node). */
  member (m: { id: string; state: string; previous: string | undefined; addresses: string[]; incarnation: number }): void
  /**
   * Membership forgot a member that was dead or left for
   * delivery.forgetAfterMs (SWIM reaped it), or asks again: resolves true once
   * the host keeps nothing for it (dropped, or never had it); false while the
   * peer's state is still in use (the router asks again later).
   */
  forgotten (id: string): boolean | Promise<boolean>
  /** The route table changed: every route now, and each destination whose next hop changed. */
  routes (routes: Array<{ to: string; via: string; hops: number; cost: number; paths: string[][] }>, changes: Array<{ to: string; via: string | undefined; previousVia: string | undefined }>): void
  /** The dataDir lock this node held is another process's now (keepLockFresh): why. */
  lockLost (why: string): void
  /** The dataDir lock file was found missing and created again (keepLockFresh): why. */
  lockRecreated (why: string): void
}

/** Host-side callbacks an IO worker may call (passed as a comlink proxy). */
export interface HostCallbacks {
  /**
   * A peer's send queue ring and receive-side ack board (created on first
   * use; they outlive connections and workers).
   */
  ringFor (peerId: string): { ring: RingPlace; board: SharedArrayBuffer; datagrams: RingPlace }
  /** Batched forwarded log records. */
  log (records: LogRecord[]): void
}

export interface LogRecord { level: 'debug' | 'info' | 'warn' | 'error'; obj: Record<string, unknown>; msg: string }

export interface IoWorkerStats {
  connections: number
  peers: number
  framesIn: number
  framesOut: number
  bytesIn: number
  bytesOut: number
  wsMessagesIn: number
  wsMessagesOut: number
  rejectedFrames: Record<string, number>
  refusedHandshakes: Record<string, number>
  /** Re-dial attempts per kept address since this worker started. */
  reconnectAttempts: number
  /** Runs of the timer that sends ACKs no traffic carried (none while every link is idle). */
  ackTimerRuns: number
  /** Link report periods in which most links slowed down at once (this host starved): their RTTs were held, not re-costed. */
  linkSlowdowns: number
  /** ACKs that timer sent (each one no traffic carried within ACK_DELAY_MS of being due). */
  ackTimerAcks: number
  /** Times the send pump woke from sleep (a doorbell ring: none while nothing is sent). */
  pumpWakes: number
  /** Times the send pump's safety-net timeout found work no doorbell ring announced (a bug if ever above 0). */
  pumpRescues: number
  /** This worker's young-generation limit (resourceLimits.maxYoungGenerationSizeMb; see supervisor.ts IO_WORKER_YOUNG_GENERATION_MB). */
  youngGenerationMb: number
  /** Whether the retention check (delivery.retainMs) is running: only while some peer has no connection. */
  retentionCheck: boolean
  /**
   * Multi-hop forwarding: FORWARD frames passed on for other nodes,
   * unwrapped for this node, dropped by reason ('hop-limit', 'no-route',
   * 'malformed', 'bad-inner-frame', 'unexpected-inner-frame',
   * 'cross-worker-full'), and resends of routed peers' unacknowledged frames
   * after an ACK timeout. `crossOut`/`crossIn`: records (relayed envelopes,
   * routed peers' batches, envelopes for this node) handed to / taken from
   * another IO worker of this node through the cross-worker rings.
   */
  relay: { forwarded: number; delivered: number; dropped: Record<string, number>; retransmits: number; crossOut: number; crossIn: number }
  /** Distinct first hops of the paths this worker's forwarding table holds per routed destination (what multipath spreads over). */
  routePaths: Record<string, number>
  /** Routed peers (reached through a relay): the relay their frames go out through now. */
  routedVia: Record<string, string>
}

/** Events carried in order through the inbound ring (kind EVENT). */
export type InboundEvent =
  | { type: 'peer:up'; peerId: string; address?: string | undefined; direction: 'inbound' | 'outbound'; listen: string[]; features: string[] }
  | { type: 'peer:down'; peerId: string; reason: string }
  /** Heartbeat health changed (healthy ↔ unhealthy); death arrives as peer:down. */
  | { type: 'peer:health'; peerId: string; state: 'healthy' | 'unhealthy'; previous: 'healthy' | 'unhealthy'; rttMs: number | undefined }
  /** A fresh heartbeat RTT sample (ms). */
  /** Heartbeat RTT samples since the last report (batched: at most one event per peer every few seconds). */
  | { type: 'peer:rtt'; peerId: string; rttMs: number; samples: number[] }
  /** Reconnection to this peer gave up after reconnect.maxRetries attempts. */
  | { type: 'peer:failed'; peerId: string; reason: string }
  /** A peer reached through relays got an actor (this handle) here: its frames follow. Not a direct link (no peer:up). */
  | { type: 'peer:routed'; peerId: string }
  /** The peer's ACK released our queued records of `stream` through `seq` (the last released), among them records that asked to be told (ack: true, durable outbox). */
  | { type: 'acked'; peerId: string; stream: number; seq: number }
  /** Messages given up on (retention expired, peer failed): ids are first-chunk seqs. */
  | { type: 'undelivered'; peerId: string; ids: number[]; reason: string; stream: number; throughSeq: number; topics?: Array<[number, string]> }
  | { type: 'error'; error: WireError }
