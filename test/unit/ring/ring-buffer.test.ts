import { describe, it, expect, vi } from 'vitest'
import fc from 'fast-check'
import { RingBuffer } from '../../../src/ring/ring-buffer.js'
import { Doorbell } from '../../../src/ring/doorbell.js'

// White-box knowledge of the header layout (see the module comment of
// ring-buffer.ts): HEAD is Int32 word 0, TAIL Int32 word 16, data at byte 192.
const HEAD_WORD = 0
const TAIL_WORD = 16
const HEADER_BYTES = 192

/** Deterministic payload for record number `seq`. */
function payload (seq: number, len: number): Uint8Array {
  const b = new Uint8Array(len)
  for (let i = 0; i < len; i++) b[i] = (seq * 31 + i * 7 + 1) & 0xff
  return b
}

/** Drain everything, copying each record. */
function drainAll (ring: RingBuffer, max?: number): Uint8Array[] {
  const out: Uint8Array[] = []
  ring.drain((r) => { out.push(r.slice()) }, max)
  return out
}

/** Producer and consumer instances on a fresh ring whose HEAD = TAIL = `pos` (exercises uint32 wrap). */
function ringAt (capacity: number, pos: number): { producer: RingBuffer, consumer: RingBuffer } {
  const base = RingBuffer.create(capacity)
  const i32 = new Int32Array(base.sab)
  i32[HEAD_WORD] = pos | 0
  i32[TAIL_WORD] = pos | 0
  return { producer: RingBuffer.attach(base.sab), consumer: RingBuffer.attach(base.sab) }
}

const recordSize = (n: number): number => 4 + ((n + 3) & ~3)

/** Fast equality of two record lists (vitest's deep equal is too slow for the exhaustive loops). */
function sameRecords (a: Uint8Array[], b: Uint8Array[]): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) {
    if (Buffer.compare(a[i] as Uint8Array, b[i] as Uint8Array) !== 0) return false
  }
  return true
}

