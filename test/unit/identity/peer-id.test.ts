import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { PEER_ID_LENGTH, base32Decode, base32Encode, isPeerId } from '../../../src/identity/peer-id.js'
import { seededPeer } from '../../helpers/ed25519.js'

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s)

describe('base32', () => {
  // RFC 4648 §10 test vectors, lowercased and without padding.
  it.each([
    ['', ''],
    ['f', 'my'],
    ['fo', 'mzxq'],
    ['foo', 'mzxw6'],
    ['foob', 'mzxw6yq'],
    ['fooba', 'mzxw6ytb'],
    ['foobar', 'mzxw6ytboi'],
  ])('RFC 4648 vector %j -> %j', (plain, encoded) => {
    expect(base32Encode(utf8(plain))).toBe(encoded)
    expect(base32Decode(encoded)).toEqual(utf8(plain))
  })

  it('round-trips any bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      const s = base32Encode(bytes)
      expect(s).toMatch(/^[a-z2-7]*$/)
      expect(s.length).toBe(Math.ceil((bytes.length * 8) / 5))
      expect(base32Decode(s)).toEqual(bytes)
    }))
  })

  it('encodes all byte values (edge bytes)', () => {
    expect(base32Encode(new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff]))).toBe('77777777')
    expect(base32Encode(new Uint8Array(5))).toBe('aaaaaaaa')
  })

  it.each([
    ['uppercase', 'MZXW6'],
    ['padding', 'my======'],
    ['character outside the alphabet', 'mzx1'],
    ['non-ASCII character', 'mzxé'],
    ['impossible length 1', 'm'],
    ['impossible length 3', 'mzx'],
    ['impossible length 6', 'mzxw6y'],
    ['non-zero trailing bits', 'mz'],
  ])('rejects %s (%j)', (_why, s) => {
    expect(() => base32Decode(s)).toThrow(TypeError)
  })

  it('rejects a non-string at run time', () => {
    expect(() => base32Decode(42 as unknown as string)).toThrow(/expected a string/)
  })
})

describe('isPeerId', () => {
  const realId = (): string => {
    return seededPeer().id
  }

  it('accepts the encoding of a real ed25519 public key', () => {
    const id = realId()
    expect(id).toHaveLength(PEER_ID_LENGTH)
    expect(isPeerId(id)).toBe(true)
    expect(base32Decode(id)).toHaveLength(32)
  })

  it('accepts the encoding of any 32 bytes, and every accepted id decodes to 32 bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (key) => {
      const id = base32Encode(key)
      expect(isPeerId(id)).toBe(true)
      expect(base32Decode(id)).toEqual(key)
    }))
  })

  it.each([
    ['empty', ''],
    ['too short', 'a'.repeat(51)],
    ['too long', 'a'.repeat(53)],
    ['uppercase', 'A'.repeat(52)],
    ['digit outside alphabet', '1' + 'a'.repeat(51)],
    ['padding', 'a'.repeat(51) + '='],
    ['non-canonical last character', 'a'.repeat(51) + 'b'],
    ['whitespace', ' ' + 'a'.repeat(51)],
  ])('rejects %s', (_why, s) => {
    expect(isPeerId(s)).toBe(false)
  })

  it('is false for non-strings at run time', () => {
    expect(isPeerId(undefined as unknown as string)).toBe(false)
    expect(isPeerId(42 as unknown as string)).toBe(false)
  })
})
