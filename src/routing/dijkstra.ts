/**
 * Single-source shortest paths (Dijkstra, binary heap) on a
 * {@link CompactGraph}, forward or reverse, with optional removed nodes and
 * edges (Yen's spur searches need both).
 *
 * Tie-break, and why it makes the result canonical: among the predecessors
 * `u` of `v` that are *tight* (`dist[u] + w(u, v) === dist[v]`) the parent is
 * the one with the smallest index, i.e. the smallest peer id. Costs are > 0,
 * so every tight predecessor is settled before `v` and has relaxed `v` by
 * then; the rule therefore picks the same parent whatever order the heap
 * pops equal keys in. The tree is a function of the graph and the source
 * only, so two nodes holding the same link-state database build the same
 * trees. Forwarding on such trees cannot loop once the databases agree:
 * with costs > 0, each next hop is strictly closer to the destination.
 * Run in reverse from a destination `t`, `parent[v]` is `v`'s next hop
 * toward `t` (the in-tree of `t`).
 *
 * @module
 */
import { compactGraph, indexOf, type CompactGraph, type Path, type ReadonlyGraph } from './graph.js'
import { MinHeap } from './min-heap.js'

/** Options of one {@link ShortestPathSearch.run}. */
export interface SearchOptions {
  /**
   * Search the reverse graph: `dist[v]` is then the cost from `v` TO the
   * source, and `parent[v]` is `v`'s next hop toward it. @default false
   */
  reverse?: boolean
  /** Stop once this node index is settled (its dist and path are final; others may not be). */
  target?: number
  /** `blockedNodes[i] !== 0` removes node i (a blocked source still starts the search). */
  blockedNodes?: Uint8Array
  /** CSR edge positions removed (in `targets` forward, in `rsources` when reverse). */
  blockedEdges?: ReadonlySet<number>
}

/**
 * Reusable Dijkstra over one {@link CompactGraph}: the buffers are allocated
 * once, so running from many sources costs no allocation.
 */
export class ShortestPathSearch {
  readonly graph: CompactGraph
  /** After {@link run}: cost from the source (to it, when reverse); Infinity if unreached. */
  readonly dist: Float64Array
  /** After {@link run}: the parent (next hop when reverse) of each node; -1 for the source and unreached nodes. */
  readonly parent: Int32Array
  /** After {@link run}: how many nodes were settled (a measure of work). */
  settledCount = 0
  readonly #done: Uint8Array
  readonly #heap: MinHeap

  constructor (graph: CompactGraph) {
    const n = graph.ids.length
    this.graph = graph
    this.dist = new Float64Array(n)
    this.parent = new Int32Array(n)
    this.#done = new Uint8Array(n)
    this.#heap = new MinHeap(Math.max(16, graph.targets.length + 1))
  }

  /** Compute the shortest-path tree rooted at node index `source`. */
  run (source: number, opts: SearchOptions = {}): void {
    const { dist, parent } = this
    const done = this.#done
    const heap = this.#heap
    const g = this.graph
    const reverse = opts.reverse === true
    const offsets = reverse ? g.roffsets : g.offsets
    const adj = reverse ? g.rsources : g.targets
    const costs = reverse ? g.rcosts : g.costs
    const blockedNodes = opts.blockedNodes
    const blockedEdges = opts.blockedEdges
    const target = opts.target ?? -1
    this.#lastReverse = reverse
    dist.fill(Infinity)
    parent.fill(-1)
    done.fill(0)
    heap.clear()
    let settled = 0
    dist[source] = 0
    heap.push(0, source)
    while (heap.size > 0) {
      const u = heap.pop()
      if (done[u] !== 0) continue // stale entry (lazy deletion)
      done[u] = 1
      settled++
      if (u === target) break
      const du = dist[u]!
      for (let j = offsets[u]!, end = offsets[u + 1]!; j < end; j++) {
        const v = adj[j]!
        if (done[v] !== 0) continue
        if (blockedNodes !== undefined && blockedNodes[v] !== 0) continue
        if (blockedEdges !== undefined && blockedEdges.has(j)) continue
        const nd = du + costs[j]!
        const dv = dist[v]!
        if (nd < dv) {
          dist[v] = nd
          parent[v] = u
          heap.push(nd, v)
        } else if (nd === dv && u < parent[v]!) {
          parent[v] = u // canonical tie-break: smallest tight predecessor
        }
      }
    }
    this.settledCount = settled
  }