describe('RingBuffer.create / attach', () => {
  it.each([
    [1, 1024], [1000, 1024], [1024, 1024], [1025, 2048], [4096, 4096], [5000, 8192], [1 << 20, 1 << 20],
  ])('capacity %i rounds up to %i', (req, cap) => {
    const ring = RingBuffer.create(req)
    expect(ring.capacity).toBe(cap)
    expect(ring.sab.byteLength).toBe(HEADER_BYTES + cap)
    expect(ring.maxRecordBytes).toBe(cap / 2 - 4)
    expect(ring.stats()).toEqual({ recordsWritten: 0, bytesWritten: 0, recordsRead: 0, fullEvents: 0, usedBytes: 0, capacity: cap })
  })

  it.each([0, -1, 1.5, Number.NaN, Infinity, 2 ** 30 + 1, '1024' as unknown as number])(
    'create(%s) throws RangeError', (bad) => {
      expect(() => RingBuffer.create(bad)).toThrow(RangeError)
    })

  it('attach rejects buffers that are not rings', () => {
    expect(() => RingBuffer.attach(new SharedArrayBuffer(16))).toThrow(TypeError)
    expect(() => RingBuffer.attach(new SharedArrayBuffer(HEADER_BYTES + 1024))).toThrow(/magic/)
    expect(() => RingBuffer.attach(new ArrayBuffer(4096) as unknown as SharedArrayBuffer)).toThrow(TypeError)
    const ring = RingBuffer.create(1024)
    new Int32Array(ring.sab)[36] = 99 // VERSION word
    expect(() => RingBuffer.attach(ring.sab)).toThrow(/layout version/)
  })

  it('attach() sees the same state as the creator', () => {
    const a = RingBuffer.create(2048)
    a.tryWrite(payload(1, 10))
    a.tryWrite(payload(2, 20))
    const b = RingBuffer.attach(a.sab)
    expect(b.capacity).toBe(2048)
    expect(b.isEmpty()).toBe(false)
    expect(b.usedBytes()).toBe(recordSize(10) + recordSize(20))
    expect(b.stats()).toEqual(a.stats())
    expect(drainAll(b)).toEqual([payload(1, 10), payload(2, 20)])
    expect(a.isEmpty()).toBe(true)
    expect(a.stats().recordsRead).toBe(2)
    b.close()
    expect(a.closed).toBe(true)
  })

  it('rings placed side by side in one SharedArrayBuffer (RingPlace) keep to their own bytes, wrapped and closed alike', () => {
    const first = RingBuffer.bytesFor(1000) // rounded as create() rounds
    expect(first).toBe(HEADER_BYTES + 1024)
    const sab = new SharedArrayBuffer(first + RingBuffer.bytesFor(2048))
    const a = RingBuffer.create(1000, undefined, { sab, byteOffset: 0 })
    const b = RingBuffer.create(2048, undefined, { sab, byteOffset: first })
    expect([a.byteOffset, b.byteOffset, a.capacity, b.capacity]).toEqual([0, first, 1024, 2048])
    // Fill and wrap both, interleaved, many times; each side sees only its own records.
    for (let round = 0; round < 50; round++) {
      expect(a.tryWrite(payload(round, 300))).toBe(true)
      expect(b.tryWrite(payload(round + 1000, 700))).toBe(true)
      expect(b.tryWrite(payload(round + 2000, 100))).toBe(true)
      const a2 = RingBuffer.attach({ sab, byteOffset: 0 })
      const b2 = RingBuffer.attach({ sab, byteOffset: first })
      expect(drainAll(a2)).toEqual([payload(round, 300)])
      expect(drainAll(b2)).toEqual([payload(round + 1000, 700), payload(round + 2000, 100)])
    }
    // peekAt reports positions in the whole buffer: the record's bytes are there.
    b.tryWrite(payload(7, 40))
    let seen: Uint8Array | undefined
    const reader = RingBuffer.attach({ sab, byteOffset: first }) // the consumer's side (b2 read the rest)
    reader.peekAt(reader.readStart, (at, len) => { seen = new Uint8Array(sab, at, len).slice(); return false })
    expect(seen).toEqual(payload(7, 40))
    b.close()
    expect(RingBuffer.attach({ sab, byteOffset: first }).closed).toBe(true)
    expect(a.closed).toBe(false)
  })

  it('a place that is misaligned, too small or not a ring is refused', () => {
    const sab = new SharedArrayBuffer(RingBuffer.bytesFor(1024) * 2)
    expect(() => RingBuffer.create(1024, undefined, { sab, byteOffset: 4 })).toThrow(RangeError)
    expect(() => RingBuffer.create(1024, undefined, { sab, byteOffset: RingBuffer.bytesFor(1024) + 8 })).toThrow(/does not fit/)
    expect(() => RingBuffer.create(1024, undefined, { sab: new ArrayBuffer(4096) as unknown as SharedArrayBuffer, byteOffset: 0 })).toThrow(TypeError)
    expect(() => RingBuffer.attach({ sab, byteOffset: RingBuffer.bytesFor(1024) })).toThrow(/magic/)
    expect(() => RingBuffer.attach({ sab, byteOffset: 12 })).toThrow(TypeError)
    expect(() => RingBuffer.attach({ sab, byteOffset: sab.byteLength })).toThrow(TypeError)
    RingBuffer.create(1024, undefined, { sab, byteOffset: 0 })
    // A placed ring is found where it was placed; the buffer as a whole is not "a ring of its own".
    expect(RingBuffer.attach({ sab, byteOffset: 0 }).capacity).toBe(1024)
    expect(() => RingBuffer.attach(sab)).toThrow(/corrupt header/)
  })
})

