// Relaying between different IO workers of one node: a relay with
// `threads: { io: 2 }` whose two links are on different workers passes
// FORWARD envelopes through the cross-worker rings (never the main thread).
// Links land on workers deterministically: a listen URL j belongs to worker
// j % threads.io (Supervisor.start), so a dial to addresses[i] is accepted
// by worker i. Each test also checks that from the per-worker stats.
import { describe, it, expect, afterEach } from 'vitest'
import type { Mesh } from '../../dist/src/index.js'
import type { IoWorkerStats } from '../../dist/src/actor/protocol.js'
import { routedHome } from '../../dist/src/io/cross-worker.js'
import { makeMesh, closeAll, until } from '../helpers/mesh.js'

afterEach(closeAll)

const fast = { heartbeat: { intervalMs: 100, missesUnhealthy: 3, missesDead: 6 }, reconnect: { initialDelayMs: 50, maxDelayMs: 500 } }
// Two listen URLs must differ (options reject duplicates): the second binds another loopback address.
const twoWorkers = { ...fast, threads: { io: 2 }, listen: ['ws://127.0.0.1:0', 'ws://127.0.0.2:0'] }

async function routed (from: Mesh, to: Mesh, timeoutMs = 10_000): Promise<void> {
  await until(() => from.routes().some((r) => r.to === to.id && r.via !== to.id), { timeoutMs, label: `${from.id.slice(0, 6)} routes to ${to.id.slice(0, 6)}` })
}

/** Wait until each of `m`'s IO workers holds exactly the given number of direct peers. */
async function peersPerWorker (m: Mesh, want: number[], label: string): Promise<IoWorkerStats[]> {
  let stats: IoWorkerStats[] = []
  await until(async () => {
    // A worker that is restarting answers nothing: ask again.
    stats = await m._ioStats().catch(() => [])
    return stats.length === want.length && stats.every((s, i) => s.peers === want[i])
  }, { timeoutMs: 10_000, label }).catch((err: Error) => {
    throw new Error(`${err.message} (peers per worker: ${JSON.stringify(stats.map((s) => s.peers))})`)
  })
  return stats
}

/** Send `n` numbered messages each way between a and c at once; both sides get them exactly once, in order. */
async function exchange (a: Mesh, c: Mesh, from: number, n: number): Promise<void> {
  const atC: number[] = []
  const atA: number[] = []
  const onC = (m: { from: string; payload: unknown }): void => { if (m.from === a.id) atC.push(m.payload as number) }
  const onA = (m: { from: string; payload: unknown }): void => { if (m.from === c.id) atA.push(m.payload as number) }
  c.on('message', onC)
  a.on('message', onA)
  try {
    await Promise.all([
      (async () => { for (let i = from; i < from + n; i++) await a.send(c.id, i) })(),
      (async () => { for (let i = from; i < from + n; i++) await c.send(a.id, i) })(),
    ])
    await until(() => atC.length >= n && atA.length >= n, { timeoutMs: 20_000, label: () => `${n} each way (a→c ${atC.length}, c→a ${atA.length})` })
    const want = Array.from({ length: n }, (_, i) => from + i)
    expect(atC).toEqual(want)
    expect(atA).toEqual(want)
  } finally {
    c.off('message', onC)
    a.off('message', onA)
  }
}

/** a → b ← c, dial-only ends, a on b's worker 0 and c on b's worker 1. */
async function chainAcrossWorkers (): Promise<{ a: Mesh; b: Mesh; c: Mesh }> {
  const b = await makeMesh(twoWorkers)
  expect(b.addresses).toHaveLength(2)
  const a = await makeMesh({ ...fast, listen: false })
  const c = await makeMesh({ ...fast, listen: false })
  await a.connect(b.addresses[0] as string)
  await c.connect(b.addresses[1] as string)
  // The proof the links are on different workers: one direct peer on each.
  await peersPerWorker(b, [1, 1], 'a on b/io0, c on b/io1')
  await routed(a, c)
  await routed(c, a)
  return { a, b, c }
}

const sum = (stats: IoWorkerStats[], f: (s: IoWorkerStats) => number): number => stats.reduce((t, s) => t + f(s), 0)

