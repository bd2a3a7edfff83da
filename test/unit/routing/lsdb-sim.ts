/**
 * A sans-IO simulation of the link-state protocol: N nodes, each a real
 * LinkStateDb with a real ed25519 key, links with per-link one-way delays,
 * LSAs encoded and decoded on every hop, route recomputation debounced per
 * node — all in one process on a simulated clock.
 */
import { generateIdentity, type Identity } from '../../../src/identity/identity.js'
import { LinkStateDb, type LsdbOutput } from '../../../src/routing/link-state-db.js'
import { decodeLsa, encodeLsa, type Lsa } from '../../../src/routing/lsa.js'
import { createGraph, setEdge, type Graph } from '../../../src/routing/graph.js'
import { computeRoutes, diffRoutes, topologyFromLsas, type RouteOptions, type RouteTable } from '../../../src/routing/route-table.js'
import { linkCost } from '../../../src/routing/link-cost.js'

export interface SimNode {
  readonly id: string
  readonly identity: Identity
  readonly db: LinkStateDb
  routes: RouteTable
  /** Sim time of the last route-table change. */
  lastRouteChange: number
  recomputePending: boolean
  recomputes: number
}

interface Link { a: string, b: string, delayMs: number, up: boolean }
interface Event { at: number, seq: number, run: () => void }

export interface SimOptions {
  /** Debounce between a database change and the route recompute. */
  debounceMs: number
  routes: RouteOptions
}

let identityPool: Identity[] = []
/** Identities are costly to make; tests share a pool. */
function identities (n: number): Identity[] {
  while (identityPool.length < n) identityPool = [...identityPool, generateIdentity()]
  return identityPool.slice(0, n)
}

export class LinkStateSim {
  now = 0
  readonly nodes = new Map<string, SimNode>()
  readonly ids: string[]
  readonly #links = new Map<string, Link>()
  readonly #events: Event[] = []
  #seq = 0
  readonly #o: SimOptions
  /** LSA frames delivered (each one encoded and decoded). */
  delivered = 0

  constructor (n: number, opts: SimOptions) {
    this.#o = opts
    const ids = identities(n)
    this.ids = ids.map((i) => i.id)
    for (const identity of ids) {
      this.nodes.set(identity.id, {
        id: identity.id,
        identity,
        db: new LinkStateDb({ signer: identity, initialSeq: 1, maxAgeMs: 600_000, refreshMs: 200_000 }),
        routes: new Map(),
        lastRouteChange: 0,
        recomputePending: false,
        recomputes: 0,
      })
    }
  }

  /** Cost a node advertises for a link of one-way delay d (RTT = 2 d). */
  static cost (delayMs: number): number { return linkCost({ rttMs: 2 * delayMs }) }

  #key (a: string, b: string): string { return a < b ? `${a}|${b}` : `${b}|${a}` }

  link (i: number, j: number, delayMs: number): void {
    const a = this.ids[i]!
    const b = this.ids[j]!
    this.#links.set(this.#key(a, b), { a, b, delayMs, up: false })
  }

  linkUp (a: string, b: string): Link | undefined { const l = this.#links.get(this.#key(a, b)); return l?.up === true ? l : undefined }

  hasLink (i: number, j: number): boolean { return this.#links.has(this.#key(this.ids[i]!, this.ids[j]!)) }

  #at (at: number, run: () => void): void {
    const e = { at, seq: this.#seq++, run }
    // Sorted insert (events are few); equal times keep insertion order.
    let lo = 0
    let hi = this.#events.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      const m = this.#events[mid]!
      if (m.at < at || (m.at === at && m.seq < e.seq)) lo = mid + 1
      else hi = mid
    }
    this.#events.splice(lo, 0, e)
  }

  #neighborsOf (id: string): Array<{ peer: string, delayMs: number }> {
    const out: Array<{ peer: string, delayMs: number }> = []
    for (const l of this.#links.values()) {
      if (!l.up) continue
      if (l.a === id) out.push({ peer: l.b, delayMs: l.delayMs })
      else if (l.b === id) out.push({ peer: l.a, delayMs: l.delayMs })
    }
    return out
  }

