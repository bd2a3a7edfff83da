/**
 * Frame decoder: a hand-written parser for the fixed 9-element frame shape
 * (see frame.ts), for untrusted input.
 *
 * It accepts ANY valid msgpack encoding of that shape, so frames written by
 * other implementations decode:
 * - the array as fixarray, array16 or array32 (of length 9);
 * - uints as positive fixint, uint8/16/32/64, int8/16/32/64 holding a
 *   non-negative value, or float32/64 holding a non-negative integer
 *   (msgpackr writes integers ≥ 2^32 as float64);
 * - ids as nil or fixstr/str8/16/32 (valid UTF-8);
 * - the payload as nil or bin8/16/32.
 * Everything else is rejected with one error shape: a `PROTOCOL` MeshError
 * with `details: { reason, closeCode, offset }` (see `ProtocolReason`).
 *
 * Safety on hostile bytes: every length is checked against the limits and
 * the remaining bytes BEFORE anything is read or allocated; the only loop
 * (over frames in a message) advances at least 10 bytes per turn; multi-byte
 * integers are read by hand, so no DataView RangeError can escape.
 *
 * @module
 */
import {
  FrameType, MAX_FLAGS, MAX_SEQ, MAX_STREAM, MAX_LANE, PROTOCOL_VERSION, ProtocolReason, protocolError,
  type Frame,
} from './frame.js'
import { DEFAULT_LIMITS, type CodecLimits } from './limits.js'

/** Result of {@link decodeFrame}: the frame and the offset just past it. */
export interface DecodedFrame {
  frame: Frame
  next: number
}

/**
 * Whether this build can decode frames of format version `v`.
 * Only {@link PROTOCOL_VERSION} today.
 */
export function isFrameVersionSupported (v: number): boolean {
  return v === PROTOCOL_VERSION
}

// Parser position within the current decodeFrame call. Module state rather
// than a returned pair because that would allocate per field; safe because no
// user code runs inside one decodeFrame call, so calls cannot interleave.
let pos = 0

// Float fields are rare (msgpackr's encoding of integers ≥ 2^32); a scratch
// DataView over 8 private bytes reads them without allocating and without a
// DataView over the caller's buffer (which could throw RangeError).
const floatBytes = new Uint8Array(8)
const floatView = new DataView(floatBytes.buffer)

// `fatal`: invalid UTF-8 must be an error, not U+FFFD (a forged id must not
// collapse onto another). `ignoreBOM`: a leading U+FEFF is part of the id and
// the encoder writes it, so stripping it would break the round trip.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/** Printable name of a msgpack type byte, for error messages. */
function typeName (t: number): string {
  if (t < 0x80) return 'positive fixint'
  if (t < 0x90) return 'fixmap'
  if (t < 0xa0) return 'fixarray'
  if (t < 0xc0) return 'fixstr'
  if (t >= 0xe0) return 'negative fixint'
  const names = [
    'nil', 'reserved 0xc1', 'false', 'true', 'bin8', 'bin16', 'bin32', 'ext8', 'ext16', 'ext32',
    'float32', 'float64', 'uint8', 'uint16', 'uint32', 'uint64', 'int8', 'int16', 'int32', 'int64',
    'fixext1', 'fixext2', 'fixext4', 'fixext8', 'fixext16', 'str8', 'str16', 'str32',
    'array16', 'array32', 'map16', 'map32',
  ]
  return names[t - 0xc0] ?? `0x${t.toString(16)}`
}

function truncated (what: string, at: number, need: number, end: number): never {
  throw protocolError(ProtocolReason.TRUNCATED,
    `truncated frame: ${what} needs ${need} byte(s), only ${Math.max(end - at, 0)} left`, at)
}

/** Big-endian uint16 at p (caller checked bounds). */
function u16 (b: Uint8Array, p: number): number {
  return (b[p]! << 8) | b[p + 1]!
}