describe('RingBuffer write / drain', () => {
  it('delivers records in order, as views into the shared buffer', () => {
    const ring = RingBuffer.create(4096)
    for (let i = 0; i < 20; i++) expect(ring.tryWrite(payload(i, i * 3))).toBe(true)
    const seen: Uint8Array[] = []
    const n = ring.drain((r) => {
      expect(r.buffer).toBe(ring.sab)
      seen.push(r.slice())
    })
    expect(n).toBe(20)
    expect(seen).toEqual(Array.from({ length: 20 }, (_, i) => payload(i, i * 3)))
    expect(ring.drain(() => { throw new Error('not called') })).toBe(0)
  })

  it('drain honours maxRecords and a false return, consuming the stopping record', () => {
    const ring = RingBuffer.create(1024)
    for (let i = 0; i < 10; i++) ring.tryWrite(payload(i, 4))
    expect(drainAll(ring, 3)).toEqual([0, 1, 2].map((i) => payload(i, 4)))
    expect(ring.drain(() => {}, 0)).toBe(0)
    const got: number[] = []
    expect(ring.drain((r) => { got.push(r[0] as number); return got.length < 2 })).toBe(2)
    expect(got).toEqual([payload(3, 4)[0], payload(4, 4)[0]])
    expect(drainAll(ring)).toEqual([5, 6, 7, 8, 9].map((i) => payload(i, 4)))
  })

  it('a throwing callback consumes its record and the error propagates', () => {
    const ring = RingBuffer.create(1024)
    for (let i = 0; i < 3; i++) ring.tryWrite(payload(i, 8))
    let calls = 0
    expect(() => ring.drain(() => { if (++calls === 2) throw new Error('boom') })).toThrow('boom')
    expect(ring.stats().recordsRead).toBe(2)
    expect(drainAll(ring)).toEqual([payload(2, 8)])
  })

  it('re-entrant drain throws', () => {
    const ring = RingBuffer.create(1024)
    ring.tryWrite(payload(0, 1))
    expect(() => ring.drain(() => { ring.drain(() => {}) })).toThrow(/re-entrantly/)
    expect(ring.isEmpty()).toBe(true)
  })

  it.each([0, 4, 12, 13, 60])('fills exactly to capacity with %i-byte records, then returns false', (len) => {
    const ring = RingBuffer.create(1024)
    const fit = 1024 / recordSize(len)
    for (let i = 0; i < Math.floor(fit); i++) expect(ring.tryWrite(payload(i, len))).toBe(true)
    expect(ring.tryWrite(payload(99, len))).toBe(false)
    expect(ring.tryWrite2(new Uint8Array(0), payload(99, len))).toBe(false)
    expect(ring.tryAppend(payload(99, len))).toBe(false)
    expect(ring.stats().fullEvents).toBe(3)
    expect(ring.usedBytes()).toBe(Math.floor(fit) * recordSize(len))
    if (Number.isInteger(fit)) expect(ring.usedBytes()).toBe(1024)
    expect(ring.canWrite(len)).toBe(false)
    expect(drainAll(ring, 1)).toEqual([payload(0, len)])
    expect(ring.canWrite(len)).toBe(true)
    expect(ring.tryWrite(payload(100, len))).toBe(true)
    const rest = drainAll(ring)
    expect(rest.length).toBe(Math.floor(fit))
    expect(rest.at(-1)).toEqual(payload(100, len))
  })

  it('wraps with padding at every 4-byte offset, for record sizes 0..40, 61..65 and near max', () => {
    const cap = 1024
    const sizes = [...Array.from({ length: 41 }, (_, i) => i), 61, 62, 63, 64, 65, 200, 255, 505, 506, 507, 508]
    let seq = 0
    for (const len of sizes) {
      for (let off = 0; off < cap; off += 4) {
        // Start at this offset; on odd sizes, in the lap just below 2^32 so the positions also wrap.
        const { producer, consumer } = ringAt(cap, (len % 2 === 0 ? 0 : 2 ** 32 - cap) + off)
        // Write until full, then drain and compare: crosses the end at this offset.
        const written: Uint8Array[] = []
        for (;;) {
          const p = payload(seq++, len)
          if (!producer.tryWrite(p)) break
          written.push(p)
        }
        expect(written.length).toBeGreaterThan(0) // an empty ring takes any legal record
        expect(consumer.usedBytes()).toBeLessThanOrEqual(cap)
        // Refill after a partial drain, so records also land right behind the tail.
        const firstHalf = drainAll(consumer, Math.ceil(written.length / 2))
        for (;;) {
          const p = payload(seq++, len)
          if (!producer.tryWrite(p)) break
          written.push(p)
        }
        const got = [...firstHalf, ...drainAll(consumer)]
        if (!sameRecords(got, written)) expect({ len, off, got }).toEqual({ len, off, got: written })
        expect(consumer.isEmpty()).toBe(true)
      }
    }
  })

  it('free-running positions wrap past 2^32', () => {
    for (const start of [2 ** 32 - 4, 2 ** 32 - 100, 2 ** 32 - 1024, 2 ** 31 - 8]) {
      const { producer, consumer } = ringAt(1024, start)
      let seq = 0
      for (let round = 0; round < 40; round++) {
        const batch: Uint8Array[] = []
        for (let i = 0; i < 7; i++) {
          const p = payload(seq++, (seq * 37) % 120)
          expect(producer.tryWrite(p)).toBe(true)
          batch.push(p)
        }
        expect(consumer.usedBytes()).toBeLessThanOrEqual(1024)
        expect(drainAll(consumer)).toEqual(batch)
      }
    }
  })

  it('tryWrite2(a, b) and tryWriteHeaded(scratch, n, b) store exactly a‖b', () => {
    const ring = RingBuffer.create(4096)
    const cases: Array<[number, number]> = [[0, 0], [0, 5], [5, 0], [1, 1], [3, 4], [8, 1000], [17, 3]]
    for (const [la, lb] of cases) {
      const a = payload(la, la)
      const b = payload(lb + 1000, lb)
      expect(ring.tryWrite2(a, b)).toBe(true)
      const concat = new Uint8Array(la + lb)
      concat.set(a)
      concat.set(b, la)
      expect(drainAll(ring)).toEqual([concat])
    }
    // tryWriteHeaded: the first headLength bytes of a larger scratch buffer, small and large records.
    for (const [la, lb, junk] of [[0, 5, 3], [4, 0, 10], [12, 30, 50], [16, 400, 7], [0, 0, 0]] as const) {
      const scratch = new Uint8Array(la + junk).fill(0xee)
      const a = payload(la + 7, la)
      scratch.set(a)
      const b = payload(lb + 2000, lb)
      expect(ring.tryWriteHeaded(scratch, la, b)).toBe(true)
      expect(drainAll(ring)).toEqual([Uint8Array.of(...a, ...b)])
    }
    expect(() => ring.tryWriteHeaded(new Uint8Array(4), 5, new Uint8Array(1))).toThrow(RangeError)
    expect(() => ring.tryWriteHeaded(new Uint8Array(4), -1, new Uint8Array(1))).toThrow(RangeError)
    expect(() => ring.tryWriteHeaded(new Uint8Array(4), 1.5, new Uint8Array(1))).toThrow(RangeError)
    // A reused scratch (from its second use, 4-aligned: 32-bit words), every head length mod 4, with and without a body.
    for (const offset of [0, 1, 2, 3]) {
      const scratch = new Uint8Array(new ArrayBuffer(64), offset, 40)
      for (let round = 0; round < 3; round++) {
        for (const [la, lb] of [[1, 0], [2, 1], [3, 5], [4, 0], [5, 3], [7, 0], [9, 9], [12, 300], [13, 0], [40, 0], [40, 1]] as const) {
          scratch.fill(0xee)
          const a = payload(la + round, la)
          scratch.set(a)
          const b = payload(lb + 3000, lb)
          expect(ring.tryWriteHeaded(scratch, la, b)).toBe(true)
          expect(drainAll(ring)).toEqual([Uint8Array.of(...a, ...b)])
        }
      }
    }
    // tryAppend2 is the batch form.
    expect(ring.tryAppend2(payload(1, 3), payload(2, 2))).toBe(true)
    expect(ring.isEmpty()).toBe(true)
    ring.publish()
    expect(drainAll(ring)).toEqual([Uint8Array.of(...payload(1, 3), ...payload(2, 2))])
  })

  it('tryAppend records are invisible until publish(), then all visible at once', () => {
    const producer = RingBuffer.create(2048)
    const consumer = RingBuffer.attach(producer.sab)
    for (let i = 0; i < 5; i++) expect(producer.tryAppend(payload(i, 30))).toBe(true)
    expect(consumer.isEmpty()).toBe(true)
    expect(consumer.usedBytes()).toBe(0)
    expect(consumer.drain(() => {})).toBe(0)
    expect(consumer.stats().recordsWritten).toBe(0)
    producer.publish()
    expect(consumer.usedBytes()).toBe(5 * recordSize(30))
    expect(consumer.stats()).toMatchObject({ recordsWritten: 5, bytesWritten: 150 })
    expect(drainAll(consumer)).toEqual(Array.from({ length: 5 }, (_, i) => payload(i, 30)))
    producer.publish() // no-op when nothing is pending
    expect(consumer.stats().recordsWritten).toBe(5)
  })

  it('maxRecordBytes is the boundary: max fits an empty ring, max + 1 throws RangeError', () => {
    const ring = RingBuffer.create(1024)
    const max = ring.maxRecordBytes
    expect(max).toBe(508)
    expect(() => ring.tryWrite(new Uint8Array(max + 1))).toThrow(RangeError)
    expect(() => ring.tryAppend(new Uint8Array(max + 1))).toThrow(RangeError)
    expect(() => ring.tryWrite2(new Uint8Array(max), new Uint8Array(1))).toThrow(RangeError)
    expect(() => ring.canWrite(max + 1)).toThrow(RangeError)
    expect(() => ring.waitForSpace(max + 1)).toThrow(RangeError) // synchronously: bad argument
    expect(() => ring.waitForSpace(-1)).toThrow(RangeError)
    expect(() => ring.waitForSpace(1.5)).toThrow(RangeError)
    expect(ring.tryWrite(payload(7, max))).toBe(true)
    expect(ring.tryWrite(payload(8, max))).toBe(true) // two halves fill it exactly
    expect(ring.tryWrite(new Uint8Array(0))).toBe(false)
    expect(drainAll(ring)).toEqual([payload(7, max), payload(8, max)])
  })

  it('a maximal record always fits once the consumer has caught up, at every offset', () => {
    const { producer, consumer } = ringAt(1024, 0)
    for (let off = 0; off < 1024; off += 4) {
      const p = payload(off, producer.maxRecordBytes)
      expect(producer.tryWrite(p)).toBe(true)
      expect(drainAll(consumer)).toEqual([p])
      // Step the position by 4 + (off % 2 ? …) : a zero-length record is 4 bytes.
      expect(producer.tryWrite(new Uint8Array(0))).toBe(true)
      consumer.drain(() => {})
    }
  })

  it('keeps cumulative stats on both sides', () => {
    const producer = RingBuffer.create(1024)
    const consumer = RingBuffer.attach(producer.sab)
    producer.tryWrite(payload(0, 100))
    producer.tryWrite2(payload(1, 10), payload(2, 20))
    producer.tryAppend(payload(3, 1))
    producer.publish()
    let fills = 0
    while (producer.tryWrite(payload(4, 200))) fills++
    expect(fills).toBe(4) // (1024 - 104 - 36 - 8) / 204
    expect(producer.stats().fullEvents).toBe(1)
    const used = consumer.usedBytes()
    expect(used).toBe(104 + 36 + 8 + 4 * 204)
    expect(consumer.stats()).toEqual({
      recordsWritten: 3 + 4, bytesWritten: 100 + 30 + 1 + 4 * 200, recordsRead: 0, fullEvents: 1, usedBytes: used, capacity: 1024,
    })
    consumer.drain(() => {}, 2)
    expect(producer.stats()).toMatchObject({ recordsRead: 2, usedBytes: used - recordSize(100) - recordSize(30) })
    producer.close()
    expect(producer.tryWrite(payload(5, 1))).toBe(false)
    expect(producer.stats().fullEvents).toBe(1) // closed is not "full"
  })

  it('bytesWritten counts past 2^32 without overflow (float64 counters)', () => {
    const producer = RingBuffer.create(1 << 16)
    const consumer = RingBuffer.attach(producer.sab)
    // White-box: start the BYTES_WRITTEN slot (Float64 index 2) just below
    // 2^32 instead of copying 4 GiB through the ring first.
    const f64 = new Float64Array(producer.sab, 0, 24)
    const start = 2 ** 32 - 10_000
    f64[2] = start
    const big = payload(1, producer.maxRecordBytes)
    for (let i = 0; i < 8; i++) {
      expect(producer.tryWrite(big)).toBe(true)
      consumer.drain(() => {})
    }
    const s = consumer.stats()
    expect(s.bytesWritten).toBe(start + 8 * big.length)
    expect(s.bytesWritten).toBeGreaterThan(2 ** 32)
    expect(s.recordsWritten).toBe(8)
    expect(s.recordsRead).toBe(8)
  })
})

