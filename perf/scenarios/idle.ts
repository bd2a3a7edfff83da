/**
 * Idle cost (issue 2: "Idle node: under 1 % of a core; RSS per idle peer
 * link under 100 KiB").
 *
 * Two processes: a hub (one node) and a client process with 2N nodes. Both
 * first idle unlinked; then the clients link to the hub in two rounds of N,
 * in steps, and both idle linked (2N links).
 *
 * - CPU: process.cpuUsage (all threads) / wall time, per node, over the
 *   idle window; unlinked and linked.
 * - RSS per link: the hub's RSS is sampled after each step of N/6 new
 *   links, after a full GC of every heap in the process: the main thread's
 *   and each node's IO and router workers' (Mesh._collectGarbage; the
 *   children run with --expose-gc). Without the workers' collections the
 *   figure was the garbage of the last joins (route computations, flooded
 *   LSAs), not per-link state: a worker heap holds MiBs of it for seconds,
 *   and the same code measured anywhere from -235 to +765 KiB per link.
 *   The per-link cost is the growth over the second round per link (the
 *   marginal cost of a link at a node that has many): the first round's
 *   growth is mostly one-time (JIT code pages, V8 heap pages, the node
 *   binary's pages read in), which a median of 4-link steps could not tell
 *   from per-link state. Both ends of it are taken with the links idle and
 *   settled (the lowest of a few samples from settle + idle window after
 *   the last join; see SETTLED_SAMPLES): right after a
 *   round of joins the workers' young generations are MiBs larger (grown by
 *   the joins' allocation, given back by V8's memory reducer once the node
 *   idles), which is not what an idle link costs; before 2026-12-07 the
 *   figure was taken right after the joins (still reported, with the
 *   steps). Also reported: the median step, the first round,
 *   (RSS with 2N links − RSS before any link) / 2N, and the hub's V8 heaps
 *   (every thread) split into live bytes and page slack: the slack (free
 *   space a GC leaves in pages, young generations grown by the joins) moves
 *   RSS by MiBs either way between runs, and is not per link. The client
 *   side is in the JSON only: one link per node, 24 nodes' worth of
 *   allocator noise.
 *
 * @module
 */
import type { MeshNodeApi } from '../procs/mesh-node.js'
import type { RawHeartbeatNodeApi } from '../procs/raw-heartbeat-node.js'
import { DEFAULT_INTERVAL_MS, HEARTBEAT_BYTES } from './detection.js'
import type { CpuResult, MemResult } from '../lib/ipc.js'
import type { Child } from '../lib/child.js'
import { procUrl } from '../lib/child.js'
import { heapSlackBytes, heldBytes, sleep } from '../lib/measure.js'
import type { ResultRecord, RunOptions, Scenario, ScenarioOutput } from '../lib/scenario.js'
import { fixed, KiB, median, round } from '../lib/stats.js'

const TARGET_CPU_PCT = 1
const TARGET_RSS_PER_LINK = 100 * KiB
/** Linking steps (RSS samples) in the idle scenario. */
const STEPS = 6

interface Timing { nodes: number; idleMs: number; settleMs: number }

function timing (o: RunOptions): Timing {
  return { nodes: o.quick ? 3 : 24, idleMs: o.durationMs ?? (o.quick ? 600 : 4_000), settleMs: o.quick ? 200 : 1_000 }
}

/** Resident KiB gained per kind of mapping from `a` to `b` (perf/lib/measure.ts residentByMapping). */
function growth (a: Record<string, number> | undefined, b: Record<string, number> | undefined): Record<string, number> | null {
  if (a === undefined || b === undefined) return null
  const out: Record<string, number> = {}
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
    const d = (b[k] ?? 0) - (a[k] ?? 0)
    if (d !== 0) out[k] = d
  }
  return out
}

/**
 * Median of the per-step increments, per link: robust to the odd step in
 * which a worker heap gives back MiBs (one bad step of six moves it little,
 * where a least-squares or even a Theil–Sen slope would follow the drop).
 */
function medianStep (pts: ReadonlyArray<{ links: number; rss: number }>): number {
  const steps: number[] = []
  for (let i = 1; i < pts.length; i++) {
    const a = pts[i - 1]!
    const b = pts[i]!
    steps.push((b.rss - a.rss) / (b.links - a.links))
  }
  return steps.length === 0 ? NaN : median(steps)
}

