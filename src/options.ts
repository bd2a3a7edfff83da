/**
 * `MeshOptions` — the one options object of `createMesh(options)` — its
 * defaults, its validation, and the frozen {@link ResolvedMeshOptions} the
 * rest of meshwork reads (DESIGN.md §2, STYLE.md §4).
 *
 * {@link resolveOptions} checks every supplied field, then the rules that
 * span fields, and throws one `MeshError` `INVALID_OPTIONS` whose message
 * names each offending option path and what was wrong with it.
 */
import { KeyObject, createPrivateKey } from 'node:crypto'
import type { Logger, LoggerOptions } from 'pino'
import type { Registry } from 'prom-client'
import { ErrorCode, MeshError } from './errors.js'
import { isPeerId } from './identity/peer-id.js'
import { DEFAULT_COST_WEIGHTS, type CostWeights } from './routing/link-cost.js'

const KiB = 1024
const MiB = 1024 * KiB
const GiB = 1024 * MiB

/**
 * The longest delay `setTimeout` honours (2^31 - 1 ms, about 24.8 days);
 * a longer one fires after 1 ms instead (Node.js docs, `setTimeout`). Caps the
 * ms options that have no tighter bound.
 */
const MAX_TIMER_MS = 2 ** 31 - 1

// ---------------------------------------------------------------------------
// Input types
// ---------------------------------------------------------------------------

/** Who may join the mesh through this node. */
export type JoinPolicy = 'open' | 'key' | 'closed'

/** Which unreliable frame a full send queue drops. */
export type DropPolicy = 'drop-oldest' | 'drop-newest'

/**
 * The node key. Exactly one of `privateKey` or `keyFile`.
 * Without `identity`, the key is read from (or created once in) `dataDir`,
 * or, without `dataDir`, generated fresh on every start.
 */
export type IdentityOptions =
  | {
    /**
     * The ed25519 private key: a `KeyObject` (`asymmetricKeyType` `'ed25519'`),
     * a PEM string (PKCS#8, unencrypted), or the raw 32-byte seed.
     */
    privateKey: KeyObject | string | Uint8Array
    keyFile?: never
  }
  | {
    /** Path of a PEM file (PKCS#8, unencrypted) holding the ed25519 private key. */
    keyFile: string
    privateKey?: never
  }

/** Failure detection (heartbeats run in the IO workers, not on the host's event loop). */
export interface HeartbeatOptions {
  /** Time between heartbeats to each peer, in ms. Integer 10..60000. @default 1000 */
  intervalMs?: number
  /** Consecutive missed heartbeats after which a peer is `unhealthy`. Integer >= 1. @default 3 */
  missesUnhealthy?: number
  /**
   * Consecutive missed heartbeats after which a peer is declared dead and
   * disconnected. Integer, must be greater than `missesUnhealthy`. @default 6
   */
  missesDead?: number
}

/**
 * Redial backoff for a lost outbound connection: the n-th retry waits
 * `min(maxDelayMs, initialDelayMs * multiplier^n)`, of which a `jitter`
 * fraction is randomised.
 */
export interface ReconnectOptions {
  /** Delay before the first redial, in ms. Integer 1..2147483647. @default 100 */
  initialDelayMs?: number
  /** Upper bound of the delay, in ms. Integer, >= `initialDelayMs`, <= 2147483647. @default 10000 */
  maxDelayMs?: number
  /** Growth factor of the delay per attempt (unitless). Finite number >= 1. @default 2 */
  multiplier?: number
  /**
   * Fraction of each delay that is random, 0..1: 0 = exact delays,
   * 1 = "full jitter" (uniform in [0, delay]). @default 1
   */
  jitter?: number
  /** Redials before the peer is given up (`failed`). Integer >= 0, or `Infinity`. @default Infinity */
  maxRetries?: number
}

/** Each peer's outbound queue: a byte-bounded ring (the in-process half of flow control). */
export interface SendQueueOptions {
  /** Capacity per peer, in bytes. Integer 64 KiB..1 GiB. @default 4194304 (4 MiB) */
  capacityBytes?: number
  /**
   * What a full queue drops for `{ reliable: false }` traffic (reliable
   * traffic is never dropped: `send` waits, then rejects `QUEUE_FULL`).
   * @default 'drop-oldest'
   */
  policy?: DropPolicy
  /** How long a reliable `send` waits for queue space before rejecting `QUEUE_FULL`, in ms. Integer 0..2147483647. @default 5000 */
  blockTimeoutMs?: number
}

/** Reliable delivery. */
export interface DeliveryOptions {
  /**
   * How long a reliable message to an unreachable peer is held before it is
   * reported `undelivered`, in ms. Integer 0..2147483647. @default 300000 (5 min)
   */
  retainMs?: number
  /**
   * How long a peer that membership declared dead or left is remembered, in
   * ms. After that (once nothing is queued to it any more) the node drops
   * what it kept for the peer: its send queues, its actors in the IO
   * workers and its `peer`-labelled metric series, keeping only where the
   * two streams stand (tens of bytes), so a long-running node whose peers
   * come and go does not grow. A `send` to a forgotten peer rejects
   * `UNKNOWN_PEER` until the peer is seen again. Integer 1..2147483647, or
   * Infinity (never forget). @default 300000 (5 min)
   */
  forgetAfterMs?: number
}

/** Multi-hop routing. */
export interface RoutingOptions {
  /** Number of shortest paths computed per destination. Integer 1..16. @default 3 */
  k?: number
  /** Hop limit of a forwarded message. Integer 1..64. @default 8 */
  maxHops?: number
  /** Spread flows over the k paths (each flow pinned to one path, so no reordering). @default false */
  multipath?: boolean
  /**
   * How a link's measured RTT, loss and send-queue depth become the cost
   * this node advertises for it (paths minimise the sum of costs):
   * `cost = ceil((rttMs·rtt + queuedKiB·queuePerKiB + hopMs) / (1 − loss)^lossExponent)`, at least 1.
   * The IO workers measure every few seconds; a new cost is advertised only
   * when it moved by at least `minDelta` and by `hysteresis` of the old one.
   */
  cost?: LinkCostOptions
}

/** See {@link RoutingOptions.cost}. Every field a finite number. */
export interface LinkCostOptions {
  /** Cost per ms of heartbeat RTT. >= 0. @default 1 */
  rtt?: number
  /** Cost per KiB queued to the peer. >= 0. @default 0.1 (1 MiB queued ≈ 100 ms) */
  queuePerKiB?: number
  /** Fixed cost of every hop: a relay is worth this many ms of RTT (on a LAN, paths stay shortest by hops). >= 0. @default 10 */
  hopMs?: number
  /** Exponent of the loss multiplier 1 / (1 − loss). >= 0. @default 2 */
  lossExponent?: number
  /** Loss rates above this count as this (a link at 100 % loss is down, not dear). 0..0.99. @default 0.9 */
  maxLoss?: number
  /** RTT assumed for a link before its first measurement, ms (a LAN link). >= 0. @default 1 */
  defaultRttMs?: number
  /** Relative change of a cost below which it is not re-advertised. >= 0. @default 0.2 */
  hysteresis?: number
  /** Absolute change of a cost below which it is not re-advertised (a hop's worth: RTT noise of a few ms floods nothing). >= 0. @default 10 */
  minDelta?: number
}

