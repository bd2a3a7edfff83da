/**
 * What a perf scenario is, as the harness sees it.
 *
 * @module
 */
import type { ChildGroup } from './child.js'

export interface RunOptions {
  /** Tiny durations: a smoke run of the whole harness in well under 30 s. */
  readonly quick: boolean
  /** Override of the measured window per phase (ms), from `--duration-ms`. */
  readonly durationMs: number | undefined
  /** Override of the rounds per side, from `--rounds`. */
  readonly rounds: number | undefined
  /** Payload sizes (bytes) for throughput, from `--sizes`. */
  readonly sizes: readonly number[] | undefined
  /** Progress lines (stderr), so stdout keeps only the tables. */
  readonly log: (line: string) => void
  /** Children of this scenario: the harness kills them when it ends, fails or times out. */
  readonly children: ChildGroup
}

/** One result: one JSON line in perf/results/<scenario>.jsonl (the harness adds machine fields). */
export interface ResultRecord {
  /** Names state payload sizes: `throughput 64 B`. */
  readonly name: string
  readonly n: number
  readonly msgs_per_s: number | null
  /** Payload MB/s (10^6 bytes; MiB/s is in `mib_per_s`). */
  readonly mb_per_s: number | null
  readonly p50_us: number | null
  readonly p99_us: number | null
  /** What the candidate is compared with, e.g. `raw ws`. */
  readonly baseline: string | null
  /** The headline candidate/baseline ratio (which metric: `ratio_of`). */
  readonly ratio: number | null
  readonly ratio_of: string | null
  readonly [extra: string]: unknown
}

export interface ScenarioOutput {
  readonly records: ResultRecord[]
  /** A Markdown table of this scenario. */
  readonly table: { readonly head: string[]; readonly rows: string[][] }
  /** Lines printed under the table (method, caveats). */
  readonly notes?: string[]
  /** Raw output to keep in RESULTS.md (external benches). */
  readonly output?: string
}

export interface Scenario {
  readonly name: string
  readonly description: string
  /** Runs by default (external benches do not run under --quick unless named). */
  readonly inQuick: boolean
  /** The scenario appends its own JSON lines (external benches); the harness only shows them. */
  readonly writesOwnResults?: boolean
  /** Hard timeout of the whole scenario. */
  timeoutMs (o: RunOptions): number
  run (o: RunOptions): Promise<ScenarioOutput>
}
