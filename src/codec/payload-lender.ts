/**
 * Borrowed byte payloads (`borrowPayloads: true`): a received message's
 * bytes are copied into one buffer the host reuses, lent to the `message`
 * listeners, and taken back when they return.
 *
 * Why: by default every received byte payload is a fresh Buffer. At 64 KiB
 * that is a malloc, 16 page faults and, in a small heap, a Mark-Compact
 * every few MB (V8 counts the Buffers' external bytes against the old
 * generation's limit): the receiving host spent most of its time there, and
 * lending one reused buffer instead doubled a 64 KiB flood (`.scratch`
 * two-process flood, 310–410 → 575–820 MB/s).
 *
 * Taking back = detaching: the buffer is transferred to a new ArrayBuffer
 * (`structuredClone` with `transfer`, which moves the memory without
 * copying), so a view the application kept past its listener reads as
 * empty (length 0) instead of showing the next message's bytes.
 * @module
 */

import { copyBytes } from '../ring/copy-bytes.js'

/**
 * Smaller payloads are plain copies even when borrowing: below ~8–16 KiB a
 * pooled `Buffer.allocUnsafe` copy costs less than the detach (measured on
 * Node 20: 64 B 0.2 µs vs 1.4 µs, 4 KiB 1.6 vs 2.3, 16 KiB 2.4 vs 1.7,
 * 64 KiB 7.7 vs 2.8 µs, before any GC cost).
 */
export const BORROW_MIN_BYTES = 8 * 1024

export class PayloadLender {
  /** Largest payload lent (the buffer's size); larger ones are copied. */
  readonly maxBytes: number
  /** Smallest payload lent. */
  readonly minBytes: number
  #ab: ArrayBuffer | undefined
  #out = false
  #lent = 0

  constructor (maxBytes: number, minBytes = BORROW_MIN_BYTES) {
    if (!Number.isInteger(maxBytes) || maxBytes < 1) throw new RangeError(`PayloadLender: maxBytes must be a positive integer (got ${maxBytes})`)
    if (!Number.isInteger(minBytes) || minBytes < 0 || minBytes > maxBytes) throw new RangeError(`PayloadLender: minBytes must be an integer in 0..maxBytes (got ${minBytes})`)
    this.maxBytes = maxBytes
    this.minBytes = minBytes
  }

  /** Payloads lent so far. */
  get lent (): number { return this.#lent }

  /** Whether a payload of `n` bytes would be lent now (not while another one is out: a nested delivery gets a copy). */
  canLend (n: number): boolean {
    return !this.#out && n >= this.minBytes && n <= this.maxBytes
  }

  /** The bytes of `source` in the lent buffer. Only after {@link canLend}; {@link revoke} before the next. */
  lend (source: Uint8Array): Buffer {
    if (!this.canLend(source.length)) throw new Error(`PayloadLender: cannot lend ${source.length} bytes now`)
    const ab = this.#ab ??= new ArrayBuffer(this.maxBytes)
    const view = Buffer.from(ab, 0, source.length)
    copyBytes(view, 0, source)
    this.#out = true
    this.#lent++
    return view
  }

  /** Take the lent buffer back: every view of it now has length 0; the memory is kept for the next lend. */
  revoke (): void {
    if (!this.#out) return
    this.#out = false
    const ab = this.#ab as ArrayBuffer
    this.#ab = structuredClone(ab, { transfer: [ab] })
  }
}
