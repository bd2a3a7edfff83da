import { describe, it, expect, beforeAll } from 'vitest'
import { generateIdentity, type Identity } from '../../../src/identity/identity.js'
import { computeRoutes, type RouteTable } from '../../../src/routing/route-table.js'
import { createLsa, encodeLsa, decodeLsa } from '../../../src/routing/lsa.js'
import { linkCost } from '../../../src/routing/link-cost.js'
import { RoutingService, type RouteChange, type RoutingServiceOptions } from '../../../src/router/routing-service.js'
import type { ForwardingEntry } from '../../../src/actor/protocol.js'
import type { RouteInfo } from '../../../src/events.js'
import { walkNextHops } from '../routing/lsdb-sim.js'

let ids: Identity[] = []
beforeAll(() => { ids = Array.from({ length: 8 }, () => generateIdentity()) })

interface Node {
  id: string
  svc: RoutingService
  /** What the owner would have handed the host and the IO workers. */
  routes: RouteInfo[]
  changes: RouteChange[]
  forwarding: ForwardingEntry[]
  sent: Array<{ to: string; payload: Uint8Array }>
  /** Simulated times at which the node asked for a computation. */
  computedAt: number[]
}

/**
 * A deterministic network of RoutingServices on one simulated clock: LSAs
 * are delivered in send order (zero latency) over links that are up,
 * computations run inline at once, and time jumps from deadline to deadline.
 */
class Net {
  now = 1_000
  readonly nodes = new Map<string, Node>()
  readonly #up = new Set<string>()
  readonly #wire: Array<{ from: string; to: string; payload: Uint8Array }> = []
  /** When set, computations are held back (to test results that come late). */
  holdComputations = false
  readonly held: Array<{ node: Node; version: number; table: RouteTable }> = []

  constructor (n: number, opts: Partial<RoutingServiceOptions> = {}) {
    for (const identity of ids.slice(0, n)) {
      // A fixed cost unless a test asks for measured ones (linkCost: undefined): most tests route by hop count.
      const svc = new RoutingService({ signer: identity, initialSeq: 1, routes: { k: 3, maxHops: 8 }, linkCost: 10, ...opts })
      this.nodes.set(identity.id, { id: identity.id, svc, routes: [], changes: [], forwarding: [], sent: [], computedAt: [] })
    }
  }

  node (i: number): Node { return this.nodes.get(ids[i]!.id)! }
  #key (a: string, b: string): string { return a < b ? `${a}|${b}` : `${b}|${a}` }

  link (i: number, j: number): void {
    const a = this.node(i); const b = this.node(j)
    this.#up.add(this.#key(a.id, b.id))
    a.svc.linkUp(b.id, this.now)
    b.svc.linkUp(a.id, this.now)
  }

  cut (i: number, j: number): void {
    const a = this.node(i); const b = this.node(j)
    this.#up.delete(this.#key(a.id, b.id))
    a.svc.linkDown(b.id, this.now)
    b.svc.linkDown(a.id, this.now)
  }

