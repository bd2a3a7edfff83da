import { describe, it, expect } from 'vitest'
import {
  SWIM_DEFAULTS, SWIM_LIMITS, Swim, parseSwimMessage, resolveSwimConfig,
  type SwimConfig, type SwimMessage, type SwimOutput, type Update,
} from '../../../src/membership/swim.js'
import { MeshError } from '../../../src/errors.js'
import { mulberry32 } from '../../helpers/swim-sim.js'

// Defaults (period 1000, probe timeout 300, k 3). random () => 0 makes every
// shuffle the identity and the first probe due at construction time.
const BASE: SwimConfig = { ...SWIM_DEFAULTS, selfId: 'a', incarnation: 100, addresses: ['ws://a:1'], random: () => 0 }

function drain (s: Swim): SwimOutput[] {
  const out: SwimOutput[] = []
  for (let o = s.poll(); o !== undefined; o = s.poll()) out.push(o)
  return out
}
type Sent = { to: string, msg: SwimMessage }
const sends = (out: SwimOutput[], t?: SwimMessage['t']): Sent[] =>
  out.flatMap((o) => (o.kind === 'send' && (t === undefined || o.msg.t === t) ? [{ to: o.to, msg: o.msg }] : []))
const seqOf = (m: SwimMessage): number => ('seq' in m ? m.seq : -1)
const alive = (id: string, incarnation = 1, addresses: string[] = []): Update => ({ id, incarnation, state: 'alive', addresses })

/** Node `a` linked to `peers` (each at incarnation 1), outputs drained. */
function linked (peers: string[], cfg: Partial<SwimConfig> = {}, now = 0): Swim {
  const s = new Swim({ ...BASE, ...cfg }, now)
  for (const p of peers) {
    s.addMember({ id: p, incarnation: 1, addresses: [`ws://${p}:1`] }, now)
    s.setLinked(p, true, now)
  }
  drain(s)
  return s
}

describe('config', () => {
  it('fills optional fields from SWIM_DEFAULTS and freezes', () => {
    const r = resolveSwimConfig(BASE)
    expect(r).toMatchObject({ reapAfterMs: 300_000, dialRetryMs: 30_000, maxLocalHealth: 8 })
    expect(Object.isFrozen(r)).toBe(true)
  })

  it.each<[string, Partial<SwimConfig>, string]>([
    ['selfId empty', { selfId: '' }, 'swim.selfId'],
    ['selfId too long', { selfId: 'x'.repeat(SWIM_LIMITS.maxIdLength + 1) }, 'swim.selfId'],
    ['incarnation negative', { incarnation: -1 }, 'swim.incarnation'],
    ['incarnation fractional', { incarnation: 0.5 }, 'swim.incarnation'],
    ['addresses not strings', { addresses: [3 as unknown as string] }, 'swim.addresses'],
    ['protocolPeriodMs 0', { protocolPeriodMs: 0 }, 'swim.protocolPeriodMs'],
    ['probeTimeoutMs 0', { probeTimeoutMs: 0 }, 'swim.probeTimeoutMs'],
    ['probeTimeoutMs >= period', { probeTimeoutMs: 1000 }, 'swim.probeTimeoutMs'],
    ['indirectProbes negative', { indirectProbes: -1 }, 'swim.indirectProbes'],
    ['suspicionMult 0', { suspicionMult: 0 }, 'swim.suspicionMult'],
    ['suspicionMult NaN', { suspicionMult: NaN }, 'swim.suspicionMult'],
    ['suspicionMaxMult < 1', { suspicionMaxMult: 0.5 }, 'swim.suspicionMaxMult'],
    ['retransmitMult 0', { retransmitMult: 0 }, 'swim.retransmitMult'],
    ['maxPiggyback 0', { maxPiggyback: 0 }, 'swim.maxPiggyback'],
    ['maxPiggyback over the wire limit', { maxPiggyback: SWIM_LIMITS.maxGossip + 1 }, 'swim.maxPiggyback'],
    ['maxPeers negative', { maxPeers: -1 }, 'swim.maxPeers'],
    ['random missing', { random: undefined as unknown as () => number }, 'swim.random'],
    ['reapAfterMs 0', { reapAfterMs: 0 }, 'swim.reapAfterMs'],
    ['dialRetryMs fractional', { dialRetryMs: 1.5 }, 'swim.dialRetryMs'],
    ['maxLocalHealth negative', { maxLocalHealth: -1 }, 'swim.maxLocalHealth'],
  ])('rejects %s with INVALID_OPTIONS', (_name, patch, path) => {
    let err: unknown
    try { new Swim({ ...BASE, ...patch }, 0) } catch (e) { err = e }
    expect(err).toBeInstanceOf(MeshError)
    expect((err as MeshError).code).toBe('INVALID_OPTIONS')
    expect((err as MeshError).message).toMatch(new RegExp(`^${path.replace('.', '\\.')} must be`))
  })

  it('accepts reapAfterMs: Infinity (never forget)', () => {
    expect(resolveSwimConfig({ ...BASE, reapAfterMs: Infinity }).reapAfterMs).toBe(Infinity)
  })

  it('owner mistakes throw INVALID_OPTIONS synchronously', () => {
    const s = new Swim(BASE, 0)
    expect(() => { s.addMember({ id: '', addresses: [] }, 0) }).toThrow(MeshError)
    expect(() => { s.addMember({ id: 'b', incarnation: -1, addresses: [] }, 0) }).toThrow(/incarnation/)
    expect(() => { s.setLinked('', true, 0) }).toThrow(MeshError)
  })
})

