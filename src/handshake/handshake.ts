/**
 * The connection handshake, sans-IO (STYLE.md: quinn-proto): frames in, actions
 * out, time passed in explicitly. No sockets, no clock, no randomness of its own.
 *
 *   dialer                                   responder
 *   HELLO {versions, features, id, nonce} ─▶  pick version, check id  (decide: 'hello')
 *        ◀─ WELCOME {version, features, id, nonce, sig_r} | REJECT
 *   verify sig_r, check pinned id (decide: 'welcome')
 *   AUTH {sig_d}                          ─▶  verify sig_d           (decide: 'auth')
 *        ◀─ READY {} | REJECT
 *
 * Each signature covers both nonces, both ids, the chosen version and the
 * signer's role, so a transcript cannot be replayed or reflected and an id
 * cannot be claimed without its private key. `decide` hooks let the owner
 * apply admission rules and the duplicate-connection tie-break before any
 * application frame flows.
 */
import { FrameType, Lane, CloseCode, PROTOCOL_VERSION, type Frame } from '../codec/frame.js'
import { encodeControl, decodeControl } from '../codec/control.js'
import { isPeerId } from '../identity/peer-id.js'

export type HandshakeRole = 'dialer' | 'responder'

/** Why a handshake failed; stable strings, also sent in REJECT. */
export const RejectReason = {
  VERSION: 'version',
  BAD_SIGNATURE: 'bad-signature',
  ID_MISMATCH: 'id-mismatch',
  UNAUTHORIZED: 'unauthorized',
  DUPLICATE: 'duplicate',
  PROTOCOL: 'protocol',
  TIMEOUT: 'timeout',
  BUSY: 'busy',
  SELF: 'self',
} as const
export type RejectReason = typeof RejectReason[keyof typeof RejectReason]

const CLOSE_FOR: Record<RejectReason, number> = {
  version: CloseCode.VERSION,
  'bad-signature': CloseCode.HANDSHAKE_FAILED,
  'id-mismatch': CloseCode.HANDSHAKE_FAILED,
  unauthorized: CloseCode.UNAUTHORIZED,
  duplicate: CloseCode.DUPLICATE,
  protocol: CloseCode.PROTOCOL_ERROR,
  timeout: CloseCode.HANDSHAKE_TIMEOUT,
  busy: CloseCode.HANDSHAKE_FAILED,
  self: CloseCode.HANDSHAKE_FAILED,
}

/** What the owner must supply. */
export interface HandshakeConfig {
  role: HandshakeRole
  selfId: string
  sign: (data: Uint8Array) => Uint8Array
  verify: (peerId: string, data: Uint8Array, sig: Uint8Array) => boolean
  nonce: Uint8Array
  versions: readonly number[]
  features: readonly string[]
  /** Our advertised listen URLs (sent in HELLO/WELCOME; used by gossip later). */
  listen: readonly string[]
  /** Dialer only: the id the remote must prove (from '<peerId>@ws://…'). */
  expectedId?: string | undefined
  /** Absolute deadline (ms, caller's clock) for the whole handshake. */
  deadline: number
  /**
   * Mesh-key admission (join policy 'key'). With `prove`, this side proves it
   * knows the key (WELCOME / AUTH carry `keyProof`); with `required`, the peer
   * must prove it too, or the handshake fails 'unauthorized'. The key itself
   * never crosses the wire.
   */
  meshKey?: {
    prove: (role: HandshakeRole, transcript: Uint8Array) => Uint8Array
    verify: (role: HandshakeRole, transcript: Uint8Array, proof: unknown) => boolean
    required: boolean
  } | undefined
}

/** The result of a successful handshake. */
export interface HandshakeResult {
  peerId: string
  version: number
  features: string[]
  peerListen: string[]
}

export type DecideStage = 'hello' | 'welcome' | 'auth'

