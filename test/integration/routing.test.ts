// Link-state routing across real nodes (worker threads, ws sockets on
// 127.0.0.1): the router workers flood signed LSAs over the control lane and
// every node's route table (mesh.routes(), route:change) follows the
// topology. Tables only: relaying DATA over these routes is the data path's.
import { describe, it, expect, afterEach } from 'vitest'
import { makeMesh, closeAll, until } from '../helpers/mesh.js'
import { cutAllProxies, tcpProxy } from '../helpers/tcp-proxy.js'
import { proxiedRing } from '../helpers/ring.js'
import { rawHandshake } from '../helpers/raw-peer.js'
import type { Mesh, RouteInfo } from '../../dist/src/index.js'
import { encodeFrame } from '../../dist/src/codec/encode.js'
import { FrameType, Lane } from '../../dist/src/codec/frame.js'
import { createLsa, decodeLsa, encodeLsa } from '../../dist/src/routing/lsa.js'
import { generateIdentity } from '../../dist/src/identity/identity.js'

afterEach(async () => {
  cutAllProxies()
  await closeAll()
})

interface RouteChange { to: string; via: string | null; previousVia: string | null }

function record (m: Mesh): RouteChange[] {
  const seen: RouteChange[] = []
  m.on('route:change', (c: RouteChange) => { seen.push(c) })
  return seen
}

function routeTo (m: Mesh, to: string): RouteInfo | undefined { return m.routes().find((r) => r.to === to) }

/**
 * Follow next hops from `from` to `to` through every node's own table.
 * Arrived within maxHops without revisiting a node, or why not.
 */
function walk (byId: Map<string, RouteInfo[]>, from: string, to: string, maxHops: number): { arrived: boolean; path: string[] } {
  const path = [from]
  let at = from
  while (at !== to) {
    const via = byId.get(at)?.find((r) => r.to === to)?.via
    if (via === undefined || path.includes(via) || path.length > maxHops) return { arrived: false, path: [...path, via ?? '∅'] }
    path.push(via)
    at = via
  }
  return { arrived: true, path }
}

