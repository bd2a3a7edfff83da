import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { pack } from 'msgpackr'
import { MeshError } from '../../../src/errors.js'
import { FrameType, Lane, PROTOCOL_VERSION, type Frame } from '../../../src/codec/frame.js'
import { DEFAULT_LIMITS, KNOWN_FRAME_TYPES, type CodecLimits } from '../../../src/codec/limits.js'
import { encodeFrame, encodeHeaderInto, frameSize } from '../../../src/codec/encode.js'
import { decodeFrame, decodeFrames, forEachFrame, frameScratch } from '../../../src/codec/decode.js'
import { decodeControl, encodeControl } from '../../../src/codec/control.js'

// Run counts: enough to reach every decoder branch many times over, while the
// whole file stays well under 10 s on a slow CI box.
const RUNS = 2_500

// --- arbitraries -----------------------------------------------------------------

const uint32 = fc.oneof(
  fc.constantFrom(0, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1),
  fc.bigInt({ min: 0n, max: 2n ** 32n - 1n }).map(Number),
)
const seqArb = fc.oneof(
  fc.constantFrom(0, 127, 128, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER),
  fc.maxSafeNat(),
  fc.nat(1000),
)
// ASCII ids up to the 64-byte limit, and any-code-point ids up to 16 code
// points (≤ 64 UTF-8 bytes). 'binary' yields well-formed strings only.
const idArb = fc.option(fc.oneof(
  fc.string({ maxLength: 64 }),
  fc.string({ unit: 'binary', maxLength: 16 }),
), { nil: null })
const payloadArb = fc.option(fc.oneof(
  { weight: 20, arbitrary: fc.uint8Array({ maxLength: 300 }) },
  { weight: 1, arbitrary: fc.integer({ min: 65_530, max: 70_000 }).map((n) => new Uint8Array(n).fill(7)) },
), { nil: null })

const frameOf = (payload: fc.Arbitrary<Uint8Array | null>): fc.Arbitrary<Frame> => fc.record({
  version: fc.constant(PROTOCOL_VERSION),
  type: fc.constantFrom(...Object.values(FrameType)),
  lane: fc.constantFrom(...Object.values(Lane)),
  flags: fc.integer({ min: 0, max: 255 }),
  src: idArb,
  dst: idArb,
  stream: uint32,
  seq: seqArb,
  payload,
})
const frameArb = frameOf(payloadArb)
// For byte-level mutation: the interesting bytes are the header's, and a
// 64 KiB payload would only make each run slower.
const smallFrameArb = frameOf(fc.option(fc.uint8Array({ maxLength: 40 }), { nil: null }))

/**
 * Comparable form of a frame. The payload becomes its length rather than
 * hex, because hex of 64 KiB payloads dominated the run
 * time; exact payload equality is asserted separately with Buffer.equals.
 */
function norm (f: Frame): unknown {
  return { ...f, payload: f.payload === null ? null : f.payload.length }
}

function samePayload (a: Uint8Array | null, b: Uint8Array | null): boolean {
  if (a === null || b === null) return a === b
  return Buffer.from(a.buffer, a.byteOffset, a.length).equals(b)
}

function concat (parts: Uint8Array[]): Uint8Array {
  return Uint8Array.from(Buffer.concat(parts))
}

/** Decode, and accept only success or a PROTOCOL MeshError. */
function decodeOrProtocolError (buf: Uint8Array, limits?: CodecLimits): Frame[] | MeshError {
  try {
    return decodeFrames(buf, limits)
  } catch (err) {
    if (!(err instanceof MeshError) || err.code !== 'PROTOCOL') throw err
    expect(typeof err.details?.reason).toBe('string')
    expect([1002, 1009]).toContain(err.details?.closeCode)
    const offset = err.details?.offset as number
    expect(offset).toBeGreaterThanOrEqual(0)
    expect(offset).toBeLessThanOrEqual(buf.length)
    return err
  }
}

// --- (1) valid frames round-trip ----------------------------------------------------

