/**
 * Durable outbox benchmark: `OutboxStore.put` of 64 B frames with 256 puts in
 * flight, fsynced (default) vs `noSync`, against a raw lmdb-js `put` of the
 * same 81 bytes (header + frame) into a bare environment with the same flags,
 * in the same process, interleaved.
 *
 *   npm run build && node dist/perf/outbox.bench.js [--rounds N] [--puts N]
 *
 * Scenarios (per sync mode):
 * - `put 64 B ×256`: 256 async loops, each `await store.put(...)` with the
 *   next seq, to one peer; a fresh store per round.
 * - `put+ack 64 B ×256`: the same, and each loop acknowledges its seq as soon
 *   as the put resolves (`ackThrough`), so the store stays small and the
 *   deletions (and high-water writes) commit alongside the puts.
 * - baseline `raw lmdb put`: `db.put([peer, seq], bytes)` on the same options
 *   (`overlappingSync: false`, `noSync` as the scenario), no store on top.
 *
 * Reported: puts/s (median over rounds), put latency from call to resolve
 * (hdr-histogram p50/p99/max, µs), commits (LMDB transactions) per round of
 * N puts (the store's from LMDB's last txn id, the raw one's by counting
 * distinct commit promises), the
 * event-loop delay p99 while writing, and candidate/baseline ratios
 * (throughput ratio > 1 means the store is faster). Benchmarks never assert.
 *
 * Output: a table on stdout; one JSON line per scenario appended to
 * perf/results/outbox.jsonl. Temp stores live under os.tmpdir() and are
 * removed. Finishes by itself in well under a minute.
 *
 * @module
 */
import { execFileSync } from 'node:child_process'
import { appendFileSync, mkdirSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { cpus, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import * as hdr from 'hdr-histogram-js'
import { open } from 'lmdb'
import { OutboxStore } from '../src/delivery/outbox-store.js'

const IN_FLIGHT = 256
const FRAME_BYTES = 64
const HEADER_BYTES = 17 // the store's value header, so the baseline writes the same bytes
const PEER = 'abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrsq' // a 52-char peer id

interface RoundResult { putsPerSec: number, latencyNs: hdr.Histogram, commits: number, eldP99Ms: number }

/** Something that can put (peer, seq) → bytes and count its commits. */
interface Target {
  put (seq: number): Promise<unknown>
  ack? (seq: number): void
  close (): Promise<void>
  commits (): number
}

/** LMDB's last transaction id of the (closed) environment at `path`. */
async function lastTxnId (path: string): Promise<number> {
  const env = open({ path, readOnly: true })
  try {
    return (env.getStats() as { lastTxnId: number }).lastTxnId
  } finally {
    await env.close()
  }
}

async function storeTarget (dir: string, noSync: boolean, ack: boolean): Promise<Target> {
  const store = await OutboxStore.open(dir, { noSync })
  const frame = new Uint8Array(FRAME_BYTES).fill(0x5a)
  let commits = 0
  return {
    put: (seq) => store.put(PEER, seq, frame, 1_700_000_000_000 + seq, seq),
    ...(ack ? { ack: (seq: number) => { store.ackThrough(PEER, seq) } } : {}),
    close: async () => {
      await store.close()
      // The store keeps its environment private: count its transactions from
      // LMDB's txn id, less the ones open() takes on a fresh directory.
      commits = await lastTxnId(store.path) - await emptyOpenTxns(noSync)
    },
    commits: () => commits,
  }
}

const emptyTxns = new Map<boolean, number>()
/** Transactions that `OutboxStore.open` + `close` take on an empty directory. */
async function emptyOpenTxns (noSync: boolean): Promise<number> {
  let n = emptyTxns.get(noSync)
  if (n === undefined) {
    const dir = await mkdtemp(join(tmpdir(), 'meshwork-outbox-bench-'))
    try {
      const store = await OutboxStore.open(dir, { noSync })
      await store.close()
      n = await lastTxnId(store.path)
      emptyTxns.set(noSync, n)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  }
  return n
}

async function rawTarget (dir: string, noSync: boolean): Promise<Target> {
  const root = open({ path: join(dir, 'outbox'), noSync, overlappingSync: false, maxDbs: 4 })
  const db = root.openDB<Buffer, [string, number]>({ name: 'messages', encoding: 'binary' })
  const frame = new Uint8Array(FRAME_BYTES).fill(0x5a)
  let commits = 0
  let last: Promise<unknown> | undefined
  return {
    put: (seq) => {
      const v = Buffer.allocUnsafe(HEADER_BYTES + FRAME_BYTES)
      v.set(frame, HEADER_BYTES)
      const p = db.put([PEER, seq], v)
      // lmdb-js returns one promise per transaction: count distinct ones.
      if (p !== last) { commits++; last = p }
      return p
    },
    close: () => root.close(),
    commits: () => commits,
  }
}

async function round (make: (dir: string) => Promise<Target>, puts: number): Promise<RoundResult> {
  const dir = await mkdtemp(join(tmpdir(), 'meshwork-outbox-bench-'))
  try {
    const target = await make(dir)
    const latencyNs = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60e9, numberOfSignificantValueDigits: 3 })
    const eld = monitorEventLoopDelay({ resolution: 10 })
    let next = 0
    const loop = async (): Promise<void> => {
      while (next < puts) {
        const seq = ++next
        const t0 = process.hrtime.bigint()
        await target.put(seq)
        latencyNs.recordValue(Number(process.hrtime.bigint() - t0))
        target.ack?.(seq)
      }
    }
    eld.enable()
    const t0 = performance.now()
    await Promise.all(Array.from({ length: IN_FLIGHT }, loop))
    const ms = performance.now() - t0
    eld.disable()
    await target.close()
    const commits = target.commits()
    return { putsPerSec: puts / ms * 1000, latencyNs, commits, eldP99Ms: eld.percentile(99) / 1e6 }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

function median (xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)] ?? Number.NaN
}

function commit (): string {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
  } catch {
    return 'unknown'
  }
}