/** Worker threads. */
export interface ThreadsOptions {
  /** IO workers hosting the connection actors (many peers per worker). Integer 1..64. @default 1 */
  io?: number
  /**
   * Nice steps the mesh's worker threads run below the host's main thread
   * (Linux; a no-op elsewhere). When every core is busy, the host's event
   * loop runs first and the mesh takes what is left; 0 runs them at the
   * host's priority. Integer 0..19. @default 5
   */
  nice?: number
}

/** TLS material for `wss://` (listening needs `cert` and `key`; dialing may need `ca`). */
export interface TlsOptions {
  /** Certificate chain, PEM (string or bytes). Required when any `listen` address is `wss://`. @default undefined */
  cert?: string | Uint8Array
  /** Private key of `cert`, PEM (string or bytes). Required when any `listen` address is `wss://`. @default undefined */
  key?: string | Uint8Array
  /** Trusted CA certificate(s), PEM. @default undefined (Node's bundled CAs) */
  ca?: string | Uint8Array | Array<string | Uint8Array>
  /** Reject a peer whose certificate does not verify against `ca`. @default true */
  rejectUnauthorized?: boolean
}

/** Metrics collaborators (STYLE §4: injected, never the global registry). */
export interface MetricsOptions {
  /** A prom-client `Registry` to register meshwork's metrics into. @default undefined (a private registry) */
  registry?: Registry
}

/** The options of `createMesh(options)`. Every field is optional. */
export interface MeshOptions {
  /**
   * Where to accept connections: `ws://host:port` or `wss://host:port`
   * (port 0..65535 and required, 0 = ephemeral; IPv6 as `ws://[::1]:0`; no
   * path other than `/`, no query, fragment or credentials), or a list of
   * them (no duplicates), or `false` (or `[]`) for a dial-only node.
   * @default ['ws://127.0.0.1:0']
   */
  listen?: string | string[] | false
  /**
   * Peers to dial on start: `ws://host:port` / `wss://host:port` (port
   * 1..65535), optionally `<peerId>@ws://host:port` to require that peer id.
   * @default []
   */
  bootstrap?: string | string[]
  /** Directory for the identity key and the durable outbox (path; created if missing). @default undefined (nothing persisted) */
  dataDir?: string
  /** The node key: `{ privateKey }` or `{ keyFile }`. @default undefined (from `dataDir`, else generated) */
  identity?: IdentityOptions
  /** Peer ids that may connect (52-char lowercase base32). @default undefined (any peer) */
  allow?: string[]
  /**
   * Shared secret a joining node must prove: a string of >= 16 characters or
   * >= 16 bytes. Never logged. @default undefined
   */
  meshKey?: string | Uint8Array
  /**
   * Join policy: `'open'` (anyone that passes `allow`), `'key'` (must prove
   * `meshKey`; requires it), `'closed'` (no new node may join through this
   * node). @default 'key' when `meshKey` is set, else 'open'
   */
  join?: JoinPolicy
  /** Failure detection. @default { intervalMs: 1000, missesUnhealthy: 3, missesDead: 6 } */
  heartbeat?: HeartbeatOptions
  /** Redial backoff. @default { initialDelayMs: 100, maxDelayMs: 10000, multiplier: 2, jitter: 1, maxRetries: Infinity } */
  reconnect?: ReconnectOptions
  /** Per-peer send queue. @default { capacityBytes: 4 MiB, policy: 'drop-oldest', blockTimeoutMs: 5000 } */
  sendQueue?: SendQueueOptions
  /**
   * Largest message payload, in bytes (larger ones reject `PAYLOAD_TOO_LARGE`;
   * a receiver discards a reassembled message above its own limit).
   * Messages over 64 KiB travel as 64 KiB chunks, so this may exceed the send
   * queue. Integer 1 KiB..1 GiB. @default 1048576 (1 MiB)
   */
  maxMessageBytes?: number
  /** Most peers connected at once (gossip-learned peers are dialed up to this). Integer 1..10000. @default 16 */
  maxPeers?: number
  /** Reliable delivery. @default { retainMs: 300000, forgetAfterMs: 300000 } */
  delivery?: DeliveryOptions
  /** Routing. @default { k: 3, maxHops: 8, multipath: false } */
  routing?: RoutingOptions
  /** Worker threads. @default { io: 1, nice: 5 } */
  threads?: ThreadsOptions
  /** TLS for `wss://`. @default undefined */
  tls?: TlsOptions
  /**
   * A pino `Logger` (meshwork logs through `child()`s of it), pino options
   * (passed to `pino()`), or `false` for no logging. Used as given.
   * @default undefined (meshwork creates its own pino logger)
   */
  logger?: Logger | LoggerOptions | false
  /** Metrics. @default {} (a private prom-client registry) */
  metrics?: MetricsOptions
  /**
   * A connection that has not completed the handshake within this time is
   * closed; also bounds an HTTP request that never upgrades. In ms, integer
   * 100..60000. @default 5000
   */
  handshakeTimeoutMs?: number
  /** Graceful `close()`: how long the request handlers already running may take to answer, then again how long queued frames may take to flush, in ms. Integer 0..60000. @default 2000 */
  closeTimeoutMs?: number
  /**
   * Inbound ring per IO worker, in bytes. Integer 64 KiB..1 GiB; the ring
   * rounds it up to the next power of two. @default 4194304 (4 MiB)
   */
  ringBytes?: number
  /**
   * Lend received byte payloads instead of giving them away: a `message`
   * event's `payload` of 8 KiB..64 KiB (sent as a `Uint8Array`/`Buffer`, in
   * one frame) is a Buffer the node reuses, valid until the `message`
   * listeners return; after that it reads as empty (length 0). Copy what
   * you keep (`Buffer.from(m.payload)`); do not use it after an `await`
   * (handing it to `send()` inside the listener is fine: it copies first).
   * Saves an allocation per message and, in a small heap, the GC work it
   * causes (a 64 KiB flood about twice as fast). Other payloads (smaller,
   * reassembled, msgpack values, requests, pub/sub) are unaffected.
   * @default false
   */
  borrowPayloads?: boolean
}

// ---------------------------------------------------------------------------
// Resolved types
// ---------------------------------------------------------------------------

/** A validated listen address. `url` is normalised: `ws://host:port`, no trailing slash. */
export interface ListenAddress {
  readonly url: string
  readonly protocol: 'ws' | 'wss'
  /** Hostname or IP; an IPv6 address without brackets (`::1`). */
  readonly host: string
  /** 0..65535; 0 = an ephemeral port chosen at listen time. */
  readonly port: number
}

/** A validated dial address. `url` is normalised like {@link ListenAddress.url}. */
export interface BootstrapAddress {
  readonly url: string
  /** The peer id the remote must prove, when pinned with `<peerId>@`. */
  readonly peerId?: string
}

/** See {@link IdentityOptions}. A `Uint8Array` seed is a private copy. */
export type ResolvedIdentityOptions =
  | { readonly privateKey: KeyObject | string | Uint8Array }
  | { readonly keyFile: string }

/** See {@link HeartbeatOptions}. */
export interface ResolvedHeartbeatOptions {
  readonly intervalMs: number
  readonly missesUnhealthy: number
  readonly missesDead: number
}