describe('fuzz: valid frames round-trip', () => {
  it('decode(encode(f)) equals f, sizes agree, header+copy equals encodeFrame', () => {
    fc.assert(fc.property(frameArb, (f) => {
      const buf = encodeFrame(f)
      expect(buf.length).toBe(frameSize(f))
      const { frame, next } = decodeFrame(buf, 0)
      expect(next).toBe(buf.length)
      expect(norm(frame)).toEqual(norm(f))
      expect(samePayload(frame.payload, f.payload)).toBe(true)
      const out = new Uint8Array(buf.length)
      const n = f.payload === null ? -1 : f.payload.length
      const h = encodeHeaderInto(f, n, out, 0)
      if (f.payload !== null) out.set(f.payload, h)
      expect(Buffer.from(out).equals(buf)).toBe(true)
    }), { numRuns: RUNS })
  })

  it('a message of many frames decodes to the same frames with exact ranges', () => {
    fc.assert(fc.property(fc.array(frameArb, { minLength: 1, maxLength: 8 }), (frames) => {
      const parts = frames.map(encodeFrame)
      const msg = concat(parts)
      const back = decodeFrames(msg)
      expect(back.map(norm)).toEqual(frames.map(norm))
      back.forEach((g, k) => expect(samePayload(g.payload, frames[k]!.payload)).toBe(true))
      let i = 0
      forEachFrame(msg, undefined, (_f, start, end) => {
        expect(end - start).toBe(parts[i]!.length)
        i++
      })
      expect(i).toBe(frames.length)
      // Parsed into one reused object: the same frames, every time that object.
      const into = frameScratch()
      let j = 0
      forEachFrame(msg, undefined, (f) => {
        expect(f).toBe(into)
        expect(norm(f)).toEqual(norm(frames[j]!))
        expect(samePayload(f.payload, frames[j]!.payload)).toBe(true)
        j++
      }, into)
      expect(j).toBe(frames.length)
    }), { numRuns: Math.floor(RUNS / 6) })
  })
})

// --- (2) hostile bytes: frames or PROTOCOL errors, nothing else ----------------------

