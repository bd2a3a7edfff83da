/**
 * Decimal strings of message ids without V8's number-string cache.
 *
 * `String(n)` (and `${n}`, `n.toString()`) caches its result in an
 * old-space table of up to 16,384 entries. Every new id is a miss that adds
 * a fresh young string to that table, so at every Scavenge all 16,384 are
 * reachable from old space and get copied: a host receiving 64 B messages
 * copied a constant ~394 KB per Scavenge, promoted none, and paused
 * p50 1.7 ms / max 8.7 ms; building the string here, 1–7 KB and
 * p50 0.1–0.2 ms / max 1.5–2.5 ms (`.scratch/bulk.mjs 64 4`, receiver
 * under `--trace-gc-nvp`, two runs).
 * It costs ~43 ns an id against ~25 ns for a cache miss.
 * @module
 */

const ONE = Array.from({ length: 10 }, (_, i) => String(i))
const TWO = Array.from({ length: 100 }, (_, i) => (i < 10 ? '0' : '') + String(i))

/** `String(n)` for a non-negative safe integer, bypassing the number-string cache; other numbers go to `String`. */
export function decimal (n: number): string {
  if (!(n >= 0 && n <= Number.MAX_SAFE_INTEGER) || Math.floor(n) !== n) return String(n)
  if (n < 100) return n < 10 ? ONE[n] as string : TWO[n] as string
  let s = ''
  while (n >= 100) {
    const q = Math.floor(n / 100)
    s = (TWO[n - q * 100] as string) + s
    n = q
  }
  return (n < 10 ? ONE[n] as string : TWO[n] as string) + s
}
