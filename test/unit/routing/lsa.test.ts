import { describe, it, expect } from 'vitest'
import fc from 'fast-check'
import { sign } from 'node:crypto'
import { Packr } from 'msgpackr'
import { generateIdentity } from '../../../src/identity/identity.js'
import { MeshError } from '../../../src/errors.js'
import {
  createLsa, decodeLsa, encodeLsa, LSA_LIMITS, LSA_SIGN_CONTEXT, LsaErrorReason, verifyLsa, withAge, type Lsa,
} from '../../../src/routing/lsa.js'

const alice = generateIdentity()
const bob = generateIdentity()
const carol = generateIdentity()
const mallory = generateIdentity()
const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false, structuredClone: false, variableMapSize: true })

function reasonOf (fn: () => unknown): string | undefined {
  try { fn() } catch (err) {
    expect(err).toBeInstanceOf(MeshError)
    expect((err as MeshError).code).toBe('PROTOCOL')
    return (err as MeshError).details?.['reason'] as string
  }
  return undefined
}

/** A body signed by `signer` for arbitrary content: what a hostile origin could send. */
function signedWire (signer: typeof alice, content: unknown, ageMs = 0): Uint8Array {
  const body = new Uint8Array(packr.pack(content))
  const sig = new Uint8Array(sign(null, Buffer.concat([LSA_SIGN_CONTEXT, body]), signer.privateKey))
  return new Uint8Array(packr.pack([1, body, sig, ageMs]))
}

