/**
 * Idle cost (issue 2: "Idle node: under 1 % of a core; RSS per idle peer
 * link under 100 KiB").
 *
 * Two processes: a hub (one node) and a client process with N nodes. Both
 * first idle unlinked; then the clients link to the hub in steps, and both
 * idle linked.
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
 *   The per-link cost is the median increment per step after the first
 *   (the marginal cost of a link at a node that has many), and for
 *   reference (RSS with N links − RSS before any link) / N. The client
 *   side is in the JSON only: one link per node, 24 nodes' worth of
 *   allocator noise.
 *
 * @module
 */
import type { MeshNodeApi } from '../procs/mesh-node.js'
import type { CpuResult, MemResult } from '../lib/ipc.js'
import type { Child } from '../lib/child.js'
import { procUrl } from '../lib/child.js'
import { sleep } from '../lib/measure.js'
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

async function cpuWindow (procs: Array<Child<MeshNodeApi>>, ms: number): Promise<CpuResult[]> {
  await Promise.all(procs.map(async (p) => { await p.call('cpuStart', null, 5_000) }))
  await sleep(ms)
  return await Promise.all(procs.map(async (p) => await p.call('cpuStop', null, 5_000)))
}

/** Per process: the sample with the median RSS of three, 100 ms apart, each after a GC of every heap (mesh-node.ts mem). */
async function mem (procs: Array<Child<MeshNodeApi>>): Promise<MemResult[]> {
  return await Promise.all(procs.map(async (p) => {
    const samples: MemResult[] = []
    for (let i = 0; i < 3; i++) {
      if (i > 0) await sleep(100)
      samples.push(await p.call('mem', null, 10_000))
    }
    return samples.sort((a, b) => a.rss - b.rss)[1]!
  }))
}

