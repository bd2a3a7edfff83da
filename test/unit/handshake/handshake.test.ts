import { describe, it, expect } from 'vitest'
import { sign, verify, createPublicKey } from 'node:crypto'
import { seededPeer } from '../../helpers/ed25519.js'
import { Handshake, type HandshakeAction, type HandshakeConfig } from '../../../src/handshake/handshake.js'
import { base32Decode } from '../../../src/identity/peer-id.js'
import { FrameType, type Frame } from '../../../src/codec/frame.js'
import { encodeControl, decodeControl } from '../../../src/codec/control.js'
import { meshKeyProof, verifyMeshKeyProof } from '../../../src/identity/mesh-key.js'

const keyed = (key: string, required = true): HandshakeConfig['meshKey'] => {
  const k = Buffer.from(key)
  return { prove: (role, t) => meshKeyProof(k, role, t), verify: (role, t, p) => verifyMeshKeyProof(k, role, t, p), required }
}

function key (): { id: string; sign: (d: Uint8Array) => Uint8Array } {
  const { id, privateKey } = seededPeer()
  return { id, sign: (d) => new Uint8Array(sign(null, d, privateKey)) }
}
function verifyBy (id: string, d: Uint8Array, s: Uint8Array): boolean {
  const k = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(base32Decode(id)).toString('base64url') }, format: 'jwk' })
  try { return verify(null, d, k, s) } catch { return false }
}
const nonce = (b: number): Uint8Array => new Uint8Array(32).fill(b)

function pair (o: { dialer?: Partial<HandshakeConfig>; responder?: Partial<HandshakeConfig> } = {}) {
  const kd = key()
  const kr = key()
  const base = { verify: verifyBy, features: ['batch', 'raw-payload'], listen: [], deadline: 1000 }
  const d = new Handshake({ ...base, role: 'dialer', selfId: kd.id, sign: kd.sign, nonce: nonce(1), versions: [1], ...o.dialer })
  const r = new Handshake({ ...base, role: 'responder', selfId: kr.id, sign: kr.sign, nonce: nonce(2), versions: [1], ...o.responder })
  return { d, r, kd, kr }
}

/** Shuttle frames between the two machines (deciding "go on" everywhere) until quiet. */
function run (d: Handshake, r: Handshake, tamper?: (f: Frame) => Frame): { d: HandshakeAction[]; r: HandshakeAction[] } {
  const log = { d: [] as HandshakeAction[], r: [] as HandshakeAction[] }
  let toR: Frame[] = []
  let toD: Frame[] = []
  const take = (who: 'd' | 'r', actions: HandshakeAction[]): void => {
    for (const a of actions) {
      log[who].push(a)
      if (a.kind === 'send') (who === 'd' ? toR : toD).push(tamper === undefined ? a.frame : tamper(a.frame))
      if (a.kind === 'decide') take(who, (who === 'd' ? d : r).decide())
    }
  }
  take('d', d.start())
  while (toR.length > 0 || toD.length > 0) {
    const a = toR; toR = []
    for (const f of a) take('r', r.handle(f))
    const b = toD; toD = []
    for (const f of b) take('d', d.handle(f))
  }
  return log
}

const established = (a: HandshakeAction[]) => a.find((x) => x.kind === 'established')
const failed = (a: HandshakeAction[]) => a.find((x) => x.kind === 'failed') as Extract<HandshakeAction, { kind: 'failed' }> | undefined

