/**
 * Byte copies into and out of SharedArrayBuffer memory at memcpy speed.
 *
 * V8 copies typed arrays backed by a SharedArrayBuffer (`TypedArray#set`,
 * `slice`, and on Node 20 also `Buffer#copy` and `Buffer.concat`, which use
 * `set`) with relaxed atomic operations, a byte at a time when the ends are
 * not 8-byte aligned, as ring records usually are not. Measured on Node 20:
 * a 64 KiB copy into a ring at offset 4 runs at 2.7 GB/s, the same copy
 * between ArrayBuffers at 35 GB/s. `Buffer#fill` with a byte source is a
 * plain memcpy in Node's C++ whatever memory backs the views: 37 GB/s into
 * the ring, and copying a 64 KiB record out (allocation included) takes
 * 10 µs instead of 34 µs. The native call costs ~60 ns more than `set`:
 * measured crossovers, unaligned, ~200 bytes out of shared memory and
 * ~250 bytes into it (aligned copies into it keep up with memcpy longer), so
 * copies under {@link FILL_MIN_BYTES} keep `set`.
 *
 * Only for memory that no other thread writes while it is copied (the ring
 * protocol guarantees that: a record is written before it is published and
 * read before it is released). Source and target must not overlap.
 * @module
 */

const fill = Buffer.prototype.fill

/** Below this, `TypedArray#set` is about as fast as the native memcpy (see above). */
export const FILL_MIN_BYTES = 256

/** Copy all of `source` into `target` at `offset` (which must have room: RangeError otherwise). */
export function copyBytes (target: Uint8Array, offset: number, source: Uint8Array): void {
  const n = source.length
  if (n < FILL_MIN_BYTES) {
    target.set(source, offset)
    return
  }
  if (offset < 0 || offset + n > target.length) throw new RangeError(`copyBytes: ${n} bytes at ${offset} do not fit in ${target.length}`)
  fill.call(target, source, offset, offset + n)
}

/** A new Buffer (never a view of shared memory) holding a copy of `view`. */
export function copyOut (view: Uint8Array): Buffer {
  const n = view.length
  const out = Buffer.allocUnsafe(n)
  if (n < FILL_MIN_BYTES) out.set(view)
  else fill.call(out, view, 0, n)
  return out
}

/** `Buffer.concat(parts, total)` that copies views of shared memory at memcpy speed too. */
export function concatBytes (parts: readonly Uint8Array[], total: number): Buffer {
  const out = Buffer.allocUnsafe(total)
  let off = 0
  for (const p of parts) {
    copyBytes(out, off, p)
    off += p.length
  }
  if (off !== total) throw new RangeError(`concatBytes: parts hold ${off} bytes, not ${total}`)
  return out
}

/** Whether 32-bit integers are stored low byte first here (word copies must keep the byte order). */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1

/**
 * Copy `len` bytes at byte `start` of a SharedArrayBuffer into `target` at
 * `offset`, without making a view of the source: `src32` and `src8` are
 * views of the whole buffer, `start` is a multiple of 4 (ring records are),
 * `targetView` a DataView over exactly `target`'s bytes. Whole words are
 * read aligned and written unaligned, then the last 0–3 bytes.
 *
 * For the IO worker's send path, which copies one small ring record per
 * message into a batch: 26 ns for 84 bytes against 80 ns for a view +
 * `set()` (Node 20), and no garbage (that view was nearly all the sending
 * worker allocated: ~100 scavenges/s in a 64 B flood). From
 * {@link FILL_MIN_BYTES} a view + {@link copyBytes} is the faster way.
 * @throws RangeError if `start` is not 4-aligned or either range is out of bounds.
 */
export function copyWordsOut (src32: Int32Array, src8: Uint8Array, start: number, len: number, target: Uint8Array, targetView: DataView, offset: number): void {
  if (!(Number.isInteger(start) && Number.isInteger(len)) || (start & 3) !== 0 || start < 0 || len < 0 || start + len > src8.length) throw new RangeError(`copyWordsOut: ${len} bytes at ${start} (must be 4-aligned) of ${src8.length}`)
  if (!Number.isInteger(offset) || offset < 0 || offset + len > target.length) throw new RangeError(`copyWordsOut: ${len} bytes at ${offset} do not fit in ${target.length}`)
  if (targetView.buffer !== target.buffer || targetView.byteOffset !== target.byteOffset || targetView.byteLength !== target.length) throw new RangeError('copyWordsOut: targetView must be a DataView over exactly the bytes of target')
  const words = len >> 2
  const base = start >> 2
  for (let i = 0; i < words; i++) targetView.setInt32(offset + 4 * i, src32[base + i] as number, LITTLE_ENDIAN)
  for (let i = words * 4; i < len; i++) target[offset + i] = src8[start + i] as number
}
