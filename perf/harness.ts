/**
 * meshwork perf harness: runs the scenarios, prints a Markdown table per
 * scenario on stdout, appends one JSON line per result to
 * perf/results/<scenario>.jsonl, and (on a full run) rewrites
 * perf/RESULTS.md and draws perf/results/chart.svg (throughput ratios and
 * latency percentiles against raw ws, from the latest full run's lines).
 *
 *   npm run perf                              # every scenario (~4 min on 2 cores)
 *   npm run perf -- throughput latency        # some of them
 *   npm run perf -- --quick                   # smoke run, < 1 min
 *   npm run perf -- --list
 *
 * Options:
 *   --duration-ms N     measured window per phase (throughput window, idle window; latency counts round trips)
 *   --rounds N          rounds per side (candidate and baseline, interleaved)
 *   --sizes A,B         throughput payload sizes in bytes (default 64,1024,65536)
 *   --quick             tiny durations; results go to perf/results/quick/, RESULTS.md untouched;
 *                       external benches (ring, codec) run only when named
 *   --cpu-prof          run the child processes with --cpu-prof (profiles in perf/profiles/<date>/)
 *   --node-args=FLAGS   node/V8 flags for every child process, the baselines' too (space-separated,
 *                       e.g. --node-args="--single-threaded-gc"); such a run is not a full run
 *   --host-heap-mb N    every child first keeps N MB of live objects, an application's own heap
 *                       (perf/lib/host-heap.ts); such a run is not a full run
 *   --results-dir DIR   where the JSON lines go
 *   --write-results-md  rewrite perf/RESULTS.md even for a partial or quick run
 *
 * Scenarios needing two nodes run them in two child processes (STYLE.md §7);
 * every child is killed when its scenario ends, fails or times out, and when
 * the harness exits. Benchmarks never assert: the exit code is non-zero only
 * if a scenario failed to run.
 *
 * @module
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { performance } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import { loadavg } from 'node:os'
import { cpuTicks, stealPct, STEAL_DISTURBED_PCT } from './lib/cpu-steal.js'
import { ChildGroup, killAll, setChildEnv, setChildExecArgv } from './lib/child.js'
import { appendJsonl, machine, markdownTable, repoRoot } from './lib/report.js'
import { writeChart } from './lib/chart.js'
import type { ResultRecord, RunOptions, Scenario, ScenarioOutput } from './lib/scenario.js'
import { throughput } from './scenarios/throughput.js'
import { latency } from './scenarios/latency.js'
import { idle } from './scenarios/idle.js'
import { detection } from './scenarios/detection.js'
import { observability } from './scenarios/observability.js'
import { stall } from './scenarios/stall.js'
import { externalBenches } from './scenarios/external.js'
import { paths } from './scenarios/paths.js'
import { reliability } from './scenarios/reliability.js'
import { relay } from './scenarios/relay.js'

const USAGE = 'usage: npm run perf -- [scenario ...] [--duration-ms N] [--rounds N] [--sizes A,B] [--quick] [--cpu-prof] [--node-args="--flag ..."] [--host-heap-mb N] [--results-dir DIR] [--write-results-md] [--list]'

interface Done { scenario: Scenario; out: ScenarioOutput | undefined; error: string | undefined; ms: number; stealPct?: number }

function positiveInt (v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined
  const n = Number(v)
  if (!Number.isInteger(n) || n <= 0) {
    console.error(`${flag} must be a positive integer (got ${JSON.stringify(v)})\n${USAGE}`)
    process.exit(2)
  }
  return n
}

async function withTimeout<T> (p: Promise<T>, ms: number, what: string): Promise<T> {
  const err = new Error(`${what} did not finish within ${ms} ms (hard timeout)`)
  let t: NodeJS.Timeout | undefined
  try {
    return await Promise.race([p, new Promise<never>((_resolve, reject) => { t = setTimeout(() => { reject(err) }, ms) })])
  } finally {
    clearTimeout(t)
  }
}

function round2 (v: number): number { return Math.round(v * 100) / 100 }

function commandLine (argv: readonly string[]): string {
  const args = argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, "'\\''")}'`)).join(' ')
  return process.env['npm_lifecycle_event'] === 'perf'
    ? `npm run perf${args === '' ? '' : ` -- ${args}`}`
    : `node --expose-gc dist/perf/harness.js${args === '' ? '' : ` ${args}`}`
}

function section (d: Done): string {
  const lines = [`## ${d.scenario.name}`, '', d.scenario.description, '']
  if (d.out === undefined) {
    lines.push(`**Failed** after ${(d.ms / 1000).toFixed(1)} s: ${d.error ?? '?'}`, '')
    return lines.join('\n')
  }
  if (d.out.table.rows.length > 0) lines.push(markdownTable(d.out.table.head, d.out.table.rows), '')
  for (const n of d.out.notes ?? []) lines.push(n, '')
  if (d.out.output !== undefined) lines.push('```', d.out.output.trimEnd(), '```', '')
  return lines.join('\n')
}

/**
 * The figures with a target, one table per issue (`issue` in the record;
 * records without one belong to issue 2, the first to set targets).
 */
