import { describe, it, expect } from 'vitest'
import { Suspicion, suspicionBounds, suspicionTimeout } from '../../../src/membership/suspicion.js'
import { SWIM_DEFAULTS, Swim, type SwimOutput } from '../../../src/membership/swim.js'

const P100 = { protocolPeriodMs: 100, suspicionMult: 4, suspicionMaxMult: 6, indirectProbes: 3 }

describe('Lifeguard suspicion timeout', () => {
  it.each([
    // n, min = 4 × log10(max(n, 2)) × 100, max = 6 × min, K = min(3, n − 2)
    [1, 120, 720, 0],
    [2, 120, 720, 0],
    [3, 190, 1140, 1],
    [4, 240, 1440, 2],
    [10, 400, 2400, 3],
    [100, 800, 4800, 3],
  ])('bounds for n = %i: min %i ms, max %i ms, K %i', (n, minMs, maxMs, expected) => {
    expect(suspicionBounds(n, P100)).toEqual({ minMs, maxMs, expected })
  })

  it('shrinks from max to min as confirmations arrive (n = 10, period 100 ms)', () => {
    const b = suspicionBounds(10, P100)
    // 2400 − 2000 × log(c + 1) / log(4): c = 1 → 1400, c = 2 → 815.04… (floored), c = 3 → 400.
    expect([0, 1, 2, 3, 4, 10].map((c) => suspicionTimeout(c, b))).toEqual([2400, 1400, 815, 400, 400, 400])
  })

  it('with K = 0 (two or fewer members) the timeout is the floor at once', () => {
    expect(suspicionTimeout(0, suspicionBounds(2, P100))).toBe(120)
  })

  it('default LAN config: 4 s floor, 24 s ceiling for 10 members', () => {
    expect(suspicionBounds(10, SWIM_DEFAULTS)).toEqual({ minMs: 4000, maxMs: 24000, expected: 3 })
  })

  it('Suspicion counts distinct suspecters, ignores repeats and stops at K', () => {
    const s = new Suspicion(7, 'a', 1000, suspicionBounds(10, P100))
    expect(s.deadline).toBe(3400)
    expect(s.confirm('a')).toBe(false) // the first suspecter is not a confirmation
    expect(s.confirm('b')).toBe(true)
    expect(s.confirm('b')).toBe(false)
    expect(s.deadline).toBe(2400)
    expect(s.confirm('c')).toBe(true)
    expect(s.deadline).toBe(1815)
    expect(s.confirm('d')).toBe(true)
    expect(s.deadline).toBe(1400)
    expect(s.confirm('e')).toBe(false) // beyond K: nothing left to shrink
    expect(s.confirmations).toBe(3)
  })

  it('postpone sets a floor later confirmations cannot undercut', () => {
    const s = new Suspicion(7, 'a', 0, suspicionBounds(10, P100))
    s.postpone(3000)
    expect(s.deadline).toBe(3000)
    s.confirm('b')
    s.confirm('c')
    expect(s.deadline).toBe(3000)
  })
})

describe('Lifeguard timeout inside the Swim core (exact deadlines)', () => {
  function drain (s: Swim): SwimOutput[] {
    const out: SwimOutput[] = []
    for (let o = s.poll(); o !== undefined; o = s.poll()) out.push(o)
    return out
  }

  function tenNodeView (): Swim {
    const s = new Swim({ ...SWIM_DEFAULTS, protocolPeriodMs: 100, probeTimeoutMs: 40, selfId: 'me', incarnation: 1, addresses: [], random: () => 0.5 }, 0)
    // 9 others, so n = 10; not linked, so no probing interferes.
    for (const id of ['x', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i']) s.addMember({ id, incarnation: 1, addresses: [] }, 0)
    drain(s)
    return s
  }
  const suspect = (from: string) => [{ id: 'x', incarnation: 1, state: 'suspect' as const, addresses: [], from }]

  it('deadline = start + 2400, 1400, 815, 400 as b, c, d, e confirm', () => {
    const s = tenNodeView()
    s.handleGossip('b', suspect('b'), 1000)
    expect(s.suspicion('x')).toEqual({ incarnation: 1, startedAt: 1000, confirmations: 0, deadline: 3400 })
    s.handleGossip('b', suspect('c'), 1010) // relayed by b, raised by c: counts for c
    expect(s.suspicion('x')?.deadline).toBe(2400)
    s.handleGossip('d', suspect('c'), 1020) // c again: no change
    expect(s.suspicion('x')?.deadline).toBe(2400)
    s.handleGossip('d', suspect('d'), 1030)
    expect(s.suspicion('x')?.deadline).toBe(1815)
    s.handleGossip('e', suspect('e'), 1040)
    expect(s.suspicion('x')).toMatchObject({ confirmations: 3, deadline: 1400 })
    expect(s.nextDeadline()).toBeLessThanOrEqual(1400)

    s.tick(1399)
    expect(s.member('x')?.state).toBe('suspect')
    drain(s)
    s.tick(1400)
    expect(s.member('x')?.state).toBe('dead')
    const dead = drain(s).find((o) => o.kind === 'member')
    expect(dead).toMatchObject({ kind: 'member', member: { id: 'x', state: 'dead' }, previous: 'suspect' })
    expect(s.stats().deaths).toBe(1)
    // Our verdict is gossiped with our name on it.
    expect(s.pendingGossip().map((g) => g.update)).toContainEqual({ id: 'x', incarnation: 1, state: 'dead', addresses: [], from: 'me' })
  })

  it('the suspected member itself and forged "from = me" echoes do not count', () => {
    const s = tenNodeView()
    s.handleGossip('b', suspect('b'), 0)
    s.handleGossip('x', suspect('x'), 1)
    s.handleGossip('c', suspect('me'), 2)
    expect(s.suspicion('x')?.confirmations).toBe(0)
  })

  it('a confirmation arriving after the shrunken deadline passed kills at the next tick', () => {
    const s = tenNodeView()
    s.handleGossip('b', suspect('b'), 0)
    s.tick(1500) // deadline 2400: still suspect
    expect(s.member('x')?.state).toBe('suspect')
    s.handleGossip('c', suspect('c'), 1500) // deadline now 1400, already past
    s.tick(1500)
    expect(s.member('x')?.state).toBe('dead')
  })

  it('a refutation (alive at a higher incarnation) cancels the suspicion', () => {
    const s = tenNodeView()
    s.handleGossip('b', suspect('b'), 0)
    s.handleGossip('x', [{ id: 'x', incarnation: 2, state: 'alive', addresses: [] }], 10)
    expect(s.suspicion('x')).toBeUndefined()
    s.tick(10_000)
    expect(s.member('x')).toMatchObject({ state: 'alive', incarnation: 2 })
  })
})