/**
 * How long a CPU-window call may take to be answered. It answers at once,
 * but the client process runs 48 nodes (96 worker threads) that have just
 * linked: on a loaded 2-core box (load 4.6 at c8ac46a) its main thread once
 * took over 5 s to read the call, and the scenario failed.
 */
const CPU_CALL_TIMEOUT_MS = 30_000

async function cpuWindow (procs: Array<Child<MeshNodeApi>>, ms: number): Promise<CpuResult[]> {
  await Promise.all(procs.map(async (p) => { await p.call('cpuStart', null, CPU_CALL_TIMEOUT_MS) }))
  await sleep(ms)
  return await Promise.all(procs.map(async (p) => await p.call('cpuStop', null, CPU_CALL_TIMEOUT_MS)))
}

/** Per process: the sample with the median RSS of three, 100 ms apart, each after a GC of every heap (mesh-node.ts mem). */
async function mem (procs: Array<Child<MeshNodeApi>>): Promise<MemResult[]> {
  return await Promise.all(procs.map(async (p) => await memOf(async () => await p.call('mem', null, 10_000))))
}

/** The baseline's links beat like the mesh's idle links (meshwork's default heartbeat), as in detection's baseline. */
const RAW_BEAT_MS = DEFAULT_INTERVAL_MS
const RAW_BEAT_BYTES = HEARTBEAT_BYTES

/**
 * The baseline of the RSS figure: raw `ws` endpoints (procs/raw-heartbeat-node.ts: one worker thread
 * each, both ends of a link beating every RAW_BEAT_MS and answering the other's beat), a hub endpoint in
 * one process and 2N client endpoints in another, linked in the same two rounds of N and sampled the same
 * way: (hub RSS with 2N idle links − with N idle links) / N, each end settled (settledMem) from settle +
 * idle window after the last join. What a link costs a Node process with nothing but `ws` in it.
 */
async function rawIdleRss (o: RunOptions, t: Timing): Promise<{ perLink: number; points: MemResult[] }> {
  const [hub, clients] = await Promise.all([
    o.children.spawn<RawHeartbeatNodeApi>('idle raw ws hub', procUrl('raw-heartbeat-node')),
    o.children.spawn<RawHeartbeatNodeApi>('idle raw ws clients', procUrl('raw-heartbeat-node')),
  ])
  try {
    const beat = { intervalMs: RAW_BEAT_MS, bytes: RAW_BEAT_BYTES }
    const [h] = await Promise.all([hub.call('start', { count: 1, ...beat }, 30_000), clients.call('start', { count: 2 * t.nodes, ...beat }, 90_000)])
    const url = h.urls[0]
    if (url === undefined || url === '') throw new Error('idle raw ws hub has no address')
    const round = async (base: number): Promise<MemResult> => {
      await clients.call('connect', { dial: Array.from({ length: 2 * t.nodes }, (_, i) => i >= base && i < base + t.nodes ? [url] : []) }, 60_000)
      await sleep(t.settleMs + t.idleMs)
      return await settledMem(async () => await hub.call('mem', null, 10_000))
    }
    const a = await round(0)
    const b = await round(t.nodes)
    return { perLink: (b.rss - a.rss) / t.nodes, points: [a, b] }
  } finally {
    await Promise.all([hub.close(), clients.close()])
  }
}

/**
 * Samples of a settled end of the RSS figure: this many, SETTLED_GAP_MS
 * apart, each after a full GC of every heap; the lowest counts. RSS after a
 * GC still moves by MiBs over seconds after joins, mostly down (V8's memory
 * reducer shrinking young generations, glibc giving back arena tops): the
 * floor of a few seconds is the closest to what the process holds.
 */
const SETTLED_SAMPLES = 5
const SETTLED_GAP_MS = 1_000

/** `n` samples `gapMs` apart, by RSS ascending. */
async function samplesByRss (sample: () => Promise<MemResult>, n: number, gapMs: number): Promise<MemResult[]> {
  const samples: MemResult[] = []
  for (let i = 0; i < n; i++) {
    if (i > 0) await sleep(gapMs)
    samples.push(await sample())
  }
  return samples.sort((a, b) => a.rss - b.rss)
}

/** A settled end of the RSS figure (see SETTLED_SAMPLES). */
async function settledMem (sample: () => Promise<MemResult>): Promise<MemResult> {
  return (await samplesByRss(sample, SETTLED_SAMPLES, SETTLED_GAP_MS))[0]!
}

