import { describe, expect, it, afterEach } from 'vitest'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { latestFullRun, renderChart, type ResultLine } from '../../../perf/lib/chart.js'

const dirs: string[] = []
afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }) })

const tp = (size: number, name: string, ratio: number, ts = '2026-01-02T00:00:00.000Z', quick = false): ResultLine =>
  ({ name: `throughput ${name}`, ts, quick, command: 'npm run perf', payload_bytes: size, ratio_msgs_per_s: ratio, msgs_per_s: 1000 * ratio, baseline_msgs_per_s: 1000, mib_per_s: ratio * 100, baseline_mib_per_s: 100, commit: 'abc1234', cpu: 'Test CPU', cores: 2, node: 'v20' })
const lat: ResultLine = { name: 'latency RTT 64 B', ts: '2026-01-02T00:00:00.000Z', p50_us: 350, p99_us: 5840, p999_us: 19100, baseline_p50_us: 84, baseline_p99_us: 1540, baseline_p999_us: 3465 }

describe('perf chart', () => {
  it('draws one bar per payload size and raw/mesh bars per latency percentile, with values and ratios', () => {
    const svg = renderChart([tp(65536, '64 KiB', 0.31), tp(64, '64 B', 0.67)], [lat])
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true)
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true)
    // Sizes in order, with their ratios.
    expect(svg.indexOf('>64 B<')).toBeLessThan(svg.indexOf('>64 KiB<'))
    expect(svg).toContain('>0.67×<')
    expect(svg).toContain('>0.31×<')
    expect(svg).toContain('raw ws = 1.00')
    for (const label of ['>p50<', '>p99<', '>p99.9<', '>350 µs<', '>84 µs<', '>19.1 ms<', '>4.2× raw<']) expect(svg).toContain(label)
    expect(svg).toContain('commit abc1234')
    // Balanced tags: every opened element is closed.
    for (const tag of ['text', 'rect', 'title']) {
      const open = svg.match(new RegExp(`<${tag}[ >]`, 'g'))?.length ?? 0
      const closed = (svg.match(new RegExp(`</${tag}>`, 'g'))?.length ?? 0) + (svg.match(new RegExp(`<${tag}[^>]*/>`, 'g'))?.length ?? 0)
      expect(closed).toBe(open)
    }
  })

  it('a variant row (borrowPayloads) is its own bar with a short label, after the default one of its size', () => {
    const svg = renderChart([tp(64, '64 B', 0.6), tp(65536, '64 KiB', 0.18), { ...tp(65536, '64 KiB', 0.3), name: 'throughput 64 KiB, borrowPayloads' }], [lat])
    expect(svg).toContain('>64 KiB borrow<')
    expect(svg).toContain('>0.30×<')
    expect(svg.indexOf('>64 KiB<')).toBeLessThan(svg.indexOf('>64 KiB borrow<'))
    expect(svg).toContain('throughput 64 KiB, borrowPayloads: 0.3 × raw ws')
  })

  it('says so when there is no full run; escapes text', () => {
    const svg = renderChart([], [])
    expect(svg).toContain('no full throughput run yet')
    expect(svg).toContain('no full latency run yet')
    expect(renderChart([{ ...tp(64, '64 B', 0.5), commit: '<x&y>' }], [])).toContain('commit &lt;x&amp;y&gt;')
  })

  it('latestFullRun takes the newest full run and skips quick runs, partial runs and bad lines', () => {
    const dir = mkdtempSync(join(tmpdir(), 'meshwork-chart-'))
    dirs.push(dir)
    const file = join(dir, 'throughput.jsonl')
    writeFileSync(file, [
      tp(64, '64 B', 0.1, '2026-01-01T00:00:00.000Z'),
      tp(64, '64 B', 0.6, '2026-01-02T00:00:00.000Z'),
      tp(1024, '1 KiB', 0.5, '2026-01-02T00:00:00.000Z'),
      tp(64, '64 B', 0.9, '2026-01-03T00:00:00.000Z', true),
      { ...tp(64, '64 B', 0.8, '2026-01-04T00:00:00.000Z'), command: 'npm run perf -- throughput' },
      { ...tp(64, '64 B', 0.7, '2026-01-05T00:00:00.000Z'), full: false, command: 'npm run perf' },
    ].map((r) => JSON.stringify(r)).join('\n') + '\nnot json\n')
    expect(latestFullRun(file).map((r) => [r.name, r.ratio_msgs_per_s])).toEqual([['throughput 64 B', 0.6], ['throughput 1 KiB', 0.5]])
    expect(latestFullRun(join(dir, 'missing.jsonl'))).toEqual([])
  })
})
