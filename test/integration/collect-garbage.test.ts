// Mesh._collectGarbage (perf's idle RSS samples): every worker heap of the node is collected
// when the process runs with --expose-gc, none without it (a host never needs the flag).
import { describe, it, expect, afterEach } from 'vitest'
import { execFile } from 'node:child_process'
import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { fileURLToPath } from 'node:url'
import { makeMesh, closeAll } from '../helpers/mesh.js'
import { IO_WORKER_YOUNG_GENERATION_MB } from '../../dist/src/supervisor/supervisor.js'

afterEach(closeAll)

const run = promisify(execFile)
const dist = fileURLToPath(new URL('../../dist/src/index.js', import.meta.url))

describe('Mesh._collectGarbage', () => {
  it('with --expose-gc: collects every IO worker and the router (3 heaps with threads.io 2)', async () => {
    const script = `const { createMesh } = await import(${JSON.stringify(dist)})
      const m = await createMesh({ listen: 'ws://127.0.0.1:0', logger: false, threads: { io: 2 } })
      console.log(JSON.stringify(await m._collectGarbage())); await m.close()`
    // A script file, not -e: the workers inherit the process's execArgv.
    const file = join(await mkdtemp(join(tmpdir(), 'mw-gc-')), 'gc.mjs')
    await writeFile(file, script)
    const { stdout } = await run(process.execPath, ['--expose-gc', file], { timeout: 30_000 })
    const r = JSON.parse(stdout.trim()) as { collected: number; usedBytes: number; physicalBytes: number; arrayBufferBytes: number; workers: Array<{ usedBytes: number; arrayBufferBytes: number; youngGenerationMb: number }> }
    expect(r.collected).toBe(3)
    expect(r.workers).toHaveLength(3) // each, IO workers first
    // The IO workers run with their small young generation, the router with V8's larger default (supervisor.ts: why).
    expect(r.workers.slice(0, 2).map((w) => w.youngGenerationMb)).toEqual([IO_WORKER_YOUNG_GENERATION_MB, IO_WORKER_YOUNG_GENERATION_MB])
    expect(r.workers[2]!.youngGenerationMb).toBeGreaterThan(IO_WORKER_YOUNG_GENERATION_MB)
    expect(r.workers.reduce((n, w) => n + w.usedBytes, 0)).toBe(r.usedBytes)
    expect(r.arrayBufferBytes).toBe(r.workers.reduce((n, w) => n + w.arrayBufferBytes, 0))
    // Three heaps hold at least a few MiB of live objects (modules, the workers' state), within their pages.
    expect(r.usedBytes).toBeGreaterThan(3 * 1024 * 1024)
    expect(r.physicalBytes).toBeGreaterThanOrEqual(r.usedBytes)
  })

  it('without --expose-gc: collects nothing and does no harm', async () => {
    const m = await makeMesh()
    expect(typeof (globalThis as { gc?: unknown }).gc).toBe('undefined')
    expect(await m._collectGarbage()).toEqual({ collected: 0, usedBytes: 0, physicalBytes: 0, arrayBufferBytes: 0, workers: [null, null] })
  })
})
