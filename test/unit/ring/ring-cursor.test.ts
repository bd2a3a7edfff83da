// Cursor-mode consumer API of the SPSC ring (the retransmit buffer of a
// reliable stream): readStart / peek / releaseTo / bytesBefore / hasDataAt.
// Records stay in the ring until released, so they can be read again.
import { describe, it, expect } from 'vitest'
import fc from 'fast-check'
import { RingBuffer } from '../../../src/ring/ring-buffer.js'

// White-box knowledge of the header layout (module comment of ring-buffer.ts):
// HEAD is Int32 word 0, TAIL Int32 word 16, data at byte 192.
const HEAD_WORD = 0
const TAIL_WORD = 16
const HEADER_BYTES = 192
const WRAP = 0xffffffff

const recordSize = (n: number): number => 4 + ((n + 3) & ~3)

/** Deterministic payload for record number `seq`. */
function payload (seq: number, len: number): Uint8Array {
  const b = new Uint8Array(len)
  for (let i = 0; i < len; i++) b[i] = (seq * 31 + i * 7 + 1) & 0xff
  return b
}

/** A fresh ring whose HEAD = TAIL = `pos` (free-running uint32 positions). */
function ringAt (capacity: number, pos: number): RingBuffer {
  const base = RingBuffer.create(capacity)
  const i32 = new Int32Array(base.sab)
  i32[HEAD_WORD] = pos | 0
  i32[TAIL_WORD] = pos | 0
  return RingBuffer.attach(base.sab)
}

interface Seen { bytes: Uint8Array, end: number }

/** Fast byte-wise equality of two record lists (vitest's deep equal is slow in the hot loops). */
function expectSameRecords (got: Uint8Array[], want: Uint8Array[]): void {
  expect(got.length).toBe(want.length)
  for (let i = 0; i < want.length; i++) {
    if (!Buffer.from(got[i]!.buffer, got[i]!.byteOffset, got[i]!.length).equals(want[i]!)) {
      expect.fail(`record ${i}: ${Buffer.from(got[i]!).toString('hex')} != ${Buffer.from(want[i]!).toString('hex')}`)
    }
  }
}

/** Peek from `cursor` up to `max` records, copying each; the returned cursor. */
function peekAll (ring: RingBuffer, cursor: number, max = Infinity): { seen: Seen[], cursor: number } {
  const seen: Seen[] = []
  const next = ring.peek(cursor, (rec, end) => {
    if (seen.length >= max) return false
    seen.push({ bytes: rec.slice(), end })
    return true
  })
  return { seen, cursor: next }
}

