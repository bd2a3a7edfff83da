/**
 * Link-state advertisements (DESIGN.md §3, routing): what a node says about
 * its own links, signed by its ed25519 key, flooded to every node.
 *
 * Wire form, one msgpack array (msgpackr, plain msgpack, no extensions):
 *
 * ```
 *  [ 1,            version of this format
 *    body,         bin: the signed bytes, canonical msgpack of
 *                    [1, origin, seq, [[peer, cost], …]]   links sorted by peer, unique
 *    sig,          bin(64): ed25519 over LSA_SIGN_CONTEXT ‖ body, by origin's key
 *    ageMs ]       uint: age of this copy; NOT signed, it grows in flight
 * ```
 *
 * Why this shape:
 * - The signature covers the exact bytes received (`body`), so verification
 *   never depends on re-encoding; and a body is accepted only if it is the
 *   canonical encoding of what it decodes to, so one advertisement has one
 *   spelling (no malleability, byte-equal duplicates are real duplicates).
 * - A peer id IS the raw ed25519 public key (peer-id.ts), so the signature is
 *   checked against the origin id itself: a forged LSA is rejected with no
 *   key exchange or key directory.
 * - The signed bytes are prefixed with a context string that appears nowhere
 *   else, so an LSA signature cannot be replayed as a handshake signature or
 *   the other way round.
 * - Age is unsigned (like OSPF's LS age, RFC 2328 §12.1.1): relays add to it.
 *   A relay could lie about it, but a receiver never keeps an LSA longer than
 *   `maxAgeMs` after receipt, and a relay could as well drop the LSA.
 *
 * @module
 */
import { sign, type KeyObject } from 'node:crypto'
import { Packr, Unpackr } from 'msgpackr'
import { ErrorCode, MeshError } from '../errors.js'
import { verifyFrom } from '../identity/identity.js'
import { isPeerId } from '../identity/peer-id.js'
import { compareIds, isValidCost } from './graph.js'

/** Version of the LSA format (both the wire array and the signed body). */
export const LSA_VERSION = 1

/** Bytes prepended to the body before signing (domain separation). */
export const LSA_SIGN_CONTEXT: Uint8Array = new TextEncoder().encode('meshwork/lsa/v1\n')

/** Hard limits of an LSA. */
export const LSA_LIMITS = {
  /** Largest encoded LSA accepted, in bytes (1,024 links of 52-char ids fit in ~60 KiB). */
  maxBytes: 64 * 1024,
  /** Most links in one LSA. */
  maxLinks: 1024,
  /** Largest age carried, in ms (about 24 days; anything older is long expired). */
  maxAgeMs: 2 ** 31 - 1,
} as const

/** Why an LSA was rejected by {@link decodeLsa} or {@link createLsa} (`err.details.reason`). */
export const LsaErrorReason = {
  TOO_LARGE: 'lsa-too-large',
  NOT_MSGPACK: 'lsa-not-msgpack',
  TRAILING_BYTES: 'lsa-trailing-bytes',
  BAD_SHAPE: 'lsa-bad-shape',
  UNSUPPORTED_VERSION: 'lsa-unsupported-version',
  BAD_ORIGIN: 'lsa-bad-origin',
  BAD_SEQ: 'lsa-bad-seq',
  BAD_AGE: 'lsa-bad-age',
  BAD_LINK: 'lsa-bad-link',
  TOO_MANY_LINKS: 'lsa-too-many-links',
  NON_CANONICAL: 'lsa-non-canonical',
} as const
/** A value of {@link LsaErrorReason}. */
export type LsaErrorReason = typeof LsaErrorReason[keyof typeof LsaErrorReason]

/** One advertised link: this node → `peer`, at `cost` (finite, > 0). */
export interface LsaLink {
  readonly peer: string
  readonly cost: number
}

/** A decoded (or freshly created) link-state advertisement. Immutable. */
export interface Lsa {
  /** Peer id of the node that advertises its links (and signed them). */
  readonly origin: string
  /** Per-origin sequence number, a safe integer >= 1: the higher one wins. */
  readonly seq: number
  /** The origin's links, sorted by peer id, no duplicates, no self-link. */
  readonly links: readonly LsaLink[]
  /** Age of this copy in ms when it was received or created. Not signed. */
  readonly ageMs: number
  /** The signed bytes: canonical msgpack of `[1, origin, seq, [[peer, cost], …]]`. */
  readonly body: Uint8Array
  /** ed25519 signature over {@link LSA_SIGN_CONTEXT} ‖ body by the origin's key (64 bytes). */
  readonly sig: Uint8Array
}

// See codec/control.ts for what each option guards against; variableMapSize
// is moot (no maps), and plain arrays/strings/numbers encode one way.
const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false, structuredClone: false, variableMapSize: true })
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, moreTypes: false, structuredClone: false, copyBuffers: true })

