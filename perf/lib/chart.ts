/**
 * The README chart: mesh against the raw `ws` baseline of the same run —
 * throughput ratio per payload size, and round-trip latency percentiles —
 * drawn as hand-written SVG from the latest full run's JSON lines.
 *
 * @module
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

/** One JSON line of perf/results/<scenario>.jsonl (only the fields the chart reads). */
export interface ResultLine {
  name: string
  ts?: string
  quick?: boolean
  /** Every scenario ran (no scenario named, not --quick); absent in lines older than the field. */
  full?: boolean
  command?: string
  commit?: string
  cpu?: string
  cores?: number
  node?: string
  payload_bytes?: number
  msgs_per_s?: number | null
  baseline_msgs_per_s?: number
  mib_per_s?: number
  baseline_mib_per_s?: number
  ratio_msgs_per_s?: number | null
  ratio_mb_per_s?: number | null
  p50_us?: number | null
  p99_us?: number | null
  p999_us?: number
  baseline_p50_us?: number
  baseline_p99_us?: number
  baseline_p999_us?: number
  [extra: string]: unknown
}

/**
 * Whether a line comes from a full run: every scenario, not `--quick`. Lines
 * older than the `full` field tell it by their command (no scenario named).
 */
export function isFullRun (r: ResultLine): boolean {
  if (r.quick === true) return false
  if (typeof r.full === 'boolean') return r.full
  const cmd = (r.command ?? '').trim()
  return /(^npm run perf|harness\.js)$/.test(cmd)
}

/**
 * The lines of the latest full run in `file` (see {@link isFullRun}): those
 * sharing its newest `ts`. Partial runs (some scenarios named) are left out,
 * so the chart never mixes a partial run's figures with an older full run's.
 */
export function latestFullRun (file: string): ResultLine[] {
  if (!existsSync(file)) return []
  const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '').flatMap((l) => {
    try { return [JSON.parse(l) as ResultLine] } catch { return [] }
  }).filter((r) => isFullRun(r) && typeof r.ts === 'string')
  const last = lines.reduce<string | undefined>((m, r) => (m === undefined || (r.ts as string) > m ? r.ts : m), undefined)
  return lines.filter((r) => r.ts === last)
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
const n1 = (v: number): string => (Math.round(v * 10) / 10).toString()
function short (v: number): string {
  if (v >= 1e6) return `${n1(v / 1e6)}M`
  if (v >= 1e4) return `${Math.round(v / 1e3)}k`
  if (v >= 1e3) return `${n1(v / 1e3)}k`
  return n1(v)
}
function us (v: number): string {
  return v >= 1000 ? `${n1(v / 1000)} ms` : `${Math.round(v)} µs`
}

const MESH = '#1f6feb'
const RAW = '#8b949e'

/**
 * SVG of the throughput ratios (`throughput <size>` lines) and the latency
 * percentiles (`latency RTT …` line) against raw ws. Panels without data say so.
 */
