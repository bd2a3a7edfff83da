/**
 * The routing actor's link-state glue, sans-IO (STYLE.md §1): it owns the
 * node's {@link LinkStateDb}, turns link up/down events into (rate-limited)
 * originations, floods what the database says to flood, asks for route
 * computations (debounced) and turns their results into the host's route
 * list, `route:change` diffs and the IO workers' forwarding table.
 *
 * No ports, no timers, no clock: the owner (router-service.ts) passes `now`
 * in, drains {@link RoutingService.poll}, and calls
 * {@link RoutingService.handleTimeout} at {@link RoutingService.nextDeadline}.
 *
 * ```
 *  inputs                          outputs (poll)
 *  linkUp(peer)   ─┐               send      { to, payload }   an encoded LSA for one linked peer
 *  linkDown(peer) ─┤               compute   { version, graph } run k-shortest paths (inline or pool),
 *  linkStats(peer,─┼─▶ LinkStateDb                              then routesComputed(version, table)
 *    stats)        │               routes    { routes, changes, forwarding }  the table changed
 *  receive(from,  ─┘
 *    payload)
 *  handleTimeout(now)
 *  routesComputed(version, table)
 *  leave(now)
 * ```
 *
 * Why the computation is an output and not a call: large topologies go to a
 * piscina pool (path-pool.ts), which is asynchronous; keeping the await in
 * the owner keeps this class deterministic and lets tests compute inline.
 * One computation is in flight at a time; changes meanwhile schedule the
 * next one.
 *
 * Our own links are known here first and for sure, so the graph handed to
 * the computation uses them as they are NOW, not as our last LSA or the
 * peers' LSAs say: a new direct link is a route at once (before the peer's
 * LSA arrives to pass the two-way check, see route-table.ts
 * `topologyFromLsas`), and a link that went down stops drawing traffic at
 * once (before our re-origination floods). Every other node's links need
 * both ends to advertise them.
 *
 * Rate limits (OSPF's MinLSInterval, simplified): the first change arms a
 * deadline; further changes before it do not push it back, so a burst of
 * link events costs one LSA and one computation, and a steady stream of
 * changes cannot starve them.
 *
 * @module
 */
import type { ForwardingEntry } from '../actor/protocol.js'
import type { RouteInfo } from '../events.js'
import { compareIds, setEdge, type Graph } from '../routing/graph.js'
import { DEFAULT_COST_WEIGHTS, linkCost, significantCostChange, type CostWeights, type LinkStats } from '../routing/link-cost.js'
import { LinkStateDb, type LsdbOutput } from '../routing/link-state-db.js'
import { decodeLsa, encodeLsa, sameLinks, type LsaLink, type LsaSigner } from '../routing/lsa.js'
import { diffRoutes, topologyFromLsas, type RouteOptions, type RouteTable } from '../routing/route-table.js'

