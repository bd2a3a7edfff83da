import { RingBuffer } from '../ring/ring-buffer.js'
import type { Connection } from './connection.js'

/** Largest WebSocket message the pump builds from queued frames (dense traffic batches up to this). */
export const BATCH_BYTES = 256 * 1024
/** Frames at least this large go out as their own WebSocket message, straight from ring memory, when the socket masks (see pump). */
export const DIRECT_BYTES = 16 * 1024

/**
 * The connection actor of one peer inside an IO worker: the peer's outbound
 * ring (its send queue, written by the host), the active connection, and the
 * pump that moves queued frames to the socket in batches. Hosted M:N — one IO
 * worker runs many of these on its event loop.
 */
export class PeerActor {
  readonly peerId: string
  readonly handle: number
  readonly ring: RingBuffer
  #conn: Connection | undefined

  constructor (peerId: string, handle: number, ringSab: SharedArrayBuffer) {
    this.peerId = peerId
    this.handle = handle
    this.ring = RingBuffer.attach(ringSab)
  }

  get connection (): Connection | undefined { return this.#conn }

  attach (conn: Connection): void { this.#conn = conn }

  /** Stop using `conn`. True if it was the active one. */
  detach (conn: Connection): boolean {
    if (this.#conn !== conn) return false
    this.#conn = undefined
    return true
  }

  /** Frames waiting and a socket able to take them. */
  get ready (): boolean {
    const c = this.#conn
    return c !== undefined && c.state === 'open' && !c.writeBlocked && !this.ring.isEmpty()
  }

  /**
   * Move queued frames to the socket: every frame in the ring right now, in
   * WebSocket messages of up to BATCH_BYTES. Each ring record is one complete
   * encoded frame, so the bytes are copied as they are — no per-frame decode.
   * Returns true if anything was sent.
   */
  pump (): boolean {
    const conn = this.#conn
    if (conn === undefined || conn.state !== 'open' || conn.writeBlocked) return false
    const used = this.ring.usedBytes()
    if (used === 0) return false
    let batch = Buffer.allocUnsafe(Math.min(Math.max(used, 64), BATCH_BYTES))
    let off = 0
    let frames = 0
    let sent = false
    // A dialing (client) socket masks every payload, and ws masks a Buffer it
    // was given into a fresh frame buffer synchronously inside send() (ws
    // lib/sender.js: `merge` when mask && readOnly; no queueing without
    // compression). So a large frame can be handed over as a view of ring
    // memory: its bytes are copied once, by the mask, before drain releases
    // the space. An accepting socket does not mask and keeps the buffer until
    // written, so it always copies into a batch.
    const direct = conn.masks
    this.ring.drain((rec) => {
      if (direct && rec.length >= DIRECT_BYTES) {
        if (off > 0) { conn.send(batch.subarray(0, off), frames); off = 0; frames = 0 }
        conn.send(Buffer.from(rec.buffer, rec.byteOffset, rec.length), 1)
        sent = true
        return !conn.writeBlocked
      }
      if (off + rec.length > batch.length) {
        if (off > 0) { conn.send(batch.subarray(0, off), frames); sent = true }
        batch = Buffer.allocUnsafe(Math.max(rec.length, BATCH_BYTES))
        off = 0
        frames = 0
      }
      batch.set(rec, off)
      off += rec.length
      frames++
      // Stop at a full batch so one busy peer cannot starve the others; the loop comes back.
      return off < BATCH_BYTES && !conn.writeBlocked
    })
    if (off > 0) { conn.send(off === batch.length ? batch : batch.subarray(0, off), frames); sent = true }
    return sent
  }
}
