// BufferPool: the bounded free list of scratch chunk buffers (src/util/buffer-pool.ts).
import { describe, it, expect } from 'vitest'
import fc from 'fast-check'
import { BufferPool } from '../../../src/util/buffer-pool.js'

describe('BufferPool', () => {
  it('take() gives a view of the asked length over a pool-sized buffer; give() recycles it for the next take()', () => {
    const pool = new BufferPool(64, 2)
    const a = pool.take(10)
    expect(a.length).toBe(10)
    expect(a.byteOffset).toBe(0)
    expect(a.buffer.byteLength).toBe(64)
    expect(pool.free).toBe(0)
    pool.give(a)
    expect(pool.free).toBe(1)
    const b = pool.take(64)
    expect(b.buffer).toBe(a.buffer)
    expect(pool.free).toBe(0)
  })

  it('keeps at most maxFree buffers, and never the same buffer twice', () => {
    const pool = new BufferPool(16, 2)
    const bs = [pool.take(16), pool.take(16), pool.take(16)]
    pool.give(bs[0]!)
    pool.give(bs[0]!) // a double give must not hand one buffer to two takers
    expect(pool.free).toBe(1)
    for (const b of bs) pool.give(b)
    expect(pool.free).toBe(2)
    const x = pool.take(1)
    const y = pool.take(1)
    expect(x.buffer).not.toBe(y.buffer)
  })

  it('ignores what it did not hand out: other sizes, offsets, shared memory, foreign buffers of its size', () => {
    const pool = new BufferPool(16, 4)
    pool.give(Buffer.alloc(32))
    pool.give(new Uint8Array(new ArrayBuffer(16), 4, 8))
    pool.give(new Uint8Array(new SharedArrayBuffer(16)))
    pool.give(Buffer.allocUnsafeSlow(16)) // the pool's size, offset 0, but not lent by it: still held elsewhere
    expect(pool.free).toBe(0)
    const zero = new BufferPool(16, 0)
    zero.give(zero.take(16))
    expect(zero.free).toBe(0)
  })

  it('refuses bad sizes with a RangeError naming the problem', () => {
    expect(() => new BufferPool(0, 1)).toThrow(/size/)
    expect(() => new BufferPool(8, -1)).toThrow(/maxFree/)
    expect(() => new BufferPool(8, 1).take(9)).toThrow(/9 bytes/)
    expect(() => new BufferPool(8, 1).take(-1)).toThrow(RangeError)
  })

  it('property: copyIn splits any bytes (shared memory too) into ≤ size parts that join back to them', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), fc.integer({ min: 1, max: 40 }), fc.boolean(), (bytes, size, shared) => {
      const pool = new BufferPool(size, 3)
      let src: Uint8Array = bytes
      if (shared) {
        src = new Uint8Array(new SharedArrayBuffer(bytes.length + 3), 3, bytes.length)
        src.set(bytes)
      }
      const parts = pool.copyIn(src)
      expect(parts.length).toBe(Math.max(1, Math.ceil(bytes.length / size)))
      for (const p of parts) expect(p.length).toBeLessThanOrEqual(size)
      expect(Buffer.concat(parts).equals(bytes)).toBe(true)
      // Recycled and refilled: the next copy is still right.
      for (const p of parts) pool.give(p)
      const again = pool.copyIn(src)
      expect(Buffer.concat(again).equals(bytes)).toBe(true)
    }), { numRuns: 300 })
  })
})
