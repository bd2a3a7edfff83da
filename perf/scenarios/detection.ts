/**
 * Failure detection and heartbeat cost (issue 3 figures), every node in a
 * child process on loopback (liveness-node.ts). Every process the scenario
 * needs (~50; 22 with --quick) is forked up front, before anything is
 * measured; nodes start per figure. n = 10 trials per time figure (3 with
 * --quick, `--rounds N` overrides).
 *
 * 1. SIGSTOP → peer:down: node A (its own process) linked to a victim B
 *    (one node, its own process), both heartbeat 100 ms × missesDead 6. A's
 *    process sends the signal and takes the time in its `peer:down` listener,
 *    on one clock. Then B is SIGKILLed. Target ≤ 100 × 6 + 300 = 900 ms.
 * 2. kill -9 → peer:down: the same with SIGKILL (the socket-close path).
 *    1 and 2 alternate, trial by trial; victims start and link in batches
 *    of 5 so a trial never waits for a node to start. Victims dial A, so A
 *    keeps no re-dial loops to dead ports.
 * 3. SIGSTOP, SIGCONT 300 ms later (inside the 600 ms window), one victim for
 *    every trial: `peer:down` on either side (must be 0), and ms from the
 *    SIGCONT to A's `peer:health` healthy.
 * 4. Restart: B with a dataDir on a fixed URL (the port its first start got);
 *    A dialed B (reconnect 50/500 ms). SIGKILL B, wait for A's `peer:down`,
 *    start B again (process forked up front, mesh created after the down)
 *    on the same URL and dataDir; ms from B's `createMesh` resolving to A's
 *    `peer:up` (epoch timestamps of two processes). Target < 1 s.
 * 5. Agreement: 9 nodes in one process + a victim in its own, fully linked
 *    (every node dials every other), 100 ms × 6; the 9's process SIGKILLs the
 *    victim; ms until the last of the 9 emitted `peer:down`. Target < 3 s.
 *    A fresh victim per trial; the 9 stay (their re-dials of dead victims
 *    back off to 10 s, the default). --quick: 5 + 1 nodes.
 * 6. Heartbeat overhead: 16 nodes, 8 per process, fully linked, default
 *    heartbeat (1000 ms), idle: CPU per node (process.cpuUsage / wall / nodes,
 *    per process) and bytes per second per peer link from the IO workers'
 *    counters (`Mesh._ioStats()`: WebSocket payload bytes, both directions).
 *    Targets < 1 % of a core per node, < 1 KB/s (1000 B/s) per link.
 *    Control: the same with heartbeat 60 s (no beat in the window).
 *    Baseline: raw `ws` endpoints (procs/raw-heartbeat-node.ts), one worker
 *    thread each, the same links and message pattern, idling in two more
 *    processes over the same window. --quick: 8 nodes.
 *
 * @module
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import type { LivenessNodeApi } from '../procs/liveness-node.js'
import type { RawHeartbeatNodeApi } from '../procs/raw-heartbeat-node.js'
import type { Child } from '../lib/child.js'
import { procUrl } from '../lib/child.js'
import { epochMs, sleep } from '../lib/measure.js'
import type { ResultRecord, RunOptions, Scenario, ScenarioOutput } from '../lib/scenario.js'
import { LSDB_DEFAULTS } from '../../src/routing/link-state-db.js'
import { fixed, int, max, median, quantile, round } from '../lib/stats.js'

const FAST = { intervalMs: 100, missesUnhealthy: 2, missesDead: 6 } as const
const RECONNECT = { initialDelayMs: 50, maxDelayMs: 500 } as const
/** intervalMs × missesDead + 300 ms. */
const DETECT_BOUND_MS = FAST.intervalMs * FAST.missesDead + 300
const RESTART_BOUND_MS = 1_000
const AGREEMENT_BOUND_MS = 3_000
const CPU_BOUND_PCT = 1
/** 1 KB/s, read as 1000 B/s (the stricter reading). */
const BYTES_BOUND = 1_000
const PAUSE_MS = 300
/** The default heartbeat interval (figure 6 runs meshwork with its defaults). */
export const DEFAULT_INTERVAL_MS = 1_000
/** Bytes of one baseline heartbeat message: meshwork's PING / PONG frames measure about this (figure 6's bytes / WS messages). */
export const HEARTBEAT_BYTES = 10
/** Figure 6 control: no heartbeat fires within the window. */
const QUIET = { intervalMs: 60_000, missesUnhealthy: 3, missesDead: 6 }
/** A detection not seen within this is a timeout (a miss), not a hang. */
const DETECT_TIMEOUT_MS = 5_000
/** A fork under a loaded box, dozens at once, may take a while to answer. */
const FORK_TIMEOUT_MS = 60_000
/** Per-message header estimate for the "≈ on the wire" column: WebSocket 2 B (server) / 6 B (client, masked), avg 4; IPv4 20 + TCP 20 + timestamps 12. */
const WS_HEADER_AVG = 4
const TCP_IP_HEADER = 52

