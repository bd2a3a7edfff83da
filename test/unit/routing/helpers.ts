/**
 * Shared helpers of the routing tests: random graphs, brute-force path
 * enumeration, a seeded PRNG.
 */
import fc from 'fast-check'
import { sign, type KeyObject } from 'node:crypto'
import { Packr } from 'msgpackr'
import { decodeLsa, LSA_SIGN_CONTEXT, type Lsa } from '../../../src/routing/lsa.js'
import { createGraph, setEdge, type Graph, type ReadonlyGraph } from '../../../src/routing/graph.js'

/** mulberry32: a tiny seeded PRNG, uniform in [0, 1). */
export function prng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

export const LETTERS = 'abcdefghijklmnopqrstuvwxyz'.split('')

export interface SmallGraph { graph: Graph; ids: string[] }

/**
 * fast-check arbitrary of small directed graphs: 2..maxNodes nodes named
 * a, b, c…, each possible edge present with some probability, integer costs
 * 1..maxCost (small costs give many equal-cost ties, the hard case).
 */
export function arbSmallGraph (maxNodes = 7, maxCost = 4): fc.Arbitrary<SmallGraph> {
  return fc.integer({ min: 2, max: maxNodes }).chain((n) => {
    const pairs: Array<[number, number]> = []
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) if (i !== j) pairs.push([i, j])
    return fc.array(fc.option(fc.integer({ min: 1, max: maxCost }), { freq: 2 }), { minLength: pairs.length, maxLength: pairs.length })
      .map((costs) => {
        const ids = LETTERS.slice(0, n)
        const graph = createGraph()
        for (const id of ids) graph.set(id, new Map())
        costs.forEach((c, i) => { if (c !== null) setEdge(graph, ids[pairs[i]![0]]!, ids[pairs[i]![1]]!, c) })
        return { graph, ids }
      })
  })
}

/** Every simple path s → t with its cost (DFS; for small graphs only). */
export function allSimplePaths (g: ReadonlyGraph, s: string, t: string,
  removedNodes: ReadonlySet<string> = new Set(), removedEdges: ReadonlySet<string> = new Set()): Array<{ nodes: string[], cost: number }> {
  const out: Array<{ nodes: string[], cost: number }> = []
  const path = [s]
  const onPath = new Set([s])
  const walk = (u: string, cost: number): void => {
    if (u === t) { out.push({ nodes: [...path], cost }); return }
    for (const [v, w] of g.get(u) ?? []) {
      if (onPath.has(v) || removedNodes.has(v) || removedEdges.has(`${u}>${v}`)) continue
      path.push(v); onPath.add(v)
      walk(v, cost + w)
      path.pop(); onPath.delete(v)
    }
  }
  if (s === t) return []
  walk(s, 0)
  return out
}

/** A random connected undirected mesh: a ring plus random chords, each direction its own integer cost. */
export function randomMesh (n: number, avgDegree: number, seed: number, maxCost = 100, ids?: string[]): { graph: Graph, ids: string[] } {
  const rnd = prng(seed)
  const names = ids ?? Array.from({ length: n }, (_, i) => `n${String(i).padStart(4, '0')}`)
  const graph = createGraph()
  const cost = (): number => 1 + Math.floor(rnd() * maxCost)
  let links = 0
  for (let i = 0; i < n; i++) {
    setEdge(graph, names[i]!, names[(i + 1) % n]!, cost())
    setEdge(graph, names[(i + 1) % n]!, names[i]!, cost())
    links++
  }
  while (links < (n * avgDegree) / 2) {
    const a = Math.floor(rnd() * n)
    const b = Math.floor(rnd() * n)
    if (a === b || graph.get(names[a]!)!.has(names[b]!)) continue
    setEdge(graph, names[a]!, names[b]!, cost())
    setEdge(graph, names[b]!, names[a]!, cost())
    links++
  }
  return { graph, ids: names }
}

/**
 * An LSA that claims `origin` but is signed by `signer` (what a hostile node
 * could flood): decodes fine, must fail verification.
 */
export function forgeLsa (origin: string, signer: { privateKey: KeyObject }, seq: number, links: Array<[string, number]>): Lsa {
  const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false, structuredClone: false, variableMapSize: true })
  const body = new Uint8Array(packr.pack([1, origin, seq, links]))
  const sig = new Uint8Array(sign(null, Buffer.concat([LSA_SIGN_CONTEXT, body]), signer.privateKey))
  return decodeLsa(new Uint8Array(packr.pack([1, body, sig, 0])))
}