/** See {@link ReconnectOptions}. */
export interface ResolvedReconnectOptions {
  readonly initialDelayMs: number
  readonly maxDelayMs: number
  readonly multiplier: number
  readonly jitter: number
  readonly maxRetries: number
}

/** See {@link SendQueueOptions}. */
export interface ResolvedSendQueueOptions {
  readonly capacityBytes: number
  readonly policy: DropPolicy
  readonly blockTimeoutMs: number
}

/** See {@link DeliveryOptions}. */
export interface ResolvedDeliveryOptions {
  readonly retainMs: number
  readonly forgetAfterMs: number
}

/** See {@link RoutingOptions}. */
export interface ResolvedRoutingOptions {
  readonly k: number
  readonly maxHops: number
  readonly multipath: boolean
  readonly cost: CostWeights
}

/** See {@link ThreadsOptions}. */
export interface ResolvedThreadsOptions {
  readonly io: number
  readonly nice: number
}

/** See {@link TlsOptions}. `ca` is always a list; byte values are private copies. */
export interface ResolvedTlsOptions {
  readonly cert?: string | Uint8Array
  readonly key?: string | Uint8Array
  readonly ca?: ReadonlyArray<string | Uint8Array>
  readonly rejectUnauthorized: boolean
}

/** See {@link MetricsOptions}. */
export interface ResolvedMetricsOptions {
  readonly registry?: Registry
}

/**
 * {@link MeshOptions} after {@link resolveOptions}: every default filled in,
 * deeply frozen. Not frozen: collaborators passed by reference (`logger`,
 * `metrics.registry`, a `KeyObject`) and byte arrays (typed arrays cannot be
 * frozen; they are private copies instead).
 */
export interface ResolvedMeshOptions {
  /** Empty for a dial-only node. */
  readonly listen: readonly ListenAddress[]
  readonly bootstrap: readonly BootstrapAddress[]
  readonly dataDir?: string
  readonly identity?: ResolvedIdentityOptions
  readonly allow?: readonly string[]
  readonly meshKey?: string | Uint8Array
  readonly join: JoinPolicy
  readonly heartbeat: ResolvedHeartbeatOptions
  readonly reconnect: ResolvedReconnectOptions
  readonly sendQueue: ResolvedSendQueueOptions
  readonly maxMessageBytes: number
  readonly maxPeers: number
  readonly delivery: ResolvedDeliveryOptions
  readonly routing: ResolvedRoutingOptions
  readonly threads: ResolvedThreadsOptions
  readonly tls?: ResolvedTlsOptions
  readonly logger?: Logger | LoggerOptions | false
  readonly metrics: ResolvedMetricsOptions
  readonly handshakeTimeoutMs: number
  readonly closeTimeoutMs: number
  readonly ringBytes: number
  readonly borrowPayloads: boolean
}

/**
 * The structured-clone-safe part of the options, for `workerData`: plain
 * objects, arrays, strings, numbers, booleans and `Uint8Array`s only. No
 * logger, registry or identity (keys travel separately); `meshKey` is bytes.
 */
export interface WorkerConfig {
  readonly listen: ListenAddress[]
  readonly bootstrap: BootstrapAddress[]
  readonly dataDir?: string
  readonly allow?: string[]
  /** UTF-8 bytes when the option was a string. */
  readonly meshKey?: Uint8Array
  readonly join: JoinPolicy
  readonly heartbeat: ResolvedHeartbeatOptions
  readonly reconnect: ResolvedReconnectOptions
  readonly sendQueue: ResolvedSendQueueOptions
  readonly maxMessageBytes: number
  readonly maxPeers: number
  readonly delivery: ResolvedDeliveryOptions
  readonly routing: ResolvedRoutingOptions
  readonly threads: ResolvedThreadsOptions
  readonly tls?: {
    readonly cert?: string | Uint8Array
    readonly key?: string | Uint8Array
    readonly ca?: Array<string | Uint8Array>
    readonly rejectUnauthorized: boolean
  }
  readonly handshakeTimeoutMs: number
  readonly closeTimeoutMs: number
  readonly ringBytes: number
}

// ---------------------------------------------------------------------------
// Defaults
// ---------------------------------------------------------------------------

/**
 * Every default, deeply frozen. `join` is `'open'` here; it becomes `'key'`
 * when `meshKey` is set. `tls.rejectUnauthorized` applies when `tls` is given.
 */
export const DEFAULTS = deepFreeze({
  listen: ['ws://127.0.0.1:0'],
  bootstrap: [],
  join: 'open',
  heartbeat: { intervalMs: 1_000, missesUnhealthy: 3, missesDead: 6 },
  reconnect: { initialDelayMs: 100, maxDelayMs: 10_000, multiplier: 2, jitter: 1, maxRetries: Infinity },
  sendQueue: { capacityBytes: 4 * MiB, policy: 'drop-oldest', blockTimeoutMs: 5_000 },
  maxMessageBytes: 1 * MiB,
  maxPeers: 16,
  delivery: { retainMs: 300_000, forgetAfterMs: 300_000 },
  routing: { k: 3, maxHops: 8, multipath: false, cost: { ...DEFAULT_COST_WEIGHTS } },
  threads: { io: 1, nice: 5 },
  tls: { rejectUnauthorized: true },
  handshakeTimeoutMs: 5_000,
  closeTimeoutMs: 2_000,
  ringBytes: 4 * MiB,
  borrowPayloads: false,
} as const)

// Known keys per level. `Record<keyof T, 1>` makes the compiler reject a
// missing or an extra key, so these lists cannot drift from the interfaces.
const keysOf = <T>(keys: Record<keyof T, 1>): readonly string[] => Object.freeze(Object.keys(keys))
const KEYS = {
  root: keysOf<MeshOptions>({
    listen: 1, bootstrap: 1, dataDir: 1, identity: 1, allow: 1, meshKey: 1, join: 1, heartbeat: 1,
    reconnect: 1, sendQueue: 1, maxMessageBytes: 1, maxPeers: 1, delivery: 1, routing: 1, threads: 1,
    tls: 1, logger: 1, metrics: 1, handshakeTimeoutMs: 1, closeTimeoutMs: 1, ringBytes: 1,
    borrowPayloads: 1,
  }),
  identity: keysOf<{ privateKey: 1, keyFile: 1 }>({ privateKey: 1, keyFile: 1 }),
  heartbeat: keysOf<HeartbeatOptions>({ intervalMs: 1, missesUnhealthy: 1, missesDead: 1 }),
  reconnect: keysOf<ReconnectOptions>({ initialDelayMs: 1, maxDelayMs: 1, multiplier: 1, jitter: 1, maxRetries: 1 }),
  sendQueue: keysOf<SendQueueOptions>({ capacityBytes: 1, policy: 1, blockTimeoutMs: 1 }),
  delivery: keysOf<DeliveryOptions>({ retainMs: 1, forgetAfterMs: 1 }),
  routing: keysOf<RoutingOptions>({ k: 1, maxHops: 1, multipath: 1, cost: 1 }),
  routingCost: keysOf<LinkCostOptions>({ rtt: 1, queuePerKiB: 1, hopMs: 1, lossExponent: 1, maxLoss: 1, defaultRttMs: 1, hysteresis: 1, minDelta: 1 }),
  threads: keysOf<ThreadsOptions>({ io: 1, nice: 1 }),
  tls: keysOf<TlsOptions>({ cert: 1, key: 1, ca: 1, rejectUnauthorized: 1 }),
  metrics: keysOf<MetricsOptions>({ registry: 1 }),
} as const

