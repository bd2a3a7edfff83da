// Writing a send-queue record the way the host does (src/mesh.ts
// #recordHeader + tryWrite2), for unit tests that drive a PeerActor.
import { RingBuffer } from '../../src/ring/ring-buffer.js'
import { SEND_PREFIX_BYTES, writeSendPrefix } from '../../src/delivery/send-record.js'
import { encodeHeaderOnlyInto } from '../../src/codec/encode.js'
import { FrameType, Lane, PROTOCOL_VERSION } from '../../src/codec/frame.js'

/** Queue one DATA record of `stream`/`seq` carrying `payload`; throws if the ring is full. */
export function queueData (ring: RingBuffer, stream: number, seq: number, payload: Uint8Array): void {
  const h = new Uint8Array(SEND_PREFIX_BYTES + 128)
  writeSendPrefix(h, 0, { seq, enqueuedAt: 0, stream, chunk: 0, flags: 0 })
  const n = encodeHeaderOnlyInto({ version: PROTOCOL_VERSION, type: FrameType.DATA, lane: Lane.PRIORITY, flags: 0, src: null, dst: null, stream, seq }, payload.length, h, SEND_PREFIX_BYTES)
  if (!ring.tryWrite2(h.subarray(0, SEND_PREFIX_BYTES + n), payload)) throw new Error(`send queue full at seq ${seq}`)
}