describe('Handshake (sans-IO)', () => {
  it('establishes both sides with each other\'s proven id, the common version and features', () => {
    const { d, r, kd, kr } = pair({ responder: { features: ['batch', 'other'] } })
    const log = run(d, r)
    expect(established(log.d)).toMatchObject({ result: { peerId: kr.id, version: 1, features: ['batch'] } })
    expect(established(log.r)).toMatchObject({ result: { peerId: kd.id, version: 1, features: ['batch'] } })
  })

  it('negotiates the highest common version', () => {
    const { d, r } = pair({ dialer: { versions: [1, 2, 3] }, responder: { versions: [2, 3, 4] } })
    const log = run(d, r)
    expect(established(log.d)).toMatchObject({ result: { version: 3 } })
  })

  it('refuses a version with no overlap, with a clear reason on both sides', () => {
    const { d, r } = pair({ dialer: { versions: [99] } })
    const log = run(d, r)
    expect(failed(log.r)).toMatchObject({ reason: 'version', closeCode: 4005 })
    expect(failed(log.r)?.message).toMatch(/no common protocol version.*\[1\].*\[99\]/)
    expect(failed(log.d)).toMatchObject({ reason: 'version', remote: true })
  })

  it('dialer refuses a responder whose id differs from the pinned one', () => {
    const other = key()
    const { d, r } = pair({ dialer: { expectedId: other.id } })
    const log = run(d, r)
    expect(failed(log.d)).toMatchObject({ reason: 'id-mismatch' })
    expect(established(log.r)).toBeUndefined()
  })

  it('a responder that claims an id without its key fails the signature check', () => {
    const victim = key()
    const { d, r } = pair({ responder: { selfId: victim.id } }) // signs with its own key, claims victim's id
    const log = run(d, r)
    expect(failed(log.d)).toMatchObject({ reason: 'bad-signature' })
  })

  it('a dialer that claims an id without its key is refused by the responder', () => {
    const victim = key()
    const { d, r } = pair({ dialer: { selfId: victim.id } })
    const log = run(d, r)
    expect(failed(log.r)).toMatchObject({ reason: 'bad-signature' })
    expect(established(log.r)).toBeUndefined()
  })

  it('a replayed WELCOME signature (other nonces) fails', () => {
    const { d, r } = pair()
    // Change the responder nonce after it was signed: the dialer's transcript no longer matches.
    const log = run(d, r, (f) => {
      if (f.type !== FrameType.WELCOME || f.payload === null) return f
      const m = decodeControl(f.payload) as Record<string, unknown>
      return { ...f, payload: encodeControl({ ...m, nonce: nonce(9) }) }
    })
    expect(failed(log.d)).toMatchObject({ reason: 'bad-signature' })
  })

  it('decide() refusal sends REJECT and fails', () => {
    const { d, r } = pair()
    const out = r.handle((d.start()[0] as Extract<HandshakeAction, { kind: 'send' }>).frame)
    expect(out[0]).toMatchObject({ kind: 'decide', stage: 'hello' })
    const refused = r.decide({ reason: 'duplicate', message: 'already linked' })
    expect(refused[0]).toMatchObject({ kind: 'send', frame: { type: FrameType.REJECT } })
    expect(failed(refused)).toMatchObject({ reason: 'duplicate', closeCode: 4003 })
    const back = d.handle((refused[0] as Extract<HandshakeAction, { kind: 'send' }>).frame)
    expect(failed(back)).toMatchObject({ reason: 'duplicate', remote: true })
  })

  it('times out at the deadline, not before (time is an input)', () => {
    const { r } = pair()
    expect(r.tick(999)).toEqual([])
    expect(failed(r.tick(1000))).toMatchObject({ reason: 'timeout', closeCode: 4002 })
    expect(r.tick(2000)).toEqual([])
  })

  it('malformed HELLO and out-of-order frames fail as protocol errors', () => {
    const { r } = pair()
    const bad: Frame = { version: 1, type: FrameType.HELLO, lane: 0, flags: 0, src: null, dst: null, stream: 0, seq: 0, payload: encodeControl({ versions: 'x' }) }
    expect(failed(r.handle(bad))).toMatchObject({ reason: 'protocol' })
    const { r: r2 } = pair()
    expect(failed(r2.handle({ ...bad, type: FrameType.DATA }))).toMatchObject({ reason: 'protocol' })
  })

  it('refuses a connection to itself', () => {
    const k = key()
    const { d, r } = pair({ dialer: { selfId: k.id, sign: k.sign }, responder: { selfId: k.id, sign: k.sign } })
    const log = run(d, r)
    expect(failed(log.r)).toMatchObject({ reason: 'self' })
  })

  describe('mesh key', () => {
    it('both sides prove the same key: established', () => {
      const { d, r } = pair({ dialer: { meshKey: keyed('k'.repeat(16)) }, responder: { meshKey: keyed('k'.repeat(16)) } })
      const log = run(d, r)
      expect(established(log.d)).toBeDefined()
      expect(established(log.r)).toBeDefined()
    })

    it('a dialer with the wrong key is refused by the responder (unauthorized, 4004)', () => {
      const { d, r } = pair({ dialer: { meshKey: keyed('x'.repeat(16)) }, responder: { meshKey: keyed('k'.repeat(16)) } })
      const log = run(d, r)
      // The dialer checks the responder's proof first and refuses it.
      expect(failed(log.d)).toMatchObject({ reason: 'unauthorized', closeCode: 4004 })
    })

    it('a dialer without a key is refused by a responder that requires one', () => {
      const { d, r } = pair({ responder: { meshKey: keyed('k'.repeat(16)) } })
      const log = run(d, r)
      expect(failed(log.r)).toMatchObject({ reason: 'unauthorized' })
      expect(established(log.r)).toBeUndefined()
    })

    it('a proof is bound to the transcript: replaying it under other nonces fails', () => {
      const k = Buffer.from('k'.repeat(16))
      const proof = meshKeyProof(k, 'dialer', new Uint8Array([1, 2, 3]))
      expect(verifyMeshKeyProof(k, 'dialer', new Uint8Array([1, 2, 3]), proof)).toBe(true)
      expect(verifyMeshKeyProof(k, 'dialer', new Uint8Array([1, 2, 4]), proof)).toBe(false)
      expect(verifyMeshKeyProof(k, 'responder', new Uint8Array([1, 2, 3]), proof)).toBe(false)
      expect(verifyMeshKeyProof(k, 'dialer', new Uint8Array([1, 2, 3]), 'nope')).toBe(false)
    })
  })
})
