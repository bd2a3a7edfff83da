import { describe, it, expect } from 'vitest'
import { FlowPinner, type FlowKey } from '../../../src/routing/flow-pinning.js'

const P1 = ['s', 'a', 't']
const P2 = ['s', 'b', 't']
const P3 = ['s', 'c', 'd', 't']
const flow = (i: number): FlowKey => ({ sender: 's', receiver: 't', stream: i })
const key = (p: readonly string[] | undefined): string => (p ?? []).join('>')

function share (pinner: FlowPinner, n: number, now: number, from = 0): Map<string, number> {
  const m = new Map<string, number>()
  for (let i = from; i < from + n; i++) {
    const k = key(pinner.pathFor(flow(i), now))
    m.set(k, (m.get(k) ?? 0) + 1)
  }
  return m
}

describe('FlowPinner', () => {
  it('spreads new flows in proportion to 1 / cost', () => {
    const p = new FlowPinner()
    p.setPaths('t', [P1, P2, P3], [10, 20, 40], 0)
    const s = share(p, 7000, 0)
    // Expected shares 4/7, 2/7, 1/7 of 7000 = 4000, 2000, 1000.
    expect(s.get(key(P1))!).toBeGreaterThan(3750)
    expect(s.get(key(P1))!).toBeLessThan(4250)
    expect(s.get(key(P2))!).toBeGreaterThan(1800)
    expect(s.get(key(P2))!).toBeLessThan(2200)
    expect(s.get(key(P3))!).toBeGreaterThan(850)
    expect(s.get(key(P3))!).toBeLessThan(1150)
  })

  it('is stable under unchanged tables, even for evicted pins and other instances', () => {
    const a = new FlowPinner({ maxFlows: 10 })
    const b = new FlowPinner()
    for (const x of [a, b]) x.setPaths('t', [P1, P2, P3], [10, 20, 40], 0)
    const first = Array.from({ length: 200 }, (_, i) => key(a.pathFor(flow(i), 0)))
    expect(a.size).toBe(10)
    for (let round = 1; round < 3; round++) {
      a.setPaths('t', [P1, P2, P3], [10, 20, 40], round) // same table again
      expect(Array.from({ length: 200 }, (_, i) => key(a.pathFor(flow(i), round * 5_000)))).toEqual(first)
    }
    expect(Array.from({ length: 200 }, (_, i) => key(b.pathFor(flow(i), 0)))).toEqual(first)
    expect(a.moved).toBe(0)
  })

  it('a path whose cost rises drains: new flows avoid it, active flows stay, idle ones move', () => {
    const p = new FlowPinner({ idleMs: 1_000, drainMs: 10_000 })
    p.setPaths('t', [P1, P2], [10, 10], 0)
    const onP1 = Array.from({ length: 400 }, (_, i) => i).filter((i) => key(p.pathFor(flow(i), 0)) === key(P1))
    expect(onP1.length).toBeGreaterThan(150)
    p.setPaths('t', [P1, P2], [30, 10], 100) // P1 got worse
    expect(p.isDraining('t', P1, 100)).toBe(true)
    // New flows all go to P2 while P1 drains.
    expect(share(p, 300, 200, 10_000).get(key(P1))).toBeUndefined()
    // Active flows (last frame < idleMs ago) stay on P1: no reordering.
    for (const i of onP1) expect(key(p.pathFor(flow(i), 900))).toBe(key(P1))
    // After an idle gap they move.
    for (const i of onP1) expect(key(p.pathFor(flow(i), 2_000))).toBe(key(P2))
    expect(p.moved).toBe(onP1.length)
    // After the drain, P1 takes new flows again at its new weight (1/30 vs 1/10 → ~25 %).
    const later = share(p, 2000, 20_000, 50_000)
    expect(later.get(key(P1))!).toBeGreaterThan(380)
    expect(later.get(key(P1))!).toBeLessThan(620)
  })

  it('a path that disappears moves its flows at once; a cheaper or new path moves none', () => {
    const p = new FlowPinner()
    p.setPaths('t', [P1, P2], [10, 10], 0)
    const before = Array.from({ length: 100 }, (_, i) => key(p.pathFor(flow(i), 0)))
    p.setPaths('t', [P1, P2, P3], [5, 10, 10], 10) // P1 cheaper, P3 new
    expect(Array.from({ length: 100 }, (_, i) => key(p.pathFor(flow(i), 20)))).toEqual(before)
    p.setPaths('t', [P2, P3], [10, 10], 30) // P1 gone
    const after = Array.from({ length: 100 }, (_, i) => key(p.pathFor(flow(i), 40)))
    after.forEach((k, i) => {
      if (before[i] !== key(P1)) expect(k).toBe(before[i])
      else expect(k).not.toBe(key(P1))
    })
  })

  it('a flow pinned while its destination had one path spreads once another appears: after an idle gap, or at once when quiescent', () => {
    const p = new FlowPinner({ idleMs: 1_000 })
    p.setPaths('t', [P1], [10], 0)
    for (let i = 0; i < 200; i++) expect(p.pathFor(flow(i), 0)).toEqual(P1)
    p.setPaths('t', [P1, P2], [10, 10], 100) // P2 appears
    const fresh = new FlowPinner()
    fresh.setPaths('t', [P1, P2], [10, 10], 0)
    const want = Array.from({ length: 200 }, (_, i) => key(fresh.pathFor(flow(i), 0)))
    expect(want.filter((k) => k === key(P2)).length).toBeGreaterThan(60)
    // Active (used < idleMs ago, not quiescent): every flow stays on P1.
    for (let i = 0; i < 100; i++) expect(p.pathFor(flow(i), 500)).toEqual(P1)
    // Quiescent: moves at once to the choice a fresh pinner makes.
    for (let i = 0; i < 100; i++) expect(key(p.pathFor(flow(i), 600, true))).toBe(want[i])
    // Idle gap: flows 100..199 (last used at 0) move at their next frame.
    for (let i = 100; i < 200; i++) expect(key(p.pathFor(flow(i), 1_200))).toBe(want[i])
    expect(p.moved).toBe(want.filter((k) => k === key(P2)).length)
    // Re-chosen once: later frames keep the new pin even after another idle gap.
    for (let i = 0; i < 200; i++) expect(key(p.pathFor(flow(i), 10_000))).toBe(want[i])
  })

  it('a path that got cheaper takes its share of quiescent flows (not of active ones)', () => {
    const p = new FlowPinner({ idleMs: 1_000 })
    p.setPaths('t', [P1, P2], [10, 1_000], 0) // P2 barely takes anything
    for (let i = 0; i < 200; i++) p.pathFor(flow(i), 0)
    p.setPaths('t', [P1, P2], [10, 10], 50) // P2's cost fell: equal now
    const fresh = new FlowPinner()
    fresh.setPaths('t', [P1, P2], [10, 10], 0)
    const want = Array.from({ length: 200 }, (_, i) => key(fresh.pathFor(flow(i), 0)))
    const before = Array.from({ length: 200 }, (_, i) => key(p.pathFor(flow(i), 100))) // active: unchanged
    expect(before.filter((k) => k === key(P2)).length).toBeLessThan(10)
    expect(Array.from({ length: 200 }, (_, i) => key(p.pathFor(flow(i), 200, true)))).toEqual(want)
    p.setPaths('t', [P1, P2], [10, 10], 300) // the same table again: no churn
    expect(Array.from({ length: 200 }, (_, i) => key(p.pathFor(flow(i), 5_000, true)))).toEqual(want)
  })

  it('when every path drains, flows still get one', () => {
    const p = new FlowPinner()
    p.setPaths('t', [P1], [10], 0)
    p.setPaths('t', [P1], [50], 1)
    expect(p.pathFor(flow(1), 2)).toEqual(P1)
  })

  it('unknown destinations, release, prune, validation', () => {
    const p = new FlowPinner()
    expect(p.pathFor(flow(1), 0)).toBeUndefined()
    p.setPaths('t', [P1], [1], 0)
    p.pathFor(flow(1), 0)
    p.pathFor(flow(2), 50_000)
    p.release(flow(2))
    expect(p.size).toBe(1)
    expect(p.prune(60_000)).toBe(1)
    p.setPaths('t', [], [], 0)
    expect(p.pathFor(flow(1), 0)).toBeUndefined()
    expect(() => { p.setPaths('t', [P1], [], 0) }).toThrow(RangeError)
    expect(() => { p.setPaths('t', [P1], [0], 0) }).toThrow(RangeError)
    expect(() => new FlowPinner({ idleMs: -1 })).toThrow(/idleMs/)
  })
})