describe('probe cycle (SWIM §3.1)', () => {
  it('pings one linked member per period and is satisfied by its ack', () => {
    const s = linked(['b'])
    expect(s.nextDeadline()).toBe(0)
    s.tick(0)
    const [ping] = sends(drain(s), 'ping')
    expect(ping).toMatchObject({ to: 'b', msg: { t: 'ping' } })
    expect(s.nextDeadline()).toBe(300) // indirect stage
    s.handleMessage('b', { t: 'ack', seq: seqOf(ping!.msg), gossip: [] }, 5)
    expect(s.nextDeadline()).toBe(1000) // probe done: next period
    s.tick(1000)
    expect(s.member('b')?.state).toBe('alive')
    expect(s.stats()).toMatchObject({ pingsSent: 2, acksReceived: 1, probesFailed: 0 })
  })

  it('round robin over a shuffled list: every linked member once per round', () => {
    const s = new Swim({ ...BASE, random: mulberry32(7) }, 0)
    for (const p of ['b', 'c', 'd', 'e']) { s.addMember({ id: p, incarnation: 1, addresses: [] }, 0); s.setLinked(p, true, 0) }
    drain(s)
    const targets: string[] = []
    for (let t = 0; t < 8; t++) {
      s.tick(s.nextDeadline())
      for (const p of sends(drain(s), 'ping')) {
        targets.push(p.to)
        s.handleMessage(p.to, { t: 'ack', seq: seqOf(p.msg), gossip: [] }, s.nextDeadline())
      }
    }
    expect(targets).toHaveLength(8)
    expect([...targets.slice(0, 4)].sort()).toEqual(['b', 'c', 'd', 'e'])
    expect([...targets.slice(4)].sort()).toEqual(['b', 'c', 'd', 'e'])
  })

  it('no ack in probeTimeout → ping-req to k other linked members → suspect at the period end', () => {
    const s = linked(['b', 'c', 'd', 'e', 'f'])
    s.tick(0)
    const [ping] = sends(drain(s), 'ping')
    const target = ping!.to
    const seq = seqOf(ping!.msg)
    s.tick(299)
    expect(sends(drain(s))).toEqual([])
    s.tick(300)
    const reqs = sends(drain(s), 'ping-req')
    expect(reqs).toHaveLength(3)
    for (const r of reqs) {
      expect(r.to).not.toBe(target)
      expect(r.msg).toMatchObject({ t: 'ping-req', seq, target })
    }
    // Helpers answer nack: they are alive, the target is not answering them.
    for (const r of reqs) s.handleMessage(r.to, { t: 'nack', seq, gossip: [] }, 500)
    s.tick(1000)
    const out = drain(s)
    expect(s.member(target)?.state).toBe('suspect')
    expect(out).toContainEqual({ kind: 'member', member: expect.objectContaining({ id: target, state: 'suspect' }), previous: 'alive' })
    expect(s.stats()).toMatchObject({ probesFailed: 1, suspicions: 1, nacksReceived: 3 })
    // All nacks arrived: the fault is the target's, our local health is untouched.
    expect(s.localHealth).toBe(0)
    // Our suspicion is gossiped with our name on it.
    expect(s.pendingGossip().map((g) => g.update)).toContainEqual({ id: target, incarnation: 1, state: 'suspect', addresses: [`ws://${target}:1`], from: 'a' })
  })

  it('an ack relayed by a helper saves the target', () => {
    const s = linked(['b', 'c', 'd'])
    s.tick(0)
    const [ping] = sends(drain(s), 'ping')
    s.tick(300)
    const [req] = sends(drain(s), 'ping-req')
    s.handleMessage(req!.to, { t: 'ack', seq: seqOf(ping!.msg), gossip: [] }, 400)
    s.tick(1000)
    expect(s.member(ping!.to)?.state).toBe('alive')
    expect(s.stats().probesFailed).toBe(0)
  })

  it('a late direct ack inside the period still counts; one after it is stale', () => {
    const s = linked(['b', 'c'])
    s.tick(0)
    const [ping] = sends(drain(s), 'ping')
    s.tick(300)
    drain(s)
    s.handleMessage(ping!.to, { t: 'ack', seq: seqOf(ping!.msg), gossip: [] }, 900)
    s.tick(1000)
    expect(s.member(ping!.to)?.state).toBe('alive')
    s.handleMessage(ping!.to, { t: 'ack', seq: seqOf(ping!.msg), gossip: [] }, 1001)
    expect(s.stats().stale).toBe(1)
  })

  it('an ack from someone not involved in the probe is ignored', () => {
    const s = linked(['b', 'c', 'd'])
    s.tick(0)
    const [ping] = sends(drain(s), 'ping')
    const stranger = ['b', 'c', 'd'].find((x) => x !== ping!.to)!
    s.handleMessage(stranger, { t: 'ack', seq: seqOf(ping!.msg), gossip: [] }, 10) // not asked yet
    s.tick(300)
    drain(s)
    s.tick(1000)
    expect(s.member(ping!.to)?.state).toBe('suspect')
  })

  it('Lifeguard local health: missing nacks slow our own probing; successes heal it', () => {
    const s = linked(['b', 'c', 'd', 'e'])
    s.tick(0)
    drain(s)
    s.tick(300)
    drain(s) // 3 ping-reqs, no nacks come back: our links look bad
    s.tick(1000)
    expect(s.localHealth).toBe(3)
    const [ping] = sends(drain(s), 'ping')
    expect(s.nextDeadline()).toBe(1000 + 300 * 4) // probe timeout × (1 + 3)
    s.handleMessage(ping!.to, { t: 'ack', seq: seqOf(ping!.msg), gossip: [] }, 1010)
    expect(s.localHealth).toBe(2)
    expect(s.nextDeadline()).toBe(1000 + 1000 * 4) // period × (1 + 3), fixed at probe start
  })
})