function lsaError (reason: LsaErrorReason, message: string, cause?: unknown): MeshError {
  return new MeshError(ErrorCode.PROTOCOL, `invalid LSA: ${message}`, { details: { reason }, ...(cause === undefined ? {} : { cause }) })
}

function isSeq (v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 1
}

function isAge (v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v <= LSA_LIMITS.maxAgeMs
}

/** Validate links (not yet sorted); returns them sorted by peer. */
function checkLinks (origin: string, links: readonly LsaLink[]): LsaLink[] {
  if (links.length > LSA_LIMITS.maxLinks) throw lsaError(LsaErrorReason.TOO_MANY_LINKS, `${links.length} links, more than ${LSA_LIMITS.maxLinks}`)
  const sorted = [...links].sort((a, b) => compareIds(a.peer, b.peer))
  for (let i = 0; i < sorted.length; i++) {
    const l = sorted[i]!
    if (typeof l.peer !== 'string' || !isPeerId(l.peer)) {
      throw lsaError(LsaErrorReason.BAD_LINK, `link ${i}: peer is not a peer id`)
    }
    if (l.peer === origin) throw lsaError(LsaErrorReason.BAD_LINK, `link ${i}: a link to the origin itself`)
    if (!isValidCost(l.cost)) throw lsaError(LsaErrorReason.BAD_LINK, `link to ${l.peer}: cost must be a finite number > 0`)
    if (i > 0 && sorted[i - 1]!.peer === l.peer) throw lsaError(LsaErrorReason.BAD_LINK, `duplicate link to ${l.peer}`)
  }
  return sorted.map((l) => ({ peer: l.peer, cost: l.cost }))
}

function signedBytes (body: Uint8Array): Uint8Array {
  const out = new Uint8Array(LSA_SIGN_CONTEXT.length + body.length)
  out.set(LSA_SIGN_CONTEXT, 0)
  out.set(body, LSA_SIGN_CONTEXT.length)
  return out
}

/** Whatever can sign for an origin: its ed25519 private key. */
export interface LsaSigner {
  /** The signer's peer id (the LSA's origin). */
  readonly id: string
  readonly privateKey: KeyObject
}

/**
 * Create and sign an LSA (age 0). Links may come in any order; they are
 * sorted by peer id.
 * @throws MeshError `PROTOCOL` (`details.reason` from {@link LsaErrorReason})
 *   when `seq` is not a safe integer >= 1, a link is invalid (not a peer id,
 *   a self-link, a duplicate, a cost that is not finite and > 0) or there are
 *   more than {@link LSA_LIMITS}.maxLinks links.
 */
export function createLsa (signer: LsaSigner, seq: number, links: readonly LsaLink[]): Lsa {
  if (!isPeerId(signer.id)) throw lsaError(LsaErrorReason.BAD_ORIGIN, 'the signer id is not a peer id')
  if (!isSeq(seq)) throw lsaError(LsaErrorReason.BAD_SEQ, `seq must be a safe integer >= 1 (got ${String(seq)})`)
  const sorted = checkLinks(signer.id, links)
  const body = packr.pack([LSA_VERSION, signer.id, seq, sorted.map((l) => [l.peer, l.cost])])
  const bodyCopy = new Uint8Array(body) // packr output may be a view into its shared slab
  const sig = new Uint8Array(sign(null, signedBytes(bodyCopy), signer.privateKey))
  return Object.freeze({ origin: signer.id, seq, links: Object.freeze(sorted), ageMs: 0, body: bodyCopy, sig })
}

/** The same LSA with another age (ages are not signed). */
export function withAge (lsa: Lsa, ageMs: number): Lsa {
  return Object.freeze({ ...lsa, ageMs: Math.min(LSA_LIMITS.maxAgeMs, Math.max(0, Math.round(ageMs))) })
}

/**
 * Verify the signature of `lsa` against the key its origin id stands for.
 * False on any failure (malformed id, wrong key, tampered body).
 */
export function verifyLsa (lsa: Lsa): boolean {
  return verifyFrom(lsa.origin, signedBytes(lsa.body), lsa.sig)
}

/**
 * Encode an LSA for the wire (see the module doc), with `ageMs` (default:
 * the LSA's own) as its age. The result is a fresh copy.
 */
export function encodeLsa (lsa: Lsa, ageMs: number = lsa.ageMs): Uint8Array {
  return new Uint8Array(packr.pack([LSA_VERSION, lsa.body, lsa.sig, Math.min(LSA_LIMITS.maxAgeMs, Math.max(0, Math.round(ageMs)))]))
}

/** Decode exactly one msgpack value from `bytes`, or throw an LSA error. */
function unpackOne (bytes: Uint8Array, what: string): unknown {
  // Private view (msgpackr caches a DataView on the array it is given, and
  // refuses SharedArrayBuffer memory: copy ring memory out first).
  const src = bytes.buffer instanceof SharedArrayBuffer ? bytes.slice() : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length)
  let value: unknown
  let end = -1
  try {
    unpackr.unpackMultiple(src, (v: unknown, _start?: number, stop?: number) => {
      value = v
      end = stop ?? -1
      return false // stop after the first value: trailing garbage is never parsed
    })
  } catch (err) {
    throw lsaError(LsaErrorReason.NOT_MSGPACK, `${what} is not valid msgpack: ${err instanceof Error ? err.message : String(err)}`, err)
  }
  if (end !== bytes.length) throw lsaError(LsaErrorReason.TRAILING_BYTES, `${what} has ${bytes.length - end} byte(s) after its value`)
  return value
}

