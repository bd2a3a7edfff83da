import { Packr, Unpackr } from 'msgpackr'
import { FrameFlag } from './frame.js'
import { copyOut } from '../ring/copy-bytes.js'

/**
 * Application payloads. Byte payloads (Uint8Array/Buffer) travel as they are
 * (flag RAW_PAYLOAD): no msgpack work on either host. Everything else is
 * msgpack with structured-clone extensions, so Maps, Sets, Dates, typed
 * arrays and cycles arrive as they were sent. Payloads are decoded once, on
 * the host that receives them; the workers only move bytes.
 */

const packr = new Packr({ structuredClone: true })
const unpackr = new Unpackr({ structuredClone: true, copyBuffers: true })

export interface EncodedPayload { bytes: Uint8Array; flags: number }

export function encodePayload (value: unknown): EncodedPayload {
  return encodePayloadTo(value, { bytes: EMPTY, flags: 0 })
}

const EMPTY = new Uint8Array(0)

/** {@link encodePayload} into `out` (a caller's reused object: no allocation for byte payloads); returns `out`. */
export function encodePayloadTo (value: unknown, out: EncodedPayload): EncodedPayload {
  if (value instanceof Uint8Array) {
    out.bytes = value
    out.flags = FrameFlag.RAW_PAYLOAD
  } else {
    out.bytes = packr.pack(value)
    out.flags = 0
  }
  return out
}

/**
 * Decode a received payload; the result never aliases ring memory. `owned`:
 * `bytes` is already a private copy (a reassembled message) that the
 * result may keep as it is.
 */
export function decodePayload (bytes: Uint8Array | null, flags: number, owned = false): unknown {
  if (bytes === null) return undefined
  if ((flags & FrameFlag.RAW_PAYLOAD) !== 0) {
    if (owned) return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length)
    // Copy out of the ring (its memory is reused).
    return copyOut(bytes)
  }
  // msgpackr's string decoding refuses SharedArrayBuffer views: copy ring memory out first.
  return unpackr.unpack(bytes.buffer instanceof SharedArrayBuffer ? copyOut(bytes) : bytes)
}

/**
 * The topic of a publication, from the start of its payload: publish() sends
 * the msgpack array `[topic, value]`, so the bytes open with a 2-element
 * array header and a string. `bytes` may be the first chunk only (the value
 * cut anywhere), so only the string's bounds are read here (its header, per
 * the msgpack spec); msgpackr decodes exactly those bytes. Undefined if the
 * bytes do not open that way or stop inside the topic.
 */
export function publicationTopic (bytes: Uint8Array): string | undefined {
  if (bytes.length < 2 || bytes[0] !== 0x92) return undefined
  const b = bytes[1] as number
  // fixstr, str 8, str 16, str 32: header bytes after the type byte, and the length they hold (big-endian).
  const extra = b >= 0xa0 && b <= 0xbf ? 0 : b === 0xd9 ? 1 : b === 0xda ? 2 : b === 0xdb ? 4 : -1
  if (extra < 0 || bytes.length < 2 + extra) return undefined
  let len = extra === 0 ? b & 0x1f : 0
  for (let i = 0; i < extra; i++) len = len * 256 + (bytes[2 + i] as number)
  const end = 2 + extra + len
  if (end > bytes.length) return undefined
  try {
    // A copy: msgpackr's string decoding refuses SharedArrayBuffer views (send-queue records are).
    const topic: unknown = unpackr.unpack(copyOut(bytes.subarray(1, end)))
    return typeof topic === 'string' ? topic : undefined
  } catch {
    return undefined
  }
}