const LOGGER_METHODS = ['info', 'warn', 'error', 'debug', 'child'] as const

// ---------------------------------------------------------------------------
// resolveOptions
// ---------------------------------------------------------------------------

/**
 * Validate `createMesh` options and fill in the defaults.
 *
 * Accepts `unknown` so that a JavaScript caller passing `null`, a number or
 * an array gets a clear error. `undefined` means "all defaults". Unknown keys
 * are errors at every level (with a "did you mean" for near misses); a key
 * whose value is `undefined` counts as absent.
 *
 * Every field is checked first, and all field problems are reported together;
 * the cross-field rules run only once every field is valid.
 *
 * @returns a deeply frozen {@link ResolvedMeshOptions}.
 * @throws MeshError `INVALID_OPTIONS`: `message` lists each problem as
 *   `<path> <what is wrong> (got <value>)`, joined by `'; '`;
 *   `details.path` is the first offending path (e.g. `options.listen[1]`),
 *   `details.issues` is every `{ path, message }`.
 */
export function resolveOptions (o?: unknown): ResolvedMeshOptions {
  const c = new Checker()
  const opts = c.root(o, KEYS.root)
  if (opts === undefined) throw c.error()

  // 1. Each field on its own.
  const listen = readListen(c, 'options.listen', opts.get('listen'))
  const bootstrap = readBootstrap(c, 'options.bootstrap', opts.get('bootstrap'))
  const dataDir = opts.pathString('dataDir')
  const identity = readIdentity(c, opts.section('identity', KEYS.identity))
  const allow = readAllow(c, 'options.allow', opts.get('allow'))
  const meshKey = readMeshKey(c, 'options.meshKey', opts.get('meshKey'))
  const join = opts.oneOf('join', meshKey === undefined ? DEFAULTS.join : 'key', ['open', 'key', 'closed'])

  const hb = opts.section('heartbeat', KEYS.heartbeat)
  const heartbeat: ResolvedHeartbeatOptions = {
    intervalMs: hb.int('intervalMs', DEFAULTS.heartbeat.intervalMs, { min: 10, max: 60_000, unit: 'ms' }),
    missesUnhealthy: hb.int('missesUnhealthy', DEFAULTS.heartbeat.missesUnhealthy, { min: 1 }),
    missesDead: hb.int('missesDead', DEFAULTS.heartbeat.missesDead, { min: 1 }),
  }

  const rc = opts.section('reconnect', KEYS.reconnect)
  const reconnect: ResolvedReconnectOptions = {
    initialDelayMs: rc.int('initialDelayMs', DEFAULTS.reconnect.initialDelayMs, { min: 1, max: MAX_TIMER_MS, unit: 'ms' }),
    maxDelayMs: rc.int('maxDelayMs', DEFAULTS.reconnect.maxDelayMs, { min: 1, max: MAX_TIMER_MS, unit: 'ms' }),
    multiplier: rc.number('multiplier', DEFAULTS.reconnect.multiplier, { min: 1 }),
    jitter: rc.number('jitter', DEFAULTS.reconnect.jitter, { min: 0, max: 1 }),
    maxRetries: rc.int('maxRetries', DEFAULTS.reconnect.maxRetries, { min: 0, infinity: true }),
  }

  const sq = opts.section('sendQueue', KEYS.sendQueue)
  const sendQueue: ResolvedSendQueueOptions = {
    capacityBytes: sq.int('capacityBytes', DEFAULTS.sendQueue.capacityBytes, { min: 64 * KiB, max: GiB, unit: 'bytes' }),
    policy: sq.oneOf('policy', DEFAULTS.sendQueue.policy, ['drop-oldest', 'drop-newest']),
    blockTimeoutMs: sq.int('blockTimeoutMs', DEFAULTS.sendQueue.blockTimeoutMs, { min: 0, max: MAX_TIMER_MS, unit: 'ms' }),
  }

  const maxMessageBytes = opts.int('maxMessageBytes', DEFAULTS.maxMessageBytes, { min: KiB, max: GiB, unit: 'bytes' })
  const maxPeers = opts.int('maxPeers', DEFAULTS.maxPeers, { min: 1, max: 10_000 })

  const dl = opts.section('delivery', KEYS.delivery)
  const delivery: ResolvedDeliveryOptions = {
    retainMs: dl.int('retainMs', DEFAULTS.delivery.retainMs, { min: 0, max: MAX_TIMER_MS, unit: 'ms' }),
    forgetAfterMs: dl.int('forgetAfterMs', DEFAULTS.delivery.forgetAfterMs, { min: 1, max: MAX_TIMER_MS, unit: 'ms', infinity: true }),
  }

  const rt = opts.section('routing', KEYS.routing)
  const routing: ResolvedRoutingOptions = {
    k: rt.int('k', DEFAULTS.routing.k, { min: 1, max: 16 }),
    maxHops: rt.int('maxHops', DEFAULTS.routing.maxHops, { min: 1, max: 64 }),
    multipath: rt.bool('multipath', DEFAULTS.routing.multipath),
    cost: readCost(rt.section('cost', KEYS.routingCost)),
  }

  const th = opts.section('threads', KEYS.threads)
  const threads: ResolvedThreadsOptions = {
    io: th.int('io', DEFAULTS.threads.io, { min: 1, max: 64 }),
    nice: th.int('nice', DEFAULTS.threads.nice, { min: 0, max: 19 }),
  }

  const tls = readTls(c, opts.section('tls', KEYS.tls))
  const logger = readLogger(c, 'options.logger', opts.get('logger'))
  const metrics = readMetrics(c, opts.section('metrics', KEYS.metrics))
  const handshakeTimeoutMs = opts.int('handshakeTimeoutMs', DEFAULTS.handshakeTimeoutMs, { min: 100, max: 60_000, unit: 'ms' })
  const closeTimeoutMs = opts.int('closeTimeoutMs', DEFAULTS.closeTimeoutMs, { min: 0, max: 60_000, unit: 'ms' })
  const ringBytes = opts.int('ringBytes', DEFAULTS.ringBytes, { min: 64 * KiB, max: GiB, unit: 'bytes' })
  const borrowPayloads = opts.bool('borrowPayloads', DEFAULTS.borrowPayloads)

  if (c.failed) throw c.error()

  const resolved: ResolvedMeshOptions = {
    listen,
    bootstrap,
    ...(dataDir === undefined ? {} : { dataDir }),
    ...(identity === undefined ? {} : { identity }),
    ...(allow === undefined ? {} : { allow }),
    ...(meshKey === undefined ? {} : { meshKey }),
    join,
    heartbeat,
    reconnect,
    sendQueue,
    maxMessageBytes,
    maxPeers,
    delivery,
    routing,
    threads,
    ...(tls === undefined ? {} : { tls }),
    ...(logger === undefined ? {} : { logger }),
    metrics,
    handshakeTimeoutMs,
    closeTimeoutMs,
    ringBytes,
    borrowPayloads,
  }

  // 2. Rules across fields, on valid fields only.
  const given: Given = { root: opts, heartbeat: hb, reconnect: rc, sendQueue: sq }
  for (const rule of CROSS_FIELD_RULES) rule(c, resolved, given)
  if (c.failed) throw c.error()

  return freezeResolved(resolved)
}