  #apply (from: string, out: LsdbOutput): void {
    for (const s of out.sends) this.#send(from, s.to, s.lsa)
    if (out.changed) this.#scheduleRecompute(from)
  }

  #send (from: string, to: string, lsa: Lsa): void {
    const l = this.linkUp(from, to)
    if (l === undefined) return
    const bytes = encodeLsa(lsa)
    this.#at(this.now + l.delayMs, () => {
      if (this.linkUp(from, to) !== l) return // the link died with the frame in flight
      this.delivered++
      const node = this.nodes.get(to)!
      const r = node.db.receive(decodeLsa(bytes), from, this.now)
      this.#apply(to, r)
    })
  }

  #scheduleRecompute (id: string): void {
    const node = this.nodes.get(id)!
    if (node.recomputePending) return
    node.recomputePending = true
    this.#at(this.now + this.#o.debounceMs, () => {
      node.recomputePending = false
      node.recomputes++
      const next = computeRoutes(id, topologyFromLsas(node.db.entries()), this.#o.routes)
      if (diffRoutes(node.routes, next).changed) node.lastRouteChange = this.now
      node.routes = next
    })
  }

  #originate (id: string): void {
    const links = this.#neighborsOf(id).map((n) => ({ peer: n.peer, cost: LinkStateSim.cost(n.delayMs) }))
    this.#apply(id, this.nodes.get(id)!.db.originate(links, this.now))
  }

  /** Bring every configured link up now (both ends sync and re-originate). */
  start (): void {
    for (const l of this.#links.values()) l.up = true
    for (const id of this.ids) {
      for (const n of this.#neighborsOf(id)) this.#apply(id, this.nodes.get(id)!.db.addNeighbor(n.peer, this.now))
      this.#originate(id)
    }
  }

  /** Cut a link now; both ends notice at once (detection time is the liveness layer's, not measured here). */
  cut (i: number, j: number): void {
    const a = this.ids[i]!
    const b = this.ids[j]!
    const l = this.#links.get(this.#key(a, b))!
    l.up = false
    for (const [x, y] of [[a, b], [b, a]] as const) {
      this.nodes.get(x)!.db.removeNeighbor(y)
      this.#originate(x)
    }
  }

  /** Node i re-originates now (a refresh when its links did not change). */
  originate (i: number): void { this.#originate(this.ids[i]!) }

  /** Whether the link between i and j is configured and up. */
  isUp (i: number, j: number): boolean { return this.linkUp(this.ids[i]!, this.ids[j]!) !== undefined }

  /**
   * Nodes (ids) that hold a copy of a reachable origin's LSA older than the
   * one the origin last originated, or none: flooding lost an update.
   */
  behind (): string[] {
    const g = this.truth()
    const out: string[] = []
    for (const id of this.ids) {
      const seen = new Set([id])
      const todo = [id]
      while (todo.length > 0) for (const next of g.get(todo.pop()!)!.keys()) if (!seen.has(next)) { seen.add(next); todo.push(next) }
      const db = this.nodes.get(id)!.db
      for (const o of seen) if (db.get(o)?.lsa.seq !== this.nodes.get(o)!.db.seq) { out.push(id); break }
    }
    return out
  }

  /** Bring a cut (or configured) link up now: both ends exchange databases and re-originate, as routing-service's linkUp does. */
  restore (i: number, j: number): void {
    const a = this.ids[i]!
    const b = this.ids[j]!
    this.#links.get(this.#key(a, b))!.up = true
    for (const [x, y] of [[a, b], [b, a]] as const) this.#apply(x, this.nodes.get(x)!.db.addNeighbor(y, this.now))
    this.#originate(a)
    this.#originate(b)
  }

  /** Run events until none is left or `until`; returns the time reached. */
  run (until = Infinity): number {
    while (this.#events.length > 0 && this.#events[0]!.at <= until) {
      const e = this.#events.shift()!
      this.now = e.at
      e.run()
    }
    return this.now
  }

  /** The true current topology, as every node should see it. */
  truth (): Graph {
    const g = createGraph()
    for (const id of this.ids) g.set(id, new Map())
    for (const l of this.#links.values()) {
      if (!l.up) continue
      setEdge(g, l.a, l.b, LinkStateSim.cost(l.delayMs))
      setEdge(g, l.b, l.a, LinkStateSim.cost(l.delayMs))
    }
    return g
  }

  /** Ids of nodes whose route table differs from the one computed from the true topology. */
  disagreeing (): string[] {
    const g = this.truth()
    return this.ids.filter((id) => diffRoutes(this.nodes.get(id)!.routes, computeRoutes(id, g, this.#o.routes)).changed)
  }
}

/**
 * Follow next hops (each node's own `via`) from `from` to `to`; the list of
 * nodes visited, and whether it arrived without revisiting a node.
 */
export function walkNextHops (tables: ReadonlyMap<string, RouteTable>, from: string, to: string, maxSteps = 64): { path: string[], arrived: boolean, looped: boolean } {
  const path = [from]
  const seen = new Set([from])
  let at = from
  for (let i = 0; i < maxSteps && at !== to; i++) {
    const via = tables.get(at)?.get(to)?.via
    if (via === undefined) return { path, arrived: false, looped: false }
    path.push(via)
    if (seen.has(via)) return { path, arrived: false, looped: true }
    seen.add(via)
    at = via
  }
  return { path, arrived: at === to, looped: false }
}