describe('serving ping and ping-req', () => {
  it('answers ping with ack carrying gossip', () => {
    const s = linked(['b', 'c'])
    s.handleGossip('c', [alive('x', 4)], 0)
    drain(s)
    s.handleMessage('b', { t: 'ping', seq: 77, gossip: [] }, 1)
    const [ack] = sends(drain(s), 'ack')
    expect(ack).toMatchObject({ to: 'b', msg: { t: 'ack', seq: 77 } })
    expect(ack!.msg.gossip).toContainEqual(alive('x', 4))
  })

  it('ping-req for a linked target: ping it with our own seq and relay its ack', () => {
    const s = linked(['b', 'c'])
    s.handleMessage('b', { t: 'ping-req', seq: 5, target: 'c', gossip: [] }, 10)
    const [ping] = sends(drain(s), 'ping')
    expect(ping!.to).toBe('c')
    s.handleMessage('c', { t: 'ack', seq: seqOf(ping!.msg), gossip: [] }, 20)
    expect(sends(drain(s))).toEqual([{ to: 'b', msg: expect.objectContaining({ t: 'ack', seq: 5 }) }])
  })

  it('ping-req for a target we are not linked to: nack at once', () => {
    const s = linked(['b'])
    s.handleGossip('b', [alive('z')], 0)
    drain(s)
    s.handleMessage('b', { t: 'ping-req', seq: 6, target: 'z', gossip: [] }, 10)
    expect(sends(drain(s))).toEqual([{ to: 'b', msg: expect.objectContaining({ t: 'nack', seq: 6 }) }])
  })

  it('linked target silent: nack at 80 % of the probe timeout, late ack still relayed', () => {
    const s = linked(['b', 'c'])
    s.handleMessage('b', { t: 'ping-req', seq: 9, target: 'c', gossip: [] }, 1000)
    const [ping] = sends(drain(s), 'ping')
    expect(s.nextDeadline()).toBeLessThanOrEqual(1240)
    s.tick(1239)
    expect(sends(drain(s), 'nack')).toEqual([])
    s.tick(1240)
    expect(sends(drain(s), 'nack')).toEqual([{ to: 'b', msg: expect.objectContaining({ t: 'nack', seq: 9 }) }])
    s.handleMessage('c', { t: 'ack', seq: seqOf(ping!.msg), gossip: [] }, 1500)
    expect(sends(drain(s), 'ack')).toEqual([{ to: 'b', msg: expect.objectContaining({ t: 'ack', seq: 9 }) }])
  })

  it('ping-req about ourselves: the requester reached us, so ack', () => {
    const s = linked(['b'])
    s.handleMessage('b', { t: 'ping-req', seq: 3, target: 'a', gossip: [] }, 0)
    expect(sends(drain(s))).toEqual([{ to: 'b', msg: expect.objectContaining({ t: 'ack', seq: 3 }) }])
  })
})