  /**
   * The node indices from the source to `v` (forward run), or from `v` to
   * the source (reverse run); undefined when `v` was not reached.
   */
  pathIndices (v: number): number[] | undefined {
    if (this.dist[v] === Infinity) return undefined
    const out: number[] = []
    for (let x = v; x !== -1; x = this.parent[x]!) out.push(x)
    return this.#reverseRun() ? out : out.reverse()
  }

  #lastReverse = false
  #reverseRun (): boolean { return this.#lastReverse }
}

/** Options of {@link dijkstra}. */
export interface DijkstraOptions {
  /** Nodes to leave out of the search (the source itself is never left out). */
  removedNodes?: Iterable<string>
  /** Directed edges [from, to] to leave out. */
  removedEdges?: Iterable<readonly [string, string]>
  /** Stop once this node is settled: only its distance and path are then final. */
  target?: string
}

/** Result of {@link dijkstra}, keyed by peer id. */
export interface ShortestPaths {
  readonly source: string
  /** Cost of the shortest path source → `id`; Infinity when unreachable or unknown. */
  distanceTo (id: string): number
  /** The shortest path source → `id` (canonical among ties, see the module doc); undefined when unreachable. */
  pathTo (id: string): Path | undefined
  /** The first hop on {@link pathTo}; undefined for the source itself and for unreachable nodes. */
  nextHop (id: string): string | undefined
  /** Every node reached, the source included, with its distance. */
  distances (): Map<string, number>
}

/**
 * Shortest paths from `source` over `graph` (a {@link ReadonlyGraph}, or a
 * {@link CompactGraph} to skip the conversion when searching repeatedly).
 * Deterministic: ties between equal-cost paths go to the smallest peer id at
 * each step back from the destination.
 * @throws RangeError when `source` is not a node of the graph, or a cost is invalid.
 */
export function dijkstra (graph: ReadonlyGraph | CompactGraph, source: string, opts: DijkstraOptions = {}): ShortestPaths {
  const cg = isCompact(graph) ? graph : compactGraph(graph)
  const s = indexOf(cg, source)
  if (s < 0) throw new RangeError(`dijkstra: source ${source} is not a node of the graph`)
  const n = cg.ids.length
  let blockedNodes: Uint8Array | undefined
  if (opts.removedNodes !== undefined) {
    blockedNodes = new Uint8Array(n)
    for (const id of opts.removedNodes) {
      const i = indexOf(cg, id)
      if (i >= 0 && i !== s) blockedNodes[i] = 1
    }
  }
  let blockedEdges: Set<number> | undefined
  if (opts.removedEdges !== undefined) {
    blockedEdges = new Set()
    for (const [from, to] of opts.removedEdges) {
      const u = indexOf(cg, from)
      const v = indexOf(cg, to)
      if (u < 0 || v < 0) continue
      for (let j = cg.offsets[u]!; j < cg.offsets[u + 1]!; j++) if (cg.targets[j] === v) blockedEdges.add(j)
    }
  }
  const target = opts.target === undefined ? undefined : indexOf(cg, opts.target)
  const search = new ShortestPathSearch(cg)
  search.run(s, {
    ...(blockedNodes === undefined ? {} : { blockedNodes }),
    ...(blockedEdges === undefined ? {} : { blockedEdges }),
    ...(target === undefined || target < 0 ? {} : { target }),
  })
  const dist = search.dist.slice()
  const parent = search.parent.slice()
  // After an early exit only the target is final; hide the rest.
  const final = (i: number): boolean => i >= 0 && dist[i] !== Infinity && (target === undefined || i === target || i === s)
  const pathIdx = (i: number): number[] => {
    const out: number[] = []
    for (let x = i; x !== -1; x = parent[x]!) out.push(x)
    return out.reverse()
  }
  return {
    source,
    distanceTo: (id) => { const i = indexOf(cg, id); return final(i) ? dist[i]! : Infinity },
    pathTo: (id) => {
      const i = indexOf(cg, id)
      if (!final(i)) return undefined
      return { nodes: pathIdx(i).map((x) => cg.ids[x]!), cost: dist[i]! }
    },
    nextHop: (id) => {
      const i = indexOf(cg, id)
      if (!final(i) || i === s) return undefined
      return cg.ids[pathIdx(i)[1]!]
    },
    distances: () => {
      const m = new Map<string, number>()
      for (let i = 0; i < n; i++) if (final(i)) m.set(cg.ids[i]!, dist[i]!)
      return m
    },
  }
}

/** True when `g` is a {@link CompactGraph} rather than an adjacency map. */
export function isCompact (g: ReadonlyGraph | CompactGraph): g is CompactGraph {
  return !(g instanceof Map) && (g as CompactGraph).offsets instanceof Int32Array
}
