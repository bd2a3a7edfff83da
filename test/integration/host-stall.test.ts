// Issue 3, "Host stalls do not count": a host whose main thread blocks now and
// then is not taken for dead, and what is sent to it meanwhile is delivered
// afterwards. Every node is a child process (test/fixtures/mesh-child.mjs), so
// the stall is a real busy loop on another process's host thread while its IO
// and router workers run on. perf/scenarios/stall.ts measures the figure
// itself (8 nodes, 300 ms every 2 s, 2 minutes).
//
// Why 1 s stalls here and not the figure's 300 ms: to tell anything, the
// heartbeat thresholds must be below the stall (were heartbeats answered on
// the host thread, the stall would trip them), and to be reliable they must
// be above the scheduling noise of a loaded 2-core box. Measured there with
// 100 ms × 3 (unhealthy after 300 ms of silence): links flapped unhealthy in
// about one 15 s run of three with NO stall at all. So the stall is longer
// than the figure's (a harder case) and the thresholds sit between the noise
// and the stall: unhealthy after 800 ms, dead after 1 s.
import { describe, it, expect, afterEach } from 'vitest'
import type { ChildProcess } from 'node:child_process'
import { spawnNode, killChildren, request, type ChildNode } from '../helpers/child-node.js'

const NODES = 5
const STALL_MS = 2_000
const EVERY_MS = 3_000
/** Stalls start at 1.5 s, 4.5 s, … 13.5 s: the last ends 0.5 s before the window does; the window then runs on past the 2 s death threshold. */
const WINDOW_MS = 17_500
const SEND_EVERY_MS = 50
/**
 * A stall of the host thread would be ≥ 2 s of silence on every link of that
 * host, were heartbeats answered there: missesUnhealthy (6 × 250 ms) and
 * missesDead (8 × 250 ms) both reached, at every stall. (With 100 ms × 8/10
 * the CI box's own scheduling noise, 2 cores shared by the whole suite,
 * tripped the 0.8 s threshold now and then with no stall at all.)
 */
const HEARTBEAT = { intervalMs: 250, missesUnhealthy: 6, missesDead: 8 }

interface Logged { node: number; m: any; at: number }

afterEach(async () => {
  await killChildren()
})

/** Every IPC message of every node, stamped on arrival here. */
function record (nodes: ChildNode[]): Logged[] {
  const log: Logged[] = []
  nodes.forEach((n, node) => {
    n.proc.on('message', (m: any) => { log.push({ node, m, at: performance.now() }) })
  })
  return log
}

/** Resolves when `cond` holds after some IPC message of `proc`, or rejects at the deadline. */
async function whenMessages (proc: ChildProcess, cond: () => boolean, timeoutMs: number, label: string): Promise<void> {
  if (cond()) return
  const err = new Error(`timed out after ${timeoutMs} ms waiting for ${label}`)
  await new Promise<void>((resolve, reject) => {
    const on = (): void => { if (cond()) { done(); resolve() } }
    const timer = setTimeout(() => { done(); reject(err) }, timeoutMs)
    const done = (): void => { clearTimeout(timer); proc.off('message', on) }
    proc.on('message', on)
  })
}

