import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { Packr, Unpackr, pack } from 'msgpackr'
import { MeshError } from '../../../src/errors.js'
import {
  CloseCode, FrameFlag, FrameType, Lane, MAX_LANE, PROTOCOL_VERSION, ProtocolReason, type Frame,
} from '../../../src/codec/frame.js'
import { DEFAULT_LIMITS, resolveCodecLimits, type CodecLimits } from '../../../src/codec/limits.js'
import {
  encodeFrame, encodeFrameInto, encodeHeaderInto, encodeHeaderOnlyInto, frameSize, headerSize,
} from '../../../src/codec/encode.js'
import { decodeFrame, decodeFrames, forEachFrame, frameScratch, isFrameVersionSupported } from '../../../src/codec/decode.js'
import { decodeControl, encodeControl, MAX_CONTROL_BYTES } from '../../../src/codec/control.js'
import { GOLDEN_FRAMES, hexBytes } from '../../fixtures/golden-frames.js'

// --- helpers -------------------------------------------------------------------

const EDGE_INTS = [0, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER]
const WIDE_IDS: CodecLimits = { ...DEFAULT_LIMITS, maxIdBytes: 1024 }
// int64AsType 'number': msgpackr would return a BigInt for uint64 otherwise.
const unpackr = new Unpackr({ int64AsType: 'number', mapsAsObjects: true, useRecords: false })

function frame (over: Partial<Frame> = {}): Frame {
  return {
    version: PROTOCOL_VERSION, type: FrameType.DATA, lane: Lane.BULK, flags: 0,
    src: null, dst: null, stream: 0, seq: 0, payload: null, ...over,
  }
}

function asArray (f: Frame): unknown[] {
  return [f.version, f.type, f.lane, f.flags, f.src, f.dst, f.stream, f.seq, f.payload]
}

/** Frames compared with payloads as plain arrays (Buffer vs Uint8Array differ in class only). */
function norm (f: Frame): unknown {
  return { ...f, payload: f.payload === null ? null : Array.from(f.payload) }
}

function bytes (n: number, seed = 1): Uint8Array {
  const b = new Uint8Array(n)
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff
  return b
}

function concat (...parts: Uint8Array[]): Uint8Array {
  return Uint8Array.from(Buffer.concat(parts))
}

/** Hand-written msgpack pieces, for non-minimal and invalid encodings. */
const mp = {
  fix: (v: number) => Uint8Array.of(v),
  u8: (v: number) => Uint8Array.of(0xcc, v),
  u16: (v: number) => Uint8Array.of(0xcd, v >>> 8, v & 0xff),
  u32: (v: number) => { const b = Buffer.alloc(5); b[0] = 0xce; b.writeUInt32BE(v, 1); return Uint8Array.from(b) },
  u64: (v: bigint) => { const b = Buffer.alloc(9); b[0] = 0xcf; b.writeBigUInt64BE(v, 1); return Uint8Array.from(b) },
  i8: (v: number) => { const b = Buffer.alloc(2); b[0] = 0xd0; b.writeInt8(v, 1); return Uint8Array.from(b) },
  i16: (v: number) => { const b = Buffer.alloc(3); b[0] = 0xd1; b.writeInt16BE(v, 1); return Uint8Array.from(b) },
  i32: (v: number) => { const b = Buffer.alloc(5); b[0] = 0xd2; b.writeInt32BE(v, 1); return Uint8Array.from(b) },
  i64: (v: bigint) => { const b = Buffer.alloc(9); b[0] = 0xd3; b.writeBigInt64BE(v, 1); return Uint8Array.from(b) },
  f32: (v: number) => { const b = Buffer.alloc(5); b[0] = 0xca; b.writeFloatBE(v, 1); return Uint8Array.from(b) },
  f64: (v: number) => { const b = Buffer.alloc(9); b[0] = 0xcb; b.writeDoubleBE(v, 1); return Uint8Array.from(b) },
  nil: () => Uint8Array.of(0xc0),
  str8: (s: string) => { const b = Buffer.from(s); return concat(Uint8Array.of(0xd9, b.length), b) },
  str16: (s: string) => { const b = Buffer.from(s); return concat(Uint8Array.of(0xda, b.length >>> 8, b.length & 0xff), b) },
  str32: (s: string) => { const b = Buffer.from(s); const h = Buffer.alloc(5); h[0] = 0xdb; h.writeUInt32BE(b.length, 1); return concat(h, b) },
  rawStr: (b: Uint8Array) => concat(Uint8Array.of(0xa0 | b.length), b),
  bin8: (b: Uint8Array) => concat(Uint8Array.of(0xc4, b.length), b),
  bin16: (b: Uint8Array) => concat(Uint8Array.of(0xc5, b.length >>> 8, b.length & 0xff), b),
  bin32: (b: Uint8Array) => { const h = Buffer.alloc(5); h[0] = 0xc6; h.writeUInt32BE(b.length, 1); return concat(h, b) },
  arr: (n: number) => Uint8Array.of(0x90 | n),
  arr16: (n: number) => Uint8Array.of(0xdc, n >>> 8, n & 0xff),
  arr32: (n: number) => Uint8Array.of(0xdd, 0, 0, n >>> 8, n & 0xff),
}