/**
 * Parse a dial address: `ws://host:port`, `wss://host:port` (port 1..65535)
 * or `<peerId>@ws://host:port`, which requires the remote to prove that peer
 * id. Used for `options.bootstrap` and for `mesh.connect(url)` at run time.
 *
 * @param path names the value in the error, e.g. `options.bootstrap[0]`.
 * @returns a frozen {@link BootstrapAddress}; `peerId` is present only when pinned.
 * @throws MeshError `INVALID_OPTIONS` naming `path` (also in `details.path`).
 */
export function parseDialAddress (s: string, path: string): BootstrapAddress {
  const r = dialAddress(s)
  if (typeof r === 'string') throw issuesError([{ path, message: `${path} ${r}` }])
  return r
}

function readCost (s: Section): CostWeights {
  const d = DEFAULTS.routing.cost
  return {
    rtt: s.number('rtt', d.rtt, { min: 0 }),
    queuePerKiB: s.number('queuePerKiB', d.queuePerKiB, { min: 0 }),
    hopMs: s.number('hopMs', d.hopMs, { min: 0 }),
    lossExponent: s.number('lossExponent', d.lossExponent, { min: 0 }),
    maxLoss: s.number('maxLoss', d.maxLoss, { min: 0, max: 0.99 }),
    defaultRttMs: s.number('defaultRttMs', d.defaultRttMs, { min: 0 }),
    hysteresis: s.number('hysteresis', d.hysteresis, { min: 0 }),
    minDelta: s.number('minDelta', d.minDelta, { min: 0 }),
  }
}

/**
 * The plain-data subset of resolved options for worker threads
 * (`workerData`): fresh, unfrozen copies that survive structured cloning.
 * Drops `logger`, `metrics` and `identity`; `meshKey` becomes bytes.
 */
export function toWorkerConfig (r: ResolvedMeshOptions): WorkerConfig {
  return {
    listen: r.listen.map((a) => ({ ...a })),
    bootstrap: r.bootstrap.map((b) => ({ ...b })),
    ...(r.dataDir === undefined ? {} : { dataDir: r.dataDir }),
    ...(r.allow === undefined ? {} : { allow: [...r.allow] }),
    ...(r.meshKey === undefined ? {} : { meshKey: toBytes(r.meshKey) }),
    join: r.join,
    heartbeat: { ...r.heartbeat },
    reconnect: { ...r.reconnect },
    sendQueue: { ...r.sendQueue },
    maxMessageBytes: r.maxMessageBytes,
    maxPeers: r.maxPeers,
    delivery: { ...r.delivery },
    routing: { ...r.routing, cost: { ...r.routing.cost } },
    threads: { ...r.threads },
    ...(r.tls === undefined ? {} : { tls: workerTls(r.tls) }),
    handshakeTimeoutMs: r.handshakeTimeoutMs,
    closeTimeoutMs: r.closeTimeoutMs,
    ringBytes: r.ringBytes,
  }
}

// ---------------------------------------------------------------------------
// Cross-field rules
// ---------------------------------------------------------------------------

/** The sections as the user gave them, so a message can say which values are defaults. */
interface Given { root: Section, heartbeat: Section, reconnect: Section, sendQueue: Section }

type CrossFieldRule = (c: Checker, r: ResolvedMeshOptions, given: Given) => void

const CROSS_FIELD_RULES: readonly CrossFieldRule[] = [
  function joinKeyNeedsMeshKey (c, r) {
    if (r.join === 'key' && r.meshKey === undefined) {
      c.fail('options.join', 'options.join is "key" but options.meshKey is not set (a "key" mesh admits nodes that prove the mesh key)')
    }
  },
  function deadAfterUnhealthy (c, r, { heartbeat: hb }) {
    if (r.heartbeat.missesDead <= r.heartbeat.missesUnhealthy) {
      c.fail('options.heartbeat.missesDead',
        `options.heartbeat.missesDead (${hb.shown('missesDead', r.heartbeat.missesDead)}) must be greater than ` +
        `options.heartbeat.missesUnhealthy (${hb.shown('missesUnhealthy', r.heartbeat.missesUnhealthy)})`)
    }
  },
  function maxDelayAtLeastInitial (c, r, { reconnect: rc }) {
    if (r.reconnect.maxDelayMs < r.reconnect.initialDelayMs) {
      c.fail('options.reconnect.maxDelayMs',
        `options.reconnect.maxDelayMs (${rc.shown('maxDelayMs', r.reconnect.maxDelayMs)}) must be at least ` +
        `options.reconnect.initialDelayMs (${rc.shown('initialDelayMs', r.reconnect.initialDelayMs)})`)
    }
  },
  function wssListenNeedsCertAndKey (c, r) {
    const i = r.listen.findIndex((a) => a.protocol === 'wss')
    const wss = r.listen[i]
    if (wss === undefined) return
    const missing = (['cert', 'key'] as const).filter((k) => r.tls?.[k] === undefined)
    if (missing.length === 0) return
    const names = missing.map((k) => `options.tls.${k}`).join(' and ')
    const at = r.listen.length === 1 && i === 0 ? 'options.listen' : `options.listen[${i}]`
    c.fail(`options.tls.${missing[0] ?? 'cert'}`,
      `${names} ${missing.length === 1 ? 'is' : 'are'} required because ${at} is a wss:// address (${JSON.stringify(wss.url)})`)
  },
]

// ---------------------------------------------------------------------------
// Field readers (each reports to the Checker and returns a usable fallback)
// ---------------------------------------------------------------------------

function readListen (c: Checker, path: string, v: unknown): readonly ListenAddress[] {
  if (v === undefined) return DEFAULT_LISTEN
  if (v === false) return []
  const list = typeof v === 'string' ? [v] : Array.isArray(v) ? (v as unknown[]) : undefined
  if (list === undefined) {
    c.fail(path, `${path} must be a ws:// or wss:// URL, an array of them, or false (got ${show(v)})`)
    return []
  }
  const out: ListenAddress[] = []
  const seen = new Map<string, string>() // conflict key → path of first use
  for (let i = 0; i < list.length; i++) {
    const p = typeof v === 'string' ? path : `${path}[${i}]`
    const a = listenAddress(list[i])
    if (typeof a === 'string') { c.fail(p, `${p} ${a}`); continue }
    // Two listeners on one host:port collide (EADDRINUSE); port 0 never does,
    // but the same URL twice is still a mistake.
    const key = a.port === 0 ? a.url : `${a.host}|${a.port}`
    const first = seen.get(key)
    if (first !== undefined) { c.fail(p, `${p} duplicates ${first} (got ${show(list[i])})`); continue }
    seen.set(key, p)
    out.push(a)
  }
  return out
}

