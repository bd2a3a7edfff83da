/**
 * Perf child process for the `detection` scenario: one or more meshwork
 * nodes with configurable heartbeat / reconnect / listen / dataDir, an event
 * log of every `peer:up`, `peer:down` and `peer:health` (stamped in the
 * listener itself), and commands that signal another process and time the
 * reaction here, on this process's own clock.
 *
 * Driven over IPC (../lib/ipc.ts); not meant to be run by hand.
 *
 * @module
 */
import { performance } from 'node:perf_hooks'
import { createMesh, type Mesh, type MeshOptions } from '../../src/index.js'
import { serve, type CpuResult } from '../lib/ipc.js'
import { CpuWindow, epochMs, round, sleep } from '../lib/measure.js'

type Kind = 'up' | 'down' | 'health'
/** One event seen by node `node`; `t` is performance.now() in the listener. */
interface Ev { readonly node: number; readonly kind: Kind; readonly peer: string; readonly state: string | undefined; readonly t: number }
interface Waiter { readonly match: (e: Ev) => boolean; readonly resolve: (e: Ev) => void }

const meshes: Mesh[] = []
const log: Ev[] = []
const waiters = new Set<Waiter>()
const cpu = new CpuWindow()

/** IO worker counters (`Mesh._ioStats()`) summed over every node of this process. */
interface IoSum { bytesIn: number; bytesOut: number; wsMessagesIn: number; wsMessagesOut: number; framesIn: number; framesOut: number; connections: number; peers: number }
const IO_KEYS: ReadonlyArray<keyof IoSum> = ['bytesIn', 'bytesOut', 'wsMessagesIn', 'wsMessagesOut', 'framesIn', 'framesOut', 'connections', 'peers']
let idleIo: IoSum = zeroIo()

function zeroIo (): IoSum {
  return { bytesIn: 0, bytesOut: 0, wsMessagesIn: 0, wsMessagesOut: 0, framesIn: 0, framesOut: 0, connections: 0, peers: 0 }
}

async function ioStats (): Promise<IoSum> {
  const sum = zeroIo()
  for (const per of await Promise.all(meshes.map(async (m) => await m._ioStats()))) {
    for (const s of per) for (const k of IO_KEYS) sum[k] += s[k]
  }
  return sum
}

function record (node: number, kind: Kind, peer: string, state?: string): void {
  const e: Ev = { node, kind, peer, state, t: performance.now() }
  log.push(e)
  for (const w of waiters) {
    if (w.match(e)) { waiters.delete(w); w.resolve(e) }
  }
}

/** The first logged event at or after `after` matching `match`, else the next one; `undefined` after `timeoutMs`. */
async function nextEvent (match: (e: Ev) => boolean, after: number, timeoutMs: number): Promise<Ev | undefined> {
  const m = (e: Ev): boolean => e.t >= after && match(e)
  const seen = log.find(m)
  if (seen !== undefined) return seen
  return await new Promise<Ev | undefined>((resolve) => {
    const w: Waiter = { match: m, resolve: (e) => { clearTimeout(timer); resolve(e) } }
    const timer = setTimeout(() => { waiters.delete(w); resolve(undefined) }, timeoutMs)
    waiters.add(w)
  })
}

function node (i: number): Mesh {
  const m = meshes[i]
  if (m === undefined) throw new Error(`no node ${i} (${meshes.length} started)`)
  return m
}

function indices (from?: number, to?: number): number[] {
  const out: number[] = []
  for (let i = from ?? 0; i < (to ?? meshes.length); i++) out.push(i)
  return out
}

type Signal = 'SIGSTOP' | 'SIGCONT' | 'SIGKILL'

