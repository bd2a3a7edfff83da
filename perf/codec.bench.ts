/**
 * Wire frame codec benchmark: our hand-written frame codec against msgpackr
 * on the same 9-element frame, in the same process, interleaved.
 *
 *   npm run build && node dist/perf/codec.bench.js
 *
 * Scenarios (payload sizes in the names):
 * - encode DATA 64 B / 1 KiB: `encodeHeaderInto` + `set(payload)` into a
 *   reused buffer (the ring-buffer hot path) vs `msgpackr.pack([...9])`.
 * - decode DATA 64 B / 1 KiB: `decodeFrame` (validating, payload as a view)
 *   vs `msgpackr.unpack` (no validation, bin as a view).
 * - decode DATA 64 B, 1k distinct src: as above, but every frame has another
 *   source id, so the decoder's id cache misses.
 *
 * Method: ns/frame is measured per batch of BATCH frames (a single ~100 ns
 * operation is below timer resolution, so per-op histograms would measure the
 * clock). After warmup, candidate and baseline batches alternate, so CPU
 * frequency drift and other tenants affect both alike. Reported: p50/p90/min
 * of the batch means, frames/s and MiB/s at p50, and candidate/baseline
 * ratios (< 1 means the candidate is faster). Benchmarks never assert.
 *
 * Output: a table on stdout; one JSON line per scenario appended to
 * perf/results/codec.jsonl. Finishes by itself in a few seconds.
 *
 * @module
 */
import { execFileSync } from 'node:child_process'
import { appendFileSync, mkdirSync } from 'node:fs'
import { cpus } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Packr, Unpackr } from 'msgpackr'
import { encodeFrame, encodeHeaderInto } from '../src/codec/encode.js'
import { decodeFrame } from '../src/codec/decode.js'
import { FrameType, Lane, PROTOCOL_VERSION, type Frame, type FrameHeader } from '../src/codec/frame.js'

const WARMUP_FRAMES = 200_000
const BATCH = 10_000
const ROUNDS = 40

// Realistic ids: the length of a base58 ed25519 peer id.
const SRC = '12D3KooWGzh2TQmWdRpmNjzF4gY8Xy2UqHbTvSnSx6ZEm9Zs8kPr'
const DST = '12D3KooWRBy97UB99e3J6hiPesre1MZeuNQvfan4gBziswrRJsNK'

// Same options msgpackr users pick for plain msgpack (no records); the same
// instance for every run so its buffer reuse is in its favour.
const packr = new Packr({ useRecords: false, moreTypes: false })
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true })

/** Defeats dead-code elimination: every op's result feeds it. */
let sink = 0

interface Stats { p50: number, p90: number, min: number }

function stats (samples: number[]): Stats {
  const s = [...samples].sort((a, b) => a - b)
  const at = (q: number): number => s[Math.min(s.length - 1, Math.floor(q * s.length))]!
  return { p50: at(0.5), p90: at(0.9), min: s[0]! }
}

/** ns per op of one batch of `fn`. */
function batch (fn: (i: number) => void, n: number): number {
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < n; i++) fn(i)
  return Number(process.hrtime.bigint() - t0) / n
}

interface Scenario {
  name: string
  /** Bytes of one encoded frame, for MiB/s. */
  frameBytes: number
  candidate: (i: number) => void
  baseline: (i: number) => void
}

function header (seq: number, src: string = SRC): FrameHeader {
  return { version: PROTOCOL_VERSION, type: FrameType.DATA, lane: Lane.BULK, flags: 0, src, dst: DST, stream: 3, seq }
}

function encodeScenario (name: string, payloadBytes: number): Scenario {
  const payload = new Uint8Array(payloadBytes).fill(0x5a)
  const out = new Uint8Array(payloadBytes + 256)
  const h = header(0)
  return {
    name,
    frameBytes: encodeFrame({ ...h, payload }).length,
    candidate: (i) => {
      h.seq = 1_000_000 + i
      const n = encodeHeaderInto(h, payload.length, out, 0)
      out.set(payload, n)
      sink += n
    },
    baseline: (i) => {
      const b = packr.pack([PROTOCOL_VERSION, FrameType.DATA, Lane.BULK, 0, SRC, DST, 3, 1_000_000 + i, payload])
      sink += b.length
    },
  }
}

