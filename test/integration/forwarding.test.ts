import { describe, it, expect, afterEach } from 'vitest'
import { mkdtemp } from 'node:fs/promises'
import { seededKeyPair } from '../helpers/ed25519.js'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Mesh, MeshOptions } from '../../dist/src/index.js'
import { makeMesh, closeAll, until, waitFor } from '../helpers/mesh.js'

afterEach(closeAll)

const fast = { heartbeat: { intervalMs: 100, missesUnhealthy: 3, missesDead: 6 }, reconnect: { initialDelayMs: 50, maxDelayMs: 500 } }

/** Wait until `from` has a route to `to` (through anyone). */
async function routed (from: Mesh, to: Mesh, timeoutMs = 10_000): Promise<void> {
  await until(() => from.routes().some((r) => r.to === to.id), { timeoutMs, label: `${from.id.slice(0, 6)} routes to ${to.id.slice(0, 6)}` })
}

/** Chain a → b ← c: b listens, a and c are dial-only and reach each other only through b. */
async function chain (o: { b?: MeshOptions; c?: MeshOptions } = {}): Promise<{ a: Mesh; b: Mesh; c: Mesh }> {
  const b = await makeMesh({ ...fast, ...o.b })
  const a = await makeMesh({ ...fast, listen: false })
  const c = await makeMesh({ ...fast, ...o.c, listen: false })
  await a.connect(b.addresses[0] as string)
  await c.connect(b.addresses[0] as string)
  await routed(a, c)
  await routed(c, a)
  return { a, b, c }
}

/**
 * Chain a → b ← c where c keeps its identity in a dataDir: `restartC` closes
 * c and starts it again under the same id, linked to b again.
 */
async function restartableChain (): Promise<{ a: Mesh; b: Mesh; c1: Mesh; restartC: () => Promise<Mesh> }> {
  const dir = await mkdtemp(join(tmpdir(), 'mw-restart-'))
  const b = await makeMesh(fast)
  const a = await makeMesh({ ...fast, listen: false })
  const c1 = await makeMesh({ ...fast, listen: false, dataDir: dir })
  await a.connect(b.addresses[0] as string)
  await c1.connect(b.addresses[0] as string)
  const restartC = async (): Promise<Mesh> => {
    await c1.close()
    const c2 = await makeMesh({ ...fast, listen: false, dataDir: dir })
    expect(c2.id).toBe(c1.id)
    await c2.connect(b.addresses[0] as string)
    return c2
  }
  return { a, b, c1, restartC }
}