function summaries (done: readonly Done[]): Array<{ issue: number; table: string }> {
  const byIssue = new Map<number, string[][]>()
  for (const d of done) {
    for (const r of d.out?.records ?? []) {
      const t = r['target'] as { metric: string; min?: number; max?: number; inclusive?: boolean; value: number | null; met: boolean | null } | null | undefined
      if (t === undefined || t === null) continue
      const issue = typeof r['issue'] === 'number' ? r['issue'] : 2
      const bound = t.min !== undefined ? `≥ ${t.min}` : t.inclusive === true ? (t.max === 0 ? '= 0' : `≤ ${String(t.max)}`) : `< ${String(t.max)}`
      const rows = byIssue.get(issue) ?? []
      rows.push([r.name, `${t.metric} ${bound}`, t.value === null ? '–' : String(t.value), t.met === null ? 'inconclusive' : t.met ? 'met' : 'MISSED'])
      byIssue.set(issue, rows)
    }
  }
  return [...byIssue.entries()].sort(([a], [b]) => a - b)
    .map(([issue, rows]) => ({ issue, table: markdownTable([`figure (issue ${issue})`, 'target', 'measured', 'status'], rows) }))
}

async function main (): Promise<void> {
  const argv = process.argv.slice(2)
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      quick: { type: 'boolean', default: false },
      'duration-ms': { type: 'string' },
      rounds: { type: 'string' },
      sizes: { type: 'string' },
      'cpu-prof': { type: 'boolean', default: false },
      'node-args': { type: 'string' },
      'host-heap-mb': { type: 'string' },
      'results-dir': { type: 'string' },
      'write-results-md': { type: 'boolean', default: false },
      list: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  })
  const all: Scenario[] = [throughput, observability, latency, idle, detection, stall, paths, reliability, relay, ...externalBenches()]
  if (values.help || values.list) {
    console.log(values.help ? USAGE + '\n\nscenarios:' : 'scenarios:')
    for (const s of all) console.log(`  ${s.name.padEnd(12)} ${s.description}${s.inQuick ? '' : ' [not in --quick unless named]'}`)
    return
  }
  const unknown = positionals.filter((p) => !all.some((s) => s.name === p))
  if (unknown.length > 0) {
    console.error(`unknown scenario(s): ${unknown.join(', ')}; known: ${all.map((s) => s.name).join(', ')}\n${USAGE}`)
    process.exit(2)
  }
  const quick = values.quick
  const selected = positionals.length > 0
    ? all.filter((s) => positionals.includes(s.name))
    : all.filter((s) => !quick || s.inQuick)
  const root = repoRoot()
  const resultsDir = values['results-dir'] ?? join(root, 'perf', 'results', ...(quick ? ['quick'] : []))
  const stamp = new Date().toISOString()
  // Node/V8 flags for every child, the raw baselines' included, so a tuning
  // (e.g. --single-threaded-gc) is measured against a baseline run the same way.
  const nodeArgs = values['node-args']?.split(/\s+/).filter((a) => a !== '') ?? []
  const badArg = nodeArgs.find((a) => !a.startsWith('--'))
  if (badArg !== undefined) {
    console.error(`--node-args takes node flags, each starting with "--" (got ${JSON.stringify(badArg)})\n${USAGE}`)
    process.exit(2)
  }
  if (values['cpu-prof']) {
    const dir = join(root, 'perf', 'profiles', stamp.replace(/[:.]/g, '-'))
    mkdirSync(dir, { recursive: true })
    setChildExecArgv([...nodeArgs, '--cpu-prof', `--cpu-prof-dir=${dir}`], join(dir, 'children.txt'))
    console.error(`cpu profiles of the child processes → ${dir} (pid → role in children.txt; summarise with node dist/perf/tools/profile-top.js ${dir}). The profiler's sampling inflates CPU % and the idle figures of this run.`)
  } else if (nodeArgs.length > 0) {
    setChildExecArgv(nodeArgs)
  }
  const hostHeapMb = positiveInt(values['host-heap-mb'], '--host-heap-mb') ?? 0
  if (hostHeapMb > 0) setChildEnv({ PERF_HOST_HEAP_MB: String(hostHeapMb) })
  const m = machine()
  const loadStart = loadavg()[0] ?? 0
  const ticksStart = cpuTicks()
  const stealText = (pct: number | undefined): string => pct === undefined ? 'n/a' : `${pct.toFixed(1)} %`
  const command = commandLine(argv)
  const t0 = performance.now()
  const log = (line: string): void => { console.error(`[perf +${((performance.now() - t0) / 1000).toFixed(1)}s] ${line}`) }
  log(`${m.cpu} × ${m.cores}, load ${loadStart.toFixed(2)}, node ${m.node}, commit ${m.commit}; scenarios: ${selected.map((s) => s.name).join(', ')}${quick ? ' (quick)' : ''}${nodeArgs.length > 0 ? `; child node flags: ${nodeArgs.join(' ')}` : ''}${hostHeapMb > 0 ? `; child host heap +${hostHeapMb} MB` : ''}`)

  // A full run is the default configuration of every scenario: it rewrites
  // RESULTS.md and feeds the chart. Tuned child flags or a retained host heap make a variant, not that.
  const full = positionals.length === 0 && !quick && nodeArgs.length === 0 && hostHeapMb === 0
  const done: Done[] = []
  for (const s of selected) {
    const children = new ChildGroup()
    const opts: RunOptions = {
      quick,
      durationMs: positiveInt(values['duration-ms'], '--duration-ms'),
      rounds: positiveInt(values.rounds, '--rounds'),
      sizes: values.sizes === undefined ? undefined : values.sizes.split(',').map((v) => positiveInt(v, '--sizes')!),
      log,
      children,
    }
    const limit = s.timeoutMs(opts)
    const ts = performance.now()
    const ticks0 = cpuTicks()
    log(`${s.name}: start (hard timeout ${(limit / 1000).toFixed(0)} s)`)
    let d: Done
    try {
      const out = await withTimeout(s.run(opts), limit, `scenario ${s.name}`)
      d = { scenario: s, out, error: undefined, ms: performance.now() - ts }
    } catch (err) {
      d = { scenario: s, out: undefined, error: String((err as Error)?.message ?? err), ms: performance.now() - ts }
      log(`${s.name}: FAILED: ${d.error}`)
    } finally {
      children.killAll()
    }
    const steal = stealPct(ticks0, cpuTicks())
    d.stealPct = steal
    done.push(d)
    if (d.out !== undefined) {
      const records: ResultRecord[] = d.out.records.map((r) => ({
        ...r, node: m.node, cpu: m.cpu, cores: m.cores, commit: m.commit, quick, full, node_args: nodeArgs, host_heap_mb: hostHeapMb, ts: stamp, command, loadavg_1m: round2(loadavg()[0] ?? 0),
        steal_pct: steal === undefined ? null : round2(steal),
      }))
      // Re-ordered so the common fields lead each line.
      const lines = records.map(({ name, node, cpu, commit, n, msgs_per_s, mb_per_s, p50_us, p99_us, baseline, ratio, ratio_of, ...rest }) =>
        ({ name, node, cpu, commit, n, msgs_per_s, mb_per_s, p50_us, p99_us, baseline, ratio, ratio_of, ...rest }))
      const file = s.writesOwnResults === true ? undefined : appendJsonl(resultsDir, s.name, lines)
      console.log(section(d))
      log(`${s.name}: done in ${(d.ms / 1000).toFixed(1)} s; hypervisor steal ${stealText(steal)}${steal !== undefined && steal > STEAL_DISTURBED_PCT ? ' (disturbed: latency tails and absolute rates are the host machine\'s)' : ''}${file === undefined ? '' : `; ${records.length} line(s) appended to ${file}`}`)
    } else {
      console.log(section(d))
    }
  }

  const wallS = (performance.now() - t0) / 1000
  const loadEnd = loadavg()[0] ?? 0
  const stealRun = stealPct(ticksStart, cpuTicks())
  const sums = summaries(done)
  for (const { issue, table } of sums) console.log(`## Issue ${issue} figures\n\n${table}\n`)
  log(`all done in ${wallS.toFixed(1)} s`)

  if (full || values['write-results-md']) {
    // The chart reads the latest full run of each scenario from the JSON lines (never a quick one).
    const chart = quick ? undefined : writeChart(resultsDir)
    if (chart !== undefined) log(`wrote ${chart}`)
    const md = [
      '# meshwork perf results',
      '',
      'Generated by `perf/harness.ts`; rewritten by every full `npm run perf`. Do not edit by hand.',
      '',
      `- Command: \`${command}\``,
      `- Date: ${stamp}`,
      `- Machine: ${m.cpu}, ${m.cores} cores, ${m.memGiB} GiB RAM, ${m.platform}`,
      `- Node: ${m.node}`,
      `- Commit: ${m.commit}`,
      `- Wall time: ${wallS.toFixed(0)} s${quick ? ' (--quick: tiny durations, not representative)' : ''}`,
      `- Load average (1 min) at start / end: ${loadStart.toFixed(2)} / ${loadEnd.toFixed(2)} on ${m.cores} cores${Math.max(loadStart, loadEnd) > m.cores / 2 ? ' — other jobs shared the machine: absolute numbers are low and noisy; the interleaved ratios are the figures to compare' : ''}`,
      `- Hypervisor steal (CPU time the VM was ready to run but not given, /proc/stat): ${stealText(stealRun)} over the run; per scenario: ${done.map((x) => `${x.scenario.name} ${stealText(x.stealPct)}`).join(', ')}${stealRun !== undefined && stealRun > STEAL_DISTURBED_PCT ? ` — above ${STEAL_DISTURBED_PCT} %: the host machine was contended, latency tails and absolute rates of this run are its, not meshwork's` : ''}`,
      '',
      ...sums.flatMap(({ issue, table }) => [`## Issue ${issue} figures`, '', table, '']),
      ...(chart === undefined ? [] : [`![meshwork vs raw ws: throughput ratio per payload size, round-trip latency percentiles](${relative(join(root, 'perf'), chart)})`, '', `\`${relative(join(root, 'perf'), chart)}\`: drawn from the latest full run in \`results/{throughput,latency}.jsonl\` (\`node dist/perf/tools/chart.js\` redraws it).`, '']),
      ...done.map(section),
      `JSON lines: \`${join('perf', 'results')}/<scenario>.jsonl\`.`,
      '',
    ].join('\n')
    writeFileSync(join(root, 'perf', 'RESULTS.md'), md)
    log(`wrote ${join(root, 'perf', 'RESULTS.md')}`)
  }
  if (done.some((d) => d.out === undefined)) process.exitCode = 1
}

main().catch((err: unknown) => {
  console.error(err)
  killAll()
  process.exit(1)
})