/** Of three samples 100 ms apart, the one with the median RSS. */
async function memOf (sample: () => Promise<MemResult>): Promise<MemResult> {
  return (await samplesByRss(sample, 3, 100))[1]!
}

export const idle: Scenario = {
  name: 'idle',
  description: 'idle CPU per node and RSS per idle peer link (hub + N client nodes, two processes)',
  inQuick: true,
  timeoutMs (o) {
    const t = timing(o)
    return 270_000 + 5 * t.idleMs + 12 * t.settleMs
  },
  async run (o): Promise<ScenarioOutput> {
    const t = timing(o)
    // The baseline first, in processes of its own that are gone before the mesh's start.
    const raw = await rawIdleRss(o, t)
    o.log(`idle: raw ws baseline ${fixed(raw.perLink / KiB, 1)} KiB per idle link`)
    const [hub, clients] = await Promise.all([
      o.children.spawn<MeshNodeApi>('idle hub', procUrl('mesh-node')),
      o.children.spawn<MeshNodeApi>('idle clients', procUrl('mesh-node')),
    ])
    try {
      const [h] = await Promise.all([
        hub.call('start', { count: 1 }, 15_000),
        // maxPeers 1: each client keeps exactly its link to the hub. Without it, membership
        // discovery links the clients with each other and "per link" would count the wrong links.
        // Two rounds of t.nodes clients: a warm-up round, then the measured one.
        clients.call('start', { count: 2 * t.nodes, maxPeers: 1 }, 90_000),
      ])
      const url = h.nodes[0]?.addresses[0]
      if (url === undefined) throw new Error('idle hub has no address')
      await sleep(t.settleMs)
      const [hubBefore, cliBefore] = await mem([hub, clients])
      const [hubCpuUnlinked, cliCpuUnlinked] = await cpuWindow([hub, clients], t.idleMs)
      const allClients = 2 * t.nodes
      o.log(`idle: unlinked, hub ${fixed(hubCpuUnlinked!.pctOfCore, 2)} %, clients ${fixed(cliCpuUnlinked!.pctOfCore / allClients, 2)} % per node`)

      // Link in steps, sampling the hub's RSS after each; the per-link cost is the median step
      // increment, which shrugs off the odd multi-MiB drop when a worker heap shrinks.
      const step = Math.max(1, Math.floor(t.nodes / STEPS))
      const hubAt: Record<string, MemResult> = {}
      const linkRound = async (base: number): Promise<Array<{ links: number; rss: number }>> => {
        const points: Array<{ links: number; rss: number }> = []
        for (let from = base; from < base + t.nodes; from += step) {
          const to = Math.min(base + t.nodes, from + step)
          await clients.call('connect', { url, from, to }, 60_000)
          await hub.call('waitPeers', { n: to, timeoutMs: 30_000 }, 35_000)
          await sleep(t.settleMs / 2)
          const [m] = await mem([hub])
          points.push({ links: to, rss: m!.rss })
          hubAt[`links_${to}`] = m!
        }
        return points
      }
      // Round 1 warms the hub up: its first links also pay one-time costs that
      // are not per link (JIT code pages of the handshake, join and routing
      // paths, V8 heap pages, pages of the node binary read in). Measured at
      // 6fcadd4-39d311e, that was most of the growth from 4 to 24 links
      // (smaps: +792 KiB of executable JIT pages, +320 KiB of the binary's
      // text, ~+1.2 MiB of V8 heap pages; the peers' rings +12 KiB).
      const warmPoints = await linkRound(0)
      await sleep(t.settleMs)
      const [hubWarm] = await mem([hub])
      // The figure's start point: the first round's links idle as long as the second's will have been at the
      // end point (settle + idle window). Right after a round of joins, the workers' young generations have
      // grown with the joins' allocation (MiBs of V8 page slack, not per link); V8's memory reducer gives them
      // back once the node idles. Both ends of the figure are taken in that settled state.
      await sleep(t.idleMs)
      const hubWarmIdle = await settledMem(async () => await hub.call('mem', null, 10_000))
      // Round 2 is the figure: the marginal cost of a link at a node that has many.
      const points = [{ links: t.nodes, rss: hubWarm!.rss }, ...await linkRound(t.nodes)]
      o.log(`idle: ${allClients} links up`)
      await sleep(t.settleMs)
      const [hubCpu, cliCpu] = await cpuWindow([hub, clients], t.idleMs)
      const [hubAfter, cliAfter] = await Promise.all([settledMem(async () => await hub.call('mem', null, 10_000)), memOf(async () => await clients.call('mem', null, 10_000))])

      const links = allClients
      const measured = t.nodes
      const hubMarginal = medianStep(points)
      // Right after the second round of joins (young generations still grown by them).
      const hubSpan = (points.at(-1)!.rss - points[0]!.rss) / measured
      // The figure: idle links, both ends after the same quiet time (see hubWarmIdle).
      const hubIdle = (hubAfter!.rss - hubWarmIdle!.rss) / measured
      // Earlier runs' "after the idle window": its start point was taken right after the first round.
      const hubAfterIdle = (hubAfter!.rss - points[0]!.rss) / measured
      const hubWarmSpan = warmPoints.length < 2 ? NaN : (warmPoints.at(-1)!.rss - warmPoints[0]!.rss) / (warmPoints.at(-1)!.links - warmPoints[0]!.links)
      const hubNaive = (hubAfter!.rss - hubBefore!.rss) / links
      const cliNaive = (cliAfter!.rss - cliBefore!.rss) / links
      const cpuPerNode = (hubCpu!.cpuMs + cliCpu!.cpuMs) / (hubCpu!.wallMs) / (links + 1) * 100
      const cliPerNode = cliCpu!.pctOfCore / links
      const residentGrowth = growth(hubWarm!.residentKiB, hubAt[`links_${links}`]?.residentKiB)
      // The hub's V8 heaps (main thread, IO and router workers) over the measured round: live
      // objects per link, and what their pages' slack (free space V8 keeps after a GC, grown
      // young generations) added or gave back: RSS moves by both, only the first is per link.
      const hubEnd = hubAt[`links_${links}`]!
      const heapLivePerLink = ((hubEnd.heapsUsed ?? NaN) - (hubWarm!.heapsUsed ?? NaN)) / measured
      const heapSlackPerLink = (heapSlackBytes(hubEnd) - heapSlackBytes(hubWarm!)) / measured
      const heldPerLink = (heldBytes(hubEnd) - heldBytes(hubWarm!)) / measured
      const records: ResultRecord[] = [
        {
          name: `idle CPU per node (${links} clients + hub, linked)`,
          n: links + 1,
          msgs_per_s: null,
          mb_per_s: null,
          p50_us: null,
          p99_us: null,
          baseline: null,
          ratio: null,
          ratio_of: null,
          cpu_pct_per_node: round(cpuPerNode, 3),
          client_cpu_pct_per_node: round(cliPerNode, 3),
          hub_cpu_pct: hubCpu!.pctOfCore,
          unlinked_client_cpu_pct_per_node: round(cliCpuUnlinked!.pctOfCore / allClients, 3),
          unlinked_hub_cpu_pct: hubCpuUnlinked!.pctOfCore,
          window_ms: t.idleMs,
          target: { metric: 'cpu_pct_per_node', max: TARGET_CPU_PCT, value: round(cpuPerNode, 3), met: cpuPerNode < TARGET_CPU_PCT },
        },
        {
          name: `idle RSS per peer link (links ${t.nodes + 1}-${links})`,
          n: measured,
          msgs_per_s: null,
          mb_per_s: null,
          p50_us: null,
          p99_us: null,
          baseline: 'raw ws (a worker thread per endpoint, beats both ways)',
          ratio: raw.perLink > 0 ? round(hubIdle / raw.perLink, 2) : null,
          ratio_of: 'rss_per_link',
          rss_per_link_bytes: Math.round(hubIdle),
          rss_per_link_kib: round(hubIdle / KiB, 1),
          raw_ws_rss_per_link_kib: round(raw.perLink / KiB, 1),
          raw_ws_rss: raw.points,
          hub_rss_per_link_right_after_linking_kib: round(hubSpan / KiB, 1),
          hub_rss_per_link_median_step_kib: round(hubMarginal / KiB, 1),
          hub_rss_per_link_after_idle_kib: round(hubAfterIdle / KiB, 1),
          hub_rss_per_link_warmup_round_kib: round(hubWarmSpan / KiB, 1),
          hub_rss_per_link_incl_first_kib: round(hubNaive / KiB, 1),
          hub_resident_growth_kib_measured_round: residentGrowth,
          hub_heap_live_per_link_kib: round(heapLivePerLink / KiB, 1),
          hub_heap_slack_per_link_kib: round(heapSlackPerLink / KiB, 1),
          hub_rss_per_link_net_of_heap_slack_kib: round(heldPerLink / KiB, 1),
          client_rss_per_link_kib: round(cliNaive / KiB, 1),
          hub_rss: { before: hubBefore, ...hubAt, [`links_${t.nodes}_idle`]: hubWarmIdle, after_idle: hubAfter },
          hub_rss_points: points,
          hub_rss_points_warmup: warmPoints,
          client_rss: { before: cliBefore, [`links_${links}`]: cliAfter },
          client_note: `one link per client node, ${links} nodes (${2 * links} worker heaps) in the process: dominated by allocator noise`,
          gc: 'every sample after a full GC of the main thread and of every IO and router worker heap (Mesh._collectGarbage)',
          // A negative delta means heap noise swamped the links: no verdict.
          target: { metric: 'rss_per_link_kib', max: TARGET_RSS_PER_LINK / KiB, value: round(hubIdle / KiB, 1), met: hubIdle <= 0 ? null : hubIdle < TARGET_RSS_PER_LINK },
        },
      ]
      const kib = (b: number): string => `${fixed(b / KiB, 1)} KiB`
      return {
        records,
        table: {
          head: ['idle', 'value', 'target', 'raw ws', 'detail'],
          rows: [
            ['CPU per node, linked', `${fixed(cpuPerNode, 2)} % of a core`, `< 1 %: ${cpuPerNode < TARGET_CPU_PCT ? 'met' : 'MISSED'}`, '–',
              `hub ${fixed(hubCpu!.pctOfCore, 2)} % (${links} links); clients ${fixed(cliPerNode, 2)} % per node (1 link each)`],
            ['CPU per node, unlinked', `${fixed(cliCpuUnlinked!.pctOfCore / allClients, 2)} % of a core`, 'report', '–', `hub ${fixed(hubCpuUnlinked!.pctOfCore, 2)} %`],
            ['RSS per idle link (hub, marginal)', kib(hubIdle), `< 100 KiB: ${hubIdle <= 0 ? 'inconclusive (noise)' : hubIdle < TARGET_RSS_PER_LINK ? 'met' : 'MISSED'}`, kib(raw.perLink),
              `(RSS with ${links} idle links − RSS with ${t.nodes} idle links) / ${measured}, each the lowest of ${SETTLED_SAMPLES} samples ${SETTLED_GAP_MS} ms apart from ${fixed((t.settleMs + t.idleMs) / 1000, 1)} s after the last join, after a warm-up round of ${t.nodes} links; right after the joins (young generations grown by them) ${kib(hubSpan)}, median of ${points.length - 1} steps of ${step} link${step === 1 ? '' : 's'} ${kib(hubMarginal)}; warm-up round ${kib(hubWarmSpan)}; V8 heaps (all threads) over the joins: live ${kib(heapLivePerLink)}, page slack ${kib(heapSlackPerLink)} per link`],
          ],
        },
        notes: [
          `${links} client nodes in one process (linked in two rounds of ${t.nodes}; RSS per link is measured in the second) + 1 hub node in another; ${t.idleMs} ms idle windows; raw ws baseline of the RSS figure: a hub endpoint and ${links} client endpoints (procs/raw-heartbeat-node.ts, a worker thread each, a ${RAW_BEAT_BYTES} B beat every ${RAW_BEAT_MS} ms from both ends of a link, answered), linked in the same two rounds and sampled the same way, before the mesh runs; every RSS sample after a full GC of every heap, and each end of the two figures the lowest of ${SETTLED_SAMPLES} samples ${SETTLED_GAP_MS} ms apart (RSS after a GC still drifts down by MiBs for seconds: young generations shrunk, arena tops given back); RSS is noisy at this scale (a few MiB either way between runs, ±50 KiB per link over ${measured} links, baseline too); CPU = process.cpuUsage (all threads) / wall; RSS after a full GC of every heap: the main thread and every node's IO and router workers (Mesh._collectGarbage; before, worker heaps were left as they were and their garbage swung the figure from -235 to +765 KiB per link).`,
        ],
      }
    } finally {
      await Promise.all([hub.close(), clients.close()])
    }
  },
}
