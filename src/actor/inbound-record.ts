/**
 * Records of the worker → host inbound ring: an 8-byte envelope, then a body.
 *
 *   byte 0      kind (InboundKind)
 *   bytes 1..3  reserved (0)
 *   bytes 4..7  u32 LE peer handle (per IO worker)
 *   bytes 8..   DATA: one or more validated wire frames back to back
 *               EVENT: msgpack InboundEvent
 */
export const InboundKind = { DATA: 1, EVENT: 2 } as const
export type InboundKind = typeof InboundKind[keyof typeof InboundKind]

export const INBOUND_ENVELOPE_BYTES = 8

export function writeEnvelope (out: Uint8Array, kind: InboundKind, handle: number): Uint8Array {
  out[0] = kind
  out[1] = 0; out[2] = 0; out[3] = 0
  out[4] = handle & 0xff
  out[5] = (handle >>> 8) & 0xff
  out[6] = (handle >>> 16) & 0xff
  out[7] = (handle >>> 24) & 0xff
  return out
}

export function readKind (rec: Uint8Array): number { return rec[0] ?? 0 }
export function readHandle (rec: Uint8Array): number {
  return ((rec[4] ?? 0) | ((rec[5] ?? 0) << 8) | ((rec[6] ?? 0) << 16) | ((rec[7] ?? 0) << 24)) >>> 0
}