describe('LSA create / encode / decode / verify', () => {
  it('round-trips, sorts links, and verifies against the origin id', () => {
    const lsa = createLsa(alice, 7, [{ peer: carol.id, cost: 3 }, { peer: bob.id, cost: 1.5 }])
    expect(lsa.links.map((l) => l.peer)).toEqual([bob.id, carol.id].sort())
    expect(verifyLsa(lsa)).toBe(true)
    const back = decodeLsa(encodeLsa(lsa, 1234))
    expect(back).toMatchObject({ origin: alice.id, seq: 7, ageMs: 1234, links: lsa.links })
    expect(verifyLsa(back)).toBe(true)
    expect(Object.isFrozen(back)).toBe(true)
  })

  it('carries wall-clock-sized seqs (msgpack float64 range) exactly', () => {
    const seq = 1_763_700_000_123
    const back = decodeLsa(encodeLsa(createLsa(alice, seq, [])))
    expect(back.seq).toBe(seq)
    expect(verifyLsa(back)).toBe(true)
  })

  it('age is not signed: a relay may change it, the signature still holds', () => {
    const lsa = createLsa(alice, 1, [{ peer: bob.id, cost: 1 }])
    expect(verifyLsa(withAge(lsa, 99_000))).toBe(true)
    expect(decodeLsa(encodeLsa(lsa, 5)).ageMs).toBe(5)
  })

  it('rejects forgeries: another key, a tampered body, a swapped signature', () => {
    // Mallory signs an LSA claiming to be Alice.
    const forged = decodeLsa(signedWire(mallory, [1, alice.id, 9, [[bob.id, 1]]]))
    expect(forged.origin).toBe(alice.id)
    expect(verifyLsa(forged)).toBe(false)
    // Alice's real LSA with a cost changed in flight (re-encoded canonically).
    const real = createLsa(alice, 2, [{ peer: bob.id, cost: 5 }])
    const tamperedBody = new Uint8Array(packr.pack([1, alice.id, 2, [[bob.id, 1]]]))
    const tampered = decodeLsa(new Uint8Array(packr.pack([1, tamperedBody, real.sig, 0])))
    expect(verifyLsa(tampered)).toBe(false)
    // Bob's signature on Alice's body.
    const other = createLsa(bob, 2, [{ peer: alice.id, cost: 5 }])
    expect(verifyLsa({ ...real, sig: other.sig })).toBe(false)
  })

  it('createLsa validates seq and links', () => {
    expect(reasonOf(() => createLsa(alice, 0, []))).toBe(LsaErrorReason.BAD_SEQ)
    expect(reasonOf(() => createLsa(alice, 1.5, []))).toBe(LsaErrorReason.BAD_SEQ)
    expect(reasonOf(() => createLsa(alice, 1, [{ peer: alice.id, cost: 1 }]))).toBe(LsaErrorReason.BAD_LINK)
    expect(reasonOf(() => createLsa(alice, 1, [{ peer: 'not-an-id', cost: 1 }]))).toBe(LsaErrorReason.BAD_LINK)
    expect(reasonOf(() => createLsa(alice, 1, [{ peer: bob.id, cost: 1 }, { peer: bob.id, cost: 2 }]))).toBe(LsaErrorReason.BAD_LINK)
    for (const cost of [0, -1, NaN, Infinity]) expect(reasonOf(() => createLsa(alice, 1, [{ peer: bob.id, cost }]))).toBe(LsaErrorReason.BAD_LINK)
    expect(reasonOf(() => createLsa({ ...alice, id: 'x' }, 1, []))).toBe(LsaErrorReason.BAD_ORIGIN)
  })

  it.each([
    ['empty', new Uint8Array(0), LsaErrorReason.NOT_MSGPACK],
    ['oversized', new Uint8Array(LSA_LIMITS.maxBytes + 1), LsaErrorReason.TOO_LARGE],
    ['not an array', new Uint8Array(packr.pack({ a: 1 })), LsaErrorReason.BAD_SHAPE],
    ['wrong arity', new Uint8Array(packr.pack([1, 2, 3])), LsaErrorReason.BAD_SHAPE],
    ['wrong version', new Uint8Array(packr.pack([2, new Uint8Array(3), new Uint8Array(64), 0])), LsaErrorReason.UNSUPPORTED_VERSION],
    ['short sig', new Uint8Array(packr.pack([1, new Uint8Array(3), new Uint8Array(63), 0])), LsaErrorReason.BAD_SHAPE],
    ['negative age', signedWire(alice, [1, alice.id, 1, []], -1), LsaErrorReason.BAD_AGE],
    ['fractional age', signedWire(alice, [1, alice.id, 1, []], 1.5), LsaErrorReason.BAD_AGE],
    ['body truncated msgpack', new Uint8Array(packr.pack([1, new Uint8Array([0x94, 0x01]), new Uint8Array(64), 0])), LsaErrorReason.NOT_MSGPACK],
    ['body wrong version', signedWire(alice, [2, alice.id, 1, []]), LsaErrorReason.UNSUPPORTED_VERSION],
    ['bad origin', signedWire(alice, [1, 'alice', 1, []]), LsaErrorReason.BAD_ORIGIN],
    ['seq 0', signedWire(alice, [1, alice.id, 0, []]), LsaErrorReason.BAD_SEQ],
    ['seq unsafe', signedWire(alice, [1, alice.id, 2 ** 60, []]), LsaErrorReason.BAD_SEQ],
    ['links not array', signedWire(alice, [1, alice.id, 1, 'x']), LsaErrorReason.BAD_SHAPE],
    ['link not a pair', signedWire(alice, [1, alice.id, 1, [[bob.id]]]), LsaErrorReason.BAD_LINK],
    ['link zero cost', signedWire(alice, [1, alice.id, 1, [[bob.id, 0]]]), LsaErrorReason.BAD_LINK],
    ['self link', signedWire(alice, [1, alice.id, 1, [[alice.id, 1]]]), LsaErrorReason.BAD_LINK],
    ['unsorted links', signedWire(alice, [1, alice.id, 1, [[bob.id, 1], [carol.id, 1]].sort((a, b) => (a[0]! < b[0]! ? 1 : -1))]), LsaErrorReason.NON_CANONICAL],
    ['too many links', signedWire(alice, [1, alice.id, 1, Array.from({ length: LSA_LIMITS.maxLinks + 1 }, () => [bob.id, 1])]), LsaErrorReason.TOO_MANY_LINKS],
  ])('decode rejects %s', (_name, bytes, reason) => {
    expect(reasonOf(() => decodeLsa(bytes))).toBe(reason)
  })

  it('rejects a non-canonical body (a cost spelled as float64 instead of an int)', () => {
    const canonical = new Uint8Array(packr.pack([1, alice.id, 1, [[bob.id, 1]]]))
    // The int 1 is the single byte 0x01 at the end; spell it float64 1.0 instead.
    const body = new Uint8Array([...canonical.subarray(0, canonical.length - 1), 0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0])
    const sig = new Uint8Array(sign(null, Buffer.concat([LSA_SIGN_CONTEXT, body]), alice.privateKey))
    expect(reasonOf(() => decodeLsa(new Uint8Array(packr.pack([1, body, sig, 0]))))).toBe(LsaErrorReason.NON_CANONICAL)
  })

  it('rejects trailing bytes and every truncation of a valid LSA', () => {
    const wire = encodeLsa(createLsa(alice, 3, [{ peer: bob.id, cost: 2 }, { peer: carol.id, cost: 7 }]))
    expect(reasonOf(() => decodeLsa(new Uint8Array([...wire, 0])))).toBe(LsaErrorReason.TRAILING_BYTES)
    for (let i = 0; i < wire.length; i++) expect(reasonOf(() => decodeLsa(wire.subarray(0, i)))).toBeDefined()
  })

  it('decodes from SharedArrayBuffer memory (ring buffers)', () => {
    const wire = encodeLsa(createLsa(alice, 3, []))
    const shared = new Uint8Array(new SharedArrayBuffer(wire.length + 8), 4, wire.length)
    shared.set(wire)
    expect(verifyLsa(decodeLsa(shared))).toBe(true)
  })
})