describe('host stall (issue 3)', () => {
  it(`${NODES} nodes, one host blocked ${STALL_MS} ms every ${EVERY_MS / 1000} s for ${WINDOW_MS / 1000} s (heartbeat 250 ms, unhealthy at 1.5 s, dead at 2 s): no peer:down, no health change, messages sent meanwhile delivered after`, async () => {
    const base = { listen: 'ws://127.0.0.1:0', heartbeat: HEARTBEAT }
    const seed = await spawnNode(base, 30_000)
    const rest = await Promise.all(Array.from({ length: NODES - 1 }, async () => await spawnNode({ ...base, bootstrap: [seed.addresses[0]] }, 30_000)))
    const nodes = [seed, ...rest]
    const ids = nodes.map((n) => n.id)
    const name = (id: string): string => `node ${ids.indexOf(id)}`

    // A full mesh by discovery: every node healthy with every other, membership healthy.
    const linked = await Promise.all(nodes.map(async (n) => await request(n.proc, { type: 'wait-linked', ids, timeoutMs: 20_000 }, 'linked', 25_000)))
    expect(linked.filter((l) => l.ok !== true)).toEqual([])

    const log = record(nodes)
    const armed = performance.now()
    const si = NODES - 1 // the stalling host (not the seed)
    const staller = nodes[si]!
    const senders = nodes.slice(0, si)
    const [stallsDone, ...sendsDone] = await Promise.all([
      request(staller.proc, { type: 'stall-loop', everyMs: EVERY_MS, stallMs: STALL_MS, durationMs: WINDOW_MS }, 'stall-loop-done', WINDOW_MS + 15_000),
      ...senders.map(async (n) => await request(n.proc, { type: 'send-loop', to: staller.id, everyMs: SEND_EVERY_MS, durationMs: WINDOW_MS }, 'send-loop-done', WINDOW_MS + 15_000)),
    ])
    const stalls = stallsDone.stalls as Array<{ at: number; ms: number }>
    const sent = sendsDone.reduce((a, s) => a + s.sent, 0)
    expect(sendsDone.map((s) => s.failed)).toEqual(senders.map(() => 0))

    // Every probe reaches the stalled host's application (the fixture forwards each message over IPC).
    const probes = (): Logged[] => log.filter((l) => l.node === si && l.m?.type === 'message' && l.m.payload?.stallProbe === true)
    await whenMessages(staller.proc, () => probes().length >= sent, 10_000, `${sent} probes at the stalled host`).catch((err: Error) => {
      const per = senders.map((n, i) => `node ${i}: ${probes().filter((l) => l.m.from === n.id).length}/${String(sendsDone[i].sent)}`)
      const health = log.filter((l) => l.at >= armed && l.m?.type !== 'message').map((l) => `node ${l.node}: ${String(l.m.type)} ${String(l.m.id ?? l.m.peer ?? '')} ${String(l.m.state ?? '')} +${(l.at - armed).toFixed(0)} ms`)
      throw new Error(`${err.message}; received per sender ${per.join(', ')}; events: ${health.join('; ')}`)
    })

    // The stalls happened, at full length.
    expect(stalls.length).toBe(Math.floor((WINDOW_MS - EVERY_MS / 2 - STALL_MS) / EVERY_MS) + 1)
    for (const s of stalls) expect(s.ms).toBeGreaterThanOrEqual(STALL_MS)

    // No node saw a peer go down or change health. (`status` is not asserted: SWIM's protocol period is
    // heartbeat.intervalMs, here 100 ms with a 30 ms probe timeout, and on a loaded box it suspects and
    // refutes members now and then, stall or not; none of that is a peer:down or a health change.)
    const after = log.filter((l) => l.at >= armed)
    const alarms = after
      .filter((l) => l.m?.type === 'peer:down' || l.m?.type === 'peer:health' || l.m?.type === 'peer:up')
      .map((l) => `node ${l.node}: ${String(l.m.type)} ${name(l.m.id ?? l.m.peer)} ${String(l.m.state ?? '')} at +${(l.at - armed).toFixed(0)} ms`)
    expect(alarms).toEqual([])

    // Exactly once and in order per sender; those sent during a stall arrived, after it.
    const got = probes()
    expect(got.length).toBe(sent)
    for (const n of senders) {
      const seqs = got.filter((l) => l.m.from === n.id).map((l) => l.m.payload.seq as number)
      expect(seqs).toEqual([...seqs.keys()])
    }
    const inStall = got.filter((l) => stalls.some((s) => l.m.payload.sentAt >= s.at && l.m.payload.sentAt < s.at + s.ms))
    // ~20 per stall per sender: the case under test really happened.
    expect(inStall.length).toBeGreaterThan(stalls.length * senders.length)
    // Received here (IPC from the host's main thread) only after the stall it was sent in; epoch clocks of
    // processes on one machine agree to well under the 5 ms allowed.
    const early = inStall.filter((l) => {
      const s = stalls.find((x) => l.m.payload.sentAt >= x.at && l.m.payload.sentAt < x.at + x.ms)!
      return performance.timeOrigin + l.at < s.at + s.ms - 5
    })
    expect(early.length).toBe(0)

    // And at the end every link is still healthy on every node.
    const views = await Promise.all(nodes.map(async (n) => await request(n.proc, { type: 'peers' }, 'peers', 5_000)))
    const unhealthy = views.flatMap((v, i) => (v.peers as Array<{ id: string; state: string }>)
      .filter((p) => p.state !== 'healthy').map((p) => `node ${i} → ${name(p.id)}: ${p.state}`))
    expect(unhealthy).toEqual([])
  }, 90_000)
})