/** Big-endian uint32 at p (caller checked bounds). Multiplication, not `<<`, keeps it unsigned. */
function u32 (b: Uint8Array, p: number): number {
  return b[p]! * 0x100_0000 + ((b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!)
}

/** Copy n bytes at p into the scratch and return the view (caller checked bounds). */
function scratch (b: Uint8Array, p: number, n: number): DataView {
  for (let i = 0; i < n; i++) floatBytes[i] = b[p + i]!
  return floatView
}

/**
 * Read a msgpack integer at `pos` that must be in 0..max. Advances `pos`.
 * `field` names it in errors.
 */
function readUint (b: Uint8Array, end: number, max: number, field: string): number {
  const p = pos
  if (p >= end) truncated(`field '${field}'`, p, 1, end)
  const t = b[p]!
  // Positive fixint: by far the most common case for every uint field.
  if (t < 0x80) {
    pos = p + 1
    if (t > max) outOfRange(field, t, max, p)
    return t
  }
  let size: number
  switch (t) {
    case 0xcc: case 0xd0: size = 2; break
    case 0xcd: case 0xd1: size = 3; break
    case 0xce: case 0xd2: case 0xca: size = 5; break
    case 0xcf: case 0xd3: case 0xcb: size = 9; break
    default:
      if (t >= 0xe0) outOfRange(field, t - 0x100, max, p)
      throw protocolError(ProtocolReason.BAD_TYPE,
        `frame field '${field}' must be an unsigned integer, got msgpack ${typeName(t)}`, p)
  }
  if (p + size > end) truncated(`field '${field}' (${typeName(t)})`, p, size, end)
  let v: number
  switch (t) {
    case 0xcc: v = b[p + 1]!; break
    case 0xcd: v = u16(b, p + 1); break
    case 0xce: v = u32(b, p + 1); break
    case 0xd0: v = (b[p + 1]! << 24) >> 24; break // sign-extend 8 bits
    case 0xd1: v = (u16(b, p + 1) << 16) >> 16; break // sign-extend 16 bits
    case 0xd2: v = u32(b, p + 1) | 0; break // reinterpret as int32
    case 0xcf:
    case 0xd3: {
      const hi = u32(b, p + 1)
      const lo = u32(b, p + 5)
      // int64 with the top bit set is negative; uint64/int64 with hi above
      // 21 bits exceed 2^53-1. Both are out of range for every field, and
      // checked here because hi * 2^32 + lo would round beyond 2^53.
      if (hi > 0x1f_ffff) {
        const big = (BigInt(hi) << 32n) | BigInt(lo)
        outOfRange(field, t === 0xd3 ? BigInt.asIntN(64, big) : big, max, p)
      }
      v = hi * 0x1_0000_0000 + lo
      break
    }
    case 0xca: case 0xcb: {
      const f = t === 0xca ? scratch(b, p + 1, 4).getFloat32(0) : scratch(b, p + 1, 8).getFloat64(0)
      if (!Number.isInteger(f)) {
        throw protocolError(ProtocolReason.BAD_FIELD,
          `frame field '${field}' must be an unsigned integer, got ${typeName(t)} ${String(f)}`, p)
      }
      v = f + 0 // -0 → 0
      break
    }
    default:
      // Unreachable: the first switch admitted only the types above.
      throw protocolError(ProtocolReason.BAD_TYPE, `frame field '${field}': unexpected msgpack ${typeName(t)}`, p)
  }
  if (v < 0 || v > max) outOfRange(field, v, max, p)
  pos = p + size
  return v
}

function outOfRange (field: string, v: number | bigint, max: number, at: number): never {
  throw protocolError(ProtocolReason.BAD_FIELD,
    `frame field '${field}' must be an integer in 0..${max}, got ${String(v)}`, at)
}

// --- peer id decoding ---------------------------------------------------------
//
// Every frame on a link carries the same few ids, and building a JS string
// (native call + view allocation) costs about as much as the whole rest of
// the frame. So ids up to ID_CACHE_MAX bytes go through a small
// direct-mapped cache: a hit costs one byte comparison and returns the SAME
// string instance, which also makes the caller's Map lookups cheaper.
// Entries are keyed by a hash of length and three sampled bytes (O(1), ids
// with a common prefix still spread), and verified byte for byte.

const ID_CACHE_SLOTS = 256 // power of two; 256 × 64 B = 16 KiB
const ID_CACHE_MAX = 64
const idCacheBytes = new Uint8Array(ID_CACHE_SLOTS * ID_CACHE_MAX)
// A Buffer over the same memory, so a cached ASCII id can be turned into a
// string with the documented `toString('latin1', …)`, whatever kind of
// Uint8Array came in. (The compare loop reads the plain Uint8Array.)
const idCacheBuf = Buffer.from(idCacheBytes.buffer, idCacheBytes.byteOffset, idCacheBytes.length)
const idCacheLen = new Int32Array(ID_CACHE_SLOTS).fill(-1)
const idCacheStr: string[] = new Array<string>(ID_CACHE_SLOTS).fill('')

/** Decode n bytes at start as an id (caller checked bounds and limits). */
function decodeId (b: Uint8Array, start: number, n: number, field: string, at: number): string {
  if (n === 0) return ''
  if (n > ID_CACHE_MAX) return decodeUtf8(b, start, n, field, at)
  const slot = (n * 7 + b[start]! * 31 + b[start + n - 1]! * 17 + b[start + (n >> 1)]!) & (ID_CACHE_SLOTS - 1)
  const base = slot * ID_CACHE_MAX
  if (idCacheLen[slot] === n) {
    let i = 0
    while (i < n && idCacheBytes[base + i] === b[start + i]) i++
    if (i === n) return idCacheStr[slot]!
  }
  // Miss: copy into the slot, noting on the way whether every byte is ASCII.
  let or = 0
  for (let i = 0; i < n; i++) {
    const c = b[start + i]!
    idCacheBytes[base + i] = c
    or |= c
  }
  let s: string
  if (or < 0x80) {
    // ASCII: latin1 is a plain byte→char copy, no UTF-8 validation needed.
    s = idCacheBuf.toString('latin1', base, base + n)
  } else {
    // Invalidate first: if this throws, the slot must not claim these bytes.
    idCacheLen[slot] = -1
    s = decodeUtf8(b, start, n, field, at)
  }
  idCacheLen[slot] = n
  idCacheStr[slot] = s
  return s
}

/** Strict UTF-8 decode of n bytes at start; 'bad-utf8' on malformed input. */
function decodeUtf8 (b: Uint8Array, start: number, n: number, field: string, at: number): string {
  try {
    return utf8.decode(b.subarray(start, start + n))
  } catch (err) {
    throw protocolError(ProtocolReason.BAD_UTF8, `frame field '${field}' is not valid UTF-8`, at, err)
  }
}

/** Read nil or a str id at `pos` of at most maxIdBytes bytes. Advances `pos`. */
function readId (b: Uint8Array, end: number, maxIdBytes: number, field: string): string | null {
  const p = pos
  if (p >= end) truncated(`field '${field}'`, p, 1, end)
  const t = b[p]!
  let hdr: number
  let n: number
  if (t === 0xc0) {
    pos = p + 1
    return null
  } else if ((t & 0xe0) === 0xa0) {
    hdr = 1
    n = t & 0x1f
  } else if (t === 0xd9) {
    if (p + 2 > end) truncated(`field '${field}' (str8 header)`, p, 2, end)
    hdr = 2
    n = b[p + 1]!
  } else if (t === 0xda) {
    if (p + 3 > end) truncated(`field '${field}' (str16 header)`, p, 3, end)
    hdr = 3
    n = u16(b, p + 1)
  } else if (t === 0xdb) {
    if (p + 5 > end) truncated(`field '${field}' (str32 header)`, p, 5, end)
    hdr = 5
    n = u32(b, p + 1)
  } else {
    throw protocolError(ProtocolReason.BAD_TYPE,
      `frame field '${field}' must be nil or a string, got msgpack ${typeName(t)}`, p)
  }
  // Limit before availability: a hostile length is refused for what it is.
  if (n > maxIdBytes) {
    throw protocolError(ProtocolReason.ID_TOO_LONG,
      `frame field '${field}' is ${n} bytes, more than the limit of ${maxIdBytes}`, p)
  }
  const start = p + hdr
  if (start + n > end) truncated(`field '${field}' (${n}-byte string)`, p, hdr + n, end)
  pos = start + n
  return decodeId(b, start, n, field, p)
}

/** Read nil or a bin payload at `pos`; returns a view into b. Advances `pos`. */
function readPayload (b: Uint8Array, end: number, maxPayloadBytes: number): Uint8Array | null {
  const p = pos
  if (p >= end) truncated("field 'payload'", p, 1, end)
  const t = b[p]!
  let hdr: number
  let n: number
  if (t === 0xc0) {
    pos = p + 1
    return null
  } else if (t === 0xc4) {
    if (p + 2 > end) truncated("field 'payload' (bin8 header)", p, 2, end)
    hdr = 2
    n = b[p + 1]!
  } else if (t === 0xc5) {
    if (p + 3 > end) truncated("field 'payload' (bin16 header)", p, 3, end)
    hdr = 3
    n = u16(b, p + 1)
  } else if (t === 0xc6) {
    if (p + 5 > end) truncated("field 'payload' (bin32 header)", p, 5, end)
    hdr = 5
    n = u32(b, p + 1)
  } else {
    throw protocolError(ProtocolReason.BAD_TYPE,
      `frame field 'payload' must be nil or bin, got msgpack ${typeName(t)}`, p)
  }
  // Limit before availability, so a 2 GiB claim reads as what it is
  // (close 1009) rather than as a short message.
  if (n > maxPayloadBytes) {
    throw protocolError(ProtocolReason.PAYLOAD_TOO_LARGE,
      `frame payload is ${n} bytes, more than the limit of ${maxPayloadBytes}`, p)
  }
  const start = p + hdr
  if (start + n > end) truncated(`field 'payload' (${n}-byte bin)`, p, hdr + n, end)
  pos = start + n
  // A view, not a copy: the caller decides whether the bytes outlive buf.
  // The constructor rather than subarray(): no species lookup, measurably
  // cheaper, and always a plain Uint8Array whatever subclass came in.
  return new Uint8Array(b.buffer, b.byteOffset + start, n)
}

/** The frame decoder proper; `offset` already validated, `pos` is set. With `into`, the fields go there (no allocation). */
function parseFrame (b: Uint8Array, offset: number, limits: CodecLimits, into?: Frame): Frame {
  const end = b.length
  const p = offset
  if (p >= end) truncated('frame', p, 1, end)
  const t = b[p]!
  let arity: number
  if ((t & 0xf0) === 0x90) {
    arity = t & 0x0f
    pos = p + 1
  } else if (t === 0xdc) {
    if (p + 3 > end) truncated('frame (array16 header)', p, 3, end)
    arity = u16(b, p + 1)
    pos = p + 3
  } else if (t === 0xdd) {
    if (p + 5 > end) truncated('frame (array32 header)', p, 5, end)
    arity = u32(b, p + 1)
    pos = p + 5
  } else {
    throw protocolError(ProtocolReason.NOT_ARRAY,
      `frame must be a msgpack array, got msgpack ${typeName(t)}`, p)
  }
  if (arity === 0) {
    throw protocolError(ProtocolReason.BAD_ARITY, 'frame must be an array of 9 elements, got 0', p)
  }
  // Version before arity: a frame from a newer protocol may have another
  // shape, and "unsupported version 2" is the actionable diagnosis.
  const versionAt = pos
  const version = readUint(b, end, 0xffff_ffff, 'version')
  if (!isFrameVersionSupported(version)) {
    throw protocolError(ProtocolReason.UNSUPPORTED_VERSION,
      `unsupported frame version ${version} (this build speaks ${PROTOCOL_VERSION})`, versionAt)
  }
  if (arity !== 9) {
    throw protocolError(ProtocolReason.BAD_ARITY, `frame must be an array of 9 elements, got ${arity}`, p)
  }
  const typeAt = pos
  const type = readUint(b, end, 0xffff_ffff, 'type')
  const known = limits.knownTypes
  if (known === undefined ? type > 0xff : !known.has(type)) {
    throw protocolError(ProtocolReason.UNKNOWN_FRAME_TYPE, `unknown frame type ${type}`, typeAt)
  }
  const laneAt = pos
  const lane = readUint(b, end, 0xffff_ffff, 'lane')
  if (lane > MAX_LANE) {
    throw protocolError(ProtocolReason.BAD_LANE, `frame lane must be 0..${MAX_LANE}, got ${lane}`, laneAt)
  }
  const flags = readUint(b, end, MAX_FLAGS, 'flags')
  const src = readId(b, end, limits.maxIdBytes, 'src')
  const dst = readId(b, end, limits.maxIdBytes, 'dst')
  const stream = readUint(b, end, MAX_STREAM, 'stream')
  const seq = readUint(b, end, MAX_SEQ, 'seq')
  const payload = readPayload(b, end, type === FrameType.FORWARD ? (limits.maxEnvelopeBytes ?? limits.maxPayloadBytes) : limits.maxPayloadBytes)
  if (into !== undefined) {
    into.version = version; into.type = type; into.lane = lane; into.flags = flags; into.src = src
    into.dst = dst; into.stream = stream; into.seq = seq; into.payload = payload
    return into
  }
  // One literal with a fixed key order: every Frame shares one hidden class,
  // so consumers' property accesses stay monomorphic.
  return { version, type, lane, flags, src, dst, stream, seq, payload }
}

/**
 * A Frame to parse into, again and again (see {@link forEachFrame}'s `into`):
 * the same key order as a decoded frame, so it shares their hidden class.
 */
export function frameScratch (): Frame {
  return { version: 0, type: 0, lane: 0, flags: 0, src: null, dst: null, stream: 0, seq: 0, payload: null }
}

function checkOffset (buf: Uint8Array, offset: number): void {
  if (!(offset >= 0 && offset <= buf.length && Number.isInteger(offset))) {
    throw protocolError(ProtocolReason.BAD_OFFSET,
      `decode offset must be an integer in 0..${buf.length}, got ${String(offset)}`, 0)
  }
}

/**
 * Decode one frame starting at `offset` of `buf`.
 *
 * The payload is a VIEW into `buf` (no copy; a plain Uint8Array even when
 * `buf` is a Buffer, and a view of shared memory when `buf` is): copy it if
 * it must outlive a reused buffer. Ids of up to 64 bytes are interned (the
 * same bytes usually yield the same string instance).
 *
 * @param limits - @default DEFAULT_LIMITS
 * @returns the frame and `next`, the offset just past it
 * @throws MeshError `PROTOCOL` with `details: { reason, closeCode, offset }`
 *   for any malformed, truncated, oversized or out-of-protocol input
 *   ('truncated' when `offset === buf.length`; 'bad-offset' when `offset` is
 *   not an integer in 0..buf.length).
 */
export function decodeFrame (buf: Uint8Array, offset: number, limits: CodecLimits = DEFAULT_LIMITS): DecodedFrame {
  checkOffset(buf, offset)
  const frame = parseFrame(buf, offset, limits)
  return { frame, next: pos }
}

/**
 * Decode every frame of one WebSocket message. The frames must consume the
 * message exactly: no bytes may be left over, and an empty message is an
 * error. Payloads are views into `buf`.
 *
 * @param limits - @default DEFAULT_LIMITS
 * @throws MeshError `PROTOCOL` ('empty', 'truncated', … see ProtocolReason)
 *   at the first malformed frame; no frames are returned then.
 */
export function decodeFrames (buf: Uint8Array, limits: CodecLimits = DEFAULT_LIMITS): Frame[] {
  if (buf.length === 0) throw protocolError(ProtocolReason.EMPTY, 'empty message: expected at least one frame', 0)
  const frames: Frame[] = []
  let p = 0
  // Terminates: each successful parse advances by ≥ 10 bytes (a 9-array
  // header plus nine 1-byte fields), and a failed one throws.
  while (p < buf.length) {
    frames.push(parseFrame(buf, p, limits))
    p = pos
  }
  return frames
}

/**
 * Like {@link decodeFrames} without building an array: call `fn` for each
 * frame with its byte range `buf[start, end)`, so a forwarder can copy runs
 * of raw frame bytes instead of re-encoding.
 *
 * Frames are delivered as they are parsed: if frame k is malformed, `fn` has
 * already seen frames 0..k-1 (each valid on its own) when this throws. The
 * connection is closed on the error either way.
 *
 * @param limits - `undefined` means DEFAULT_LIMITS
 * @param into - parse every frame into this one object ({@link frameScratch})
 *   instead of a new one each: `fn` must not keep `f` (nor let a nested
 *   forEachFrame reuse the same object while it still reads it). A 64 B
 *   flood's receiving host allocated ~100 B per message for frame objects.
 * @returns the number of frames delivered
 * @throws MeshError `PROTOCOL` as {@link decodeFrames}; whatever `fn` throws
 *   propagates unchanged.
 */
export function forEachFrame (buf: Uint8Array, limits: CodecLimits | undefined,
  fn: (f: Frame, start: number, end: number) => void, into?: Frame): number {
  if (buf.length === 0) throw protocolError(ProtocolReason.EMPTY, 'empty message: expected at least one frame', 0)
  const lim = limits ?? DEFAULT_LIMITS
  let p = 0
  let count = 0
  while (p < buf.length) {
    const f = parseFrame(buf, p, lim, into)
    // Read `pos` before calling out: fn may decode other buffers.
    const next = pos
    fn(f, p, next)
    count++
    p = next
  }
  return count
}
