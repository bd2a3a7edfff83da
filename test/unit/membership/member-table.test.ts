import { describe, it, expect } from 'vitest'
import fc from 'fast-check'
import {
  MemberTable, SWIM_LIMITS, parseUpdate, parseUpdates, supersedes, type MemberState, type Update,
} from '../../../src/membership/member-table.js'
import { SWIM_DEFAULTS, Swim } from '../../../src/membership/swim.js'

const u = (state: MemberState, incarnation: number, addresses: string[] = []): Update => ({ id: 'x', incarnation, state, addresses })

describe('precedence rules (SWIM §4.2)', () => {
  // [current, incoming, incoming wins?]
  const rows: Array<[string, Update, Update, boolean]> = [
    ['alive(i) over alive(j), i > j', u('alive', 1), u('alive', 2), true],
    ['alive(i) not over alive(i)', u('alive', 2), u('alive', 2), false],
    ['alive(i) not over alive(j), i < j', u('alive', 3), u('alive', 2), false],
    ['alive(i) over suspect(j), i > j (refutation)', u('suspect', 1), u('alive', 2), true],
    ['alive(i) not over suspect(i)', u('suspect', 2), u('alive', 2), false],
    ['alive(i) not over suspect(j), i < j', u('suspect', 3), u('alive', 2), false],
    ['suspect(i) over alive(i)', u('alive', 2), u('suspect', 2), true],
    ['suspect(i) over alive(j), i > j', u('alive', 1), u('suspect', 2), true],
    ['suspect(i) not over alive(j), i < j', u('alive', 3), u('suspect', 2), false],
    ['suspect(i) over suspect(j), i > j', u('suspect', 1), u('suspect', 2), true],
    ['suspect(i) not over suspect(i)', u('suspect', 2), u('suspect', 2), false],
    ['dead(i) over alive(i)', u('alive', 2), u('dead', 2), true],
    ['dead(i) over suspect(i)', u('suspect', 2), u('dead', 2), true],
    ['dead(i) over suspect(j), i > j', u('suspect', 1), u('dead', 2), true],
    ['dead(i) not over alive(j), i < j', u('alive', 3), u('dead', 2), false],
    ['dead(i) not over dead(i)', u('dead', 2), u('dead', 2), false],
    ['left(i) over alive(i)', u('alive', 2), u('left', 2), true],
    ['left(i) over suspect(i)', u('suspect', 2), u('left', 2), true],
    ['left(i) over dead(i) (graceful explains it)', u('dead', 2), u('left', 2), true],
    ['dead(i) not over left(i)', u('left', 2), u('dead', 2), false],
    ['left(i) not over alive(j), i < j', u('alive', 3), u('left', 2), false],
    ['alive(i) over dead(j), i > j (restart revives)', u('dead', 2), u('alive', 3), true],
    ['alive(i) not over dead(i)', u('dead', 2), u('alive', 2), false],
    ['alive(i) over left(j), i > j (rejoin)', u('left', 2), u('alive', 3), true],
    ['suspect(i) not over dead(i)', u('dead', 2), u('suspect', 2), false],
  ]

  it.each(rows)('%s', (_name, cur, next, wins) => {
    expect(supersedes(next, cur)).toBe(wins)
  })

  it.each(rows)('the table applies it: %s', (_name, cur, next, wins) => {
    const t = new MemberTable()
    t.apply(cur, 0)
    const r = t.apply(next, 5)
    const rec = t.get('x')
    expect(rec?.state).toBe(wins ? next.state : cur.state)
    expect(rec?.incarnation).toBe(wins ? next.incarnation : cur.incarnation)
    expect(rec?.since).toBe(wins ? 5 : 0)
    expect(r.kind).toBe(wins ? 'updated' : (cur.state === next.state && cur.incarnation === next.incarnation ? 'same' : 'stale'))
  })

  it('keeps per-state counts in step', () => {
    const t = new MemberTable()
    t.apply({ ...u('alive', 1), id: 'a' }, 0)
    t.apply({ ...u('alive', 1), id: 'b' }, 0)
    t.apply({ ...u('suspect', 1), id: 'b' }, 0)
    t.apply({ ...u('dead', 1), id: 'c' }, 0)
    expect(t.counts()).toEqual({ alive: 1, suspect: 1, dead: 1, left: 0 })
    t.forget('c')
    expect(t.counts()).toEqual({ alive: 1, suspect: 1, dead: 0, left: 0 })
  })
})