export function renderChart (throughput: readonly ResultLine[], latency: readonly ResultLine[]): string {
  const W = 920
  const H = 420
  const out: string[] = []
  const text = (x: number, y: number, s: string, attrs = ''): void => { out.push(`<text x="${n1(x)}" y="${n1(y)}" ${attrs}>${esc(s)}</text>`) }
  const rect = (x: number, y: number, w: number, h: number, fill: string, title: string): void => {
    out.push(`<rect x="${n1(x)}" y="${n1(y)}" width="${n1(w)}" height="${n1(Math.max(h, 0.5))}" fill="${fill}"><title>${esc(title)}</title></rect>`)
  }
  const line = (x1: number, y1: number, x2: number, y2: number, attrs: string): void => {
    out.push(`<line x1="${n1(x1)}" y1="${n1(y1)}" x2="${n1(x2)}" y2="${n1(y2)}" ${attrs}/>`)
  }

  // Panel A: throughput, mesh / raw ws, per payload size.
  const tp = throughput.filter((r) => r.name.startsWith('throughput ') && typeof r.payload_bytes === 'number')
    .sort((a, b) => (a.payload_bytes ?? 0) - (b.payload_bytes ?? 0))
  const ax = { x0: 70, x1: 430, y0: 330, y1: 70 }
  text((ax.x0 + ax.x1) / 2, 36, 'Throughput, mesh ÷ raw ws (same run)', 'text-anchor="middle" font-weight="bold"')
  text((ax.x0 + ax.x1) / 2, 54, 'one-way, two processes on loopback; higher is better', 'text-anchor="middle" fill="#57606a" font-size="11"')
  const ratios = tp.map((r) => r.ratio_msgs_per_s ?? 0)
  const top = Math.max(1.2, ...ratios.map((v) => v * 1.15))
  const yA = (v: number): number => ax.y0 - (v / top) * (ax.y0 - ax.y1)
  for (let v = 0; v <= top + 1e-9; v += 0.25) {
    line(ax.x0, yA(v), ax.x1, yA(v), 'stroke="#eaeef2"')
    text(ax.x0 - 8, yA(v) + 4, v.toFixed(2), 'text-anchor="end" fill="#57606a"')
  }
  line(ax.x0, yA(1), ax.x1, yA(1), `stroke="${RAW}" stroke-width="2" stroke-dasharray="6 4"`)
  text(ax.x1, yA(1) - 6, 'raw ws = 1.00', `text-anchor="end" fill="${RAW}"`)
  if (tp.length === 0) text((ax.x0 + ax.x1) / 2, (ax.y0 + ax.y1) / 2, 'no full throughput run yet', 'text-anchor="middle" fill="#57606a"')
  const slot = (ax.x1 - ax.x0) / Math.max(tp.length, 1)
  tp.forEach((r, i) => {
    const v = r.ratio_msgs_per_s ?? 0
    const cx = ax.x0 + slot * (i + 0.5)
    const bw = Math.min(70, slot * 0.5)
    // A variant row ("64 KiB, borrowPayloads") gets a short label that fits its slot.
    const [sizeName = '', variant] = r.name.slice('throughput '.length).split(', ')
    const size = variant === undefined ? sizeName : `${sizeName} ${variant === 'borrowPayloads' ? 'borrow' : variant}`
    rect(cx - bw / 2, yA(v), bw, ax.y0 - yA(v), MESH, `${r.name}: ${v} × raw ws`)
    text(cx, yA(v) - 6, `${v.toFixed(2)}×`, 'text-anchor="middle" font-weight="bold"')
    text(cx, ax.y0 + 18, size, 'text-anchor="middle"')
    const big = (r.payload_bytes ?? 0) >= 16 * 1024
    const detail = big
      ? `${Math.round(r.mib_per_s ?? 0)} vs ${Math.round(r.baseline_mib_per_s ?? 0)} MiB/s`
      : `${short(r.msgs_per_s ?? 0)} vs ${short(r.baseline_msgs_per_s ?? 0)} msg/s`
    text(cx, ax.y0 + 34, detail, `text-anchor="middle" fill="#57606a" font-size="${tp.length > 3 ? 10 : 11}"`)
  })
  line(ax.x0, ax.y0, ax.x1, ax.y0, 'stroke="#57606a"')

  // Panel B: round-trip latency percentiles, raw ws and mesh, log scale.
  const lat = latency.find((r) => r.name.startsWith('latency RTT'))
  const bx = { x0: 540, x1: 890, y0: 330, y1: 70 }
  text((bx.x0 + bx.x1) / 2, 36, `Round-trip latency${lat === undefined ? '' : `, ${lat.name.slice('latency RTT '.length)}`} (log scale)`, 'text-anchor="middle" font-weight="bold"')
  text((bx.x0 + bx.x1) / 2, 54, 'one in flight, two processes on loopback; lower is better', 'text-anchor="middle" fill="#57606a" font-size="11"')
  const groups: Array<[label: string, raw: number, mesh: number]> = []
  if (lat !== undefined) {
    for (const [label, raw, mesh] of [['p50', lat.baseline_p50_us, lat.p50_us], ['p99', lat.baseline_p99_us, lat.p99_us], ['p99.9', lat.baseline_p999_us, lat.p999_us]] as const) {
      if (typeof raw === 'number' && typeof mesh === 'number' && raw > 0 && mesh > 0) groups.push([label, raw, mesh])
    }
  }
  if (groups.length === 0) text((bx.x0 + bx.x1) / 2, (bx.y0 + bx.y1) / 2, 'no full latency run yet', 'text-anchor="middle" fill="#57606a"')
  const values = groups.flatMap((g) => [g[1], g[2]])
  const lo = Math.floor(Math.log10(Math.min(...values, 100)))
  const hi = Math.ceil(Math.log10(Math.max(...values, 1000)) + 0.15)
  const yB = (v: number): number => bx.y0 - ((Math.log10(v) - lo) / (hi - lo)) * (bx.y0 - bx.y1)
  for (let d = lo; d <= hi; d++) {
    const v = 10 ** d
    line(bx.x0, yB(v), bx.x1, yB(v), 'stroke="#eaeef2"')
    text(bx.x0 - 8, yB(v) + 4, us(v), 'text-anchor="end" fill="#57606a"')
  }
  const gslot = (bx.x1 - bx.x0) / Math.max(groups.length, 1)
  groups.forEach(([label, raw, mesh], i) => {
    const cx = bx.x0 + gslot * (i + 0.5)
    const bw = Math.min(40, gslot * 0.3)
    const base = yB(10 ** lo)
    rect(cx - bw - 2, yB(raw), bw, base - yB(raw), RAW, `raw ws ${label}: ${us(raw)}`)
    rect(cx + 2, yB(mesh), bw, base - yB(mesh), MESH, `mesh ${label}: ${us(mesh)}`)
    text(cx - bw / 2 - 2, yB(raw) - 5, us(raw), 'text-anchor="middle" font-size="11" fill="#57606a"')
    text(cx + bw / 2 + 2, yB(mesh) - 5, us(mesh), 'text-anchor="middle" font-size="11"')
    text(cx, bx.y0 + 18, label, 'text-anchor="middle"')
    text(cx, bx.y0 + 34, `${n1(mesh / raw)}× raw`, 'text-anchor="middle" fill="#57606a" font-size="11"')
  })
  line(bx.x0, bx.y0, bx.x1, bx.y0, 'stroke="#57606a"')

  // Legend and provenance.
  out.push(`<rect x="70" y="${H - 44}" width="12" height="12" fill="${MESH}"/>`)
  text(88, H - 34, 'meshwork')
  out.push(`<rect x="170" y="${H - 44}" width="12" height="12" fill="${RAW}"/>`)
  text(188, H - 34, 'raw ws baseline (bufferutil), in the same run, rounds interleaved')
  const src = tp[0] ?? lat
  if (src !== undefined) {
    text(70, H - 12, `${src.ts?.slice(0, 10) ?? ''} · commit ${src.commit ?? '?'} · ${src.cpu ?? '?'} × ${src.cores ?? '?'} cores · node ${src.node ?? '?'} · medians of interleaved rounds (perf/RESULTS.md)`, 'fill="#57606a" font-size="11"')
  }

  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="-apple-system, 'Segoe UI', Helvetica, Arial, sans-serif" font-size="12" fill="#24292f">`,
    '<title>meshwork vs raw ws: throughput ratio per payload size and round-trip latency percentiles</title>',
    `<rect width="${W}" height="${H}" fill="#ffffff"/>`,
    ...out,
    '</svg>',
    '',
  ].join('\n')
}

/**
 * Draw perf/results/chart.svg from the latest full run in
 * perf/results/{throughput,latency}.jsonl. Returns the file written.
 */
export function writeChart (resultsDir: string): string {
  const file = join(resultsDir, 'chart.svg')
  writeFileSync(file, renderChart(latestFullRun(join(resultsDir, 'throughput.jsonl')), latestFullRun(join(resultsDir, 'latency.jsonl'))))
  return file
}
