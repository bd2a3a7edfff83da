import { wrap, expose, type Remote } from 'comlink'
import type { MessagePort } from 'node:worker_threads'
import type { ClaimResult, ForwardingEntry, IoPeerControl, LinkClaim, LinkSnapshot, LinkStatsReport, RouterApi, RouterHostCallbacks } from '../actor/protocol.js'
import { Swim, SWIM_DEFAULTS, parseSwimMessage, type SwimOutput } from '../membership/swim.js'
import { encodeControl, decodeControl } from '../codec/control.js'
import { nodeEndpoint } from '../actor/endpoint.js'
import type { LsaSigner } from '../routing/lsa.js'
import { compactGraph } from '../routing/graph.js'
import { buildRouteTable, computeRoutes } from '../routing/route-table.js'
import { PathPool } from '../routing/path-pool.js'
import { LinkRegistry } from './link-registry.js'
import { collectGarbage, type HeapAfterGc } from '../util/gc.js'
import { RoutingService, type RoutingOutput, type RoutingServiceOptions } from './routing-service.js'

/** Link-state routing settings of a {@link RouterService}. */
export interface RouterRoutingOptions {
  /** Signs this node's LSAs (the node identity: id + ed25519 private key). */
  signer: LsaSigner
  /** `routing.k` and `routing.maxHops`. */
  k: number
  maxHops: number
  /** Tuning of the sans-IO core (delays, link cost, aging); see routing-service.ts. */
  tuning?: Omit<RoutingServiceOptions, 'signer' | 'initialSeq' | 'routes'>
  /** Where k-shortest paths run (inline up to 200 nodes, a piscina pool above). @default new PathPool() */
  pathPool?: PathPool
}

/** A claim waits at most this long (ms) for the IO workers to take the new link list (see #pushLinks). */
export const PUSH_LINKS_WAIT_MS = 1000

/** First wait before asking the host again to drop a forgotten member's state (see RouterService #forgetPeer)… */
const FORGET_RETRY_MS = 1_000
/** …doubling up to this. */
const FORGET_RETRY_MAX_MS = 60_000

/**
 * After LSAs to a linked neighbour could not go (no open connection on its
 * IO worker: one being replaced), our whole database goes to it again this
 * much later (see RoutingService.resync).
 */
export const RESYNC_DELAY_MS = 250

/**
 * A SWIM message encoded for the IO worker, in a buffer of its own size.
 * msgpackr returns a view of its 8-16 KiB working buffer, and a view posted
 * to another thread is cloned with its whole ArrayBuffer: every 24-byte ping
 * cost a 16 KiB copy and allocation on both threads.
 */
function membershipPayload (msg: unknown): Uint8Array {
  return Uint8Array.prototype.slice.call(encodeControl(msg))
}

/** Local acks (see RouterService #act) only after membership was quiet for this many protocol periods. */
export const LOCAL_ACK_QUIET_PERIODS = 10
/** Every this-many-th direct ping to a member goes over the network even when it could be acked locally. */
export const LOCAL_ACK_EVERY = 4

/**
 * The routing actor's worker-side service: the direct-link table and the
 * duplicate-connection rule, SWIM membership, and link-state routing (the
 * sans-IO {@link RoutingService} driven here with one timer, its LSAs sent
 * through the IO workers, its routes pushed to the host and the IO workers).
 */
export class RouterService implements RouterApi {
  readonly #links = new LinkRegistry()
  readonly #workers = new Map<number, Remote<IoPeerControl>>()
  readonly #selfId: string
  readonly #join: 'open' | 'key' | 'closed'
  /** Peers that were members (linked) at some point, plus the allow list: who may come back under join 'closed'. */
  readonly #known: Set<string>

  readonly #swimConfig: { protocolPeriodMs: number; maxPeers: number; reapAfterMs: number }
  #swim: Swim | undefined
  #addresses: string[] = []
  #host: RouterHostCallbacks | undefined
  /** A lost dataDir lock reported before the host called in. */
  #lockLost: string | undefined
  #timer: NodeJS.Timeout | undefined