describe('fuzz: arbitrary input never escapes as another error', () => {
  it('arbitrary bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (b) => {
      decodeOrProtocolError(b)
      // A buffer not starting at offset 0 of its ArrayBuffer, too.
      const shifted = new Uint8Array(b.length + 3)
      shifted.set(b, 3)
      decodeOrProtocolError(shifted.subarray(3))
    }), { numRuns: RUNS })
  })

  it('bytes that start like a frame (0x99 0x01 …)', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 80 }), (tail) => {
      decodeOrProtocolError(concat([Uint8Array.of(0x99, 0x01), tail]))
    }), { numRuns: RUNS })
  })

  it('any msgpack value packed by msgpackr', () => {
    fc.assert(fc.property(fc.anything({ withBigInt: true, withTypedArray: true, withDate: true, withMap: true, withSet: true }), (v) => {
      let buf: Uint8Array
      try {
        buf = pack(v)
      } catch {
        return // msgpackr cannot encode it: nothing to decode
      }
      decodeOrProtocolError(buf)
    }), { numRuns: RUNS })
  })

  // Differential test: random 9-ish-tuples whose fields are usually valid,
  // packed by msgpackr (an independent encoder). The decoder must accept
  // exactly the valid ones and return exactly their values.
  const junk = fc.oneof(
    fc.integer(), fc.double(), fc.string({ maxLength: 70 }), fc.constant(null), fc.boolean(),
    fc.uint8Array({ maxLength: 4 }), fc.bigInt({ min: -(2n ** 63n), max: 2n ** 64n - 1n }),
    fc.maxSafeInteger(), fc.array(fc.nat(), { maxLength: 2 }), fc.constant(undefined),
    fc.string({ unit: 'binary', maxLength: 20 }), fc.constantFrom(2 ** 53, -0, 0.5, 2 ** 32),
  )
  const field = <T>(valid: fc.Arbitrary<T>): fc.Arbitrary<unknown> =>
    fc.oneof({ weight: 5, arbitrary: valid }, { weight: 1, arbitrary: junk })
  const tupleArb = fc.tuple(
    field(fc.constant(1)), field(fc.constantFrom(...KNOWN_FRAME_TYPES)), field(fc.nat(2)), field(fc.nat(255)),
    field(idArb), field(idArb), field(uint32), field(seqArb), field(payloadArb),
  ).chain((t) => fc.oneof(
    { weight: 10, arbitrary: fc.constant<unknown[]>(t) },
    { weight: 1, arbitrary: fc.constant<unknown[]>(t.slice(0, 8)) },
    { weight: 1, arbitrary: fc.constant<unknown[]>([...t, 0]) },
  ))

  const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/
  const isUint = (v: unknown, max: number): boolean =>
    (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= max) ||
    (typeof v === 'bigint' && v >= 0n && v <= BigInt(max))
  const isId = (v: unknown): boolean =>
    v === null || (typeof v === 'string' && !LONE_SURROGATE.test(v) && Buffer.byteLength(v) <= 64)

  function expected (t: unknown[]): Frame | null {
    if (t.length !== 9) return null
    const [version, type, lane, flags, src, dst, stream, seq, payload] = t
    const ok = isUint(version, 1) && Number(version) === 1 &&
      isUint(type, 0xffff_ffff) && KNOWN_FRAME_TYPES.has(Number(type)) &&
      isUint(lane, 2) && isUint(flags, 255) && isId(src) && isId(dst) &&
      isUint(stream, 0xffff_ffff) && isUint(seq, Number.MAX_SAFE_INTEGER) &&
      (payload === null || payload instanceof Uint8Array)
    if (!ok) return null
    // `+ 0`: msgpackr writes -0 as int 0, which reads back as +0.
    const num = (v: unknown): number => Number(v) + 0
    return {
      version: 1, type: num(type), lane: num(lane), flags: num(flags),
      src: src as string | null, dst: dst as string | null, stream: num(stream), seq: num(seq),
      payload: payload as Uint8Array | null,
    }
  }

  it('msgpackr-packed near-frames: accepted iff valid, with the same values', () => {
    let accepted = 0
    fc.assert(fc.property(tupleArb, (t) => {
      const buf = pack(t)
      const want = expected(t)
      const got = decodeOrProtocolError(buf)
      if (want === null) {
        expect(got, `should reject ${Buffer.from(buf).toString('hex')}`).toBeInstanceOf(MeshError)
      } else {
        expect(got, `should accept ${Buffer.from(buf).toString('hex')}`).not.toBeInstanceOf(MeshError)
        expect((got as Frame[]).map(norm)).toEqual([norm(want)])
        expect(samePayload((got as Frame[])[0]!.payload, want.payload)).toBe(true)
        accepted++
      }
    }), { numRuns: RUNS })
    // The generator must actually reach the accepting path.
    expect(accepted).toBeGreaterThan(RUNS / 20)
  })

  type Mutation = { kind: 'flip' | 'insert' | 'delete' | 'truncate', at: number, byte: number }
  const mutationArb: fc.Arbitrary<Mutation> = fc.record({
    kind: fc.constantFrom('flip', 'insert', 'delete', 'truncate'),
    at: fc.nat(),
    byte: fc.nat(255),
  })

  function mutate (buf: Uint8Array, ms: Mutation[]): Uint8Array {
    let b = Array.from(buf)
    for (const m of ms) {
      if (b.length === 0) break
      const at = m.at % b.length
      if (m.kind === 'flip') b[at] = m.byte
      else if (m.kind === 'insert') b.splice(at, 0, m.byte)
      else if (m.kind === 'delete') b.splice(at, 1)
      else b = b.slice(0, at)
    }
    return Uint8Array.from(b)
  }

  it('mutated valid messages (byte flips, insertions, deletions, truncations)', () => {
    fc.assert(fc.property(
      fc.array(smallFrameArb, { minLength: 1, maxLength: 3 }),
      fc.array(mutationArb, { minLength: 1, maxLength: 4 }),
      (frames, ms) => {
        const msg = mutate(concat(frames.map(encodeFrame)), ms)
        decodeOrProtocolError(msg)
        decodeOrProtocolError(msg, { maxIdBytes: 8, maxPayloadBytes: 16 })
      },
    ), { numRuns: RUNS })
  })
})