/** The nine fields of a default valid frame, minimal-encoded, each replaceable. */
function fields (over: Partial<Record<'hdr' | keyof Frame, Uint8Array>> = {}): Uint8Array {
  return concat(
    over.hdr ?? mp.arr(9),
    over.version ?? mp.fix(1),
    over.type ?? mp.fix(FrameType.DATA),
    over.lane ?? mp.fix(Lane.BULK),
    over.flags ?? mp.fix(0),
    over.src ?? mp.nil(),
    over.dst ?? mp.nil(),
    over.stream ?? mp.fix(0),
    over.seq ?? mp.fix(0),
    over.payload ?? mp.nil(),
  )
}

/** Run fn, expect a PROTOCOL MeshError with this reason; returns it. */
function expectProtocol (fn: () => unknown, reason: string, closeCode: number = CloseCode.PROTOCOL_ERROR): MeshError {
  let caught: unknown
  try {
    fn()
  } catch (err) {
    caught = err
  }
  expect(caught, `expected a '${reason}' error`).toBeInstanceOf(MeshError)
  const e = caught as MeshError
  expect(e.code).toBe('PROTOCOL')
  expect(e.details?.reason, e.message).toBe(reason)
  expect(e.details?.closeCode).toBe(closeCode)
  expect(typeof e.details?.offset).toBe('number')
  expect(e.message).toMatch(/at byte \d+/)
  return e
}

function roundTrip (f: Frame, limits?: CodecLimits): Frame {
  const buf = encodeFrame(f)
  expect(buf.length).toBe(frameSize(f))
  const { frame: back, next } = decodeFrame(buf, 0, limits)
  expect(next).toBe(buf.length)
  expect(norm(back)).toEqual(norm(f))
  // Any msgpack library reads our frames.
  expect(norm(arrayToFrame(unpackr.unpack(buf) as unknown[]))).toEqual(norm(f))
  return back
}

function arrayToFrame (a: unknown[]): Frame {
  expect(a).toHaveLength(9)
  const [version, type, lane, flags, src, dst, stream, seq, payload] = a as [
    number, number, number, number, string | null, string | null, number, number, Uint8Array | null]
  return { version, type, lane, flags, src, dst, stream, seq, payload }
}

// --- tests ---------------------------------------------------------------------

describe('frame tables', () => {
  it('has the documented values', () => {
    expect(PROTOCOL_VERSION).toBe(1)
    expect(FrameType).toMatchObject({ HELLO: 1, WELCOME: 2, AUTH: 3, READY: 4, REJECT: 5, DATA: 16, PING: 17, PONG: 18, GOAWAY: 19 })
    expect(Lane).toEqual({ CONTROL: 0, PRIORITY: 1, BULK: 2 })
    expect(FrameFlag.ACK_REQUESTED).toBe(1)
    expect(CloseCode).toMatchObject({ NORMAL: 1000, GOING_AWAY: 1001, PROTOCOL_ERROR: 1002, TOO_BIG: 1009, HANDSHAKE_FAILED: 4001, HANDSHAKE_TIMEOUT: 4002, DUPLICATE: 4003, UNAUTHORIZED: 4004, VERSION: 4005 })
    expect(isFrameVersionSupported(1)).toBe(true)
    expect(isFrameVersionSupported(2)).toBe(false)
    expect(DEFAULT_LIMITS.maxIdBytes).toBe(64)
    expect(DEFAULT_LIMITS.knownTypes?.has(FrameType.GOAWAY)).toBe(true)
  })

  it('resolveCodecLimits fills defaults and names a bad field', () => {
    expect(resolveCodecLimits({ maxIdBytes: 10 })).toMatchObject({ maxIdBytes: 10, maxPayloadBytes: DEFAULT_LIMITS.maxPayloadBytes })
    expect(resolveCodecLimits({ knownTypes: undefined }).knownTypes).toBeUndefined()
    expect(() => resolveCodecLimits({ maxPayloadBytes: -1 })).toThrow(/limits\.maxPayloadBytes/)
    expect(() => resolveCodecLimits({ maxIdBytes: 1.5 })).toThrow(/limits\.maxIdBytes/)
  })
})