  /** Drain every output (delivering LSAs and computing) until nothing moves. */
  drain (): void {
    for (let moved = true; moved;) {
      moved = false
      for (const n of this.nodes.values()) {
        for (let o = n.svc.poll(); o !== undefined; o = n.svc.poll()) {
          moved = true
          if (o.kind === 'send') { n.sent.push(o); this.#wire.push({ from: n.id, to: o.to, payload: o.payload }) }
          if (o.kind === 'compute') {
            n.computedAt.push(this.now)
            const table = computeRoutes(n.id, o.graph, n.svc.routeOptions)
            if (this.holdComputations) this.held.push({ node: n, version: o.version, table })
            else n.svc.routesComputed(o.version, table, this.now)
          }
          if (o.kind === 'routes') { n.routes = o.routes; n.changes.push(...o.changes); n.forwarding = o.forwarding }
        }
      }
      for (let m = this.#wire.shift(); m !== undefined; m = this.#wire.shift()) {
        moved = true
        if (!this.#up.has(this.#key(m.from, m.to))) continue // the link died with the frame in flight
        this.nodes.get(m.to)?.svc.receive(m.from, m.payload, this.now) // (a node taken out of the net hears nothing)
      }
    }
  }

  /** Run deadlines up to `now + ms`. */
  run (ms: number): void {
    const until = this.now + ms
    for (;;) {
      this.drain()
      let next = Infinity
      for (const n of this.nodes.values()) next = Math.min(next, n.svc.nextDeadline() ?? Infinity)
      if (next > until) break
      this.now = Math.max(this.now, next)
      for (const n of this.nodes.values()) if ((n.svc.nextDeadline() ?? Infinity) <= this.now) n.svc.handleTimeout(this.now)
    }
    this.now = until
  }

  tables (): Map<string, RouteTable> {
    return new Map([...this.nodes].map(([id, n]) => [id, n.svc.table]))
  }
}

describe('RoutingService (sans-IO link-state glue)', () => {
  it('a new direct link is a route at once (via = to, 1 hop), before the peer says anything', () => {
    const net = new Net(2)
    const a = net.node(0); const b = net.node(1)
    a.svc.linkUp(b.id, net.now)
    // Only a's side: b never answers. The recomputation is due within a few ms, long before the LSA debounce.
    expect(a.svc.nextDeadline()).toBeLessThanOrEqual(net.now + 2)
    a.svc.handleTimeout(net.now + 2)
    const out = [...drainOne(a.svc)]
    const compute = out.find((o) => o.kind === 'compute')
    expect(compute).toBeDefined()
    a.svc.routesComputed((compute as any).version, computeRoutes(a.id, (compute as any).graph, a.svc.routeOptions), net.now + 2)
    const routes = [...drainOne(a.svc)].find((o) => o.kind === 'routes') as any
    expect(routes.routes).toEqual([{ to: b.id, via: b.id, hops: 1, cost: 10, paths: [[b.id]] }])
    expect(routes.changes).toEqual([{ to: b.id, via: b.id, previousVia: undefined }])
    expect(routes.forwarding).toEqual([{ to: b.id, via: b.id, alt: undefined, hops: 1, paths: [{ via: b.id, cost: 10 }] }])
  })

  it('originating our own LSA asks for no computation (the graph takes our links from linkUp/linkDown)', () => {
    const net = new Net(2)
    const a = net.node(0); const b = net.node(1)
    a.svc.linkUp(b.id, net.now) // b never answers: nothing but our own LSA can change
    net.run(1000)
    expect(a.svc.db.get(a.id)!.lsa.links.map((l) => l.peer)).toEqual([b.id])
    expect(a.svc.stats.computations).toBe(1) // the link-up's
    expect(a.routes).toEqual([{ to: b.id, via: b.id, hops: 1, cost: 10, paths: [[b.id]] }])
  })

  it('a burst of link-ups and LSAs is computed at most once per minComputeIntervalMs; a link down is not held back', () => {
    const net = new Net(6)
    net.link(0, 1)
    net.run(1000)
    const hub = net.node(0)
    const before = hub.computedAt.length
    const t0 = net.now
    // Four nodes join the hub 10 ms apart; each brings its LSA 15 ms later.
    for (let i = 2; i < 6; i++) { net.link(0, i); net.run(10) }
    net.run(1000)
    const burst = hub.computedAt.slice(before)
    expect(burst[0]).toBeLessThanOrEqual(t0 + 1) // the first change after a quiet spell: at once
    for (let i = 1; i < burst.length; i++) expect(burst[i]! - burst[i - 1]!).toBeGreaterThanOrEqual(100)
    expect(burst.length).toBeLessThanOrEqual(4) // 4 link-ups, 4 LSAs, 2 of ours
    expect(hub.routes.map((r) => r.to).sort()).toEqual([1, 2, 3, 4, 5].map((i) => net.node(i).id).sort())
    // Link downs 1 ms apart: each recomputed within linkDownDelayMs, not held.
    const t1 = net.now
    net.cut(0, 5)
    net.run(1)
    expect(hub.computedAt.at(-1)).toBe(t1 + 1)
    net.cut(0, 4)
    net.run(1)
    expect(hub.computedAt.at(-1)).toBe(t1 + 2)
    expect(hub.routes.map((r) => r.to)).not.toContain(net.node(4).id)
  })

  it('a burst of link-ups is advertised at most once per minOriginateIntervalMs', () => {
    const net = new Net(4)
    net.link(0, 1)
    net.run(20)
    const a = net.node(0)
    const seq0 = a.svc.db.get(a.id)!.lsa.seq
    a.svc.linkUp(net.node(2).id, net.now)
    a.svc.linkUp(net.node(3).id, net.now + 30)
    a.svc.handleTimeout(net.now + 100)
    expect(a.svc.db.get(a.id)!.lsa.seq).toBe(seq0) // held back: the last LSA is < 250 ms old
    a.svc.handleTimeout(net.now + 400)
    const lsa = a.svc.db.get(a.id)!.lsa
    expect(lsa.seq).toBeGreaterThan(seq0)
    expect(lsa.links.map((l) => l.peer)).toEqual(expect.arrayContaining([net.node(2).id, net.node(3).id]))
  })

  it('a new neighbour gets the whole database; our LSA naming it follows after the debounce', () => {
    const net = new Net(3)
    net.link(0, 1)
    net.run(300) // past minOriginateIntervalMs (250) since a's first LSA
    const a = net.node(0); const c = net.node(2)
    const before = c.sent.length
    c.svc.linkUp(a.id, net.now)
    const sync = [...drainOne(c.svc)].filter((o) => o.kind === 'send')
    // c holds nothing yet (it never originated): nothing to sync.
    expect(sync).toEqual([])
    a.svc.linkUp(c.id, net.now)
    const toC = [...drainOne(a.svc)].filter((o) => o.kind === 'send') as Array<{ to: string; payload: Uint8Array }>
    expect(toC.map((s) => s.to)).toEqual([c.id, c.id])
    expect(new Set(toC.map((s) => decodeLsa(s.payload).origin))).toEqual(new Set([a.id, net.node(1).id]))
    expect(c.sent.length).toBe(before)
    // Our own LSA with the new link: not before originateDelayMs (15).
    expect(a.svc.db.get(a.id)!.lsa.links.map((l) => l.peer)).not.toContain(c.id)
    a.svc.handleTimeout(net.now + 14)
    expect(a.svc.db.get(a.id)!.lsa.links.map((l) => l.peer)).not.toContain(c.id)
    a.svc.handleTimeout(net.now + 15)
    expect(a.svc.db.get(a.id)!.lsa.links.map((l) => l.peer)).toContain(c.id)
  })

  it('resync: a linked neighbour whose LSAs could not go gets the whole database again; an unlinked one nothing', () => {
    const net = new Net(3)
    net.link(0, 1)
    net.link(1, 2)
    net.run(300)
    const b = net.node(1)
    const [a, c] = [net.node(0), net.node(2)]
    b.svc.resync(c.id, net.now)
    const toC = [...drainOne(b.svc)].filter((o) => o.kind === 'send') as Array<{ to: string; payload: Uint8Array }>
    expect(toC.every((s) => s.to === c.id)).toBe(true)
    expect(new Set(toC.map((s) => decodeLsa(s.payload).origin))).toEqual(new Set([a.id, b.id, c.id]))
    net.cut(1, 2)
    net.run(10)
    b.svc.resync(c.id, net.now)
    expect([...drainOne(b.svc)].filter((o) => o.kind === 'send')).toEqual([])
  })

  it('chain a — b — c: a routes to c via b (2 hops, paths from the next hop), c to a likewise', () => {
    const net = new Net(3)
    net.link(0, 1)
    net.link(1, 2)
    net.run(200)
    const [a, b, c] = [net.node(0), net.node(1), net.node(2)]
    expect(a.routes).toEqual(sorted([
      { to: b.id, via: b.id, hops: 1, cost: 10, paths: [[b.id]] },
      { to: c.id, via: b.id, hops: 2, cost: 20, paths: [[b.id, c.id]] },
    ]))
    expect(c.routes.find((r) => r.to === a.id)).toEqual({ to: a.id, via: b.id, hops: 2, cost: 20, paths: [[b.id, a.id]] })
    expect(a.changes).toContainEqual({ to: c.id, via: b.id, previousVia: undefined })
    expect(a.forwarding).toEqual(sorted([{ to: b.id, via: b.id, alt: undefined, hops: 1, paths: [{ via: b.id, cost: 10 }] }, { to: c.id, via: b.id, alt: undefined, hops: 2, paths: [{ via: b.id, cost: 20 }] }]))
  })

  it('link down: the route through it goes at once, the LSA without it within linkDownDelayMs, and the far end learns', () => {
    const net = new Net(3)
    net.link(0, 1)
    net.link(1, 2)
    net.run(200)
    const [a, b, c] = [net.node(0), net.node(1), net.node(2)]
    const t0 = net.now
    net.cut(1, 2)
    net.run(1)
    // b's own table dropped c without waiting for anyone's LSA.
    expect(b.routes.map((r) => r.to)).toEqual([a.id])
    expect(b.changes.at(-1)).toEqual({ to: c.id, via: undefined, previousVia: c.id })
    expect(b.svc.db.get(b.id)!.lsa.links.map((l) => l.peer)).toEqual([a.id])
    net.run(50)
    expect(a.routes.map((r) => r.to)).toEqual([b.id])
    expect(a.changes.at(-1)).toEqual({ to: c.id, via: undefined, previousVia: b.id })
    expect(a.svc.table.has(c.id)).toBe(false)
    expect(net.now - t0).toBeLessThanOrEqual(51)
  })

  it('a burst of link-ups costs one LSA; a link that flaps within the debounce costs none', () => {
    const net = new Net(5)
    const a = net.node(0)
    for (let j = 1; j < 5; j++) net.link(0, j)
    net.run(100)
    expect(a.svc.stats.originated).toBe(1)
    expect(a.svc.db.get(a.id)!.lsa.links).toHaveLength(4)
    const seq = a.svc.db.seq
    // Down and up again before the LSA is due: the advertised links are the same.
    a.svc.linkDown(net.node(1).id, net.now)
    a.svc.linkUp(net.node(1).id, net.now)
    net.run(100)
    expect(a.svc.db.seq).toBe(seq)
  })

  it('ring of 6 with one link cut: every table matches the true topology, no next-hop loops, fast reroute alternates', () => {
    const net = new Net(6)
    for (let i = 0; i < 6; i++) net.link(i, (i + 1) % 6)
    net.run(500)
    const n = [...Array(6).keys()].map((i) => net.node(i))
    // Around the ring: the opposite node is 3 hops either way, neighbours are 1, and alternates go the other way.
    const r0 = n[0]!.svc.table
    expect(r0.get(n[1]!.id)).toMatchObject({ via: n[1]!.id, hops: 1 })
    expect(r0.get(n[3]!.id)!.hops).toBe(3)
    expect(r0.get(n[3]!.id)!.paths).toHaveLength(2)
    // Fast-reroute alternates are handed to the IO workers only when loop-free: 0 → 1's alternate through 5
    // is not (5's own shortest path to 1 goes back through 0); to the opposite node 3 the other way round is.
    expect(r0.get(n[1]!.id)!.alternate).toMatchObject({ via: n[5]!.id, loopFree: false })
    expect(n[0]!.forwarding.find((f) => f.to === n[1]!.id)).toEqual({ to: n[1]!.id, via: n[1]!.id, alt: undefined, hops: 1, paths: [{ via: n[1]!.id, cost: 10 }] })
    const opposite = n[0]!.forwarding.find((f) => f.to === n[3]!.id)!
    expect(opposite.hops).toBe(3)
    expect(new Set([opposite.via, opposite.alt])).toEqual(new Set([n[1]!.id, n[5]!.id]))
    const t0 = net.now
    net.cut(2, 3)
    let converged = -1
    for (let t = 0; t < 2_000; t += 1) {
      net.run(1)
      if (agrees(net, 6, [[2, 3]])) { converged = net.now - t0; break }
    }
    expect(converged).toBeGreaterThanOrEqual(0)
    expect(converged).toBeLessThan(100)
    const tables = net.tables()
    for (const from of n) {
      for (const to of n) {
        if (from === to) continue
        const w = walkNextHops(tables, from.id, to.id, 8)
        expect(w.looped).toBe(false)
        expect(w.arrived).toBe(true)
      }
    }
    // 2 and 3 are now 5 hops apart, the long way.
    expect(n[2]!.svc.table.get(n[3]!.id)).toMatchObject({ via: n[1]!.id, hops: 5 })
  })

  it('results of a superseded computation are ignored, and one computation runs at a time', () => {
    const net = new Net(3)
    net.holdComputations = true
    const a = net.node(0)
    net.link(0, 1)
    net.run(5)
    expect(net.held.filter((h) => h.node === a)).toHaveLength(1)
    // A change while the computation is in flight: no second computation yet.
    net.link(0, 2)
    net.run(50)
    expect(net.held.filter((h) => h.node === a)).toHaveLength(1)
    const first = net.held.find((h) => h.node === a)!
    a.svc.routesComputed(first.version + 1, first.table, net.now) // unknown version: ignored
    expect(a.svc.table.size).toBe(0)
    a.svc.routesComputed(first.version, first.table, net.now)
    expect(a.svc.table.size).toBe(1)
    net.holdComputations = false
    net.run(50)
    // The change that waited is computed now.
    expect([...a.svc.table.keys()].sort()).toEqual([net.node(1).id, net.node(2).id].sort())
  })

  it('drops forged and malformed LSAs (counted), floods authentic ones once', () => {
    const net = new Net(3)
    net.link(0, 1)
    net.run(100)
    const [a, b, c] = [net.node(0), net.node(1), net.node(2)]
    // An LSA claiming to be from c, signed by a.
    const forged = createLsa({ id: c.id, privateKey: ids[0]!.privateKey }, 5, [{ peer: a.id, cost: 1 }])
    a.svc.receive(b.id, encodeLsa(forged), net.now)
    a.svc.receive(b.id, new Uint8Array([1, 2, 3]), net.now)
    expect(a.svc.stats.dropped).toMatchObject({ forged: 1 })
    expect(a.svc.stats.malformed).toBe(1)
    expect(a.svc.db.get(c.id)).toBeUndefined()
    expect([...drainOne(a.svc)].filter((o) => o.kind === 'send')).toEqual([])
    // The authentic one is installed once; its duplicate is not flooded again.
    const real = createLsa(ids[2]!, 5, [{ peer: a.id, cost: 1 }])
    a.svc.receive(b.id, encodeLsa(real), net.now)
    a.svc.receive(b.id, encodeLsa(real), net.now)
    expect(a.svc.stats.installed).toBeGreaterThanOrEqual(1)
    expect(a.svc.stats.dropped).toMatchObject({ duplicate: 1 })
  })

  it('leave flushes our LSA: the others drop the node at once, and later inputs are ignored', () => {
    const net = new Net(3)
    net.link(0, 1)
    net.link(1, 2)
    net.run(200)
    const [a, b, c] = [net.node(0), net.node(1), net.node(2)]
    expect(a.svc.db.get(c.id)).toBeDefined()
    c.svc.leave(net.now)
    const flush = [...drainOne(c.svc)]
    expect(flush.map((o) => o.kind)).toEqual(['send'])
    expect(decodeLsa((flush[0] as any).payload).ageMs).toBe(c.svc.db.maxAgeMs)
    net.drain()
    // Delivered by hand (drainOne took it off c's queue).
    b.svc.receive(c.id, (flush[0] as any).payload, net.now)
    net.run(50)
    expect(a.svc.db.get(c.id)).toBeUndefined()
    expect(b.svc.db.get(c.id)).toBeUndefined()
    expect(c.svc.nextDeadline()).toBeUndefined()
    c.svc.linkDown(b.id, net.now)
    expect(c.svc.poll()).toBeUndefined()
  })

  it('ages out the LSA of a node that vanished without leaving', () => {
    const net = new Net(3, { maxAgeMs: 3_000, refreshMs: 1_000 })
    net.link(0, 1)
    net.link(1, 2)
    net.run(200)
    const [a, , c] = [net.node(0), net.node(1), net.node(2)]
    // c goes silent; its link to b stays "up" on b's side (no failure detection in this sim), so only aging removes it.
    net.nodes.delete(c.id)
    net.run(5_000)
    expect(a.svc.db.get(c.id)).toBeUndefined()
    expect(a.svc.table.has(c.id)).toBe(false)
  })

  it('measured costs: a link costs what linkStats says, only significant changes are advertised, and the cheaper path wins', () => {
    const net = new Net(3, { linkCost: undefined, costOriginateIntervalMs: 5000 })
    const [a, b, c] = [net.node(0), net.node(1), net.node(2)]
    net.link(0, 1); net.link(1, 2); net.link(0, 2)
    net.run(1000)
    // Before any measurement every link costs the assumed RTT: the direct link wins on hops.
    expect(a.svc.linkCostOf(c.id)).toBe(linkCost({}))
    expect(a.routes.find((r) => r.to === c.id)).toMatchObject({ via: c.id, hops: 1 })
    const measure = (x: Node, y: Node, rttMs: number): void => { x.svc.linkStats(y.id, { rttMs }, net.now); y.svc.linkStats(x.id, { rttMs }, net.now) }
    measure(a, b, 0.5); measure(b, c, 0.5); measure(a, c, 40) // a — c is slow: two fast hops beat it
    net.run(1000)
    // Our own routes follow at once; the LSA waits out costOriginateIntervalMs since our last one.
    expect(a.routes.find((r) => r.to === c.id)).toMatchObject({ via: b.id, hops: 2 })
    net.run(5000)
    expect(a.svc.linkCostOf(c.id)).toBe(50) // ceil(40 + 10)
    expect(a.routes.find((r) => r.to === c.id)).toMatchObject({ via: b.id, hops: 2, cost: 22 })
    expect(c.routes.find((r) => r.to === a.id)).toMatchObject({ via: b.id, hops: 2, cost: 22 })
    const changes = a.svc.stats.costChanges
    const seq = a.svc.db.get(a.id)!.lsa.seq
    // Wobble within the hysteresis: no new cost, no new LSA.
    measure(a, b, 0.9); measure(a, c, 44)
    net.run(1000)
    expect(a.svc.stats.costChanges).toBe(changes)
    expect(a.svc.db.get(a.id)!.lsa.seq).toBe(seq)
    // A queue building on a — b (1 MiB) makes it dear; the direct link is back.
    a.svc.linkStats(b.id, { rttMs: 0.5, queueBytes: 1024 * 1024 }, net.now)
    net.run(5000)
    expect(a.svc.stats.costChanges).toBe(changes + 1)
    expect(a.svc.db.get(a.id)!.lsa.seq).toBeGreaterThan(seq)
    expect(a.routes.find((r) => r.to === c.id)).toMatchObject({ via: c.id, hops: 1, cost: 50 })
    // Stats of a peer not linked, or with a fixed cost, change nothing.
    a.svc.linkStats('nobody', { rttMs: 1 }, net.now)
    expect(a.svc.linkCostOf('nobody')).toBeUndefined()
    const fixed = new Net(2)
    fixed.link(0, 1)
    fixed.node(0).svc.linkStats(fixed.node(1).id, { rttMs: 500 }, fixed.now)
    expect(fixed.node(0).svc.linkCostOf(fixed.node(1).id)).toBe(10)
  })

  it('measured cost changes are advertised at most once per costOriginateIntervalMs (a starved host does not flood)', () => {
    const net = new Net(4, { linkCost: undefined, costOriginateIntervalMs: 5000 })
    const a = net.node(0)
    for (const j of [1, 2, 3]) net.link(0, j)
    net.run(1000)
    // First measurements (LAN-fast: no change, no LSA) …
    for (const j of [1, 2, 3]) a.svc.linkStats(net.node(j).id, { rttMs: 0.3 }, net.now)
    net.run(6000)
    const seq0 = a.svc.db.get(a.id)!.lsa.seq
    // … then every link slows down, one after another (the host's CPU is starved): three cost changes.
    // The first goes out at once (our last LSA is older than the interval), the other two wait…
    for (const j of [1, 2, 3]) { a.svc.linkStats(net.node(j).id, { rttMs: 30 + j * 20 }, net.now); net.run(700) }
    expect(a.svc.stats.costChanges).toBe(3)
    expect(a.svc.db.get(a.id)!.lsa.seq).toBe(seq0 + 1)
    // …and share one LSA, 5 s after that one.
    net.run(2800)
    expect(a.svc.db.get(a.id)!.lsa.seq).toBe(seq0 + 1)
    net.run(500)
    expect(a.svc.db.get(a.id)!.lsa.seq).toBe(seq0 + 2)
    expect(a.svc.db.get(a.id)!.lsa.links.map((l) => l.cost).sort((x, y) => x - y)).toEqual([60, 80, 100])
  })

  it('rejects bad options', () => {
    const base = { signer: ids[0]!, initialSeq: 1, routes: { k: 3, maxHops: 8 } }
    expect(() => new RoutingService({ ...base, routes: { k: 0, maxHops: 8 } })).toThrow(/routes.k/)
    expect(() => new RoutingService({ ...base, linkCost: 0 })).toThrow(/linkCost/)
    expect(() => new RoutingService({ ...base, computeDelayMs: -1 })).toThrow(/computeDelayMs/)
  })
})

function * drainOne (svc: RoutingService): Generator<NonNullable<ReturnType<RoutingService['poll']>>> {
  for (let o = svc.poll(); o !== undefined; o = svc.poll()) yield o
}

function sorted<T extends { to: string }> (xs: T[]): T[] {
  return [...xs].sort((x, y) => (x.to < y.to ? -1 : x.to > y.to ? 1 : 0))
}

/** Every node's table equals the one computed from the true ring (minus `cut` links). */
function agrees (net: Net, n: number, cut: Array<[number, number]>): boolean {
  const g = new Map<string, Map<string, number>>()
  const id = (i: number): string => net.node(i).id
  for (let i = 0; i < n; i++) g.set(id(i), new Map())
  for (let i = 0; i < n; i++) {
    const j = (i + 1) % n
    if (cut.some(([x, y]) => (x === i && y === j) || (x === j && y === i))) continue
    g.get(id(i))!.set(id(j), 10)
    g.get(id(j))!.set(id(i), 10)
  }
  for (let i = 0; i < n; i++) {
    const want = computeRoutes(id(i), g, { k: 3, maxHops: 8 })
    const have = net.node(i).svc.table
    if (want.size !== have.size) return false
    for (const [to, r] of want) {
      const h = have.get(to)
      if (h === undefined || h.via !== r.via || h.hops !== r.hops || JSON.stringify(h.paths) !== JSON.stringify(r.paths)) return false
    }
  }
  return true
}
