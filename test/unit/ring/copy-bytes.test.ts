import { describe, it, expect } from 'vitest'
import fc from 'fast-check'
import { concatBytes, copyBytes, copyOut, copyWordsOut, FILL_MIN_BYTES } from '../../../src/ring/copy-bytes.js'

const SIZES = [0, 1, 7, FILL_MIN_BYTES - 1, FILL_MIN_BYTES, FILL_MIN_BYTES + 3, 65536 + 5]

function bytes (n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n)
  for (let i = 0; i < n; i++) b[i] = (seed * 131 + i * 17 + (i >>> 8)) & 0xff
  return b
}

describe('copyBytes / copyOut', () => {
  for (const shared of [true, false]) {
    it(`copyBytes writes exactly the source at any offset into ${shared ? 'SharedArrayBuffer' : 'ArrayBuffer'} memory, both paths`, () => {
      for (const n of SIZES) {
        for (const offset of [0, 1, 3, 4, 5, 8]) {
          const target = new Uint8Array(shared ? new SharedArrayBuffer(n + 16) : new ArrayBuffer(n + 16)).fill(0xee)
          const src = bytes(n, offset)
          copyBytes(target, offset, src)
          expect(target.subarray(offset, offset + n)).toEqual(src)
          // Nothing outside the destination range is touched.
          expect(target.subarray(0, offset).every((x) => x === 0xee)).toBe(true)
          expect(target.subarray(offset + n).every((x) => x === 0xee)).toBe(true)
        }
      }
    })
  }

  it('copyBytes copies from a view of shared memory (a ring record) at an odd offset', () => {
    const sab = new SharedArrayBuffer(70_000)
    const src = new Uint8Array(sab, 3, 65_537)
    src.set(bytes(src.length, 9))
    const out = new Uint8Array(65_541)
    copyBytes(out, 2, src)
    expect(out.subarray(2, 2 + src.length)).toEqual(bytes(src.length, 9))
  })

  it('copyBytes refuses a copy that does not fit, on both paths, and writes nothing', () => {
    for (const n of [10, FILL_MIN_BYTES * 2]) {
      const target = new Uint8Array(new SharedArrayBuffer(n + 4))
      expect(() => { copyBytes(target, 5, bytes(n, 1)) }).toThrow(RangeError)
      expect(() => { copyBytes(target, -1, bytes(n, 1)) }).toThrow(RangeError)
      expect(target.every((x) => x === 0)).toBe(true)
    }
  })

  it('copyOut returns a Buffer of its own (never shared memory) with the same bytes', () => {
    for (const n of SIZES) {
      const sab = new SharedArrayBuffer(n + 8)
      const view = new Uint8Array(sab, 4, n)
      view.set(bytes(n, n))
      const out = copyOut(view)
      expect(Buffer.isBuffer(out)).toBe(true)
      expect(out.buffer instanceof SharedArrayBuffer).toBe(false)
      expect(new Uint8Array(out)).toEqual(bytes(n, n))
      view.fill(0) // the ring reuses its memory: the copy must not change
      expect(new Uint8Array(out)).toEqual(bytes(n, n))
    }
  })

  it('matches TypedArray#set for any length, offset and source alignment', () => {
    fc.assert(fc.property(
      fc.integer({ min: 0, max: 5000 }), fc.integer({ min: 0, max: 64 }), fc.integer({ min: 0, max: 15 }), fc.boolean(),
      (n, offset, srcOffset, shared) => {
        const srcMem = new Uint8Array(new SharedArrayBuffer(n + srcOffset))
        const src = srcMem.subarray(srcOffset)
        src.set(bytes(n, offset))
        const make = (): Uint8Array => new Uint8Array(shared ? new SharedArrayBuffer(n + offset + 8) : new ArrayBuffer(n + offset + 8)).fill(1)
        const expected = make()
        expected.set(src, offset)
        const got = make()
        copyBytes(got, offset, src)
        expect(got).toEqual(expected)
        expect(copyOut(src)).toEqual(Buffer.from(expected.subarray(offset, offset + n)))
      },
    ), { numRuns: 300 })
  })

  it('concatBytes joins views of shared and plain memory like Buffer.concat, and checks the total', () => {
    const sab = new SharedArrayBuffer(10_000)
    new Uint8Array(sab).set(bytes(10_000, 4))
    const parts = [new Uint8Array(sab, 1, 5), bytes(3000, 2), new Uint8Array(sab, 7, FILL_MIN_BYTES + 1), new Uint8Array(0), new Uint8Array(sab, 9000, 999)]
    const total = parts.reduce((a, p) => a + p.length, 0)
    const out = concatBytes(parts, total)
    expect(out.buffer instanceof SharedArrayBuffer).toBe(false)
    expect(out).toEqual(Buffer.concat(parts.map((p) => Buffer.from(p))))
    expect(() => concatBytes(parts, total + 1)).toThrow(RangeError)
    expect(() => concatBytes(parts, total - 1)).toThrow(RangeError)
  })
})

describe('copyWordsOut', () => {
  it('copies exactly the range, at any length and target offset, touching nothing else', () => {
    fc.assert(fc.property(
      fc.integer({ min: 0, max: 600 }), fc.integer({ min: 0, max: 200 }), fc.integer({ min: 0, max: 15 }), fc.integer({ min: 0, max: 7 }),
      (len, startWords, offset, targetByteOffset) => {
        const sab = new SharedArrayBuffer(4 * startWords + len + 8)
        const src8 = new Uint8Array(sab)
        src8.set(bytes(src8.length, len))
        const src32 = new Int32Array(sab, 0, sab.byteLength >> 2)
        const start = 4 * startWords
        // The target is a view at any byte offset of its buffer (a slab's room is).
        const target = new Uint8Array(new ArrayBuffer(targetByteOffset + offset + len + 8), targetByteOffset).fill(0xee)
        copyWordsOut(src32, src8, start, len, target, new DataView(target.buffer, target.byteOffset, target.length), offset)
        expect(target.subarray(offset, offset + len)).toEqual(src8.subarray(start, start + len))
        expect(target.subarray(0, offset).every((x) => x === 0xee)).toBe(true)
        expect(target.subarray(offset + len).every((x) => x === 0xee)).toBe(true)
      },
    ), { numRuns: 300 })
  })

  it('refuses an unaligned start, a source range past the end, a target too small, or a DataView of other bytes', () => {
    const sab = new SharedArrayBuffer(64)
    const src8 = new Uint8Array(sab)
    const src32 = new Int32Array(sab)
    const target = new Uint8Array(16)
    const view = new DataView(target.buffer)
    expect(() => { copyWordsOut(src32, src8, 2, 4, target, view, 0) }).toThrow(RangeError)
    expect(() => { copyWordsOut(src32, src8, 60, 8, target, view, 0) }).toThrow(RangeError)
    expect(() => { copyWordsOut(src32, src8, 0, 12, target, view, 8) }).toThrow(RangeError)
    expect(() => { copyWordsOut(src32, src8, 0, 4, target, new DataView(new ArrayBuffer(32)), 0) }).toThrow(RangeError)
    // Same length, other memory; a NaN start.
    expect(() => { copyWordsOut(src32, src8, 0, 4, target, new DataView(new ArrayBuffer(16)), 0) }).toThrow(RangeError)
    expect(() => { copyWordsOut(src32, src8, Number.NaN, 4, target, view, 0) }).toThrow(RangeError)
    expect(() => { copyWordsOut(src32, src8, 0, 16, target, view, 0) }).not.toThrow()
  })
})
