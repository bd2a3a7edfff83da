/**
 * What metrics and logs cost (issue 6): the two-process throughput run of
 * ./throughput.ts, mesh against mesh — "observed" (a pino logger at `info`
 * in both processes, and both nodes' `metrics()` scraped every second, a
 * tougher cadence than Prometheus' default 15 s) against "plain"
 * (`logger: false`, never scraped) — in the same run, rounds interleaved
 * (plain, observed, observed, plain, …), each round on a new process pair
 * per variant: a pair's own speed, fixed for its life, differs from
 * another's by more than the 5 % this figure must resolve (see Side).
 *
 * Reported per payload size: the median msgs/s of each variant, their ratio
 * observed/plain (target ≥ 0.95: metrics and logs cost under 5 %), the
 * range of the per-round ratios (round i of each variant ran back to back),
 * the host event-loop delay p99 of both variants, and what the scrapes took.
 *
 * @module
 */
import type { ResultRecord, Scenario, ScenarioOutput } from '../lib/scenario.js'
import { fixed, int, KiB, median, ratio, ratioCell, round, sizeName } from '../lib/stats.js'
import { eldP99, meshPair, msgsPerS, Side, timing, type Round, type ScrapeCost, type ScrapeStats, type Timing } from './throughput.js'

/** Scrape interval of the observed variant, ms. */
const SCRAPE_MS = 1_000
/** Issue 6's figure: observed/plain throughput at least this much. */
const MIN_RATIO = 0.95
const SIZES = [64, 64 * KiB] as const

/** Per-phase timing: throughput's, with more rounds (a 5 % effect on a shared box needs them; even, so each variant goes first as often). */
function obsTiming (o: Parameters<Scenario['run']>[0]): Timing {
  const t = timing(o)
  return { ...t, rounds: o.rounds ?? (o.quick ? 1 : 8), sizes: o.sizes ?? (o.quick ? [64] : SIZES) }
}

/** CPU of both processes (all threads) per message delivered in the window, µs. */
function cpuUsPerMsg (r: Round): number {
  return (r.flood.cpuPct + r.rate.cpuPct) / 100 * 1e6 / msgsPerS(r)
}