describe('relaying between IO workers of one node', () => {
  it('a relay with threads.io 2 and its links on different workers forwards 600 messages each way through the cross-worker rings; its host never sees them', async () => {
    const { a, b, c } = await chainAcrossWorkers()
    const bSaw: unknown[] = []
    b.on('message', (m) => { bSaw.push(m) })
    const before = await b._ioStats()
    await exchange(a, c, 0, 600)
    expect(bSaw).toEqual([])
    const after = await b._ioStats()
    // Both directions crossed: io0 handed a's envelopes to io1 and took c's from it, and the reverse.
    for (const i of [0, 1]) {
      const crossOut = after[i]!.relay.crossOut - before[i]!.relay.crossOut
      const crossIn = after[i]!.relay.crossIn - before[i]!.relay.crossIn
      expect(crossOut, `io${i} handed envelopes to the other worker`).toBeGreaterThan(0)
      expect(crossIn, `io${i} took envelopes from the other worker`).toBeGreaterThan(0)
    }
    // Every envelope a worker forwarded went through the ring (neither worker has both links).
    expect(sum(after, (s) => s.relay.crossOut) - sum(before, (s) => s.relay.crossOut)).toBe(sum(after, (s) => s.relay.forwarded) - sum(before, (s) => s.relay.forwarded))
    // Requests and { ack: true } come back across the workers too.
    c.handle('whoami', (_p, ctx) => ({ me: c.id, you: ctx.from }))
    expect(await a.request(c.id, 'whoami', null, { timeoutMs: 5000 })).toEqual({ me: c.id, you: a.id })
    expect(await a.send(c.id, 'acked', { ack: true })).toBeTypeOf('string')
  })

  it('the relay\'s own traffic to a member behind a link on another IO worker than its routed actor goes through the rings both ways', async () => {
    const b = await makeMesh(twoWorkers)
    const x = await makeMesh(fast)
    // maxPeers 1: y stays behind x (it would otherwise dial b, learned by gossip).
    const y = await makeMesh({ ...fast, listen: false, maxPeers: 1 })
    await y.connect(x.addresses[0] as string)
    // y's routed actor on b lives on routedHome(y); x links on the other worker.
    const home = routedHome(y.id, 2)
    const hop = 1 - home
    await x.connect(b.addresses[hop] as string)
    await peersPerWorker(b, hop === 0 ? [1, 0] : [0, 1], `x on b/io${hop}`)
    await routed(b, y)
    await routed(y, b)
    const got: number[] = []
    y.on('message', (m) => { if (m.from === b.id) got.push(m.payload as number) })
    const back: number[] = []
    b.on('message', (m) => { if (m.from === y.id) back.push(m.payload as number) })
    const before = await b._ioStats()
    await Promise.all([
      (async () => { for (let i = 0; i < 500; i++) await b.send(y.id, i) })(),
      (async () => { for (let i = 0; i < 500; i++) await y.send(b.id, i) })(),
    ])
    await until(() => got.length >= 500 && back.length >= 500, { timeoutMs: 20_000, label: () => `500 each way (b→y ${got.length}, y→b ${back.length})` })
    expect(got).toEqual(Array.from({ length: 500 }, (_, i) => i))
    expect(back).toEqual(Array.from({ length: 500 }, (_, i) => i))
    y.handle('echo', (p) => p)
    expect(await b.request(y.id, 'echo', 'ping', { timeoutMs: 5000 })).toBe('ping')
    const after = await b._ioStats()
    expect(after[home]!.routedVia[y.id]).toBe(x.id) // the actor is on its home worker...
    expect(after[hop]!.routedVia[y.id]).toBeUndefined() // ...and only there
    // Its batches went to the worker owning x's link, y's envelopes came back from it.
    expect(after[home]!.relay.crossOut - before[home]!.relay.crossOut).toBeGreaterThan(0)
    expect(after[home]!.relay.crossIn - before[home]!.relay.crossIn).toBeGreaterThan(0)
    expect(after[hop]!.relay.crossIn - before[hop]!.relay.crossIn).toBeGreaterThan(0)
  })

  it('a crashed and restarted relay IO worker does not wedge relaying: links come back on it and traffic crosses again', async () => {
    const { a, b, c } = await chainAcrossWorkers()
    await exchange(a, c, 0, 100)
    // Worker 0: a comes back to it whichever way it dials (its kept link and
    // membership discovery both use b's first address; a crashed worker 1
    // could see c come back through discovery on worker 0 instead).
    b._crashIoWorker(0)
    await until(async () => (await b.metrics().catch(() => '')).includes('meshwork_worker_restarts_total 1'), { timeoutMs: 10_000, label: 'io0 restarted' })
    await peersPerWorker(b, [1, 1], 'a back on b/io0')
    await routed(a, c)
    await routed(c, a)
    const before = await b._ioStats()
    await exchange(a, c, 100, 300)
    const after = await b._ioStats()
    expect(after[0]!.relay.crossOut - before[0]!.relay.crossOut).toBeGreaterThan(0)
    expect(after[1]!.relay.crossOut - before[1]!.relay.crossOut).toBeGreaterThan(0)
  })
})
