// RouterService's link-state glue, in one thread: two services wired through
// fake IO workers (comlink over in-process MessageChannels, no worker
// threads). The sans-IO core is tested on a simulated clock in
// routing-service.test.ts; this checks the driver: timers, LSAs out through
// the IO worker of the link, routes to the host and to every IO worker.
import { describe, it, expect, afterEach, beforeAll } from 'vitest'
import type { ForwardingEntry, RouterHostCallbacks } from '../../../src/actor/protocol.js'
import { generateIdentity, type Identity } from '../../../src/identity/identity.js'
import { RouterService } from '../../../src/router/router-service.js'
import { decodeLsa } from '../../../src/routing/lsa.js'
import { attachFakeIo, closeFakeIos, until } from '../../helpers/fake-io.js'

type HostRoutes = Parameters<RouterHostCallbacks['routes']>

afterEach(closeFakeIos)

let keys: Identity[] = []
beforeAll(() => { keys = [generateIdentity(), generateIdentity(), generateIdentity(), generateIdentity()] })

interface FakeNode {
  id: string
  svc: RouterService
  host: { calls: HostRoutes[] }
  /** Tables pushed to each fake IO worker, by worker index. */
  tables: Map<number, ForwardingEntry[][]>
  /** Routing payloads the IO workers were asked to send. */
  sent: Array<{ to: string; payload: Uint8Array }>
}

/** A RouterService with routing, and a way to make fake IO workers for it. */
function makeNode (identity: Identity, deliver: (from: string, to: string, payload: Uint8Array) => void): FakeNode & { attach: (index: number) => Promise<void> } {
  const svc = new RouterService({ selfId: identity.id, join: 'open', protocolPeriodMs: 60_000, routing: { signer: identity, k: 3, maxHops: 8, tuning: { linkCost: 10 } } })
  const node: FakeNode = { id: identity.id, svc, host: { calls: [] }, tables: new Map(), sent: [] }
  const attach = async (index: number): Promise<void> => {
    await attachFakeIo(svc, index, {
      sendRouting: async (peerId, payload) => {
        // The router batches LSAs per neighbour; the wire would carry them one frame each.
        for (const p of Array.isArray(payload) ? payload : [payload]) {
          node.sent.push({ to: peerId, payload: p })
          deliver(identity.id, peerId, p)
        }
        return true
      },
      setRoutes: async (table) => {
        const list = node.tables.get(index) ?? []
        list.push(table)
        node.tables.set(index, list)
      },
    })
  }
  return { ...node, attach }
}

/** Both ends of a link claim it and see it up (as the IO workers report after a handshake). */
async function link (a: FakeNode, b: FakeNode, key: string): Promise<void> {
  for (const [x, y] of [[a, b], [b, a]] as const) {
    const r = await x.svc.claim({ connKey: key, worker: 0, peerId: y.id, dialerId: a.id })
    expect(r.ok).toBe(true)
    await x.svc.linkUp(key, [])
  }
}

function lastRoutes (n: FakeNode): HostRoutes[0] { return n.host.calls.at(-1)?.[0] ?? [] }

