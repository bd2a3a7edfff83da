/**
 * Round-trip latency, two nodes in two processes on loopback.
 *
 * Node A sends a 64 B message to B, B's `message` handler sends it back, A
 * takes the time when its own handler sees the reply; one message in flight.
 * Against the same over raw `ws` (client → echo server). Rounds interleave
 * raw and mesh (one process pair per side, kept across rounds); every round's samples (after warmup)
 * go into one hdr-histogram per side.
 *
 * @module
 */
import type { MeshNodeApi } from '../procs/mesh-node.js'
import type { RawWsNodeApi } from '../procs/raw-ws-node.js'
import { procUrl } from '../lib/child.js'
import type { ResultRecord, RunOptions, Scenario, ScenarioOutput } from '../lib/scenario.js'
import { fixed, int, latencySummary, ratio, ratioCell, sizeName, type LatencySummary } from '../lib/stats.js'

const SIZE = 64

interface Timing { warmup: number; n: number; rounds: number }

function timing (o: RunOptions): Timing {
  return { warmup: o.quick ? 200 : 1_000, n: o.quick ? 1_000 : 5_000, rounds: o.rounds ?? (o.quick ? 2 : 3) }
}

/** A generous bound per round trip for the call deadline (a round trip is ~0.1–1 ms). */
const MS_PER_RTT_BOUND = 20

/** A pinger process and an echo process, linked, reused round after round. */
interface Pair {
  ping (t: Timing): Promise<number[]>
  close (): Promise<void>
}

async function meshPair (o: RunOptions): Promise<Pair> {
  const [b, a] = await Promise.all([
    o.children.spawn<MeshNodeApi>('mesh echo', procUrl('mesh-node')),
    o.children.spawn<MeshNodeApi>('mesh pinger', procUrl('mesh-node')),
  ])
  const close = async (): Promise<void> => { await Promise.all([a.close(), b.close()]) }
  try {
    const [rb] = await Promise.all([b.call('start', { count: 1 }, 15_000), a.call('start', { count: 1, listen: false }, 15_000)])
    await b.call('echo', null, 5_000)
    const url = rb.nodes[0]?.addresses[0]
    if (url === undefined) throw new Error('mesh echo node has no address')
    const { peerIds } = await a.call('connect', { url }, 15_000)
    const to = peerIds[0]!
    return {
      ping: async (t) => (await a.call('ping', { to, size: SIZE, warmup: t.warmup, n: t.n }, 10_000 + (t.warmup + t.n) * MS_PER_RTT_BOUND)).samplesNs,
      close,
    }
  } catch (err) {
    await close()
    throw err
  }
}

async function rawPair (o: RunOptions): Promise<Pair> {
  const [b, a] = await Promise.all([
    o.children.spawn<RawWsNodeApi>('raw ws echo', procUrl('raw-ws-node')),
    o.children.spawn<RawWsNodeApi>('raw ws pinger', procUrl('raw-ws-node')),
  ])
  const close = async (): Promise<void> => { await Promise.all([a.close(), b.close()]) }
  try {
    const { url } = await b.call('listen', null, 10_000)
    await b.call('echo', null, 5_000)
    await a.call('connect', { url }, 10_000)
    return {
      ping: async (t) => (await a.call('ping', { size: SIZE, warmup: t.warmup, n: t.n }, 10_000 + (t.warmup + t.n) * MS_PER_RTT_BOUND)).samplesNs,
      close,
    }
  } catch (err) {
    await close()
    throw err
  }
}

function cells (s: LatencySummary): string[] {
  return [fixed(s.p50_us), fixed(s.p90_us), fixed(s.p99_us), fixed(s.p999_us), fixed(s.max_us)]
}

export const latency: Scenario = {
  name: 'latency',
  description: 'round-trip time, 64 B, one in flight, two processes on loopback, mesh vs raw ws echo (interleaved)',
  inQuick: true,
  timeoutMs (o) {
    const t = timing(o)
    return 40_000 + t.rounds * 2 * (10_000 + (t.warmup + t.n) * MS_PER_RTT_BOUND)
  },
  async run (o): Promise<ScenarioOutput> {
    const t = timing(o)
    const raw: number[] = []
    const mesh: number[] = []
    // One pair per side for every round (a round is one in flight: the idle pair costs nothing).
    const [rp, mp] = await Promise.all([rawPair(o), meshPair(o)])
    try {
      for (let i = 0; i < t.rounds; i++) {
        const r = await rp.ping(t)
        raw.push(...r)
        o.log(`latency round ${i + 1}/${t.rounds}: raw ws p50 ${fixed(latencySummary(r).p50_us)} µs`)
        const m = await mp.ping(t)
        mesh.push(...m)
        o.log(`latency round ${i + 1}/${t.rounds}: mesh   p50 ${fixed(latencySummary(m).p50_us)} µs`)
      }
    } finally {
      await Promise.all([rp.close(), mp.close()])
    }
    const c = latencySummary(mesh)
    const b = latencySummary(raw)
    const r50 = ratio(c.p50_us, b.p50_us)
    const r99 = ratio(c.p99_us, b.p99_us)
    const record: ResultRecord = {
      name: `latency RTT ${sizeName(SIZE)}`,
      n: c.n,
      payload_bytes: SIZE,
      msgs_per_s: null,
      mb_per_s: null,
      p50_us: c.p50_us,
      p90_us: c.p90_us,
      p99_us: c.p99_us,
      p999_us: c.p999_us,
      max_us: c.max_us,
      mean_us: c.mean_us,
      round_trips_per_s: Math.round(1e6 / c.mean_us),
      baseline: 'raw ws echo',
      baseline_n: b.n,
      baseline_p50_us: b.p50_us,
      baseline_p90_us: b.p90_us,
      baseline_p99_us: b.p99_us,
      baseline_p999_us: b.p999_us,
      baseline_max_us: b.max_us,
      baseline_mean_us: b.mean_us,
      ratio: r50,
      ratio_of: 'p50_us',
      ratio_p50: r50,
      ratio_p99: r99,
      aggregate: `all samples of ${t.rounds} rounds per side in one histogram`,
      warmup_per_round: t.warmup,
      n_per_round: t.n,
    }
    return {
      records: [record],
      table: {
        head: ['RTT 64 B (µs)', 'n', 'p50', 'p90', 'p99', 'p99.9', 'max'],
        rows: [
          ['raw ws echo', int(b.n), ...cells(b)],
          ['mesh', int(c.n), ...cells(c)],
          ['ratio mesh/raw', '', ratioCell(r50), ratioCell(ratio(c.p90_us, b.p90_us)), ratioCell(r99), ratioCell(ratio(c.p999_us, b.p999_us)), ratioCell(ratio(c.max_us, b.max_us))],
        ],
      },
      notes: [
        `${t.rounds} rounds per side, interleaved (one process pair per side); ${t.warmup} warmup + ${t.n} measured round trips per round; hdr-histogram-js over all rounds' samples. Lower ratio is better.`,
      ],
    }
  },
}