interface Variant { name: string, mode: 'durable' | 'noSync', baseline: boolean, make: (dir: string) => Promise<Target> }

async function main (): Promise<void> {
  const { values } = parseArgs({ options: { rounds: { type: 'string', default: '7' }, puts: { type: 'string', default: '20000' } } })
  const rounds = Number(values.rounds)
  const puts = Number(values.puts)
  const variants: Variant[] = []
  for (const mode of ['durable', 'noSync'] as const) {
    const noSync = mode === 'noSync'
    variants.push(
      { name: `put 64 B ×${IN_FLIGHT}, ${mode}`, mode, baseline: false, make: (d) => storeTarget(d, noSync, false) },
      { name: `put+ack 64 B ×${IN_FLIGHT}, ${mode}`, mode, baseline: false, make: (d) => storeTarget(d, noSync, true) },
      { name: `raw lmdb put 81 B ×${IN_FLIGHT}, ${mode}`, mode, baseline: true, make: (d) => rawTarget(d, noSync) },
    )
  }
  const meta = { node: process.version, cpu: cpus()[0]?.model ?? 'unknown', commit: commit() }
  console.log(`outbox bench — ${meta.node}, ${meta.cpu}, commit ${meta.commit}; ${rounds} rounds × ${puts} puts, ${IN_FLIGHT} in flight, tmpdir ${tmpdir()}`)

  // Warmup (JIT, page cache), then rounds interleaved across all variants.
  for (const v of variants) await round(v.make, Math.min(puts, 5000))
  const results = new Map<string, RoundResult[]>(variants.map((v) => [v.name, []]))
  for (let r = 0; r < rounds; r++) {
    for (const v of variants) results.get(v.name)!.push(await round(v.make, puts))
  }

  const here = dirname(fileURLToPath(import.meta.url))
  // Source and compiled file both resolve to <repo>/perf/results.
  const resultsDir = join(here, here.endsWith(join('dist', 'perf')) ? '../../perf/results' : 'results')
  mkdirSync(resultsDir, { recursive: true })
  const resultsFile = join(resultsDir, 'outbox.jsonl')

  const rows: string[][] = [['scenario', 'puts/s', 'p50 µs', 'p99 µs', 'max µs', 'commits', 'eld p99 ms', 'vs raw']]
  for (const v of variants) {
    const rs = results.get(v.name)!
    const merged = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60e9, numberOfSignificantValueDigits: 3 })
    for (const x of rs) merged.add(x.latencyNs)
    const putsPerSec = median(rs.map((x) => x.putsPerSec))
    const base = variants.find((b) => b.baseline && b.mode === v.mode)!
    const basePuts = median(results.get(base.name)!.map((x) => x.putsPerSec))
    const ratio = v.baseline ? 1 : putsPerSec / basePuts
    const record = {
      name: v.name, ...meta, n: rs.length * puts, puts_per_s: Math.round(putsPerSec),
      p50_ns: merged.getValueAtPercentile(50), p99_ns: merged.getValueAtPercentile(99), max_ns: merged.maxValue,
      commits_per_round: median(rs.map((x) => x.commits)),
      eld_p99_ms: median(rs.map((x) => x.eldP99Ms)), ratio_throughput: ratio,
      rounds_puts_per_s: rs.map((x) => Math.round(x.putsPerSec)),
    }
    appendFileSync(resultsFile, JSON.stringify(record) + '\n')
    rows.push([
      v.name, String(record.puts_per_s), (record.p50_ns / 1e3).toFixed(0), (record.p99_ns / 1e3).toFixed(0),
      (record.max_ns / 1e3).toFixed(0), String(record.commits_per_round),
      record.eld_p99_ms.toFixed(1), v.baseline ? '–' : ratio.toFixed(2),
    ])
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)))
  for (const r of rows) console.log(r.map((c, i) => i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)).join('  '))
  console.log(`results appended to ${resultsFile}`)
}

await main()