type Api = LivenessNodeApi

interface Timing {
  /** Trials per time figure. */
  trials: number
  /** Victims forked (and linked) ahead at a time for figures 1–2. */
  batch: number
  /** Nodes of figure 5 (one of them the victim). */
  agreementNodes: number
  /** Nodes (over two processes) of figure 6. */
  idleNodes: number
  idleMs: number
  /** Heartbeats flowing before a trial. */
  settleMs: number
  /** Figure 3: how long after healthy again to keep counting peer:down. */
  watchMs: number
}

function timing (o: RunOptions): Timing {
  return {
    trials: o.rounds ?? (o.quick ? 3 : 10),
    batch: o.quick ? 3 : 5,
    agreementNodes: o.quick ? 6 : 10,
    idleNodes: o.quick ? 8 : 16,
    idleMs: o.durationMs ?? (o.quick ? 2_000 : 5_000), // whole heartbeat intervals: every connection end beats the same number of times in the window
    settleMs: o.quick ? 200 : 300,
    watchMs: o.quick ? 300 : 400,
  }
}

interface TimeStats { n: number; timeouts: number; p50: number; p90: number; max: number; mean: number; samples: Array<number | null> }

function timeStats (samples: Array<number | null>): TimeStats {
  const ok = samples.filter((v): v is number => v !== null)
  return {
    n: samples.length,
    timeouts: samples.length - ok.length,
    p50: round(median(ok), 1),
    p90: round(quantile(ok, 0.9), 1),
    max: round(max(ok), 1),
    mean: round(ok.reduce((a, b) => a + b, 0) / ok.length, 1),
    samples,
  }
}

const NULLS = { msgs_per_s: null, mb_per_s: null, p99_us: null, baseline: null, ratio: null, ratio_of: null } as const

/** One JSON line of a time figure; the target is judged on the worst trial (a timeout misses it). */
function timeRecord (name: string, figure: number, s: TimeStats, bound: { max: number; inclusive: boolean }, extra: Record<string, unknown>): ResultRecord {
  const met = s.n > 0 && s.timeouts === 0 && (bound.inclusive ? s.max <= bound.max : s.max < bound.max)
  return {
    name,
    n: s.n,
    ...NULLS,
    p50_us: Number.isFinite(s.p50) ? round(s.p50 * 1000) : null,
    issue: 3,
    figure,
    p50_ms: s.p50,
    p90_ms: s.p90,
    max_ms: s.max,
    mean_ms: s.mean,
    timeouts: s.timeouts,
    samples_ms: s.samples,
    ...extra,
    target: { metric: 'max_ms', max: bound.max, ...(bound.inclusive ? { inclusive: true } : {}), value: Number.isFinite(s.max) ? s.max : null, met },
  }
}

function ms (v: number): string { return `${fixed(v, v < 100 ? 1 : 0)} ms` }
function verdict (met: boolean | null): string { return met === null ? 'inconclusive' : met ? 'met' : 'MISSED' }
function timeCells (s: TimeStats): string[] { return [String(s.n), ms(s.p50), ms(s.p90), ms(s.max)] }
function timeoutNote (s: TimeStats): string { return s.timeouts === 0 ? '' : `; ${s.timeouts} TIMEOUT(S) (> ${DETECT_TIMEOUT_MS} ms)` }

/** Start one fast-heartbeat node in each of `cs` (forked already) and link it to `aUrl` (the victim dials). */
async function victims (cs: Array<Child<Api>>, a: Child<Api>, aUrl: string, settleMs: number): Promise<Array<{ c: Child<Api>; id: string; pid: number }>> {
  const out = await Promise.all(cs.map(async (c) => {
    const r = await c.call('start', { count: 1, heartbeat: FAST, reconnect: RECONNECT }, 15_000)
    const { failed } = await c.call('connectAll', { urls: [aUrl] }, 15_000)
    if (failed.length > 0) throw new Error(`${c.name}: dial to A failed: ${failed.join('; ')}`)
    if (c.pid === undefined) throw new Error(`${c.name}: no pid`)
    return { c, id: r.nodes[0]!.id, pid: c.pid }
  }))
  await a.call('waitLinked', { ids: out.map((v) => v.id), timeoutMs: 10_000 }, 15_000)
  await sleep(settleMs)
  return out
}

/** Bytes per link per second under which the idle mesh counts as settled (heartbeats alone: ~30). */
const QUIET_BYTES_PER_LINK_S = 200