describe('refutation (SWIM §4.2)', () => {
  it('suspect(self, i >= own) → incarnation i + 1, pushed at once to every link and gossiped', () => {
    const s = linked(['b', 'c'])
    s.handleMessage('b', { t: 'ping', seq: 1, gossip: [{ id: 'a', incarnation: 100, state: 'suspect', addresses: [], from: 'b' }] }, 10)
    expect(s.incarnation).toBe(101)
    const out = drain(s)
    const refutation = { id: 'a', incarnation: 101, state: 'alive', addresses: ['ws://a:1'] }
    expect(sends(out, 'sync').map((x) => x.to).sort()).toEqual(['b', 'c'])
    for (const x of sends(out, 'sync')) expect(x.msg.gossip).toEqual([refutation])
    // The ack to the very ping that carried the suspicion already refutes it.
    expect(sends(out, 'ack')[0]!.msg.gossip).toContainEqual(refutation)
    expect(s.stats().refutations).toBe(1)
  })

  it.each<[string, Update, number]>([
    ['suspect at a higher incarnation', { id: 'a', incarnation: 150, state: 'suspect', addresses: [] }, 151],
    ['dead at our incarnation', { id: 'a', incarnation: 100, state: 'dead', addresses: [] }, 101],
    ['left at our incarnation (we did not leave)', { id: 'a', incarnation: 100, state: 'left', addresses: [] }, 101],
    ['alive at a higher incarnation (someone saw a newer us)', { id: 'a', incarnation: 120, state: 'alive', addresses: [] }, 121],
    ['stale suspicion (lower incarnation): ignored', { id: 'a', incarnation: 99, state: 'suspect', addresses: [] }, 100],
    ['alive at our incarnation: nothing to do', { id: 'a', incarnation: 100, state: 'alive', addresses: [] }, 100],
  ])('%s', (_name, u, expected) => {
    const s = linked(['b'])
    s.handleGossip('b', [u], 0)
    expect(s.incarnation).toBe(expected)
  })

  it('after leave() we no longer refute', () => {
    const s = linked(['b'])
    s.leave(0)
    s.handleGossip('b', [{ id: 'a', incarnation: 100, state: 'suspect', addresses: [] }], 1)
    expect(s.incarnation).toBe(100)
  })
})