describe('round trip', () => {
  it.each(EDGE_INTS)('seq %d', (v) => { roundTrip(frame({ seq: v })) })
  it.each(EDGE_INTS.filter((v) => v <= 2 ** 32 - 1))('stream %d', (v) => { roundTrip(frame({ stream: v })) })
  it.each([0, 1, 127, 128, 255])('flags %d', (v) => { roundTrip(frame({ flags: v })) })
  it.each(Object.values(FrameType))('type %d', (t) => { roundTrip(frame({ type: t })) })
  it.each(Object.values(Lane))('lane %d', (l) => { roundTrip(frame({ lane: l })) })

  it.each([0, 31, 32, 255, 256])('ASCII ids of %d bytes', (n) => {
    const id = 'p'.repeat(n)
    roundTrip(frame({ src: id, dst: id.toUpperCase() }), WIDE_IDS)
  })

  it.each([
    ['2-byte chars', 'é'.repeat(20)], ['3-byte chars', '€'.repeat(12)], ['astral', '😀x😀'],
    ['leading BOM', '\ufeffid'], ['mixed', 'peer-ß-1'],
  ])('non-ASCII id: %s', (_name, id) => {
    const back = roundTrip(frame({ src: id, dst: id }))
    expect(back.src).toBe(id)
  })

  it('a lone surrogate is written as U+FFFD, like TextEncoder and msgpackr', () => {
    const buf = encodeFrame(frame({ src: 'a\ud800b' }))
    expect(buf.length).toBe(frameSize(frame({ src: 'a\ud800b' })))
    expect(decodeFrame(buf, 0).frame.src).toBe('a\ufffdb')
  })

  it.each([-1, 0, 1, 255, 256, 65535, 65536])('payload of %d bytes (-1 = nil)', (n) => {
    const payload = n < 0 ? null : bytes(n)
    roundTrip(frame({ payload }))
  })

  it('writes exactly what msgpackr writes (minimal encoding) for every field width below 2^32', () => {
    for (const v of EDGE_INTS.filter((x) => x < 2 ** 32)) {
      for (const id of [null, '', 'p'.repeat(31), 'p'.repeat(32), 'p'.repeat(255), 'p'.repeat(256)]) {
        for (const n of [-1, 0, 255, 256, 65536]) {
          const f = frame({ stream: v, seq: v, flags: v & 0xff, src: id, dst: id, payload: n < 0 ? null : bytes(n) })
          expect(Buffer.from(encodeFrame(f)).equals(pack(asArray(f)))).toBe(true)
        }
      }
    }
  })

  it('writes uint64 for integers ≥ 2^32 (msgpackr writes float64 there, which we also read)', () => {
    const f = frame({ seq: 2 ** 32 })
    expect(Buffer.from(encodeFrame(f)).subarray(-10).toString('hex')).toBe('cf0000000100000000c0')
    expect(norm(decodeFrame(pack(asArray(f)), 0).frame)).toEqual(norm(f))
  })

  it('decodes msgpackr.pack of the 9-array for every edge int, incl. float64 seq', () => {
    for (const v of EDGE_INTS) {
      const f = frame({ seq: v, stream: Math.min(v, 2 ** 32 - 1), src: 'a', dst: 'b', payload: bytes(3) })
      const { frame: back, next } = decodeFrame(pack(asArray(f)), 0)
      expect(norm(back)).toEqual(norm(f))
      expect(next).toBe(pack(asArray(f)).length)
    }
  })

  it('returns the payload as a view into the input (no copy)', () => {
    const buf = encodeFrame(frame({ payload: bytes(100) }))
    const p = decodeFrame(buf, 0).frame.payload!
    expect(p.buffer).toBe(buf.buffer)
    expect(p.byteOffset).toBe(buf.byteOffset + buf.length - 100)
  })

  it('decodes ids from plain Uint8Arrays and Buffers alike', () => {
    const f = frame({ src: 'plain-ascii-id', dst: 'ü-id' })
    const buf = encodeFrame(f)
    expect(norm(decodeFrame(Uint8Array.from(buf), 0).frame)).toEqual(norm(f))
    expect(norm(decodeFrame(Buffer.from(buf), 0).frame)).toEqual(norm(f))
  })

  it('id cache: colliding ids (same length, first, middle and last byte) decode correctly', () => {
    // Both ids hash to the same cache slot; alternate them so each decode
    // must evict the other.
    const a = 'aXcXe'
    const b = 'aYcYe'
    for (let i = 0; i < 4; i++) {
      expect(decodeFrame(encodeFrame(frame({ src: a })), 0).frame.src).toBe(a)
      expect(decodeFrame(encodeFrame(frame({ src: b })), 0).frame.src).toBe(b)
    }
  })
})

describe('id caches', () => {
  it('encoder: thousands of distinct ids (cache eviction) all encode correctly', () => {
    for (let i = 0; i < 3000; i++) {
      const id = `peer-${i}-${'é'.repeat(i % 3)}`
      expect(decodeFrame(encodeFrame(frame({ src: id, dst: `d${i}` })), 0).frame).toMatchObject({ src: id, dst: `d${i}` })
    }
  })

  it('decoder: the same bytes yield the same string instance; new bytes a new one', () => {
    const ids = Array.from({ length: 600 }, (_, i) => `12D3KooW${String(i).padStart(44, '0')}`)
    for (let round = 0; round < 2; round++) {
      for (const id of ids) expect(decodeFrame(encodeFrame(frame({ src: id })), 0).frame.src).toBe(id)
    }
  })

  it('decoder: a malformed id leaves no trace in the cache', () => {
    // 'aéb' is 61 c3 a9 62. The bad bytes 61 ff a9 62 share its length,
    // first, middle (index 2) and last byte, so both map to one cache slot.
    const bad = fields({ src: mp.rawStr(Uint8Array.of(0x61, 0xff, 0xa9, 0x62)) })
    expectProtocol(() => decodeFrame(bad, 0), 'bad-utf8')
    expectProtocol(() => decodeFrame(bad, 0), 'bad-utf8')
    expect(decodeFrame(fields({ src: mp.rawStr(Uint8Array.of(0x61, 0xc3, 0xa9, 0x62)) }), 0).frame.src).toBe('aéb')
    expectProtocol(() => decodeFrame(bad, 0), 'bad-utf8')
  })
})

