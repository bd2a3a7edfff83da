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
import { forEachFrame } from './codec/decode.js'
import { encodeHeaderOnlyInto } from './codec/encode.js'
import { FrameType, Lane, PROTOCOL_VERSION } from './codec/frame.js'
import { encodePayload, decodePayload } from './codec/payload.js'
import { FRAME_OVERHEAD } from './io/io-worker.js'
import { MeshMetrics } from './observability/metrics.js'
import type { Registry } from 'prom-client'
import type { InboundEvent, IoWorkerStats } from './actor/protocol.js'
import type { LaneName, MeshEvents, MeshStatus, PeerInfo } from './events.js'

/** Options of {@link Mesh.send}. */
export interface SendOptions {
  /** @default 'priority' */
  lane?: 'priority' | 'bulk'
  /** Abort a send that is waiting for queue space. */
  signal?: AbortSignal
}

const LANES: readonly LaneName[] = ['control', 'priority', 'bulk']
/** Immediate sends after which one send resolves on a macrotask (host event-loop fairness). */
const YIELD_EVERY = 512
const LANE_NUMBER = { priority: Lane.PRIORITY, bulk: Lane.BULK } as const

/** A peer as the host tracks it: its outbound ring outlives connections and IO worker restarts. */
interface PeerEntry {
  info: PeerInfo
  ring: RingBuffer
  slot: IoSlot | undefined
  handle: number
  seq: number
  /** Sends waiting for ring space, in call order (so a waiting send is never overtaken). */
  waiting: Promise<unknown> | undefined
  waiters: number
  // Metrics: plain counters on the host, read when scraped.
  messagesSent: number
  bytesSent: number
  messagesReceived: number
  bytesReceived: number
}

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
  readonly #byHandle = new Map<IoSlot, Map<number, PeerEntry>>()
  readonly #upWaiters = new Map<string, Array<() => void>>()
  readonly #header = new Uint8Array(FRAME_OVERHEAD)
  #sup!: Supervisor
  readonly #metrics: MeshMetrics
  #addresses: string[] = []
  #closing: Promise<void> | undefined
  #closed = false
  #sinceYield = 0
  #status: MeshStatus = { state: 'healthy', members: 0, reachable: 0, unreachable: 0 }

  private constructor (opts: ResolvedMeshOptions, identity: Identity, log: Logger) {
    super()
    this.#opts = opts
    this.id = identity.id
    this.#log = log
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
      })),
      ioStats: async () => this.#closing === undefined ? await this._ioStats() : [],
      inboundRings: () => this.#sup.slots.map((sl) => ({ worker: sl.index, usedBytes: sl.inbound.usedBytes(), capacity: sl.inbound.capacity })),
      workerRestarts: () => this.#sup.restarts,
    }, opts.metrics?.registry as Registry | undefined)
  }

  /** @internal use {@link createMesh}. */
  static async create (options?: MeshOptions): Promise<Mesh> {
    const opts = resolveOptions(options)
    refuseUnenforced(opts)
    const log = createLogger(opts.logger)
    const identity = await loadIdentity({ dataDir: opts.dataDir, identity: opts.identity as any })
    let mesh: Mesh
    try {
      mesh = new Mesh(opts, identity, log)
    } catch (err) {
      // prom-client refuses a second registration of the same metric name.
      throw new MeshError(ErrorCode.INVALID_OPTIONS, `options.metrics.registry: ${(err as Error).message} (use one registry per mesh)`, { cause: err, details: { path: 'options.metrics.registry' } })
    }
    await mesh.#start(identity)
    return mesh
  }

  /** Resolved listen URLs, e.g. `['ws://127.0.0.1:41231']`. Empty for a dial-only node. */
  get addresses (): string[] { return [...this.#addresses] }

  /** The resolved, frozen options. */
  get options (): ResolvedMeshOptions { return this.#opts }

  async #start (identity: Identity): Promise<void> {
    const level = typeof this.#log.level === 'string' ? this.#log.level : 'info'
    // The inbound ring must hold several of the largest WebSocket messages.
    const ringBytes = Math.max(this.#opts.ringBytes, 4 * (this.#opts.maxMessageBytes + FRAME_OVERHEAD + 64))
    this.#sup = new Supervisor({
      selfId: this.id,
      identityDer: identity.privateDer,
      config: toWorkerConfig(this.#opts),
      listen: this.#opts.listen.map((l) => l.url),
      ioThreads: this.#opts.threads.io,
      ringBytes,
      logger: this.#log,
      logLevel: level,
      host: {
        ringFor: (peerId) => this.#entryFor(peerId).ring.sab,
        dispatch: (slot, rec) => { this.#dispatch(slot, rec) },
        workerLost: (slot) => { this.#workerLost(slot) },
        workerRestarted: (slot) => { this.#redial(slot) },
        membership: {
          status: (st) => { this.#onStatus(st) },
          member: (m) => { this.#log.debug({ component: 'membership', event: 'member', peer: m.id, state: m.state, previous: m.previous }, `member ${m.state}`) },
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
    for (const b of this.#opts.bootstrap) {
      // The IO worker keeps retrying with backoff: a bootstrap peer that is
      // not up yet is no fault. Refusals that cannot heal are logged there.
      this.#dial(b.url, b.peerId, true).catch((err: MeshError) => {
        this.#log.info({ component: 'mesh', event: 'bootstrap:retrying', address: b.url, err: err.message }, 'bootstrap peer not reachable yet; retrying')
      })
    }
  }

  /**
   * Send `payload` to peer `to`. Resolves with the message id once the message
   * is queued (in this node's outbound ring for that peer).
   * @throws MeshError UNKNOWN_PEER (never linked), PAYLOAD_TOO_LARGE, QUEUE_FULL
   *   (no room within sendQueue.blockTimeoutMs), CLOSED.
   */
  send (to: string, payload: unknown, options?: SendOptions): Promise<string> {
    if (this.#closing !== undefined) return Promise.reject(new MeshError(ErrorCode.CLOSED, 'the mesh is closed'))
    const entry = this.#peers.get(to)
    if (entry === undefined) return Promise.reject(new MeshError(ErrorCode.UNKNOWN_PEER, `unknown peer ${String(to)}: not linked to this node`, { details: { peer: to } }))
    const lane = options?.lane ?? 'priority'
    const laneNo = LANE_NUMBER[lane]
    if (laneNo === undefined) return Promise.reject(new MeshError(ErrorCode.INVALID_OPTIONS, `options.lane must be 'priority' or 'bulk' (got ${JSON.stringify(lane)})`))
    let enc
    try {
      enc = encodePayload(payload)
    } catch (err) {
      return Promise.reject(new MeshError(ErrorCode.INVALID_OPTIONS, `payload cannot be encoded: ${(err as Error).message}`, { cause: err }))
    }
    if (enc.bytes.length > this.#opts.maxMessageBytes) {
      return Promise.reject(new MeshError(ErrorCode.PAYLOAD_TOO_LARGE, `payload of ${enc.bytes.length} bytes exceeds maxMessageBytes (${this.#opts.maxMessageBytes})`, { details: { bytes: enc.bytes.length, max: this.#opts.maxMessageBytes } }))
    }
    const seq = ++entry.seq
    const h = this.#header
    const n = encodeHeaderOnlyInto({ version: PROTOCOL_VERSION, type: FrameType.DATA, lane: laneNo, flags: enc.flags, src: null, dst: null, stream: 0, seq }, enc.bytes.length, h, 0)
    if (n < 0) return Promise.reject(new MeshError(ErrorCode.PROTOCOL, 'internal: frame header does not fit its scratch buffer'))
    // Fast path: nobody waiting and room now.
    if (entry.waiters === 0 && entry.ring.tryWrite2(h.subarray(0, n), enc.bytes)) {
      entry.slot?.doorbell.ring()
      entry.messagesSent++
      entry.bytesSent += enc.bytes.length
      // A `for (;;) await send()` loop whose sends all resolve at once would
      // never let the event loop turn (the host's own timers and I/O, and our
      // inbound dispatch, would starve). Every YIELD_EVERY immediate sends, one
      // resolves on the next macrotask instead.
      if (++this.#sinceYield >= YIELD_EVERY) {
        this.#sinceYield = 0
        const id = String(seq)
        return new Promise((resolve) => { setImmediate(resolve, id) })
      }
      return Promise.resolve(String(seq))
    }
    // Copy: the header scratch and msgpackr's buffer are reused by the next send.
    const frame = Buffer.concat([h.subarray(0, n), enc.bytes])
    return this.#sendBlocking(entry, frame, n, seq, options?.signal)
  }

  async #sendBlocking (entry: PeerEntry, frame: Uint8Array, headerBytes: number, seq: number, signal: AbortSignal | undefined): Promise<string> {
    const timeout = new MeshError(ErrorCode.QUEUE_FULL, `send queue to ${entry.info.id} stayed full for ${this.#opts.sendQueue.blockTimeoutMs} ms`, { details: { peer: entry.info.id, capacityBytes: this.#opts.sendQueue.capacityBytes } })
    const deadline = Date.now() + this.#opts.sendQueue.blockTimeoutMs
    const prev = entry.waiting
    entry.waiters++
    const mine = (async () => {
      try {
        if (prev !== undefined) await prev.catch(() => {})
        for (;;) {
          if (this.#closing !== undefined) throw new MeshError(ErrorCode.CLOSED, 'the mesh closed while the send waited for queue space')
          if (signal?.aborted === true) throw new MeshError(ErrorCode.TIMEOUT, 'send aborted', { cause: signal.reason })
          if (entry.ring.tryWrite(frame)) {
            entry.slot?.doorbell.ring()
            entry.messagesSent++
            entry.bytesSent += frame.length - headerBytes
            return String(seq)
          }
          const left = deadline - Date.now()
          if (left <= 0) throw timeout
          // Atomics.waitAsync inside: no timer on the host's loop.
          // Wait for a quarter of the ring, not just this frame: one wake-up
          // then admits many sends instead of ping-ponging per frame.
          await entry.ring.waitForSpace(Math.max(frame.length, Math.min(entry.ring.maxRecordBytes, entry.ring.capacity >> 2)), Math.min(left, 250))
        }
      } finally {
        entry.waiters--
        if (entry.waiters === 0) entry.waiting = undefined
      }
    })()
    entry.waiting = mine
    return await mine
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

  /** Every peer this node has linked with (current state included). */
  peers (): PeerInfo[] {
    return [...this.#peers.values()].filter((e) => e.handle !== 0 || e.info.state !== 'connecting').map((e) => ({ ...e.info, lanes: [...e.info.lanes] }))
  }

  /**
   * Graceful close: stop accepting, flush queued frames (up to closeTimeoutMs),
   * close sockets, stop workers. Idempotent.
   */
  async close (): Promise<void> {
    this.#closing ??= (async () => {
      await this.#sup.close(this.#opts.closeTimeoutMs)
      this.#finish()
    })()
    await this.#closing
  }

  /** Immediate close: queued frames are dropped. Idempotent. */
  async destroy (): Promise<void> {
    if (this.#closing === undefined) {
      this.#closing = (async () => {
        await this.#sup.destroy()
        this.#finish()
      })()
    }
    await this.#closing
  }

  /** @internal test/diagnostic hook: per IO worker counters. */
  async _ioStats (): Promise<IoWorkerStats[]> {
    return await Promise.all(this.#sup.slots.map(async (s) => await s.api.stats()))
  }

  /** @internal diagnostics: ring fill and counters (host side). */
  _ringStats (): { inbound: Array<ReturnType<RingBuffer['stats']>>; outbound: Record<string, ReturnType<RingBuffer['stats']>> } {
    const outbound: Record<string, ReturnType<RingBuffer['stats']>> = {}
    for (const [id, e] of this.#peers) outbound[id] = e.ring.stats()
    return { inbound: this.#sup.slots.map((s) => s.inbound.stats()), outbound }
  }

  /** @internal test hook: crash IO worker `index` (it is restarted). */
  _crashIoWorker (index = 0): void { this.#sup.crashIo(index) }

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

  #entryFor (peerId: string): PeerEntry {
    let e = this.#peers.get(peerId)
    if (e === undefined) {
      e = {
        info: { id: peerId, direction: 'outbound', state: 'connecting', since: Date.now(), lanes: [...LANES] },
        ring: RingBuffer.create(this.#opts.sendQueue.capacityBytes, { keepAlive: false }),
        slot: undefined,
        handle: 0,
        seq: 0,
        waiting: undefined,
        waiters: 0,
        messagesSent: 0,
        bytesSent: 0,
        messagesReceived: 0,
        bytesReceived: 0,
      }
      this.#peers.set(peerId, e)
    }
    return e
  }

  #dispatch (slot: IoSlot, rec: Uint8Array): void {
    const kind = readKind(rec)
    const handle = readHandle(rec)
    const body = rec.subarray(INBOUND_ENVELOPE_BYTES)
    if (kind === InboundKind.DATA) {
      const entry = this.#byHandle.get(slot)?.get(handle)
      if (entry === undefined) return
      const from = entry.info.id
      // Frames were validated by the IO worker; parsing them again here is cheap and keeps one decoder.
      forEachFrame(body, undefined, (f) => {
        entry.messagesReceived++
        entry.bytesReceived += f.payload?.length ?? 0
        const msg = { from, payload: decodePayload(f.payload, f.flags), lane: LANES[f.lane] ?? 'bulk', id: String(f.seq) }
        try {
          this.emit('message', msg)
        } catch (err) {
          // A throwing handler must not lose the rest of the batch: rethrow it outside the dispatch loop.
          process.nextTick(() => { throw err })
        }
      })
      return
    }
    if (kind === InboundKind.EVENT) {
      let ev: InboundEvent
      // Copy out of shared memory: msgpackr's string decoding refuses SharedArrayBuffer views.
      try { ev = decodeControl(Buffer.from(body)) as InboundEvent } catch { return }
      this.#onEvent(slot, handle, ev)
    }
  }

  #onEvent (slot: IoSlot, handle: number, ev: InboundEvent): void {
    switch (ev.type) {
      case 'peer:up': {
        const e = this.#entryFor(ev.peerId)
        e.slot = slot
        e.handle = handle
        let m = this.#byHandle.get(slot)
        if (m === undefined) { m = new Map(); this.#byHandle.set(slot, m) }
        m.set(handle, e)
        e.info = { ...e.info, address: ev.address, direction: ev.direction, state: 'healthy', since: Date.now() }
        this.#emitSafe('peer:up', { ...e.info })
        for (const w of this.#upWaiters.get(ev.peerId) ?? []) w()
        this.#upWaiters.delete(ev.peerId)
        break
      }
      case 'peer:down': {
        const e = this.#byHandle.get(slot)?.get(handle)
        if (e === undefined) return
        this.#byHandle.get(slot)?.delete(handle)
        if (e.slot === slot && e.handle === handle) this.#markDown(e)
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
          this.#metrics.observeRtt(e.info.id, ev.rttMs)
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
      case 'error':
        this.#error(reviveError(ev.error))
        break
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
    for (const e of m?.values() ?? []) if (e.slot === slot) this.#markDown(e)
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
    for (const e of this.#peers.values()) if (e.slot !== undefined) this.#markDown(e)
    for (const e of this.#peers.values()) e.ring.close()
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
 * @throws MeshError INVALID_OPTIONS naming the option and the problem.
 */
export async function createMesh (options?: MeshOptions): Promise<Mesh> {
  return await Mesh.create(options)
}