describe('multi-hop forwarding', () => {
  it('chain a → b ← c with dial-only ends: messages and requests travel through b, both ways, exactly once and in order', async () => {
    const { a, b, c } = await chain()
    const r = a.routes().find((x) => x.to === c.id)
    expect(r).toMatchObject({ to: c.id, via: b.id, hops: 2 })
    expect(a.peers().map((p) => p.id)).not.toContain(c.id) // not linked directly
    const got: number[] = []
    const bSaw: unknown[] = []
    c.on('message', (m) => { if (m.from === a.id) got.push(m.payload as number) })
    b.on('message', (m) => { bSaw.push(m) })
    for (let i = 0; i < 500; i++) await a.send(c.id, i)
    await until(() => got.length >= 500, { label: 'all 500 relayed' })
    expect(got).toEqual(Array.from({ length: 500 }, (_, i) => i))
    expect(bSaw).toEqual([]) // the relay never surfaces them
    c.handle('whoami', (_p, ctx) => ({ me: c.id, you: ctx.from }))
    expect(await a.request(c.id, 'whoami', null, { timeoutMs: 5000 })).toEqual({ me: c.id, you: a.id })
    const back = waitFor(a, 'message', { filter: (m: any) => m.from === c.id })
    await c.send(a.id, 'hi a')
    expect((await back).payload).toBe('hi a')
    expect(await a.send(c.id, 'acked', { ack: true })).toBeTypeOf('string')
  })

  it('relay and destination with a 1 KiB maxMessageBytes take batched envelopes larger than their message limit, in order, links kept', async () => {
    const small = { maxMessageBytes: 1024 }
    const { a, b, c } = await chain({ b: small, c: small })
    const base = (await b._ioStats()).reduce((t, s) => t + s.relay.forwarded, 0)
    const got: number[] = []
    c.on('message', (m) => { if (m.from === a.id) got.push((m.payload as Uint8Array)[0]! + 256 * (m.payload as Uint8Array)[1]!) })
    const N = 400
    // Queued without waiting for each other: they share envelopes of several KiB.
    await Promise.all(Array.from({ length: N }, async (_, i) => await a.send(c.id, Buffer.alloc(900, 0).fill(i & 0xff, 0, 1).fill(i >> 8, 1, 2))))
    await until(() => got.length >= N, { label: () => `all ${N} relayed (have ${got.length})` })
    expect(got).toEqual(Array.from({ length: N }, (_, i) => i))
    const envelopes = (await b._ioStats()).reduce((t, s) => t + s.relay.forwarded, 0) - base
    expect(envelopes).toBeLessThan(N / 2) // batched: more than one 900 B message per envelope, above c's 1 KiB frame limit
    const back = waitFor(c, 'message', { filter: (m: any) => m.from === a.id })
    await a.send(c.id, 'still linked')
    expect((await back).payload).toBe('still linked')
    const drops = (await Promise.all([a, b, c].map(async (m) => await m._ioStats()))).flat().map((s) => s.relay.dropped['no-route'] ?? 0)
    expect(drops.every((n) => n === 0)).toBe(true)
  })

  it('a relay that loses the first envelopes of a stream: the destination does not start at a later frame, and gets every message once, in order', async () => {
    const { a, b, c } = await chain()
    await b._dropRelayed(c.id, 3)
    const got: number[] = []
    c.on('message', (m) => { if (m.from === a.id) got.push(m.payload as number) })
    const N = 10
    for (let i = 0; i < N; i++) {
      await a.send(c.id, i)
      await new Promise((resolve) => setTimeout(resolve, 5)) // one envelope each: later ones get through first
    }
    // c has no state for a's stream: taking the first frame to arrive (seq 4) as its start lost 1..3, acknowledged.
    // It waits for seq 1, which a resends after its relay timeout.
    await until(() => got.length >= N, { label: () => `all ${N} delivered (have ${got.join(',')})` })
    expect(got).toEqual(Array.from({ length: N }, (_, i) => i))
    const dropped = (await b._ioStats()).reduce((t, s) => t + (s.relay.dropped.test ?? 0), 0)
    expect(dropped).toBe(3)
    expect(c._deliveryStats().peers[a.id]).toMatchObject({ delivered: N })
  })

  it('a relay that hands over a restarted sender\'s old envelopes late (its base and first messages): nothing is delivered twice, and the new process\'s stream goes on at once', async () => {
    const key = seededKeyPair().privateKey // never generateKeyPairSync in tests: see helpers/ed25519.ts
    const b = await makeMesh(fast)
    const a1 = await makeMesh({ ...fast, listen: false, identity: { privateKey: key } })
    const c = await makeMesh({ ...fast, listen: false })
    await a1.connect(b.addresses[0] as string)
    await c.connect(b.addresses[0] as string)
    await routed(a1, c)
    const got: number[] = []
    c.on('message', (m) => { if (m.from === a1.id) got.push(m.payload as number) })
    // b keeps a copy of a1's first envelopes to c (the stream's base and first messages) while it relays them.
    await b._echoRelayed(c.id, 3)
    for (let i = 0; i < 5; i++) {
      await a1.send(c.id, i)
      await new Promise((resolve) => setTimeout(resolve, 5)) // one envelope each
    }
    await until(() => got.length >= 5, { label: () => `a1's 5 delivered (have ${got.join(',')})` })
    // a1 crashes; a2 is the same node (same key) without a dataDir: a new stream epoch.
    await a1.destroy()
    const a2 = await makeMesh({ ...fast, listen: false, identity: { privateKey: key } })
    expect(a2.id).toBe(a1.id)
    await a2.connect(b.addresses[0] as string)
    await routed(a2, c)
    for (let i = 100; i < 105; i++) await a2.send(c.id, i)
    await until(() => got.length >= 10, { label: () => `a2's first 5 delivered (have ${got.join(',')})` })
    const dupsBefore = c._deliveryStats().peers[a1.id]?.duplicates ?? 0
    // Now b hands a1's old envelopes over again: on the old rule their base restarted a1's epoch at c and 0, 1, 2 came twice.
    await b._echoRelayed(c.id, 0)
    for (let i = 105; i < 110; i++) await a2.send(c.id, i)
    await until(() => got.length >= 15 && (c._deliveryStats().peers[a1.id]?.duplicates ?? 0) > dupsBefore, { label: () => `a2's next 5 delivered and the old copies seen (have ${got.join(',')})` })
    expect(got).toEqual([0, 1, 2, 3, 4, ...Array.from({ length: 10 }, (_, i) => 100 + i)])
  })

  it('diamond a → {b, c} → d: when the relay in use closes, traffic moves to the other one with 0 lost, 0 duplicated, 0 reordered', async () => {
    const b = await makeMesh(fast)
    const c = await makeMesh(fast)
    const a = await makeMesh({ ...fast, listen: false })
    const d = await makeMesh({ ...fast, listen: false })
    for (const x of [a, d]) { await x.connect(b.addresses[0] as string); await x.connect(c.addresses[0] as string) }
    await routed(a, d)
    await routed(d, a)
    const got: number[] = []
    let last = performance.now()
    let gap = 0
    d.on('message', (m) => {
      if (m.from !== a.id) return
      const now = performance.now()
      gap = Math.max(gap, now - last)
      last = now
      got.push(m.payload as number)
    })
    const N = 2000
    let sent = 0
    const sending = (async () => {
      for (; sent < N; sent++) {
        await a.send(d.id, sent)
        if (sent % 20 === 0) await new Promise((resolve) => setTimeout(resolve, 1))
      }
    })()
    await until(() => got.length > 300, { label: 'stream flowing' })
    const via = a.routes().find((r) => r.to === d.id)?.via
    expect([b.id, c.id]).toContain(via)
    const relay = via === b.id ? b : c
    gap = 0
    last = performance.now()
    await relay.destroy() // sockets close: a and d see it at once
    await sending
    await until(() => got.length >= N, { timeoutMs: 15_000, label: () => `all ${N} delivered (have ${got.length})` })
    expect(got).toEqual(Array.from({ length: N }, (_, i) => i))
    // Report the longest pause around the switch (the figure lives in perf/).
    console.log(`diamond: longest delivery gap across the relay's close ${gap.toFixed(1)} ms`)
  })
})

