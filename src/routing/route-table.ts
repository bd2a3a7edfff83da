/**
 * Route table: from the link-state database to one {@link RouteEntry} per
 * reachable destination (the public `RouteInfo` of DESIGN.md §2, plus the
 * per-path costs and the fast-reroute alternate), and the diff between two
 * tables that drives `route:change` events. Pure functions.
 *
 * Recomputing is the caller's job (debounced after the database reports
 * `changed`; large graphs through path-pool.ts); {@link diffRoutes} says
 * cheaply whether anything changed at all.
 *
 * @module
 */
import type { RouteChangeEvent, RouteInfo } from '../events.js'
import { compactGraph, createGraph, indexOf, setEdge, type CompactGraph, type Graph, type Path, type ReadonlyGraph } from './graph.js'
import { isCompact, ShortestPathSearch } from './dijkstra.js'
import type { Lsa } from './lsa.js'
import { kShortestToAll } from './yen.js'

/** Fast-reroute alternate of a route. */
export interface RouteAlternate {
  /** Its first hop (differs from the primary's `via`). */
  readonly via: string
  /** The path, this node first. */
  readonly path: readonly string[]
  readonly cost: number
  /**
   * True when the alternate's first hop, forwarding by its OWN shortest path,
   * cannot send the packet back through this node (the loop-free alternate
   * condition of RFC 5286 §3.6, inequality 1:
   * dist(via, to) < dist(via, self) + dist(self, to)). When false, use the
   * alternate as a source route only, or accept a transient loop bounded by
   * the hop limit until the tables reconverge.
   */
  readonly loopFree: boolean
}

/** A route: the public {@link RouteInfo} plus what forwarding needs. */
export interface RouteEntry extends RouteInfo {
  /**
   * Up to k loop-free paths, cheapest first; each lists the peer ids from
   * this node (first) to the destination (last). `via` is `paths[0][1]`,
   * `hops` is `paths[0].length - 1`, `cost` is `costs[0]`.
   */
  readonly paths: string[][]
  /** Cost of each path in `paths`. */
  readonly costs: readonly number[]
  /** The first path whose first hop differs from the primary's; undefined when all share it. */
  readonly alternate: RouteAlternate | undefined
}

/** Destination → route. Destinations with no path (within maxHops) are absent. */
export type RouteTable = ReadonlyMap<string, RouteEntry>

/** Options of {@link topologyFromLsas}. */
export interface TopologyOptions {
  /**
   * Use a link only when both ends advertise it (OSPF's two-way check, RFC
   * 2328 §16.1): a node that died or left drops out as soon as its
   * neighbours re-originate, without waiting for its own LSA to age out, and
   * a forged "I am linked to X" by one side alone draws no traffic.
   * Each direction keeps the cost its origin advertised. @default true
   */
  requireBidirectional?: boolean
}

/** The routing graph described by a set of LSAs (e.g. `db.entries()`). */
export function topologyFromLsas (entries: Iterable<{ readonly lsa: Lsa }>, opts: TopologyOptions = {}): Graph {
  const twoWay = opts.requireBidirectional ?? true
  const byOrigin = new Map<string, Map<string, number>>()
  for (const { lsa } of entries) byOrigin.set(lsa.origin, new Map(lsa.links.map((l) => [l.peer, l.cost])))
  const g = createGraph()
  for (const [origin, links] of byOrigin) {
    if (!g.has(origin)) g.set(origin, new Map())
    for (const [peer, cost] of links) {
      if (twoWay && byOrigin.get(peer)?.has(origin) !== true) continue
      setEdge(g, origin, peer, cost)
    }
  }
  return g
}

/** Options of {@link buildRouteTable} / {@link computeRoutes} (the `routing` options of DESIGN.md §2). */
export interface RouteOptions {
  /** Paths kept per destination. Integer >= 1. */
  k: number
  /** Paths with more hops are dropped. Integer >= 1. */
  maxHops: number
}

/**
 * Build the route table of `selfId` from k-shortest paths already computed
 * (by {@link kShortestToAll} inline or on the pool) over `graph`. Runs one
 * Dijkstra per distinct alternate first hop, for the loop-free check.
 */
