/**
 * Frame encoder: hand-written msgpack for the fixed 9-element frame shape
 * (see frame.ts). It always writes the minimal msgpack encoding of every
 * field, so any msgpack library reads our frames and the same frame always
 * has the same bytes.
 *
 * Why by hand: msgpackr spends ~1.5–2 µs building and walking a small header
 * array; writing nine known fields directly costs a fraction of that and,
 * once an id has been seen, allocates nothing (see perf/codec.bench.ts). The hot path is
 * `encodeHeaderInto` + one `set()` of the payload straight into a ring or
 * socket buffer, so the payload bytes are copied exactly once.
 *
 * @module
 */
import {
  MAX_FLAGS, MAX_LANE, MAX_SEQ, MAX_STREAM, ProtocolReason, protocolError,
  type Frame, type FrameHeader,
} from './frame.js'

// One encoder for the module; used only when an id is first seen.
const utf8 = new TextEncoder()

/** Largest payload a msgpack bin32 length prefix can carry. */
const MAX_BIN = 0xffff_ffff

// --- peer id bytes -------------------------------------------------------------
//
// A node sends frames to a handful of ids over and over, and turning a
// 52-character id into UTF-8 costs two passes over it (length, then bytes)
// every time. So ids of up to ID_CACHE_MAX_CHARS UTF-16 units are encoded
// once and kept: a hit is one Map lookup (the string caches its own hash)
// and one native copy. The map is cleared when full — crude, but bounded
// even if ids come from untrusted frames being forwarded, and a working set
// of real peers refills it in a few frames.

const ID_CACHE_MAX_CHARS = 64
const ID_CACHE_MAX_ENTRIES = 1024
const idCache = new Map<string, Uint8Array>()

/**
 * UTF-8 bytes of an id, as TextEncoder writes them (a lone surrogate becomes
 * U+FFFD). Do not mutate the result: it may be shared.
 */
function idBytes (s: string): Uint8Array {
  let b = idCache.get(s)
  if (b !== undefined) return b
  b = utf8.encode(s)
  // Long ids (over the default decode limit anyway) are not worth keeping.
  if (s.length <= ID_CACHE_MAX_CHARS) {
    if (idCache.size >= ID_CACHE_MAX_ENTRIES) idCache.clear()
    idCache.set(s, b)
  }
  return b
}

/** Bytes of the minimal msgpack encoding of a non-negative integer. */
function uintSize (v: number): number {
  return v < 0x80 ? 1 : v < 0x100 ? 2 : v < 0x1_0000 ? 3 : v < 0x1_0000_0000 ? 5 : 9
}

/**
 * The most a header without ids can take, for every value checkHeader
 * admits: fixarray, version, type, lane, flags, two nils, stream, seq, and
 * the bin32 prefix of a payload length ≤ MAX_BIN (29 bytes today).
 */
const MAX_IDLESS_HEADER_BYTES = 1 + uintSize(0xff) + uintSize(0xff) + uintSize(MAX_LANE) + uintSize(MAX_FLAGS) + 1 + 1 + uintSize(MAX_STREAM) + uintSize(MAX_SEQ) + 5

/** Bytes of a str header for a string of n UTF-8 bytes. */
function strHeaderSize (n: number): number {
  return n < 32 ? 1 : n < 0x100 ? 2 : n < 0x1_0000 ? 3 : 5
}

/** Bytes of a bin (or nil when n < 0) header for a payload of n bytes. */
function binHeaderSize (n: number): number {
  return n < 0 ? 1 : n < 0x100 ? 2 : n < 0x1_0000 ? 3 : 5
}

/**
 * Throw unless `v` is an integer in 0..max. `field` names it in the message.
 * The encoder refuses what the decoder would reject, so a bug shows up at the
 * sender (with a stack) rather than as a remote connection close.
 */