describe('pub/sub through relays', () => {
  it('a subscriber reached only through a relay gets publications once, in order', async () => {
    const b = await makeMesh(fast)
    const a = await makeMesh({ ...fast, listen: false })
    const c = await makeMesh({ ...fast, listen: false })
    await a.connect(b.addresses[0] as string)
    await c.connect(b.addresses[0] as string)
    const got: number[] = []
    c.subscribe('news', (m) => { if (m.from === a.id) got.push(m.payload as number) })
    await routed(a, c)
    // Until c's subscription reached a (through b), a publication reaches fewer nodes.
    await until(async () => (await a.publish('news', -1)) === 1, { label: 'a knows c subscribes' })
    for (let i = 0; i < 50; i++) await a.publish('news', i)
    await until(() => got.filter((x) => x >= 0).length >= 50, { label: 'all 50 publications' })
    expect(got.filter((x) => x >= 0)).toEqual(Array.from({ length: 50 }, (_, i) => i))
  })

  it('nodes that subscribe to nothing send routed peers no subscription frames (a join would cost relays 2N frames)', async () => {
    const { a, c } = await chain()
    // Each side's first message follows anything it queued for the other on the route's arrival (one stream, in order).
    await a.send(c.id, 'a to c', { ack: true })
    await c.send(a.id, 'c to a', { ack: true })
    expect(c._deliveryStats().peers[a.id]).toMatchObject({ sent: 1, delivered: 1 })
    expect(a._deliveryStats().peers[c.id]).toMatchObject({ sent: 1, delivered: 1 })
  })

  it('a subscriber restarted under its id (dataDir) without its subscriptions stops getting publications: its stray one puts the publisher right', async () => {
    const { a, c1, restartC } = await restartableChain()
    c1.subscribe('news', () => {})
    await routed(a, c1)
    await until(async () => (await a.publish('news', -1)) === 1, { label: 'a knows c subscribes' })
    const c2 = await restartC()
    await routed(a, c2)
    await routed(c2, a)
    // a still holds c's old subscription: its next publication goes to c2, which answers with a 'del'.
    await until(async () => {
      if ((await a.publish('news', 'stale?')) === 0) return true
      await new Promise((resolve) => setTimeout(resolve, 20)) // poll pace: each check is a publication
      return false
    }, { timeoutMs: 10_000, label: 'a learns c no longer subscribes' })
  })

  it('a publisher restarted under its id (dataDir) learns the subscriptions of a node it reaches only through a relay again', async () => {
    const { a, c1, restartC } = await restartableChain()
    const got: unknown[] = []
    a.subscribe('news', (m) => { got.push(m.payload) })
    await routed(c1, a)
    await until(async () => (await c1.publish('news', 'one')) === 1, { label: 'c1 knows a subscribes' })
    // The restarted publisher starts with an empty view of everyone's subscriptions:
    // a must send its set again once c is reachable again (its route left a's table while c was away).
    const c2 = await restartC()
    await routed(c2, a)
    await until(async () => (await c2.publish('news', 'two')) === 1, { timeoutMs: 10_000, label: 'c2 learns a subscribes' })
    await until(() => got.includes('two'), { label: () => `a gets c2's publication (has ${JSON.stringify(got)})` })
  })
})
