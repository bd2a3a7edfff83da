import { describe, it, expect, afterEach } from 'vitest'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createPrivateKey, randomBytes } from 'node:crypto'
import { pino } from 'pino'
import { makeMesh, closeAll, waitFor, collect, until } from '../helpers/mesh.js'
import { cutAllProxies, tcpProxy } from '../helpers/tcp-proxy.js'

afterEach(async () => {
  cutAllProxies()
  await closeAll()
})

describe('several nodes', () => {
  it('three nodes in a triangle exchange messages on every link', async () => {
    const [a, b, c] = [await makeMesh(), await makeMesh(), await makeMesh()]
    await a.connect(b.addresses[0] as string)
    await b.connect(c.addresses[0] as string)
    await c.connect(a.addresses[0] as string)
    for (const [m, n] of [[a, 2], [b, 2], [c, 2]] as const) await until(() => m.peers().filter((p) => p.state === 'healthy').length === n, { label: `${m.id} has ${n} peers` })
    const nodes = [a, b, c]
    const inbox = nodes.map((n) => collect(n, 200))
    for (const from of nodes) for (const to of nodes) if (from !== to) for (let i = 0; i < 100; i++) void from.send(to.id, { from: from.id, i })
    const got = await Promise.all(inbox)
    for (const [k, msgs] of got.entries()) {
      const me = nodes[k]
      for (const other of nodes.filter((n) => n !== me)) {
        const seq = msgs.filter((m) => m.from === other.id).map((m) => m.payload.i)
        expect(seq).toEqual(Array.from({ length: 100 }, (_, i) => i))
      }
    }
  })

  it('simultaneous dial: both sides converge on exactly one connection (larger id keeps its outbound)', async () => {
    for (let round = 0; round < 5; round++) {
      const a = await makeMesh()
      const b = await makeMesh()
      const [ra, rb] = await Promise.all([a.connect(b.addresses[0] as string), b.connect(a.addresses[0] as string)])
      expect(ra.id).toBe(b.id)
      expect(rb.id).toBe(a.id)
      await until(() => a.peers().length === 1 && b.peers().length === 1 &&
        a.peers()[0]?.state === 'healthy' && b.peers()[0]?.state === 'healthy', { label: 'one healthy peer each' })
      // Exactly one live link per side, and it is the one dialed by the larger id.
      const larger = a.id > b.id ? a : b
      const smaller = larger === a ? b : a
      await until(() => larger.peers()[0]?.direction === 'outbound' && smaller.peers()[0]?.direction === 'inbound', { label: 'the larger id\'s outbound survives' })
      // The losing connection is closed by both ends; once its close handshake is done each side holds one socket.
      const sockets = async (m: any): Promise<number> => ((await m._ioStats()) as Array<{ connections: number }>).reduce((n, w) => n + w.connections, 0)
      await until(async () => await sockets(a) === 1 && await sockets(b) === 1, { label: 'one socket per side' })
      // And it carries traffic both ways.
      const got = collect(b, 1)
      await a.send(b.id, round)
      expect((await got)[0].payload).toBe(round)
      await closeAll()
    }
  })

  it('dialing an already linked peer resolves to the existing link', async () => {
    const a = await makeMesh()
    const b = await makeMesh()
    await a.connect(b.addresses[0] as string)
    const again = await a.connect(b.addresses[0] as string)
    expect(again.id).toBe(b.id)
    await until(async () => ((await (a as any)._ioStats()) as Array<{ connections: number }>)[0]?.connections === 1, { label: 'duplicate closed' })
    expect(a.peers()).toHaveLength(1)
  })

  it('a dialer restarted (same id) while the other end still holds its old connection half-open is linked at once: the new connection replaces the old', async () => {
    // Heartbeats that would take 10 s to give up on the half-open connection: longer than this test may take.
    const hb = { heartbeat: { intervalMs: 100, missesUnhealthy: 50, missesDead: 100 } }
    const dir = await mkdtemp(join(tmpdir(), 'mw-halfopen-'))
    const b = await makeMesh(hb)
    const px = await tcpProxy(Number(new URL(b.addresses[0] as string).port))
    const c1 = await makeMesh({ ...hb, listen: false, dataDir: dir })
    await c1.connect(px.url)
    await until(() => b.peers().some((p) => p.id === c1.id && p.state === 'healthy'), { label: 'b sees c1' })
    // c1's host vanishes without a FIN: b keeps the connection as it was.
    px.freeze()
    await c1.destroy()
    const c2 = await makeMesh({ ...hb, listen: false, dataDir: dir })
    expect(c2.id).toBe(c1.id)
    const got = collect(b, 1)
    const linked = await c2.connect(b.addresses[0] as string)
    expect(linked.id).toBe(b.id)
    await c2.send(b.id, 'back', { ack: true, signal: AbortSignal.timeout(3000) })
    expect((await got)[0].payload).toBe('back')
    // b holds one socket for c: the new one.
    await until(async () => ((await (b as any)._ioStats()) as Array<{ connections: number }>)[0]?.connections === 1, { label: 'the half-open connection dropped' })
  })

  it('two processes holding one key (a misconfiguration) do not evict each other\'s link for ever: the one evicted does not dial again', async () => {
    const key = createPrivateKey({ key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), randomBytes(32)]), format: 'der', type: 'pkcs8' })
    const p = await makeMesh()
    let ups = 0
    p.on('peer:up', () => { ups++ })
    // The evicted one says so (and stops dialing): the quiet window starts there.
    const evicted: unknown[] = []
    const logger = pino({ level: 'warn' }, { write: (line: string) => { if ((JSON.parse(line) as { event?: string }).event === 'link:evicted') evicted.push(line) } })
    const x1 = await makeMesh({ listen: false, identity: { privateKey: key }, logger })
    const x2 = await makeMesh({ listen: false, identity: { privateKey: key }, logger })
    expect(x2.id).toBe(x1.id)
    await x1.connect(p.addresses[0] as string)
    await x2.connect(p.addresses[0] as string).catch(() => {})
    await until(() => evicted.length > 0, { label: 'one of the two warned that it was evicted' })
    await until(() => p.peers().some((x) => x.id === x1.id && x.state === 'healthy'), { label: 'p linked to the survivor' })
    const settled = ups
    await new Promise((resolve) => setTimeout(resolve, 2000))
    // Evicting each other, p saw a new link every ~30 ms.
    expect(ups - settled).toBe(0)
    expect(p.peers().filter((x) => x.id === x1.id && x.state === 'healthy')).toHaveLength(1)
  })

  it('a relayed peer restarted (same id) while our route to it stayed up learns our subscriptions again (membership: a higher incarnation)', async () => {
    // Whether a's route to c goes and comes back across c's restart is a race (when it does, a sends
    // its subscriptions then anyway): three restarts, each a chance for the route to stay.
    const hb = { heartbeat: { intervalMs: 100, missesUnhealthy: 50, missesDead: 100 } }
    const dir = await mkdtemp(join(tmpdir(), 'mw-restart-sub-'))
    const b = await makeMesh(hb)
    const a = await makeMesh({ ...hb, listen: false })
    await a.connect(b.addresses[0] as string)
    const news: unknown[] = []
    a.subscribe('news', (m) => { news.push(m.payload) })
    for (let run = 0; run < 4; run++) {
      // c's host vanishes without a FIN after each run (a frozen proxy): b keeps the connection until the next c replaces it.
      const px = await tcpProxy(Number(new URL(b.addresses[0] as string).port))
      const c = await makeMesh({ ...hb, listen: false, dataDir: dir })
      await c.connect(px.url)
      await until(async () => (await c.publish('news', run)) === 1, { timeoutMs: 10_000, label: `c (run ${run}) learns that a subscribes` })
      await until(() => news.includes(run), { label: () => `a gets run ${run}'s publication (has ${JSON.stringify(news)})` })
      px.freeze()
      await c.destroy()
    }
  }, 60_000)

  it('a node with two IO workers spreads dials over them and still delivers', async () => {
    const hub = await makeMesh({ threads: { io: 2 } })
    const leaves = await Promise.all([1, 2, 3, 4].map(async () => await makeMesh()))
    for (const l of leaves) await hub.connect(l.addresses[0] as string)
    const stats = await (hub as any)._ioStats() as Array<{ peers: number }>
    expect(stats.map((s) => s.peers)).toEqual([2, 2])
    const inbox = leaves.map((l) => collect(l, 50))
    for (const l of leaves) for (let i = 0; i < 50; i++) void hub.send(l.id, i)
    for (const got of await Promise.all(inbox)) expect(got.map((m) => m.payload)).toEqual(Array.from({ length: 50 }, (_, i) => i))
    const back = collect(hub, 4)
    for (const l of leaves) await l.send(hub.id, l.id)
    expect(new Set((await back).map((m) => m.from))).toEqual(new Set(leaves.map((l) => l.id)))
  })

  it('peer:down fires when the other node closes', async () => {
    const a = await makeMesh()
    const b = await makeMesh()
    await a.connect(b.addresses[0] as string)
    const down = waitFor(a, 'peer:down')
    await b.close()
    expect(await down).toMatchObject({ id: b.id, state: 'disconnected' })
    expect(a.peers()[0]?.state).toBe('disconnected')
  })
})
