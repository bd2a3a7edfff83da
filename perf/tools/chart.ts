/**
 * Redraw perf/results/chart.svg from the latest full run in
 * perf/results/{throughput,latency}.jsonl (a full `npm run perf` does this
 * itself; use this after editing the results by hand or to draw another dir).
 *
 *   node dist/perf/tools/chart.js [--results-dir perf/results]
 *
 * @module
 */
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { writeChart } from '../lib/chart.js'
import { repoRoot } from '../lib/report.js'

const { values } = parseArgs({ options: { 'results-dir': { type: 'string' } } })
console.log(`wrote ${writeChart(values['results-dir'] ?? join(repoRoot(), 'perf', 'results'))}`)
