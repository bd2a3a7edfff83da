import { describe, it, expect } from 'vitest'
import fc from 'fast-check'
import {
  compactGraph, createGraph, deleteLink, edgeCount, indexOf, nodeIds, pathCost, setEdge, setLink,
} from '../../../src/routing/graph.js'
import { dijkstra, ShortestPathSearch } from '../../../src/routing/dijkstra.js'
import { KShortestPathsEngine, kShortestPaths, kShortestToAll } from '../../../src/routing/yen.js'
import { MinHeap } from '../../../src/routing/min-heap.js'
import { allSimplePaths, arbSmallGraph, prng, randomMesh } from './helpers.js'

describe('graph', () => {
  it('builds a CSR with sorted ids, sorted rows and a matching reverse', () => {
    const g = createGraph()
    setEdge(g, 'c', 'a', 2)
    setEdge(g, 'a', 'c', 4)
    setEdge(g, 'a', 'b', 1)
    setEdge(g, 'b', 'c', 1)
    const cg = compactGraph(g)
    expect(cg.ids).toEqual(['a', 'b', 'c'])
    expect([...cg.offsets]).toEqual([0, 2, 3, 4])
    expect([...cg.targets]).toEqual([1, 2, 2, 0])
    expect([...cg.costs]).toEqual([1, 4, 1, 2])
    // into a: from c; into b: from a; into c: from a, b
    expect([...cg.roffsets]).toEqual([0, 1, 2, 4])
    expect([...cg.rsources]).toEqual([2, 0, 0, 1])
    expect([...cg.rcosts]).toEqual([2, 1, 4, 1])
    expect(indexOf(cg, 'b')).toBe(1)
    expect(indexOf(cg, 'zz')).toBe(-1)
    expect(edgeCount(g)).toBe(4)
    expect(pathCost(g, ['a', 'b', 'c', 'a'])).toBe(4)
    expect(pathCost(g, ['b', 'a'])).toBeUndefined()
  })

  it('rejects bad costs and self-loops', () => {
    const g = createGraph()
    for (const c of [0, -1, NaN, Infinity]) expect(() => { setEdge(g, 'a', 'b', c) }).toThrow(RangeError)
    expect(() => { setEdge(g, 'a', 'a', 1) }).toThrow(/self-loop/)
    g.set('x', new Map([['y', 0]]))
    expect(() => compactGraph(g)).toThrow(/cost/)
  })

  it('setLink / deleteLink touch both directions; nodeIds includes sink-only nodes', () => {
    const g = createGraph()
    setLink(g, 'a', 'b', 3, 5)
    expect(g.get('a')!.get('b')).toBe(3)
    expect(g.get('b')!.get('a')).toBe(5)
    deleteLink(g, 'a', 'b')
    expect(edgeCount(g)).toBe(0)
    const h = new Map([['z', new Map([['q', 1]])]])
    expect(nodeIds(h)).toEqual(['q', 'z'])
  })
})

describe('MinHeap', () => {
  it('pops in (key, node) order and grows', () => {
    const h = new MinHeap(4)
    const rnd = prng(7)
    const items: Array<[number, number]> = []
    for (let i = 0; i < 200; i++) {
      const e: [number, number] = [Math.floor(rnd() * 10), Math.floor(rnd() * 50)]
      items.push(e)
      h.push(e[0], e[1])
    }
    items.sort((a, b) => a[0] - b[0] || a[1] - b[1])
    const got: Array<[number, number]> = []
    while (h.size > 0) { const n = h.pop(); got.push([h.lastKey, n]) }
    expect(got).toEqual(items)
    expect(h.peekKey()).toBe(Infinity)
  })
})

const removedArb = (ids: string[]): fc.Arbitrary<{ nodes: string[], edges: Array<[string, string]> }> =>
  fc.record({
    nodes: fc.subarray(ids, { maxLength: 2 }),
    edges: fc.array(fc.tuple(fc.constantFrom(...ids), fc.constantFrom(...ids)), { maxLength: 3 }),
  })