describe('links', () => {
  it('link up: the new link gets our whole table in sync messages', () => {
    const s = linked(['b'])
    s.handleGossip('b', [alive('x', 3, ['ws://x:3']), { id: 'y', incarnation: 2, state: 'suspect', addresses: [], from: 'b' }], 0)
    drain(s)
    s.addMember({ id: 'd', incarnation: 1, addresses: [] }, 1)
    s.setLinked('d', true, 1)
    const sync = sends(drain(s), 'sync').filter((x) => x.to === 'd')
    const all = sync.flatMap((x) => x.msg.gossip)
    expect(all).toContainEqual({ id: 'a', incarnation: 100, state: 'alive', addresses: ['ws://a:1'] })
    expect(all).toContainEqual(alive('x', 3, ['ws://x:3']))
    expect(all).toContainEqual({ id: 'y', incarnation: 2, state: 'suspect', addresses: [], from: 'b' })
    expect(all.find((u) => u.id === 'd')).toBeUndefined() // it knows itself
  })

  it('a large table is sent in chunks within the wire limit', () => {
    const s = linked(['b'])
    for (let i = 0; i < 150; i++) s.addMember({ id: `m${i}`, incarnation: 1, addresses: [] }, 0)
    drain(s)
    s.setLinked('d', true, 1)
    const sync = sends(drain(s), 'sync')
    expect(sync.length).toBe(3)
    for (const x of sync) expect(parseSwimMessage(x.msg)).toBeDefined()
    expect(sync.reduce((n, x) => n + x.msg.gossip.length, 0)).toBe(1 + 1 + 150) // self, b, m0..m149 (not d itself)
  })

  it('link down: we ask the other links; an ack through them keeps it alive', () => {
    const s = linked(['b', 'c'])
    s.setLinked('b', false, 50)
    const [req] = sends(drain(s), 'ping-req')
    expect(req).toMatchObject({ to: 'c', msg: { target: 'b' } })
    s.handleMessage('c', { t: 'ack', seq: seqOf(req!.msg), gossip: [] }, 60)
    s.tick(1050)
    expect(s.member('b')).toMatchObject({ state: 'alive', linked: false })
  })

  it('link down and nobody else reaches it: suspect after a period', () => {
    const s = linked(['b', 'c'])
    s.setLinked('b', false, 50)
    const [req] = sends(drain(s), 'ping-req')
    s.handleMessage('c', { t: 'nack', seq: seqOf(req!.msg), gossip: [] }, 60)
    s.tick(1049)
    expect(s.member('b')?.state).toBe('alive')
    s.tick(1050)
    expect(s.member('b')?.state).toBe('suspect')
  })

  it('unlinked members are not probed; a linked dead member is pinged (so it can refute) without ping-req', () => {
    const s = linked(['b', 'c'])
    s.handleGossip('c', [{ id: 'b', incarnation: 1, state: 'dead', addresses: [] }], 0)
    s.setLinked('c', false, 0)
    drain(s)
    s.tick(s.nextDeadline())
    const [ping] = sends(drain(s), 'ping')
    expect(ping!.to).toBe('b')
    expect(ping!.msg.gossip[0]).toMatchObject({ id: 'b', state: 'dead' }) // buddy: tell it
    s.tick(s.nextDeadline())
    expect(sends(drain(s), 'ping-req')).toEqual([])
    // It answers with a refutation: alive again.
    s.handleMessage('b', { t: 'ack', seq: seqOf(ping!.msg), gossip: [alive('b', 2)] }, s.nextDeadline())
    expect(s.member('b')).toMatchObject({ state: 'alive', incarnation: 2 })
  })
})

