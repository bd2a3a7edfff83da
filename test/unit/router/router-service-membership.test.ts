// RouterService's SWIM glue: once membership is quiet, most direct pings to a
// member whose link the IO worker's heartbeats call healthy are acked in the
// router (no network round trip, no control-plane messages); once the
// heartbeats falter (linkHealth false) the pings go over the network again.
import { describe, it, expect, afterEach } from 'vitest'
import { decodeControl, encodeControl } from '../../../src/codec/control.js'
import { generateIdentity } from '../../../src/identity/identity.js'
import { RouterService } from '../../../src/router/router-service.js'
import { attachFakeIo, closeFakeIos, until } from '../../helpers/fake-io.js'

afterEach(closeFakeIos)

describe('RouterService: SWIM over heartbeat-healthy links', () => {
  it('acks 3 of 4 direct pings locally while membership is quiet and the link healthy; sends them all once its heartbeats falter', async () => {
    const self = generateIdentity().id
    const peer = generateIdentity().id
    const svc = new RouterService({ selfId: self, join: 'open', protocolPeriodMs: 20 })
    const sent: Array<{ to: string; t: string; gossip: number }> = []
    // The peer answers pings over the network while it is alive (until the test silences it).
    let peerAnswers = true
    let cloned = 0
    await attachFakeIo(svc, 0, {
      sendMembership: async (to, payload) => {
        // What crossed the thread boundary: the message's bytes, not the encoder's whole working buffer.
        cloned = Math.max(cloned, payload.buffer.byteLength - payload.byteLength)
        const m = decodeControl(payload) as { t: string; seq?: number; gossip?: unknown[] }
        sent.push({ to, t: m.t, gossip: m.gossip?.length ?? 0 })
        if (m.t === 'ping' && peerAnswers) setImmediate(() => { void svc.membership(to, encodeControl({ t: 'ack', seq: m.seq, gossip: [] })) })
        return true
      },
    })
    await svc.startMembership(['ws://127.0.0.1:1'], { status: () => {}, member: () => {}, routes: () => {}, lockLost: () => {}, lockRecreated: () => {}, forgotten: () => true })
    expect((await svc.claim({ connKey: '0:1', worker: 0, peerId: peer, dialerId: self })).ok).toBe(true)
    await svc.linkUp('0:1', ['ws://127.0.0.1:2'])

    // Healthy link, membership quiet (LOCAL_ACK_QUIET_PERIODS after the join): three of
    // every four empty pings are acked locally; the fourth goes out, so the member's
    // own news still reaches us on its ack.
    await until(() => svc.localAcks >= 1, 'the first local ack', 5_000)
    const emptyOut = (): number => sent.filter((s) => s.t === 'ping' && s.gossip === 0).length
    const a0 = svc.localAcks
    const e0 = emptyOut()
    await until(() => svc.localAcks >= a0 + 30, '30 more local acks', 5_000)
    const out = emptyOut() - e0
    expect(out).toBeGreaterThanOrEqual(8)
    expect(out).toBeLessThanOrEqual(12)

    // The heartbeats say unhealthy: SWIM's pings go to the network (and, unanswered here, lead to suspicion).
    const before = sent.length
    const acks = svc.localAcks
    peerAnswers = false
    await svc.linkHealth('0:1', false)
    await until(() => sent.slice(before).some((s) => s.t === 'ping' && s.to === peer), 'a ping sent over the link', 5_000)
    expect(svc.localAcks).toBe(acks)
    expect(cloned).toBe(0)
    await svc.leave().catch(() => {})
  })
})

describe('RouterService: a lost dataDir lock', () => {
  it('reaches the host once it has called in (startMembership), or at once after', async () => {
    const svc = new RouterService({ selfId: generateIdentity().id, join: 'open', protocolPeriodMs: 20 })
    const lost: string[] = []
    svc.lockLost('early') // keepLockFresh may report before the host's first call
    await svc.startMembership([], { status: () => {}, member: () => {}, routes: () => {}, lockLost: (why) => { lost.push(why) }, lockRecreated: () => {}, forgotten: () => true })
    expect(lost).toEqual(['early'])
    svc.lockLost('later')
    expect(lost).toEqual(['early', 'later'])
    await svc.leave()
  })
})