export function buildRouteTable (selfId: string, graph: ReadonlyGraph | CompactGraph, paths: ReadonlyMap<string, readonly Path[]>, opts: RouteOptions): RouteTable {
  const cg = isCompact(graph) ? graph : compactGraph(graph)
  const table = new Map<string, RouteEntry>()
  // dist(n, ·) from each alternate's first hop, computed on first use.
  const fromNeighbor = new Map<string, Float64Array>()
  const search = new ShortestPathSearch(cg)
  const distFrom = (n: string): Float64Array | undefined => {
    let d = fromNeighbor.get(n)
    if (d === undefined) {
      const i = indexOf(cg, n)
      if (i < 0) return undefined
      search.run(i)
      d = search.dist.slice()
      fromNeighbor.set(n, d)
    }
    return d
  }
  const self = indexOf(cg, selfId)
  const ids = [...paths.keys()].sort()
  for (const to of ids) {
    if (to === selfId) continue
    const kept = paths.get(to)!.filter((p) => p.nodes.length - 1 <= opts.maxHops).slice(0, opts.k)
    const primary = kept[0]
    if (primary === undefined || primary.nodes.length < 2) continue
    const via = primary.nodes[1]!
    const alt = kept.find((p) => p.nodes[1] !== via)
    let alternate: RouteAlternate | undefined
    if (alt !== undefined) {
      const d = distFrom(alt.nodes[1]!)
      const t = indexOf(cg, to)
      const loopFree = d !== undefined && self >= 0 && t >= 0 && d[t]! < d[self]! + primary.cost
      alternate = { via: alt.nodes[1]!, path: alt.nodes, cost: alt.cost, loopFree }
    }
    table.set(to, {
      to,
      via,
      hops: primary.nodes.length - 1,
      cost: primary.cost,
      paths: kept.map((p) => [...p.nodes]),
      costs: kept.map((p) => p.cost),
      alternate,
    })
  }
  return table
}

/**
 * Compute the route table of `selfId` over `graph` inline (k-shortest paths
 * to every destination, then {@link buildRouteTable}). For large graphs use
 * path-pool.ts for the paths and call {@link buildRouteTable}.
 * An empty table when `selfId` is not in the graph.
 */
export function computeRoutes (selfId: string, graph: ReadonlyGraph | CompactGraph, opts: RouteOptions): RouteTable {
  const cg = isCompact(graph) ? graph : compactGraph(graph)
  if (indexOf(cg, selfId) < 0) return new Map()
  return buildRouteTable(selfId, cg, kShortestToAll(cg, selfId, opts.k), opts)
}

/** Result of {@link diffRoutes}. */
export interface RouteDiff {
  /** One per destination whose next hop changed (`via: null` = lost, `previousVia: null` = new), sorted by `to`. */
  readonly changes: RouteChangeEvent[]
  /** Anything differs at all (next hops, paths, costs, alternates): push new forwarding tables. */
  readonly changed: boolean
}

/** Compare two route tables (see {@link RouteDiff}). */
export function diffRoutes (prev: RouteTable, next: RouteTable): RouteDiff {
  const changes: RouteChangeEvent[] = []
  let changed = prev.size !== next.size
  for (const [to, p] of prev) {
    const n = next.get(to)
    if (n === undefined) { changes.push({ to, via: null, previousVia: p.via }); changed = true; continue }
    if (n.via !== p.via) changes.push({ to, via: n.via, previousVia: p.via })
    if (!changed && !sameEntry(p, n)) changed = true
  }
  for (const [to, n] of next) if (!prev.has(to)) { changes.push({ to, via: n.via, previousVia: null }); changed = true }
  changes.sort((a, b) => (a.to < b.to ? -1 : a.to > b.to ? 1 : 0))
  return { changes, changed: changed || changes.length > 0 }
}

function sameEntry (a: RouteEntry, b: RouteEntry): boolean {
  if (a.via !== b.via || a.cost !== b.cost || a.paths.length !== b.paths.length) return false
  for (let i = 0; i < a.paths.length; i++) {
    if (a.costs[i] !== b.costs[i]) return false
    const x = a.paths[i]!
    const y = b.paths[i]!
    if (x.length !== y.length) return false
    for (let j = 0; j < x.length; j++) if (x[j] !== y[j]) return false
  }
  const p = a.alternate
  const q = b.alternate
  if (p === undefined || q === undefined) return p === q
  return p.via === q.via && p.cost === q.cost && p.loopFree === q.loopFree && p.path.length === q.path.length && p.path.every((v, i) => v === q.path[i])
}

/** The public view of a table (what `mesh.routes()` returns): RouteInfo only, sorted by destination. */
export function toRouteInfos (table: RouteTable): RouteInfo[] {
  return [...table.values()].map((e) => ({ to: e.to, via: e.via, hops: e.hops, cost: e.cost, paths: e.paths.map((p) => [...p]) }))
    .sort((a, b) => (a.to < b.to ? -1 : a.to > b.to ? 1 : 0))
}
