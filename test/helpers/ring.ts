// A ring of `n` nodes (i → i + 1) whose 2 → 3 link runs through a TCP proxy,
// so that one link can be cut alone (both ends see the close). Shared by the
// routing and forwarding-faults tests.
import type { Mesh } from '../../dist/src/index.js'
import { makeMesh } from './mesh.js'
import { tcpProxy } from './tcp-proxy.js'

export interface ProxiedRing {
  nodes: Mesh[]
  ids: string[]
  proxy: { url: string; cut: () => void }
  /** Hops from node i to node j, with the 2 — 3 link up or cut (then the ring is the line 3 4 5 … 0 1 2). */
  distance: (i: number, j: number, cut: boolean) => number
}

export async function proxiedRing (n: number, maxHops: number): Promise<ProxiedRing> {
  // maxPeers 1: once linked, a node dials no gossip-learned member, so the ring
  // stays a ring (explicit connect() is not capped by maxPeers).
  const nodes: Mesh[] = []
  for (let i = 0; i < n; i++) nodes.push(await makeMesh({ maxPeers: 1, routing: { maxHops } }))
  const proxy = await tcpProxy(Number(new URL(nodes[3]!.addresses[0]!).port))
  await Promise.all(nodes.map(async (m, i) => { await m.connect(i === 2 ? proxy.url : nodes[(i + 1) % n]!.addresses[0]!) }))
  const distance = (i: number, j: number, cut: boolean): number => {
    if (!cut) return Math.min(Math.abs(i - j), n - Math.abs(i - j))
    const pos = (x: number): number => (x - 3 + n) % n
    return Math.abs(pos(i) - pos(j))
  }
  return { nodes, ids: nodes.map((m) => m.id), proxy, distance }
}