describe('dijkstra (property: against brute force)', () => {
  it('distances are the cheapest simple path, paths are valid and canonical', () => {
    fc.assert(fc.property(arbSmallGraph(7, 3), ({ graph, ids }) => {
      const s = ids[0]!
      const sp = dijkstra(graph, s)
      for (const t of ids) {
        if (t === s) { expect(sp.distanceTo(s)).toBe(0); continue }
        const all = allSimplePaths(graph, s, t)
        const best = Math.min(...all.map((p) => p.cost))
        expect(sp.distanceTo(t)).toBe(best) // Infinity when none
        const p = sp.pathTo(t)
        if (all.length === 0) { expect(p).toBeUndefined(); expect(sp.nextHop(t)).toBeUndefined(); continue }
        expect(p!.nodes[0]).toBe(s)
        expect(p!.nodes.at(-1)).toBe(t)
        expect(pathCost(graph, p!.nodes)).toBe(best)
        expect(sp.nextHop(t)).toBe(p!.nodes[1])
        // Canonical: each step back takes the smallest tight predecessor.
        for (let i = p!.nodes.length - 1; i > 0; i--) {
          const v = p!.nodes[i]!
          const tight = ids.filter((u) => graph.get(u)?.has(v) === true && sp.distanceTo(u) + graph.get(u)!.get(v)! === sp.distanceTo(v))
          expect(p!.nodes[i - 1]).toBe(tight.sort()[0])
        }
      }
    }), { numRuns: 300 })
  })

  it('honours removed nodes and edges', () => {
    fc.assert(fc.property(arbSmallGraph(6, 3).chain((g) => removedArb(g.ids).map((r) => ({ ...g, r }))), ({ graph, ids, r }) => {
      const s = ids[0]!
      const rn = new Set(r.nodes.filter((x) => x !== s))
      const re = new Set(r.edges.map(([a, b]) => `${a}>${b}`))
      const sp = dijkstra(graph, s, { removedNodes: r.nodes, removedEdges: r.edges })
      for (const t of ids) {
        if (t === s) continue
        const all = rn.has(t) ? [] : allSimplePaths(graph, s, t, rn, re)
        expect(sp.distanceTo(t)).toBe(Math.min(...all.map((p) => p.cost)))
        const p = sp.pathTo(t)
        if (p !== undefined) {
          expect(p.nodes.some((x) => rn.has(x))).toBe(false)
          for (let i = 0; i + 1 < p.nodes.length; i++) expect(re.has(`${p.nodes[i]!}>${p.nodes[i + 1]!}`)).toBe(false)
        }
      }
    }), { numRuns: 200 })
  })

  it('an early exit at a target gives the same path to it', () => {
    fc.assert(fc.property(arbSmallGraph(7, 3), ({ graph, ids }) => {
      const full = dijkstra(graph, ids[0]!)
      for (const t of ids.slice(1)) {
        const early = dijkstra(graph, ids[0]!, { target: t })
        expect(early.pathTo(t)).toEqual(full.pathTo(t))
      }
    }), { numRuns: 100 })
  })

  it('the reverse search gives costs TO the root and next hops toward it', () => {
    fc.assert(fc.property(arbSmallGraph(6, 3), ({ graph, ids }) => {
      const cg = compactGraph(graph)
      const t = ids.at(-1)!
      const search = new ShortestPathSearch(cg)
      search.run(indexOf(cg, t), { reverse: true })
      for (const v of ids) {
        const d = v === t ? 0 : Math.min(...allSimplePaths(graph, v, t).map((p) => p.cost))
        expect(search.dist[indexOf(cg, v)]).toBe(d)
        const p = search.pathIndices(indexOf(cg, v))
        if (d !== Infinity) {
          const nodes = p!.map((i) => cg.ids[i]!)
          expect(nodes[0]).toBe(v)
          expect(nodes.at(-1)).toBe(t)
          expect(pathCost(graph, nodes)).toBe(d)
        }
      }
    }), { numRuns: 150 })
  })

  it('throws on an unknown source', () => {
    expect(() => dijkstra(createGraph(), 'x')).toThrow(RangeError)
  })
})