function checkUint (v: number, max: number, field: string, offset: number): void {
  // `v >= 0 && v <= max` is false for NaN; Number.isInteger rejects fractions
  // and ±Infinity.
  if (!(v >= 0 && v <= max && Number.isInteger(v))) {
    throw protocolError(ProtocolReason.BAD_FIELD,
      `cannot encode frame: ${field} must be an integer in 0..${max}, got ${String(v)}`, offset)
  }
}

function checkHeader (h: FrameHeader, offset: number): void {
  checkUint(h.version, 0xff, 'version', offset)
  checkUint(h.type, 0xff, 'type', offset)
  checkUint(h.lane, MAX_LANE, 'lane', offset)
  checkUint(h.flags, MAX_FLAGS, 'flags', offset)
  checkUint(h.stream, MAX_STREAM, 'stream', offset)
  checkUint(h.seq, MAX_SEQ, 'seq', offset)
}

function checkOffset (out: Uint8Array, offset: number): void {
  if (!(offset >= 0 && Number.isInteger(offset))) {
    throw protocolError(ProtocolReason.BAD_OFFSET,
      `cannot encode frame: offset must be a non-negative integer, got ${String(offset)} (buffer of ${out.length} bytes)`, 0)
  }
}

/** Bytes of nil, or of a str holding `b`. */
function strSize (b: Uint8Array | null): number {
  return b === null ? 1 : strHeaderSize(b.length) + b.length
}

/**
 * Size of everything before the payload bytes, given the ids' UTF-8 bytes
 * and the payload length (-1 for null). The leading 1 is the fixarray(9)
 * byte 0x99.
 */
function measureHeader (h: FrameHeader, src: Uint8Array | null, dst: Uint8Array | null, payloadLength: number): number {
  return 1 + uintSize(h.version) + uintSize(h.type) + uintSize(h.lane) + uintSize(h.flags) +
    strSize(src) + strSize(dst) + uintSize(h.stream) + uintSize(h.seq) + binHeaderSize(payloadLength)
}

/** Write the minimal msgpack encoding of a uint ≤ 2^53-1; returns the next position. */
function writeUint (out: Uint8Array, p: number, v: number): number {
  // Uint8Array stores ToUint8(x) = x mod 256, so `out[i] = v >>> 8` keeps
  // just the byte we want without masking.
  if (v < 0x80) {
    out[p] = v
    return p + 1
  }
  if (v < 0x100) {
    out[p] = 0xcc
    out[p + 1] = v
    return p + 2
  }
  if (v < 0x1_0000) {
    out[p] = 0xcd
    out[p + 1] = v >>> 8
    out[p + 2] = v
    return p + 3
  }
  if (v < 0x1_0000_0000) {
    out[p] = 0xce
    out[p + 1] = v >>> 24
    out[p + 2] = v >>> 16
    out[p + 3] = v >>> 8
    out[p + 4] = v
    return p + 5
  }
  // uint64, big-endian. v ≤ 2^53-1, so the division is exact enough for the
  // high word and `v >>> 0` is v mod 2^32 (ToUint32) for the low word.
  const hi = Math.floor(v / 0x1_0000_0000)
  const lo = v >>> 0
  out[p] = 0xcf
  out[p + 1] = hi >>> 24
  out[p + 2] = hi >>> 16
  out[p + 3] = hi >>> 8
  out[p + 4] = hi
  out[p + 5] = lo >>> 24
  out[p + 6] = lo >>> 16
  out[p + 7] = lo >>> 8
  out[p + 8] = lo
  return p + 9
}

/** Write nil, or a str header plus the bytes `b` of a string; returns the next position. */
function writeStr (out: Uint8Array, p: number, b: Uint8Array | null): number {
  if (b === null) {
    out[p] = 0xc0
    return p + 1
  }
  const n = b.length
  if (n < 32) {
    out[p++] = 0xa0 | n
  } else if (n < 0x100) {
    out[p++] = 0xd9
    out[p++] = n
  } else if (n < 0x1_0000) {
    out[p++] = 0xda
    out[p++] = n >>> 8
    out[p++] = n
  } else {
    out[p++] = 0xdb
    out[p++] = n >>> 24
    out[p++] = n >>> 16
    out[p++] = n >>> 8
    out[p++] = n
  }
  // A JS loop beats set()'s native call only for a few bytes.
  if (n <= 8) {
    for (let i = 0; i < n; i++) out[p + i] = b[i]!
  } else {
    out.set(b, p)
  }
  return p + n
}