/**
 * Wait until `procs`' nodes carry no more than QUIET_BYTES_PER_LINK_S per
 * link (`ends` = connection ends, 2 per link) over a 1 s window, or the
 * deadline passes.
 */
async function waitQuiet (procs: ReadonlyArray<Child<LivenessNodeApi>>, ends: number, deadlineMs: number): Promise<{ quiet: boolean; ms: number; bytesPerLinkPerS: number }> {
  const t0 = performance.now()
  const total = async (): Promise<number> => (await Promise.all(procs.map(async (p) => await p.call('ioTotals', null, 10_000)))).reduce((n, x) => n + x.bytesIn, 0)
  let last = await total()
  let lastAt = performance.now()
  for (;;) {
    await sleep(1_000)
    const now = await total()
    const at = performance.now()
    // bytesIn over both ends of every link = both directions; per link: / (ends / 2).
    const rate = (now - last) / ((at - lastAt) / 1000) / (ends / 2)
    if (rate < QUIET_BYTES_PER_LINK_S) return { quiet: true, ms: at - t0, bytesPerLinkPerS: rate }
    if (at - t0 > deadlineMs) return { quiet: false, ms: at - t0, bytesPerLinkPerS: rate }
    last = now
    lastAt = at
  }
}

/**
 * Part 6's idle window (unless --quick or --duration-ms): one LSA refresh
 * period. Every node floods its signed LSA again once in each 30-40 s, and
 * nodes started together do it at about the same time: a 5 s window either
 * missed all of it (~25 B/s per link) or caught all 16 nodes' refreshes
 * (5,957 B/s, the same to the B/s each time), so the figure flipped between
 * runs. Over a whole period it is the idle cost a link really has.
 */
const IDLE_COST_WINDOW_MS = LSDB_DEFAULTS.refreshMs

/** Part 6's window for these options (see IDLE_COST_WINDOW_MS). */
function idleCostWindowMs (o: RunOptions, t: Timing): number {
  return o.quick === true || o.durationMs !== undefined ? t.idleMs : IDLE_COST_WINDOW_MS
}