describe('yen (property: against brute force)', () => {
  it('returns the k cheapest simple paths, ordered, distinct, loop-free, with true costs', () => {
    fc.assert(fc.property(arbSmallGraph(7, 3), fc.integer({ min: 1, max: 8 }), ({ graph, ids }, k) => {
      const s = ids[0]!
      for (const t of ids.slice(1)) {
        const all = allSimplePaths(graph, s, t).map((p) => p.cost).sort((a, b) => a - b)
        const got = kShortestPaths(graph, s, t, k)
        expect(got.length).toBe(Math.min(k, all.length))
        expect(got.map((p) => p.cost)).toEqual(all.slice(0, k))
        const keys = new Set<string>()
        for (const p of got) {
          expect(p.nodes[0]).toBe(s)
          expect(p.nodes.at(-1)).toBe(t)
          expect(new Set(p.nodes).size).toBe(p.nodes.length) // loop-free
          expect(pathCost(graph, p.nodes)).toBe(p.cost)
          keys.add(p.nodes.join())
        }
        expect(keys.size).toBe(got.length) // distinct
        for (let i = 1; i < got.length; i++) expect(got[i]!.cost).toBeGreaterThanOrEqual(got[i - 1]!.cost)
      }
    }), { numRuns: Number(process.env['ROUTING_FC_RUNS'] ?? 250) })
  })

  it('the first path is the canonical dijkstra path', () => {
    fc.assert(fc.property(arbSmallGraph(7, 3), ({ graph, ids }) => {
      const sp = dijkstra(graph, ids[0]!)
      for (const t of ids.slice(1)) {
        expect(kShortestPaths(graph, ids[0]!, t, 3)[0]?.nodes).toEqual(sp.pathTo(t)?.nodes)
      }
    }), { numRuns: 100 })
  })

  it('kShortestToAll equals kShortestPaths per destination (and is deterministic)', () => {
    fc.assert(fc.property(arbSmallGraph(7, 3), fc.integer({ min: 1, max: 4 }), ({ graph, ids }, k) => {
      const all = kShortestToAll(graph, ids[0]!, k)
      for (const t of ids.slice(1)) {
        const one = kShortestPaths(graph, ids[0]!, t, k)
        expect(all.get(t) ?? []).toEqual(one)
      }
      expect(all.has(ids[0]!)).toBe(false)
      // Insertion order of the map must not matter.
      const shuffled = new Map([...graph].reverse().map(([u, out]) => [u, new Map([...out].reverse())]))
      expect(kShortestToAll(shuffled, ids[0]!, k)).toEqual(all)
    }), { numRuns: 100 })
  })

  it('on a larger mesh, agrees with brute force on costs (random targets)', () => {
    const { graph, ids } = randomMesh(24, 3, 11, 5)
    const all = kShortestToAll(graph, ids[0]!, 4)
    for (const t of [ids[7]!, ids[12]!, ids[19]!]) {
      const brute = allSimplePaths(graph, ids[0]!, t).map((p) => p.cost).sort((a, b) => a - b).slice(0, 4)
      expect(all.get(t)!.map((p) => p.cost)).toEqual(brute)
    }
  })

  it('rejects a bad k and an unknown source; unreachable targets are absent', () => {
    const g = createGraph()
    setEdge(g, 'a', 'b', 1)
    expect(() => kShortestPaths(g, 'a', 'b', 0)).toThrow(RangeError)
    expect(() => kShortestToAll(g, 'a', 1.5)).toThrow(RangeError)
    expect(() => kShortestToAll(g, 'zz', 1)).toThrow(RangeError)
    expect(kShortestPaths(g, 'b', 'a', 3)).toEqual([])
    expect(kShortestPaths(g, 'a', 'nope', 3)).toEqual([])
    expect(kShortestPaths(g, 'a', 'a', 3)).toEqual([])
    expect([...kShortestToAll(g, 'b', 2).keys()]).toEqual([])
  })

  it('the engine does the 1,000-node k=3 all-destinations job with bounded work', () => {
    const { graph } = randomMesh(1000, 8, 42)
    const cg = compactGraph(graph)
    const eng = new KShortestPathsEngine(cg)
    const res = eng.toAll(0, 3)
    expect(res.filter((r) => r.length === 3).length).toBe(999)
    // Work, not time (timing is perf/'s job): an all-pairs approach settles ~1.3M nodes.
    expect(eng.spurSettled + eng.reverseSettled).toBeLessThan(500_000)
  })
})