describe('dial outputs', () => {
  it('gossip-learned alive members with addresses are dialed, capped at maxPeers − linked', () => {
    const s = linked(['b'], { maxPeers: 3 })
    s.handleGossip('b', [
      alive('c', 1, ['ws://c:1']), alive('d', 1, ['ws://d:1']), alive('e', 1, ['ws://e:1']),
      alive('f', 1, ['ws://f:1']), alive('g', 1, []), { id: 'h', incarnation: 1, state: 'suspect', addresses: ['ws://h:1'] },
    ], 0)
    const dials = drain(s).filter((o) => o.kind === 'dial')
    expect(dials).toHaveLength(2)
    for (const d of dials) expect(['c', 'd', 'e', 'f']).toContain(d.kind === 'dial' ? d.id : '')
  })

  it('a pending dial holds its slot until it links or dialRetryMs passes', () => {
    const s = linked(['b'], { maxPeers: 2, dialRetryMs: 5000 })
    s.handleGossip('b', [alive('c', 1, ['ws://c:1']), alive('d', 1, ['ws://d:1'])], 0)
    const first = drain(s).filter((o) => o.kind === 'dial')
    expect(first).toHaveLength(1)
    s.tick(1000)
    expect(drain(s).filter((o) => o.kind === 'dial')).toHaveLength(0)
    s.tick(5000) // the dial expired: one slot again
    expect(drain(s).filter((o) => o.kind === 'dial')).toHaveLength(1)
  })

  it('a failed dial is retried after a backoff (1 s, doubling, jittered, capped at dialRetryMs), not after dialRetryMs; a link resets it', () => {
    const s = linked(['b'], { maxPeers: 5, dialRetryMs: 60_000, protocolPeriodMs: 60_000, probeTimeoutMs: 10_000, random: () => 0.999 })
    s.handleGossip('b', [alive('c', 1, ['ws://c:1'])], 0)
    const dialsOf = (): string[] => drain(s).flatMap((o) => o.kind === 'dial' ? [o.id] : [])
    expect(dialsOf()).toEqual(['c'])
    const retries: number[] = []
    let t = 0
    for (let i = 0; i < 4; i++) {
      s.dialFailed('c', t)
      expect(dialsOf()).toEqual([]) // not at once
      t = s.nextDeadline() // the backoff is a deadline of its own (the next probe is a minute away)
      s.tick(t)
      expect(dialsOf()).toEqual(['c'])
      retries.push(Math.round(t))
    }
    // random 0.999: delays ≈ base × 1.0 → 1 s, 2 s, 4 s, 8 s after each failure.
    const deltas = retries.map((x, i) => x - (i === 0 ? 0 : retries[i - 1]!))
    ;[1000, 2000, 4000, 8000].forEach((want, i) => { expect(Math.abs(deltas[i]! - want)).toBeLessThanOrEqual(10) })
    // A link resets it: after it drops, c is dialed again at once (a slot freed up), and a failure backs off 1 s again.
    s.setLinked('c', true, t)
    s.setLinked('c', false, t + 1)
    expect(dialsOf()).toEqual(['c'])
    s.dialFailed('c', t + 100)
    expect(s.nextDeadline()).toBeLessThanOrEqual(t + 100 + 1000)
    // dialFailed for a member with no pending dial (or linked) is ignored.
    s.dialFailed('zz', t)
    expect(dialsOf()).toEqual([])
  })

  it('no dials when linked to maxPeers already, nor for dial-only members, nor after leave', () => {
    const s = linked(['b', 'c'], { maxPeers: 2 })
    s.handleGossip('b', [alive('x', 1, ['ws://x:1'])], 0)
    expect(drain(s).filter((o) => o.kind === 'dial')).toEqual([])
    s.setLinked('c', false, 1) // a slot frees up: one dial (x, or c again)
    expect(drain(s).filter((o) => o.kind === 'dial')).toHaveLength(1)
    const t = linked(['b'], { maxPeers: 5 })
    t.leave(0)
    t.handleGossip('b', [alive('y', 1, ['ws://y:1'])], 1)
    expect(drain(t).filter((o) => o.kind === 'dial')).toEqual([])
  })
})