function decodeScenario (name: string, payloadBytes: number, distinctSrc: number): Scenario {
  const payload = new Uint8Array(payloadBytes).fill(0x5a)
  const frames: Uint8Array[] = []
  for (let k = 0; k < distinctSrc; k++) {
    // Vary the id's tail: ids of one mesh share a prefix.
    const src = distinctSrc === 1 ? SRC : SRC.slice(0, -6) + String(k).padStart(6, '0')
    const f: Frame = { ...header(1_000_000 + k, src), payload }
    // A Buffer, as `ws` delivers messages; both sides read the same bytes.
    frames.push(Buffer.from(encodeFrame(f)))
  }
  const m = frames.length
  return {
    name,
    frameBytes: frames[0]!.length,
    candidate: (i) => {
      const r = decodeFrame(frames[i % m]!, 0)
      sink += r.next + r.frame.seq
    },
    baseline: (i) => {
      const a = unpackr.unpack(frames[i % m]!) as unknown[]
      sink += a.length
    },
  }
}

function commit (): string {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
  } catch {
    return 'unknown'
  }
}

function main (): void {
  const scenarios = [
    encodeScenario('encode DATA 64 B', 64),
    encodeScenario('encode DATA 1 KiB', 1024),
    decodeScenario('decode DATA 64 B', 64, 1),
    decodeScenario('decode DATA 1 KiB', 1024, 1),
    decodeScenario('decode DATA 64 B, 1k distinct src', 64, 1000),
  ]
  const meta = { node: process.version, cpu: cpus()[0]?.model ?? 'unknown', commit: commit() }
  const here = dirname(fileURLToPath(import.meta.url))
  // dist/perf/codec.bench.js → <repo>/perf/results; perf/codec.bench.ts (run
  // directly by a TS loader) → <repo>/perf/results as well.
  const repo = here.endsWith(join('dist', 'perf')) ? join(here, '..', '..') : join(here, '..')
  const resultsDir = join(repo, 'perf', 'results')
  mkdirSync(resultsDir, { recursive: true })
  const resultsFile = join(resultsDir, 'codec.jsonl')

  const rows: string[][] = []
  const started = Date.now()
  for (const s of scenarios) {
    batch(s.candidate, WARMUP_FRAMES)
    batch(s.baseline, WARMUP_FRAMES)
    const cand: number[] = []
    const base: number[] = []
    for (let r = 0; r < ROUNDS; r++) {
      // Alternate which goes first, so neither always follows a GC of the other.
      if (r % 2 === 0) {
        cand.push(batch(s.candidate, BATCH))
        base.push(batch(s.baseline, BATCH))
      } else {
        base.push(batch(s.baseline, BATCH))
        cand.push(batch(s.candidate, BATCH))
      }
    }
    const c = stats(cand)
    const b = stats(base)
    const fps = 1e9 / c.p50
    const mibps = fps * s.frameBytes / (1024 * 1024)
    const record = {
      name: s.name, ...meta, n: ROUNDS * BATCH, frame_bytes: s.frameBytes,
      p50_ns: round(c.p50), p90_ns: round(c.p90), min_ns: round(c.min),
      baseline: 'msgpackr', baseline_p50_ns: round(b.p50), baseline_p90_ns: round(b.p90), baseline_min_ns: round(b.min),
      frames_per_s: Math.round(fps), mib_per_s: round(mibps),
      ratio_p50: round(c.p50 / b.p50, 3), ratio_p90: round(c.p90 / b.p90, 3), ratio_throughput: round(b.p50 / c.p50, 3),
      ts: new Date().toISOString(),
    }
    appendFileSync(resultsFile, JSON.stringify(record) + '\n')
    rows.push([
      s.name, fmt(c.p50), fmt(c.p90), fmt(b.p50), fmt(b.p90),
      record.ratio_p50.toFixed(3), `${(b.p50 / c.p50).toFixed(2)}x`,
      (fps / 1e6).toFixed(2), mibps.toFixed(0),
    ])
  }

  const head = ['scenario', 'p50 ns', 'p90 ns', 'msgpackr p50', 'msgpackr p90', 'ratio p50', 'speedup', 'Mframes/s', 'MiB/s']
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  const line = (cells: string[]): string => cells.map((v, i) => i === 0 ? v.padEnd(widths[i]!) : v.padStart(widths[i]!)).join('  ')
  console.log(`codec bench — ${meta.node}, ${meta.cpu}, commit ${meta.commit}; ${ROUNDS}×${BATCH} frames per side, ns/frame`)
  console.log(line(head))
  console.log(widths.map((w) => '-'.repeat(w)).join('  '))
  for (const r of rows) console.log(line(r))
  console.log(`(ratio = ours/msgpackr, < 1 is faster; results appended to ${resultsFile}; ${((Date.now() - started) / 1000).toFixed(1)} s; sink ${sink % 10})`)
}

function round (v: number, digits = 1): number {
  const k = 10 ** digits
  return Math.round(v * k) / k
}

function fmt (ns: number): string {
  return ns.toFixed(1)
}

main()