/** Write nil, or a bin header for n bytes (the bytes themselves are not written). */
function writeBinHeader (out: Uint8Array, p: number, n: number): number {
  if (n < 0) {
    out[p] = 0xc0
    return p + 1
  }
  if (n < 0x100) {
    out[p] = 0xc4
    out[p + 1] = n
    return p + 2
  }
  if (n < 0x1_0000) {
    out[p] = 0xc5
    out[p + 1] = n >>> 8
    out[p + 2] = n
    return p + 3
  }
  out[p] = 0xc6
  out[p + 1] = n >>> 24
  out[p + 2] = n >>> 16
  out[p + 3] = n >>> 8
  out[p + 4] = n
  return p + 5
}

/** Write the header (through the payload's bin prefix) at p; returns the next position. */
function writeHeader (h: FrameHeader, src: Uint8Array | null, dst: Uint8Array | null, payloadLength: number,
  out: Uint8Array, p: number): number {
  out[p++] = 0x99 // fixarray of 9 elements
  p = writeUint(out, p, h.version)
  p = writeUint(out, p, h.type)
  p = writeUint(out, p, h.lane)
  p = writeUint(out, p, h.flags)
  p = writeStr(out, p, src)
  p = writeStr(out, p, dst)
  p = writeUint(out, p, h.stream)
  p = writeUint(out, p, h.seq)
  return writeBinHeader(out, p, payloadLength)
}

function payloadLengthOf (payload: Uint8Array | null, offset: number): number {
  if (payload === null) return -1
  const n = payload.length
  if (n > MAX_BIN) {
    throw protocolError(ProtocolReason.PAYLOAD_TOO_LARGE,
      `cannot encode frame: payload of ${n} bytes exceeds the msgpack bin32 maximum ${MAX_BIN}`, offset)
  }
  return n
}

/**
 * Exact encoded size of everything before the payload bytes of a frame whose
 * payload is `payloadLength` bytes long (or nil when `payloadLength < 0`).
 *
 * @throws MeshError `PROTOCOL` ('bad-field') if a header field is out of range
 *   or `payloadLength` is not an integer ≤ 2^32-1.
 */
export function headerSize (h: FrameHeader, payloadLength: number): number {
  checkHeader(h, 0)
  const n = payloadLength < 0 ? -1 : payloadLength
  if (n !== -1) checkUint(n, MAX_BIN, 'payloadLength', 0)
  const src = h.src === null ? null : idBytes(h.src)
  const dst = h.dst === null ? null : idBytes(h.dst)
  return measureHeader(h, src, dst, n)
}

/**
 * Exact size in bytes of `encodeFrame(f)`.
 *
 * @throws MeshError `PROTOCOL` ('bad-field') if a field is out of range.
 */
export function frameSize (f: Frame): number {
  const n = payloadLengthOf(f.payload, 0)
  return headerSize(f, n) + Math.max(n, 0)
}

/**
 * Encode `h` followed by the bin length prefix of a `payloadLength`-byte
 * payload (nil when `payloadLength < 0`) into `out` at `offset`. The caller
 * then copies the payload to `offset + returned` — the zero-copy hot path:
 *
 * ```ts
 * const n = encodeHeaderInto(h, payload.length, ring, at)
 * if (n >= 0) ring.set(payload, at + n)
 * ```
 *
 * Returns the header bytes written, or -1 when the WHOLE frame (header plus
 * `payloadLength` bytes) does not fit in `out` after `offset`; then nothing
 * is written. A non-negative result therefore guarantees room for the payload.
 *
 * @throws MeshError `PROTOCOL`: 'bad-field' if a header field is out of range
 *   or `payloadLength` is not an integer ≤ 2^32-1; 'bad-offset' if `offset` is
 *   negative or not an integer.
 */