describe('address register', () => {
  it('third-party verdicts without addresses never erase known ones', () => {
    const t = new MemberTable()
    t.apply(u('alive', 1, ['ws://x:1']), 0)
    t.apply(u('suspect', 1), 0)
    t.apply(u('dead', 1), 0)
    expect(t.get('x')?.addresses).toEqual(['ws://x:1'])
    // Even at a higher incarnation: "no addresses" from a third party means "unknown".
    t.apply(u('suspect', 2), 0)
    expect(t.get('x')).toMatchObject({ state: 'suspect', incarnation: 2, addresses: ['ws://x:1'] })
  })

  it('a restart (higher incarnation alive) replaces them, even with an empty list (now dial-only)', () => {
    const t = new MemberTable()
    t.apply(u('alive', 1, ['ws://x:1']), 0)
    t.apply(u('alive', 2, ['ws://x:2']), 0)
    expect(t.get('x')?.addresses).toEqual(['ws://x:2'])
    t.apply(u('alive', 3, []), 0)
    expect(t.get('x')?.addresses).toEqual([])
  })

  it('addresses carried by an older update that loses still fill in an unknown list', () => {
    const t = new MemberTable()
    t.apply(u('suspect', 4), 0)
    t.apply(u('alive', 4, ['ws://x:4']), 0)
    expect(t.get('x')).toMatchObject({ state: 'suspect', addresses: ['ws://x:4'] })
  })
})

describe('tombstones', () => {
  it('a forgotten member is not revived by stale news, only by a higher incarnation', () => {
    const t = new MemberTable()
    t.apply(u('dead', 5), 0)
    t.forget('x')
    expect(t.get('x')).toBeUndefined()
    expect(t.apply(u('alive', 5), 1).kind).toBe('stale')
    expect(t.apply(u('suspect', 5), 1).kind).toBe('stale')
    expect(t.apply(u('alive', 6), 2).kind).toBe('new')
    expect(t.get('x')?.state).toBe('alive')
    expect(t.tombstone('x')).toBeUndefined()
  })

  it('a full table refuses new members', () => {
    const t = new MemberTable(2)
    t.apply({ ...u('alive', 1), id: 'a' }, 0)
    t.apply({ ...u('alive', 1), id: 'b' }, 0)
    expect(t.apply({ ...u('alive', 1), id: 'c' }, 0).kind).toBe('full')
    expect(t.size).toBe(2)
  })
})

describe('parseUpdate (network input)', () => {
  const good = { id: 'x', incarnation: 3, state: 'suspect', addresses: ['ws://x:1'], from: 'y' }
  it('accepts a well-formed update and copies only known fields, frozen', () => {
    const p = parseUpdate({ ...good, extra: 'ignored' })
    expect(p).toEqual(good)
    expect(Object.isFrozen(p)).toBe(true)
    expect(parseUpdate({ ...good, from: undefined })).toEqual({ id: 'x', incarnation: 3, state: 'suspect', addresses: ['ws://x:1'] })
  })

  it.each([
    ['null', null],
    ['array', [good]],
    ['string', 'x'],
    ['empty id', { ...good, id: '' }],
    ['id too long', { ...good, id: 'x'.repeat(SWIM_LIMITS.maxIdLength + 1) }],
    ['numeric id', { ...good, id: 7 }],
    ['negative incarnation', { ...good, incarnation: -1 }],
    ['fractional incarnation', { ...good, incarnation: 1.5 }],
    ['unsafe incarnation', { ...good, incarnation: 2 ** 53 }],
    ['string incarnation', { ...good, incarnation: '3' }],
    ['unknown state', { ...good, state: 'zombie' }],
    ['addresses not an array', { ...good, addresses: 'ws://x' }],
    ['too many addresses', { ...good, addresses: Array.from({ length: SWIM_LIMITS.maxAddresses + 1 }, (_, i) => `ws://x:${i}`) }],
    ['address too long', { ...good, addresses: ['w'.repeat(SWIM_LIMITS.maxAddressLength + 1)] }],
    ['empty address', { ...good, addresses: [''] }],
    ['non-string address', { ...good, addresses: [1] }],
    ['bad from', { ...good, from: 5 }],
  ])('rejects %s', (_name, raw) => {
    expect(parseUpdate(raw)).toBeUndefined()
  })

  it('parseUpdates rejects too many updates or one bad one', () => {
    expect(parseUpdates(Array.from({ length: SWIM_LIMITS.maxGossip }, () => good))).toHaveLength(SWIM_LIMITS.maxGossip)
    expect(parseUpdates(Array.from({ length: SWIM_LIMITS.maxGossip + 1 }, () => good))).toBeUndefined()
    expect(parseUpdates([good, { ...good, state: 'x' }])).toBeUndefined()
    expect(parseUpdates({ length: 1 })).toBeUndefined()
  })
})

