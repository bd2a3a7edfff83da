/**
 * Memory for outgoing WebSocket messages, carved from large slabs.
 *
 * The pump used to allocate a fresh batch buffer (256 KiB) for every batch,
 * even to send one 60-byte ACK: at 1,000 requests/s that is 500 MB/s of
 * short-lived external memory, and the IO worker spent about 40 % of its
 * time in GC, with multi-millisecond pauses in the request-latency tail.
 * Batches are now consecutive regions of one slab; a fresh slab replaces it
 * when the rest is too small for the next frame. A region handed to the
 * socket is never written again (ws may keep it, unmasked, until the kernel
 * takes it), so a slab lives exactly as long as its last unsent message.
 *
 * One per IO worker (single-threaded): every actor carves from it.
 */
export class SendSlab {
  readonly #slabBytes: number
  #slab: Buffer | undefined
  #off = 0

  constructor (slabBytes: number) {
    if (!(Number.isInteger(slabBytes) && slabBytes > 0)) throw new RangeError(`slabBytes must be a positive integer, got ${String(slabBytes)}`)
    this.#slabBytes = slabBytes
  }

  /**
   * Free room of at least `min` bytes, written from index 0: the rest of the
   * current slab, or a fresh one (of at least `min` bytes). Nothing is
   * claimed until {@link take}; asking again returns the same room.
   */
  room (min: number): Buffer {
    let slab = this.#slab
    if (slab === undefined || slab.length - this.#off < min) {
      slab = Buffer.allocUnsafe(Math.max(this.#slabBytes, min))
      this.#slab = slab
      this.#off = 0
    }
    return slab.subarray(this.#off)
  }

  /** Claim the first `n` bytes of the last {@link room}: they are the caller's from now on. */
  take (n: number): Buffer {
    const slab = this.#slab
    if (slab === undefined || n < 0 || this.#off + n > slab.length) throw new RangeError(`take(${n}) exceeds the room given`)
    const out = slab.subarray(this.#off, this.#off + n)
    this.#off += n
    return out
  }
}