export function encodeHeaderInto (h: FrameHeader, payloadLength: number, out: Uint8Array, offset: number): number {
  return encodeHeaderChecked(h, payloadLength, out, offset, true)
}

/**
 * Encode frame `f` into `out` at `offset`.
 *
 * Returns the bytes written, or -1 if the frame does not fit in `out` after
 * `offset`; then nothing is written.
 *
 * @throws MeshError `PROTOCOL`: 'bad-field' if a field is out of range,
 *   'bad-offset' if `offset` is negative or not an integer.
 */
export function encodeFrameInto (f: Frame, out: Uint8Array, offset: number): number {
  const n = payloadLengthOf(f.payload, offset)
  const h = encodeHeaderInto(f, n, out, offset)
  if (h < 0) return -1
  if (f.payload !== null && n > 0) out.set(f.payload, offset + h)
  return h + Math.max(n, 0)
}

/**
 * Encode frame `f` into a new Buffer of exactly `frameSize(f)` bytes.
 *
 * The Buffer may be a view into Node's shared allocation pool (like any
 * small `Buffer.allocUnsafe`): every byte of it is written here, but do not
 * transfer its `.buffer` to another thread.
 *
 * @throws MeshError `PROTOCOL` ('bad-field') if a field is out of range.
 */
export function encodeFrame (f: Frame): Uint8Array {
  const n = payloadLengthOf(f.payload, 0)
  checkHeader(f, 0)
  const src = f.src === null ? null : idBytes(f.src)
  const dst = f.dst === null ? null : idBytes(f.dst)
  const size = measureHeader(f, src, dst, n)
  const out = Buffer.allocUnsafe(size + Math.max(n, 0))
  const p = writeHeader(f, src, dst, n, out, 0)
  if (f.payload !== null && n > 0) out.set(f.payload, p)
  return out
}

/**
 * Like {@link encodeHeaderInto}, but only the header (up to and including the
 * payload's bin length prefix) must fit in `out`: for callers that copy the
 * payload somewhere else, e.g. `ring.tryWrite2(header, payload)`.
 * Returns the header bytes written, or -1 if the header does not fit.
 *
 * @throws MeshError `PROTOCOL` as {@link encodeHeaderInto}.
 */
export function encodeHeaderOnlyInto (h: FrameHeader, payloadLength: number, out: Uint8Array, offset: number): number {
  return encodeHeaderChecked(h, payloadLength, out, offset, false)
}

/** The two header encoders: `withPayload` also requires room for the payload after the header. */
function encodeHeaderChecked (h: FrameHeader, payloadLength: number, out: Uint8Array, offset: number, withPayload: boolean): number {
  checkOffset(out, offset)
  checkHeader(h, offset)
  const n = payloadLength < 0 ? -1 : payloadLength
  // `!== -1`, not `>= 0`: NaN must reach the check and be refused.
  if (n !== -1) checkUint(n, MAX_BIN, 'payloadLength', offset)
  if (h.src === null && h.dst === null && !withPayload && out.length - offset >= MAX_IDLESS_HEADER_BYTES) {
    // The hosts' send path (no ids, a scratch buffer with room): write, then
    // count, instead of measuring first (~40 -> ~24 ns a header on Node 20).
    return writeHeader(h, null, null, n, out, offset) - offset
  }
  const src = h.src === null ? null : idBytes(h.src)
  const dst = h.dst === null ? null : idBytes(h.dst)
  const size = measureHeader(h, src, dst, n)
  if (offset + size + (withPayload ? Math.max(n, 0) : 0) > out.length) return -1
  writeHeader(h, src, dst, n, out, offset)
  return size
}
