import { describe, it, expect, afterEach } from 'vitest'
import { makeMesh, closeAll, waitFor, collect } from '../helpers/mesh.js'
import { rawConnect } from '../helpers/raw-peer.js'
import { encodeFrame, encodeControl } from '../../dist/src/index.js'
import { randomBytes } from 'node:crypto'

afterEach(closeAll)

const KEY = 'correct horse battery staple'

describe('admission', () => {
  it('allow list: a listed peer links, an unlisted one is refused (UNAUTHORIZED) and counted; the established link carries on', async () => {
    const a = await makeMesh()
    const c = await makeMesh()
    const b = await makeMesh({ allow: [a.id] })
    await a.connect(b.addresses[0] as string)
    const refused = c.connect(b.addresses[0] as string)
    await expect(refused).rejects.toMatchObject({ code: 'UNAUTHORIZED', message: expect.stringContaining('allow list') })
    const stats = await (b as any)._ioStats()
    expect(stats[0].refusedHandshakes.unauthorized).toBeGreaterThanOrEqual(1)
    expect(b.peers().map((p) => p.id)).toEqual([a.id])
    const got = collect(b, 1)
    await a.send(b.id, 'still linked')
    expect((await got)[0].payload).toBe('still linked')
  })

  it('allow list binds the dialer too: it refuses to link with a peer outside its list', async () => {
    const b = await makeMesh()
    const other = await makeMesh()
    const a = await makeMesh({ allow: [other.id] })
    await expect(a.connect(b.addresses[0] as string)).rejects.toMatchObject({ code: 'UNAUTHORIZED' })
    expect(a.peers().filter((p) => p.state === 'healthy')).toEqual([])
  })

  it('the refused side hears UNAUTHORIZED through `error` when no caller is waiting (inbound refusal)', async () => {
    // b dials a; a's allow list admits b, but b's allow list does not admit a: b refuses during the handshake,
    // and a — the refused side, with no connect() call of its own — gets an `error` event.
    const a0 = await makeMesh()
    const b = await makeMesh({ allow: [a0.id] })
    const a = await makeMesh({ allow: [b.id] })
    const errored = waitFor(a, 'error', { timeoutMs: 5000 })
    await expect(b.connect(a.addresses[0] as string)).rejects.toMatchObject({ code: 'UNAUTHORIZED' })
    expect(await errored).toMatchObject({ code: 'UNAUTHORIZED' })
  })

  it('mesh key: nodes with the key link; a wrong key or no key is refused', async () => {
    const b = await makeMesh({ meshKey: KEY })
    const a = await makeMesh({ meshKey: KEY })
    await a.connect(b.addresses[0] as string)
    expect(a.peers()[0]?.state).toBe('healthy')
    const wrong = await makeMesh({ meshKey: 'a different key of some length' })
    await expect(wrong.connect(b.addresses[0] as string)).rejects.toMatchObject({ code: 'UNAUTHORIZED', message: expect.stringContaining('mesh key') })
    const none = await makeMesh()
    await expect(none.connect(b.addresses[0] as string)).rejects.toMatchObject({ code: 'UNAUTHORIZED' })
    // A keyed node also refuses to join a mesh that cannot prove the key.
    const open = await makeMesh()
    await expect(a.connect(open.addresses[0] as string)).rejects.toMatchObject({ code: 'UNAUTHORIZED' })
  })

  it('the mesh key never crosses the wire in clear', async () => {
    const b = await makeMesh({ meshKey: KEY, handshakeTimeoutMs: 500 })
    const raw = await rawConnect(b.addresses[0] as string)
    const seen: Buffer[] = []
    raw.ws.on('message', (d: Buffer) => { seen.push(Buffer.from(d)) })
    const { keypair } = await import('../helpers/raw-peer.js')
    raw.ws.send(encodeFrame({ version: 1, type: 1, lane: 0, flags: 0, src: null, dst: null, stream: 0, seq: 0, payload: encodeControl({ versions: [1], features: [], id: keypair().id, nonce: randomBytes(32), listen: [] }) }))
    await raw.closed // no AUTH from us: the handshake times out or we close; either way we saw WELCOME
    const all = Buffer.concat(seen)
    expect(raw.frames.some((f) => f.type === 2)).toBe(true) // the WELCOME, with its key proof
    expect(all.length).toBeGreaterThan(0)
    expect(all.includes(Buffer.from(KEY))).toBe(false)
  })

  it("join 'closed': an unknown node cannot connect in; the closed node may still dial out", async () => {
    const b = await makeMesh({ join: 'closed', handshakeTimeoutMs: 1000 })
    const a = await makeMesh()
    await expect(a.connect(b.addresses[0] as string)).rejects.toMatchObject({ code: 'UNAUTHORIZED', message: expect.stringContaining("'closed'") })
    const c = await makeMesh()
    const info = await b.connect(c.addresses[0] as string)
    expect(info.id).toBe(c.id)
  })
})