describe('link-state routing (issue 5)', () => {
  it('chain a — b — c with dial-only ends: a routes to c through b, route:change fires, and the route goes when b closes', async () => {
    const b = await makeMesh()
    const a = await makeMesh({ listen: false })
    const c = await makeMesh({ listen: false })
    const onA = record(a)
    const onC = record(c)
    await a.connect(b.addresses[0]!)
    await c.connect(b.addresses[0]!)
    const t0 = performance.now()
    await until(() => routeTo(a, c.id)?.hops === 2 && routeTo(c, a.id)?.hops === 2, { timeoutMs: 10_000, label: 'a and c route to each other' })
    const convergedMs = performance.now() - t0
    // Costs are measured (link-cost.ts): about 10 per loopback link (a hop) plus its RTT in ms.
    expect(routeTo(a, c.id)).toMatchObject({ to: c.id, via: b.id, hops: 2, paths: [[b.id, c.id]] })
    expect(routeTo(c, a.id)).toMatchObject({ to: a.id, via: b.id, hops: 2, paths: [[b.id, a.id]] })
    expect(routeTo(a, c.id)!.cost).toBeGreaterThanOrEqual(20)
    // Direct links are routes too.
    expect(routeTo(a, b.id)).toMatchObject({ to: b.id, via: b.id, hops: 1, paths: [[b.id]] })
    expect(routeTo(a, b.id)!.cost).toBeGreaterThanOrEqual(10)
    expect(routeTo(b, a.id)).toMatchObject({ via: a.id, hops: 1 })
    expect(routeTo(b, c.id)).toMatchObject({ via: c.id, hops: 1 })
    expect(onA).toContainEqual({ to: c.id, via: b.id, previousVia: null })
    expect(onA).toContainEqual({ to: b.id, via: b.id, previousVia: null })
    expect(onC).toContainEqual({ to: a.id, via: b.id, previousVia: null })
    // a and c never linked directly.
    expect(a.peers().map((p) => p.id)).toEqual([b.id])

    const t1 = performance.now()
    await b.close()
    await until(() => onA.some((e) => e.to === c.id && e.via === null), { timeoutMs: 10_000, label: 'a loses its route to c' })
    const lostMs = performance.now() - t1
    expect(onA.filter((e) => e.to === c.id).at(-1)).toEqual({ to: c.id, via: null, previousVia: b.id })
    await until(() => a.routes().length === 0, { timeoutMs: 5_000, label: 'a has no routes' })
    console.log(`chain: a ↔ c routes ${convergedMs.toFixed(0)} ms after both dials resolved; gone ${lostMs.toFixed(0)} ms after b.close() began`)
  })

  it('ring of 6 with one link cut: every node reroutes the long way, tables agree and have no next-hop loops', async () => {
    const n = 6
    const maxHops = 8
    const { nodes, ids, proxy, distance } = await proxiedRing(n, maxHops)
    const agrees = (cut: boolean): boolean => nodes.every((m, i) => {
      const routes = m.routes()
      // Every destination has both ways round as paths in the ring (k = 3), the one way in the line.
      return routes.length === n - 1 && routes.every((r) => r.hops === distance(i, ids.indexOf(r.to), cut) && r.paths.length === (cut ? 1 : 2))
    })
    const t0 = performance.now()
    await until(() => agrees(false), { timeoutMs: 15_000, label: 'the ring converges' })
    const formedMs = performance.now() - t0
    // Still a ring: two links each, no gossip-dialed chords.
    for (const m of nodes) expect(m.peers().filter((p) => p.state === 'healthy' || p.state === 'unhealthy').length).toBe(2)
    const noLoops = (): void => {
      const byId = new Map(nodes.map((m) => [m.id, m.routes()]))
      for (const s of ids) {
        for (const d of ids) {
          if (s === d) continue
          const w = walk(byId, s, d, maxHops)
          expect(w.arrived, `${ids.indexOf(s)} → ${ids.indexOf(d)}: ${w.path.map((x) => ids.indexOf(x)).join(' ')}`).toBe(true)
        }
      }
    }
    noLoops()
    expect(routeTo(nodes[0]!, ids[1]!)!.paths).toEqual([[ids[1]], [ids[5], ids[4], ids[3], ids[2], ids[1]]])

    const changes2 = record(nodes[2]!)
    const t1 = performance.now()
    proxy.cut()
    await until(() => agrees(true), { timeoutMs: 10_000, label: 'every table agrees with the cut ring' })
    const reconvergedMs = performance.now() - t1
    noLoops()
    expect(routeTo(nodes[2]!, ids[3]!)).toMatchObject({ via: ids[1], hops: 5, paths: [[ids[1], ids[0], ids[5], ids[4], ids[3]]] })
    expect(routeTo(nodes[3]!, ids[2]!)).toMatchObject({ via: ids[4], hops: 5 })
    expect(changes2).toContainEqual({ to: ids[3], via: ids[1], previousVia: ids[3] })
    console.log(`ring of 6: formed in ${formedMs.toFixed(0)} ms; after the 2 — 3 cut every table agreed in ${reconvergedMs.toFixed(0)} ms`)
  })

  it('measured link costs: a diamond routes around its slow link, and relayed traffic follows', async () => {
    const fast = { heartbeat: { intervalMs: 100, missesUnhealthy: 5, missesDead: 10 } }
    const [r1, r2] = [await makeMesh(fast), await makeMesh(fast)]
    // With equal costs a route's tie goes to the smaller relay id (dijkstra.ts): make that one slow,
    // so only measured costs can move the route to the other.
    const [slowRelay, fastRelay] = r1.id < r2.id ? [r1, r2] : [r2, r1]
    const a = await makeMesh({ ...fast, listen: false })
    const d = await makeMesh({ ...fast, listen: false })
    const slow = await tcpProxy(Number(new URL(slowRelay.addresses[0]!).port), { delayMs: 40 }) // RTT ≈ 80 ms
    await a.connect(`${slowRelay.id}@${slow.url}`)
    await a.connect(fastRelay.addresses[0]!)
    await d.connect(slowRelay.addresses[0]!)
    await d.connect(fastRelay.addresses[0]!)
    // a — slow relay costs ~10 + 80 (a hop plus its RTT) once measured (the first link report,
    // RTT_REPORT_MS after the first beats): both ends route around it.
    await until(() => routeTo(a, d.id)?.via === fastRelay.id && routeTo(d, a.id)?.via === fastRelay.id, { timeoutMs: 20_000, label: 'a and d route through the fast relay' })
    expect(routeTo(a, d.id)).toMatchObject({ hops: 2 })
    const forwarded = async (m: Mesh): Promise<number> => (await m._ioStats()).reduce((t, x) => t + x.relay.forwarded, 0)
    const before = await Promise.all([slowRelay, fastRelay].map(forwarded))
    const got: number[] = []
    d.on('message', (m) => { if (m.from === a.id) got.push(m.payload as number) })
    for (let i = 0; i < 200; i++) await a.send(d.id, i)
    await until(() => got.length >= 200, { label: () => `all 200 delivered (have ${got.length})` })
    expect(got).toEqual(Array.from({ length: 200 }, (_, i) => i))
    const after = await Promise.all([slowRelay, fastRelay].map(forwarded))
    expect(after[0]! - before[0]!).toBe(0)
    expect(after[1]! - before[1]!).toBeGreaterThan(0)
  })

  it('a forged LSA is dropped and not flooded; an authentic one is flooded to the other neighbours', async () => {
    const a = await makeMesh()
    const r1 = await rawHandshake(a.addresses[0]!)
    const r2 = await rawHandshake(a.addresses[0]!)
    await until(() => a.routes().length === 2, { label: 'a routes to both raw peers' })
    const x = generateIdentity()
    const y = generateIdentity()
    const routing = (payload: Uint8Array): Uint8Array => encodeFrame({ version: 1, type: FrameType.ROUTING, lane: Lane.CONTROL, flags: 0, src: null, dst: null, stream: 0, seq: 0, payload })
    const originsAtR2 = (): string[] => r2.frames.filter((f) => f.type === FrameType.ROUTING && f.payload !== null).map((f) => decodeLsa(f.payload!).origin)
    // An LSA in y's name, signed by x's key, then a real one from x.
    r1.ws.send(routing(encodeLsa(createLsa({ id: y.id, privateKey: x.privateKey }, 7, [{ peer: r1.id, cost: 1 }]))))
    r1.ws.send(routing(encodeLsa(createLsa(x, 7, [{ peer: r1.id, cost: 1 }]))))
    await until(() => originsAtR2().includes(x.id), { label: 'the authentic LSA reaches r2' })
    // Frames from one connection are handled in order: the forged one, sent first, was dropped, not flooded.
    expect(originsAtR2()).not.toContain(y.id)
    // a floods its own LSA (naming both raw peers) too.
    await until(() => originsAtR2().includes(a.id), { label: "a's own LSA reaches r2" })
    r1.ws.close()
    r2.ws.close()
  })
})
