// A smoke run of the perf harness (the built dist/perf/harness.js, as `npm run
// perf` runs it) with the smallest durations: it must run and print its
// same-run table with candidate/baseline ratios. The numbers are not checked:
// benchmarks never assert, and the real ones live in perf/RESULTS.md.
import { describe, it, expect, afterEach } from 'vitest'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('../..', import.meta.url))
const HARNESS = join(root, 'dist/perf/harness.js')
const dirs: string[] = []

afterEach(async () => { await Promise.all(dirs.splice(0).map(async (d) => { await rm(d, { recursive: true, force: true }) })) })

describe('perf harness (smoke)', () => {
  it('--quick throughput at 64 B, one round of 100 ms: exit 0, a table with ratio columns, a JSON line, RESULTS.md untouched', async () => {
    const resultsDir = await mkdtemp(join(tmpdir(), 'meshwork-perf-'))
    dirs.push(resultsDir)
    const resultsMd = await readFile(join(root, 'perf/RESULTS.md'), 'utf8')
    const { code, stdout, stderr } = await harness(['--quick', 'throughput', '--sizes', '64', '--rounds', '1', '--duration-ms', '100', '--results-dir', resultsDir])
    expect(code, `harness exit code; stderr:\n${stderr.slice(-3000)}`).toBe(0)

    const out = `stdout:\n${stdout}\nstderr:\n${stderr.slice(-3000)}`
    const head = stdout.split('\n').find((l) => l.startsWith('| payload'))
    expect(head, out).toBeDefined()
    expect(head?.split('|').map((c) => c.trim())).toEqual(expect.arrayContaining(['raw ws msgs/s', 'mesh msgs/s', 'ratio']))
    const row = stdout.split('\n').find((l) => l.startsWith('| 64 B'))
    expect(row, out).toMatch(/^\| 64 B +\| +[\d,]+ \| +[\d,]+ \| +\d+\.\d+ \|/)
    expect(stdout).toContain('host ELD p99')

    const files = await readdir(resultsDir)
    expect(files).toEqual(['throughput.jsonl'])
    const lines = (await readFile(join(resultsDir, 'throughput.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
    expect(lines[0]).toMatchObject({ name: 'throughput 64 B', quick: true, ratio: expect.any(Number) })
    // The architecture floor ran too (procs/floor-node.ts): a rate, and where the mesh stands against it; no target.
    expect(stdout).toMatch(/^\| 64 B, floor \(no protocol\) +\| +[\d,]+ \| +[\d,]+ \|/m)
    const floor = lines.find((r) => String(r.name).startsWith('architecture floor 64 B'))
    expect(floor, out).toMatchObject({ msgs_per_s: expect.any(Number), mesh_ratio_to_floor: expect.any(Number), target: null })
    expect(floor!.msgs_per_s as number).toBeGreaterThan(0)
    // A quick run never rewrites the tracked results.
    expect(await readFile(join(root, 'perf/RESULTS.md'), 'utf8')).toBe(resultsMd)
  }, 90_000)

  it('--node-args reaches every child (here --trace-gc: the children print their GCs), is recorded, and makes no full run', async () => {
    const resultsDir = await mkdtemp(join(tmpdir(), 'meshwork-perf-'))
    dirs.push(resultsDir)
    const { code, stdout, stderr } = await harness(['--quick', 'throughput', '--sizes', '64', '--rounds', '1', '--duration-ms', '100', '--node-args=--trace-gc --stack-trace-limit=20', '--results-dir', resultsDir])
    expect(code, `harness exit code; stderr:\n${stderr.slice(-3000)}`).toBe(0)
    expect(stderr).toContain('child node flags: --trace-gc --stack-trace-limit=20')
    // V8's GC trace lines ("[pid:0x…] 12 ms: Scavenge …") come from the children only: the harness runs without --trace-gc.
    expect(stdout).toMatch(/^\[\d+:0x[0-9a-f]+\] +\d+ ms: (Scavenge|Mark-Compact)/m)
    const record = JSON.parse((await readFile(join(resultsDir, 'throughput.jsonl'), 'utf8')).trim().split('\n')[0] as string)
    expect(record).toMatchObject({ name: 'throughput 64 B', node_args: ['--trace-gc', '--stack-trace-limit=20'], full: false })
  }, 90_000)

  it('--host-heap-mb: every child keeps that much live heap before it serves, the run is recorded as such and is no full run', async () => {
    const resultsDir = await mkdtemp(join(tmpdir(), 'meshwork-perf-'))
    dirs.push(resultsDir)
    const { code, stderr } = await harness(['--quick', 'throughput', '--sizes', '64', '--rounds', '1', '--duration-ms', '100', '--host-heap-mb', '24', '--results-dir', resultsDir])
    expect(code, `harness exit code; stderr:\n${stderr.slice(-3000)}`).toBe(0)
    // Three children (eld probe, raw pair or mesh pair at a time): each reports its heap grown by ~24 MB.
    const grown = [...stderr.matchAll(/perf child \d+: host heap ([\d.]+) → ([\d.]+) MB used \(--host-heap-mb=24\)/g)]
    expect(grown.length, stderr.slice(-3000)).toBeGreaterThanOrEqual(3)
    for (const [, before, after] of grown) expect(Number(after) - Number(before)).toBeGreaterThan(20)
    const record = JSON.parse((await readFile(join(resultsDir, 'throughput.jsonl'), 'utf8')).trim().split('\n')[0] as string)
    expect(record).toMatchObject({ name: 'throughput 64 B', host_heap_mb: 24, full: false })
  }, 90_000)

  it('--node-args with something that is not a flag: exit 2 naming it, nothing run', async () => {
    const { code, stderr } = await harness(['throughput', '--node-args=--trace-gc oops'])
    expect(code).toBe(2)
    expect(stderr).toContain('--node-args takes node flags, each starting with "--" (got "oops")')
    expect(stderr).not.toContain('[perf +')
  }, 30_000)
})

async function harness (args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = spawn(process.execPath, ['--expose-gc', HARNESS, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  proc.stdout.setEncoding('utf8').on('data', (s: string) => { stdout += s })
  proc.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s })
  const timer = setTimeout(() => { proc.kill('SIGKILL') }, 60_000)
  const [code] = await once(proc, 'close') as [number | null]
  clearTimeout(timer)
  return { code, stdout, stderr }
}