/** Options of a {@link RoutingService}. Durations in ms. */
export interface RoutingServiceOptions {
  /** Signs this node's LSAs; its id is this node's peer id. */
  signer: LsaSigner
  /** Sequence number of the first LSA (use `Date.now()`, so a restarted node advertises above its old LSAs). */
  initialSeq: number
  /** `routing.k` and `routing.maxHops`. */
  routes: RouteOptions
  /**
   * Weights turning a link's measured RTT, loss and queue depth into the
   * cost it is advertised at (link-cost.ts; `routing.cost` in the mesh
   * options). A link costs `linkCost({}, weights)` (the assumed RTT) until
   * its first {@link RoutingService.linkStats}. @default DEFAULT_COST_WEIGHTS
   */
  costWeights?: CostWeights
  /**
   * A fixed cost for every direct link, ignoring {@link RoutingService.linkStats}
   * (tests that want hop-count routing). @default undefined (measured costs)
   */
  linkCost?: number
  /** Delay from a link coming up to the LSA that advertises it (bursts of link-ups share one LSA). @default 15 */
  originateDelayMs?: number
  /** Delay from a link going down to the LSA without it, and to the recomputation (a worker crash drops many links in one go). @default 1 */
  linkDownDelayMs?: number
  /** Delay from a database change to the route recomputation. @default 15 */
  computeDelayMs?: number
  /**
   * Least time from the start of one route computation to the next, except
   * after a link down (OSPF's SPF hold time, simplified): a node joining
   * brings its link-up, its LSA and its neighbours' LSAs within a few hundred
   * ms, and a hub recomputed (and pushed an O(N) table to every thread) for
   * each of them — a burst now costs about one computation per interval.
   * The first change after a quiet spell is computed at the usual delay.
   * @default 100
   */
  minComputeIntervalMs?: number
  /**
   * Least time between two of our LSAs for link-ups (OSPF's MinLSInterval):
   * a node joining a full mesh brings up many links within a second, and
   * an LSA per 15 ms window flooded over every link of every node was a
   * storm (16 nodes in one process starved their own handshakes). Link
   * downs are not held back: they drive convergence. @default 250
   */
  minOriginateIntervalMs?: number
  /**
   * Least time from our last LSA to one for measured cost changes
   * ({@link RoutingService.linkStats}): they coalesce, and a host whose
   * heartbeats all slow down at once (its CPU is starved) does not flood
   * the mesh with LSAs while it struggles. Link ups and downs, and a link's
   * first measurement, are not held back by it. @default 30000
   */
  costOriginateIntervalMs?: number
  /** LSAs not refreshed for this long age out. @default 120000 (link-state-db.ts) */
  maxAgeMs?: number
  /** This node re-originates this often. @default 40000 (link-state-db.ts) */
  refreshMs?: number
  /** Fraction of refreshMs by which each LSA refresh comes early, at random (LinkStateDbConfig.refreshJitter). @default REFRESH_JITTER */
  refreshJitter?: number
}

/** Defaults of the optional {@link RoutingServiceOptions}. */
export const ROUTING_SERVICE_DEFAULTS = {
  originateDelayMs: 15,
  linkDownDelayMs: 1,
  computeDelayMs: 15,
  minComputeIntervalMs: 100,
  minOriginateIntervalMs: 250,
  costOriginateIntervalMs: 30_000,
} as const

/** A destination whose next hop changed (`via` undefined: lost; `previousVia` undefined: new). */
export interface RouteChange {
  readonly to: string
  readonly via: string | undefined
  readonly previousVia: string | undefined
}

/** What the owner must do; see the module doc. */
export type RoutingOutput =
  | { readonly kind: 'send'; readonly to: string; readonly payload: Uint8Array }
  | { readonly kind: 'compute'; readonly version: number; readonly graph: Graph }
  | { readonly kind: 'routes'; readonly routes: RouteInfo[]; readonly changes: RouteChange[]; readonly forwarding: ForwardingEntry[] }

/** Counters of a {@link RoutingService} (for logs, metrics and tests). */
export interface RoutingStats {
  /** LSAs received (well-formed or not). */
  received: number
  /** Received LSAs installed (new, newer, or flushes). */
  installed: number
  /** Received payloads that did not decode as an LSA. */
  malformed: number
  /** Received LSAs dropped, by reason (link-state-db.ts `DropReason`). */
  dropped: Record<string, number>
  /** LSAs this node originated (refreshes included). */
  originated: number
  /** Route computations asked for. */
  computations: number
  /** Route tables that differed from the previous one. */
  tableChanges: number
  /** Measured link costs that changed enough to re-advertise (see link-cost.ts `significantCostChange`). */
  costChanges: number
}

/** Refreshes come up to a quarter early (in 30..40 s with the default refreshMs): nodes started together spread theirs. */
export const REFRESH_JITTER = 0.25

