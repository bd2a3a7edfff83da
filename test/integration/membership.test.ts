import { describe, it, expect, afterEach } from 'vitest'
import { makeMesh, closeAll, until, waitFor } from '../helpers/mesh.js'

afterEach(closeAll)

const FAST = { heartbeat: { intervalMs: 100, missesUnhealthy: 2, missesDead: 6 } }
const healthyPeers = (m: any): string[] => m.peers().filter((p: any) => p.state === 'healthy').map((p: any) => p.id).sort()

describe('membership (SWIM over the existing links)', () => {
  it('discovery: in a chain a—b—c, a learns c by gossip and links with it', async () => {
    const [a, b, c] = [await makeMesh(FAST), await makeMesh(FAST), await makeMesh(FAST)]
    await a.connect(b.addresses[0] as string)
    await b.connect(c.addresses[0] as string)
    await until(() => healthyPeers(a).includes(c.id) && healthyPeers(c).includes(a.id), { timeoutMs: 5000, label: 'a and c linked by discovery' })
    // A state, not an instant: under full-suite load one late heartbeat (2 × 100 ms) briefly makes a link unhealthy.
    await until(() => a.status().members === 2 && a.status().state === 'healthy', { timeoutMs: 3000, label: 'a counts 2 members, all healthy' })
    expect(a.status()).toMatchObject({ state: 'healthy', members: 2, reachable: 2, unreachable: 0 })
  })

  it('a dial-only node is a member too: it learns the others by gossip and dials them itself', async () => {
    const [hub, other] = [await makeMesh(FAST), await makeMesh(FAST)]
    await other.connect(hub.addresses[0] as string)
    const leaf = await makeMesh({ ...FAST, listen: false })
    await leaf.connect(hub.addresses[0] as string)
    await until(() => other.status().members === 2, { timeoutMs: 5000, label: 'other knows hub and leaf' })
    // Nobody can dial the leaf (it has no address); the leaf dials `other`, so `other` sees it inbound.
    await until(() => healthyPeers(leaf).length === 2, { timeoutMs: 5000, label: 'leaf linked to both' })
    await until(() => other.peers().some((p) => p.id === leaf.id && p.state === 'healthy'), { timeoutMs: 5000, label: 'other sees the leaf' })
    expect(other.peers().find((p) => p.id === leaf.id)?.direction).toBe('inbound')
    expect(leaf.addresses).toEqual([])
  })

  it('10 nodes in a chain converge to a full mesh; a crashed member is agreed down by all within 3 s', async () => {
    const nodes: Array<Awaited<ReturnType<typeof makeMesh>>> = []
    for (let i = 0; i < 10; i++) nodes.push(await makeMesh(FAST))
    for (let i = 0; i < 9; i++) await nodes[i]!.connect(nodes[i + 1]!.addresses[0] as string)
    await until(() => nodes.every((n) => healthyPeers(n).length === 9), { timeoutMs: 15_000, label: 'every node linked to the 9 others' })
    await until(() => nodes.every((n) => n.status().members === 9), { timeoutMs: 5000, label: 'every node counts 9 members' })
    const victim = nodes[4]!
    const others = nodes.filter((n) => n !== victim)
    const downs = others.map(async (n) => await waitFor(n, 'peer:down', { filter: (p: any) => p.id === victim.id, timeoutMs: 5000 }))
    const t0 = performance.now()
    await victim.destroy() // immediate: no leave announcement, like a crash from the others' view
    await Promise.all(downs)
    expect(performance.now() - t0).toBeLessThan(3000)
    // Everyone converges on the same view: 9 members, exactly the victim unreachable. (A CPU-starved
    // node may briefly suspect another member too; SWIM refutes that, so wait for agreement.)
    await until(() => others.every((n) => n.status().state === 'degraded' && n.status().unreachable === 1 && n.status().members === 9),
      { timeoutMs: 10_000, label: 'everyone sees the mesh degraded by exactly the victim' })
  }, 60_000)

  it('a member that closes gracefully leaves: the mesh stays healthy', async () => {
    const [a, b, c] = [await makeMesh(FAST), await makeMesh(FAST), await makeMesh(FAST)]
    await a.connect(b.addresses[0] as string)
    await a.connect(c.addresses[0] as string)
    await until(() => a.status().members === 2 && b.status().members === 2, { timeoutMs: 5000, label: 'members known' })
    await c.close()
    await until(() => a.status().members === 1, { timeoutMs: 5000, label: 'c left' })
    expect(a.status()).toMatchObject({ state: 'healthy', unreachable: 0 })
  })
})