describe('shared memory (ring buffers are SharedArrayBuffers)', () => {
  function shared (b: Uint8Array): Uint8Array {
    const s = new Uint8Array(new SharedArrayBuffer(b.length + 8), 8)
    s.set(b)
    return s
  }

  it('encodes into and decodes from a SharedArrayBuffer; the payload is a view of it', () => {
    const f = frame({ src: 'ascii-id', dst: 'ünïcode', payload: bytes(70) })
    const out = new Uint8Array(new SharedArrayBuffer(frameSize(f) + 4))
    expect(encodeFrameInto(f, out, 4)).toBe(frameSize(f))
    const back = decodeFrame(out, 4).frame
    expect(norm(back)).toEqual(norm(f))
    expect(back.payload!.buffer).toBe(out.buffer)
  })

  it('decodes control payloads from shared memory, without touching the caller\'s array', () => {
    const input = shared(encodeControl({ s: 'x'.repeat(100) + 'é'.repeat(50), b: bytes(4) }))
    expect(decodeControl(input)).toMatchObject({ s: 'x'.repeat(100) + 'é'.repeat(50) })
    const plain = Uint8Array.from(encodeControl({ a: 1 }))
    decodeControl(plain)
    expect('dataView' in plain).toBe(false)
  })
})

describe('non-minimal encodings from other implementations', () => {
  const intEncodings: Array<[string, (v: number) => Uint8Array, number]> = [
    ['uint8', mp.u8, 255], ['uint16', mp.u16, 65535], ['uint32', mp.u32, 2 ** 32 - 1],
    ['uint64', (v) => mp.u64(BigInt(v)), Number.MAX_SAFE_INTEGER],
    ['int8', mp.i8, 127], ['int16', mp.i16, 32767], ['int32', mp.i32, 2 ** 31 - 1],
    ['int64', (v) => mp.i64(BigInt(v)), Number.MAX_SAFE_INTEGER],
    ['float32', mp.f32, 2 ** 24], ['float64', mp.f64, Number.MAX_SAFE_INTEGER],
  ]
  const intFields = [
    ['version', 1, 1], ['type', FrameType.PING, FrameType.PING], ['lane', 1, 1], ['flags', 7, 255],
    ['stream', 9, 2 ** 32 - 1], ['seq', 11, Number.MAX_SAFE_INTEGER],
  ] as const

  for (const [enc, write, encMax] of intEncodings) {
    for (const [field, small, fieldMax] of intFields) {
      it(`${field} as ${enc}`, () => {
        for (const v of new Set([small, Math.min(encMax, fieldMax)])) {
          if (field === 'version' && v !== 1) continue
          if (field === 'type' && v !== FrameType.PING) continue
          if (field === 'lane' && v > 2) continue
          const buf = fields({ [field]: write(v) })
          expect((decodeFrame(buf, 0).frame as unknown as Record<string, unknown>)[field]).toBe(v)
        }
      })
    }
  }

  it.each([['fixarray', mp.arr(9)], ['array16', mp.arr16(9)], ['array32', mp.arr32(9)]])('frame as %s', (_n, hdr) => {
    expect(decodeFrame(fields({ hdr }), 0).frame).toMatchObject({ type: FrameType.DATA })
  })

  it.each([['str8', mp.str8], ['str16', mp.str16], ['str32', mp.str32]])('ids as %s', (_n, write) => {
    const f = decodeFrame(fields({ src: write('alice'), dst: write('') }), 0).frame
    expect(f.src).toBe('alice')
    expect(f.dst).toBe('')
  })

  it.each([['bin8', mp.bin8], ['bin16', mp.bin16], ['bin32', mp.bin32]])('payload as %s', (_n, write) => {
    expect(Array.from(decodeFrame(fields({ payload: write(Uint8Array.of(9, 8)) }), 0).frame.payload!)).toEqual([9, 8])
  })

  it('float64 -0 reads as 0', () => {
    expect(Object.is(decodeFrame(fields({ seq: mp.f64(-0) }), 0).frame.seq, 0)).toBe(true)
  })
})

describe('many frames per message', () => {
  const many = Array.from({ length: 500 }, (_, i) => frame({
    type: i % 3 === 0 ? FrameType.PING : FrameType.DATA, lane: i % 3, seq: i * 1_000_003,
    src: i % 2 === 0 ? null : `peer-${i % 7}`, dst: 'hub', payload: i % 5 === 0 ? null : bytes(i % 300, i),
  }))
  const encoded = many.map(encodeFrame)
  const message = concat(...encoded)

  it('decodeFrames returns every frame in order', () => {
    expect(decodeFrames(message).map(norm)).toEqual(many.map(norm))
  })

  it('forEachFrame gives each frame and its exact byte range', () => {
    let i = 0
    const n = forEachFrame(message, undefined, (f, start, end) => {
      expect(norm(f)).toEqual(norm(many[i]!))
      expect(Buffer.from(message.subarray(start, end)).equals(encoded[i]!)).toBe(true)
      i++
    })
    expect(n).toBe(many.length)
    expect(i).toBe(many.length)
  })

  it('decodeFrame walks the message with next', () => {
    let p = 0
    let count = 0
    while (p < message.length) {
      const r = decodeFrame(message, p)
      expect(norm(r.frame)).toEqual(norm(many[count]!))
      p = r.next
      count++
    }
    expect(count).toBe(many.length)
  })

  it('forEachFrame into a scratch frame: a malformed frame leaves the last good one there', () => {
    const into = frameScratch()
    const seen: number[] = []
    expectProtocol(() => forEachFrame(concat(message, Uint8Array.of(0x99)), undefined, (f) => { seen.push(f.seq) }, into), 'truncated')
    expect(seen).toEqual(many.map((f) => f.seq))
    expect(norm(into)).toEqual(norm(many.at(-1)!))
  })

  it('trailing garbage after valid frames is an error, not ignored', () => {
    expectProtocol(() => decodeFrames(concat(message, Uint8Array.of(0x01))), 'not-array')
    expectProtocol(() => decodeFrames(concat(message, Uint8Array.of(0x99))), 'truncated')
    expectProtocol(() => forEachFrame(concat(message, Uint8Array.of(0xc0)), undefined, () => {}), 'not-array')
  })
})