describe('RouterService: forgetting a departed member', () => {
  it('tells the host once SWIM forgets a dead member, and asks again with backoff while the host still keeps it', async () => {
    const self = generateIdentity().id
    const peer = generateIdentity().id
    const svc = new RouterService({ selfId: self, join: 'open', protocolPeriodMs: 20, reapAfterMs: 50, forgetRetryMs: 20 })
    await attachFakeIo(svc, 0, { sendMembership: async () => true }) // the member never answers
    const asks: number[] = []
    // The host keeps the peer's state twice (messages still queued to it), then drops it.
    await svc.startMembership(['ws://127.0.0.1:1'], {
      status: () => {}, member: () => {}, routes: () => {}, lockLost: () => {}, lockRecreated: () => {},
      forgotten: (id) => { expect(id).toBe(peer); asks.push(performance.now()); return asks.length >= 3 },
    })
    expect((await svc.claim({ connKey: '0:1', worker: 0, peerId: peer, dialerId: self })).ok).toBe(true)
    await svc.linkUp('0:1', ['ws://127.0.0.1:2'])
    await svc.release('0:1')
    await until(() => asks.length >= 3, 'the host asked three times', 10_000)
    // Backoff: 20 ms, then 40 ms (timers run no earlier than asked).
    expect((asks[1] as number) - (asks[0] as number)).toBeGreaterThanOrEqual(19)
    expect((asks[2] as number) - (asks[1] as number)).toBeGreaterThanOrEqual(39)
    // Dropped: no ask is scheduled any more.
    expect(svc.forgetsPending).toBe(0)
    const n = asks.length
    await svc.forgetLater(peer) // …unless the host made state for it again
    expect(svc.forgetsPending).toBe(1)
    await until(() => asks.length > n, 'asked again after forgetLater', 5_000)
    expect(svc.forgetsPending).toBe(0)
    // A node leaving asks no more.
    await svc.forgetLater(peer)
    await svc.leave().catch(() => {})
    expect(svc.forgetsPending).toBe(0)
    await svc.forgetLater(peer)
    expect(svc.forgetsPending).toBe(0)
  })
})

describe('RouterService: forgetting, when the host fails or the node leaves', () => {
  async function deadMember (forgotten: (id: string) => boolean | Promise<boolean>): Promise<{ svc: RouterService; peer: string }> {
    const self = generateIdentity().id
    const peer = generateIdentity().id
    const svc = new RouterService({ selfId: self, join: 'open', protocolPeriodMs: 20, reapAfterMs: 50, forgetRetryMs: 20 })
    await attachFakeIo(svc, 0, { sendMembership: async () => true })
    await svc.startMembership(['ws://127.0.0.1:1'], { status: () => {}, member: () => {}, routes: () => {}, lockLost: () => {}, lockRecreated: () => {}, forgotten })
    expect((await svc.claim({ connKey: '0:1', worker: 0, peerId: peer, dialerId: self })).ok).toBe(true)
    await svc.linkUp('0:1', ['ws://127.0.0.1:2'])
    await svc.release('0:1')
    return { svc, peer }
  }

  it('a failed call to the host is a "not yet": it asks again', async () => {
    let asks = 0
    const { svc } = await deadMember(async () => { asks++; if (asks === 1) throw new Error('host busy'); return true })
    await until(() => asks >= 2, 'asked again after a failure', 10_000)
    await until(() => svc.forgetsPending === 0, 'nothing left to ask', 5_000)
    await svc.leave().catch(() => {})
  })

  it('an answer that comes after leave() schedules nothing', async () => {
    let answer: ((dropped: boolean) => void) | undefined
    const { svc } = await deadMember(async () => await new Promise<boolean>((resolve) => { answer = resolve }))
    await until(() => answer !== undefined, 'the host was asked', 10_000)
    await svc.leave().catch(() => {})
    answer?.(false)
    await new Promise((resolve) => setImmediate(resolve))
    expect(svc.forgetsPending).toBe(0)
  })
})