// --- (3) huge length claims -----------------------------------------------------------

describe('fuzz: huge length claims are refused without allocating', () => {
  const head = Uint8Array.of(0x99, 0x01, 0x10, 0x02, 0x00)

  it('bin32 claims beyond the limit → payload-too-large; within → truncated', () => {
    fc.assert(fc.property(
      fc.oneof(fc.constant(2 ** 31), fc.constant(2 ** 32 - 1), fc.integer({ min: DEFAULT_LIMITS.maxPayloadBytes + 1, max: 2 ** 31 - 1 })),
      fc.uint8Array({ maxLength: 16 }),
      (claim, present) => {
        const h = Buffer.alloc(5)
        h[0] = 0xc6
        h.writeUInt32BE(claim, 1)
        const buf = concat([head, Uint8Array.of(0xc0, 0xc0, 0x00, 0x00), h, present])
        const before = process.memoryUsage().arrayBuffers
        const err = decodeOrProtocolError(buf) as MeshError
        expect(err.details?.reason).toBe('payload-too-large')
        expect(err.details?.closeCode).toBe(1009)
        const err2 = decodeOrProtocolError(buf, { ...DEFAULT_LIMITS, maxPayloadBytes: 2 ** 32 - 1 }) as MeshError
        expect(err2.details?.reason).toBe('truncated')
        // Nothing near the claimed size was allocated (GC noise is far below 1 MiB).
        expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(1 << 20)
      },
    ), { numRuns: 300 })
  })

  it('str32 / array32 claims', () => {
    fc.assert(fc.property(fc.integer({ min: 65, max: 2 ** 32 - 1 }), (claim) => {
      const h = Buffer.alloc(5)
      h[0] = 0xdb
      h.writeUInt32BE(claim, 1)
      expect((decodeOrProtocolError(concat([head, h])) as MeshError).details?.reason).toBe('id-too-long')
      const a = Buffer.alloc(5)
      a[0] = 0xdd
      a.writeUInt32BE(claim, 1)
      expect((decodeOrProtocolError(concat([a, Uint8Array.of(0x01, 0x10)])) as MeshError).details?.reason).toBe('bad-arity')
    }), { numRuns: 300 })
  })
})

// --- (4) control payloads ----------------------------------------------------------------

describe('fuzz: control payloads', () => {
  function decodeControlOrError (b: Uint8Array): unknown {
    try {
      return decodeControl(b)
    } catch (err) {
      if (!(err instanceof MeshError) || err.code !== 'PROTOCOL') throw err
      expect(['bad-control', 'trailing-bytes']).toContain(err.details?.reason)
      return err
    }
  }

  it('arbitrary bytes → a value or a PROTOCOL error', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (b) => {
      decodeControlOrError(b)
    }), { numRuns: RUNS })
  })

  it('mutated encodings of arbitrary values → a value or a PROTOCOL error', () => {
    fc.assert(fc.property(fc.anything({ withBigInt: true, withMap: true, withSet: true, withDate: true }), fc.nat(), fc.nat(255), (v, at, byte) => {
      let enc: Uint8Array
      try {
        enc = Uint8Array.from(pack(v))
      } catch {
        return
      }
      decodeControlOrError(enc)
      if (enc.length > 0) enc[at % enc.length] = byte
      decodeControlOrError(enc)
      decodeControlOrError(enc.subarray(0, at % (enc.length + 1)))
    }), { numRuns: RUNS })
  })

  it('JSON values round-trip', () => {
    // msgpackr renames a decoded `__proto__` key to `__proto_` on purpose
    // (no prototype pollution; tested in frame-codec.test.ts), so such
    // values cannot round-trip verbatim.
    const json = fc.jsonValue().filter((v) => !JSON.stringify(v).includes('"__proto__"'))
    fc.assert(fc.property(json, (v) => {
      expect(JSON.stringify(decodeControl(encodeControl(v)))).toBe(JSON.stringify(v))
    }), { numRuns: Math.floor(RUNS / 3) })
  })
})
