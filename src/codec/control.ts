/**
 * Control payloads (handshake objects, GOAWAY reasons, …): small structured
 * values carried as a frame's payload, encoded with msgpackr. Not the hot
 * path, so a general msgpack codec is fine here; only the frame header is
 * hand-written (encode.ts / decode.ts).
 *
 * @module
 */
import { Packr, Unpackr } from 'msgpackr'
import { ProtocolReason, protocolError } from './frame.js'

/** Largest control payload {@link decodeControl} accepts, in bytes (64 KiB). */
export const MAX_CONTROL_BYTES = 64 * 1024

// Options, and why:
// - useRecords: false — plain msgpack maps, readable by any implementation
//   (records are a msgpackr-only extension).
// - mapsAsObjects: true — maps decode to plain objects (msgpackr renames a
//   `__proto__` key, so no prototype pollution).
// - moreTypes: false — no msgpackr-specific extensions on the way out.
// - variableMapSize: true — objects as fixmap/map16/map32 by key count
//   (msgpackr otherwise always writes map16): the minimal encoding, 2 bytes
//   less per small object; the 5–10 % encode cost does not matter here.
// - structuredClone: false — refuses the 0x69/0x70 reference extensions on
//   the way in, so a peer cannot build cycles or shared subgraphs.
// - copyBuffers: true — bin values decode as copies, not views into the
//   input (msgpackr's default is `src.subarray`, see readBin in unpack.js),
//   so decoded control values never alias a ring or socket buffer that is
//   about to be reused.
const packr = new Packr({
  useRecords: false, mapsAsObjects: true, moreTypes: false, structuredClone: false, variableMapSize: true,
})
const unpackr = new Unpackr({
  useRecords: false, mapsAsObjects: true, moreTypes: false, structuredClone: false, copyBuffers: true,
})

/**
 * Encode a control value as msgpack.
 *
 * The result may be a view into msgpackr's shared output slab: copy it into a
 * frame (the usual use) or keep it, but do not transfer its `.buffer`.
 *
 * @throws MeshError `PROTOCOL` ('bad-control') if msgpackr cannot encode
 *   `value` (e.g. a BigInt beyond 64 bits).
 */
export function encodeControl (value: unknown): Uint8Array {
  try {
    return packr.pack(value)
  } catch (err) {
    throw protocolError(ProtocolReason.BAD_CONTROL,
      `cannot encode control value: ${err instanceof Error ? err.message : String(err)}`, 0, err)
  }
}

/**
 * Decode one control value from `bytes`, which must hold exactly one msgpack
 * value of at most {@link MAX_CONTROL_BYTES}. Bin values in the result are
 * copies, never views into `bytes`.
 *
 * The result is untrusted: validate its shape before use.
 *
 * @throws MeshError `PROTOCOL`: 'bad-control' if `bytes` is empty, larger
 *   than 64 KiB, or not valid msgpack; 'trailing-bytes' if bytes follow the
 *   value.
 */
export function decodeControl (bytes: Uint8Array): unknown {
  if (bytes.length > MAX_CONTROL_BYTES) {
    throw protocolError(ProtocolReason.BAD_CONTROL,
      `control payload is ${bytes.length} bytes, more than the limit of ${MAX_CONTROL_BYTES}`, 0)
  }
  if (bytes.length === 0) {
    throw protocolError(ProtocolReason.BAD_CONTROL, 'control payload is empty', 0)
  }
  // msgpackr caches a DataView as a property on the array it is given, and
  // cannot read from a SharedArrayBuffer (ring buffers are shared). So give it
  // a private view, or a private copy of shared memory — never the caller's
  // object. Bounded above by MAX_CONTROL_BYTES.
  const src = bytes.buffer instanceof SharedArrayBuffer
    ? bytes.slice()
    : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length)
  // unpackMultiple reports where each value ends, which unpack() does not:
  // it is how trailing bytes are told apart from a malformed value. Stop
  // after the first value (return false) so trailing garbage is never parsed.
  let value: unknown
  let end = -1
  try {
    unpackr.unpackMultiple(src, (v: unknown, _start?: number, stop?: number) => {
      value = v
      end = stop ?? -1
      return false
    })
  } catch (err) {
    throw protocolError(ProtocolReason.BAD_CONTROL,
      `control payload is not valid msgpack: ${err instanceof Error ? err.message : String(err)}`, 0, err)
  }
  if (end !== bytes.length) {
    throw protocolError(ProtocolReason.TRAILING_BYTES,
      `control payload has ${bytes.length - end} byte(s) after its value`, end)
  }
  return value
}
