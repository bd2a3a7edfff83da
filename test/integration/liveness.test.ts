import { describe, it, expect, afterEach } from 'vitest'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Mesh } from '../../dist/src/index.js'
import { makeMesh, closeAll, waitFor, collect } from '../helpers/mesh.js'
import { spawnNode, killChildren, nextMessage, type ChildNode } from '../helpers/child-node.js'

const FAST = { heartbeat: { intervalMs: 100, missesUnhealthy: 2, missesDead: 6 } }

afterEach(async () => {
  await killChildren()
  await closeAll()
})

describe('liveness: heartbeats in the IO workers', () => {
  // One-way heartbeats (connection.ts ONE_WAY_HEARTBEAT): only the dialer
  // pings; the listener judges it by its pings and learns the RTT from them.
  // So each case runs from both ends: `a` dialing the child, and the child
  // dialing `a` (a bootstrap address), with `a` observing.
  const sides = [
    { side: 'a dials (a pings)', direction: 'outbound' },
    { side: 'the child dials (a only answers)', direction: 'inbound' },
  ] as const
  describe.each(sides)('$side', ({ direction }) => {
    /** `a` and a child node linked, `a` at `direction`. */
    async function linked (): Promise<{ a: Mesh; child: ChildNode }> {
      const a = await makeMesh(FAST)
      if (direction === 'outbound') {
        const child = await spawnNode(FAST)
        await a.connect(child.addresses[0] as string)
        return { a, child }
      }
      const up = waitFor(a, 'peer:up')
      const child = await spawnNode({ ...FAST, bootstrap: [a.addresses[0]] })
      expect((await up).id).toBe(child.id)
      return { a, child }
    }

    it('peers() reports heartbeat RTT once pings flow', async () => {
      const { a } = await linked()
      const deadline = Date.now() + 3000
      while (a.peers()[0]?.rttMs === undefined && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10))
      expect(a.peers()[0]?.direction).toBe(direction)
      expect(a.peers()[0]?.rttMs).toBeGreaterThan(0)
      expect(a.peers()[0]?.rttMs).toBeLessThan(1000)
    })

    it('SIGSTOP of the peer: unhealthy, then peer:down within intervalMs × missesDead + 300 ms (with margin for a loaded box)', async () => {
      const { a, child } = await linked()
      const health: string[] = []
      a.on('peer:health', (h) => { health.push(h.state) })
      const down = waitFor(a, 'peer:down', { timeoutMs: 5000 })
      const t0 = performance.now()
      child.proc.kill('SIGSTOP')
      const info = await down
      const elapsed = performance.now() - t0
      expect(info.id).toBe(child.id)
      expect(health).toEqual(['unhealthy', 'disconnected'])
      expect(elapsed).toBeGreaterThan(300) // not before two missed beats
      expect(elapsed).toBeLessThan(100 * 6 + 300 + 600)
    })

    it('SIGSTOP then SIGCONT within the window: no peer:down, back to healthy', async () => {
      const { a, child } = await linked()
      let downs = 0
      a.on('peer:down', () => { downs++ })
      const unhealthy = waitFor(a, 'peer:health', { filter: (h: any) => h.state === 'unhealthy', timeoutMs: 3000 })
      child.proc.kill('SIGSTOP')
      await unhealthy
      const healthy = waitFor(a, 'peer:health', { filter: (h: any) => h.state === 'healthy', timeoutMs: 3000 })
      child.proc.kill('SIGCONT')
      await healthy
      expect(downs).toBe(0)
      expect(a.peers()[0]?.state).toBe('healthy')
      // And the link still carries traffic.
      const got = nextMessage(child.proc, 'message')
      await a.send(child.id, 'still here')
      expect((await got).payload).toBe('still here')
    })
  })

  it('peers().rttMs follows the heartbeat samples of both ends: never 0, never an older sample again', async () => {
    // A ping timed from a deadline rounded up by the scheduler (its timer fired
    // early) measured 0 for a fast pong, and peers() then showed the RTT of an
    // old event instead: at a 10 ms beat, a few stale samples a second.
    const hb = { heartbeat: { intervalMs: 10, missesUnhealthy: 10, missesDead: 20 } }
    const a = await makeMesh(hb)
    const b = await makeMesh(hb)
    await b.connect(a.addresses[0] as string)
    const seen = { a: [] as number[], b: [] as number[] }
    const end = performance.now() + 1500
    while (performance.now() < end) {
      for (const [m, other, list] of [[a, b, seen.a], [b, a, seen.b]] as const) {
        const r = m.peers().find((p) => p.id === other.id)?.rttMs
        if (r !== undefined && r !== list.at(-1)) list.push(r)
      }
      await new Promise((resolve) => setTimeout(resolve, 1))
    }
    for (const list of [seen.a, seen.b]) {
      expect(list.length).toBeGreaterThan(20)
      expect(list.filter((r) => !(r > 0))).toEqual([])
    }
    // The dialer's own samples are ns-resolution floats, so distinct samples
    // rarely coincide (~2 % of runs see one pair among ~150 samples): a value
    // seen again is almost always a stale one shown again. The bug showed 25+
    // a run. (The listener's come in whole µs in the pings, where equal
    // samples are common.)
    const again = seen.b.filter((r, i) => seen.b.indexOf(r) !== i)
    expect(again.length, `samples seen again: ${again.join(', ')}`).toBeLessThanOrEqual(2)
  })

  it('kill -9 of a peer: peer:down promptly (the socket closes)', async () => {
    const child = await spawnNode(FAST)
    const a = await makeMesh(FAST)
    await a.connect(child.addresses[0] as string)
    const down = waitFor(a, 'peer:down', { timeoutMs: 3000 })
    const t0 = performance.now()
    child.proc.kill('SIGKILL')
    expect((await down).id).toBe(child.id)
    expect(performance.now() - t0).toBeLessThan(100 * 6 + 300)
  })

  it('a peer restarted at the same address with the same dataDir is re-linked by itself, same id', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'meshwork-restart-'))
    try {
      const first = await spawnNode({ ...FAST, dataDir: dir })
      const url = first.addresses[0] as string
      const a = await makeMesh({ ...FAST, reconnect: { initialDelayMs: 50, maxDelayMs: 500 } })
      await a.connect(url)
      const down = waitFor(a, 'peer:down', { timeoutMs: 3000 })
      first.proc.kill('SIGKILL')
      await down
      const up = waitFor(a, 'peer:up', { timeoutMs: 5000 })
      const second = await spawnNode({ ...FAST, dataDir: dir, listen: url })
      const info = await up
      const relinkMs = performance.now() - second.readyAt
      expect(second.id).toBe(first.id)
      expect(info.id).toBe(first.id)
      // Listener up → linked again within 1 s (backoff capped at 500 ms).
      expect(relinkMs).toBeLessThan(1000)
      // Messages flow again.
      const got = nextMessage(second.proc, 'message')
      await a.send(second.id, 'welcome back')
      expect((await got).payload).toBe('welcome back')
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('a host that blocks its main thread for 2 s is not declared dead, and gets what arrived meanwhile', async () => {
    const child = await spawnNode(FAST)
    const a = await makeMesh(FAST)
    await a.connect(child.addresses[0] as string)
    const changes: string[] = []
    a.on('peer:health', (h) => { changes.push(h.state) })
    let childSawDown = false
    child.proc.on('message', (m: any) => { if (m?.type === 'peer:down') childSawDown = true })
    child.proc.send({ type: 'block', ms: 2000 })
    // While the child's host spins, its IO worker keeps answering heartbeats; send it messages meanwhile.
    const echoes = collect(a, 20, 10_000)
    for (let i = 0; i < 20; i++) await a.send(child.id, { echo: true, i })
    await nextMessage(child.proc, 'unblocked', 5000)
    const got = await echoes
    expect(got.map((m) => m.payload.i)).toEqual([...Array(20).keys()])
    expect(changes).toEqual([])
    expect(childSawDown).toBe(false)
    expect(a.peers()[0]?.state).toBe('healthy')
  })
})

describe('reconnect', () => {
  it('bootstrap keeps retrying until the peer appears', async () => {
    const probe = await makeMesh()
    const url = probe.addresses[0] as string
    await probe.destroy() // the port is free now: nothing listens there yet
    const a = await makeMesh({ bootstrap: [url], reconnect: { initialDelayMs: 20, maxDelayMs: 200 } })
    const up = waitFor(a, 'peer:up', { timeoutMs: 5000 })
    const b = await makeMesh({ listen: url })
    expect((await up).id).toBe(b.id)
  })
})
