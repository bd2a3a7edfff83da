/**
 * The routing graph: directed, weighted, keyed by peer id.
 *
 * Two forms:
 * - {@link Graph}, an adjacency map (`from → to → cost`), the form callers
 *   build and edit (from the link-state database, in tests);
 * - {@link CompactGraph}, a frozen compressed-sparse-row (CSR) copy with
 *   integer node indices, forward and reverse, the form the path algorithms
 *   run on. Node indices follow the sorted order of the ids, never insertion
 *   order, so index comparisons are id comparisons and every node that holds
 *   the same edges computes the same paths (DESIGN.md §3, routing).
 *
 * ```
 *  ids      = [a, b, c]                      (sorted)
 *  offsets  = [0, 2, 3, 3]                   (node i's edges: offsets[i] .. offsets[i+1]-1)
 *  targets  = [1, 2, 2]                      a→b, a→c, b→c   (sorted by target per node)
 *  costs    = [1, 4, 1]
 * ```
 *
 * Costs are finite and > 0: Dijkstra needs non-negative weights, and a zero
 * cost would make equal-cost ties cyclic (two nodes each the other's parent).
 *
 * @module
 */

/** A directed weighted graph: `graph.get(from)?.get(to)` is the cost of the edge from → to. */
export type Graph = Map<string, Map<string, number>>

/** Read-only view of a {@link Graph}; every function here accepts it. */
export type ReadonlyGraph = ReadonlyMap<string, ReadonlyMap<string, number>>

/** A path through the graph with its total cost (the left-to-right sum of its edge costs). */
export interface Path {
  /** Peer ids from source to target, both included; loop-free. */
  readonly nodes: readonly string[]
  readonly cost: number
}

/** True when `c` can be an edge cost: a finite number > 0. */
export function isValidCost (c: unknown): c is number {
  return typeof c === 'number' && Number.isFinite(c) && c > 0
}

/** A new empty graph. */
export function createGraph (): Graph {
  return new Map()
}

/**
 * Set the cost of the directed edge from → to (creating both nodes).
 * @throws RangeError when `cost` is not finite and > 0, or from === to.
 */
export function setEdge (g: Graph, from: string, to: string, cost: number): void {
  if (!isValidCost(cost)) throw new RangeError(`edge ${from} → ${to}: cost must be a finite number > 0 (got ${String(cost)})`)
  if (from === to) throw new RangeError(`edge ${from} → ${to}: self-loops are not allowed`)
  let out = g.get(from)
  if (out === undefined) { out = new Map(); g.set(from, out) }
  out.set(to, cost)
  if (!g.has(to)) g.set(to, new Map())
}

/** Set both directed edges a → b and b → a (cost `ab`, and `ba` which defaults to `ab`). */
export function setLink (g: Graph, a: string, b: string, ab: number, ba = ab): void {
  setEdge(g, a, b, ab)
  setEdge(g, b, a, ba)
}

/** Remove the directed edge from → to, if present (nodes stay). */
export function deleteEdge (g: Graph, from: string, to: string): void {
  g.get(from)?.delete(to)
}

/** Remove both directions of a link a — b, if present. */
export function deleteLink (g: Graph, a: string, b: string): void {
  deleteEdge(g, a, b)
  deleteEdge(g, b, a)
}

/** Every node id: sources and edge targets, sorted. */
export function nodeIds (g: ReadonlyGraph): string[] {
  const s = new Set<string>()
  for (const [from, out] of g) {
    s.add(from)
    for (const to of out.keys()) s.add(to)
  }
  return [...s].sort(compareIds)
}

/** Number of directed edges. */
export function edgeCount (g: ReadonlyGraph): number {
  let n = 0
  for (const out of g.values()) n += out.size
  return n
}

/** The cost of a path through `g` (left-to-right sum), or undefined when an edge is missing. */
export function pathCost (g: ReadonlyGraph, nodes: readonly string[]): number | undefined {
  let c = 0
  for (let i = 0; i + 1 < nodes.length; i++) {
    const w = g.get(nodes[i]!)?.get(nodes[i + 1]!)
    if (w === undefined) return undefined
    c += w
  }
  return c
}

/** Plain code-unit order of ids (not locale order): the same on every node. */
export function compareIds (a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

/**
 * CSR form of a graph, with node `i` = `ids[i]` (ids sorted). Plain data:
 * structured-cloneable, and its typed arrays are transferable, so it is also
 * what goes to a pool worker.
 */
export interface CompactGraph {
  readonly ids: readonly string[]
  /** Forward edges of node i: `targets/costs[offsets[i] .. offsets[i+1])`, sorted by target. Length n + 1. */
  readonly offsets: Int32Array
  readonly targets: Int32Array
  readonly costs: Float64Array
  /** Reverse edges (into node i): `rsources/rcosts[roffsets[i] .. roffsets[i+1])`, sorted by source. */
  readonly roffsets: Int32Array
  readonly rsources: Int32Array
  readonly rcosts: Float64Array
}

/**
 * Build the {@link CompactGraph} of `g`.
 * @throws RangeError when an edge cost is not finite and > 0, or an edge is a self-loop.
 */
export function compactGraph (g: ReadonlyGraph): CompactGraph {
  const ids = nodeIds(g)
  const index = new Map<string, number>()
  for (let i = 0; i < ids.length; i++) index.set(ids[i]!, i)
  const n = ids.length
  const m = edgeCount(g)
  const offsets = new Int32Array(n + 1)
  const targets = new Int32Array(m)
  const costs = new Float64Array(m)
  const indeg = new Int32Array(n + 1)
  let e = 0
  for (let i = 0; i < n; i++) {
    offsets[i] = e
    const out = g.get(ids[i]!)
    if (out === undefined) continue
    const row = [...out].map(([to, c]) => {
      if (!isValidCost(c)) throw new RangeError(`edge ${ids[i]!} → ${to}: cost must be a finite number > 0 (got ${String(c)})`)
      if (to === ids[i]) throw new RangeError(`edge ${to} → ${to}: self-loops are not allowed`)
      return [index.get(to)!, c] as const
    }).sort((x, y) => x[0] - y[0])
    for (const [t, c] of row) {
      targets[e] = t
      costs[e] = c
      indeg[t + 1]!++
      e++
    }
  }
  offsets[n] = e
  // Reverse CSR by counting sort on the target; scanning sources in index
  // order keeps each reverse row sorted by source.
  const roffsets = new Int32Array(n + 1)
  for (let i = 0; i < n; i++) roffsets[i + 1] = roffsets[i]! + indeg[i + 1]!
  const fill = roffsets.slice(0, n)
  const rsources = new Int32Array(m)
  const rcosts = new Float64Array(m)
  for (let u = 0; u < n; u++) {
    for (let j = offsets[u]!; j < offsets[u + 1]!; j++) {
      const v = targets[j]!
      const at = fill[v]!++
      rsources[at] = u
      rcosts[at] = costs[j]!
    }
  }
  return { ids, offsets, targets, costs, roffsets, rsources, rcosts }
}

/** Index of `id` in `cg.ids` by binary search (ids are sorted), or -1. */
export function indexOf (cg: CompactGraph, id: string): number {
  let lo = 0
  let hi = cg.ids.length - 1
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1
    const v = cg.ids[mid]!
    if (v === id) return mid
    if (v < id) lo = mid + 1
    else hi = mid - 1
  }
  return -1
}