describe('RingBuffer waits and close', () => {
  it('waitForData resolves on a write from the same thread (tryWrite and publish)', async () => {
    const ring = RingBuffer.create(1024)
    const p = ring.waitForData()
    ring.tryWrite(payload(0, 5))
    expect(await p).toBe('ok')
    ring.drain(() => {})
    const q = ring.waitForData()
    ring.tryAppend(payload(1, 5))
    ring.publish()
    expect(await q).toBe('ok')
    expect(await ring.waitForData()).toBe('ok') // already non-empty: immediate
  })

  it('waitForSpace resolves once drain frees enough space', async () => {
    const producer = RingBuffer.create(1024)
    const consumer = RingBuffer.attach(producer.sab)
    while (producer.tryWrite(payload(0, 100)));
    expect(producer.canWrite(100)).toBe(false)
    const p = producer.waitForSpace(100)
    consumer.drain(() => {}, 1)
    expect(await p).toBe(true)
    expect(producer.tryWrite(payload(1, 100))).toBe(true)
    expect(await producer.waitForSpace(0, 0)).toBe(consumer.usedBytes() + 4 <= 1024)
  })

  it('a producer waiting for space is notified only once its record fits, not on every release', async () => {
    // Each Atomics.notify of a waitAsync costs the consumer's thread ~25 µs on
    // a loaded machine: a waiter must not be woken for space it cannot use.
    const producer = RingBuffer.create(4096)
    const consumer = RingBuffer.attach(producer.sab)
    while (producer.tryWrite(payload(0, 100)));
    const want = 1000 // needs ten 100-byte records (104 bytes each, with the prefix) released
    let resolved = false
    const p = producer.waitForSpace(want).then((ok) => { resolved = true; return ok })
    await Promise.resolve() // the wait is announced synchronously; let nothing else run
    const notify = vi.spyOn(Atomics, 'notify')
    try {
      for (let i = 0; i < 8; i++) consumer.drain(() => {}, 1)
      expect(notify).not.toHaveBeenCalled()
      expect(resolved).toBe(false)
      consumer.drain(() => {}, 2) // now 1040 bytes are free
      expect(notify).toHaveBeenCalledTimes(1)
    } finally {
      notify.mockRestore()
    }
    expect(await p).toBe(true)
    expect(producer.canWrite(want)).toBe(true)
  })

  it('a waiting producer whose record must wrap is woken once the record and its skip fit', async () => {
    const capacity = 4096
    const producer = RingBuffer.create(capacity)
    const consumer = RingBuffer.attach(producer.sab)
    // Move HEAD and TAIL to 3896, then fill with 64-byte records: HEAD stops
    // at 3840, 256 bytes before the end, so a 1000-byte record needs the
    // 256-byte wrap skip on top of its 1004 bytes.
    producer.tryWrite(payload(0, 1944))
    producer.tryWrite(payload(0, 1944))
    consumer.drain(() => {})
    while (producer.tryWrite(payload(1, 60)));
    expect(producer.stats().usedBytes).toBe(4040)
    const p = producer.waitForSpace(1000)
    const notify = vi.spyOn(Atomics, 'notify')
    try {
      let freed = 0
      while (!producer.canWrite(1000)) {
        expect(notify).not.toHaveBeenCalled()
        freed += consumer.drain(() => {}, 1)
      }
      expect(freed).toBeGreaterThan(1)
      expect(notify).toHaveBeenCalledTimes(1)
    } finally {
      notify.mockRestore()
    }
    expect(await p).toBe(true)
  })

  it('two overlapping space waits: the smaller need wakes them, the larger one waits on', async () => {
    const producer = RingBuffer.create(4096)
    const consumer = RingBuffer.attach(producer.sab)
    while (producer.tryWrite(payload(0, 100)));
    let bigDone = false
    const big = producer.waitForSpace(2000).then((ok) => { bigDone = true; return ok })
    const small = producer.waitForSpace(100)
    consumer.drain(() => {}, 1)
    expect(await small).toBe(true)
    expect(bigDone).toBe(false)
    consumer.drain(() => {}, 20)
    expect(await big).toBe(true)
  })

  it('waitForSpace publishes pending appends so the consumer can free space', async () => {
    const producer = RingBuffer.create(1024)
    const consumer = RingBuffer.attach(producer.sab)
    while (producer.tryAppend(payload(0, 100)));
    const p = producer.waitForSpace(100)
    expect(consumer.isEmpty()).toBe(false)
    consumer.drain(() => {})
    expect(await p).toBe(true)
  })

  it('timeouts resolve as timed out', async () => {
    const ring = RingBuffer.create(1024)
    expect(await ring.waitForData(0)).toBe('timed-out')
    expect(await ring.waitForData(20)).toBe('timed-out')
    while (ring.tryWrite(payload(0, 500)));
    expect(await ring.waitForSpace(500, 0)).toBe(false)
    expect(await ring.waitForSpace(500, 20)).toBe(false)
    expect(() => ring.waitForData(-1)).toThrow(RangeError)
    expect(() => ring.waitForData(Number.NaN)).toThrow(RangeError)
    expect(() => ring.waitForSpace(0, -1)).toThrow(RangeError)
  })

  it('close() wakes a pending waitForData and waitForSpace, on both instances', async () => {
    const producer = RingBuffer.create(1024)
    const consumer = RingBuffer.attach(producer.sab)
    const data = consumer.waitForData()
    expect(await Promise.race([data, Promise.resolve('pending')])).toBe('pending')
    producer.close()
    expect(await data).toBe('closed')

    const p2 = RingBuffer.create(1024)
    const c2 = RingBuffer.attach(p2.sab)
    while (p2.tryWrite(payload(0, 300)));
    const space = p2.waitForSpace(300)
    c2.close() // consumer closes
    expect(await space).toBe(false)
    expect(p2.tryWrite(new Uint8Array(0))).toBe(false)
    expect(await p2.waitForSpace(0)).toBe(false)
    expect(p2.closed && c2.closed).toBe(true)
    c2.close() // idempotent
  })

  it('records published before close stay drainable; then waitForData says closed', async () => {
    const producer = RingBuffer.create(1024)
    const consumer = RingBuffer.attach(producer.sab)
    producer.tryWrite(payload(0, 9))
    producer.tryAppend(payload(1, 9))
    producer.close() // publishes the pending append
    expect(producer.tryWrite(payload(2, 9))).toBe(false)
    expect(producer.tryAppend(payload(2, 9))).toBe(false)
    expect(await consumer.waitForData()).toBe('ok')
    expect(drainAll(consumer)).toEqual([payload(0, 9), payload(1, 9)])
    expect(await consumer.waitForData()).toBe('closed')
    expect(await consumer.waitForData(0)).toBe('closed')
  })

  it('publishing rings the doorbell; close rings it too', async () => {
    const bell = Doorbell.create()
    const producer = RingBuffer.create(1024, { doorbell: bell })
    const consumer = RingBuffer.attach(producer.sab)
    const remote = Doorbell.attach(bell.sab)
    const woke = remote.sleep(() => !consumer.isEmpty())
    producer.tryAppend(payload(0, 1))
    expect(await Promise.race([woke, Promise.resolve('pending')])).toBe('pending') // not published yet
    producer.publish()
    expect(await woke).toBe('ok')
    consumer.drain(() => {})
    const woke2 = remote.sleep(() => !consumer.isEmpty() || consumer.closed)
    producer.close()
    expect(await woke2).toBe('ok')
  })
})

