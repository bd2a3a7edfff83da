/**
 * Relayed throughput through one hop (issue 5): three processes a → b → c,
 * a and c dial-only (a dials only b, c dials only b), so every message from
 * a to c travels in FORWARD envelopes through b's IO worker; against a
 * direct pair a → c (two more processes) in the same run, rounds
 * interleaved (direct, relayed, direct, relayed, …).
 *
 * Reliable messages, 64 B and 1 KiB, sent by `for (;;) await mesh.send()`
 * in a and counted by c at its `message` handler (the throughput scenario's
 * machinery: ./throughput.ts `measure`, ../procs/mesh-node.ts). Reported:
 * the median of the rounds per side, relayed/direct ratios, CPU of each
 * process, and the relay's FORWARD counters (frames passed on, dropped).
 *
 * @module
 */
import type { MeshNodeApi } from '../procs/mesh-node.js'
import { procUrl, type Child } from '../lib/child.js'
import type { ResultRecord, RunOptions, Scenario, ScenarioOutput } from '../lib/scenario.js'
import { fixed, int, KiB, max, median, MiB, ratio, ratioCell, round, sizeName } from '../lib/stats.js'
import { bytesPerS, measure, meshPair, msgsPerS, Side, timing, type Round, type Timing } from './throughput.js'

/** Issue 5's figure: relayed throughput at least this share of the direct one. */
export const RELAY_RATIO_MIN = 0.6
export const RELAY_SIZES = [64, KiB] as const

const QUIET_MS = 100
const ROUND_SLACK_MS = 15_000
const SETUP_MS = 45_000

/** Relay process CPU over each relayed round, % of one core. */
const relayCpu = new Map<number, number[]>()

/** a → b → c in three processes; the pair interface of ./throughput.ts. */
async function relayChain (o: RunOptions): Promise<{ round: (size: number, t: Timing) => Promise<Round>; close: () => Promise<void>; relay: Child<MeshNodeApi> }> {
  const [a, b, c] = await Promise.all([
    o.children.spawn<MeshNodeApi>('relay sender (a)', procUrl('mesh-node')),
    o.children.spawn<MeshNodeApi>('relay (b)', procUrl('mesh-node')),
    o.children.spawn<MeshNodeApi>('relay receiver (c)', procUrl('mesh-node')),
  ])
  const close = async (): Promise<void> => { await Promise.all([a.close(), b.close(), c.close()]) }
  try {
    const [rb, rc] = await Promise.all([
      b.call('start', { count: 1 }, 15_000),
      c.call('start', { count: 1, listen: false }, 15_000),
      a.call('start', { count: 1, listen: false }, 15_000),
    ])
    const url = rb.nodes[0]?.addresses[0]
    const to = rc.nodes[0]?.id
    if (url === undefined || to === undefined) throw new Error('relay chain: no relay address or receiver id')
    await Promise.all([a.call('connect', { url }, 15_000), c.call('connect', { url }, 15_000)])
    const route = await a.call('waitRoute', { to, timeoutMs: 15_000 }, 20_000)
    if (route.hops !== 2) throw new Error(`relay chain: a routes to c in ${route.hops} hop(s), expected 2`)
    return {
      relay: b,
      round: async (size, t) => {
        b.notify('cpuStart', null)
        const res = await measure(c, a, t, { to, size, warmupMs: t.warmupMs })
        const cpu = await b.call('cpuStop', null, 10_000)
        const list = relayCpu.get(size) ?? []
        list.push(cpu.pctOfCore)
        relayCpu.set(size, list)
        await c.call('quiesce', { quietMs: QUIET_MS, maxMs: 10_000 }, 15_000)
        return res
      },
      close,
    }
  } catch (err) {
    await close()
    throw err
  }
}

