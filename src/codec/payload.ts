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
