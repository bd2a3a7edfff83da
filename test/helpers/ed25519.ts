// Test keys made from random seeds (PKCS#8 DER), never with generateKeyPairSync:
// on Node 20 a GC that finalizes a key generation job while an export of the
// same key holds its mutex deadlocks the thread for good (seen: a vitest fork
// hung in KeyObjectHandle::ExportJWK → GC → ~KeyGenJob → mutex lock).
import { createPrivateKey, createPublicKey, randomBytes, type KeyObject } from 'node:crypto'
import { base32Encode } from '../../src/identity/peer-id.js'

const PKCS8_PREFIX = { ed25519: '302e020100300506032b657004220420', x25519: '302e020100300506032b656e04220420' } as const

/** A fresh key pair of `type` from 32 random bytes, and the raw 32-byte public key. */
export function seededKeyPair (type: keyof typeof PKCS8_PREFIX = 'ed25519'): { privateKey: KeyObject; publicKey: KeyObject; raw: Uint8Array } {
  const privateKey = createPrivateKey({ key: Buffer.concat([Buffer.from(PKCS8_PREFIX[type], 'hex'), randomBytes(32)]), format: 'der', type: 'pkcs8' })
  const publicKey = createPublicKey(privateKey)
  // SPKI for these curves: a 12-byte header, then the 32-byte key.
  const raw = new Uint8Array(publicKey.export({ format: 'der', type: 'spki' }).subarray(12))
  return { privateKey, publicKey, raw }
}

/** A fresh ed25519 key pair's peer id (base32 of the raw public key) and private key. */
export function seededPeer (): { id: string; privateKey: KeyObject; publicKey: KeyObject } {
  const k = seededKeyPair()
  return { id: base32Encode(k.raw), privateKey: k.privateKey, publicKey: k.publicKey }
}