describe('status', () => {
  it('healthy → degraded → critical → degraded → healthy, one output per change', () => {
    const s = linked([])
    const statuses = (): unknown[] => drain(s).flatMap((o) => (o.kind === 'status' ? [o.status] : []))
    s.handleGossip('z', [alive('b'), alive('c'), alive('d'), alive('e')], 0)
    expect(statuses()).toEqual([{ state: 'healthy', members: 4, reachable: 4, unreachable: 0 }])
    s.handleGossip('z', [{ id: 'b', incarnation: 1, state: 'suspect', addresses: [] }], 1)
    expect(statuses()).toEqual([{ state: 'degraded', members: 4, reachable: 3, unreachable: 1 }])
    s.handleGossip('z', [{ id: 'c', incarnation: 1, state: 'dead', addresses: [] }], 2)
    expect(statuses()).toEqual([{ state: 'critical', members: 4, reachable: 2, unreachable: 2 }]) // half
    s.handleGossip('z', [{ id: 'c', incarnation: 1, state: 'dead', addresses: [] }], 3)
    expect(statuses()).toEqual([]) // no change, no output
    s.handleGossip('z', [alive('b', 2)], 4)
    expect(statuses()).toEqual([{ state: 'degraded', members: 4, reachable: 3, unreachable: 1 }])
    s.handleGossip('z', [{ id: 'c', incarnation: 1, state: 'left', addresses: [] }], 5)
    expect(statuses()).toEqual([{ state: 'healthy', members: 3, reachable: 3, unreachable: 0 }])
    expect(s.status()).toEqual({ state: 'healthy', members: 3, reachable: 3, unreachable: 0 })
  })

  it('a lone suspect among one member is critical', () => {
    const s = linked([])
    s.handleGossip('z', [{ id: 'b', incarnation: 1, state: 'suspect', addresses: [] }], 0)
    expect(s.status()).toEqual({ state: 'critical', members: 1, reachable: 0, unreachable: 1 })
  })
})

describe('leave', () => {
  it('pushes left(self) to every link, stops probing, is idempotent', () => {
    const s = linked(['b', 'c'])
    s.leave(10)
    const out = sends(drain(s))
    expect(out.map((x) => x.to).sort()).toEqual(['b', 'c'])
    for (const x of out) expect(x.msg).toEqual({ t: 'sync', gossip: [{ id: 'a', incarnation: 100, state: 'left', addresses: ['ws://a:1'] }] })
    s.tick(5000)
    expect(sends(drain(s), 'ping')).toEqual([])
    s.leave(20)
    expect(drain(s)).toEqual([])
    // Still answers pings, spreading the news.
    s.handleMessage('b', { t: 'ping', seq: 1, gossip: [] }, 30)
    expect(sends(drain(s), 'ack')[0]!.msg.gossip).toContainEqual(expect.objectContaining({ id: 'a', state: 'left' }))
  })

  it('others see left, not dead, and stop counting it', () => {
    const s = linked(['b'])
    s.handleMessage('b', { t: 'sync', gossip: [{ id: 'b', incarnation: 1, state: 'left', addresses: [] }] }, 5)
    expect(s.member('b')?.state).toBe('left')
    expect(s.status()).toEqual({ state: 'healthy', members: 0, reachable: 0, unreachable: 0 })
    s.tick(100_000)
    expect(sends(drain(s), 'ping')).toEqual([]) // left members are not probed
  })
})

describe('forgetting (reaping)', () => {
  it('a dead member is forgotten after reapAfterMs; stale news cannot bring it back, a restart can', () => {
    const s = linked([], { reapAfterMs: 10_000 })
    s.handleGossip('z', [{ id: 'x', incarnation: 5, state: 'dead', addresses: [] }], 0)
    expect(s.status().unreachable).toBe(1)
    drain(s)
    s.tick(10_000)
    expect(drain(s)).toContainEqual({ kind: 'forget', id: 'x', state: 'dead' })
    expect(s.member('x')).toBeUndefined()
    expect(s.status()).toEqual({ state: 'healthy', members: 0, reachable: 0, unreachable: 0 })
    s.handleGossip('z', [alive('x', 5)], 10_001)
    expect(s.member('x')).toBeUndefined()
    s.handleGossip('z', [alive('x', 6)], 10_002)
    expect(s.member('x')?.state).toBe('alive')
  })

  it('a forgotten member that links again is told it was declared dead', () => {
    const s = linked([], { reapAfterMs: 10 })
    s.handleGossip('z', [{ id: 'x', incarnation: 5, state: 'dead', addresses: [] }], 0)
    s.tick(10)
    drain(s)
    s.setLinked('x', true, 20)
    const sync = sends(drain(s), 'sync').flatMap((m) => m.msg.gossip)
    expect(sync).toContainEqual(expect.objectContaining({ id: 'x', incarnation: 5, state: 'dead' }))
  })
})

