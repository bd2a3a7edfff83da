import { createPrivateKey, createPublicKey, randomBytes, sign, verify, type KeyObject } from 'node:crypto'
import { mkdir, readFile, writeFile, chmod } from 'node:fs/promises'
import { join } from 'node:path'
import { MeshError, ErrorCode } from '../errors.js'
import { base32Decode, base32Encode, isPeerId } from './peer-id.js'

/** The key file inside `dataDir`: PKCS#8 PEM, mode 0600. */
export const IDENTITY_FILE = 'identity.key'

/** A node's ed25519 identity. The peer id is the base32 of the raw public key. */
export interface Identity {
  readonly id: string
  readonly privateKey: KeyObject
  readonly publicKey: KeyObject
  /** PKCS#8 DER of the private key: plain bytes, for handing to worker threads. */
  readonly privateDer: Uint8Array
}

/** Where the identity comes from (resolved options subset). */
export interface IdentitySource {
  dataDir?: string | undefined
  identity?: { privateKey: KeyObject | string | Uint8Array } | { keyFile: string } | undefined
}

/** Build an Identity from an ed25519 private KeyObject. */
export function identityFromPrivateKey (privateKey: KeyObject): Identity {
  if (privateKey.type !== 'private' || privateKey.asymmetricKeyType !== 'ed25519') {
    throw new MeshError(ErrorCode.INVALID_OPTIONS, 'options.identity.privateKey must be an ed25519 private key')
  }
  const publicKey = createPublicKey(privateKey)
  // Ed25519 SPKI DER: a fixed 12-byte header, then the 32-byte public key.
  const spki = publicKey.export({ format: 'der', type: 'spki' })
  if (spki.length !== 44) throw new MeshError(ErrorCode.INVALID_OPTIONS, 'options.identity.privateKey: cannot export the public key')
  const id = base32Encode(spki.subarray(12))
  const privateDer = new Uint8Array(privateKey.export({ format: 'der', type: 'pkcs8' }))
  return { id, privateKey, publicKey, privateDer }
}

/** Rebuild an Identity in a worker from the DER bytes the supervisor sent. */
export function identityFromDer (der: Uint8Array): Identity {
  return identityFromPrivateKey(createPrivateKey({ key: Buffer.from(der), format: 'der', type: 'pkcs8' }))
}

/**
 * A fresh random identity: a key made from 32 random bytes, not by
 * generateKeyPairSync. On Node 20 a GC that finalizes a key generation job
 * while an export of the same key holds the key's mutex deadlocks the thread
 * for good (seen as a hung test process: KeyObjectHandle::ExportJWK → GC →
 * ~KeyGenJob → the same mutex); a seeded key has no such job.
 */
export function generateIdentity (): Identity {
  return identityFromPrivateKey(keyFromOption(randomBytes(32)))
}

const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex')

function keyFromOption (k: KeyObject | string | Uint8Array): KeyObject {
  if (typeof k === 'string') return createPrivateKey(k)
  if (k instanceof Uint8Array) {
    if (k.length !== 32) throw new MeshError(ErrorCode.INVALID_OPTIONS, `options.identity.privateKey must be a 32-byte ed25519 seed (got ${k.length} bytes)`)
    // A raw seed becomes PKCS#8 by the fixed RFC 8410 prefix; node:crypto does the rest.
    return createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, k]), format: 'der', type: 'pkcs8' })
  }
  return k
}

/**
 * Load the node identity: an explicit key or key file wins; else `dataDir/identity.key`
 * is read, or created once (0600) so the id survives restarts; else a fresh key.
 * @throws MeshError INVALID_OPTIONS when a given key cannot be read or is not ed25519.
 */
export async function loadIdentity (src: IdentitySource): Promise<Identity> {
  try {
    if (src.identity !== undefined) {
      if ('keyFile' in src.identity) return identityFromPrivateKey(createPrivateKey(await readFile(src.identity.keyFile)))
      return identityFromPrivateKey(keyFromOption(src.identity.privateKey))
    }
    if (src.dataDir === undefined) return generateIdentity()
    await mkdir(src.dataDir, { recursive: true, mode: 0o700 })
    const file = join(src.dataDir, IDENTITY_FILE)
    try {
      return identityFromPrivateKey(createPrivateKey(await readFile(file)))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    }
    const fresh = generateIdentity()
    const pem = fresh.privateKey.export({ format: 'pem', type: 'pkcs8' })
    try {
      // 'wx': never overwrite a key another process created meanwhile; use theirs instead.
      await writeFile(file, pem, { mode: 0o600, flag: 'wx' })
      await chmod(file, 0o600) // umask may have masked the create mode
      return fresh
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      return identityFromPrivateKey(createPrivateKey(await readFile(file)))
    }
  } catch (err) {
    if (err instanceof MeshError) throw err
    throw new MeshError(ErrorCode.INVALID_OPTIONS, `cannot load the node identity: ${(err as Error).message}`, { cause: err })
  }
}

/** Sign bytes with the node key (ed25519, no pre-hash). */
export function signBytes (identity: Identity, data: Uint8Array): Uint8Array {
  return new Uint8Array(sign(null, data, identity.privateKey))
}

const publicKeyCache = new Map<string, KeyObject>()

/** The public key a peer id stands for; throws MeshError PROTOCOL on a malformed id. */
export function publicKeyOf (peerId: string): KeyObject {
  let k = publicKeyCache.get(peerId)
  if (k !== undefined) return k
  if (!isPeerId(peerId)) throw new MeshError(ErrorCode.PROTOCOL, `malformed peer id ${JSON.stringify(peerId.slice(0, 80))}`)
  k = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(base32Decode(peerId)).toString('base64url') }, format: 'jwk' })
  if (publicKeyCache.size > 4096) publicKeyCache.clear()
  publicKeyCache.set(peerId, k)
  return k
}

/** Verify an ed25519 signature by the key behind `peerId`. False on any failure. */
export function verifyFrom (peerId: string, data: Uint8Array, signature: Uint8Array): boolean {
  try {
    return verify(null, data, publicKeyOf(peerId), signature)
  } catch {
    return false
  }
}