function record (size: number, direct: Round[], relayed: Round[], t: Timing, relayStats: unknown): { record: ResultRecord; row: string[] } {
  const dMsgs = median(direct.map(msgsPerS))
  const rMsgs = median(relayed.map(msgsPerS))
  const dBytes = median(direct.map(bytesPerS))
  const rBytes = median(relayed.map(bytesPerS))
  const rr = ratio(rMsgs, dMsgs)
  const met = rr === null ? null : rr >= RELAY_RATIO_MIN
  const cpu = (rs: Round[], side: 'send' | 'recv'): number => median(rs.map((r) => side === 'send' ? r.flood.cpuPct : r.rate.cpuPct))
  const relayPct = median(relayCpu.get(size) ?? [NaN])
  return {
    record: {
      name: `relayed throughput ${sizeName(size)} (a → b → c vs a → c)`,
      issue: 5,
      n: relayed.reduce((s, r) => s + r.rate.count, 0),
      payload_bytes: size,
      msgs_per_s: round(rMsgs),
      mb_per_s: round(rBytes / 1e6, 2),
      p50_us: null,
      p99_us: null,
      baseline: 'direct a → c (mesh, two processes), same run',
      baseline_n: direct.reduce((s, r) => s + r.rate.count, 0),
      baseline_msgs_per_s: round(dMsgs),
      baseline_mb_per_s: round(dBytes / 1e6, 2),
      ratio: rr,
      ratio_of: 'msgs_per_s',
      aggregate: `median of rounds (${relayed.length} relayed, ${direct.length} direct of ${t.rounds})`,
      best_msgs_per_s: round(max(relayed.map(msgsPerS))),
      baseline_best_msgs_per_s: round(max(direct.map(msgsPerS))),
      sender_cpu_pct: cpu(relayed, 'send'),
      receiver_cpu_pct: cpu(relayed, 'recv'),
      relay_cpu_pct: Number.isNaN(relayPct) ? null : relayPct,
      baseline_sender_cpu_pct: cpu(direct, 'send'),
      baseline_receiver_cpu_pct: cpu(direct, 'recv'),
      relay_stats: relayStats,
      warmup_ms: t.warmupMs,
      window_ms: t.measureMs,
      rounds: relayed.map((r) => ({ msgs_per_s: round(msgsPerS(r)), count: r.rate.count, window_ms: round(r.rate.ms, 1) })),
      baseline_rounds: direct.map((r) => ({ msgs_per_s: round(msgsPerS(r)), count: r.rate.count, window_ms: round(r.rate.ms, 1) })),
      target: { metric: 'ratio_msgs_per_s', min: RELAY_RATIO_MIN, value: rr, met },
    },
    row: [
      sizeName(size),
      int(dMsgs), int(rMsgs), ratioCell(rr),
      fixed(dBytes / MiB, 1), fixed(rBytes / MiB, 1),
      `≥ ${RELAY_RATIO_MIN.toFixed(2)}: ${met === true ? 'met' : met === false ? 'MISSED' : '–'}`,
      `${fixed(cpu(direct, 'send'), 0)} / ${fixed(cpu(direct, 'recv'), 0)}`,
      `${fixed(cpu(relayed, 'send'), 0)} / ${fixed(relayPct, 0)} / ${fixed(cpu(relayed, 'recv'), 0)}`,
    ],
  }
}

export const relay: Scenario = {
  name: 'relay',
  description: 'relayed throughput through one hop (a → b → c, dial-only ends, 3 processes) vs direct a → c, 64 B / 1 KiB reliable (interleaved)',
  inQuick: true,
  timeoutMs (o) {
    const t = timing({ ...o, sizes: o.sizes ?? RELAY_SIZES })
    return 2 * SETUP_MS + t.sizes.length * t.rounds * 2 * (t.warmupMs + t.measureMs + ROUND_SLACK_MS)
  },
  async run (o): Promise<ScenarioOutput> {
    const t = timing({ ...o, sizes: o.sizes ?? RELAY_SIZES })
    relayCpu.clear()
    let relayChild: Child<MeshNodeApi> | undefined
    const direct = new Side('direct', async () => await meshPair(o))
    const relayed = new Side('relayed', async () => {
      const chain = await relayChain(o)
      relayChild = chain.relay
      return chain
    })
    const records: ResultRecord[] = []
    const rows: string[][] = []
    try {
      await Promise.all([direct.prepare(), relayed.prepare()])
      for (const size of t.sizes) {
        const d: Round[] = []
        const r: Round[] = []
        for (let i = 0; i < t.rounds; i++) {
          for (const [side, into] of [[direct, d], [relayed, r]] as const) {
            const res = await side.round(size, t)
            if (res !== undefined) into.push(res)
            o.log(`relay ${sizeName(size)} round ${i + 1}/${t.rounds}: ${side.label.padEnd(7)} ${res === undefined ? `FAILED: ${side.errors.at(-1) ?? ''}` : `${int(msgsPerS(res))} msgs/s`}`)
          }
        }
        if (d.length === 0 || r.length === 0) {
          rows.push([sizeName(size), d.length === 0 ? 'failed' : int(median(d.map(msgsPerS))), r.length === 0 ? 'failed' : int(median(r.map(msgsPerS))), '–', '–', '–', 'no result', '–', '–'])
          continue
        }
        const stats = await relayChild?.call('relayStats', null, 10_000).catch(() => null) ?? null
        const out = record(size, d, r, t, stats)
        records.push(out.record)
        rows.push(out.row)
      }
    } finally {
      await Promise.all([direct.close(), relayed.close()])
    }
    const errors = [...direct.errors.map((e) => `direct ${e}`), ...relayed.errors.map((e) => `relayed ${e}`)]
    return {
      records,
      table: {
        head: ['payload', 'direct msgs/s', 'relayed msgs/s', 'ratio', 'direct MiB/s', 'relayed MiB/s', 'target (relayed/direct)', 'direct CPU % send / recv', 'relayed CPU % a / b / c'],
        rows,
      },
      notes: [
        `Median of ${t.rounds} rounds per side (direct, relayed, …; one set of processes per side, drained between rounds); ${t.warmupMs} ms warmup, ${t.measureMs} ms window, counted by the receiver at its \`message\` handler. Reliable messages; a and c dial-only, so a reaches c only through b's IO worker (FORWARD envelopes with a hop limit; acks come back from c the same way). CPU % = whole process (all threads) in % of one core.`,
        ...(errors.length === 0 ? [] : [`Failed rounds (left out of the medians): ${errors.join('; ')}`]),
      ],
    }
  },
}
