import { wrap, expose, type Remote } from 'comlink'
import type { MessagePort } from 'node:worker_threads'
import type { ClaimResult, IoPeerControl, LinkClaim, LinkSnapshot, RouterApi, RouterHostCallbacks } from '../actor/protocol.js'
import { Swim, SWIM_DEFAULTS, parseSwimMessage, type SwimOutput } from '../membership/swim.js'
import { encodeControl, decodeControl } from '../codec/control.js'
import { nodeEndpoint } from '../actor/endpoint.js'
import { LinkRegistry } from './link-registry.js'

/**
 * The routing actor's worker-side service. For now it owns the direct-link
 * table and the duplicate-connection rule; membership and link-state routing
 * grow here (issues 3 and 5).
 */
export class RouterService implements RouterApi {
  readonly #links = new LinkRegistry()
  readonly #workers = new Map<number, Remote<IoPeerControl>>()
  readonly #selfId: string
  readonly #join: 'open' | 'key' | 'closed'
  /** Peers that were members (linked) at some point, plus the allow list: who may come back under join 'closed'. */
  readonly #known: Set<string>

  readonly #swimConfig: { protocolPeriodMs: number; maxPeers: number }
  #swim: Swim | undefined
  #addresses: string[] = []
  #host: RouterHostCallbacks | undefined
  #timer: NodeJS.Timeout | undefined

  constructor (o: { selfId: string; join: 'open' | 'key' | 'closed'; allow?: readonly string[] | undefined; protocolPeriodMs?: number; maxPeers?: number }) {
    this.#selfId = o.selfId
    this.#join = o.join
    this.#known = new Set(o.allow ?? [])
    this.#swimConfig = { protocolPeriodMs: o.protocolPeriodMs ?? SWIM_DEFAULTS.protocolPeriodMs, maxPeers: o.maxPeers ?? SWIM_DEFAULTS.maxPeers }
  }

  // ---- membership (SWIM over the node's existing connections) ----

  async startMembership (addresses: string[], host: RouterHostCallbacks): Promise<void> {
    this.#host = host
    this.#addresses = addresses
    const period = this.#swimConfig.protocolPeriodMs
    this.#swim = new Swim({
      ...SWIM_DEFAULTS,
      selfId: this.#selfId,
      // Wall-clock incarnation: a restarted node (same id from its dataDir) comes back higher.
      incarnation: Date.now(),
      addresses,
      protocolPeriodMs: period,
      probeTimeoutMs: Math.max(10, Math.round(period * 0.3)),
      maxPeers: this.#swimConfig.maxPeers,
      // Retry a failed discovery dial after a few periods, not the default 30 s.
      dialRetryMs: period * 5,
      random: Math.random,
    }, performance.now())
    // Links that came up before membership started.
    for (const e of this.#links.entries()) if (e.up) this.#memberLinked(e.peerId, [])
    this.#pump()
  }

  /** A link-state advertisement from a linked peer (link-state routing lands here). */
  async routing (_from: string, _payload: Uint8Array): Promise<void> {}

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
    const swim = this.#swim
    if (swim === undefined) return
    swim.leave(performance.now())
    const sends: Array<Promise<unknown>> = []
    for (let o = swim.poll(); o !== undefined; o = swim.poll()) {
      if (o.kind === 'send') {
        const w = this.#workerOf(o.to)
        if (w !== undefined) sends.push(w.sendMembership(o.to, encodeControl(o.msg)).catch(() => false))
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
        const w = this.#workerOf(o.to)
        if (w !== undefined) void w.sendMembership(o.to, encodeControl(o.msg)).catch(() => {})
        break
      }
      case 'member':
        void Promise.resolve(this.#host?.member({ id: o.member.id, state: o.member.state, previous: o.previous, addresses: o.member.addresses })).catch(() => {})
        break
      case 'status':
        void Promise.resolve(this.#host?.status(o.status)).catch(() => {})
        break
      case 'dial': {
        // A peer whose first SWIM message beat its linkUp looks unlinked to SWIM: any connection to it
        // already claimed here (handshaking or up) means it is linked — a second dial would make a
        // duplicate that could displace the established link and lose the frames on it.
        if (this.#links.entries().some((e) => e.peerId === o.id)) break
        // One side dials: the smaller id (a dial-only node always dials, it cannot be dialed).
        // Both dialing at once would only race into the duplicate rule.
        if (this.#addresses.length > 0 && this.#selfId > o.id) break
        const url = o.addresses[0]
        const w = this.#workers.get(0)
        if (url !== undefined && w !== undefined) void w.discover(url, o.id).catch(() => {})
        break
      }
      case 'forget':
        break
    }
  }

  /** The IO worker holding an up link to `peerId`. */
  #workerOf (peerId: string): Remote<IoPeerControl> | undefined {
    for (const e of this.#links.entries()) if (e.peerId === peerId && e.up) return this.#workers.get(e.worker)
    return undefined
  }

  async attachWorker (index: number, port: MessagePort, apiPort?: MessagePort): Promise<void> {
    this.#workers.set(index, wrap<IoPeerControl>(nodeEndpoint(port)))
    if (apiPort !== undefined) this.serve(apiPort)
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
    // The loser must stop consuming the peer's outbound ring before the winner starts (SPSC).
    await Promise.all(r.drop.map(async (d) => {
      const w = this.#workers.get(d.worker)
      if (w === undefined) return
      try { await w.dropConnection(d.connKey, 'duplicate') } catch { /* worker gone */ }
    }))
    return { ok: true }
  }

  async linkUp (connKey: string, listen: string[] = []): Promise<void> {
    const e = this.#links.linkUp(connKey)
    if (e === undefined) return
    this.#known.add(e.peerId)
    this.#memberLinked(e.peerId, listen)
    this.#pump()
  }
  async release (connKey: string): Promise<void> {
    const e = this.#links.release(connKey)
    if (e !== undefined) this.#unlinkIfLast(e.peerId)
  }

  async releaseWorker (index: number): Promise<void> {
    for (const e of this.#links.releaseWorker(index)) this.#unlinkIfLast(e.peerId)
  }

  #unlinkIfLast (peerId: string): void {
    if (this.#swim === undefined) return
    if (this.#links.entries().some((x) => x.peerId === peerId && x.up)) return
    this.#swim.setLinked(peerId, false, performance.now())
    this.#pump()
  }

  async links (): Promise<LinkSnapshot[]> {
    return this.#links.entries().map((e) => ({ peerId: e.peerId, worker: e.worker, connKey: e.connKey, dialerId: e.dialerId, up: e.up }))
  }
}