describe('RouterService: link-state routing driver', () => {
  it('chain a — b — c: LSAs flow through the IO workers, the host and every IO worker get the routes; a link down removes them', async () => {
    const nodes = new Map<string, ReturnType<typeof makeNode>>()
    const deliver = (from: string, to: string, payload: Uint8Array): void => { void nodes.get(to)?.svc.routing(from, payload) }
    const [a, b, c] = keys.map((k) => makeNode(k, deliver)) as [ReturnType<typeof makeNode>, ReturnType<typeof makeNode>, ReturnType<typeof makeNode>]
    for (const n of [a, b, c]) {
      nodes.set(n.id, n)
      await n.attach(0)
      await n.attach(1) // a second IO worker: it gets the same tables
      await n.svc.startMembership([], { status: () => {}, member: () => {}, routes: (routes, changes) => { n.host.calls.push([routes, changes]) }, lockLost: () => {}, lockRecreated: () => {}, forgotten: () => true })
    }
    await link(a, b, 'ab')
    await link(b, c, 'bc')
    await until(() => lastRoutes(a).some((r) => r.to === c.id), 'a routes to c')
    expect(lastRoutes(a).find((r) => r.to === c.id)).toEqual({ to: c.id, via: b.id, hops: 2, cost: 20, paths: [[b.id, c.id]] })
    expect(a.host.calls.flatMap(([, ch]) => ch)).toContainEqual({ to: c.id, via: b.id, previousVia: undefined })
    // Every attached IO worker holds the same, latest table.
    await until(() => a.tables.get(1)?.at(-1)?.some((f) => f.to === c.id) === true, 'worker 1 table')
    expect(a.tables.get(0)!.at(-1)).toEqual(a.tables.get(1)!.at(-1))
    expect(a.tables.get(0)!.at(-1)).toContainEqual({ to: c.id, via: b.id, alt: undefined, hops: 2, paths: [{ via: b.id, cost: 20 }] })
    // LSAs are signed by their origin and went only to linked peers.
    expect(a.sent.every((s) => s.to === b.id)).toBe(true)
    expect(a.sent.map((s) => decodeLsa(s.payload).origin)).toContain(a.id)

    // A worker that (re)attaches gets the current table at once.
    await a.attach(2)
    await until(() => a.tables.get(2)?.length === 1, 'worker 2 table')
    expect(a.tables.get(2)![0]).toEqual(a.tables.get(0)!.at(-1))

    // b — c goes down on both sides: a loses c (via null for the host), quickly.
    const t0 = performance.now()
    await b.svc.release('bc')
    await c.svc.release('bc')
    await until(() => !lastRoutes(a).some((r) => r.to === c.id), 'a loses c')
    const ms = performance.now() - t0
    expect(a.host.calls.at(-1)![1]).toEqual([{ to: c.id, via: undefined, previousVia: b.id }])
    expect(lastRoutes(a).map((r) => r.to)).toEqual([b.id])
    expect(ms).toBeLessThan(1_000)
  })

  it('a direct link is a route before the peer answers; leave() sends the flush through the link', async () => {
    const got: Array<{ from: string; to: string; payload: Uint8Array }> = []
    const a = makeNode(keys[0]!, (from, to, payload) => { got.push({ from, to, payload }) })
    await a.attach(0)
    await a.svc.startMembership([], { status: () => {}, member: () => {}, routes: (routes, changes) => { a.host.calls.push([routes, changes]) }, lockLost: () => {}, lockRecreated: () => {}, forgotten: () => true })
    const peer = keys[1]!.id
    await a.svc.claim({ connKey: 'k', worker: 0, peerId: peer, dialerId: a.id })
    await a.svc.linkUp('k', [])
    await until(() => lastRoutes(a).length === 1, 'direct route')
    expect(lastRoutes(a)).toEqual([{ to: peer, via: peer, hops: 1, cost: 10, paths: [[peer]] }])
    await until(() => got.some((g) => decodeLsa(g.payload).links.some((l) => l.peer === peer)), 'our LSA naming the peer')
    const before = got.length
    await a.svc.leave()
    const flush = got.slice(before).map((g) => decodeLsa(g.payload))
    expect(flush).toHaveLength(1)
    expect(flush[0]).toMatchObject({ origin: a.id, links: [] })
    expect(flush[0]!.ageMs).toBeGreaterThan(0)
    expect(a.svc.routingStats?.originated).toBeGreaterThanOrEqual(1)
  })

  it('a crashed IO worker takes its links out of the routes; its restart gets the current table', async () => {
    const a = makeNode(keys[0]!, () => {})
    await a.attach(0)
    await a.attach(1)
    await a.svc.startMembership([], { status: () => {}, member: () => {}, routes: (routes, changes) => { a.host.calls.push([routes, changes]) }, lockLost: () => {}, lockRecreated: () => {}, forgotten: () => true })
    const [p1, p2] = [keys[1]!.id, keys[2]!.id]
    await a.svc.claim({ connKey: 'k1', worker: 0, peerId: p1, dialerId: a.id })
    await a.svc.linkUp('k1', [])
    await a.svc.claim({ connKey: 'k2', worker: 1, peerId: p2, dialerId: a.id })
    await a.svc.linkUp('k2', [])
    await until(() => lastRoutes(a).length === 2, 'two direct routes')
    await a.svc.releaseWorker(0)
    await until(() => lastRoutes(a).length === 1, 'worker 0 links gone')
    expect(lastRoutes(a).map((r) => r.to)).toEqual([p2])
    expect(a.host.calls.at(-1)![1]).toEqual([{ to: p1, via: undefined, previousVia: p1 }])
    await a.attach(0) // the restarted worker
    await until(() => a.tables.get(0)?.at(-1)?.length === 1, 'restarted worker table')
    expect(a.tables.get(0)!.at(-1)).toEqual([{ to: p2, via: p2, alt: undefined, hops: 1, paths: [{ via: p2, cost: 10 }] }])
    await a.svc.leave()
  })

  it('routes computed before startMembership reach the host when it starts', async () => {
    const a = makeNode(keys[0]!, () => {})
    await a.attach(0)
    const peer = keys[2]!.id
    await a.svc.claim({ connKey: 'k', worker: 0, peerId: peer, dialerId: a.id })
    await a.svc.linkUp('k', [])
    await until(() => a.tables.get(0)?.length === 1, 'forwarding table')
    await a.svc.startMembership([], { status: () => {}, member: () => {}, routes: (routes, changes) => { a.host.calls.push([routes, changes]) }, lockLost: () => {}, lockRecreated: () => {}, forgotten: () => true })
    expect(a.host.calls).toEqual([[[{ to: peer, via: peer, hops: 1, cost: 10, paths: [[peer]] }], [{ to: peer, via: peer, previousVia: undefined }]]])
    await a.svc.leave()
  })

  it('LSAs a linked neighbour\'s IO worker could not send (connection being replaced) are followed by our whole database, once it can', async () => {
    const self = keys[0]!
    const peer = keys[1]!.id
    const svc = new RouterService({ selfId: self.id, join: 'open', protocolPeriodMs: 60_000, routing: { signer: self, k: 3, maxHops: 8, tuning: { linkCost: 10 } } })
    let open = false
    const delivered: Uint8Array[] = []
    let refused = 0
    await attachFakeIo(svc, 0, {
      sendRoutingMany: async (batch) => {
        if (!open) { refused += batch.length; return batch.map((b) => b.to) }
        for (const b of batch) delivered.push(...b.payloads)
        return []
      },
    })
    await svc.startMembership([], { status: () => {}, member: () => {}, routes: () => {}, lockLost: () => {}, lockRecreated: () => {}, forgotten: () => true })
    await svc.claim({ connKey: 'k', worker: 0, peerId: peer, dialerId: self.id })
    await svc.linkUp('k', [])
    // Our LSA naming the peer goes out and is refused: the connection is not open on the worker.
    await until(() => refused > 0, 'a refused send')
    open = true
    await until(() => delivered.some((p) => decodeLsa(p).origin === self.id && decodeLsa(p).links.some((l) => l.peer === peer)), 'our LSA naming the peer, resent')
    await svc.leave()
  })

  it('a flood leaves in one control-plane call per IO worker, not one per neighbour', async () => {
    const self = keys[0]!
    const svc = new RouterService({ selfId: self.id, join: 'open', protocolPeriodMs: 60_000, routing: { signer: self, k: 3, maxHops: 8, tuning: { linkCost: 10 } } })
    const calls: Array<Array<{ to: string; payloads: Uint8Array[] }>> = []
    let single = 0
    await attachFakeIo(svc, 0, { sendRoutingMany: async (batch) => { calls.push(batch); return [] }, sendRouting: async () => { single++; return true } })
    await svc.startMembership([], { status: () => {}, member: () => {}, routes: () => {}, lockLost: () => {}, lockRecreated: () => {}, forgotten: () => true })
    const peers = keys.slice(1).map((k) => k.id)
    for (const [i, p] of peers.entries()) {
      await svc.claim({ connKey: `k${i}`, worker: 0, peerId: p, dialerId: self.id })
      await svc.linkUp(`k${i}`, [])
    }
    const ours = (b: { payloads: Uint8Array[] }): boolean => b.payloads.some((p) => decodeLsa(p).links.length === peers.length)
    await until(() => calls.some((batch) => batch.filter(ours).length === peers.length), 'our LSA naming all three, to all three in one call')
    expect(single).toBe(0)
  })
})
