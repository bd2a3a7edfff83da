import { describe, it, expect } from 'vitest'
import { BroadcastQueue, retransmitLimit } from '../../../src/membership/dissemination.js'
import { SWIM_DEFAULTS, Swim, type Update } from '../../../src/membership/swim.js'

const alive = (id: string, incarnation = 1): Update => ({ id, incarnation, state: 'alive', addresses: [] })

describe('retransmit limit = retransmitMult × ceil(log10(n + 1))', () => {
  it.each([
    [1, 4], [9, 4], [10, 8], [99, 8], [100, 12], [1000, 16],
  ])('n = %i → %i transmissions (mult 4)', (n, limit) => {
    expect(retransmitLimit(4, n)).toBe(limit)
  })
})

describe('BroadcastQueue', () => {
  it('sends the least transmitted first, newest first among equals', () => {
    const q = new BroadcastQueue()
    q.enqueue('a', alive('a'))
    q.enqueue('b', alive('b'))
    expect(q.take(1, 10).map((u) => u.id)).toEqual(['b'])
    expect(q.take(1, 10).map((u) => u.id)).toEqual(['a'])
    q.enqueue('c', alive('c'))
    expect(q.take(3, 10).map((u) => u.id)).toEqual(['c', 'b', 'a'])
  })

  it('drops an update after `limit` transmissions; re-enqueueing resets the count', () => {
    const q = new BroadcastQueue()
    q.enqueue('a', alive('a'))
    for (let i = 0; i < 3; i++) expect(q.take(8, 3)).toHaveLength(1)
    expect(q.take(8, 3)).toHaveLength(0)
    q.enqueue('a', alive('a', 2))
    expect(q.take(8, 3)).toEqual([alive('a', 2)])
  })

  it('invalidate drops every entry about a member, confirmations included', () => {
    const q = new BroadcastQueue()
    q.enqueue('x\u0000p', { ...alive('x'), state: 'suspect', from: 'p' })
    q.enqueue('x\u0000q', { ...alive('x'), state: 'suspect', from: 'q' })
    q.enqueue('y', alive('y'))
    q.invalidate('x')
    expect(q.peek().map((e) => e.update.id)).toEqual(['y'])
  })

  it('skipped updates are not counted', () => {
    const q = new BroadcastQueue()
    q.enqueue('a', alive('a'))
    for (let i = 0; i < 5; i++) expect(q.take(8, 1, (u) => u.id === 'a')).toHaveLength(0)
    expect(q.take(8, 1)).toHaveLength(1)
  })
})

describe('piggybacking in the Swim core', () => {
  function core (maxPiggyback = 8): Swim {
    const s = new Swim({ ...SWIM_DEFAULTS, maxPiggyback, selfId: 'me', incarnation: 1, addresses: [], random: () => 0.5 }, 0)
    // 9 members known locally (no incarnation → not gossiped): n = 10, limit = 4 × ceil(log10 11) = 8.
    for (let i = 0; i < 9; i++) s.addMember({ id: `m${i}`, addresses: [] }, 0)
    while (s.poll() !== undefined) { /* drain */ }
    return s
  }

  it('an update is piggybacked exactly retransmitMult × ceil(log10(n + 1)) = 8 times, then no more', () => {
    const s = core()
    expect(s.pendingGossip()).toEqual([])
    s.handleGossip('m0', [alive('m1', 5)], 1)
    let count = 0
    for (let i = 0; i < 20; i++) count += s.gossipFor(`m${2 + (i % 7)}`).filter((u) => u.id === 'm1').length
    expect(count).toBe(8)
    expect(s.pendingGossip()).toEqual([])
  })

  it('news about the recipient itself is not sent to it (and not counted) unless it is bad news', () => {
    const s = core()
    s.handleGossip('m0', [alive('m1', 5)], 1)
    for (let i = 0; i < 20; i++) expect(s.gossipFor('m1')).toEqual([])
    expect(s.pendingGossip()[0]?.transmits).toBe(0)
  })

  it('at most maxPiggyback per message, least transmitted first', () => {
    const s = core(3)
    s.handleGossip('m0', [1, 2, 3, 4, 5].map((i) => alive(`m${i}`, 9)), 1)
    const first = s.gossipFor('m8').map((u) => u.id)
    expect(first).toHaveLength(3)
    const second = s.gossipFor('m8').map((u) => u.id)
    // The two never sent go before any sent once.
    expect(second.slice(0, 2).every((id) => !first.includes(id))).toBe(true)
    expect(second).toHaveLength(3)
  })

  it('buddy system: a suspected recipient gets its suspicion first, even when its gossip budget is spent', () => {
    const s = core(2)
    s.handleGossip('m0', [{ id: 'm1', incarnation: 0, state: 'suspect', addresses: [], from: 'm0' }, alive('m2', 3), alive('m3', 3)], 1)
    for (let i = 0; i < 20; i++) {
      const g = s.gossipFor('m1')
      expect(g[0]).toMatchObject({ id: 'm1', state: 'suspect', incarnation: 0 })
      expect(g.length).toBeLessThanOrEqual(2)
    }
  })
})
