/**
 * A bounded free list of same-size scratch buffers, for bytes the host holds
 * only briefly: a chunk of a message waiting for send-queue room, a chunk of
 * a message being reassembled.
 *
 * Why not just allocate: a buffer this large (64 KiB) is its own malloc'd
 * backing store, freed only when V8 collects it. At bulk rates that is
 * hundreds of MB/s of fresh memory: first touches page-fault (a 1 MiB bulk
 * flood spent ~0.7 ms per MiB copying into new buffers on the sending host),
 * and V8 counts the external bytes towards its old-generation limit, so a
 * small host heap runs a Mark-Compact every few tens of MB (the receiving
 * host spent over half its busy time in GC). Recycled buffers cost neither.
 *
 * A buffer handed back must not be used by its taker again: the pool gives
 * it to the next taker as it is.
 * @module
 */

import { copyBytes } from '../ring/copy-bytes.js'

export class BufferPool {
  /** Bytes in every buffer of the pool. */
  readonly size: number
  /** At most this many free buffers are kept (the rest are left to the GC). */
  readonly maxFree: number
  readonly #free: ArrayBuffer[] = []
  /** Buffers handed out by take() and not given back yet: only these are taken back. */
  readonly #lent = new WeakSet<ArrayBuffer>()

  constructor (size: number, maxFree: number) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`BufferPool: size must be a positive integer (got ${size})`)
    if (!Number.isInteger(maxFree) || maxFree < 0) throw new RangeError(`BufferPool: maxFree must be a non-negative integer (got ${maxFree})`)
    this.size = size
    this.maxFree = maxFree
  }

  /** Free buffers held now. */
  get free (): number { return this.#free.length }

  /**
   * A buffer of `bytes` ≤ {@link size} bytes (contents undefined), the start
   * of a pooled buffer: hand it back with {@link give} when done.
   */
  take (bytes: number): Buffer {
    if (!(bytes >= 0 && bytes <= this.size)) throw new RangeError(`BufferPool: ${bytes} bytes asked of a pool of ${this.size}-byte buffers`)
    // allocUnsafeSlow: a backing store of its own, exactly `size`, not zero-filled.
    const ab = this.#free.pop() ?? Buffer.allocUnsafeSlow(this.size).buffer as ArrayBuffer
    this.#lent.add(ab)
    return Buffer.from(ab, 0, bytes)
  }

  /**
   * Hand back a buffer from {@link take}. Anything else (memory the pool did
   * not lend, even of the pool's size, or a buffer given back already) is
   * ignored: the pool never hands out memory someone else may still hold.
   */
  give (b: Uint8Array): void {
    const ab = b.buffer as ArrayBuffer
    if (!this.#lent.delete(ab)) return
    if (this.#free.length < this.maxFree) this.#free.push(ab)
  }

  /**
   * Copy `bytes` (any memory, shared included) into pooled buffers of at
   * most {@link size} bytes each, in order; at least one, empty for no bytes.
   */
  copyIn (bytes: Uint8Array): Buffer[] {
    const out: Buffer[] = []
    for (let off = 0; off < bytes.length || out.length === 0; off += this.size) {
      const part = bytes.subarray(off, Math.min(bytes.length, off + this.size))
      const b = this.take(part.length)
      copyBytes(b, 0, part)
      out.push(b)
    }
    return out
  }
}