/** Outputs of the state machine, in order. */
export type HandshakeAction =
  | { kind: 'send'; frame: Frame }
  | { kind: 'decide'; peerId: string; stage: DecideStage }
  | { kind: 'established'; result: HandshakeResult }
  | { kind: 'failed'; reason: RejectReason; message: string; closeCode: number; remote: boolean; peerId?: string | undefined }

type State = 'init' | 'await-welcome' | 'decide-welcome' | 'await-hello' | 'decide-hello' | 'await-auth' | 'decide-auth' | 'await-ready' | 'done'

const TRANSCRIPT_TAG = new TextEncoder().encode('meshwork-handshake-v1')

export class Handshake {
  readonly #c: HandshakeConfig
  #state: State
  #peerId: string | undefined
  #peerNonce: Uint8Array | undefined
  #peerListen: string[] = []
  #version = 0
  #features: string[] = []

  constructor (config: HandshakeConfig) {
    this.#c = config
    this.#state = config.role === 'dialer' ? 'init' : 'await-hello'
  }

  get state (): State { return this.#state }
  get peerId (): string | undefined { return this.#peerId }
  get deadline (): number { return this.#c.deadline }
  get done (): boolean { return this.#state === 'done' }

  /** Dialer: the opening HELLO. */
  start (): HandshakeAction[] {
    if (this.#c.role !== 'dialer' || this.#state !== 'init') return []
    this.#state = 'await-welcome'
    return [this.#send(FrameType.HELLO, {
      versions: [...this.#c.versions],
      features: [...this.#c.features],
      id: this.#c.selfId,
      nonce: this.#c.nonce,
      listen: [...this.#c.listen],
    })]
  }

  /** Time passes: fail once the deadline is reached. */
  tick (now: number): HandshakeAction[] {
    if (this.#state === 'done' || now < this.#c.deadline) return []
    return this.#fail(RejectReason.TIMEOUT, `handshake not completed within its deadline (state ${this.#state})`, true)
  }

  /** A frame from the peer during the handshake. */
  handle (frame: Frame): HandshakeAction[] {
    if (this.#state === 'done') return []
    if (frame.type === FrameType.REJECT) {
      const body = safeDecode(frame.payload)
      const reason = isRejectReason(body?.reason) ? body.reason : RejectReason.PROTOCOL
      const message = typeof body?.message === 'string' ? body.message.slice(0, 500) : 'rejected'
      this.#state = 'done'
      return [{ kind: 'failed', reason, message: `peer refused the connection: ${message}`, closeCode: CLOSE_FOR[reason], remote: true, peerId: this.#peerId }]
    }
    switch (this.#state) {
      case 'await-hello': return frame.type === FrameType.HELLO ? this.#onHello(frame) : this.#unexpected(frame)
      case 'await-welcome': return frame.type === FrameType.WELCOME ? this.#onWelcome(frame) : this.#unexpected(frame)
      case 'await-auth': return frame.type === FrameType.AUTH ? this.#onAuth(frame) : this.#unexpected(frame)
      case 'await-ready': return frame.type === FrameType.READY ? this.#established() : this.#unexpected(frame)
      default: return this.#unexpected(frame)
    }
  }

  /** The owner's answer to a 'decide' action: undefined = go on, else refuse with that reason. */
  decide (refusal?: { reason: RejectReason; message: string }): HandshakeAction[] {
    const stage = this.#state
    if (stage !== 'decide-hello' && stage !== 'decide-welcome' && stage !== 'decide-auth') return []
    if (refusal !== undefined) return this.#fail(refusal.reason, refusal.message, true)
    if (stage === 'decide-hello') {
      this.#state = 'await-auth'
      return [this.#send(FrameType.WELCOME, {
        version: this.#version,
        features: this.#features,
        id: this.#c.selfId,
        nonce: this.#c.nonce,
        listen: [...this.#c.listen],
        sig: this.#c.sign(this.#transcript('responder')),
        ...this.#keyProof('responder'),
      })]
    }
    if (stage === 'decide-welcome') {
      this.#state = 'await-ready'
      return [this.#send(FrameType.AUTH, { sig: this.#c.sign(this.#transcript('dialer')), ...this.#keyProof('dialer') })]
    }
    this.#state = 'done'
    return [this.#send(FrameType.READY, {}), this.#result()]
  }

  #onHello (frame: Frame): HandshakeAction[] {
    const m = safeDecode(frame.payload)
    if (m === undefined || !isStringArray(m.features) || !isNumberArray(m.versions) || typeof m.id !== 'string' ||
        !(m.nonce instanceof Uint8Array) || m.nonce.length !== 32 || (m.listen !== undefined && !isStringArray(m.listen))) {
      return this.#fail(RejectReason.PROTOCOL, 'malformed HELLO', true)
    }
    if (!isPeerId(m.id)) return this.#fail(RejectReason.PROTOCOL, 'HELLO carries a malformed peer id', true)
    this.#peerId = m.id
    if (m.id === this.#c.selfId) return this.#fail(RejectReason.SELF, 'a node cannot connect to itself', true)
    const common = m.versions.filter((v) => this.#c.versions.includes(v))
    if (common.length === 0) {
      return this.#fail(RejectReason.VERSION,
        `no common protocol version: this node speaks [${this.#c.versions.join(', ')}], the peer offered [${m.versions.slice(0, 16).join(', ')}]`, true)
    }
    this.#version = Math.max(...common)
    this.#features = this.#c.features.filter((f) => (m.features as string[]).includes(f))
    this.#peerNonce = m.nonce
    this.#peerListen = (m.listen ?? []).slice(0, 16)
    this.#state = 'decide-hello'
    return [{ kind: 'decide', peerId: m.id, stage: 'hello' }]
  }

  #onWelcome (frame: Frame): HandshakeAction[] {
    const m = safeDecode(frame.payload)
    if (m === undefined || typeof m.version !== 'number' || !isStringArray(m.features) || typeof m.id !== 'string' ||
        !(m.nonce instanceof Uint8Array) || m.nonce.length !== 32 || !(m.sig instanceof Uint8Array) ||
        (m.listen !== undefined && !isStringArray(m.listen))) {
      return this.#fail(RejectReason.PROTOCOL, 'malformed WELCOME', true)
    }
    if (!isPeerId(m.id)) return this.#fail(RejectReason.PROTOCOL, 'WELCOME carries a malformed peer id', true)
    if (!this.#c.versions.includes(m.version)) {
      return this.#fail(RejectReason.VERSION, `peer chose protocol version ${m.version}, which this node does not speak`, true)
    }
    this.#peerId = m.id
    this.#version = m.version
    this.#features = this.#c.features.filter((f) => (m.features as string[]).includes(f))
    this.#peerNonce = m.nonce
    this.#peerListen = (m.listen ?? []).slice(0, 16)
    if (m.id === this.#c.selfId) return this.#fail(RejectReason.SELF, 'dialed our own address', true)
    if (!this.#c.verify(m.id, this.#transcript('responder'), m.sig)) {
      return this.#fail(RejectReason.BAD_SIGNATURE, `peer failed to prove the key of id ${m.id}`, true)
    }
    if (this.#c.expectedId !== undefined && this.#c.expectedId !== m.id) {
      return this.#fail(RejectReason.ID_MISMATCH, `expected peer ${this.#c.expectedId} but the address is held by ${m.id}`, true)
    }
    if (!this.#keyProofOk('responder', m.keyProof)) {
      return this.#fail(RejectReason.UNAUTHORIZED, `peer ${m.id} did not prove the mesh key`, true)
    }
    this.#state = 'decide-welcome'
    return [{ kind: 'decide', peerId: m.id, stage: 'welcome' }]
  }

  #onAuth (frame: Frame): HandshakeAction[] {
    const m = safeDecode(frame.payload)
    if (m === undefined || !(m.sig instanceof Uint8Array)) return this.#fail(RejectReason.PROTOCOL, 'malformed AUTH', true)
    if (!this.#c.verify(this.#peerId as string, this.#transcript('dialer'), m.sig)) {
      return this.#fail(RejectReason.BAD_SIGNATURE, `peer failed to prove the key of id ${this.#peerId}`, true)
    }
    if (!this.#keyProofOk('dialer', m.keyProof)) {
      return this.#fail(RejectReason.UNAUTHORIZED, `peer ${this.#peerId} did not prove the mesh key`, true)
    }
    this.#state = 'decide-auth'
    return [{ kind: 'decide', peerId: this.#peerId as string, stage: 'auth' }]
  }

  #established (): HandshakeAction[] {
    this.#state = 'done'
    return [this.#result()]
  }

  #result (): HandshakeAction {
    return { kind: 'established', result: { peerId: this.#peerId as string, version: this.#version, features: this.#features, peerListen: this.#peerListen } }
  }

  #unexpected (frame: Frame): HandshakeAction[] {
    return this.#fail(RejectReason.PROTOCOL, `unexpected frame type ${frame.type} during handshake (state ${this.#state})`, true)
  }

  #fail (reason: RejectReason, message: string, tell: boolean): HandshakeAction[] {
    this.#state = 'done'
    const out: HandshakeAction[] = []
    if (tell) out.push(this.#send(FrameType.REJECT, { reason, message, id: this.#c.selfId }))
    out.push({ kind: 'failed', reason, message, closeCode: CLOSE_FOR[reason], remote: false, peerId: this.#peerId })
    return out
  }

  #send (type: number, body: Record<string, unknown>): HandshakeAction {
    return {
      kind: 'send',
      frame: { version: PROTOCOL_VERSION, type, lane: Lane.CONTROL, flags: 0, src: null, dst: null, stream: 0, seq: 0, payload: encodeControl(body) },
    }
  }

  #keyProof (role: HandshakeRole): { keyProof?: Uint8Array } {
    const k = this.#c.meshKey
    return k === undefined ? {} : { keyProof: k.prove(role, this.#transcript(role)) }
  }

  #keyProofOk (role: HandshakeRole, proof: unknown): boolean {
    const k = this.#c.meshKey
    if (k === undefined || !k.required) return true
    return k.verify(role, this.#transcript(role), proof)
  }

  /** Bytes each side signs: tag ‖ role ‖ nonce_d ‖ nonce_r ‖ id_d ‖ id_r ‖ version. */
  #transcript (signer: HandshakeRole): Uint8Array {
    const dialerNonce = this.#c.role === 'dialer' ? this.#c.nonce : this.#peerNonce as Uint8Array
    const responderNonce = this.#c.role === 'dialer' ? this.#peerNonce as Uint8Array : this.#c.nonce
    const dialerId = this.#c.role === 'dialer' ? this.#c.selfId : this.#peerId as string
    const responderId = this.#c.role === 'dialer' ? this.#peerId as string : this.#c.selfId
    return Buffer.concat([
      TRANSCRIPT_TAG, Buffer.from([0, signer === 'dialer' ? 1 : 2]),
      dialerNonce, responderNonce,
      Buffer.from(`${dialerId}\0${responderId}\0${this.#version}`),
    ])
  }
}

function safeDecode (payload: Uint8Array | null): Record<string, any> | undefined {
  if (payload === null) return undefined
  try {
    const v = decodeControl(payload)
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? v as Record<string, any> : undefined
  } catch {
    return undefined
  }
}

function isStringArray (v: unknown): v is string[] {
  return Array.isArray(v) && v.length <= 64 && v.every((s) => typeof s === 'string' && s.length <= 256)
}
function isNumberArray (v: unknown): v is number[] {
  return Array.isArray(v) && v.length > 0 && v.length <= 64 && v.every((n) => Number.isInteger(n) && n >= 0)
}
function isRejectReason (v: unknown): v is RejectReason {
  return typeof v === 'string' && Object.values(RejectReason).includes(v as RejectReason)
}
