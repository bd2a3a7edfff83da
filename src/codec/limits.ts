/**
 * Limits the frame decoder enforces on untrusted input.
 *
 * @module
 */
import { ErrorCode, MeshError } from '../errors.js'
import { FrameType } from './frame.js'

/** What the decoder accepts. All sizes are in bytes. */
export interface CodecLimits {
  /**
   * Largest payload accepted, in bytes. A larger claim is rejected with
   * reason 'payload-too-large' (close code 1009) before the bytes are read.
   * @default 16_777_216 (16 MiB)
   */
  maxPayloadBytes: number
  /**
   * Largest `src`/`dst` peer id, in UTF-8 bytes ('id-too-long' beyond).
   * @default 64
   */
  maxIdBytes: number
  /**
   * Largest payload of a FORWARD frame, in bytes: an envelope of inner frames
   * relayed for another node, each of which the destination decodes again
   * against `maxPayloadBytes`. Lets envelopes share one limit across the
   * mesh whatever each node's own message limit.
   * @default `maxPayloadBytes`
   */
  maxEnvelopeBytes?: number
  /**
   * Frame types accepted ('unknown-frame-type' otherwise). When absent any
   * uint type 0..255 is accepted (for tools that only relay frames).
   * @default every value of FrameType
   */
  knownTypes?: ReadonlySet<number>
}

/** Every {@link FrameType} value, the default `knownTypes`. */
export const KNOWN_FRAME_TYPES: ReadonlySet<number> = new Set<number>(Object.values(FrameType))

/**
 * Default decoder limits. 16 MiB for a payload is a ceiling for one frame,
 * not for a message: large messages are chunked into many frames
 * (DESIGN.md §3 "Lanes"), so hosts normally lower it to their chunk size.
 */
export const DEFAULT_LIMITS: Readonly<CodecLimits> = Object.freeze({
  maxPayloadBytes: 16 * 1024 * 1024,
  maxIdBytes: 64,
  knownTypes: KNOWN_FRAME_TYPES,
})

/** Largest size any msgpack length prefix can express (uint32). */
const MAX_MSGPACK_LENGTH = 0xffff_ffff

/**
 * Fill unspecified fields from {@link DEFAULT_LIMITS}, validate, freeze.
 *
 * @throws MeshError `INVALID_OPTIONS` naming the field when a size is not an
 *   integer in 0..2^32-1.
 */
export function resolveCodecLimits (o: Partial<CodecLimits> = {}): Readonly<CodecLimits> {
  const r: CodecLimits = {
    maxPayloadBytes: o.maxPayloadBytes ?? DEFAULT_LIMITS.maxPayloadBytes,
    maxIdBytes: o.maxIdBytes ?? DEFAULT_LIMITS.maxIdBytes,
  }
  if (o.maxEnvelopeBytes !== undefined) r.maxEnvelopeBytes = o.maxEnvelopeBytes
  for (const key of ['maxPayloadBytes', 'maxIdBytes', 'maxEnvelopeBytes'] as const) {
    const v = r[key]
    if (v === undefined) continue
    if (!Number.isInteger(v) || v < 0 || v > MAX_MSGPACK_LENGTH) {
      throw new MeshError(ErrorCode.INVALID_OPTIONS,
        `limits.${key} must be an integer in 0..${MAX_MSGPACK_LENGTH}, got ${String(v)}`,
        { details: { path: `limits.${key}` } })
    }
  }
  // `in` rather than `??`: an explicit `knownTypes: undefined` means "any type".
  const knownTypes = 'knownTypes' in o ? o.knownTypes : DEFAULT_LIMITS.knownTypes
  if (knownTypes !== undefined) r.knownTypes = knownTypes
  return Object.freeze(r)
}
