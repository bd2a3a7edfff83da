import { describe, it, expect } from 'vitest'
import fc from 'fast-check'
import { PayloadLender, BORROW_MIN_BYTES } from '../../../src/codec/payload-lender.js'

describe('PayloadLender (borrowPayloads)', () => {
  it('lends a copy of the bytes, and after revoke every view of it is empty', () => {
    const l = new PayloadLender(64 * 1024)
    const src = Buffer.alloc(10_000, 7)
    const b = l.lend(src)
    expect(b.length).toBe(10_000)
    expect(b.equals(src)).toBe(true)
    src.fill(1) // a copy: the source may be reused (it is ring memory)
    expect(b[0]).toBe(7)
    const kept = b.subarray(100, 200)
    l.revoke()
    expect(b.length).toBe(0)
    expect(kept.length).toBe(0)
    expect(b[0]).toBeUndefined()
    expect(l.lent).toBe(1)
  })

  it('one lend at a time: a nested delivery gets a copy (canLend false), lend refuses, revoke is idempotent', () => {
    const l = new PayloadLender(64 * 1024)
    const first = l.lend(Buffer.alloc(BORROW_MIN_BYTES, 1))
    expect(l.canLend(BORROW_MIN_BYTES)).toBe(false)
    expect(() => l.lend(Buffer.alloc(BORROW_MIN_BYTES))).toThrow(/cannot lend 8192 bytes now/)
    expect(first[0]).toBe(1) // untouched by the refused lend
    l.revoke()
    l.revoke()
    expect(l.canLend(BORROW_MIN_BYTES)).toBe(true)
  })

  it('sizes: below minBytes and above maxBytes are not lent; bad bounds are refused', () => {
    const l = new PayloadLender(64 * 1024)
    expect(l.canLend(BORROW_MIN_BYTES - 1)).toBe(false)
    expect(l.canLend(BORROW_MIN_BYTES)).toBe(true)
    expect(l.canLend(64 * 1024)).toBe(true)
    expect(l.canLend(64 * 1024 + 1)).toBe(false)
    expect(() => l.lend(Buffer.alloc(64 * 1024 + 1))).toThrow(/cannot lend/)
    expect(() => new PayloadLender(0)).toThrow(RangeError)
    expect(() => new PayloadLender(1024, 2048)).toThrow(/minBytes/)
    expect(new PayloadLender(1024, 0).canLend(0)).toBe(true)
  })

  it('property: every lend shows exactly its source while lent, shared-memory sources included, and nothing after', () => {
    fc.assert(fc.property(
      fc.array(fc.record({ n: fc.integer({ min: 0, max: 4096 }), fill: fc.integer({ min: 0, max: 255 }), shared: fc.boolean(), off: fc.integer({ min: 0, max: 64 }) }), { minLength: 1, maxLength: 30 }),
      (msgs) => {
        const l = new PayloadLender(4096, 0)
        const old: Buffer[] = []
        for (const m of msgs) {
          const backing = m.shared ? new SharedArrayBuffer(m.off + m.n) : new ArrayBuffer(m.off + m.n)
          const src = new Uint8Array(backing, m.off, m.n)
          for (let i = 0; i < m.n; i++) src[i] = (m.fill + i) & 0xff
          const b = l.lend(src)
          if (!Buffer.from(src).equals(b)) return false
          if (old.some((o) => o.length !== 0)) return false
          l.revoke()
          old.push(b)
        }
        return old.every((o) => o.length === 0)
      },
    ), { numRuns: 200 })
  })
})