describe('Doorbell', () => {
  it('sleep returns at once when hasWork() is already true', async () => {
    const bell = Doorbell.create()
    expect(await bell.sleep(() => true)).toBe('ok')
  })

  it('ring() wakes a sleeper; a ring() before sleep began does not count', async () => {
    const bell = Doorbell.create()
    const other = Doorbell.attach(bell.sab)
    other.ring()
    expect(await bell.sleep(() => false, 20)).toBe('timed-out')
    const p = bell.sleep(() => false)
    other.ring()
    expect(await p).toBe('ok')
    expect(await bell.sleep(() => false, 0)).toBe('timed-out')
  })

  it('overlapping sleeps are all woken', async () => {
    const bell = Doorbell.create()
    const a = bell.sleep(() => false)
    const b = bell.sleep(() => false)
    bell.ring()
    expect(await Promise.all([a, b])).toEqual(['ok', 'ok'])
  })

  it('attach validates its buffer; bad timeouts throw synchronously', () => {
    expect(() => Doorbell.attach(new SharedArrayBuffer(128))).toThrow(/magic/)
    expect(() => Doorbell.attach(new SharedArrayBuffer(8))).toThrow(TypeError)
    expect(() => Doorbell.create().sleep(() => false, -5)).toThrow(RangeError)
  })
})

