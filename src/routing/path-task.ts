/**
 * The k-shortest-paths pool task: its message types, the encoding of its
 * result, and the task itself. Shared by both sides (like piscina's
 * `types.ts`): path-pool.ts sends a {@link PathsTask} and decodes the
 * {@link PathsResult}; workers/paths.task.ts only re-exports
 * {@link runPathsTask}, so the logic is testable in one thread.
 *
 * Both messages are plain data and typed arrays (structured clone): a
 * compact graph, and paths as integer node indices rather than arrays of
 * id strings, which would cost far more to clone.
 *
 * @module
 */
import type { CompactGraph, Path } from './graph.js'
import { KShortestPathsEngine, type IndexPath } from './yen.js'

/** Input of {@link runPathsTask}. */
export interface PathsTask {
  readonly graph: CompactGraph
  /** Node index of the source in `graph.ids`. */
  readonly source: number
  readonly k: number
}

/**
 * Output of {@link runPathsTask}: the paths to destination t are
 * `targetStart[t] .. targetStart[t+1]-1`; path p visits
 * `nodes[pathStart[p] .. pathStart[p+1]-1]` and costs `costs[p]`.
 */
export interface PathsResult {
  readonly targetStart: Int32Array
  readonly pathStart: Int32Array
  readonly nodes: Int32Array
  readonly costs: Float64Array
  /** Time the worker spent computing, in ms (for metrics). */
  readonly computeMs: number
}

/** Pack per-destination index paths into a {@link PathsResult}. */
export function encodePathsResult (all: readonly (readonly IndexPath[])[], computeMs = 0): PathsResult {
  let paths = 0
  let nodeCount = 0
  for (const ps of all) for (const p of ps) { paths++; nodeCount += p.nodes.length }
  const targetStart = new Int32Array(all.length + 1)
  const pathStart = new Int32Array(paths + 1)
  const nodes = new Int32Array(nodeCount)
  const costs = new Float64Array(paths)
  let pi = 0
  let ni = 0
  for (let t = 0; t < all.length; t++) {
    targetStart[t] = pi
    for (const p of all[t]!) {
      pathStart[pi] = ni
      costs[pi] = p.cost
      for (const v of p.nodes) nodes[ni++] = v
      pi++
    }
  }
  targetStart[all.length] = pi
  pathStart[paths] = ni
  return { targetStart, pathStart, nodes, costs, computeMs }
}

/** Unpack a {@link PathsResult} into destination id → paths (unreachable destinations absent). */
export function decodePathsResult (ids: readonly string[], r: PathsResult): Map<string, Path[]> {
  const out = new Map<string, Path[]>()
  for (let t = 0; t + 1 < r.targetStart.length; t++) {
    const from = r.targetStart[t]!
    const to = r.targetStart[t + 1]!
    if (from === to) continue
    const ps: Path[] = []
    for (let p = from; p < to; p++) {
      const nodes: string[] = []
      for (let j = r.pathStart[p]!; j < r.pathStart[p + 1]!; j++) nodes.push(ids[r.nodes[j]!]!)
      ps.push({ nodes, cost: r.costs[p]! })
    }
    out.set(ids[t]!, ps)
  }
  return out
}

/**
 * The task: k shortest loop-free paths from `source` to every node.
 * @throws RangeError on a bad k or source index.
 */
export function runPathsTask (task: PathsTask): PathsResult {
  const t0 = performance.now()
  if (!Number.isInteger(task.source) || task.source < 0 || task.source >= task.graph.ids.length) {
    throw new RangeError(`paths task: source index ${String(task.source)} out of range`)
  }
  const all = new KShortestPathsEngine(task.graph).toAll(task.source, task.k)
  return encodePathsResult(all, performance.now() - t0)
}