function readBootstrap (c: Checker, path: string, v: unknown): readonly BootstrapAddress[] {
  if (v === undefined) return []
  const list = typeof v === 'string' ? [v] : Array.isArray(v) ? (v as unknown[]) : undefined
  if (list === undefined) {
    c.fail(path, `${path} must be a ws:// or wss:// URL (optionally "<peerId>@ws://host:port") or an array of them (got ${show(v)})`)
    return []
  }
  const out: BootstrapAddress[] = []
  const seen = new Map<string, string>()
  for (let i = 0; i < list.length; i++) {
    const p = typeof v === 'string' ? path : `${path}[${i}]`
    const a = dialAddress(list[i])
    if (typeof a === 'string') { c.fail(p, `${p} ${a}`); continue }
    const first = seen.get(a.url)
    if (first !== undefined) { c.fail(p, `${p} duplicates ${first} (got ${show(list[i])})`); continue }
    seen.set(a.url, p)
    out.push(a)
  }
  return out
}

function readIdentity (c: Checker, s: Section): ResolvedIdentityOptions | undefined {
  if (!s.present) return undefined
  const hasKey = s.has('privateKey')
  const hasFile = s.has('keyFile')
  if (hasKey === hasFile) {
    c.fail(s.path, `${s.path} must have exactly one of privateKey or keyFile (got ${hasKey ? 'both' : 'neither'})`)
    return undefined
  }
  if (hasFile) {
    const keyFile = s.pathString('keyFile')
    return keyFile === undefined ? undefined : { keyFile }
  }
  const path = s.at('privateKey')
  const k = s.get('privateKey')
  if (k instanceof KeyObject) {
    if (k.type === 'private' && k.asymmetricKeyType === 'ed25519') return { privateKey: k }
    const kind = [k.type, k.asymmetricKeyType].filter((x) => x !== undefined).join(' ')
    c.fail(path, `${path} must be an ed25519 private key (got a ${kind} KeyObject)`)
    return undefined
  }
  if (k instanceof Uint8Array) {
    if (k.length === 32) return { privateKey: new Uint8Array(k) }
    c.fail(path, `${path} must be a 32-byte ed25519 seed (got ${k.length} bytes)`)
    return undefined
  }
  if (typeof k === 'string') {
    // Parse once here so a bad key is reported with its option path; the key
    // material itself never appears in the message.
    let type: string | undefined
    try { type = createPrivateKey(k).asymmetricKeyType } catch { type = undefined }
    if (type === 'ed25519') return { privateKey: k }
    c.fail(path, `${path} must be a PEM-encoded (PKCS#8, unencrypted) ed25519 private key ` +
      `(got ${type === undefined ? 'a string that is not a readable private key' : `a ${type} key`})`)
    return undefined
  }
  c.fail(path, `${path} must be an ed25519 private KeyObject, a PEM string or a 32-byte seed (got ${typeName(k)})`)
  return undefined
}

function readAllow (c: Checker, path: string, v: unknown): readonly string[] | undefined {
  if (v === undefined) return undefined
  if (!Array.isArray(v)) {
    c.fail(path, `${path} must be an array of peer ids (got ${show(v)})`)
    return undefined
  }
  const out: string[] = []
  const seen = new Map<string, string>()
  for (let i = 0; i < v.length; i++) {
    const p = `${path}[${i}]`
    const id: unknown = v[i]
    if (typeof id !== 'string' || !isPeerId(id)) { c.fail(p, `${p} ${PEER_ID_RULE} (got ${show(id)})`); continue }
    const first = seen.get(id)
    if (first !== undefined) { c.fail(p, `${p} duplicates ${first} (got ${show(id)})`); continue }
    seen.set(id, p)
    out.push(id)
  }
  return out
}

function readMeshKey (c: Checker, path: string, v: unknown): string | Uint8Array | undefined {
  if (v === undefined) return undefined
  // A secret: report its type and length, never its content.
  if (typeof v === 'string') {
    if (v.length >= 16) return v
    c.fail(path, `${path} must be at least 16 characters long (got ${v.length} characters)`)
  } else if (v instanceof Uint8Array) {
    if (v.length >= 16) return new Uint8Array(v)
    c.fail(path, `${path} must be at least 16 bytes long (got ${v.length} bytes)`)
  } else {
    c.fail(path, `${path} must be a string of at least 16 characters or a Uint8Array of at least 16 bytes (got ${typeName(v)})`)
  }
  return undefined
}

function readTls (c: Checker, s: Section): ResolvedTlsOptions | undefined {
  if (!s.present) return undefined
  const pem = (key: 'cert' | 'key' | 'ca', v: unknown, path: string): string | Uint8Array | undefined => {
    if (typeof v === 'string' && v.length > 0) return v
    if (v instanceof Uint8Array && v.length > 0) return new Uint8Array(v)
    c.fail(path, `${path} must be a non-empty PEM string or Uint8Array (got ${key === 'key' ? typeName(v) : show(v)})`)
    return undefined
  }
  const cert = s.has('cert') ? pem('cert', s.get('cert'), s.at('cert')) : undefined
  const key = s.has('key') ? pem('key', s.get('key'), s.at('key')) : undefined
  let ca: Array<string | Uint8Array> | undefined
  if (s.has('ca')) {
    const v = s.get('ca')
    const list: unknown[] = Array.isArray(v) ? v : [v]
    ca = []
    for (let i = 0; i < list.length; i++) {
      const one = pem('ca', list[i], Array.isArray(v) ? `${s.at('ca')}[${i}]` : s.at('ca'))
      if (one !== undefined) ca.push(one)
    }
  }
  return {
    ...(cert === undefined ? {} : { cert }),
    ...(key === undefined ? {} : { key }),
    ...(ca === undefined ? {} : { ca }),
    rejectUnauthorized: s.bool('rejectUnauthorized', DEFAULTS.tls.rejectUnauthorized),
  }
}

function readLogger (c: Checker, path: string, v: unknown): Logger | LoggerOptions | false | undefined {
  if (v === undefined || v === false) return v
  if (v !== null && typeof v === 'object') {
    const rec = v as Record<string, unknown>
    const methods = LOGGER_METHODS.filter((m) => typeof rec[m] === 'function')
    if (methods.length === LOGGER_METHODS.length) return v as Logger
    if (methods.length > 0) {
      const lacking = LOGGER_METHODS.filter((m) => !methods.includes(m)).map((m) => `${m}()`).join(', ')
      c.fail(path, `${path} looks like a logger but lacks ${lacking} (a pino Logger has info, warn, error, debug and child)`)
      return undefined
    }
    if (isPlainObject(v)) return v as LoggerOptions
  }
  c.fail(path, `${path} must be a pino Logger, a pino options object, or false (got ${show(v)})`)
  return undefined
}

function readMetrics (c: Checker, s: Section): ResolvedMetricsOptions {
  const registry = s.get('registry')
  if (registry === undefined) return {}
  const r = registry as Partial<Record<'registerMetric' | 'metrics', unknown>> | null
  if (r !== null && typeof r === 'object' && typeof r.registerMetric === 'function' && typeof r.metrics === 'function') {
    return { registry: registry as Registry }
  }
  const path = s.at('registry')
  c.fail(path, `${path} must be a prom-client Registry, with registerMetric() and metrics() (got ${show(registry)})`)
  return {}
}

// ---------------------------------------------------------------------------
// Addresses
// ---------------------------------------------------------------------------