// ------------------------------------------------------------ convergence

/**
 * Updates as real nodes produce them: a member's addresses are a function of
 * its incarnation (it restarts to change them); `alive` carries them, verdicts
 * by third parties carry them or nothing.
 */
const addressesOf = (id: string, inc: number): string[] => (inc % 3 === 0 ? [] : [`ws://${id}:${inc}`])
const arbUpdate: fc.Arbitrary<Update> = fc.record({
  id: fc.constantFrom('x', 'y', 'z'),
  incarnation: fc.integer({ min: 0, max: 4 }),
  state: fc.constantFrom<MemberState>('alive', 'suspect', 'dead', 'left'),
  withAddresses: fc.boolean(),
  from: fc.constantFrom('p', 'q', 'r'),
}).map(({ id, incarnation, state, withAddresses, from }) => {
  const addresses = state === 'alive' || withAddresses ? addressesOf(id, incarnation) : []
  return state === 'alive' ? { id, incarnation, state, addresses } : { id, incarnation, state, addresses, from }
})

/** The updates, and two further arrangements: a permutation and one with duplicates. */
const arbOrders = fc.array(arbUpdate, { minLength: 1, maxLength: 30 }).chain((ups) => fc.tuple(
  fc.constant(ups),
  fc.shuffledSubarray(ups, { minLength: ups.length, maxLength: ups.length }),
  fc.array(fc.integer({ min: 0, max: ups.length - 1 }), { maxLength: 30 })
    .chain((dups) => fc.shuffledSubarray([...ups, ...dups.map((i) => ups[i] as Update)], { minLength: ups.length + dups.length, maxLength: ups.length + dups.length })),
))

function tableOf (ups: Update[]): string[] {
  const t = new MemberTable()
  for (const x of ups) t.apply(x, 0)
  return [...t.values()].map((r) => `${r.id} ${r.incarnation} ${r.state} ${r.addresses.join(',')}`).sort()
}

function swimTableOf (ups: Update[]): string[] {
  const s = new Swim({ ...SWIM_DEFAULTS, selfId: 'self', incarnation: 1, addresses: [], random: () => 0.5 }, 0)
  // One update per message, from varying senders, as gossip would bring them.
  ups.forEach((x, i) => { s.handleGossip(i % 2 === 0 ? 'p' : 'q', [x], i) })
  return s.members().map((m) => `${m.id} ${m.incarnation} ${m.state} ${m.addresses.join(',')}`).sort()
}

describe('convergence (the table is a CRDT)', () => {
  it('any order and any duplication of the same updates yields the same table', () => {
    fc.assert(fc.property(arbOrders, ([a, b, c]) => {
      const ta = tableOf(a)
      expect(tableOf(b)).toEqual(ta)
      expect(tableOf(c)).toEqual(ta)
    }), { numRuns: 500 })
  })

  it('the result is, per member, the update with the largest (incarnation, state rank)', () => {
    fc.assert(fc.property(fc.array(arbUpdate, { minLength: 1, maxLength: 30 }), (ups) => {
      const t = new MemberTable()
      for (const x of ups) t.apply(x, 0)
      for (const id of new Set(ups.map((x) => x.id))) {
        const best = ups.filter((x) => x.id === id).reduce((m, x) => (supersedes(x, m) ? x : m))
        expect(t.get(id)).toMatchObject({ incarnation: best.incarnation, state: best.state })
      }
    }), { numRuns: 300 })
  })

  it('Swim cores fed the same gossip in different orders agree', () => {
    fc.assert(fc.property(arbOrders, ([a, b, c]) => {
      const ta = swimTableOf(a)
      expect(swimTableOf(b)).toEqual(ta)
      expect(swimTableOf(c)).toEqual(ta)
    }), { numRuns: 200 })
  })
})