describe('LSA decode fuzz (fast-check): errors, never crashes', () => {
  const valid = encodeLsa(createLsa(alice, 42, [{ peer: bob.id, cost: 1 }, { peer: carol.id, cost: 2.25 }]))
  const check = (bytes: Uint8Array): Lsa | undefined => {
    try {
      return decodeLsa(bytes)
    } catch (err) {
      expect(err).toBeInstanceOf(MeshError)
      expect((err as MeshError).code).toBe('PROTOCOL')
      expect(Object.values(LsaErrorReason)).toContain((err as MeshError).details?.['reason'])
      return undefined
    }
  }

  it('random bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (b) => { check(b) }), { numRuns: 1000 })
  })

  it('random msgpack values', () => {
    fc.assert(fc.property(fc.anything({ withTypedArray: true, withMap: true, withSet: true }), (v) => {
      let bytes: Uint8Array
      try { bytes = new Uint8Array(packr.pack(v)) } catch { return }
      check(bytes)
    }), { numRuns: 300 })
  })

  it('mutated valid LSAs: rejected, or decoded but not verifying, unless only the age changed', () => {
    fc.assert(fc.property(fc.array(fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }), (muts) => {
      const b = valid.slice()
      for (const [i, x] of muts) b[i] = b[i]! ^ x
      const lsa = check(b)
      if (lsa === undefined) return
      const ref = decodeLsa(valid)
      const sameSigned = lsa.body.length === ref.body.length && lsa.body.every((x, i) => x === ref.body[i]) && lsa.sig.every((x, i) => x === ref.sig[i])
      expect(verifyLsa(lsa)).toBe(sameSigned)
    }), { numRuns: 1000 })
  })

  it('oversized inputs are refused before parsing', () => {
    fc.assert(fc.property(fc.integer({ min: LSA_LIMITS.maxBytes + 1, max: LSA_LIMITS.maxBytes + 5000 }), (n) => {
      expect(reasonOf(() => decodeLsa(new Uint8Array(n).fill(0x91)))).toBe(LsaErrorReason.TOO_LARGE)
    }), { numRuns: 20 })
  })
})