export const detection: Scenario = {
  name: 'detection',
  description: 'failure detection (SIGSTOP, kill -9, SIGSTOP+SIGCONT, restart, 10-node agreement) and idle heartbeat cost; nodes in separate processes',
  inQuick: true,
  timeoutMs (o) {
    const t = timing(o)
    return 60_000 + t.trials * 12_000 + idleCostWindowMs(o, t)
  },
  async run (o): Promise<ScenarioOutput> {
    const t = timing(o)
    const tf = performance.now()
    const spawned: Array<Child<Api>> = []
    const spawnedRaw: Array<Child<RawHeartbeatNodeApi>> = []
    // Every process is forked up front, all at once, before anything is measured: on a
    // shared 2-core box a fork costs ~0.5 s of CPU, and no figure needs a fresh process
    // at the moment it measures. Nodes (createMesh) start per figure.
    const fork = (n: number, label: string): Array<Promise<Child<Api>>> => Array.from({ length: n }, async (_v, i) => {
      const c = await o.children.spawn<Api>(n === 1 ? label : `${label} ${i}`, procUrl('liveness-node'), { timeoutMs: FORK_TIMEOUT_MS })
      spawned.push(c)
      return c
    })
    const forks = {
      a: fork(1, 'detection A'),
      victims: fork(2 * t.trials, 'detection victim'),
      stopCont: fork(1, 'detection stop-cont victim'),
      restart: fork(t.trials + 1, 'detection restart B'),
      observers: fork(1, 'detection observers'),
      agreement: fork(t.trials, 'detection agreement victim'),
      overhead: fork(2, 'detection overhead'),
      control: fork(2, 'detection overhead hb-off'),
      raw: Array.from({ length: 2 }, async (_v, i) => {
        const c = await o.children.spawn<RawHeartbeatNodeApi>(`detection raw ws heartbeat ${i}`, procUrl('raw-heartbeat-node'), { timeoutMs: FORK_TIMEOUT_MS })
        spawnedRaw.push(c)
        return c
      }),
    }
    // Awaited group by group below; a failure in a group not awaited yet must not be an unhandled rejection.
    for (const f of Object.values(forks)) for (const p of f) (p as Promise<unknown>).catch(() => {})
    const dataDir = mkdtempSync(join(tmpdir(), 'meshwork-perf-restart-'))
    try {
      const [a, v3c, obs] = [(await Promise.all(forks.a))[0]!, (await Promise.all(forks.stopCont))[0]!, (await Promise.all(forks.observers))[0]!]
      const victimPool = await Promise.all(forks.victims)
      const restartPool = await Promise.all(forks.restart)
      const agreementPool = await Promise.all(forks.agreement)
      const overheadProcs = await Promise.all(forks.overhead)
      const controlProcs = await Promise.all(forks.control)
      const raws = await Promise.all(forks.raw)
      o.log(`detection: ${spawned.length + spawnedRaw.length} processes forked and ready in ${(performance.now() - tf).toFixed(0)} ms`)
      // ---- A ------------------------------------------------------------
      const ra = await a.call('start', { count: 1, heartbeat: FAST, reconnect: RECONNECT }, 15_000)
      const aId = ra.nodes[0]!.id
      const aUrl = ra.nodes[0]!.addresses[0]
      if (aUrl === undefined) throw new Error('node A has no address')

      // ---- 1 + 2: SIGSTOP / SIGKILL → peer:down, alternating --------------
      const stopMs: Array<number | null> = []
      const killMs: Array<number | null> = []
      const stopStates: string[][] = []
      const killStates: string[][] = []
      for (let done = 0; done < 2 * t.trials;) {
        const k = Math.min(t.batch, 2 * t.trials - done)
        const vs = await victims(victimPool.slice(done, done + k), a, aUrl, t.settleMs)
        for (const v of vs) {
          const signal = done % 2 === 0 ? 'SIGSTOP' : 'SIGKILL'
          const r = await a.call('signalAndWaitDown', { pid: v.pid, signal, peer: v.id, timeoutMs: DETECT_TIMEOUT_MS }, DETECT_TIMEOUT_MS + 5_000)
          v.c.kill()
          if (signal === 'SIGSTOP') { stopMs.push(r.ms[0] ?? null); stopStates.push(r.states[0] ?? []) } else { killMs.push(r.ms[0] ?? null); killStates.push(r.states[0] ?? []) }
          done++
          await sleep(100)
        }
      }
      const stop = timeStats(stopMs)
      const kill = timeStats(killMs)
      o.log(`detection: SIGSTOP → peer:down median ${ms(stop.p50)}, max ${ms(stop.max)}; kill -9 → peer:down median ${ms(kill.p50)}, max ${ms(kill.max)}`)

      // ---- 3: SIGSTOP, SIGCONT after 300 ms -------------------------------
      const [v3] = await victims([v3c], a, aUrl, t.settleMs)
      const bDown0 = (await v3!.c.call('linkState', { peer: aId }, 5_000))[0]?.downs ?? 0
      const sc: Array<{ pausedMs: number; unhealthyAfterStopMs: number | null; healthyAfterContMs: number | null; downs: number; states: string[] }> = []
      for (let i = 0; i < t.trials; i++) {
        sc.push(await a.call('stopCont', { pid: v3!.pid, peer: v3!.id, pauseMs: PAUSE_MS, healthyTimeoutMs: 3_000, settleMs: t.watchMs }, 10_000))
        // Both ends healthy again (a re-link after a false down included) before the next trial.
        await Promise.all([
          a.call('waitLinked', { ids: [v3!.id], timeoutMs: 5_000 }, 8_000),
          v3!.c.call('waitLinked', { ids: [aId], timeoutMs: 5_000 }, 8_000),
        ])
        await sleep(t.settleMs)
      }
      const bSide = (await v3!.c.call('linkState', { peer: aId }, 5_000))[0]
      const falseDownsA = sc.reduce((s, r) => s + r.downs, 0)
      const falseDownsB = (bSide?.downs ?? 0) - bDown0
      const falseDowns = falseDownsA + falseDownsB
      const healthy = timeStats(sc.map((r) => r.healthyAfterContMs))
      const unhealthyAt = sc.map((r) => r.unhealthyAfterStopMs).filter((v): v is number => v !== null)
      const paused = sc.map((r) => r.pausedMs)
      await v3!.c.close()
      o.log(`detection: SIGSTOP ${PAUSE_MS} ms + SIGCONT: ${falseDowns} false peer:down, healthy again median ${ms(healthy.p50)} after SIGCONT`)

      // ---- 4: restart on the same URL + dataDir ----------------------------
      let b = restartPool[0]!
      const rb = await b.call('start', { count: 1, listen: 'ws://127.0.0.1:0', dataDir, heartbeat: FAST, reconnect: RECONNECT }, 15_000)
      const bId = rb.nodes[0]!.id
      const bUrl = rb.nodes[0]!.addresses[0]
      if (bUrl === undefined) throw new Error('restart node B has no address')
      await a.call('connectAll', { urls: [bUrl] }, 15_000)
      await a.call('waitLinked', { ids: [bId], timeoutMs: 10_000 }, 15_000)
      const relink: Array<number | null> = []
      const restartDown: Array<number | null> = []
      const offsets: number[] = []
      for (let i = 1; i <= t.trials; i++) {
        const next = restartPool[i]! // forked up front; its mesh starts after A's peer:down
        await sleep(t.settleMs)
        const d = await a.call('signalAndWaitDown', { pid: b.pid!, signal: 'SIGKILL', peer: bId, timeoutMs: DETECT_TIMEOUT_MS }, DETECT_TIMEOUT_MS + 5_000)
        b.kill()
        restartDown.push(d.ms[0] ?? null)
        const after = epochMs()
        const up = a.call('waitEvent', { peer: bId, kind: 'up', afterEpochMs: after, timeoutMs: 10_000 }, 15_000)
        up.catch(() => {}) // observed below
        const r = await next.call('start', { count: 1, listen: bUrl, dataDir, heartbeat: FAST, reconnect: RECONNECT }, 15_000)
        if (r.nodes[0]?.id !== bId) throw new Error(`restarted B has id ${r.nodes[0]?.id ?? '?'}, expected ${bId} (same dataDir)`)
        let upAt: number | null = null
        try { upAt = (await up).epochMs } catch (err) { o.log(`detection: restart trial ${i}: ${(err as Error).message}`) }
        relink.push(upAt === null ? null : round(upAt - r.readyEpochMs, 2))
        // Clock check of the two processes whose timestamps were compared (after the timed part).
        for (const c of [a, next]) {
          const h0 = epochMs()
          const { epochMs: ce } = await c.call('clock', null, 5_000)
          const h1 = epochMs()
          offsets.push(round(ce - (h0 + h1) / 2, 2))
        }
        b = next
      }
      await b.close()
      await a.close()
      const restart = timeStats(relink)
      const maxOffset = max(offsets.map(Math.abs))
      o.log(`detection: restart → re-linked median ${ms(restart.p50)}, max ${ms(restart.max)} after B's createMesh resolved`)

      // ---- 5: 10 nodes (--quick: 6), fully linked, kill -9 one -------------
      const nObs = t.agreementNodes - 1
      const ro = await obs.call('start', { count: nObs, heartbeat: FAST }, 30_000)
      const obsIds = ro.nodes.map((n) => n.id)
      const obsUrls = ro.nodes.map((n) => n.addresses[0]!)
      await obs.call('connectAll', { urls: obsUrls }, 30_000)
      await obs.call('waitLinked', { ids: obsIds, timeoutMs: 15_000 }, 20_000)
      const allMs: Array<number | null> = []
      const firstMs: number[] = []
      const dialFailures: string[] = []
      for (let i = 0; i < t.trials; i++) {
        const victim = agreementPool[i]!
        const rv = await victim.call('start', { count: 1, heartbeat: FAST }, 15_000)
        const vId = rv.nodes[0]!.id
        const vUrl = rv.nodes[0]!.addresses[0]!
        const [f1, f2] = await Promise.all([
          victim.call('connectAll', { urls: obsUrls }, 15_000),
          obs.call('connectAll', { urls: [vUrl] }, 15_000),
        ])
        dialFailures.push(...f1.failed, ...f2.failed)
        await Promise.all([
          obs.call('waitLinked', { ids: [...obsIds, vId], timeoutMs: 10_000 }, 15_000),
          victim.call('waitLinked', { ids: obsIds, timeoutMs: 10_000 }, 15_000),
        ])
        await sleep(t.settleMs)
        const r = await obs.call('signalAndWaitDown', { pid: victim.pid!, signal: 'SIGKILL', peer: vId, timeoutMs: DETECT_TIMEOUT_MS }, DETECT_TIMEOUT_MS + 5_000)
        victim.kill()
        allMs.push(r.ms.some((v) => v === null) ? null : max(r.ms as number[]))
        const seen = r.ms.filter((v): v is number => v !== null)
        if (seen.length > 0) firstMs.push(Math.min(...seen))
      }
      await obs.close()
      const agree = timeStats(allMs)
      o.log(`detection: ${t.agreementNodes} nodes, kill -9 → all ${nObs} saw peer:down: median ${ms(agree.p50)}, max ${ms(agree.max)}`)

      // ---- 6: idle heartbeat overhead, default heartbeat -------------------
      // meshwork and the raw ws baseline (same topology and message pattern) idle side by side and are
      // measured over the same window: on a shared box both see the same load.
      const per = t.idleNodes / 2
      /** `per` nodes in each of two processes, fully linked. */
      const meshGroup = async (ps: Array<Child<Api>>, heartbeat?: typeof QUIET): Promise<{ procs: Array<Child<Api>>; failed: number }> => {
        const st = await Promise.all(ps.map(async (p) => await p.call('start', { count: per, ...(heartbeat === undefined ? {} : { heartbeat }) }, 30_000)))
        const ids = st.flatMap((x) => x.nodes.map((n) => n.id))
        const urls = st.flatMap((x) => x.nodes.map((n) => n.addresses[0]!))
        const f = await Promise.all(ps.map(async (p) => await p.call('connectAll', { urls }, 60_000)))
        try {
          await Promise.all(ps.map(async (p) => await p.call('waitLinked', { ids, timeoutMs: 20_000 }, 25_000)))
        } catch {
          // On a loaded box some handshakes time out in the all-at-once dial storm
          // (what this part measures is the idle cost, not linking): dial the missing ones again.
          await Promise.all(ps.map(async (p) => await p.call('connectAll', { urls }, 60_000)))
          await Promise.all(ps.map(async (p) => await p.call('waitLinked', { ids, timeoutMs: 30_000 }, 35_000)))
        }
        return { procs: ps, failed: f.reduce((n, x) => n + x.failed.length, 0) }
      }
      const rawGroup = async (): Promise<number> => {
        const rawUrls = (await Promise.all(raws.map(async (r) => (await r.call('start', { count: per, intervalMs: DEFAULT_INTERVAL_MS, bytes: HEARTBEAT_BYTES }, 30_000)).urls))).flat()
        // One connection per pair, as meshwork keeps after its duplicate rule: endpoint k dials every j > k.
        return (await Promise.all(raws.map(async (r, p) => await r.call('connect', {
          dial: Array.from({ length: per }, (_v, i) => rawUrls.slice(p * per + i + 1)),
        }, 30_000)))).reduce((n, r) => n + r.links, 0)
      }
      // Control: the same mesh with a heartbeat too slow to fire in the window (membership and the rest still run).
      // One group at a time: three dial storms at once time handshakes out on a loaded 2-core box.
      const main = await meshGroup(overheadProcs)
      const quiet = await meshGroup(controlProcs, QUIET)
      const rawLinks = await rawGroup()
      const procs = main.procs
      const all = [...procs, ...quiet.procs]
      // Linked is not settled: membership and link-state routing still converge
      // (signed LSAs flood every link), longer on a loaded box. A window that
      // caught the tail of it measured 5,582 B/s per link instead of ~28. So
      // wait until the links carry no more than heartbeats would, with a deadline.
      // Both groups (the control too): 2 × idleNodes nodes, each group fully linked, 2 ends per link.
      const settle = await waitQuiet(all, 2 * t.idleNodes * (t.idleNodes - 1), o.quick ? 10_000 : 30_000)
      o.log(`detection: idle ${t.idleNodes} nodes: ${settle.quiet ? 'quiet' : 'NOT quiet'} after ${fixed(settle.ms, 0)} ms (last window ${fixed(settle.bytesPerLinkPerS, 0)} B/s per link)`)
      await Promise.all([
        ...all.map(async (p) => { await p.call('idleStart', null, 10_000) }),
        ...raws.map(async (r) => { await r.call('idleStart', null, 10_000) }),
      ])
      const windowMs = idleCostWindowMs(o, t)
      await sleep(windowMs)
      const [idleAll, rawIdle] = await Promise.all([
        Promise.all(all.map(async (p) => await p.call('idleStop', null, 10_000))),
        Promise.all(raws.map(async (r) => await r.call('idleStop', null, 10_000))),
      ])
      await Promise.all([...all, ...raws].map(async (p) => { await p.close() }))
      const idle = idleAll.slice(0, 2)
      const quietCpuPerNode = idleAll.slice(2).map((r) => r.cpu.pctOfCore / r.nodes)
      const quietWorst = max(quietCpuPerNode)
      const linkFail = main.failed
      const nodes = t.idleNodes
      const links = nodes * (nodes - 1) / 2
      const cpuPerNode = idle.map((r) => r.cpu.pctOfCore / r.nodes)
      const rawCpuPerNode = rawIdle.map((r) => r.cpu.pctOfCore / r.nodes)
      const wallS = Math.max(...idle.map((r) => r.cpu.wallMs)) / 1000
      const sum = (k: 'bytesOut' | 'bytesIn' | 'wsMessagesOut' | 'framesOut' | 'connections'): number => idle.reduce((n, r) => n + r.io[k], 0)
      const bytesPerLink = sum('bytesOut') / wallS / links
      const bytesInPerLink = sum('bytesIn') / wallS / links
      const msgsPerLink = sum('wsMessagesOut') / wallS / links
      const wirePerLink = bytesPerLink + msgsPerLink * (WS_HEADER_AVG + TCP_IP_HEADER)
      const cpuWorst = max(cpuPerNode)
      const rawWorst = max(rawCpuPerNode)
      o.log(`detection: idle ${nodes} nodes: ${fixed(cpuWorst, 2)} % of a core per node (heartbeat 60 s: ${fixed(quietWorst, 2)} %; raw ws same pattern ${fixed(rawWorst, 2)} %), ${fixed(bytesPerLink, 0)} B/s per link`)

      // ---- records ----------------------------------------------------------
      const stopTypical = stopStates.filter((s) => s.join() === 'unhealthy,disconnected').length
      const records: ResultRecord[] = [
        timeRecord('detection: SIGSTOP → peer:down (100 ms × 6)', 1, stop, { max: DETECT_BOUND_MS, inclusive: true }, {
          heartbeat: FAST, health_states: stopStates, via_unhealthy: stopTypical,
        }),
        timeRecord('detection: kill -9 → peer:down (100 ms × 6)', 2, kill, { max: DETECT_BOUND_MS, inclusive: true }, {
          heartbeat: FAST, health_states: killStates,
        }),
        {
          name: `detection: SIGSTOP ${PAUSE_MS} ms + SIGCONT, false peer:down`,
          n: sc.length,
          ...NULLS,
          p50_us: null,
          issue: 3,
          figure: 3,
          false_peer_down: falseDowns,
          false_peer_down_a_side: falseDownsA,
          false_peer_down_b_side: falseDownsB,
          healthy_after_cont_p50_ms: healthy.p50,
          healthy_after_cont_p90_ms: healthy.p90,
          healthy_after_cont_max_ms: healthy.max,
          healthy_after_cont_timeouts: healthy.timeouts,
          healthy_after_cont_samples_ms: healthy.samples,
          unhealthy_after_stop_p50_ms: round(median(unhealthyAt), 1),
          went_unhealthy: unhealthyAt.length,
          paused_ms: { p50: round(median(paused), 1), max: round(max(paused), 1) },
          health_states: sc.map((r) => r.states),
          heartbeat: FAST,
          target: { metric: 'false_peer_down', max: 0, inclusive: true, value: falseDowns, met: falseDowns === 0 && healthy.timeouts === 0 },
        },
        timeRecord('detection: restart (same URL + dataDir) → re-linked', 4, restart, { max: RESTART_BOUND_MS, inclusive: false }, {
          from: "B's createMesh resolved (its listener up) → A's peer:up; epoch timestamps of two processes",
          reconnect: RECONNECT, down_after_kill_ms: restartDown, clock_offset_max_abs_ms: maxOffset,
        }),
        timeRecord(`detection: ${t.agreementNodes} nodes, kill -9 → all ${nObs} saw peer:down`, 5, agree, { max: AGREEMENT_BOUND_MS, inclusive: false }, {
          nodes: t.agreementNodes, first_node_p50_ms: round(median(firstMs), 1), heartbeat: FAST, dial_failures: dialFailures.length,
        }),
        {
          name: `detection: idle heartbeat CPU per node (${nodes} nodes, 1000 ms)`,
          n: nodes,
          ...NULLS,
          baseline: 'raw ws, same pattern',
          ratio: rawWorst > 0 ? round(cpuWorst / rawWorst, 3) : null,
          ratio_of: 'cpu',
          p50_us: null,
          issue: 3,
          figure: 6,
          cpu_pct_per_node: round(cpuWorst, 3),
          cpu_pct_per_node_by_process: cpuPerNode.map((v) => round(v, 3)),
          baseline_cpu_pct_per_node: round(rawWorst, 3),
          baseline_cpu_pct_per_node_by_process: rawCpuPerNode.map((v) => round(v, 3)),
          baseline_links: rawLinks,
          heartbeat_off_cpu_pct_per_node: round(quietWorst, 3),
          heartbeat_off_cpu_pct_per_node_by_process: quietCpuPerNode.map((v) => round(v, 3)),
          heartbeat_share_cpu_pct_per_node: round(cpuWorst - quietWorst, 3),
          processes: idle.map((r) => ({ nodes: r.nodes, cpu: r.cpu })),
          window_ms: windowMs,
          target: { metric: 'cpu_pct_per_node', max: CPU_BOUND_PCT, value: round(cpuWorst, 3), met: cpuWorst < CPU_BOUND_PCT },
        },
        {
          name: `detection: idle heartbeat bytes/s per peer link (${links} links, 1000 ms)`,
          n: links,
          ...NULLS,
          p50_us: null,
          issue: 3,
          figure: 6,
          bytes_per_s_per_link: round(bytesPerLink, 1),
          bytes_in_per_s_per_link: round(bytesInPerLink, 1),
          ws_messages_per_s_per_link: round(msgsPerLink, 2),
          wire_estimate_bytes_per_s_per_link: round(wirePerLink, 1),
          wire_estimate: `payload + ${WS_HEADER_AVG} B WebSocket + ${TCP_IP_HEADER} B TCP/IP per message, no pure ACKs`,
          connections: sum('connections'),
          expected_connections: 2 * links,
          dial_failures: linkFail,
          io: idle.map((r) => r.io),
          window_ms: windowMs,
          settled_ms: round(settle.ms), settled_quiet: settle.quiet,
          target: { metric: 'bytes_per_s_per_link', max: BYTES_BOUND, value: round(bytesPerLink, 1), met: bytesPerLink < BYTES_BOUND },
        },
      ]
      const tgt = (figure: number, i = 0): string => {
        const x = records.filter((r) => r['figure'] === figure)[i]?.['target'] as { met: boolean | null } | undefined
        return verdict(x?.met ?? null)
      }
      return {
        records,
        table: {
          head: ['detection', 'n', 'median', 'p90', 'max', 'target', 'detail'],
          rows: [
            ['1. SIGSTOP → peer:down', ...timeCells(stop), `≤ ${DETECT_BOUND_MS} ms: ${tgt(1)}`,
              `unhealthy → disconnected in ${stopTypical}/${stopStates.length}${timeoutNote(stop)}`],
            ['2. kill -9 → peer:down', ...timeCells(kill), `≤ ${DETECT_BOUND_MS} ms: ${tgt(2)}`, `socket close${timeoutNote(kill)}`],
            [`3. SIGSTOP ${PAUSE_MS} ms + SIGCONT: false peer:down`, String(sc.length), '–', '–', String(falseDowns), `= 0: ${tgt(3)}`,
              `A side ${falseDownsA}, B side ${falseDownsB}; unhealthy in ${unhealthyAt.length}/${sc.length}, median ${ms(median(unhealthyAt))} after SIGSTOP`],
            ['3. … healthy again after SIGCONT', ...timeCells(healthy), 'report', `A's peer:health healthy${timeoutNote(healthy)}`],
            ['4. restart → re-linked', ...timeCells(restart), `< ${RESTART_BOUND_MS} ms: ${tgt(4)}`,
              `B's createMesh resolved → A's peer:up, reconnect 50/500 ms; clocks agree within ${fixed(maxOffset, 1)} ms${timeoutNote(restart)}`],
            [`5. ${t.agreementNodes} nodes, kill -9 → all ${nObs} saw it`, ...timeCells(agree), `< ${AGREEMENT_BOUND_MS} ms: ${tgt(5)}`,
              `first of the ${nObs}: median ${ms(median(firstMs))}${timeoutNote(agree)}`],
            [`6. idle CPU per node (${nodes} nodes)`, String(nodes), `${fixed(median(cpuPerNode), 2)} %`, '–', `${fixed(cpuWorst, 2)} %`,
              `< ${CPU_BOUND_PCT} %: ${tgt(6, 0)}`, `per process (${per} nodes each): ${cpuPerNode.map((v) => `${fixed(v, 2)} %`).join(', ')}; same mesh, heartbeat 60 s (no beat in the window): ${fixed(quietWorst, 2)} %; raw ws, same links and beat pattern: ${fixed(rawWorst, 2)} % (ratio ${rawWorst > 0 ? fixed(cpuWorst / rawWorst, 2) : '–'})`],
            [`6. idle bytes/s per peer link (${links} links)`, String(links), `${int(bytesPerLink)} B/s`, '–', '–', `< ${BYTES_BOUND} B/s: ${tgt(6, 1)}`,
              `both directions, WS payload; ${fixed(msgsPerLink, 1)} WS msgs/s; ≈ ${int(wirePerLink)} B/s with WS + TCP/IP headers; ${sum('connections')}/${2 * links} connection ends`],
          ],
        },
        notes: [
          `Every node in a child process on loopback; heartbeat ${FAST.intervalMs} ms × missesUnhealthy ${FAST.missesUnhealthy} × missesDead ${FAST.missesDead} for 1–5, the default (1000 ms × 3 × 6) for 6. ` +
          `Control of 6: the same ${t.idleNodes} nodes in two more processes with heartbeat.intervalMs 60 000 (one beat at link-up, none in the window), so "CPU − control" is what the 1000 ms beats cost. ` +
          `Baseline of 6: raw \`ws\` endpoints, one worker thread each, ${links} links, both ends sending a ${HEARTBEAT_BYTES} B ping every ${DEFAULT_INTERVAL_MS} ms and answering the other's with a pong (procs/raw-heartbeat-node.ts), idling in two other processes over the same window. ` +
          'Times 1–3 and 5 are taken in the observing process (it sends the signal, its `peer:*` listener stops the clock); 4 compares epoch timestamps of two processes. ' +
          `Targets on time figures are judged on the worst trial; a detection not seen within ${DETECT_TIMEOUT_MS} ms counts as a miss.`,
        ],
      }
    } finally {
      await Promise.all([...spawned, ...spawnedRaw].map(async (c) => { await c.close(1_000) }))
      rmSync(dataDir, { recursive: true, force: true })
    }
  },
}