describe('golden frames', () => {
  for (const g of GOLDEN_FRAMES) {
    describe(g.name, () => {
      const buf = hexBytes(g.hex)

      it('decodes to the expected frame', () => {
        const { frame: f, next } = decodeFrame(buf, 0)
        expect(next).toBe(buf.length)
        expect(norm(f)).toEqual(norm(g.frame))
        expect(norm(arrayToFrame(unpackr.unpack(buf) as unknown[]))).toEqual(norm(g.frame))
      })

      it(g.minimal ? 'encodes to exactly these bytes' : 're-encodes minimally to the same frame', () => {
        const out = encodeFrame(g.frame)
        if (g.minimal) expect(Buffer.from(out).toString('hex')).toBe(Buffer.from(buf).toString('hex'))
        else expect(out.length).toBeLessThan(buf.length)
        expect(norm(decodeFrame(out, 0).frame)).toEqual(norm(g.frame))
      })

      it('every prefix is truncated (empty at 0) and every split rejoins', () => {
        for (let i = 0; i < buf.length; i++) {
          const head = buf.subarray(0, i)
          expectProtocol(() => decodeFrames(head), i === 0 ? 'empty' : 'truncated')
          expectProtocol(() => decodeFrame(head, 0), 'truncated')
          // Also from a fresh copy, so no view into the full buffer can be
          // read past its end by mistake.
          expectProtocol(() => decodeFrame(Uint8Array.from(head), 0), 'truncated')
          const joined = concat(head, buf.subarray(i))
          expect(norm(decodeFrames(joined)[0]!)).toEqual(norm(g.frame))
        }
      })
    })
  }

  it('all golden frames in one message, split at every byte offset', () => {
    const parts = GOLDEN_FRAMES.map((g) => hexBytes(g.hex))
    const all = concat(...parts)
    const boundaries = new Set<number>()
    let acc = 0
    for (const p of parts) boundaries.add(acc += p.length)
    for (let i = 1; i < all.length; i++) {
      const head = all.subarray(0, i)
      if (boundaries.has(i)) {
        expect(decodeFrames(head).length).toBe([...boundaries].filter((b) => b <= i).length)
      } else {
        expectProtocol(() => decodeFrames(head), 'truncated')
      }
    }
    expect(decodeFrames(all).map(norm)).toEqual(GOLDEN_FRAMES.map((g) => norm(g.frame)))
  })
})