  /** Link-state routing (absent when constructed without `routing`, e.g. in membership-only tests). */
  readonly #routing: RoutingService | undefined
  readonly #pathPool: PathPool | undefined
  #routingTimer: NodeJS.Timeout | undefined
  /** Neighbours with a database resync pending (see #resyncLater). */
  readonly #resyncs = new Map<string, NodeJS.Timeout>()
  #routingTimerAt = Infinity

  /** First wait before asking the host again to drop a forgotten member's state (see #forgetPeer). */
  readonly #forgetRetryMs: number

  constructor (o: { selfId: string; join: 'open' | 'key' | 'closed'; allow?: readonly string[] | undefined; protocolPeriodMs?: number; maxPeers?: number; reapAfterMs?: number; forgetRetryMs?: number; routing?: RouterRoutingOptions }) {
    this.#forgetRetryMs = o.forgetRetryMs ?? FORGET_RETRY_MS
    this.#selfId = o.selfId
    this.#join = o.join
    this.#known = new Set(o.allow ?? [])
    this.#swimConfig = { protocolPeriodMs: o.protocolPeriodMs ?? SWIM_DEFAULTS.protocolPeriodMs, maxPeers: o.maxPeers ?? SWIM_DEFAULTS.maxPeers, reapAfterMs: o.reapAfterMs ?? SWIM_DEFAULTS.reapAfterMs }
    const r = o.routing
    if (r !== undefined) {
      if (r.signer.id !== o.selfId) throw new RangeError('routing.signer.id must be the node id')
      this.#routing = new RoutingService({
        ...r.tuning,
        signer: r.signer,
        // Wall clock, like SWIM incarnations: a restarted node advertises above its old LSAs still in flight.
        initialSeq: Date.now(),
        routes: { k: r.k, maxHops: r.maxHops },
      })
      this.#pathPool = r.pathPool ?? new PathPool()
    }
  }

  /** Counters of link-state routing (undefined without routing). */
  get routingStats (): RoutingService['stats'] | undefined { return this.#routing?.stats }

  async collectGarbage (): Promise<HeapAfterGc | null> { return collectGarbage() }

  async routingCounters (): Promise<RoutingService['stats'] | undefined> {
    const s = this.#routing?.stats
    return s === undefined ? undefined : { ...s, dropped: { ...s.dropped } }
  }

  // ---- membership (SWIM over the node's existing connections) ----

  /** The dataDir lock is another process's now (keepLockFresh): tell the host, now or once it has called in. */
  lockLost (why: string): void {
    if (this.#host === undefined) { this.#lockLost = why; return }
    void Promise.resolve(this.#host.lockLost(why)).catch(() => {})
  }

  /** The dataDir lock file was missing and is ours again (keepLockFresh): the host logs it (dropped before it calls in). */
  lockRecreated (why: string): void {
    void Promise.resolve(this.#host?.lockRecreated(why)).catch(() => {})
  }

  async startMembership (addresses: string[], host: RouterHostCallbacks): Promise<void> {
    this.#host = host
    if (this.#lockLost !== undefined) this.lockLost(this.#lockLost)
    this.#settledSince = performance.now()
    this.#addresses = addresses
    const period = this.#swimConfig.protocolPeriodMs
    this.#swim = new Swim({
      ...SWIM_DEFAULTS,
      selfId: this.#selfId,
      // Wall-clock incarnation: a restarted node (same id from its dataDir) comes back higher.
      incarnation: Date.now(),
      addresses,
      protocolPeriodMs: period,
      // Below the period at any interval (intervalMs may be as low as 10 ms).
      probeTimeoutMs: Math.max(Math.min(10, period - 1), Math.round(period * 0.3)),
      maxPeers: this.#swimConfig.maxPeers,
      reapAfterMs: this.#swimConfig.reapAfterMs,
      // A dial that neither links nor reports failure is given up after a few
      // periods (failures back off from 1 s: Swim.dialFailed); at most 10 s,
      // however slow the heartbeat (SWIM's period follows it).
      dialRetryMs: Math.min(period * 5, 10_000),
      random: Math.random,
    }, performance.now())
    // Links that came up before membership started.
    for (const e of this.#links.entries()) if (e.up) this.#memberLinked(e.peerId, [])
    this.#pump()
    // Routes computed before the host listened: all of them are new to it.
    const rt = this.#routing
    if (rt !== undefined && rt.table.size > 0) {
      const routes = rt.routeInfos()
      this.#notifyHost(routes, routes.map((x) => ({ to: x.to, via: x.via, previousVia: undefined })))
    }
  }

  /** A link-state advertisement from a linked peer. */
  async routing (from: string, payload: Uint8Array | Uint8Array[]): Promise<void> {
    const rt = this.#routing
    if (rt === undefined) return
    const now = performance.now()
    for (const p of Array.isArray(payload) ? payload : [payload]) rt.receive(from, p, now)
    this.#routingPump()
  }

  // ---- link-state routing (the sans-IO RoutingService, driven here) ----

  /** Drain the routing core's outputs, then arm one timer for its next deadline. */
  #routingPump (): void {
    const rt = this.#routing
    if (rt === undefined) return
    // LSAs for the same neighbour leave in one WebSocket message, and those for
    // all neighbours on an IO worker in one control-plane call (a flood reaches
    // every neighbour: a call each was most of a hub's garbage per join).
    const out = new Map<string, Uint8Array[]>()
    for (let o = rt.poll(); o !== undefined; o = rt.poll()) {
      if (o.kind !== 'send') { this.#routingAct(o); continue }
      let list = out.get(o.to)
      if (list === undefined) { list = []; out.set(o.to, list) }
      list.push(o.payload)
    }
    const byWorker = new Map<number, Array<{ to: string; payloads: Uint8Array[] }>>()
    for (const [to, payloads] of out) {
      const e = this.#links.upOf(to)
      if (e === undefined) continue
      let batch = byWorker.get(e.worker)
      if (batch === undefined) { batch = []; byWorker.set(e.worker, batch) }
      batch.push({ to, payloads })
    }
    for (const [index, batch] of byWorker) {
      void this.#workers.get(index)?.sendRoutingMany(batch).then((failed) => { for (const p of failed) this.#resyncLater(p) }, () => {})
    }
    const at = rt.nextDeadline() ?? Infinity
    if (at === this.#routingTimerAt) return
    clearTimeout(this.#routingTimer)
    this.#routingTimerAt = at
    if (!Number.isFinite(at)) return
    this.#routingTimer = setTimeout(() => {
      this.#routingTimerAt = Infinity
      this.#routing?.handleTimeout(performance.now())
      this.#routingPump()
    }, Math.max(0, at - performance.now()))
    this.#routingTimer.unref()
  }

  /**
   * LSAs to linked `peerId` could not go: send it our whole database again
   * after RESYNC_DELAY_MS, while it is still linked (again if that fails too).
   */
  #resyncLater (peerId: string): void {
    if (this.#resyncs.has(peerId) || this.#left) return
    const t = setTimeout(() => {
      this.#resyncs.delete(peerId)
      const rt = this.#routing
      if (rt === undefined || this.#left || this.#links.upOf(peerId) === undefined) return
      rt.resync(peerId, performance.now())
      this.#routingPump()
    }, RESYNC_DELAY_MS)
    t.unref()
    this.#resyncs.set(peerId, t)
  }

  /** A routing output other than a send (#routingPump batches those per IO worker). */
  #routingAct (o: Exclude<RoutingOutput, { kind: 'send' }>): void {
    switch (o.kind) {
      case 'compute':
        void this.#compute(o.version, o.graph)
        break
      case 'routes':
        this.#notifyHost(o.routes, o.changes)
        this.#pushForwarding(o.forwarding)
        break
    }
  }

  /** k-shortest paths on the pool (large graphs) or inline, then back into the core. */
  async #compute (version: number, graph: Parameters<typeof compactGraph>[0]): Promise<void> {
    const rt = this.#routing!
    const opts = rt.routeOptions
    const cg = compactGraph(graph)
    let table
    try {
      const paths = await this.#pathPool!.kShortestToAll(cg, rt.selfId, opts.k)
      table = buildRouteTable(rt.selfId, cg, paths, opts)
    } catch {
      // The pool failed (or is gone): compute here rather than route on a stale table.
      try { table = computeRoutes(rt.selfId, cg, opts) } catch { rt.computeFailed(version, performance.now()); this.#routingPump(); return }
    }
    rt.routesComputed(version, table, performance.now())
    this.#routingPump()
  }

  #notifyHost (routes: Parameters<RouterHostCallbacks['routes']>[0], changes: Parameters<RouterHostCallbacks['routes']>[1]): void {
    const host = this.#host
    if (host === undefined) return // delivered in full by startMembership
    void Promise.resolve(host.routes(routes, changes)).catch(() => {})
  }

  /** Every IO worker forwards by the same table. */
  #pushForwarding (table: ForwardingEntry[]): void {
    for (const w of this.#workers.values()) void w.setRoutes(table).catch(() => {})
  }

  /** Tell the routing core whether `peerId` is linked now (any up connection). */
  #syncNeighbor (peerId: string): void {
    const rt = this.#routing
    if (rt === undefined) return
    const up = this.#links.upOf(peerId) !== undefined
    if (up) rt.linkUp(peerId, performance.now())
    else rt.linkDown(peerId, performance.now())
    this.#routingPump()
  }

  async membership (from: string, payload: Uint8Array): Promise<void> {
    const swim = this.#swim
    if (swim === undefined) return
    let raw: unknown
    try { raw = decodeControl(payload) } catch { return }
    const msg = parseSwimMessage(raw)
    if (msg === undefined) return
    swim.handleMessage(from, msg, performance.now())
    this.#pump()
  }

  /** Announce our leave and resolve once the announcements are on the sockets (close comes after). */
  async leave (): Promise<void> {
    this.#left = true
    for (const id of [...this.#forgetRetry.keys()]) this.#stopForgetting(id)
    const sends: Array<Promise<unknown>> = []
    const rt = this.#routing
    if (rt !== undefined && !rt.left) {
      // Flush our LSA so every node drops it now, not after max age.
      rt.leave(performance.now())
      for (let o = rt.poll(); o !== undefined; o = rt.poll()) {
        if (o.kind !== 'send') continue
        const w = this.#workerOf(o.to)
        if (w !== undefined) sends.push(w.sendRouting(o.to, o.payload).catch(() => false))
      }
      clearTimeout(this.#routingTimer)
      this.#routingTimerAt = Infinity
      for (const t of this.#resyncs.values()) clearTimeout(t)
      this.#resyncs.clear()
    }
    const swim = this.#swim
    if (swim === undefined) { await Promise.all(sends); return }
    swim.leave(performance.now())
    for (let o = swim.poll(); o !== undefined; o = swim.poll()) {
      if (o.kind === 'send') {
        const w = this.#workerOf(o.to)
        if (w !== undefined) sends.push(w.sendMembership(o.to, membershipPayload(o.msg)).catch(() => false))
      }
    }
    clearTimeout(this.#timer)
    this.#swim = undefined // no more probing once we have left
    await Promise.all(sends)
  }

  #memberLinked (peerId: string, listen: string[]): void {
    const swim = this.#swim
    if (swim === undefined) return
    const now = performance.now()
    swim.addMember({ id: peerId, addresses: listen }, now)
    swim.setLinked(peerId, true, now)
  }

  /** Drain SWIM's outputs, then sleep until its next deadline. */
  #pump (): void {
    const swim = this.#swim
    if (swim === undefined) return
    for (let o = swim.poll(); o !== undefined; o = swim.poll()) this.#act(o)
    clearTimeout(this.#timer)
    const at = swim.nextDeadline()
    if (!Number.isFinite(at)) return
    this.#timer = setTimeout(() => {
      this.#swim?.tick(performance.now())
      this.#pump()
    }, Math.max(0, at - performance.now()))
    this.#timer.unref()
  }

  #act (o: SwimOutput): void {
    switch (o.kind) {
      case 'send': {
        // A ping with nothing to piggyback, to a member whose link the IO
        // worker's heartbeats call healthy (a beat answered within
        // missesUnhealthy intervals): that link already proves what the ping
        // would, so most such pings are acked here (a round trip and four
        // control-plane messages saved per probe). Not all: the ack is how
        // the *member's* news reaches us, and it cannot know we skipped it.
        // So pings go over the network while membership is settling (the
        // first LOCAL_ACK_QUIET_PERIODS periods after start, or after any
        // member changed state here), and every LOCAL_ACK_EVERY-th ping to a
        // member goes anyway. Pings that carry gossip, and pings to a member
        // whose beats are missing, always go.
        if (o.msg.t === 'ping' && o.msg.gossip.length === 0 && this.#localAckAllowed(o.to)) {
          const swim = this.#swim
          const seq = o.msg.seq
          const from = o.to
          this.localAcks++
          // Not re-entrantly: #pump is draining SWIM's outputs right now.
          queueMicrotask(() => {
            if (swim === undefined || this.#swim !== swim) return
            swim.handleMessage(from, { t: 'ack', seq, gossip: [] }, performance.now())
            this.#pump()
          })
          break
        }
        const w = this.#workerOf(o.to)
        if (w !== undefined) void w.sendMembership(o.to, membershipPayload(o.msg)).catch(() => {})
        break
      }
      case 'member':
        this.#settledSince = performance.now() // news: let acks carry it for a while
        if (o.member.state === 'alive') this.#stopForgetting(o.member.id)
        void Promise.resolve(this.#host?.member({ id: o.member.id, state: o.member.state, previous: o.previous, addresses: o.member.addresses, incarnation: o.member.incarnation })).catch(() => {})
        break
      case 'status':
        void Promise.resolve(this.#host?.status(o.status)).catch(() => {})
        break
      case 'dial': {
        // A peer whose first SWIM message beat its linkUp looks unlinked to SWIM: any connection to it
        // already claimed here (handshaking or up) means it is linked — a second dial would make a
        // duplicate that could displace the established link and lose the frames on it.
        if (this.#links.ofPeer(o.id).length > 0) break
        // One side dials: the smaller id (a dial-only node always dials, it cannot be dialed).
        // Both dialing at once would only race into the duplicate rule.
        if (this.#addresses.length > 0 && this.#selfId > o.id) break
        // Not linked, for whatever reason (refused, the IO worker gone or restarting and the call failed, no
        // worker to ask): SWIM tries again after a short backoff (from 1 s). Left pending, the member waited a
        // whole dialRetryMs (5 protocol periods, up to 10 s) after an IO worker crash.
        const swim = this.#swim
        let settled = false
        const failed = (): void => {
          if (settled) return
          settled = true
          // Never re-entrantly: #pump may be draining SWIM's outputs right now.
          queueMicrotask(() => {
            if (swim === undefined || this.#swim !== swim) return
            swim.dialFailed(o.id, performance.now())
            this.#pump()
          })
        }
        const url = o.addresses[0]
        const w = this.#workers.get(0)
        if (url === undefined || w === undefined) { failed(); break }
        // A call to a worker that dies never settles (comlink over its dead port): releaseWorker fails it.
        const inFlight = this.#discovering
        inFlight.add(failed)
        void w.discover(url, o.id).then((linked) => {
          inFlight.delete(failed)
          if (!linked) failed()
        }, () => { inFlight.delete(failed); failed() })
        break
      }
      case 'forget':
        // Dead or left for reapAfterMs (delivery.forgetAfterMs): the host may drop what it keeps for the peer.
        this.#forgetPeer(o.id, 0)
        break
    }
  }

  /** Discovery dials in flight on IO worker 0: each one's "it failed" (see the 'dial' output). */
  readonly #discovering = new Set<() => void>()

  /** Members SWIM forgot whose state the host still keeps (in use): the next ask. */
  readonly #forgetRetry = new Map<string, NodeJS.Timeout>()

  /**
   * Ask the host to drop what it keeps for a member SWIM forgot; while it
   * cannot (messages still queued to the peer, a relay still attached), ask
   * again with backoff (FORGET_RETRY_MS doubling up to FORGET_RETRY_MAX_MS),
   * until it has or the peer is a member again. The host runs no timer for it.
   */
  #forgetPeer (id: string, attempt: number): void {
    this.#stopForgetting(id)
    const host = this.#host
    if (host === undefined || this.#left || this.#memberAgain(id)) return
    const again = (dropped: boolean): void => { if (!dropped) this.#askLater(id, attempt + 1) }
    // A failed call is a "not yet": the next ask may find the host able.
    void Promise.resolve(host.forgotten(id)).then(again, () => { again(false) })
  }

  /** Schedule ask number `attempt` (1, 2, …: FORGET_RETRY_MS doubling up to FORGET_RETRY_MAX_MS), unless one is, or no ask is needed. */
  #askLater (id: string, attempt: number): void {
    if (this.#left || this.#forgetRetry.has(id) || this.#memberAgain(id)) return
    const t = setTimeout(() => { this.#forgetRetry.delete(id); this.#forgetPeer(id, attempt) }, Math.min(FORGET_RETRY_MAX_MS, this.#forgetRetryMs * 2 ** (attempt - 1)))
    t.unref()
    this.#forgetRetry.set(id, t)
  }

  /** The forgotten member is alive in SWIM again: nothing to drop. */
  #memberAgain (id: string): boolean { return this.#swim?.member(id)?.state === 'alive' }

  /** leave() ran: no more asks (the node is closing). */
  #left = false

  /** Members whose state the host still keeps, with an ask scheduled (diagnostics and tests). */
  get forgetsPending (): number { return this.#forgetRetry.size }

  #stopForgetting (id: string): void {
    clearTimeout(this.#forgetRetry.get(id))
    this.#forgetRetry.delete(id)
  }

  async forgetLater (id: string): Promise<void> {
    this.#askLater(id, 1)
  }

  /** The IO worker holding an up link to `peerId`. */
  #workerOf (peerId: string): Remote<IoPeerControl> | undefined {
    const e = this.#links.upOf(peerId)
    return e === undefined ? undefined : this.#workers.get(e.worker)
  }

  /** IO workers of the node, as far as seen (highest index + 1). */
  #ioWorkers = 0

  async attachWorker (index: number, port: MessagePort, apiPort?: MessagePort): Promise<void> {
    this.#ioWorkers = Math.max(this.#ioWorkers, index + 1)
    const w = wrap<IoPeerControl>(nodeEndpoint(port))
    this.#workers.set(index, w)
    if (apiPort !== undefined) this.serve(apiPort)
    // A new or restarted worker forwards by the current table from its start (the call waits in the port).
    const rt = this.#routing
    if (rt !== undefined && rt.table.size > 0) void w.setRoutes(rt.forwarding()).catch(() => {})
    void this.#pushLinks()
  }

  /**
   * Tell every IO worker which worker owns each link (relaying between IO
   * workers, io-worker.ts). Only with several workers: one knows its own.
   * Resolves when all took it, or after PUSH_LINKS_WAIT_MS (a worker that is
   * dying must not hold a claim).
   */
  async #pushLinks (): Promise<void> {
    if (this.#ioWorkers < 2) return
    const links = this.#links.entries().map((e) => ({ peerId: e.peerId, worker: e.worker, connKey: e.connKey, dialerId: e.dialerId, up: e.up }))
    let t: NodeJS.Timeout | undefined
    await Promise.race([
      Promise.all([...this.#workers.values()].map(async (w) => { await w.setLinks(links).catch(() => {}) })),
      new Promise<void>((resolve) => { t = setTimeout(resolve, PUSH_LINKS_WAIT_MS); t.unref() }),
    ])
    clearTimeout(t)
  }

  /** Expose this service on another port (one per IO worker). */
  serve (port: MessagePort): void {
    expose(this, nodeEndpoint(port))
  }

  async claim (c: LinkClaim): Promise<ClaimResult> {
    // Join policy 'closed': no new members — only peers already known may connect in.
    if (this.#join === 'closed' && c.dialerId !== this.#selfId && !this.#known.has(c.peerId)) {
      return { ok: false, code: 'unauthorized', reason: `join policy is 'closed': ${c.peerId} is not a member of this mesh` }
    }
    const r = this.#links.claim({ connKey: c.connKey, worker: c.worker, peerId: c.peerId, dialerId: c.dialerId })
    if (!r.ok) return { ok: false, code: 'duplicate', reason: r.reason }
    // A dropped duplicate may have been the peer's up link. Routing (like SWIM) keeps the peer linked
    // across the swap: the survivor's linkUp, or its release if its handshake fails, settles it.
    // The loser must stop consuming the peer's outbound ring before the winner starts (SPSC).
    await Promise.all(r.drop.map(async (d) => {
      const w = this.#workers.get(d.worker)
      if (w === undefined) return
      try { await w.dropConnection(d.connKey, 'duplicate') } catch { /* worker gone */ }
    }))
    // Likewise a routed actor of the peer on another IO worker (see IoPeerControl.setLinks).
    await this.#pushLinks()
    return { ok: true }
  }

  async linkUp (connKey: string, listen: string[] = []): Promise<void> {
    const e = this.#links.linkUp(connKey)
    if (e === undefined) return
    void this.#pushLinks()
    this.#known.add(e.peerId)
    this.#memberLinked(e.peerId, listen)
    this.#pump()
    this.#syncNeighbor(e.peerId)
  }
  /**
   * Measurements of live links (IO worker, every few seconds while heartbeats
   * run): they set the links' advertised costs (RoutingService.linkStats).
   * A connection not (or no longer) up is skipped.
   */
  async linkStats (reports: LinkStatsReport[]): Promise<void> {
    const rt = this.#routing
    if (rt === undefined) return
    const now = performance.now()
    for (const r of reports) {
      const e = this.#links.get(r.connKey)
      if (e === undefined || !e.up) continue
      rt.linkStats(e.peerId, r, now)
    }
    this.#routingPump()
  }

  async linkHealth (connKey: string, healthy: boolean): Promise<void> {
    if (healthy) this.#unhealthyLinks.delete(connKey)
    else if (this.#links.get(connKey) !== undefined) this.#unhealthyLinks.add(connKey)
  }

  /** Connections whose heartbeats say unhealthy (missed beats); every other up link answers for its peer. */
  readonly #unhealthyLinks = new Set<string>()
  /** SWIM direct pings answered from the link's heartbeat instead of the network (see #act). */
  localAcks = 0

  /** Membership last changed here (or started): local acks wait LOCAL_ACK_QUIET_PERIODS after it. */
  #settledSince = Infinity
  readonly #pingsTo = new Map<string, number>()

  /** See #act 'send': a quiet membership, a heartbeat-healthy link, and not this member's every-Nth ping. */
  #localAckAllowed (peerId: string): boolean {
    const period = this.#swimConfig.protocolPeriodMs
    if (!(performance.now() - this.#settledSince >= LOCAL_ACK_QUIET_PERIODS * period)) return false
    if (!this.#heartbeatHealthy(peerId)) return false
    const n = (this.#pingsTo.get(peerId) ?? 0) + 1
    this.#pingsTo.set(peerId, n % LOCAL_ACK_EVERY)
    return n % LOCAL_ACK_EVERY !== 0
  }

  /** Whether an up link to `peerId` is healthy by its heartbeats (recent proof of life). */
  #heartbeatHealthy (peerId: string): boolean {
    for (const e of this.#links.ofPeer(peerId)) if (e.up && !this.#unhealthyLinks.has(e.connKey)) return true
    return false
  }

  async release (connKey: string): Promise<void> {
    this.#unhealthyLinks.delete(connKey)
    const e = this.#links.release(connKey)
    if (e !== undefined && this.#links.ofPeer(e.peerId).length === 0) this.#pingsTo.delete(e.peerId)
    if (e === undefined) return
    void this.#pushLinks()
    this.#unlinkIfLast(e.peerId)
    this.#syncNeighbor(e.peerId)
  }

  async releaseWorker (index: number): Promise<void> {
    // Its port is dead until attachWorker brings the restarted one: calls to it would never settle.
    this.#workers.delete(index)
    // Discovery dials go through worker 0: those it had in flight failed with it.
    if (index === 0) {
      const failed = [...this.#discovering]
      this.#discovering.clear()
      for (const f of failed) f()
    }
    for (const e of this.#links.releaseWorker(index)) {
      this.#unlinkIfLast(e.peerId)
      this.#syncNeighbor(e.peerId)
    }
    void this.#pushLinks()
  }

  #unlinkIfLast (peerId: string): void {
    if (this.#swim === undefined) return
    if (this.#links.upOf(peerId) !== undefined) return
    this.#swim.setLinked(peerId, false, performance.now())
    this.#pump()
  }

  async links (): Promise<LinkSnapshot[]> {
    return this.#links.entries().map((e) => ({ peerId: e.peerId, worker: e.worker, connKey: e.connKey, dialerId: e.dialerId, up: e.up }))
  }
}
