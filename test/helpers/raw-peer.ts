// A hand-driven protocol peer over a raw `ws` socket: for feeding a node bad
// frames, wrong versions and half handshakes.
import { randomBytes, sign, verify, createPublicKey } from 'node:crypto'
import { WebSocket } from 'ws'
import { Handshake, type HandshakeAction } from '../../dist/src/handshake/handshake.js'
import { encodeFrame } from '../../dist/src/codec/encode.js'
import { decodeFrames } from '../../dist/src/codec/decode.js'
import { base32Decode } from '../../dist/src/identity/peer-id.js'
import type { Frame } from '../../dist/src/codec/frame.js'
import { seededPeer } from './ed25519.js'
import { until } from './mesh.js'

export interface RawPeer {
  ws: WebSocket
  id: string
  frames: Frame[]
  closed: Promise<{ code: number; reason: string }>
}

export function keypair (): { id: string; sign: (d: Uint8Array) => Uint8Array } {
  const { id, privateKey } = seededPeer()
  return { id, sign: (d) => new Uint8Array(sign(null, d, privateKey)) }
}

export function verifyBy (peerId: string, data: Uint8Array, sig: Uint8Array): boolean {
  try {
    const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(base32Decode(peerId)).toString('base64url') }, format: 'jwk' })
    return verify(null, data, key, sig)
  } catch { return false }
}

/** Open a raw socket (no handshake yet). */
export async function rawConnect (url: string, maxPayload?: number): Promise<RawPeer> {
  const ws = new WebSocket(url, maxPayload === undefined ? {} : { maxPayload })
  const frames: Frame[] = []
  ws.on('message', (d: Buffer) => { try { frames.push(...decodeFrames(new Uint8Array(d))) } catch { /* test reads frames it expects */ } })
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    ws.on('close', (code, reason) => { resolve({ code, reason: reason.toString() }) })
  })
  ws.on('error', () => {})
  await new Promise<void>((resolve, reject) => { ws.once('open', () => { resolve() }); ws.once('error', reject) })
  return { ws, id: '', frames, closed }
}

/** Complete a real handshake as dialer; resolves the peer with its (fresh) id. */
export async function rawHandshake (url: string, o: { versions?: number[]; me?: ReturnType<typeof keypair> } = {}): Promise<RawPeer & { result: HandshakeAction[] }> {
  const p = await rawConnect(url)
  // `me`: the same identity again (a peer that restarted).
  const me = o.me ?? keypair()
  const hs = new Handshake({
    role: 'dialer', selfId: me.id, sign: me.sign, verify: verifyBy, nonce: randomBytes(32),
    versions: o.versions ?? [1], features: ['batch', 'raw-payload'], listen: [], deadline: Date.now() + 5000,
  })
  const out: HandshakeAction[] = []
  const run = (actions: HandshakeAction[]): void => {
    for (const a of actions) {
      out.push(a)
      if (a.kind === 'send') p.ws.send(encodeFrame(a.frame))
      if (a.kind === 'decide') run(hs.decide())
    }
  }
  const done = new Promise<void>((resolve) => {
    p.ws.on('message', (d: Buffer) => {
      let fs: Frame[] = []
      try { fs = decodeFrames(new Uint8Array(d)) } catch { return }
      for (const f of fs) run(hs.handle(f))
      if (hs.done) resolve()
    })
    void p.closed.then(() => { resolve() })
  })
  run(hs.start())
  await done
  return { ...p, id: me.id, result: out }
}

/**
 * A raw protocol peer linked to `mesh` (dialed at its first address): waits
 * until the mesh counts it as a healthy peer. `me`: as for {@link rawHandshake}.
 */
export async function rawPeerOf (mesh: { addresses: readonly string[]; peers (): Array<{ id: string; state: string }> }, o: { me?: ReturnType<typeof keypair> } = {}): Promise<RawPeer & { result: HandshakeAction[] }> {
  const raw = await rawHandshake(mesh.addresses[0] as string, o)
  await until(() => mesh.peers().some((p) => p.id === raw.id && p.state === 'healthy'), { label: 'raw peer up' })
  return raw
}