export const idle: Scenario = {
  name: 'idle',
  description: 'idle CPU per node and RSS per idle peer link (hub + N client nodes, two processes)',
  inQuick: true,
  timeoutMs (o) {
    const t = timing(o)
    return 150_000 + 2 * t.idleMs + 10 * t.settleMs
  },
  async run (o): Promise<ScenarioOutput> {
    const t = timing(o)
    const [hub, clients] = await Promise.all([
      o.children.spawn<MeshNodeApi>('idle hub', procUrl('mesh-node')),
      o.children.spawn<MeshNodeApi>('idle clients', procUrl('mesh-node')),
    ])
    try {
      const [h] = await Promise.all([
        hub.call('start', { count: 1 }, 15_000),
        // maxPeers 1: each client keeps exactly its link to the hub. Without it, membership
        // discovery links the clients with each other and "per link" would count the wrong links.
        clients.call('start', { count: t.nodes, maxPeers: 1 }, 60_000),
      ])
      const url = h.nodes[0]?.addresses[0]
      if (url === undefined) throw new Error('idle hub has no address')
      await sleep(t.settleMs)
      const [hubBefore, cliBefore] = await mem([hub, clients])
      const [hubCpuUnlinked, cliCpuUnlinked] = await cpuWindow([hub, clients], t.idleMs)
      o.log(`idle: unlinked, hub ${fixed(hubCpuUnlinked!.pctOfCore, 2)} %, clients ${fixed(cliCpuUnlinked!.pctOfCore / t.nodes, 2)} % per node`)

      // Link in steps, sampling the hub's RSS after each; the per-link cost is the median step
      // increment, which shrugs off the odd multi-MiB drop when a worker heap shrinks. The first
      // step (from 0) is not an increment: it also pays one-time costs (JIT of the handshake path).
      const step = Math.max(1, Math.floor(t.nodes / STEPS))
      const points: Array<{ links: number; rss: number }> = []
      const hubAt: Record<string, MemResult> = {}
      for (let from = 0; from < t.nodes; from += step) {
        const to = Math.min(t.nodes, from + step)
        await clients.call('connect', { url, from, to }, 60_000)
        await hub.call('waitPeers', { n: to, timeoutMs: 30_000 }, 35_000)
        await sleep(t.settleMs / 2)
        const [m] = await mem([hub])
        points.push({ links: to, rss: m!.rss })
        hubAt[`links_${to}`] = m!
      }
      o.log(`idle: ${t.nodes} links up`)
      await sleep(t.settleMs)
      const [hubCpu, cliCpu] = await cpuWindow([hub, clients], t.idleMs)
      const [hubAfter, cliAfter] = await mem([hub, clients])

      const links = t.nodes
      const hubMarginal = medianStep(points)
      const hubSpan = points.length < 2 ? NaN : (points.at(-1)!.rss - points[0]!.rss) / (points.at(-1)!.links - points[0]!.links)
      // After the linked idle window: the workers' young generations, grown by the joins'
      // allocation, have shrunk back by then (V8's memory reducer; a full GC does not shrink them).
      const hubAfterIdle = points.length < 2 ? NaN : (hubAfter!.rss - points[0]!.rss) / (links - points[0]!.links)
      const hubNaive = (hubAfter!.rss - hubBefore!.rss) / links
      const cliNaive = (cliAfter!.rss - cliBefore!.rss) / links
      const cpuPerNode = (hubCpu!.cpuMs + cliCpu!.cpuMs) / (hubCpu!.wallMs) / (links + 1) * 100
      const cliPerNode = cliCpu!.pctOfCore / links
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
          unlinked_client_cpu_pct_per_node: round(cliCpuUnlinked!.pctOfCore / links, 3),
          unlinked_hub_cpu_pct: hubCpuUnlinked!.pctOfCore,
          window_ms: t.idleMs,
          target: { metric: 'cpu_pct_per_node', max: TARGET_CPU_PCT, value: round(cpuPerNode, 3), met: cpuPerNode < TARGET_CPU_PCT },
        },
        {
          name: `idle RSS per peer link (${links} links)`,
          n: links,
          msgs_per_s: null,
          mb_per_s: null,
          p50_us: null,
          p99_us: null,
          baseline: null,
          ratio: null,
          ratio_of: null,
          rss_per_link_bytes: Math.round(hubMarginal),
          rss_per_link_kib: round(hubMarginal / KiB, 1),
          hub_rss_per_link_end_to_end_kib: round(hubSpan / KiB, 1),
          hub_rss_per_link_after_idle_kib: round(hubAfterIdle / KiB, 1),
          hub_rss_per_link_incl_first_kib: round(hubNaive / KiB, 1),
          client_rss_per_link_kib: round(cliNaive / KiB, 1),
          hub_rss: { before: hubBefore, ...hubAt, after_idle: hubAfter },
          hub_rss_points: points,
          client_rss: { before: cliBefore, [`links_${links}`]: cliAfter },
          client_note: 'one link per client node, 24 nodes (48 worker heaps) in the process: dominated by allocator noise',
          gc: 'every sample after a full GC of the main thread and of every IO and router worker heap (Mesh._collectGarbage)',
          // A negative delta means heap noise swamped the links: no verdict.
          target: { metric: 'rss_per_link_kib', max: TARGET_RSS_PER_LINK / KiB, value: round(hubMarginal / KiB, 1), met: hubMarginal <= 0 ? null : hubMarginal < TARGET_RSS_PER_LINK },
        },
      ]
      const kib = (b: number): string => `${fixed(b / KiB, 1)} KiB`
      return {
        records,
        table: {
          head: ['idle', 'value', 'target', 'detail'],
          rows: [
            ['CPU per node, linked', `${fixed(cpuPerNode, 2)} % of a core`, `< 1 %: ${cpuPerNode < TARGET_CPU_PCT ? 'met' : 'MISSED'}`,
              `hub ${fixed(hubCpu!.pctOfCore, 2)} % (${links} links); clients ${fixed(cliPerNode, 2)} % per node (1 link each)`],
            ['CPU per node, unlinked', `${fixed(cliCpuUnlinked!.pctOfCore / links, 2)} % of a core`, 'report', `hub ${fixed(hubCpuUnlinked!.pctOfCore, 2)} %`],
            ['RSS per idle link (hub, marginal)', kib(hubMarginal), `< 100 KiB: ${hubMarginal <= 0 ? 'inconclusive (noise)' : hubMarginal < TARGET_RSS_PER_LINK ? 'met' : 'MISSED'}`,
              `median of ${points.length - 1} increments of ${step} link${step === 1 ? '' : 's'} after the first; end to end (RSS ${links} − RSS ${step} links) / ${links - step} = ${kib(hubSpan)}; after the idle window ${kib(hubAfterIdle)}`],
          ],
        },
        notes: [
          `${links} client nodes in one process + 1 hub node in another; ${t.idleMs} ms idle windows; CPU = process.cpuUsage (all threads) / wall; RSS after a full GC of every heap: the main thread and every node's IO and router workers (Mesh._collectGarbage; before, worker heaps were left as they were and their garbage swung the figure from -235 to +765 KiB per link).`,
        ],
      }
    } finally {
      await Promise.all([hub.close(), clients.close()])
    }
  },
}
