/**
 * Throughput, two nodes in two processes on loopback (issue 2).
 *
 * For each payload size (64 B, 1 KiB, 64 KiB), rounds of raw `ws` then
 * meshwork, interleaved (raw, mesh, raw, mesh, …). Each side is one pair of
 * processes, kept for every round (respawned only after a failed round);
 * after its round a side waits until its receiver has drained, so no
 * backlog runs during the other side's round:
 * - mesh: the receiver process starts a node and counts at its `message`
 *   handler; the sender process dials it, then runs `for (;;) await
 *   mesh.send(peer, payload)`.
 * - raw ws: a WebSocketServer counting `message` events; a client sending
 *   at its best (bufferutil, socket corked per tick, backpressure on
 *   `bufferedAmount`) — see ../procs/raw-ws-node.ts.
 * - floor: the architecture without meshwork's protocol — host thread →
 *   ring → worker → ws → worker → ring → host thread, payloads only (see
 *   ../procs/floor-node.ts). Reported beside the figures, never as one.
 *
 * The receiver measures the rate itself: from its first message it waits out
 * the warmup, then counts between two timestamps of its own. Reported: the
 * median of the rounds for each side, and mesh/raw ratios of those medians.
 * The event-loop delay (monitorEventLoopDelay) and process CPU of both
 * processes are taken over the same window.
 *
 * @module
 */
import type { MeshNodeApi } from '../procs/mesh-node.js'
import type { RawWsNodeApi } from '../procs/raw-ws-node.js'
import type { FloorNodeApi } from '../procs/floor-node.js'
import type { EldSummary, FloodResult, RateResult } from '../lib/ipc.js'
import { procUrl, type Child } from '../lib/child.js'
import { BORROW_MIN_BYTES } from '../../src/codec/payload-lender.js'
import { CHUNK_BYTES } from '../../src/io/io-worker.js'
import type { ResultRecord, RunOptions, Scenario, ScenarioOutput } from '../lib/scenario.js'
import { fixed, int, KiB, max, median, MiB, ratio, ratioCell, round, sizeName } from '../lib/stats.js'

export const SIZES = [64, KiB, 64 * KiB] as const

/** Issue 2's figures: mesh/raw at least this much, per payload size and metric. */
const TARGETS: Record<number, { metric: 'msgs_per_s' | 'mb_per_s'; min: number }> = {
  64: { metric: 'msgs_per_s', min: 0.5 },
  [64 * KiB]: { metric: 'mb_per_s', min: 0.8 },
}

export interface Timing { warmupMs: number; measureMs: number; slackMs: number; rounds: number; sizes: readonly number[] }

export function timing (o: RunOptions): Timing {
  return {
    warmupMs: o.quick ? 200 : 1_000,
    measureMs: o.durationMs ?? (o.quick ? 250 : 2_500),
    // How long the sender floods past warmup + window when it cannot hear "stop" (see measure()).
    // It costs nothing when "stop" arrives; on a loaded box (a quick run inside the test suite)
    // the receiver's first message can come late, and a short slack voids the round.
    slackMs: 1_500,
    // Medians of 3 in a full run: on a shared box one round in three is often off by 2x.
    rounds: o.rounds ?? (o.quick ? 2 : 3),
    sizes: o.sizes ?? SIZES,
  }
}

export interface Round {
  rate: RateResult
  flood: FloodResult
  /** Event-loop delay of an idle process over the same window (the machine's share of the delay). */
  control?: EldSummary
}

/** An idle process measuring its own event-loop delay during each round (see procs/mesh-node.ts `eldProbe`). */
export type EldProbe = Child<MeshNodeApi>

/** Sizes the borrowing side runs: payloads a `borrowPayloads` receiver lends (8 KiB up to one frame, as mesh.ts's PayloadLender). */
function lends (size: number): boolean { return size >= BORROW_MIN_BYTES && size <= CHUNK_BYTES }

/** A receiver silent this long has drained the previous round's backlog. */
const QUIET_MS = 100