/** Sans-IO link-state routing of one node; see the module doc. */
export class RoutingService {
  readonly selfId: string
  /** `k` and `maxHops` for the computations this service asks for. */
  readonly routeOptions: Readonly<RouteOptions>
  readonly stats: RoutingStats = { received: 0, installed: 0, malformed: 0, dropped: {}, originated: 0, computations: 0, tableChanges: 0, costChanges: 0 }
  readonly #db: LinkStateDb
  readonly #fixedCost: number | undefined
  readonly #weights: CostWeights
  readonly #originateDelay: number
  readonly #minOriginateInterval: number
  readonly #costOriginateInterval: number
  #lastOriginated = -Infinity
  readonly #downDelay: number
  readonly #computeDelay: number
  readonly #minComputeInterval: number
  /** When the last computation was asked for. */
  #lastComputed = -Infinity
  /** Direct links up now: peer → cost. */
  readonly #links = new Map<string, number>()
  /** Linked peers whose link has had a measurement report (see linkStats). */
  readonly #measured = new Set<string>()
  readonly #out: RoutingOutput[] = []
  #originateAt = Infinity
  #computeAt = Infinity
  /** Version of the computation in flight, if any. */
  #inFlight: number | undefined
  #computeVersion = 0
  #table: RouteTable = new Map()
  #left = false

