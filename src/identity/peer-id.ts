/**
 * Peer ids and the base32 codec behind them. Pure functions: no I/O, no keys.
 *
 * A peer id is the RFC 4648 §6 base32 encoding — lowercase, no padding — of
 * the 32-byte raw ed25519 public key: 52 characters of `a-z2-7`.
 * (Key handling lives in `identity.ts`.)
 */

/** Length of a peer id in characters: ceil(32 bytes * 8 / 5). */
export const PEER_ID_LENGTH = 52

/** RFC 4648 §6 alphabet, lowercased. */
const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567'

/** Character code → 5-bit value, or -1 for a character outside the alphabet. */
const DECODE = new Int8Array(128).fill(-1)
for (let i = 0; i < ALPHABET.length; i++) DECODE[ALPHABET.charCodeAt(i)] = i

// 52 chars carry 260 bits for 256 bits of key, so the last character holds
// one key bit and four zero bits: only 'a' (0b00000) or 'q' (0b10000). Any
// other last character would be a second spelling of the same key, which
// would defeat string comparison of ids (allow lists, pinned bootstrap ids).
const PEER_ID_RE = /^[a-z2-7]{51}[aq]$/

/**
 * True when `s` is a canonical peer id: exactly {@link PEER_ID_LENGTH}
 * characters of the lowercase base32 alphabet `a-z2-7` that decode to 32
 * bytes with no stray trailing bits (so the last character is `a` or `q`).
 */
export function isPeerId (s: string): boolean {
  return typeof s === 'string' && PEER_ID_RE.test(s)
}

/**
 * Base32-encode bytes (RFC 4648 §6 alphabet, lowercase, no `=` padding).
 * @example base32Encode(new TextEncoder().encode('foobar')) === 'mzxw6ytboi'
 */
export function base32Encode (bytes: Uint8Array): string {
  let out = ''
  let buffer = 0 // pending bits, right-aligned
  let bits = 0 // how many bits of `buffer` are pending (always < 5 between bytes)
  for (const byte of bytes) {
    buffer = ((buffer << 8) | byte) & 0xfff // keep at most 4 + 8 bits
    bits += 8
    while (bits >= 5) {
      bits -= 5
      out += ALPHABET[(buffer >>> bits) & 31]
    }
  }
  if (bits > 0) out += ALPHABET[(buffer << (5 - bits)) & 31]
  return out
}

/**
 * Decode lowercase, unpadded base32 (the exact inverse of {@link base32Encode}).
 * Strict, so that every byte string has exactly one spelling.
 * @throws TypeError when `s` is not a string, holds a character outside
 *   `a-z2-7` (uppercase and `=` padding included), has an impossible length
 *   (length % 8 of 1, 3 or 6), or has non-zero trailing bits.
 */
export function base32Decode (s: string): Uint8Array {
  if (typeof s !== 'string') throw new TypeError(`base32: expected a string, got ${typeof s}`)
  const tail = s.length % 8
  if (tail === 1 || tail === 3 || tail === 6) {
    throw new TypeError(`base32: invalid length ${s.length} (no byte count encodes to it)`)
  }
  const out = new Uint8Array(Math.floor((s.length * 5) / 8))
  let buffer = 0
  let bits = 0
  let o = 0
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    const v = c < 128 ? DECODE[c] ?? -1 : -1
    if (v < 0) throw new TypeError(`base32: invalid character ${JSON.stringify(s[i])} at index ${i}`)
    buffer = ((buffer << 5) | v) & 0xfff
    bits += 5
    if (bits >= 8) {
      bits -= 8
      out[o++] = (buffer >>> bits) & 0xff
    }
  }
  // The leftover bits are the encoder's zero fill; anything else is a
  // non-canonical spelling.
  if ((buffer & ((1 << bits) - 1)) !== 0) throw new TypeError('base32: non-zero trailing bits (non-canonical encoding)')
  return out
}