const URL_RULE = 'must be a ws:// or wss:// URL with a host and port'
const PEER_ID_SHAPE = '52 characters of a-z and 2-7'
const PEER_ID_RULE = `must be a peer id: ${PEER_ID_SHAPE}`

// scheme :// authority rest; the authority ends at the first / ? or #.
const URL_RE = /^(wss?):\/\/([^/?#]*)(.*)$/i
// host (a [bracketed IPv6] or a name without ':') then an optional :port.
const AUTHORITY_RE = /^(\[[^\]]*\]|[^:[\]]*)(?::([0-9]*))?$/

/** A ListenAddress, or what is wrong with `v` (a message without the path). */
function listenAddress (v: unknown): ListenAddress | string {
  if (typeof v !== 'string') return `${URL_RULE} (got ${show(v)})`
  return wsUrl(v, 0)
}

/** A BootstrapAddress, or what is wrong with `v` (a message without the path). */
function dialAddress (v: unknown): BootstrapAddress | string {
  if (typeof v !== 'string') return `${URL_RULE}, optionally prefixed "<peerId>@" (got ${show(v)})`
  // '<peerId>@ws://…': an '@' before the scheme separator is a pin; one
  // after it would be URL credentials, which wsUrl() rejects.
  const at = v.indexOf('@')
  const scheme = v.indexOf('://')
  if (at >= 0 && (scheme < 0 || at < scheme)) {
    const peerId = v.slice(0, at)
    if (!isPeerId(peerId)) return `has an invalid peer id before "@" (a peer id is ${PEER_ID_SHAPE}) (got ${show(peerId)})`
    const a = wsUrl(v.slice(at + 1), 1)
    return typeof a === 'string' ? a : Object.freeze({ url: a.url, peerId })
  }
  const a = wsUrl(v, 1)
  return typeof a === 'string' ? a : Object.freeze({ url: a.url })
}

/**
 * Parse `ws://host:port` or `wss://host:port` strictly: an explicit port
 * (>= minPort), no credentials, no path but '/', no query or fragment.
 * The host is normalised by the WHATWG URL parser (lowercase, IDNA, IPv4 and
 * IPv6 canonical forms). Returns the address or the complaint.
 */
function wsUrl (raw: string, minPort: 0 | 1): ListenAddress | string {
  const bad = (reason?: string): string => `${URL_RULE}${reason === undefined ? '' : `: ${reason}`} (got ${show(raw)})`
  if (hasSpaceOrControl(raw)) return bad('whitespace and control characters are not allowed')
  const m = URL_RE.exec(raw)
  if (m === null) return bad()
  const protocol = (m[1] ?? '').toLowerCase() as 'ws' | 'wss'
  const authority = m[2] ?? ''
  const rest = m[3] ?? ''
  if (authority.includes('@')) return `${URL_RULE}: credentials (user:password@) are not allowed`
  if (/[?#]/.test(rest)) return bad('a query or fragment is not allowed')
  if (rest !== '' && rest !== '/') return bad('a path other than "/" is not allowed')
  const hp = AUTHORITY_RE.exec(authority)
  if (hp === null) return bad()
  const hostPart = hp[1] ?? ''
  const portText = hp[2]
  if (hostPart === '' || hostPart === '[]') return bad('the host is missing')
  if (portText === undefined || portText === '') return bad('the port is missing')
  const port = Number(portText)
  if (port > 65535) return bad(`port ${portText} is out of range 0..65535`)
  if (port < minPort) return bad('port 0 cannot be dialed')
  // Our own port is checked above; give URL a fixed one so it normalises the
  // host only. If anything but the host moved (a backslash reads as '/' in ws: URLs),
  // the host was not one.
  let u: URL | undefined
  try { u = new URL(`${protocol}://${hostPart}:1/`) } catch { u = undefined }
  if (u === undefined || u.port !== '1' || u.pathname !== '/' || u.search !== '' || u.hash !== '' || u.username !== '') {
    return bad('the host is not valid')
  }
  const hostname = u.hostname
  const host = hostname.startsWith('[') ? hostname.slice(1, -1) : hostname
  return Object.freeze({ url: `${protocol}://${hostname}:${port}`, protocol, host, port })
}

const DEFAULT_LISTEN: readonly ListenAddress[] = Object.freeze(DEFAULTS.listen.map((u) => {
  const a = listenAddress(u)
  if (typeof a === 'string') throw new Error(`bad built-in default listen address: ${a}`)
  return a
}))

// ---------------------------------------------------------------------------
// Checker and Section: issue collection and typed readers with paths
// ---------------------------------------------------------------------------

interface Issue { readonly path: string; readonly message: string }

interface IntRule {
  /** Inclusive lower bound. */
  min: number
  /** Inclusive upper bound; default Number.MAX_SAFE_INTEGER. */
  max?: number
  /** 'ms' or 'bytes', for messages. */
  unit?: 'ms' | 'bytes'
  /** Also accept Infinity ("no limit"). */
  infinity?: boolean
}

/** Collects issues; the first one names `details.path`. */
class Checker {
  readonly issues: Issue[] = []

  get failed (): boolean { return this.issues.length > 0 }

  /** Record a problem; `message` starts with the path. */
  fail (path: string, message: string): void {
    this.issues.push({ path, message })
  }

  error (): MeshError { return issuesError(this.issues) }

  /** The top level: `undefined` is `{}`; anything but a plain object is fatal. */
  root (v: unknown, keys: readonly string[]): Section | undefined {
    if (v === undefined) return new Section(this, 'options', {}, false)
    const s = this.object('options', v, keys)
    return s.present ? s : undefined
  }

  /** Read a nested options object, reporting unknown keys. Absent or invalid → an empty Section. */
  object (path: string, v: unknown, keys: readonly string[]): Section {
    if (v === undefined) return new Section(this, path, {}, false)
    if (!isPlainObject(v)) {
      this.fail(path, `${path} must be an object (got ${show(v)})`)
      return new Section(this, path, {}, false)
    }
    const values: Record<string, unknown> = Object.create(null) as Record<string, unknown>
    for (const key of Object.keys(v)) {
      if (keys.includes(key)) {
        values[key] = (v as Record<string, unknown>)[key]
        continue
      }
      const near = closest(key, keys)
      this.fail(`${path}.${key}`, `${path}: unknown option ${JSON.stringify(key)}` +
        (near === undefined ? '' : ` (did you mean ${JSON.stringify(near)}?)`))
    }
    return new Section(this, path, values, true)
  }
}

/** One options object being read, with typed readers that know its path. */
class Section {
  constructor (
    readonly c: Checker,
    readonly path: string,
    readonly values: Readonly<Record<string, unknown>>,
    /** False when the object was absent (or invalid): readers return defaults. */
    readonly present: boolean,
  ) {}

  at (key: string): string { return `${this.path}.${key}` }
  get (key: string): unknown { return this.values[key] }
  has (key: string): boolean { return this.values[key] !== undefined }

  /** `value`, annotated when it is the default rather than the user's. */
  shown (key: string, value: number): string {
    return this.has(key) ? String(value) : `${value}, the default`
  }

  section (key: string, keys: readonly string[]): Section {
    return this.c.object(this.at(key), this.get(key), keys)
  }

  int (key: string, def: number, rule: IntRule): number {
    const v = this.get(key)
    if (v === undefined) return def
    const path = this.at(key)
    const max = rule.max ?? Number.MAX_SAFE_INTEGER
    if (rule.infinity === true && v === Infinity) return v
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < Math.min(rule.min, 1)) {
      const kind = rule.min >= 1 ? 'a positive integer' : 'a non-negative integer'
      this.c.fail(path, `${path} must be ${kind}${rule.infinity === true ? ' or Infinity' : ''} (got ${show(v)})`)
      return def
    }
    if (v < rule.min || v > max) {
      const range = max === Number.MAX_SAFE_INTEGER
        ? `at least ${amount(rule.min, rule.unit)}`
        : `between ${amount(rule.min, rule.unit)} and ${amount(max, rule.unit)}`
      this.c.fail(path, `${path} must be ${range} (got ${show(v)})`)
      return def
    }
    return v
  }

  number (key: string, def: number, rule: { min: number, max?: number }): number {
    const v = this.get(key)
    if (v === undefined) return def
    const path = this.at(key)
    if (typeof v !== 'number' || !Number.isFinite(v) || v < rule.min || (rule.max !== undefined && v > rule.max)) {
      const range = rule.max === undefined ? `>= ${rule.min}` : `between ${rule.min} and ${rule.max}`
      this.c.fail(path, `${path} must be a finite number ${range} (got ${show(v)})`)
      return def
    }
    return v
  }

  bool (key: string, def: boolean): boolean {
    const v = this.get(key)
    if (v === undefined) return def
    if (typeof v === 'boolean') return v
    this.c.fail(this.at(key), `${this.at(key)} must be true or false (got ${show(v)})`)
    return def
  }

  oneOf<T extends string> (key: string, def: T, allowed: readonly T[]): T {
    const v = this.get(key)
    if (v === undefined) return def
    if ((allowed as readonly unknown[]).includes(v)) return v as T
    const path = this.at(key)
    const near = typeof v === 'string' ? closest(v, allowed) : undefined
    this.c.fail(path, `${path} must be one of ${allowed.map((a) => JSON.stringify(a)).join(', ')} (got ${show(v)})` +
      (near === undefined ? '' : ` (did you mean ${JSON.stringify(near)}?)`))
    return def
  }

  /** A file-system path: a non-empty string without NUL bytes. */
  pathString (key: string): string | undefined {
    const v = this.get(key)
    if (v === undefined) return undefined
    const path = this.at(key)
    if (typeof v === 'string' && v.length > 0 && !v.includes('\0')) return v
    this.c.fail(path, `${path} must be a non-empty path string (got ${show(v)})`)
    return undefined
  }
}

function issuesError (issues: readonly Issue[]): MeshError {
  const first = issues[0] ?? { path: 'options', message: 'options are invalid' }
  return new MeshError(ErrorCode.INVALID_OPTIONS, issues.map((i) => i.message).join('; '), {
    details: { path: first.path, issues: issues.map((i) => ({ path: i.path, message: i.message })) },
  })
}

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

/** A plain object literal (any realm), or one made by Object.create(null). */
function isPlainObject (v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object') return false
  const proto: unknown = Object.getPrototypeOf(v)
  return proto === null || Object.getPrototypeOf(proto) === null
}

/** A value for an error message: strings quoted and cut, objects by kind. */
function show (v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 80 ? `${v.slice(0, 77)}...` : v)
  if (typeof v === 'bigint') return `${v}n`
  if (typeof v === 'number' || typeof v === 'boolean' || v === null || v === undefined) return String(v)
  return typeName(v)
}

/** The kind of a value, for messages about secrets (never the content). */
function typeName (v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'an array'
  if (v instanceof Uint8Array) return `a ${v.constructor.name} of ${v.length} bytes`
  if (typeof v === 'object') {
    const name = (Object.getPrototypeOf(v) as { constructor?: { name?: unknown } } | null)?.constructor?.name
    return typeof name === 'string' && name !== '' && name !== 'Object' ? `a ${name}` : 'an object'
  }
  return /^[aeiou]/.test(typeof v) ? `an ${typeof v}` : `a ${typeof v}`
}

/** `n` with its unit for range messages: "10 ms", "64 KiB (65536 bytes)". */
function amount (n: number, unit: IntRule['unit']): string {
  if (unit === 'ms') return `${n} ms`
  if (unit !== 'bytes') return String(n)
  for (const [size, name] of [[GiB, 'GiB'], [MiB, 'MiB'], [KiB, 'KiB']] as const) {
    if (n >= size && n % size === 0) return `${n / size} ${name} (${n} bytes)`
  }
  return `${n} bytes`
}

/** The known name nearest to a typo, if it is near enough (case-insensitive edit distance). */
function closest (name: string, known: readonly string[]): string | undefined {
  const limit = Math.max(1, Math.ceil(name.length / 3))
  let best: string | undefined
  let bestDistance = Infinity
  for (const k of known) {
    const d = editDistance(name.toLowerCase(), k.toLowerCase())
    if (d < bestDistance && d <= limit && d < name.length) { best = k; bestDistance = d }
  }
  return best
}

/**
 * Edit distance counting a swap of two neighbours as one edit ("kye" → "key"):
 * the optimal-string-alignment variant of Damerau-Levenshtein.
 */
function editDistance (a: string, b: string): number {
  // d[i][j] is the distance between the first i characters of a and the first j of b.
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)))
  const at = (i: number, j: number): number => d[i]?.[j] ?? 0
  for (let i = 1; i <= a.length; i++) {
    const row = d[i] ?? []
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      row[j] = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) row[j] = Math.min(at(i, j), at(i - 2, j - 2) + 1)
    }
  }
  return at(a.length, b.length)
}