/** Time the orchestration may take per round on top of warmup + window (dial, drain). */
const ROUND_SLACK_MS = 15_000
/** Time to spawn and link a pair of processes. */
const PAIR_SETUP_MS = 30_000

/** A receiver process and a sender process, linked, reused round after round. */
interface Pair {
  round (size: number, t: Timing): Promise<Round>
  close (): Promise<void>
  /** Scrape statistics of both processes (mesh pairs only). */
  scrapes? (): Promise<ScrapeStats[]>
  /** CPU and wall time of one scrape in the receiver process, traffic stopped (mesh pairs only). */
  scrapeCost? (n: number): Promise<ScrapeCost>
}

/** See procs/mesh-node.ts `scrapeCost`. */
export type ScrapeCost = Awaited<ReturnType<MeshNodeApi['scrapeCost']>>

/** What a mesh process's periodic scrapes took (see procs/mesh-node.ts `scrapes`). */
export type ScrapeStats = ReturnType<MeshNodeApi['scrapes']>

/** Issue 6's figure: the host's event-loop delay p99 while the mesh is saturated, ms. */
export const HOST_ELD_P99_MAX_MS = 5

/**
 * Mesh receiver and sender processes; `observe` turns on logs and periodic
 * scrapes in both (see procs/mesh-node.ts); `reliable: false` floods with
 * unreliable sends.
 */
export async function meshPair (o: RunOptions, observe?: { scrapeMs: number }, probe?: EldProbe, reliable = true, borrowPayloads = false): Promise<Pair> {
  const [recv, send] = await Promise.all([
    o.children.spawn<MeshNodeApi>('mesh receiver', procUrl('mesh-node')),
    o.children.spawn<MeshNodeApi>('mesh sender', procUrl('mesh-node')),
  ])
  const close = async (): Promise<void> => { await Promise.all([recv.close(), send.close()]) }
  try {
    const [r] = await Promise.all([
      recv.call('start', { count: 1, ...(observe === undefined ? {} : { observe }), ...(borrowPayloads ? { borrowPayloads } : {}) }, 15_000),
      send.call('start', { count: 1, listen: false, ...(observe === undefined ? {} : { observe }) }, 15_000),
    ])
    const url = r.nodes[0]?.addresses[0]
    if (url === undefined) throw new Error('mesh receiver has no address')
    const { peerIds } = await send.call('connect', { url }, 15_000)
    const to = peerIds[0]!
    return {
      round: async (size, t) => {
        const res = await measure(recv, send, t, { to, size, warmupMs: t.warmupMs, ...(reliable ? {} : { reliable: false }) }, probe)
        // Let the backlog (rings, socket buffers) drain here, not during the other side's round.
        await recv.call('quiesce', { quietMs: QUIET_MS, maxMs: 10_000 }, 15_000)
        return res
      },
      close,
      scrapes: async () => await Promise.all([recv.call('scrapes', null, 10_000), send.call('scrapes', null, 10_000)]),
      scrapeCost: async (n) => await recv.call('scrapeCost', { n }, 60_000),
    }
  } catch (err) {
    await close()
    throw err
  }
}

/** Raw ws (procs/raw-ws-node.ts) or the architecture floor (procs/floor-node.ts): the same driving API. */
async function rawPair (o: RunOptions, probe?: EldProbe, kind: 'raw-ws-node' | 'floor-node' = 'raw-ws-node'): Promise<Pair> {
  const label = kind === 'raw-ws-node' ? 'raw ws' : 'floor'
  const [recv, send] = await Promise.all([
    o.children.spawn<RawWsNodeApi | FloorNodeApi>(`${label} receiver`, procUrl(kind)),
    o.children.spawn<RawWsNodeApi | FloorNodeApi>(`${label} sender`, procUrl(kind)),
  ])
  const close = async (): Promise<void> => { await Promise.all([recv.close(), send.close()]) }
  try {
    const { url } = await recv.call('listen', null, 10_000)
    await send.call('connect', { url }, 10_000)
    return {
      round: async (size, t) => {
        const res = await measure(recv, send, t, { size, warmupMs: t.warmupMs }, probe)
        await recv.call('quiesce', { quietMs: QUIET_MS, maxMs: 10_000 }, 15_000)
        return res
      },
      close,
    }
  } catch (err) {
    await close()
    throw err
  }
}

