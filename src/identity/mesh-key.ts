import { createHmac, timingSafeEqual } from 'node:crypto'

const TAG = Buffer.from('meshwork-mesh-key-proof-v1\0')

/**
 * Proof of knowing the mesh key without revealing it: HMAC-SHA256 keyed with
 * the mesh key over the handshake transcript (both nonces, both ids, the
 * version) and the prover's role. Fresh nonces make every proof single-use;
 * the role tag stops a proof from being reflected back.
 */
export function meshKeyProof (key: Uint8Array, role: 'dialer' | 'responder', transcript: Uint8Array): Uint8Array {
  return new Uint8Array(createHmac('sha256', key).update(TAG).update(role).update(transcript).digest())
}

/** Constant-time check of a peer's proof. */
export function verifyMeshKeyProof (key: Uint8Array, role: 'dialer' | 'responder', transcript: Uint8Array, proof: unknown): boolean {
  if (!(proof instanceof Uint8Array) || proof.length !== 32) return false
  return timingSafeEqual(meshKeyProof(key, role, transcript), proof)
}