describe('rejections: every reason, with code and close code', () => {
  it('empty', () => {
    expectProtocol(() => decodeFrames(new Uint8Array(0)), 'empty')
    expectProtocol(() => forEachFrame(new Uint8Array(0), undefined, () => {}), 'empty')
  })

  it('truncated: inside a header, a string and a payload; offset names the field', () => {
    const full = encodeFrame(frame({ src: 'alice', payload: bytes(300) }))
    const e = expectProtocol(() => decodeFrame(full.subarray(0, full.length - 1), 0), 'truncated')
    expect(e.details?.offset).toBe(full.length - 303) // the bin16 header
    expectProtocol(() => decodeFrame(full.subarray(0, 8), 0), 'truncated')
    expectProtocol(() => decodeFrame(Uint8Array.of(0xdd, 0, 0), 0), 'truncated')
    expectProtocol(() => decodeFrame(Uint8Array.of(0x99, 0xcf, 0, 0), 0), 'truncated')
  })

  it.each([
    ['fixmap', Uint8Array.of(0x80)], ['nil', Uint8Array.of(0xc0)], ['fixint', Uint8Array.of(0x01)],
    ['str', Uint8Array.of(0xa1, 0x61)], ['reserved 0xc1', Uint8Array.of(0xc1)],
  ])('not-array: %s', (_n, b) => {
    expectProtocol(() => decodeFrames(b), 'not-array')
  })

  it('bad-arity', () => {
    expectProtocol(() => decodeFrame(pack([]), 0), 'bad-arity')
    expectProtocol(() => decodeFrame(pack([1, 16, 2]), 0), 'bad-arity')
    expectProtocol(() => decodeFrame(pack([1, 16, 2, 0, null, null, 0, 0, null, null]), 0), 'bad-arity')
    expectProtocol(() => decodeFrame(fields({ hdr: mp.arr32(8) }), 0), 'bad-arity')
  })

  it.each([
    ['version nil', { version: mp.nil() }], ['type as str', { type: mp.str8('16') }],
    ['lane as true', { lane: Uint8Array.of(0xc3) }], ['flags as bin', { flags: mp.bin8(Uint8Array.of(1)) }],
    ['src as int', { src: mp.fix(1) }], ['dst as bin', { dst: mp.bin8(Uint8Array.of(0x61)) }],
    ['stream as array', { stream: mp.arr(0) }], ['seq as ext', { seq: Uint8Array.of(0xd4, 1, 0) }],
    ['payload as str', { payload: mp.str8('x') }], ['payload as reserved 0xc1', { payload: Uint8Array.of(0xc1) }],
  ] as const)('bad-type: %s', (_n, over) => {
    expectProtocol(() => decodeFrame(fields(over), 0), 'bad-type')
  })

  it.each([
    ['flags 256', { flags: mp.u16(256) }], ['stream 2^32', { stream: mp.u64(2n ** 32n) }],
    ['seq 2^53', { seq: mp.u64(2n ** 53n) }], ['seq 2^64-1', { seq: mp.u64(2n ** 64n - 1n) }],
    ['seq -1 (negative fixint)', { seq: Uint8Array.of(0xff) }], ['stream int8 -1', { stream: mp.i8(-1) }],
    ['seq int64 -1', { seq: mp.i64(-1n) }], ['seq int32 min', { seq: mp.i32(-(2 ** 31)) }],
    ['seq float 1.5', { seq: mp.f64(1.5) }], ['seq float NaN', { seq: mp.f64(Number.NaN) }],
    ['seq float Infinity', { seq: mp.f64(Infinity) }], ['seq float -1', { seq: mp.f32(-1) }],
    ['seq float 2^53', { seq: mp.f64(2 ** 53) }],
  ] as const)('bad-field: %s', (_n, over) => {
    expectProtocol(() => decodeFrame(fields(over), 0), 'bad-field')
  })

  it.each([
    ['lone continuation byte', Uint8Array.of(0x80)], ['invalid byte ff', Uint8Array.of(0x61, 0xff)],
    ['truncated sequence', Uint8Array.of(0xe2, 0x82)], ['overlong /', Uint8Array.of(0xc0, 0xaf)],
    ['encoded surrogate', Uint8Array.of(0xed, 0xa0, 0x80)],
  ])('bad-utf8: %s', (_n, raw) => {
    expectProtocol(() => decodeFrame(fields({ src: mp.rawStr(raw) }), 0), 'bad-utf8')
    expectProtocol(() => decodeFrame(Buffer.from(fields({ dst: mp.rawStr(raw) })), 0), 'bad-utf8')
  })

  it('unsupported-version, checked before arity', () => {
    expectProtocol(() => decodeFrame(fields({ version: mp.fix(2) }), 0), 'unsupported-version')
    expectProtocol(() => decodeFrame(fields({ version: mp.fix(0) }), 0), 'unsupported-version')
    expectProtocol(() => decodeFrame(pack([2, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]), 0), 'unsupported-version')
  })

  it('unknown-frame-type', () => {
    expectProtocol(() => decodeFrame(fields({ type: mp.fix(99) }), 0), 'unknown-frame-type')
    expectProtocol(() => decodeFrame(fields({ type: mp.fix(0) }), 0), 'unknown-frame-type')
    // Without knownTypes any type 0..255 is accepted, larger is not.
    const any: CodecLimits = { maxIdBytes: 64, maxPayloadBytes: 100 }
    expect(decodeFrame(fields({ type: mp.fix(99) }), 0, any).frame.type).toBe(99)
    expectProtocol(() => decodeFrame(fields({ type: mp.u16(300) }), 0, any), 'unknown-frame-type')
    // And a custom set.
    const custom: CodecLimits = { ...DEFAULT_LIMITS, knownTypes: new Set([42]) }
    expect(decodeFrame(fields({ type: mp.fix(42) }), 0, custom).frame.type).toBe(42)
    expectProtocol(() => decodeFrame(fields(), 0, custom), 'unknown-frame-type')
  })

  it('bad-lane', () => {
    expectProtocol(() => decodeFrame(fields({ lane: mp.fix(3) }), 0), 'bad-lane')
    expectProtocol(() => decodeFrame(fields({ lane: mp.u32(2 ** 32 - 1) }), 0), 'bad-lane')
  })

  it('id-too-long, judged on the claimed length before the bytes are there', () => {
    expect(decodeFrame(fields({ src: mp.str8('x'.repeat(64)) }), 0).frame.src).toHaveLength(64)
    expectProtocol(() => decodeFrame(fields({ src: mp.str8('x'.repeat(65)) }), 0), 'id-too-long')
    expectProtocol(() => decodeFrame(fields({ dst: mp.str8('x'.repeat(31)) }), 0, { ...DEFAULT_LIMITS, maxIdBytes: 30 }), 'id-too-long')
    // str32 claiming 4 GiB in a 20-byte message
    const claim = concat(mp.arr(9), mp.fix(1), mp.fix(16), mp.fix(2), mp.fix(0), Uint8Array.of(0xdb, 0xff, 0xff, 0xff, 0xff))
    expectProtocol(() => decodeFrame(claim, 0), 'id-too-long')
  })

  it('payload-too-large closes with 1009, before the bytes are there', () => {
    const limits: CodecLimits = { ...DEFAULT_LIMITS, maxPayloadBytes: 255 }
    expect(decodeFrame(fields({ payload: mp.bin8(bytes(255)) }), 0, limits).frame.payload).toHaveLength(255)
    expectProtocol(() => decodeFrame(fields({ payload: mp.bin16(bytes(256)) }), 0, limits), 'payload-too-large', CloseCode.TOO_BIG)
    const claim = concat(fields().subarray(0, 9), Uint8Array.of(0xc6, 0x80, 0, 0, 0))
    expectProtocol(() => decodeFrame(claim, 0), 'payload-too-large', CloseCode.TOO_BIG)
    // Within the limit but not present: truncated.
    expectProtocol(() => decodeFrame(claim, 0, { ...DEFAULT_LIMITS, maxPayloadBytes: 2 ** 32 - 1 }), 'truncated')
  })

  it('a FORWARD envelope is judged against maxEnvelopeBytes, every other type against maxPayloadBytes', () => {
    const limits: CodecLimits = { ...DEFAULT_LIMITS, maxPayloadBytes: 255, maxEnvelopeBytes: 300 }
    const fwd = mp.fix(FrameType.FORWARD)
    expect(decodeFrame(fields({ type: fwd, payload: mp.bin16(bytes(300)) }), 0, limits).frame.payload).toHaveLength(300)
    expectProtocol(() => decodeFrame(fields({ type: fwd, payload: mp.bin16(bytes(301)) }), 0, limits), 'payload-too-large', CloseCode.TOO_BIG)
    expectProtocol(() => decodeFrame(fields({ payload: mp.bin16(bytes(256)) }), 0, limits), 'payload-too-large', CloseCode.TOO_BIG)
    // Without maxEnvelopeBytes an envelope has the ordinary limit.
    expectProtocol(() => decodeFrame(fields({ type: fwd, payload: mp.bin16(bytes(256)) }), 0, { ...DEFAULT_LIMITS, maxPayloadBytes: 255 }), 'payload-too-large', CloseCode.TOO_BIG)
    expect(() => resolveCodecLimits({ maxEnvelopeBytes: -1 })).toThrow(/limits\.maxEnvelopeBytes/)
    expect(resolveCodecLimits({ maxEnvelopeBytes: 9 }).maxEnvelopeBytes).toBe(9)
  })

  it('trailing-bytes and bad-control (control payloads)', () => {
    expectProtocol(() => decodeControl(concat(pack({ a: 1 }), pack(2))), 'trailing-bytes')
    expectProtocol(() => decodeControl(new Uint8Array(0)), 'bad-control')
    expectProtocol(() => decodeControl(Uint8Array.of(0x81)), 'bad-control')
    expectProtocol(() => decodeControl(Uint8Array.of(0xd4, 0x05, 0x00)), 'bad-control')
    expectProtocol(() => decodeControl(new Uint8Array(MAX_CONTROL_BYTES + 1)), 'bad-control')
  })

  it('bad-offset', () => {
    const buf = encodeFrame(frame())
    expectProtocol(() => decodeFrame(buf, -1), 'bad-offset')
    expectProtocol(() => decodeFrame(buf, 0.5), 'bad-offset')
    expectProtocol(() => decodeFrame(buf, buf.length + 1), 'bad-offset')
    expectProtocol(() => decodeFrame(buf, Number.NaN), 'bad-offset')
    expectProtocol(() => decodeFrame(buf, buf.length), 'truncated')
  })

  it('the reason table lists exactly the reasons the codec and the connection use', () => {
    expect(Object.values(ProtocolReason).sort()).toEqual([
      'bad-arity', 'bad-control', 'bad-field', 'bad-lane', 'bad-offset', 'bad-type', 'bad-utf8', 'empty',
      'id-too-long', 'not-array', 'payload-too-large', 'text-message', 'trailing-bytes', 'truncated',
      'unexpected-frame', 'unknown-frame-type', 'unsupported-version', 'websocket',
    ])
  })
})