interface Measurer {
  call (cmd: 'measure', arg: { warmupMs: number; measureMs: number }, timeoutMs: number): Promise<RateResult>
}
interface Flooder<A> {
  call (cmd: 'flood', arg: A & { maxMs: number }, timeoutMs: number): Promise<FloodResult>
  notify (cmd: 'stop', arg: null): void
}

export async function measure<A> (recv: Measurer, send: Flooder<A>, t: Timing, floodArg: A, probe?: EldProbe): Promise<Round> {
  // The sender floods past the receiver's window (its first message arrives a little after the
  // start) and stops when told. A sender whose event loop never turns (`for (;;) await send()`
  // while send() keeps resolving at once) cannot read "stop": it stops itself at `maxMs`, and
  // the round is void if that came before the receiver's window ended.
  const maxMs = t.warmupMs + t.measureMs + t.slackMs
  const rateP = recv.call('measure', { warmupMs: t.warmupMs, measureMs: t.measureMs }, maxMs + 15_000)
  const floodP = send.call('flood', { ...floodArg, maxMs }, maxMs + 15_000)
  floodP.catch(() => {}) // observed below; do not let an early rate failure leave it unhandled
  // The control window starts with the flood plus warmup: within a few ms of the receiver's.
  const controlP = probe?.call('eldProbe', { delayMs: t.warmupMs, ms: t.measureMs }, maxMs + 15_000)
  controlP?.catch(() => {})
  // A sender that fails (QUEUE_FULL, PAYLOAD_TOO_LARGE, …) ends the round at once.
  const floodFailed = floodP.then(async () => await new Promise<never>(() => {}))
  let rate: RateResult
  try {
    rate = await Promise.race([rateP, floodFailed])
  } catch (err) {
    send.notify('stop', null)
    // A failed send (QUEUE_FULL, …) says more than the receiver's "no message".
    await floodP
    throw err
  }
  send.notify('stop', null)
  const flood = await floodP
  if (flood.endedEpochMs < rate.windowEndEpochMs) {
    throw new Error(`sender stopped (${flood.stoppedBy}) ${Math.round(rate.windowEndEpochMs - flood.endedEpochMs)} ms before the receiver's window ended: round void`)
  }
  const control = await controlP?.catch(() => undefined)
  return control === undefined ? { rate, flood } : { rate, flood, control }
}

/**
 * One side's pair, respawned after a failed round (its processes may be wedged).
 * With `fresh`, every round runs on a new pair (the previous one is closed
 * first): two pairs of identical configuration differ by up to ±15–25 % for
 * their whole life on this machine (an A/A run of the observability scenario,
 * one pair per variant: "observed"/"plain" 1.17, 0.93 and 0.96 with both
 * variants plain, every round of a run on the same side of 1), so a figure
 * that compares two variants within a few per cent needs many pairs, not
 * many rounds of one pair.
 */
export class Side {
  readonly label: string
  readonly #make: () => Promise<Pair>
  readonly #fresh: boolean
  #pair: Pair | undefined
  #used = false
  readonly #pastScrapes: ScrapeStats[] = []
  readonly errors: string[] = []

