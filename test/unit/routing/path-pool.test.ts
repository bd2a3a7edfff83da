import { describe, it, expect, afterEach } from 'vitest'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { compactGraph } from '../../../src/routing/graph.js'
import { kShortestToAll, KShortestPathsEngine } from '../../../src/routing/yen.js'
import { decodePathsResult, encodePathsResult, runPathsTask } from '../../../src/routing/path-task.js'
import { PathPool } from '../../../src/routing/path-pool.js'
import { MeshError } from '../../../src/errors.js'
import { randomMesh } from './helpers.js'

// The pool loads the BUILT task (Node 20 cannot run .ts in a worker): `npm test`
// builds first; a bare `vitest run` without dist/ skips the pool cases.
const TASK = process.env['MESHWORK_PATHS_TASK'] ?? fileURLToPath(new URL('../../../dist/workers/paths.task.js', import.meta.url))
const hasTask = existsSync(TASK)

const pools: PathPool[] = []
afterEach(async () => { await Promise.all(pools.splice(0).map(async (p) => { await p.destroy() })) })

describe('path task encoding', () => {
  it('encode/decode round-trips kShortestToAll, unreachable destinations absent', () => {
    const { graph, ids } = randomMesh(60, 4, 3)
    graph.set('zz-isolated', new Map())
    const cg = compactGraph(graph)
    const direct = kShortestToAll(cg, ids[0]!, 3)
    const viaTask = decodePathsResult(cg.ids, runPathsTask({ graph: cg, source: cg.ids.indexOf(ids[0]!), k: 3 }))
    expect(viaTask).toEqual(direct)
    expect(viaTask.has('zz-isolated')).toBe(false)
    const empty = encodePathsResult([[], []])
    expect(decodePathsResult(['a', 'b'], empty).size).toBe(0)
    expect(() => runPathsTask({ graph: cg, source: 9999, k: 3 })).toThrow(RangeError)
  })

  it('survives structured clone (what crosses the worker boundary)', () => {
    const { graph, ids } = randomMesh(30, 4, 5)
    const cg = compactGraph(graph)
    const task = structuredClone({ graph: cg, source: 0, k: 2 })
    const r = structuredClone(runPathsTask(task))
    expect(decodePathsResult(cg.ids, r)).toEqual(kShortestToAll(cg, ids[0]!, 2))
    expect(new KShortestPathsEngine(task.graph).toAll(0, 2)).toEqual(new KShortestPathsEngine(cg).toAll(0, 2))
  })
})

describe('PathPool', () => {
  it('computes small graphs inline (no threads)', async () => {
    const pool = new PathPool({ inlineMaxNodes: 100, filename: '/nonexistent.js' })
    pools.push(pool)
    const { graph, ids } = randomMesh(50, 4, 9)
    expect(await pool.kShortestToAll(graph, ids[0]!, 3)).toEqual(kShortestToAll(graph, ids[0]!, 3))
    expect(pool.stats).toMatchObject({ inline: 1, pooled: 0 })
  })

  it('validates options, and rejects after close with CLOSED', async () => {
    expect(() => new PathPool({ maxThreads: 0 })).toThrow(/maxThreads/)
    const pool = new PathPool()
    await pool.close()
    await pool.close()
    await expect(pool.kShortestToAll(randomMesh(5, 2, 1).graph, 'n0000', 1)).rejects.toSatisfy((e) => e instanceof MeshError && e.code === 'CLOSED')
  })

  it.runIf(hasTask)('computes large graphs on the pool, same result as inline', async () => {
    const pool = new PathPool({ inlineMaxNodes: 200, filename: TASK })
    pools.push(pool)
    const { graph, ids } = randomMesh(300, 6, 17)
    const got = await pool.kShortestToAll(graph, ids[3]!, 3)
    expect(pool.stats.pooled).toBe(1)
    expect(got).toEqual(kShortestToAll(graph, ids[3]!, 3))
    await expect(pool.kShortestToAll(graph, 'nobody', 3)).rejects.toThrow(RangeError)
  })

  it.runIf(hasTask)('honours an abort signal', async () => {
    const pool = new PathPool({ inlineMaxNodes: 0, filename: TASK })
    pools.push(pool)
    const { graph, ids } = randomMesh(300, 6, 17)
    const before = new AbortController()
    before.abort(new Error('stop'))
    await expect(pool.kShortestToAll(graph, ids[0]!, 3, { signal: before.signal })).rejects.toThrow('stop')
    // Aborted while queued on the pool.
    const during = new AbortController()
    const job = pool.kShortestToAll(graph, ids[0]!, 3, { signal: during.signal })
    during.abort()
    await expect(job).rejects.toThrow()
    expect(pool.stats.pooled).toBe(0)
  })
})
