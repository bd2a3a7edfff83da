/**
 * The record a host writes into a peer's send queue (its outbound ring): a
 * fixed 32-byte prefix the connection actor reads, then the encoded wire
 * frame it sends as it is. The prefix never goes on the wire.
 *
 * ```
 *  byte  0  f64 seq         the frame's sequence number in its stream
 *        8  f64 enqueuedAt  Date.now() when send() queued it (retention)
 *       16  u32 stream      the sender's stream epoch
 *       20  u32 chunk       seq distance to the message's first chunk: 0 for a
 *                           whole message or a first chunk (chunks of other
 *                           lanes may sit between a message's chunks)
 *       24  u32 flags       SendRecordFlag bits
 *       28  u32 reserved
 *       32  frame bytes
 * ```
 * Message id = `seq - chunk` (the first chunk's seq).
 *
 * @module
 */

/** Bytes before the frame in every send-queue record. */
export const SEND_PREFIX_BYTES = 32

/** Bits of the prefix's flags word. */
export const SendRecordFlag = {
  /** The host wants an `acked` event when this record is acknowledged (`ack: true`, durable outbox). */
  NOTIFY_ACK: 1,
  /** More chunks of this record's message follow (SendWindow.expire gives up whole messages only). */
  MORE: 2,
  /**
   * The mesh's own message (a SUBSCRIBE update), not the application's: given
   * up on like any other, but never reported as `undelivered` (its id is
   * one the application was never given).
   */
  INTERNAL: 4,
  /**
   * A chunk of a message on the `bulk` lane: it goes out behind at most
   * SendWindow.bulkLimit bytes in flight (PeerActor BULK_MIN_CREDIT_BYTES),
   * so that the bytes in front of our heartbeats and ACKs stay few.
   */
  BULK: 8,
} as const

/** The prefix fields. */
export interface SendRecordPrefix {
  seq: number
  enqueuedAt: number
  stream: number
  chunk: number
  flags: number
}

/**
 * Write a prefix into `out` at `offset` (host side). Pass `view`, a DataView
 * over `out`'s bytes, on hot paths: it saves a DataView allocation per record.
 */
export function writeSendPrefix (out: Uint8Array, offset: number, p: SendRecordPrefix, view?: DataView): void {
  const dv = view ?? new DataView(out.buffer, out.byteOffset, out.byteLength)
  dv.setFloat64(offset, p.seq, true)
  dv.setFloat64(offset + 8, p.enqueuedAt, true)
  dv.setUint32(offset + 16, p.stream >>> 0, true)
  dv.setUint32(offset + 20, p.chunk >>> 0, true)
  dv.setUint32(offset + 24, p.flags >>> 0, true)
  dv.setUint32(offset + 28, 0, true)
}

/**
 * Reads the prefixes of records in one SharedArrayBuffer (the ring's) through
 * one DataView over the whole buffer; `at` is the byte offset of a record's
 * payload in it (RingBuffer.peekAt): no allocation per record.
 */
export class SendRecordReader {
  readonly #dv: DataView
  constructor (buffer: ArrayBufferLike) { this.#dv = new DataView(buffer) }
  seq (at: number): number { return this.#dv.getFloat64(at, true) }
  enqueuedAt (at: number): number { return this.#dv.getFloat64(at + 8, true) }
  stream (at: number): number { return this.#dv.getUint32(at + 16, true) }
  chunk (at: number): number { return this.#dv.getUint32(at + 20, true) }
  flags (at: number): number { return this.#dv.getUint32(at + 24, true) }
}