// ---- model-based property test ----

type Op =
  | { kind: 'write', len: number }
  | { kind: 'write2', len: number, split: number }
  | { kind: 'headed', len: number, split: number, junk: number }
  | { kind: 'headedReused', len: number, split: number }
  | { kind: 'append', len: number }
  | { kind: 'publish' }
  | { kind: 'drain', max: number }
  | { kind: 'drainStop', at: number }

// Lengths are clamped to maxRecordBytes (508 for 1 KiB, 1020 for 2 KiB).
const lenArb = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 0, max: 40 }) },
  { weight: 2, arbitrary: fc.integer({ min: 0, max: 600 }) },
  { weight: 1, arbitrary: fc.constantFrom(0, 1, 2, 3, 4, 5, 505, 506, 507, 508, 1017, 1018, 1019, 1020) },
)
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: lenArb.map((len) => ({ kind: 'write' as const, len })) },
  { weight: 2, arbitrary: fc.tuple(lenArb, fc.nat()).map(([len, s]) => ({ kind: 'write2' as const, len, split: s % (len + 1) })) },
  // A header in a larger scratch buffer (tryWriteHeaded): only its first `split` bytes are the record's.
  { weight: 1, arbitrary: fc.tuple(lenArb, fc.nat(), fc.nat({ max: 40 })).map(([len, s, junk]) => ({ kind: 'headed' as const, len, split: s % (len + 1), junk })) },
  // The same scratch every time (the host's send path): from the second use its header goes in as 32-bit words.
  { weight: 2, arbitrary: fc.tuple(lenArb, fc.nat()).map(([len, s]) => ({ kind: 'headedReused' as const, len, split: s % (len + 1) })) },
  { weight: 3, arbitrary: lenArb.map((len) => ({ kind: 'append' as const, len })) },
  { weight: 2, arbitrary: fc.constant({ kind: 'publish' as const }) },
  { weight: 3, arbitrary: fc.integer({ min: 0, max: 12 }).map((max) => ({ kind: 'drain' as const, max })) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 5 }).map((at) => ({ kind: 'drainStop' as const, at })) },
)