describe('encodeFrameInto / encodeHeaderInto', () => {
  const f = frame({ src: 'alice', dst: 'bob', seq: 70000, payload: bytes(300) })
  const whole = encodeFrame(f)

  it('writes at an offset and returns the bytes written', () => {
    const out = new Uint8Array(whole.length + 10).fill(0xee)
    expect(encodeFrameInto(f, out, 7)).toBe(whole.length)
    expect(Buffer.from(out.subarray(7, 7 + whole.length)).equals(whole)).toBe(true)
    expect(Array.from(out.subarray(0, 7))).toEqual(Array(7).fill(0xee))
  })

  it('returns -1 and writes nothing when the frame does not fit', () => {
    for (const [size, offset] of [[whole.length - 1, 0], [whole.length, 1], [0, 0], [10, 20]] as const) {
      const out = new Uint8Array(size).fill(0xee)
      expect(encodeFrameInto(f, out, offset)).toBe(-1)
      expect(out.every((b) => b === 0xee)).toBe(true)
    }
    expect(encodeFrameInto(f, new Uint8Array(whole.length), 0)).toBe(whole.length)
  })

  it('header + payload copy === encodeFrame, for every payload width and nil', () => {
    for (const n of [-1, 0, 1, 255, 256, 65535, 65536]) {
      const g = frame({ src: 'alice', seq: 2 ** 40, payload: n < 0 ? null : bytes(n) })
      const expected = encodeFrame(g)
      const out = new Uint8Array(expected.length + 3)
      const h = encodeHeaderInto(g, n, out, 3)
      expect(h).toBe(headerSize(g, n))
      if (g.payload !== null) out.set(g.payload, 3 + h)
      expect(Buffer.from(out.subarray(3)).equals(expected)).toBe(true)
      expect(h + Math.max(n, 0)).toBe(frameSize(g))
    }
  })

  it('encodeHeaderInto returns -1 unless the payload fits too', () => {
    const h = headerSize(f, 300)
    expect(encodeHeaderInto(f, 300, new Uint8Array(h + 299), 0)).toBe(-1)
    expect(encodeHeaderInto(f, 300, new Uint8Array(h + 300), 0)).toBe(h)
  })

  it('encodeHeaderOnlyInto needs room for the header only; header + payload elsewhere === encodeFrame', () => {
    const h = headerSize(f, 300)
    const out = new Uint8Array(h)
    expect(encodeHeaderOnlyInto(f, 300, out, 0)).toBe(h)
    expect(Buffer.from(concat(out, f.payload!)).equals(whole)).toBe(true)
    expect(encodeHeaderOnlyInto(f, 300, new Uint8Array(h - 1), 0)).toBe(-1)
  })

  it('an id-less header written straight into a roomy buffer is byte for byte the measured encoding (any field values)', () => {
    const uint = (max: number): fc.Arbitrary<number> => fc.oneof(fc.constantFrom(0, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x1_0000, 0xffff_ffff, 0x1_0000_0000, max).filter((v) => v <= max), fc.integer({ min: 0, max: Math.min(max, Number.MAX_SAFE_INTEGER) }))
    fc.assert(fc.property(
      uint(0xff), uint(0xff), fc.integer({ min: 0, max: MAX_LANE }), uint(0xff), uint(0xffff_ffff), uint(Number.MAX_SAFE_INTEGER), fc.oneof(fc.constant(-1), uint(0xffff_ffff)), fc.integer({ min: 0, max: 5 }),
      (version, type, lane, flags, stream, seq, n, offset) => {
        const h = { version, type, lane, flags, src: null, dst: null, stream, seq }
        const size = headerSize(h, n)
        const exact = new Uint8Array(offset + size)
        expect(encodeHeaderOnlyInto(h, n, exact, offset)).toBe(size)
        const roomy = new Uint8Array(offset + 64).fill(0xee)
        expect(encodeHeaderOnlyInto(h, n, roomy, offset)).toBe(size)
        expect(roomy.subarray(offset, offset + size)).toEqual(exact.subarray(offset))
        expect(roomy.subarray(0, offset).every((x) => x === 0xee)).toBe(true)
        expect(roomy.subarray(offset + size).every((x) => x === 0xee)).toBe(true)
      },
    ), { numRuns: 500 })
  })

  it.each([
    ['flags 256', { flags: 256 }], ['lane 3', { lane: 3 }], ['seq -1', { seq: -1 }], ['seq 1.5', { seq: 1.5 }],
    ['seq NaN', { seq: Number.NaN }], ['seq 2^53', { seq: 2 ** 53 }], ['stream 2^32', { stream: 2 ** 32 }],
    ['type 256', { type: 256 }], ['version -1', { version: -1 }],
  ] as const)('refuses to encode %s (bad-field)', (_n, over) => {
    const g = frame(over)
    expectProtocol(() => encodeFrame(g), 'bad-field')
    expectProtocol(() => encodeFrameInto(g, new Uint8Array(100), 0), 'bad-field')
    expectProtocol(() => frameSize(g), 'bad-field')
    // Also on the id-less header's direct path (the hosts' send path).
    expectProtocol(() => encodeHeaderOnlyInto({ ...g, src: null, dst: null }, 10, new Uint8Array(100), 0), 'bad-field')
  })

  it('refuses a bad offset or payload length', () => {
    expectProtocol(() => encodeFrameInto(f, new Uint8Array(1000), -1), 'bad-offset')
    expectProtocol(() => encodeFrameInto(f, new Uint8Array(1000), 1.5), 'bad-offset')
    expectProtocol(() => encodeHeaderInto(f, Number.NaN, new Uint8Array(1000), 0), 'bad-field')
    expectProtocol(() => encodeHeaderInto(f, 2 ** 32, new Uint8Array(1000), 0), 'bad-field')
  })
})

