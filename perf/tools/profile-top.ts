/**
 * Summarise the `.cpuprofile` files of a `npm run perf -- --cpu-prof` run:
 * for each profile (one per thread: a child's main thread and its workers),
 * the role of its process (from children.txt), the busy share of the
 * thread and the top functions by self time.
 *
 *   node dist/perf/tools/profile-top.js perf/profiles/<date> [--top N] [--filter mesh]
 *
 * @module
 */
import { readdirSync, readFileSync, existsSync } from 'node:fs'
import { join, relative } from 'node:path'
import { parseArgs } from 'node:util'

interface Node {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
  hitCount?: number
  children?: number[]
}
interface Profile { nodes: Node[]; startTime: number; endTime: number; samples?: number[]; timeDeltas?: number[] }

/** Self time (µs) per function, from the sample deltas (exact even with irregular sampling). */
function selfTimes (p: Profile): Map<number, number> {
  const t = new Map<number, number>()
  const samples = p.samples ?? []
  const deltas = p.timeDeltas ?? []
  // timeDeltas[i] is the time before sample i: attribute it to sample i - 1's node.
  for (let i = 1; i < samples.length; i++) {
    const id = samples[i - 1]!
    t.set(id, (t.get(id) ?? 0) + (deltas[i] ?? 0))
  }
  return t
}

function label (n: Node, root: string): string {
  const f = n.callFrame
  const name = f.functionName === '' ? '(anonymous)' : f.functionName
  if (f.url === '') return name
  let url = f.url.replace(/^file:\/\//, '')
  if (url.startsWith(root)) url = relative(root, url)
  url = url.replace(/^.*node_modules\//, '')
  return `${name} ${url}:${f.lineNumber + 1}`
}

function main (): void {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '12' }, filter: { type: 'string' } } })
  const dir = positionals[0]
  if (dir === undefined) { console.error('usage: profile-top <profile dir> [--top N] [--filter role]'); process.exit(2) }
  const top = Number(values.top)
  const roles = new Map<string, string>()
  const pidFile = join(dir, 'children.txt')
  if (existsSync(pidFile)) {
    for (const line of readFileSync(pidFile, 'utf8').split('\n')) {
      const [pid, ...name] = line.split(' ')
      if (pid !== undefined && pid !== '') roles.set(pid, name.join(' '))
    }
  }
  const root = process.cwd()
  // CPU.<date>.<time>.<pid>.<tid>.<seq>.cpuprofile
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).sort()
  for (const f of files) {
    const parts = f.split('.')
    const pid = parts[3] ?? '?'
    const tid = parts[4] ?? '?'
    const role = roles.get(pid) ?? `pid ${pid}`
    if (values.filter !== undefined && !role.includes(values.filter)) continue
    const p = JSON.parse(readFileSync(join(dir, f), 'utf8')) as Profile
    const byId = new Map(p.nodes.map((n) => [n.id, n]))
    const self = selfTimes(p)
    const total = p.endTime - p.startTime
    const byLabel = new Map<string, number>()
    let idle = 0
    for (const [id, us] of self) {
      const n = byId.get(id)
      if (n === undefined) continue
      const name = n.callFrame.functionName
      if (name === '(idle)') idle += us
      const l = label(n, root)
      byLabel.set(l, (byLabel.get(l) ?? 0) + us)
    }
    const busy = total - idle
    console.log(`\n## ${role} — thread ${tid === '0' ? 'main' : `worker ${tid}`} (${f})`)
    console.log(`profiled ${(total / 1e6).toFixed(1)} s, busy ${(100 * busy / total).toFixed(0)} % (not idle)`)
    const rows = [...byLabel].filter(([l]) => !l.startsWith('(idle)')).sort((a, b) => b[1] - a[1]).slice(0, top)
    for (const [l, us] of rows) console.log(`${(100 * us / busy).toFixed(1).padStart(5)} %  ${(us / 1000).toFixed(0).padStart(6)} ms  ${l}`)
  }
}

main()
