import { describe, it, expect } from 'vitest'
import fc from 'fast-check'
import { LaneQueue } from '../../../src/delivery/lane-queue.js'

describe('LaneQueue', () => {
  it('serves the highest lane first, each lane in push order', () => {
    const q = new LaneQueue<string>(3)
    expect(q.peek()).toBeUndefined()
    q.push(2, 'b1'); q.push(1, 'p1'); q.push(2, 'b2'); q.push(1, 'p2')
    expect(q.size).toBe(4)
    const out: string[] = []
    for (let head = q.peek(); head !== undefined; head = q.peek()) {
      expect(q.shift(head.startsWith('p') ? 1 : 2)).toBe(head)
      out.push(head)
    }
    expect(out).toEqual(['p1', 'p2', 'b1', 'b2'])
    expect(q.size).toBe(0)
  })

  it('busyFor: a send queues behind its own lane and higher lanes, not lower ones', () => {
    const q = new LaneQueue<number>(3)
    expect(q.busyFor(1)).toBe(false)
    q.push(2, 1)
    expect(q.busyFor(1)).toBe(false) // priority may pass a waiting bulk send
    expect(q.busyFor(2)).toBe(true)
    q.push(1, 2)
    expect(q.busyFor(1)).toBe(true)
    expect(q.busyFor(0)).toBe(false)
  })

  it('removeWhere takes matching sends from every lane and keeps the order of the rest', () => {
    const q = new LaneQueue<number>(2)
    for (const n of [1, 2, 3, 4, 5, 6]) q.push(n % 2, n)
    expect(q.removeWhere((n) => n > 3)).toEqual([4, 6, 5])
    expect([q.shift(0), q.shift(0), q.shift(1), q.shift(1)]).toEqual([2, undefined, 1, 3])
  })

  it('forEach visits every waiting send, lane order then call order, and removes none', () => {
    const q = new LaneQueue<number>(2)
    for (const n of [1, 2, 3, 4]) q.push(n % 2, n)
    const seen: number[] = []
    q.forEach((n) => { seen.push(n) })
    expect(seen).toEqual([2, 4, 1, 3])
    expect(q.size).toBe(4)
  })

  it('rejects a bad lane count and an out-of-range lane', () => {
    expect(() => new LaneQueue(0)).toThrow(RangeError)
    expect(() => new LaneQueue<number>(2).push(2, 1)).toThrow(/lane 2 out of range 0..1/)
  })

  it('property: draining yields, per lane, exactly the pushed items in order, and never a lower lane while a higher one waits', () => {
    fc.assert(fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 2 }), fc.integer())), (ops) => {
      const q = new LaneQueue<[number, number]>(3)
      for (const op of ops) q.push(op[0], op)
      const byLane: number[][] = [[], [], []]
      let lastLane = 0
      for (let head = q.peek(); head !== undefined; head = q.peek()) {
        const lane = head[0]
        expect(lane).toBeGreaterThanOrEqual(lastLane)
        lastLane = lane
        expect(q.shift(lane)).toBe(head)
        byLane[lane]!.push(head[1])
      }
      for (let l = 0; l < 3; l++) expect(byLane[l]).toEqual(ops.filter(([lane]) => lane === l).map(([, v]) => v))
    }))
  })
})