describe('control payloads', () => {
  it('round-trips handshake-like objects', () => {
    const v = { v: [1], features: ['lanes', 'multipath'], id: 'peer-1', nonce: bytes(32), ts: 1_700_000_000_000, nested: { a: null, b: true } }
    const back = decodeControl(encodeControl(v)) as typeof v
    expect({ ...back, nonce: Array.from(back.nonce) }).toEqual({ ...v, nonce: Array.from(v.nonce) })
  })

  it('decoded bin values are copies, not views into the input', () => {
    const input = Uint8Array.from(encodeControl({ key: bytes(16) }))
    const out = decodeControl(input) as { key: Uint8Array }
    expect(out.key.buffer).not.toBe(input.buffer)
    input.fill(0)
    expect(Array.from(out.key)).toEqual(Array.from(bytes(16)))
  })

  it('writes plain msgpack any library reads (no records)', () => {
    const enc = encodeControl({ a: 1, b: 'x' })
    expect(new Unpackr({ mapsAsObjects: false }).unpack(enc)).toEqual(new Map<unknown, unknown>([['a', 1], ['b', 'x']]))
    expect(enc[0]).toBe(0x82) // fixmap of 2, not a msgpackr record
  })

  it('refuses structured-clone references from a peer', () => {
    const cyclic: Record<string, unknown> = { a: 1 }
    cyclic.self = cyclic
    const enc = new Packr({ structuredClone: true }).pack(cyclic)
    expectProtocol(() => decodeControl(enc), 'bad-control')
  })

  it('a __proto__ key does not pollute', () => {
    const enc = Uint8Array.of(0x81, 0xa9, ...Buffer.from('__proto__'), 0x81, 0xa1, 0x78, 0x01)
    const v = decodeControl(enc) as Record<string, unknown>
    expect(Object.getPrototypeOf(v)).toBe(Object.prototype)
    expect(({} as Record<string, unknown>).x).toBeUndefined()
  })
})