export const observability: Scenario = {
  name: 'observability',
  description: 'cost of metrics + logs: throughput with a pino logger at info and metrics() scraped every 1 s vs logger: false and no scrapes (interleaved)',
  inQuick: true,
  timeoutMs (o) {
    const t = obsTiming(o)
    // + 15 s per round and variant: a new pair is spawned and linked for each.
    return 60_000 + t.sizes.length * t.rounds * 2 * (t.warmupMs + t.measureMs + 30_000)
  },
  async run (o): Promise<ScenarioOutput> {
    const t = obsTiming(o)
    const records: ResultRecord[] = []
    const rows: string[][] = []
    const plainSide = new Side('plain', async () => await meshPair(o), { fresh: true })
    const obsSide = new Side('observed', async () => await meshPair(o, { scrapeMs: SCRAPE_MS }), { fresh: true })
    let scrapes: ScrapeStats[] = []
    let cost: ScrapeCost | undefined
    try {
      await Promise.all([plainSide.prepare(), obsSide.prepare()])
      for (const size of t.sizes) {
        const plain: Round[] = []
        const obs: Round[] = []
        const pairRatios: number[] = []
        for (let i = 0; i < t.rounds; i++) {
          // ABBA order: neither variant always runs second (on a box that heats up, or one whose load changes).
          const plainFirst = i % 4 === 0 || i % 4 === 3
          let p: Round | undefined
          let q: Round | undefined
          if (plainFirst) { p = await plainSide.round(size, t); q = await obsSide.round(size, t) } else { q = await obsSide.round(size, t); p = await plainSide.round(size, t) }
          if (p !== undefined) plain.push(p)
          if (q !== undefined) obs.push(q)
          if (p !== undefined && q !== undefined) pairRatios.push(msgsPerS(q) / msgsPerS(p))
          o.log(`observability ${sizeName(size)} round ${i + 1}/${t.rounds}: plain ${p === undefined ? 'FAILED' : `${int(msgsPerS(p))} msgs/s, ${fixed(cpuUsPerMsg(p), 3)} µs CPU/msg`}, observed ${q === undefined ? 'FAILED' : `${int(msgsPerS(q))} msgs/s, ${fixed(cpuUsPerMsg(q), 3)} µs CPU/msg`}`)
        }
        if (plain.length === 0 || obs.length === 0) {
          rows.push([sizeName(size), plain.length === 0 ? 'failed' : int(median(plain.map(msgsPerS))), obs.length === 0 ? 'failed' : int(median(obs.map(msgsPerS))), '–', '–', 'no result', '–', '–'])
          continue
        }
        const plainMsgs = median(plain.map(msgsPerS))
        const obsMsgs = median(obs.map(msgsPerS))
        const r = ratio(obsMsgs, plainMsgs)
        const met = r === null ? null : r >= MIN_RATIO
        const lo = Math.min(...pairRatios)
        const hi = Math.max(...pairRatios)
        records.push({
          name: `metrics + logs cost, throughput ${sizeName(size)} (observed / plain)`,
          issue: 6,
          n: obs.reduce((s, x) => s + x.rate.count, 0),
          payload_bytes: size,
          msgs_per_s: round(obsMsgs),
          mb_per_s: round(obsMsgs * size / 1e6, 2),
          p50_us: null,
          p99_us: null,
          baseline: 'same mesh, logger: false, no scrapes',
          baseline_msgs_per_s: round(plainMsgs),
          ratio: r,
          ratio_of: 'msgs_per_s',
          round_ratios: pairRatios.map((x) => round(x, 3)),
          scrape_ms: SCRAPE_MS,
          log_level: 'info',
          sender_eld_p99_ms: eldP99(obs, 'send'),
          receiver_eld_p99_ms: eldP99(obs, 'recv'),
          baseline_sender_eld_p99_ms: eldP99(plain, 'send'),
          baseline_receiver_eld_p99_ms: eldP99(plain, 'recv'),
          eld_resolution_subtracted: true,
          rounds: obs.length,
          baseline_rounds: plain.length,
          target: { metric: 'ratio_msgs_per_s', min: MIN_RATIO, value: r, met },
        })
        o.log(`observability ${sizeName(size)}: observed/plain ${fixed(r, 3)} (rounds ${pairRatios.map((x) => x.toFixed(2)).join(', ')})`)
        rows.push([
          sizeName(size), int(plainMsgs), int(obsMsgs), ratioCell(r), `${fixed(lo, 2)} – ${fixed(hi, 2)}`,
          `≥ ${MIN_RATIO.toFixed(2)}: ${met === true ? 'met' : 'MISSED'}`,
          `${fixed(eldP99(plain, 'send'))} / ${fixed(eldP99(plain, 'recv'))}`,
          `${fixed(eldP99(obs, 'send'))} / ${fixed(eldP99(obs, 'recv'))}`,
        ])
      }
      scrapes = await obsSide.scrapes()
      // The interleaved ratio is noisy on a shared box; the CPU a scrape takes
      // (traffic stopped, many scrapes) bounds the cost of metrics directly.
      cost = await obsSide.scrapeCost(o.quick ? 20 : 500)
    } finally {
      await Promise.all([plainSide.close(), obsSide.close()])
    }
    if (cost !== undefined) {
      records.push({
        name: 'metrics scrape cost (one metrics() call, traffic stopped)',
        n: o.quick ? 20 : 500,
        msgs_per_s: null,
        mb_per_s: null,
        p50_us: null,
        p99_us: null,
        baseline: null,
        ratio: null,
        ratio_of: null,
        cpu_ms_per_scrape: cost.cpuMsPerScrape,
        wall_ms_per_scrape: cost.wallMsPerScrape,
        bytes: cost.bytes,
        cpu_pct_of_core_at_1s: round(100 * cost.cpuMsPerScrape / SCRAPE_MS, 3),
        cpu_pct_of_core_at_15s: round(100 * cost.cpuMsPerScrape / 15_000, 4),
      })
    }
    const errors = [...plainSide.errors.map((e) => `plain ${e}`), ...obsSide.errors.map((e) => `observed ${e}`)]
    const sc = scrapes.reduce((a, s) => ({ count: a.count + s.count, ms: a.ms + s.meanMs * s.count, maxMs: Math.max(a.maxMs, s.maxMs), bytes: Math.max(a.bytes, s.meanBytes) }), { count: 0, ms: 0, maxMs: 0, bytes: 0 })
    return {
      records,
      table: {
        head: ['payload', 'plain msgs/s', 'observed msgs/s', 'ratio', 'round ratios', 'target (observed/plain)', 'plain host ELD p99 ms send / recv', 'observed host ELD p99 ms send / recv'],
        rows,
      },
      notes: [
        `Median of ${t.rounds} rounds per variant (order plain, observed, observed, plain, …; a new process pair for every round of each variant: in an A/A run, both variants plain and one pair each, the ratio came out 1.17, 0.93 and 0.96, every round of a run on the same side of 1, so rounds of one pair cannot resolve 5 %); ${t.warmupMs} ms warmup, ${t.measureMs} ms window, counted at the receiver's \`message\` handler. Observed: \`logger\` = pino at info to /dev/null (pino.destination, async) and \`metrics()\` of each node scraped every ${SCRAPE_MS} ms in both processes; plain: \`logger: false\`, no scrape. "round ratios" = observed/plain of the two rounds run back to back (min – max).`,
        `Scrapes of the observed side during the rounds: ${sc.count}, wall time mean ${fixed(sc.count === 0 ? 0 : sc.ms / sc.count, 2)} ms, max ${fixed(sc.maxMs, 1)} ms (awaiting the IO worker's stats while saturated; the host's loop is free meanwhile), ~${int(sc.bytes)} bytes of text each.`,
        ...(cost === undefined ? [] : [`One scrape, traffic stopped (${o.quick ? 20 : 500} back to back in the receiver process): ${fixed(cost.cpuMsPerScrape, 3)} ms CPU (host + workers), ${fixed(cost.wallMsPerScrape, 3)} ms wall, ${int(cost.bytes)} bytes: at one scrape per ${SCRAPE_MS} ms that is ${fixed(100 * cost.cpuMsPerScrape / SCRAPE_MS, 2)} % of one core per node (at Prometheus' default 15 s, ${fixed(100 * cost.cpuMsPerScrape / 15_000, 3)} %).`]),
        ...(errors.length === 0 ? [] : [`Failed rounds (left out of the medians): ${errors.join('; ')}`]),
      ],
    }
  },
}