describe('starvation (a paused or blocked node)', () => {
  it('does not turn its own silence into verdicts: expired suspicions wait a period, the probe is inconclusive', () => {
    const s = linked(['b', 'c', 'd'], { protocolPeriodMs: 100, probeTimeoutMs: 40 })
    s.handleGossip('d', [{ id: 'x', incarnation: 1, state: 'suspect', addresses: [], from: 'd' }], 0)
    s.tick(0)
    drain(s)
    // Frozen for 5 s: every deadline passed long ago.
    s.tick(5000)
    expect(s.stats().starved).toBe(1)
    expect(s.member('x')?.state).toBe('suspect')
    expect(s.stats().probesFailed).toBe(0)
    expect(s.suspicion('x')?.deadline).toBe(5100)
    // Its backlog held the refutation.
    s.handleGossip('d', [alive('x', 2)], 5000)
    s.tick(5100)
    expect(s.member('x')?.state).toBe('alive')
  })
})

describe('defensive input handling', () => {
  const good = { id: 'x', incarnation: 1, state: 'alive', addresses: [] }
  it.each<[string, string, unknown]>([
    ['null', 'b', null],
    ['a string', 'b', 'ping'],
    ['an array', 'b', [1, 2]],
    ['unknown type', 'b', { t: 'pong', seq: 1, gossip: [] }],
    ['missing gossip', 'b', { t: 'ping', seq: 1 }],
    ['gossip not an array', 'b', { t: 'ping', seq: 1, gossip: {} }],
    ['negative seq', 'b', { t: 'ack', seq: -1, gossip: [] }],
    ['string seq', 'b', { t: 'ack', seq: '1', gossip: [] }],
    ['NaN seq', 'b', { t: 'nack', seq: NaN, gossip: [] }],
    ['ping-req without target', 'b', { t: 'ping-req', seq: 1, gossip: [] }],
    ['ping-req with huge target', 'b', { t: 'ping-req', seq: 1, target: 'y'.repeat(1000), gossip: [] }],
    ['too much gossip', 'b', { t: 'sync', gossip: Array.from({ length: SWIM_LIMITS.maxGossip + 1 }, () => good) }],
    ['one bad update', 'b', { t: 'ping', seq: 1, gossip: [good, { ...good, state: 'undead' }] }],
    ['too many addresses', 'b', { t: 'ping', seq: 1, gossip: [{ ...good, addresses: Array.from({ length: 100 }, (_, i) => `ws://x:${i}`) }] }],
    ['empty sender', '', { t: 'ping', seq: 1, gossip: [] }],
    ['sender is ourselves', 'a', { t: 'ping', seq: 1, gossip: [] }],
  ])('ignores and counts %s', (_name, from, raw) => {
    const s = linked(['b'])
    expect(() => { s.handleMessage(from, raw as SwimMessage, 1) }).not.toThrow()
    expect(drain(s)).toEqual([])
    expect(s.stats().malformed).toBe(1)
    expect(s.member('x')).toBeUndefined()
  })

  it('handleGossip validates too', () => {
    const s = linked(['b'])
    s.handleGossip('b', [{ id: 'x', incarnation: 1, state: 'bogus' }] as unknown as Update[], 0)
    s.handleGossip('b', 'nope' as unknown as Update[], 0)
    expect(s.stats().malformed).toBe(2)
    expect(s.member('x')).toBeUndefined()
  })

  it('the table is bounded', () => {
    const s = linked(['b'])
    for (let i = 0; i < SWIM_LIMITS.maxMembers / SWIM_LIMITS.maxGossip + 1; i++) {
      s.handleGossip('b', Array.from({ length: SWIM_LIMITS.maxGossip }, (_, j) => alive(`m${i}-${j}`)), 0)
    }
    expect(s.members()).toHaveLength(SWIM_LIMITS.maxMembers)
    expect(s.stats().tableFull).toBeGreaterThan(0)
  })

  it('outputs are snapshots: mutating them changes nothing inside', () => {
    const s = linked(['b'])
    const m = s.member('b')!
    m.addresses.push('ws://evil')
    m.state = 'dead'
    expect(s.member('b')).toEqual({ id: 'b', incarnation: 1, state: 'alive', addresses: ['ws://b:1'], linked: true })
  })
})