describe('RingBuffer cursor mode', () => {
  it('peek reads records without releasing them; a second peek sees the same records', () => {
    const ring = RingBuffer.create(1024)
    const recs = [payload(1, 10), payload(2, 0), payload(3, 33)]
    for (const r of recs) expect(ring.tryWrite(r)).toBe(true)
    const used = ring.usedBytes()
    const start = ring.readStart
    const a = peekAll(ring, start)
    expect(a.seen.map((s) => s.bytes)).toEqual(recs)
    // Nothing released: TAIL, usedBytes and the read counter are unchanged.
    expect(ring.readStart).toBe(start)
    expect(ring.usedBytes()).toBe(used)
    expect(ring.stats().recordsRead).toBe(0)
    expect(ring.isEmpty()).toBe(false)
    // The cursor ends at HEAD; ends are consecutive record boundaries.
    expect(a.cursor).toBe((start + used) >>> 0)
    expect(a.seen.map((s) => s.end)).toEqual([
      start + recordSize(10), start + recordSize(10) + recordSize(0), start + used,
    ])
    // Peeking at the end visits nothing.
    expect(peekAll(ring, a.cursor)).toEqual({ seen: [], cursor: a.cursor })
    // "Rewind": start over from readStart, same records, same ends.
    expect(peekAll(ring, ring.readStart)).toEqual(a)
  })

  it('fn returning false stops BEFORE that record, and the returned cursor points at it', () => {
    const ring = RingBuffer.create(1024)
    for (let i = 0; i < 4; i++) ring.tryWrite(payload(i, 8 + i))
    const first = peekAll(ring, ring.readStart, 2)
    expect(first.seen).toHaveLength(2)
    expect(first.cursor).toBe(first.seen[1]?.end)
    const rest = peekAll(ring, first.cursor)
    expect(rest.seen.map((s) => s.bytes)).toEqual([payload(2, 10), payload(3, 11)])
  })

  it('peek sees only published records (tryAppend without publish is invisible)', () => {
    const ring = RingBuffer.create(1024)
    ring.tryWrite(payload(1, 5))
    ring.tryAppend(payload(2, 5))
    const a = peekAll(ring, ring.readStart)
    expect(a.seen).toHaveLength(1)
    expect(ring.hasDataAt(a.cursor)).toBe(false)
    ring.publish()
    expect(ring.hasDataAt(a.cursor)).toBe(true)
    expect(peekAll(ring, a.cursor).seen.map((s) => s.bytes)).toEqual([payload(2, 5)])
  })

  it('releaseTo hands space back to the producer; released records never reappear', () => {
    const ring = RingBuffer.create(1024)
    const len = 100 // recordSize 104: 9 fit in 1024 with no wrap skip needed
    let n = 0
    while (ring.tryWrite(payload(n, len))) n++
    expect(n).toBe(Math.floor(1024 / recordSize(len)))
    expect(ring.stats().fullEvents).toBe(1)
    // Reading (peek) everything frees nothing.
    const all = peekAll(ring, ring.readStart)
    expect(all.seen).toHaveLength(n)
    expect(ring.tryWrite(payload(99, len))).toBe(false)
    // releaseTo the readStart is a no-op.
    ring.releaseTo(ring.readStart, 0)
    expect(ring.stats().recordsRead).toBe(0)
    // Release the first two records: exactly their space comes back.
    const before = ring.usedBytes()
    ring.releaseTo(all.seen[1]!.end, 2)
    expect(ring.readStart).toBe(all.seen[1]!.end)
    expect(ring.usedBytes()).toBe(before - 2 * recordSize(len))
    expect(ring.stats().recordsRead).toBe(2)
    expect(ring.tryWrite(payload(n, len))).toBe(true)
    // Rewind: the released records are gone, the rest reappear, then the new one.
    const again = peekAll(ring, ring.readStart)
    expect(again.seen.map((s) => s.bytes)).toEqual([
      ...all.seen.slice(2).map((s) => s.bytes), payload(n, len),
    ])
  })

  it('reads records across the end of the data area (WRAP marker) with the cursor, over many laps', () => {
    const ring = RingBuffer.create(1024)
    const lens = [300, 200, 150, 333, 0, 7, 500, 41]
    const view = new DataView(ring.sab, HEADER_BYTES)
    let written = 0
    let read = 0
    let released = 0
    let wraps = 0
    const expected: Uint8Array[] = []
    let cursor = ring.readStart
    // Producer writes while it can; consumer reads up to two records at the
    // cursor, then releases the oldest record it has read. Reads run ahead of
    // releases, so the cursor and TAIL sit on different laps at times.
    while (ring.stats().bytesWritten < 20 * 1024) {
      while (ring.tryWrite(payload(written, lens[written % lens.length]!))) {
        expected.push(payload(written, lens[written % lens.length]!))
        written++
      }
      const got = peekAll(ring, cursor, 2)
      let prev = cursor
      for (const s of got.seen) {
        const start = (s.end - recordSize(s.bytes.length)) >>> 0
        if (start !== prev) {
          // Skipped to the next lap: a WRAP marker at `prev`, the record at offset 0.
          expect(view.getUint32(prev & 1023, true)).toBe(WRAP)
          expect(start & 1023).toBe(0)
          wraps++
        }
        prev = s.end
      }
      cursor = got.cursor
      read += got.seen.length
      // Re-read from readStart: everything unreleased, in order.
      const unreleased = peekAll(ring, ring.readStart)
      expectSameRecords(unreleased.seen.map((s) => s.bytes), expected.slice(released, written))
      // Release the oldest record read (only records the cursor has passed).
      if (read > released) {
        ring.releaseTo(unreleased.seen[0]!.end, 1)
        released++
      }
    }
    expect(wraps).toBeGreaterThan(3)
    // Drain the remainder through the cursor and release all.
    const rest = peekAll(ring, ring.readStart)
    expectSameRecords(rest.seen.map((s) => s.bytes), expected.slice(released))
    ring.releaseTo(rest.cursor, rest.seen.length)
    expect(ring.isEmpty()).toBe(true)
    expect(ring.stats().recordsRead).toBe(written)
  })

  it('a record that does not fit before the end is found at offset 0 after the WRAP skip', () => {
    const ring = RingBuffer.create(1024)
    ring.tryWrite(payload(0, 300)) // 304 bytes
    ring.tryWrite(payload(1, 300)) // 304 bytes, ends at 608
    const a = peekAll(ring, ring.readStart)
    ring.releaseTo(a.cursor, 2) // tail at 608; 416 left before the end
    expect(ring.tryWrite(payload(2, 500))).toBe(true) // 504 > 416: WRAP at 608, record at 0
    expect(new DataView(ring.sab, HEADER_BYTES).getUint32(608, true)).toBe(WRAP)
    expect(ring.hasDataAt(a.cursor)).toBe(true)
    // A peek that stops at the record has already stepped over the WRAP
    // skip: its cursor is the record's own start (offset 0 of the next lap).
    const stopped = peekAll(ring, a.cursor, 0)
    expect(stopped).toEqual({ seen: [], cursor: 1024 })
    expect(ring.bytesBefore(stopped.cursor)).toBe(416)
    const b = peekAll(ring, a.cursor)
    expect(b.seen.map((s) => s.bytes)).toEqual([payload(2, 500)])
    // The skip counts as read-but-unreleased bytes.
    expect(b.cursor).toBe(1024 + 504)
    expect(ring.bytesBefore(b.cursor)).toBe(416 + 504)
    expect(ring.usedBytes()).toBe(416 + 504)
    ring.releaseTo(b.cursor, 1)
    expect(ring.usedBytes()).toBe(0)
  })

  it('bytesBefore and hasDataAt track the cursor, also across the uint32 wrap of positions', () => {
    for (const base of [0, 2 ** 32 - 8, 2 ** 32 - 700, 2 ** 31 - 4]) {
      const ring = ringAt(1024, base)
      const start = ring.readStart
      expect(start).toBe(base >>> 0)
      expect(ring.bytesBefore(start)).toBe(0)
      expect(ring.hasDataAt(start)).toBe(false)
      ring.tryWrite(payload(1, 13))
      ring.tryWrite(payload(2, 400))
      expect(ring.hasDataAt(start)).toBe(true)
      // The first record wraps when fewer than its 20 bytes are left in the lap.
      const toEnd = 1024 - (base & 1023)
      const one = peekAll(ring, start, 1)
      expect(ring.bytesBefore(one.cursor)).toBe((toEnd < 20 ? toEnd : 0) + recordSize(13))
      expect(ring.hasDataAt(one.cursor)).toBe(true)
      const two = peekAll(ring, one.cursor)
      expect(two.seen.map((s) => s.bytes)).toEqual([payload(2, 400)])
      expect(ring.hasDataAt(two.cursor)).toBe(false)
      expect(ring.bytesBefore(two.cursor)).toBe(ring.usedBytes())
      ring.releaseTo(one.cursor, 1)
      expect(ring.bytesBefore(two.cursor)).toBe(ring.usedBytes())
      expect(ring.bytesBefore(ring.readStart)).toBe(0)
      ring.releaseTo(two.cursor, 1)
      expect(ring.isEmpty()).toBe(true)
      expect(ring.readStart).toBe(two.cursor)
    }
  })

  // Model: the unreleased records in order, each with its start/end position,
  // the model's own HEAD/TAIL, and the index of the record at the cursor.
  type Op =
    | { op: 'write', len: number }
    | { op: 'peek', k: number }
    | { op: 'release', k: number }
    | { op: 'rewind' }

  const opArb: fc.Arbitrary<Op> = fc.oneof(
    { weight: 4, arbitrary: fc.record({ op: fc.constant('write' as const), len: fc.oneof(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 508 })) }) },
    { weight: 3, arbitrary: fc.record({ op: fc.constant('peek' as const), k: fc.integer({ min: 0, max: 5 }) }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('release' as const), k: fc.integer({ min: 0, max: 5 }) }) },
    { weight: 1, arbitrary: fc.constant({ op: 'rewind' as const }) },
  )

  it('model: write / peek-some / release-some / rewind against an array model', () => {
    fc.assert(fc.property(
      fc.oneof(fc.constant(0), fc.constant(2 ** 32 - 256), fc.integer({ min: 0, max: 2 ** 32 - 1 }).map((p) => p & ~3)),
      fc.array(opArb, { minLength: 1, maxLength: 150 }),
      (base, ops) => {
        const C = 1024
        const ring = ringAt(C, base)
        const model: Array<{ bytes: Uint8Array, start: number, end: number }> = []
        let head = base >>> 0
        let tail = base >>> 0
        let cursor = ring.readStart
        let at = 0 // model index of the record at the cursor
        let nextId = 0
        for (const o of ops) {
          if (o.op === 'write') {
            const need = recordSize(o.len)
            const toEnd = C - (head & (C - 1))
            const skip = toEnd < need ? toEnd : 0
            const fits = C - ((head - tail) >>> 0) >= skip + need
            const bytes = payload(nextId++, o.len)
            expect(ring.tryWrite(bytes)).toBe(fits)
            if (fits) {
              const start = (head + skip) >>> 0
              head = (start + need) >>> 0
              model.push({ bytes, start, end: head })
            }
          } else if (o.op === 'peek') {
            const got = peekAll(ring, cursor, o.k)
            const want = model.slice(at, at + o.k)
            expect(got.seen.length).toBe(want.length)
            expectSameRecords(got.seen.map((x) => x.bytes), want.map((x) => x.bytes))
            for (let i = 0; i < want.length; i++) expect(got.seen[i]!.end).toBe(want[i]!.end)
            at += want.length
            // Stopped by fn: the cursor is the next record's start (past a
            // WRAP skip, if any); ran out: the cursor is HEAD.
            const expectCursor = at < model.length ? model[at]!.start : (want.length > 0 ? head : cursor)
            expect(got.cursor).toBe(expectCursor)
            cursor = got.cursor
          } else if (o.op === 'release') {
            // Only records already read (before the cursor) may be released.
            const k = Math.min(o.k, at)
            if (k === 0) continue
            const end = model[k - 1]!.end
            ring.releaseTo(end, k)
            model.splice(0, k)
            at -= k
            tail = end
          } else {
            cursor = ring.readStart
            at = 0
          }
          expect(ring.readStart).toBe(tail)
          expect(ring.usedBytes()).toBe((head - tail) >>> 0)
          expect(ring.hasDataAt(cursor)).toBe(at < model.length)
          expect(ring.bytesBefore(cursor)).toBe((cursor - tail) >>> 0)
          expect(ring.bytesBefore(cursor)).toBeLessThanOrEqual((head - tail) >>> 0)
        }
        // Everything unreleased reappears from readStart, in order, nothing else.
        const all = peekAll(ring, ring.readStart)
        expectSameRecords(all.seen.map((s) => s.bytes), model.map((m) => m.bytes))
        expect(all.cursor).toBe(head)
      },
    ), { numRuns: 200 })
  })

  it('peekAt visits the same records as peek (payload offset, length, end), across wraps and from any start', () => {
    fc.assert(fc.property(
      fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.array(fc.integer({ min: 0, max: 300 }), { minLength: 1, maxLength: 60 }), fc.nat(20),
      (start, lens, release) => {
        const ring = ringAt(1024, (start & ~3) >>> 0) // positions are record-aligned
        let seq = 0
        for (const len of lens) {
          if (!ring.tryWrite(payload(seq, len))) {
            // Full: release some and go on, so the records wrap.
            let pos = ring.readStart
            let n = 0
            ring.peek(pos, (_r, end) => { pos = end; return ++n < 1 + release })
            ring.releaseTo(pos, n)
            if (!ring.tryWrite(payload(seq, len))) continue
          }
          seq++
        }
        const viaPeek: Array<[number, number, number]> = []
        const endPeek = ring.peek(ring.readStart, (r, end) => { viaPeek.push([r.byteOffset, r.length, end]) })
        const viaAt: Array<[number, number, number]> = []
        const endAt = ring.peekAt(ring.readStart, (at, len, end) => { viaAt.push([at, len, end]) })
        expect(viaAt).toEqual(viaPeek)
        expect(endAt).toBe(endPeek)
        // Stopping: false before record k leaves the cursor at its start (past a wrap skip), as peek does.
        if (viaAt.length === 0) return
        const k = viaAt.length >> 1
        const [, lenK, endK] = viaAt[k]!
        let i = 0
        expect(ring.peekAt(ring.readStart, () => i++ < k)).toBe((endK - recordSize(lenK)) >>> 0)
        let j = 0
        expect(ring.peek(ring.readStart, () => j++ < k)).toBe((endK - recordSize(lenK)) >>> 0)
      },
    ), { numRuns: 300 })
  })
})