/** A record in the model: its bytes and the ring bytes it spans (prefix, padding, and the wrap skip before it). */
interface ModelRecord { bytes: Uint8Array, span: number }

describe('RingBuffer model-based', () => {
  it('matches a JS array queue plus byte accounting, from any start position', () => {
    fc.assert(fc.property(
      fc.constantFrom(1024, 2048),
      fc.nat({ max: 2 ** 30 - 1 }).map((n) => n * 4), // any 4-aligned uint32 start position
      fc.array(opArb, { maxLength: 250 }),
      fc.integer({ min: 0, max: 3 }),
      (cap, start, ops, scratchOffset) => {
        const { producer, consumer } = ringAt(cap, start)
        const max = producer.maxRecordBytes
        // One scratch for every 'headedReused' op, at any alignment (only a 4-aligned one takes the word path).
        const reused = new Uint8Array(new ArrayBuffer(max + 64), scratchOffset, max + 40)
        // Positions are plain unbounded numbers here: no uint32 tricks in the model.
        const published: ModelRecord[] = []
        const pending: ModelRecord[] = []
        let head = start // includes pending records
        let pubHead = start
        let tail = start
        let seq = 0
        const stats = { recordsWritten: 0, bytesWritten: 0, recordsRead: 0, fullEvents: 0 }
        const modelAppend = (bytes: Uint8Array): boolean => {
          const need = recordSize(bytes.length)
          const toEnd = cap - (head % cap)
          const span = toEnd < need ? toEnd + need : need
          if (cap - (head - tail) < span) { stats.fullEvents++; return false }
          head += span
          pending.push({ bytes, span })
          return true
        }
        const modelPublish = (): void => {
          for (const r of pending) { stats.recordsWritten++; stats.bytesWritten += r.bytes.length }
          published.push(...pending.splice(0))
          pubHead = head
        }
        const modelTake = (n: number): Uint8Array[] => {
          const taken = published.splice(0, n)
          for (const r of taken) tail += r.span
          stats.recordsRead += taken.length
          return taken.map((r) => r.bytes)
        }
        for (const op of ops) {
          switch (op.kind) {
            case 'write':
            case 'write2':
            case 'headed':
            case 'headedReused':
            case 'append': {
              const p = payload(seq++, Math.min(op.len, max))
              const expected = modelAppend(p)
              let got: boolean
              if (op.kind === 'write2') {
                const split = Math.min(op.split, p.length)
                got = producer.tryWrite2(p.subarray(0, split), p.subarray(split))
              } else if (op.kind === 'headed') {
                const split = Math.min(op.split, p.length)
                const scratch = new Uint8Array(split + op.junk).fill(0xee)
                scratch.set(p.subarray(0, split))
                got = producer.tryWriteHeaded(scratch, split, p.subarray(split))
              } else if (op.kind === 'headedReused') {
                const split = Math.min(op.split, p.length)
                // Junk after the header: the word copy may read up to 3 bytes past it, which the body must overwrite.
                reused.fill(0xee)
                reused.set(p.subarray(0, split))
                got = producer.tryWriteHeaded(reused, split, p.subarray(split))
              } else if (op.kind === 'write') {
                got = producer.tryWrite(p)
              } else {
                got = producer.tryAppend(p)
              }
              expect(got).toBe(expected)
              if (op.kind !== 'append' && got) modelPublish()
              break
            }
            case 'publish':
              producer.publish()
              modelPublish()
              break
            case 'drain':
              expect(drainAll(consumer, op.max)).toEqual(modelTake(op.max))
              break
            case 'drainStop': {
              const out: Uint8Array[] = []
              expect(consumer.drain((r) => { out.push(r.slice()); return out.length < op.at })).toBe(Math.min(op.at, published.length))
              expect(out).toEqual(modelTake(op.at))
              break
            }
          }
          expect(consumer.isEmpty()).toBe(published.length === 0)
          expect(consumer.usedBytes()).toBe(pubHead - tail)
          expect(consumer.stats()).toEqual({ ...stats, usedBytes: pubHead - tail, capacity: cap })
        }
        // Publish and drain the rest: nothing lost, duplicated or reordered.
        producer.publish()
        modelPublish()
        expect(drainAll(consumer)).toEqual(modelTake(Infinity))
        expect(consumer.usedBytes()).toBe(0)
      },
    ), { numRuns: 300 })
  })
})

describe('keepAlive: false (host main thread)', () => {
  it('an untimed wait holds no timer handle, and still wakes on data', async () => {
    const r = RingBuffer.create(1024, { keepAlive: false })
    const before = process.getActiveResourcesInfo().filter((x) => x === 'Timeout').length
    const waiting = r.waitForData()
    expect(process.getActiveResourcesInfo().filter((x) => x === 'Timeout').length).toBe(before)
    expect(r.tryWrite(new Uint8Array([1]))).toBe(true)
    expect(await waiting).toBe('ok')
  })
})