  constructor (label: string, make: () => Promise<Pair>, opts: { fresh?: boolean } = {}) { this.label = label; this.#make = make; this.#fresh = opts.fresh === true }

  /** Spawn and link the pair ahead of the first round (errors surface in that round). */
  async prepare (): Promise<void> {
    try { this.#pair ??= await this.#make() } catch { /* the first round retries and reports */ }
  }

  async round (size: number, t: Timing): Promise<Round | undefined> {
    try {
      if (this.#fresh && this.#used) await this.close()
      this.#pair ??= await this.#make()
      this.#used = true
      return await this.#pair.round(size, t)
    } catch (err) {
      this.errors.push(`${sizeName(size)}: ${String((err as Error)?.message ?? err).split('\n')[0]}`)
      await this.close() // keeps its scrape statistics
      return undefined
    }
  }

  async close (): Promise<void> {
    // A closed pair's scrape statistics are kept (fresh sides close one per round).
    const done = await this.#pair?.scrapes?.().catch(() => undefined)
    if (done !== undefined) this.#pastScrapes.push(...done)
    await this.#pair?.close()
    this.#pair = undefined
    this.#used = false
  }

  /** Scrape statistics of this side's processes, every pair's so far (none for raw ws pairs). */
  async scrapes (): Promise<ScrapeStats[]> { return [...this.#pastScrapes, ...(await this.#pair?.scrapes?.() ?? [])] }

  /** Cost of one scrape in the current pair's receiver (undefined for raw ws pairs). */
  async scrapeCost (n: number): Promise<ScrapeCost | undefined> { return await this.#pair?.scrapeCost?.(n) }
}

export function msgsPerS (r: Round): number { return r.rate.count / (r.rate.ms / 1000) }
export function bytesPerS (r: Round): number { return r.rate.bytes / (r.rate.ms / 1000) }

/** Median over rounds of one process's event-loop delay p99 (ms). */
export function eldP99 (rs: readonly Round[], side: 'send' | 'recv'): number {
  return median(rs.map((r) => side === 'send' ? r.flood.eld.p99Ms : r.rate.eld.p99Ms))
}

/**
 * Issue 6's figure for one payload size: the host event-loop delay p99 of
 * the sending and the receiving process during the mesh's throughput window,
 * judged on the worse of the two.
 */
function eldRecord (size: number, raw: Round[], mesh: Round[]): ResultRecord {
  const send = eldP99(mesh, 'send')
  const recv = eldP99(mesh, 'recv')
  const worst = Math.max(send, recv)
  const control = controlP99(mesh)
  // When an idle process on the same machine already waits this long, the
  // machine (other processes on the cores), not the mesh, sets the figure.
  const met = worst < HOST_ELD_P99_MAX_MS ? true : control !== null && control >= HOST_ELD_P99_MAX_MS ? null : false
  return {
    name: `host ELD p99 under throughput ${sizeName(size)} (worse of sender, receiver)`,
    issue: 6,
    n: mesh.length,
    payload_bytes: size,
    msgs_per_s: null,
    mb_per_s: null,
    p50_us: null,
    p99_us: null,
    baseline: 'raw ws, same run',
    ratio: null,
    ratio_of: null,
    sender_eld_p99_ms: send,
    receiver_eld_p99_ms: recv,
    sender_eld_max_ms: median(mesh.map((r) => r.flood.eld.maxMs)),
    receiver_eld_max_ms: median(mesh.map((r) => r.rate.eld.maxMs)),
    baseline_sender_eld_p99_ms: eldP99(raw, 'send'),
    baseline_receiver_eld_p99_ms: eldP99(raw, 'recv'),
    control_eld_p99_ms: control,
    control: 'an idle Node.js process measuring its own event-loop delay over the same windows',
    eld_resolution_subtracted: true,
    target: { metric: 'eld_p99_ms', max: HOST_ELD_P99_MAX_MS, value: worst, met },
  }
}

/** Median over rounds of the idle control process's event-loop delay p99 (ms); null without a control. */
export function controlP99 (rs: readonly Round[]): number | null {
  const xs = rs.flatMap((r) => r.control === undefined ? [] : [r.control.p99Ms])
  return xs.length === 0 ? null : median(xs)
}

/** What summarise() reports against raw ws: meshwork (issue 2's figure), meshwork with a borrowing receiver, or the architecture floor (procs/floor-node.ts). */
type Variant = 'mesh' | 'borrow' | 'floor'

function summarise (size: number, raw: Round[], mesh: Round[], t: Timing, variant: Variant = 'mesh', meshRounds?: Round[]): { record: ResultRecord; row: string[] } {
  const borrowed = variant === 'borrow'
  const meshMsgs = median(mesh.map(msgsPerS))
  const rawMsgs = median(raw.map(msgsPerS))
  const meshBytes = median(mesh.map(bytesPerS))
  const rawBytes = median(raw.map(bytesPerS))
  const rMsgs = ratio(meshMsgs, rawMsgs)
  const rBytes = ratio(meshBytes, rawBytes)
  // The variants are reported beside the issue's figure, never as it.
  const target = variant === 'mesh' ? TARGETS[size] : undefined
  const got = target === undefined ? null : target.metric === 'msgs_per_s' ? rMsgs : rBytes
  const met = target === undefined || got === null ? null : got >= target.min
  const eld = eldP99
  const cpu = (rs: Round[], side: 'send' | 'recv'): number => median(rs.map((r) => side === 'send' ? r.flood.cpuPct : r.rate.cpuPct))
  const perRound = (rs: Round[]): object[] => rs.map((r) => ({
    msgs_per_s: round(msgsPerS(r)), mb_per_s: round(bytesPerS(r) / 1e6, 2), count: r.rate.count, window_ms: round(r.rate.ms, 1),
    sender_eld_p99_ms: r.flood.eld.p99Ms, sender_eld_max_ms: r.flood.eld.maxMs, receiver_eld_p99_ms: r.rate.eld.p99Ms, receiver_eld_max_ms: r.rate.eld.maxMs,
    sender_cpu_pct: r.flood.cpuPct, receiver_cpu_pct: r.rate.cpuPct, sender_stopped_by: r.flood.stoppedBy,
    control_eld_p99_ms: r.control?.p99Ms ?? null,
  }))
  // The floor's records are not named "throughput …": they are no meshwork figure (and no chart bar).
  const name = variant === 'floor' ? `architecture floor ${sizeName(size)} (ws + rings + worker threads, no protocol)` : `throughput ${sizeName(size)}${borrowed ? ', borrowPayloads' : ''}`
  // Where meshwork stands between the floor and raw ws: its rate over the floor's, same run.
  const meshOverFloor = variant === 'floor' && meshRounds !== undefined && meshRounds.length > 0
    ? { mesh_msgs_per_s: round(median(meshRounds.map(msgsPerS))), mesh_ratio_to_floor: ratio(median(meshRounds.map(msgsPerS)), meshMsgs) }
    : {}
  const record: ResultRecord = {
    name,
    n: mesh.reduce((s, r) => s + r.rate.count, 0),
    payload_bytes: size,
    msgs_per_s: round(meshMsgs),
    mb_per_s: round(meshBytes / 1e6, 2),
    mib_per_s: round(meshBytes / MiB, 2),
    p50_us: null,
    p99_us: null,
    baseline: 'raw ws (bufferutil, corked per tick, bufferedAmount backpressure)',
    baseline_n: raw.reduce((s, r) => s + r.rate.count, 0),
    baseline_msgs_per_s: round(rawMsgs),
    baseline_mb_per_s: round(rawBytes / 1e6, 2),
    baseline_mib_per_s: round(rawBytes / MiB, 2),
    ratio: target?.metric === 'mb_per_s' ? rBytes : rMsgs,
    ratio_of: target?.metric ?? 'msgs_per_s',
    ratio_msgs_per_s: rMsgs,
    ratio_mb_per_s: rBytes,
    aggregate: `median of rounds (${mesh.length} mesh, ${raw.length} raw ws of ${t.rounds})`,
    best_msgs_per_s: round(max(mesh.map(msgsPerS))),
    baseline_best_msgs_per_s: round(max(raw.map(msgsPerS))),
    target: target === undefined ? null : { metric: `ratio_${target.metric}`, min: target.min, value: got, met },
    sender_eld_p99_ms: eld(mesh, 'send'),
    receiver_eld_p99_ms: eld(mesh, 'recv'),
    baseline_sender_eld_p99_ms: eld(raw, 'send'),
    baseline_receiver_eld_p99_ms: eld(raw, 'recv'),
    sender_cpu_pct: cpu(mesh, 'send'),
    receiver_cpu_pct: cpu(mesh, 'recv'),
    baseline_sender_cpu_pct: cpu(raw, 'send'),
    baseline_receiver_cpu_pct: cpu(raw, 'recv'),
    eld_resolution_subtracted: true,
    warmup_ms: t.warmupMs,
    window_ms: t.measureMs,
    rounds: perRound(mesh),
    baseline_rounds: perRound(raw),
    ...meshOverFloor,
  }
  const row = [
    `${sizeName(size)}${borrowed ? ', borrowPayloads' : variant === 'floor' ? ', floor (no protocol)' : ''}`,
    int(rawMsgs), int(meshMsgs), ratioCell(rMsgs),
    fixed(rawBytes / MiB, 1), fixed(meshBytes / MiB, 1), ratioCell(rBytes),
    target === undefined ? 'report' : `${target.metric === 'msgs_per_s' ? 'msgs/s' : 'MB/s'} ≥ ${target.min.toFixed(2)}: ${met === true ? 'met' : 'MISSED'}`,
    `${fixed(eld(mesh, 'send'))} / ${fixed(eld(mesh, 'recv'))}`,
    `${fixed(eld(raw, 'send'))} / ${fixed(eld(raw, 'recv'))}`,
    fixed(controlP99([...mesh, ...raw])),
    `${fixed(cpu(raw, 'send'), 0)} / ${fixed(cpu(raw, 'recv'), 0)}`,
    `${fixed(cpu(mesh, 'send'), 0)} / ${fixed(cpu(mesh, 'recv'), 0)}`,
  ]
  return { record, row }
}

export const throughput: Scenario = {
  name: 'throughput',
  description: 'msgs/s and MB/s, 64 B / 1 KiB / 64 KiB, two processes on loopback, mesh vs raw ws (interleaved)',
  inQuick: true,
  timeoutMs (o) {
    const t = timing(o)
    const sides = t.sizes.reduce((n, size) => n + (lends(size) ? 4 : 3), 0)
    // Four pairs (raw, mesh, borrowing mesh, floor) and the probe.
    return 5 * PAIR_SETUP_MS + sides * t.rounds * (t.warmupMs + t.measureMs + ROUND_SLACK_MS)
  },
  async run (o): Promise<ScenarioOutput> {
    const t = timing(o)
    const records: ResultRecord[] = []
    const rows: string[][] = []
    // The control: an idle process measuring its own loop during every round.
    const probe = await o.children.spawn<MeshNodeApi>('eld control (idle)', procUrl('mesh-node')).catch(() => undefined)
    const rawSide = new Side('raw ws', async () => await rawPair(o, probe))
    const meshSide = new Side('mesh', async () => await meshPair(o, undefined, probe))
    // The same mesh with a receiver that borrows payloads (`borrowPayloads`), for the sizes it lends.
    const borrowSide = t.sizes.some(lends) ? new Side('borrow', async () => await meshPair(o, undefined, probe, true, true)) : undefined
    // The architecture floor: the payloads moved as the design requires, no protocol (procs/floor-node.ts).
    const floorSide = new Side('floor', async () => await rawPair(o, probe, 'floor-node'))
    try {
      await Promise.all([rawSide.prepare(), meshSide.prepare(), borrowSide?.prepare(), floorSide.prepare()])
      for (const size of t.sizes) {
        const raw: Round[] = []
        const mesh: Round[] = []
        const borrowed: Round[] = []
        const floor: Round[] = []
        const sides: Array<readonly [Side, Round[]]> = [[rawSide, raw], [meshSide, mesh], ...(borrowSide !== undefined && lends(size) ? [[borrowSide, borrowed] as const] : []), [floorSide, floor]]
        for (let i = 0; i < t.rounds; i++) {
          for (const [side, into] of sides) {
            const r = await side.round(size, t)
            if (r !== undefined) into.push(r)
            o.log(`throughput ${sizeName(size)} round ${i + 1}/${t.rounds}: ${side.label.padEnd(6)} ${r === undefined ? `FAILED: ${side.errors.at(-1) ?? ''}` : `${int(msgsPerS(r))} msgs/s (sender stopped by ${r.flood.stoppedBy})`}`)
          }
        }
        if (raw.length === 0 || mesh.length === 0) {
          rows.push([sizeName(size), raw.length === 0 ? 'failed' : int(median(raw.map(msgsPerS))), mesh.length === 0 ? 'failed' : int(median(mesh.map(msgsPerS))), '–', '–', '–', '–', 'no result', '–', '–', '–', '–', '–'])
          continue
        }
        const { record, row } = summarise(size, raw, mesh, t)
        records.push(record, eldRecord(size, raw, mesh))
        rows.push(row)
        if (borrowed.length > 0) {
          const b = summarise(size, raw, borrowed, t, 'borrow')
          records.push(b.record)
          rows.push(b.row)
        }
        if (floor.length > 0) {
          const f = summarise(size, raw, floor, t, 'floor', mesh)
          records.push(f.record)
          rows.push(f.row)
        }
      }
    } finally {
      await Promise.all([rawSide.close(), meshSide.close(), borrowSide?.close(), floorSide.close(), probe?.close()])
    }
    const errors = [...rawSide.errors.map((e) => `raw ws ${e}`), ...meshSide.errors.map((e) => `mesh ${e}`), ...(borrowSide?.errors.map((e) => `mesh borrowing ${e}`) ?? []), ...floorSide.errors.map((e) => `floor ${e}`)]
    return {
      records,
      table: {
        head: ['payload', 'raw ws msgs/s', 'mesh msgs/s', 'ratio', 'raw MiB/s', 'mesh MiB/s', 'ratio', 'target (mesh/raw)', `mesh host ELD p99 ms send / recv (< ${HOST_ELD_P99_MAX_MS})`, 'raw ws ELD p99 ms send / recv', 'idle control ELD p99 ms', 'raw CPU % send / recv', 'mesh CPU % send / recv'],
        rows,
      },
      notes: [
        `Median of ${t.rounds} rounds per side (raw, mesh, raw, mesh, …; one process pair per side, drained between rounds; from ${BORROW_MIN_BYTES / KiB} KiB a third side, "borrowPayloads": the same mesh with a receiver created with \`borrowPayloads: true\`, which lends it payloads valid until its listener returns, against the same raw rounds); ${t.warmupMs} ms warmup, ${t.measureMs} ms window, counted by the receiver at its \`message\` handler. MiB/s counts application payload bytes only.`,
        'Floor rows ("floor (no protocol)"): the architecture floor, procs/floor-node.ts: each payload written into a SharedArrayBuffer ring by the sending host thread, sent in batches by a worker thread over ws, written into a ring by the receiving worker and copied out by the receiving host thread, with no frame header, ACK, credit, lane, event or promise. Floor/raw is what the design (two more threads, two more copies, cross-thread wake-ups) costs on this machine; mesh/floor (in the JSON: mesh_ratio_to_floor) is what meshwork\'s own code costs.',
        'host ELD = event-loop delay p99 of the main thread of the sending and of the receiving process during the window (median of rounds; monitorEventLoopDelay at 10 ms, the 10 ms sampling interval subtracted: how late a timer ran). The sender\'s own flood loop (`for (;;) await mesh.send()`) runs on that thread too. Idle control = the same measure in a third process that does nothing, over the same windows (median of all rounds): the delay the machine alone causes; when it is ≥ 5 ms the issue-6 figure is inconclusive, not missed. CPU % = whole process (all threads) in % of one core.',
        ...(errors.length === 0 ? [] : [`Failed rounds (left out of the medians): ${errors.join('; ')}`]),
      ],
    }
  },
}
