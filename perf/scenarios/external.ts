/**
 * Standalone benches written by others (`perf/<name>.bench.ts`, e.g. the
 * ring buffer vs postMessage and the codec), run as harness scenarios by
 * spawning their compiled `dist/perf/<name>.bench.js`. They print their own
 * table and append their own JSON lines to perf/results/<name>.jsonl; the
 * harness shows their stdout and the lines they appended during this run.
 *
 * @module
 */
import { spawn } from 'node:child_process'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { repoRoot } from '../lib/report.js'
import type { ResultRecord, Scenario, ScenarioOutput } from '../lib/scenario.js'
import { fixed, int, ratioCell } from '../lib/stats.js'

const DIST_PERF = fileURLToPath(new URL('..', import.meta.url))
const TIMEOUT_MS = 180_000

/** `ring`, `codec`, … for every dist/perf/<name>.bench.js present (ring first). */
export function externalBenches (): Scenario[] {
  if (!existsSync(DIST_PERF)) return []
  return readdirSync(DIST_PERF)
    .filter((f) => f.endsWith('.bench.js'))
    .sort((a, b) => (a === 'ring.bench.js' ? -1 : b === 'ring.bench.js' ? 1 : a.localeCompare(b)))
    .map((f) => externalBench(f.slice(0, -'.bench.js'.length)))
}

function num (v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null
}

/** Best-effort mapping of another bench's record onto the common columns. */
function toRecord (r: Record<string, unknown>): ResultRecord {
  const us = (k: string): number | null => num(r[`${k}_us`]) ?? (num(r[`${k}_ns`]) === null ? null : num(r[`${k}_ns`])! / 1000)
  const mib = num(r['mib_per_s']) ?? num(r['ring_mib_per_s'])
  const ratioOf = typeof r['ratio_of'] === 'string'
    ? r['ratio_of']
    : num(r['ratio']) !== null ? null
      : num(r['ratio_throughput']) !== null ? 'throughput'
        : num(r['ratio_msgs_per_s']) !== null ? 'msgs_per_s'
          : num(r['ratio_p50']) !== null ? 'p50' : null
  return {
    ...r,
    name: String(r['name'] ?? '?'),
    n: num(r['n']) ?? 0,
    msgs_per_s: num(r['msgs_per_s']) ?? num(r['frames_per_s']) ?? num(r['ops_per_s']) ?? num(r['ring_msgs_per_s']),
    mb_per_s: num(r['mb_per_s']) ?? (mib === null ? null : mib * 1.048576),
    p50_us: us('p50'),
    p99_us: us('p99'),
    baseline: typeof r['baseline'] === 'string' ? r['baseline'] : num(r['postmessage_msgs_per_s']) !== null ? 'postMessage' : null,
    baseline_msgs_per_s: num(r['baseline_msgs_per_s']) ?? num(r['postmessage_msgs_per_s']),
    baseline_p50_us: us('baseline_p50'),
    ratio: num(r['ratio']) ?? num(r['ratio_throughput']) ?? num(r['ratio_msgs_per_s']) ?? num(r['ratio_p50']),
    ratio_of: ratioOf,
  }
}

function externalBench (name: string): Scenario {
  const script = join(DIST_PERF, `${name}.bench.js`)
  const jsonl = join(repoRoot(), 'perf', 'results', `${name}.jsonl`)
  return {
    name,
    description: `perf/${name}.bench.ts (standalone; spawned as \`node dist/perf/${name}.bench.js\`)`,
    inQuick: false,
    writesOwnResults: true,
    timeoutMs: () => TIMEOUT_MS,
    async run (o): Promise<ScenarioOutput> {
      const before = existsSync(jsonl) ? statSync(jsonl).size : 0
      const args = ['--expose-gc', script, ...(o.quick ? ['--quick'] : [])]
      const out = await new Promise<string>((resolve, reject) => {
        const p = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] })
        let text = ''
        p.stdout.setEncoding('utf8')
        p.stdout.on('data', (d: string) => { text += d })
        const t = setTimeout(() => { p.kill('SIGKILL'); reject(new Error(`${name}.bench.js did not finish within ${TIMEOUT_MS} ms`)) }, TIMEOUT_MS - 1_000)
        // Killed with the harness: an 'exit' hook cannot await, so SIGKILL synchronously.
        const onExit = (): void => { p.kill('SIGKILL') }
        process.once('exit', onExit)
        p.on('exit', (code) => {
          clearTimeout(t)
          process.off('exit', onExit)
          if (code === 0) resolve(text)
          else reject(new Error(`${name}.bench.js exited with code ${String(code)}\n${text}`))
        })
      })
      o.log(`${name}: done`)
      let records: ResultRecord[] = []
      if (existsSync(jsonl)) {
        const added = readFileSync(jsonl).subarray(before).toString('utf8')
        records = added.split('\n').filter((l) => l.trim() !== '').flatMap((l) => {
          try { return [toRecord(JSON.parse(l) as Record<string, unknown>)] } catch { return [] }
        })
      }
      return {
        records,
        table: {
          head: [`${name} bench`, 'n', 'msgs/s', 'MB/s', 'p50 µs', 'baseline', 'baseline msgs/s', 'baseline p50 µs', 'ratio'],
          rows: records.map((r) => {
            const bm = r['baseline_msgs_per_s'] as number | null
            const bp = r['baseline_p50_us'] as number | null
            return [
              r.name, int(r.n), r.msgs_per_s === null ? '–' : int(r.msgs_per_s), fixed(r.mb_per_s),
              fixed(r.p50_us, 3), r.baseline ?? '–', bm === null ? '–' : int(bm), fixed(bp, 3),
              `${ratioCell(r.ratio)}${r.ratio_of === null ? '' : ` (${r.ratio_of})`}`,
            ]
          }),
        },
        notes: [`Written by perf/${name}.bench.ts itself (its own JSON lines in perf/results/${name}.jsonl); its output follows.`],
        output: out,
      }
    },
  }
}
