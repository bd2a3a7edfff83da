// SendSlab: outgoing WebSocket message buffers carved from large slabs.
import { describe, it, expect } from 'vitest'
import fc from 'fast-check'
import { SendSlab } from '../../../src/connection/send-slab.js'

/** Do two views share any byte? (Small slabs may come from Node's shared Buffer pool.) */
function overlaps (a: Uint8Array, b: Uint8Array): boolean {
  return a.buffer === b.buffer && a.byteOffset < b.byteOffset + b.length && b.byteOffset < a.byteOffset + a.length
}

describe('SendSlab', () => {
  it('hands out consecutive regions of one slab while they fit', () => {
    const s = new SendSlab(1024)
    const r1 = s.room(100)
    r1.fill(1, 0, 300)
    const a = s.take(300)
    const r2 = s.room(100)
    expect(r2.buffer).toBe(a.buffer)
    expect(r2.byteOffset).toBe(a.byteOffset + 300)
    expect(r2.length).toBe(1024 - 300)
    r2.fill(2, 0, 10)
    const b = s.take(10)
    expect([...a].every((x) => x === 1)).toBe(true)
    expect([...b].every((x) => x === 2)).toBe(true)
  })

  it('starts a fresh slab when the rest is too small, and a larger one for a larger need', () => {
    const s = new SendSlab(1024)
    s.room(1000)
    const a = s.take(1000)
    const r = s.room(100)
    expect(overlaps(r, a)).toBe(false)
    expect(r.length).toBe(1024)
    s.take(0)
    const big = s.room(5000)
    expect(big.length).toBe(5000)
  })

  it('asking again without taking returns the same room', () => {
    const s = new SendSlab(1024)
    const r1 = s.room(10)
    const r2 = s.room(10)
    expect(r2.byteOffset).toBe(r1.byteOffset)
    expect(r2.buffer).toBe(r1.buffer)
  })

  it('refuses to take more than the room, and a bad slab size', () => {
    const s = new SendSlab(64)
    expect(() => s.take(1)).toThrow(RangeError) // no room asked for yet
    s.room(10)
    expect(() => s.take(65)).toThrow(/exceeds the room/)
    expect(() => s.take(-1)).toThrow(RangeError)
    expect(() => new SendSlab(0)).toThrow(RangeError)
    expect(() => new SendSlab(1.5)).toThrow(RangeError)
  })

  it('regions taken never overlap and keep their bytes (property)', () => {
    fc.assert(fc.property(fc.array(fc.integer({ min: 0, max: 3000 }), { minLength: 1, maxLength: 60 }), (sizes) => {
      const s = new SendSlab(2048)
      const taken: Buffer[] = []
      sizes.forEach((n, i) => {
        const room = s.room(n)
        expect(room.length).toBeGreaterThanOrEqual(n)
        room.fill(i & 0xff, 0, n)
        taken.push(s.take(n))
      })
      taken.forEach((b, i) => {
        for (let j = 0; j < i; j++) expect(overlaps(b, taken[j] as Buffer)).toBe(false)
        expect(b.length).toBe(sizes[i])
        expect(b.every((x) => x === (i & 0xff))).toBe(true)
      })
    }))
  })
})