const api = {
  /**
   * Start `count` nodes. `readyEpochMs` is taken right after the last
   * `createMesh` resolved (its listener is up).
   */
  async start (a: { count?: number; listen?: string | false; dataDir?: string; heartbeat?: MeshOptions['heartbeat']; reconnect?: MeshOptions['reconnect'] }): Promise<{ nodes: Array<{ id: string; addresses: string[] }>; readyEpochMs: number }> {
    const count = a.count ?? 1
    const made = await Promise.all(Array.from({ length: count }, async () => await createMesh({
      listen: a.listen ?? 'ws://127.0.0.1:0',
      logger: false,
      ...(a.dataDir === undefined ? {} : { dataDir: a.dataDir }),
      ...(a.heartbeat === undefined ? {} : { heartbeat: a.heartbeat }),
      ...(a.reconnect === undefined ? {} : { reconnect: a.reconnect }),
    })))
    const readyEpochMs = epochMs()
    for (const m of made) {
      const i = meshes.push(m) - 1
      m.on('peer:up', (p) => { record(i, 'up', p.id) })
      m.on('peer:down', (p) => { record(i, 'down', p.id) })
      m.on('peer:health', (h) => { record(i, 'health', h.peer, h.state) })
    }
    return { nodes: made.map((m) => ({ id: m.id, addresses: m.addresses })), readyEpochMs }
  },

  /**
   * Nodes [from, to) each dial every URL in `urls` that is not their own, all
   * at once. Dials that lose the duplicate tie-break resolve to the surviving
   * link; failures are returned, not thrown (a link may still come up from
   * the other side).
   */
  async connectAll (a: { urls: string[]; from?: number; to?: number }): Promise<{ dials: number; failed: string[] }> {
    const jobs: Array<Promise<unknown>> = []
    for (const i of indices(a.from, a.to)) {
      const m = node(i)
      for (const url of a.urls) if (!m.addresses.includes(url)) jobs.push(m.connect(url))
    }
    const r = await Promise.allSettled(jobs)
    return { dials: jobs.length, failed: r.flatMap((x) => (x.status === 'rejected' ? [String((x.reason as Error)?.message ?? x.reason)] : [])) }
  },

  /** Resolves once every node [from, to) has a healthy link to every id in `ids` (its own id excepted). */
  async waitLinked (a: { ids: string[]; from?: number; to?: number; timeoutMs: number }): Promise<{ ms: number }> {
    const t0 = performance.now()
    for (;;) {
      let missing = 0
      for (const i of indices(a.from, a.to)) {
        const m = node(i)
        const healthy = new Set(m.peers().filter((p) => p.state === 'healthy').map((p) => p.id))
        for (const id of a.ids) if (id !== m.id && !healthy.has(id)) missing++
      }
      if (missing === 0) return { ms: round(performance.now() - t0, 1) }
      if (performance.now() - t0 > a.timeoutMs) throw new Error(`${missing} link(s) still not healthy after ${a.timeoutMs} ms`)
      await sleep(10)
    }
  },

  /**
   * Send `signal` to process `pid`, then wait until every node [from, to) has
   * emitted `peer:down` for `peer`. Per node: ms from just before the
   * kill() to the listener, or null after `timeoutMs`; plus the health states
   * it went through for `peer` on the way.
   */
  async signalAndWaitDown (a: { pid: number; signal: Signal; peer: string; from?: number; to?: number; timeoutMs: number }): Promise<{ ms: Array<number | null>; states: string[][] }> {
    const nodes = indices(a.from, a.to)
    const t0 = performance.now()
    process.kill(a.pid, a.signal)
    const evs = await Promise.all(nodes.map(async (i) => await nextEvent((e) => e.node === i && e.kind === 'down' && e.peer === a.peer, t0, a.timeoutMs)))
    return {
      ms: evs.map((e) => (e === undefined ? null : round(e.t - t0, 2))),
      states: nodes.map((i) => log.filter((e) => e.node === i && e.kind === 'health' && e.peer === a.peer && e.t >= t0).map((e) => e.state ?? '?')),
    }
  },

  /**
   * SIGSTOP `pid`, SIGCONT it `pauseMs` later, and watch node `node`'s link
   * to `peer`: when it went unhealthy (ms after the stop), when it was
   * healthy again (ms after the SIGCONT; 0 if it never left healthy), and
   * every `peer:down` for `peer` from the stop until `settleMs` after it
   * was healthy again.
   */
  async stopCont (a: { pid: number; peer: string; node?: number; pauseMs: number; healthyTimeoutMs: number; settleMs: number }): Promise<{ pausedMs: number; unhealthyAfterStopMs: number | null; healthyAfterContMs: number | null; downs: number; states: string[] }> {
    const i = a.node ?? 0
    const t0 = performance.now()
    process.kill(a.pid, 'SIGSTOP')
    let tCont: number
    try {
      await sleep(a.pauseMs)
    } finally {
      tCont = performance.now()
      process.kill(a.pid, 'SIGCONT')
    }
    const forPeer = (e: Ev): boolean => e.node === i && e.peer === a.peer
    const healthy = await nextEvent((e) => forPeer(e) && e.kind === 'health' && e.state === 'healthy', tCont, a.healthyTimeoutMs)
    await sleep(a.settleMs)
    const seen = log.filter((e) => forPeer(e) && e.t >= t0)
    const unhealthy = seen.find((e) => e.kind === 'health' && e.state === 'unhealthy')
    return {
      pausedMs: round(tCont - t0, 1),
      unhealthyAfterStopMs: unhealthy === undefined ? null : round(unhealthy.t - t0, 2),
      healthyAfterContMs: healthy !== undefined ? round(healthy.t - tCont, 2) : unhealthy === undefined ? 0 : null,
      downs: seen.filter((e) => e.kind === 'down').length,
      states: seen.filter((e) => e.kind === 'health').map((e) => e.state ?? '?'),
    }
  },

  /**
   * Epoch ms (comparable across processes) of the first `kind` event of node
   * `node` for `peer` at or after `afterEpochMs`; throws after `timeoutMs`.
   */
  async waitEvent (a: { node?: number; peer: string; kind: Kind; afterEpochMs: number; timeoutMs: number }): Promise<{ epochMs: number }> {
    const i = a.node ?? 0
    const after = a.afterEpochMs - performance.timeOrigin
    const e = await nextEvent((x) => x.node === i && x.kind === a.kind && x.peer === a.peer, after, a.timeoutMs)
    if (e === undefined) throw new Error(`node ${i}: no peer:${a.kind} for ${a.peer.slice(0, 8)}… within ${a.timeoutMs} ms`)
    return { epochMs: epochMs(e.t) }
  },

  /** Per node: `peer:down` events for `peer` so far, and the link's current state. */
  linkState (a: { peer: string }): Array<{ downs: number; state: string | undefined }> {
    return meshes.map((m, i) => ({
      downs: log.filter((e) => e.node === i && e.kind === 'down' && e.peer === a.peer).length,
      state: m.peers().find((p) => p.id === a.peer)?.state,
    }))
  },

  /** Wall clock of this process, for the harness's clock-offset check. */
  clock: () => ({ epochMs: epochMs() }),

  /** The IO worker counters of every node of this process, summed (bytes and messages since start). */
  ioTotals: async () => await ioStats(),

  /** Start an idle window: process CPU (all threads) and the IO worker counters of every node. */
  async idleStart (): Promise<void> {
    idleIo = await ioStats()
    cpu.start()
  },

  /** End the idle window: CPU over it, and the counter deltas summed over this process's nodes. */
  async idleStop (): Promise<{ cpu: CpuResult; io: IoSum; nodes: number }> {
    const c = cpu.stop()
    const now = await ioStats()
    const d = { ...now }
    for (const k of IO_KEYS) {
      // connections / peers are levels, not counters: keep the value at the end.
      if (k !== 'connections' && k !== 'peers') d[k] -= idleIo[k]
    }
    return { cpu: c, io: d, nodes: meshes.length }
  },
}

export type LivenessNodeApi = typeof api

serve(api, {
  onExit: async () => { await Promise.all(meshes.map(async (m) => { await m.destroy() })) },
})