/**
 * Decode and validate an LSA from the wire. The signature is NOT checked
 * here (see {@link verifyLsa}; the link-state database checks it only for
 * LSAs newer than what it holds, which saves a verify per duplicate).
 * @throws MeshError `PROTOCOL` with `details.reason` from
 *   {@link LsaErrorReason}: too large, not msgpack, trailing bytes, wrong
 *   shape or version, bad origin / seq / age / link, too many links, or a
 *   body that is not the canonical encoding of its content.
 */
export function decodeLsa (bytes: Uint8Array): Lsa {
  if (!(bytes instanceof Uint8Array)) throw lsaError(LsaErrorReason.BAD_SHAPE, 'expected bytes')
  if (bytes.length > LSA_LIMITS.maxBytes) throw lsaError(LsaErrorReason.TOO_LARGE, `${bytes.length} bytes, more than ${LSA_LIMITS.maxBytes}`)
  if (bytes.length === 0) throw lsaError(LsaErrorReason.NOT_MSGPACK, 'empty input')
  const outer = unpackOne(bytes, 'the LSA')
  if (!Array.isArray(outer) || outer.length !== 4) throw lsaError(LsaErrorReason.BAD_SHAPE, 'expected an array [version, body, sig, ageMs]')
  const [version, body, sig, ageMs] = outer as unknown[]
  if (version !== LSA_VERSION) throw lsaError(LsaErrorReason.UNSUPPORTED_VERSION, `version ${JSON.stringify(version)} (supported: ${LSA_VERSION})`)
  if (!(body instanceof Uint8Array) || body.length === 0) throw lsaError(LsaErrorReason.BAD_SHAPE, 'body must be non-empty bytes')
  if (!(sig instanceof Uint8Array) || sig.length !== 64) throw lsaError(LsaErrorReason.BAD_SHAPE, 'sig must be 64 bytes')
  if (!isAge(ageMs)) throw lsaError(LsaErrorReason.BAD_AGE, `ageMs must be an integer in 0..${LSA_LIMITS.maxAgeMs}`)
  const inner = unpackOne(body, 'the LSA body')
  if (!Array.isArray(inner) || inner.length !== 4) throw lsaError(LsaErrorReason.BAD_SHAPE, 'body: expected an array [version, origin, seq, links]')
  const [bodyVersion, origin, seq, rawLinks] = inner as unknown[]
  if (bodyVersion !== LSA_VERSION) throw lsaError(LsaErrorReason.UNSUPPORTED_VERSION, `body version ${JSON.stringify(bodyVersion)}`)
  if (typeof origin !== 'string' || !isPeerId(origin)) throw lsaError(LsaErrorReason.BAD_ORIGIN, 'origin is not a peer id')
  if (!isSeq(seq)) throw lsaError(LsaErrorReason.BAD_SEQ, 'seq must be a safe integer >= 1')
  if (!Array.isArray(rawLinks)) throw lsaError(LsaErrorReason.BAD_SHAPE, 'links must be an array')
  if (rawLinks.length > LSA_LIMITS.maxLinks) throw lsaError(LsaErrorReason.TOO_MANY_LINKS, `${rawLinks.length} links, more than ${LSA_LIMITS.maxLinks}`)
  const links: LsaLink[] = []
  for (let i = 0; i < rawLinks.length; i++) {
    const l: unknown = rawLinks[i]
    if (!Array.isArray(l) || l.length !== 2) throw lsaError(LsaErrorReason.BAD_LINK, `link ${i}: expected [peer, cost]`)
    links.push({ peer: l[0] as string, cost: l[1] as number })
  }
  const sorted = checkLinks(origin, links)
  for (let i = 0; i < sorted.length; i++) {
    if (sorted[i]!.peer !== links[i]!.peer) throw lsaError(LsaErrorReason.NON_CANONICAL, 'links are not sorted by peer id')
  }
  // One spelling per advertisement: the body must re-encode to itself.
  if (!bytesEqual(packr.pack(inner), body)) throw lsaError(LsaErrorReason.NON_CANONICAL, 'body is not in canonical msgpack form')
  return Object.freeze({ origin, seq, links: Object.freeze(sorted), ageMs, body, sig })
}

function bytesEqual (a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/** True when two link lists say the same (same peers, same costs, same order). */
export function sameLinks (a: readonly LsaLink[], b: readonly LsaLink[]): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i]!.peer !== b[i]!.peer || a[i]!.cost !== b[i]!.cost) return false
  return true
}