  /** @throws RangeError on a bad option (named in the message). */
  constructor (o: RoutingServiceOptions) {
    this.selfId = o.signer.id
    this.#db = new LinkStateDb({
      signer: o.signer,
      initialSeq: o.initialSeq,
      ...(o.maxAgeMs === undefined ? {} : { maxAgeMs: o.maxAgeMs }),
      ...(o.refreshMs === undefined ? {} : { refreshMs: o.refreshMs }),
      refreshJitter: o.refreshJitter ?? REFRESH_JITTER,
    })
    for (const f of ['k', 'maxHops'] as const) {
      if (!Number.isSafeInteger(o.routes[f]) || o.routes[f] < 1) throw new RangeError(`routes.${f} must be an integer >= 1 (got ${String(o.routes[f])})`)
    }
    this.routeOptions = Object.freeze({ k: o.routes.k, maxHops: o.routes.maxHops })
    this.#fixedCost = o.linkCost
    if (o.linkCost !== undefined && !(Number.isFinite(o.linkCost) && o.linkCost > 0)) throw new RangeError(`linkCost must be a finite number > 0 (got ${String(o.linkCost)})`)
    this.#weights = o.costWeights ?? DEFAULT_COST_WEIGHTS
    this.#originateDelay = delay(o.originateDelayMs ?? ROUTING_SERVICE_DEFAULTS.originateDelayMs, 'originateDelayMs')
    this.#minOriginateInterval = delay(o.minOriginateIntervalMs ?? ROUTING_SERVICE_DEFAULTS.minOriginateIntervalMs, 'minOriginateIntervalMs')
    this.#costOriginateInterval = delay(o.costOriginateIntervalMs ?? ROUTING_SERVICE_DEFAULTS.costOriginateIntervalMs, 'costOriginateIntervalMs')
    this.#downDelay = delay(o.linkDownDelayMs ?? ROUTING_SERVICE_DEFAULTS.linkDownDelayMs, 'linkDownDelayMs')
    this.#computeDelay = delay(o.computeDelayMs ?? ROUTING_SERVICE_DEFAULTS.computeDelayMs, 'computeDelayMs')
    this.#minComputeInterval = delay(o.minComputeIntervalMs ?? ROUTING_SERVICE_DEFAULTS.minComputeIntervalMs, 'minComputeIntervalMs')
  }

  /** The link-state database (read it; do not feed it directly). */
  get db (): LinkStateDb { return this.#db }

  /** The route table last installed (from the last computation's result). */
  get table (): RouteTable { return this.#table }

  /** True after {@link leave}: every input is ignored. */
  get left (): boolean { return this.#left }

  /** Peers linked directly now. */
  links (): string[] { return [...this.#links.keys()] }

  /** The forwarding table of the installed routes (what the IO workers hold). */
  forwarding (): ForwardingEntry[] { return toForwarding(this.#table) }

  /** The host's view of the installed routes. */
  routeInfos (): RouteInfo[] { return toHostRoutes(this.#table) }

  /** Next output, or undefined when there is none. */
  poll (): RoutingOutput | undefined { return this.#out.shift() }

  /**
   * A direct link to `peer` is up (its first connection). The peer gets our
   * whole database now; our LSA naming it follows after `originateDelayMs`;
   * the routes are recomputed at once (the link is usable before the peer's
   * LSA arrives), or at the end of the `minComputeIntervalMs` hold when a
   * computation just ran. A second call for a linked peer does nothing.
   */
  linkUp (peer: string, now: number): void {
    if (this.#left || peer === this.selfId || this.#links.has(peer)) return
    this.#links.set(peer, this.#fixedCost ?? linkCost({}, this.#weights))
    this.#apply(this.#db.addNeighbor(peer, now), now)
    this.#originateAt = Math.min(this.#originateAt, Math.max(now + this.#originateDelay, this.#lastOriginated + this.#minOriginateInterval))
    this.#computeSoon(now, this.#downDelay)
  }

  /**
   * LSAs sent to linked `peer` could not go (its connection was being
   * replaced, say, with the link up all along): give it our whole database
   * again, as at link-up. Flooding does not cover for the loss: a node does
   * not pass an LSA on to the neighbours its origin lists (they had it from
   * the origin), so a copy the origin failed to deliver is not sent by
   * anyone else. Ignored for a peer not linked now (its next link-up syncs).
   */
  resync (peer: string, now: number): void {
    if (this.#left || !this.#links.has(peer)) return
    this.#apply(this.#db.addNeighbor(peer, now), now)
  }

  /**
   * What the IO worker measured on the link to `peer` lately (RTT, loss,
   * bytes queued). The link's cost follows, but only a significant change
   * (link-cost.ts `significantCostChange`: hysteresis against RTT wobble) is
   * re-advertised (a link's first measurement at the link-up pace, later
   * changes at most once per `costOriginateIntervalMs`) and recomputed. Ignored for a
   * peer not linked now, and with a fixed `linkCost`.
   */
  linkStats (peer: string, stats: LinkStats, now: number): void {
    if (this.#left || this.#fixedCost !== undefined) return
    const previous = this.#links.get(peer)
    if (previous === undefined) return
    const cost = linkCost(stats, this.#weights)
    if (!significantCostChange(previous, cost, this.#weights)) { this.#measured.add(peer); return }
    this.#links.set(peer, cost)
    this.stats.costChanges++
    // A link's first measurement is news (a slow link found at link-up): the
    // usual link-up pace. Later changes wait out costOriginateIntervalMs.
    const first = !this.#measured.has(peer)
    this.#measured.add(peer)
    const interval = first ? this.#minOriginateInterval : Math.max(this.#minOriginateInterval, this.#costOriginateInterval)
    this.#originateAt = Math.min(this.#originateAt, Math.max(now + this.#originateDelay, this.#lastOriginated + interval))
    this.#computeSoon(now, this.#computeDelay)
  }

  /** The cost our next LSA gives the link to `peer` (undefined: not linked). */
  linkCostOf (peer: string): number | undefined { return this.#links.get(peer) }

  /**
   * The direct link to `peer` is down (its last connection closed). It stops
   * being a flooding target and a next hop at once; our LSA without it
   * follows after `linkDownDelayMs`.
   */
  linkDown (peer: string, now: number): void {
    if (this.#left || !this.#links.delete(peer)) return
    this.#measured.delete(peer)
    this.#db.removeNeighbor(peer)
    this.#originateAt = Math.min(this.#originateAt, now + this.#downDelay)
    this.#computeAt = Math.min(this.#computeAt, now + this.#downDelay)
  }

  /**
   * An encoded LSA arrived from `from` (a linked peer). Malformed payloads
   * and LSAs the database drops (stale, duplicate, forged, …) are counted,
   * nothing else: a bad LSA is not a reason to drop the link.
   */
  receive (from: string, payload: Uint8Array, now: number): void {
    if (this.#left) return
    this.stats.received++
    let lsa
    try { lsa = decodeLsa(payload) } catch { this.stats.malformed++; return }
    const before = this.#ownSeq()
    const r = this.#db.receive(lsa, from, now)
    if (r.action === 'installed') this.stats.installed++
    else if (r.reason !== undefined) this.stats.dropped[r.reason] = (this.stats.dropped[r.reason] ?? 0) + 1
    if (this.#ownSeq() !== before) this.stats.originated++ // an old incarnation's LSA came back: we re-originated above it
    this.#apply(r, now)
  }

  /** When {@link handleTimeout} is next due (ms), or undefined. */
  nextDeadline (): number | undefined {
    if (this.#left) return undefined
    let t = Math.min(this.#originateAt, this.#db.nextDeadline() ?? Infinity)
    if (this.#inFlight === undefined) t = Math.min(t, this.#computeAt)
    return t === Infinity ? undefined : t
  }

  /** Age LSAs out, refresh ours, originate and ask for a computation, as due at `now`. */
  handleTimeout (now: number): void {
    if (this.#left) return
    const dbAt = this.#db.nextDeadline()
    if (dbAt !== undefined && dbAt <= now) {
      const before = this.#ownSeq()
      this.#apply(this.#db.handleTimeout(now), now)
      if (this.#ownSeq() !== before) this.stats.originated++ // the periodic refresh
    }
    if (this.#originateAt <= now) {
      this.#originateAt = Infinity
      const links = this.#ownLinks()
      const held = this.#db.get(this.selfId)?.lsa.links
      // A link that went down and came back before the deadline changes nothing.
      if (held === undefined || !sameLinks(held, links)) {
        this.stats.originated++
        this.#lastOriginated = now
        // No recomputation: graph() takes our links from #links, not from our LSA.
        this.#apply({ ...this.#db.originate(links, now), changed: false }, now)
      }
    }
    if (this.#computeAt <= now && this.#inFlight === undefined) {
      this.#computeAt = Infinity
      this.#lastComputed = now
      const version = ++this.#computeVersion
      this.#inFlight = version
      this.stats.computations++
      this.#out.push({ kind: 'compute', version, graph: this.graph() })
    }
  }

  /**
   * The result of the computation `version` asked for (a table from
   * `computeRoutes`/`buildRouteTable` over its graph). When the table differs
   * from the installed one, a `routes` output follows. Results of an older
   * computation, or after {@link leave}, are ignored.
   */
  routesComputed (version: number, table: RouteTable, _now: number): void {
    if (this.#left || version !== this.#inFlight) return
    this.#inFlight = undefined
    const diff = diffRoutes(this.#table, table)
    this.#table = table
    if (!diff.changed) return
    this.stats.tableChanges++
    this.#out.push({
      kind: 'routes',
      routes: toHostRoutes(table),
      changes: diff.changes.map((c) => ({ to: c.to, via: c.via ?? undefined, previousVia: c.previousVia ?? undefined })),
      forwarding: toForwarding(table),
    })
  }

  /** The computation `version` failed: try again after `computeDelayMs`. */
  computeFailed (version: number, now: number): void {
    if (this.#left || version !== this.#inFlight) return
    this.#inFlight = undefined
    this.#computeAt = Math.min(this.#computeAt, now + this.#computeDelay)
  }

  /**
   * Leave gracefully: flush our LSA (every node drops it now rather than
   * after max age) and stop. The flush sends are the last outputs; later
   * inputs are ignored. Idempotent.
   */
  leave (now: number): void {
    if (this.#left) return
    // Only a node that advertised something has something to flush.
    if (this.#db.get(this.selfId) !== undefined) this.#apply(this.#db.leave(now), now)
    this.#left = true
    this.#originateAt = Infinity
    this.#computeAt = Infinity
    this.#inFlight = undefined
  }

  /**
   * The graph the next computation runs on: the LSAs with the two-way check,
   * and our own links as they are now (see the module doc). Nothing in it
   * comes from our own LSA, so originating it needs no recomputation.
   */
  graph (): Graph {
    const g = topologyFromLsas(this.#db.entries())
    const self = this.selfId
    g.set(self, new Map())
    for (const adj of g.values()) adj.delete(self)
    for (const [peer, cost] of this.#links) {
      setEdge(g, self, peer, cost)
      // Back to us at the cost the peer advertises; ours until its LSA names us.
      setEdge(g, peer, self, this.#db.get(peer)?.lsa.links.find((l) => l.peer === self)?.cost ?? cost)
    }
    return g
  }

  #ownSeq (): number | undefined { return this.#db.get(this.selfId)?.lsa.seq }

  #ownLinks (): LsaLink[] {
    // Sorted as an LSA holds them (by id), so sameLinks compares like with like.
    return [...this.#links].map(([peer, cost]) => ({ peer, cost })).sort((x, y) => compareIds(x.peer, y.peer))
  }

  /** Recompute after `delayMs`, but not within minComputeIntervalMs of the last computation. */
  #computeSoon (now: number, delayMs: number): void {
    this.#computeAt = Math.min(this.#computeAt, Math.max(now + delayMs, this.#lastComputed + this.#minComputeInterval))
  }

  #apply (out: LsdbOutput, now: number): void {
    // A flood sends one LSA to every neighbour: encode it once (the owner only reads payloads).
    let last: { lsa: LsdbOutput['sends'][number]['lsa']; bytes: Uint8Array } | undefined
    for (const s of out.sends) {
      if (last?.lsa !== s.lsa) last = { lsa: s.lsa, bytes: encodeLsa(s.lsa) }
      this.#out.push({ kind: 'send', to: s.to, payload: last.bytes })
    }
    if (out.changed) this.#computeSoon(now, this.#computeDelay)
  }
}

/**
 * The host's route list: RouteInfo with each path from the next hop to the
 * destination (this node left out, as `mesh.routes()` documents).
 */
export function toHostRoutes (table: RouteTable): RouteInfo[] {
  return [...table.values()]
    .map((e) => ({ to: e.to, via: e.via, hops: e.hops, cost: e.cost, paths: e.paths.map((p) => p.slice(1)) }))
    .sort((a, b) => (a.to < b.to ? -1 : a.to > b.to ? 1 : 0))
}

/**
 * The IO workers' forwarding table. `alt` is the route's alternate first
 * hop only when it is loop-free (RFC 5286 §3.6): a non-loop-free alternate
 * may hand the frame to a node whose own best path comes back through us,
 * and the frame would bounce until its hop limit.
 */
export function toForwarding (table: RouteTable): ForwardingEntry[] {
  const out: ForwardingEntry[] = []
  for (const e of table.values()) {
    const alt = e.alternate?.loopFree === true ? e.alternate : undefined
    // Multipath candidates: the primary and the loop-free alternate only (see ForwardingEntry.paths).
    const paths = [{ via: e.via, cost: e.cost }]
    if (alt !== undefined) paths.push({ via: alt.via, cost: alt.cost })
    out.push({ to: e.to, via: e.via, alt: alt?.via, hops: e.hops, paths })
  }
  return out.sort((a, b) => (a.to < b.to ? -1 : a.to > b.to ? 1 : 0))
}

function delay (v: number, name: string): number {
  if (!(Number.isFinite(v) && v >= 0)) throw new RangeError(`${name} must be a finite number >= 0 (got ${String(v)})`)
  return v
}