describe('RouterService: discovery dials that do not happen', () => {
  /** A node linked to `peer` only, with ids ordered so that it is the side that dials `other`. */
  async function learner (over: { worker0: boolean, discover?: (url: string, id: string) => Promise<boolean> }): Promise<{ svc: RouterService; other: string; learn: () => Promise<void> }> {
    const ids = [generateIdentity().id, generateIdentity().id, generateIdentity().id].sort()
    const [self, other, peer] = ids as [string, string, string] // self < other: self dials it (both listen)
    // A 2 s period makes the pending-dial expiry (dialRetryMs, 5 periods capped at 10 s) 10 s: a retry within
    // the tests' 5 s can only be the failure backoff (1 s, 0.5–1 s with jitter).
    const svc = new RouterService({ selfId: self, join: 'open', protocolPeriodMs: 2_000 })
    // The link to `peer` sits on worker 1; worker 0 (the one discovery dials through) is there or not.
    await attachFakeIo(svc, 1, { sendMembership: async () => true })
    if (over.worker0) await attachFakeIo(svc, 0, { discover: over.discover })
    await svc.startMembership(['ws://127.0.0.1:1'], { status: () => {}, member: () => {}, routes: () => {}, lockLost: () => {}, lockRecreated: () => {}, forgotten: () => true })
    expect((await svc.claim({ connKey: '1:1', worker: 1, peerId: peer, dialerId: self })).ok).toBe(true)
    await svc.linkUp('1:1', ['ws://127.0.0.1:2'])
    // `peer` tells us of `other`, alive and listening: SWIM asks to dial it.
    const learn = async (): Promise<void> => {
      await svc.membership(peer, encodeControl({ t: 'sync', gossip: [{ id: other, incarnation: 1, state: 'alive', addresses: ['ws://127.0.0.1:3'] }] }))
    }
    return { svc, other, learn }
  }

  it('a discover call that rejects is a failed dial: tried again after a short backoff, not after dialRetryMs', async () => {
    const calls: number[] = []
    let target = ''
    const { svc, other, learn } = await learner({
      worker0: true,
      discover: async (_url, id) => {
        target = id
        calls.push(performance.now())
        if (calls.length === 1) throw new Error('worker gone')
        return true
      },
    })
    await learn()
    await until(() => calls.length >= 2, 'a second discover call', 5_000)
    expect(target).toBe(other)
    expect((calls[1] as number) - (calls[0] as number)).toBeGreaterThanOrEqual(450)
    await svc.leave().catch(() => {})
  })

  it('a discover call in flight when IO worker 0 dies (it never settles) is a failed dial once the worker is released', async () => {
    let hung = 0
    const { svc, other, learn } = await learner({ worker0: true, discover: async () => { hung++; return await new Promise<boolean>(() => {}) } })
    await learn()
    await until(() => hung === 1, 'the discover call on worker 0', 5_000)
    // Worker 0 crashes: the supervisor releases it, then attaches its successor.
    await svc.releaseWorker(0)
    const calls: string[] = []
    await attachFakeIo(svc, 0, { discover: async (_url, id) => { calls.push(id); return true } })
    await until(() => calls.length >= 1, 'a discover call on the new worker 0', 5_000)
    expect(calls[0]).toBe(other)
    await svc.leave().catch(() => {})
  })

  it('a dial asked for while no IO worker 0 is attached (restarting) is tried again once one is', async () => {
    const { svc, other, learn } = await learner({ worker0: false })
    await learn()
    // The dial was asked for with no worker to take it; worker 0 comes back.
    const calls: string[] = []
    await attachFakeIo(svc, 0, { discover: async (_url, id) => { calls.push(id); return true } })
    await until(() => calls.length >= 1, 'a discover call on the new worker 0', 5_000)
    expect(calls[0]).toBe(other)
    await svc.leave().catch(() => {})
  })
})