/** True for any whitespace, C0/C1 control or DEL (the URL parser would silently drop some). */
function hasSpaceOrControl (s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c <= 0x20 || (c >= 0x7f && c <= 0xa0)) return true
  }
  return /\s/.test(s)
}

function toBytes (v: string | Uint8Array): Uint8Array {
  return typeof v === 'string' ? new TextEncoder().encode(v) : new Uint8Array(v)
}

function workerTls (t: ResolvedTlsOptions): NonNullable<WorkerConfig['tls']> {
  // Copies, so a transfer list on the worker side can never detach ours.
  const copy = (v: string | Uint8Array): string | Uint8Array => typeof v === 'string' ? v : new Uint8Array(v)
  return {
    ...(t.cert === undefined ? {} : { cert: copy(t.cert) }),
    ...(t.key === undefined ? {} : { key: copy(t.key) }),
    ...(t.ca === undefined ? {} : { ca: t.ca.map(copy) }),
    rejectUnauthorized: t.rejectUnauthorized,
  }
}

/** Freeze plain objects and arrays recursively; leaves class instances and typed arrays alone. */
function deepFreeze<T> (v: T): T {
  if (Array.isArray(v) || isPlainObject(v)) {
    for (const x of Object.values(v as object)) deepFreeze(x)
    Object.freeze(v)
  }
  return v
}

/** Freeze what resolveOptions built; `logger` is the caller's object, passed through untouched. */
function freezeResolved (r: ResolvedMeshOptions): ResolvedMeshOptions {
  for (const [key, value] of Object.entries(r)) if (key !== 'logger') deepFreeze(value)
  return Object.freeze(r)
}
