import { describe, it, expect, afterEach } from 'vitest'
import { connect as tcpConnect } from 'node:net'
import { encodeFrame, encodeControl } from '../../dist/src/index.js'
import { makeMesh, makePair, closeAll, collect, until } from '../helpers/mesh.js'
import { rawConnect, rawHandshake, rawPeerOf, keypair } from '../helpers/raw-peer.js'

afterEach(closeAll)

const hello = (versions: number[]): Uint8Array => encodeFrame({
  version: 1, type: 1, lane: 0, flags: 0, src: null, dst: null, stream: 0, seq: 0,
  payload: encodeControl({ versions, features: ['batch'], id: keypair().id, nonce: new Uint8Array(32), listen: [] }),
})

/** A healthy pair keeps exchanging messages while the node is abused. */
async function stillServes (a: any, b: any): Promise<void> {
  const got = collect(b, 10)
  for (let i = 0; i < 10; i++) void a.send(b.id, i)
  expect((await got).map((m) => m.payload)).toEqual([...Array(10).keys()])
}

describe('bad input closes that connection only', () => {
  it('garbage before the handshake: closed with 1002, counted; other peers carry on', async () => {
    const [a, b] = await makePair()
    const raw = await rawConnect(b.addresses[0] as string)
    raw.ws.send(Buffer.from('this is not msgpack at all'))
    expect((await raw.closed).code).toBe(1002)
    await stillServes(a, b)
    const stats = await (b as any)._ioStats()
    expect(Object.values(stats[0].rejectedFrames as Record<string, number>).reduce((x, y) => x + y, 0)).toBeGreaterThanOrEqual(1)
  })

  it('a text message is a protocol error', async () => {
    const b = await makeMesh()
    const raw = await rawConnect(b.addresses[0] as string)
    raw.ws.send('hello')
    expect(await raw.closed).toMatchObject({ code: 1002, reason: expect.stringContaining('text-message') })
  })

  it('garbage after a completed handshake: closed with PROTOCOL, peer:down, node carries on', async () => {
    const [a, b] = await makePair()
    const raw = await rawHandshake(b.addresses[0] as string)
    expect(raw.result.some((x) => x.kind === 'established')).toBe(true)
    await until(() => b.peers().some((p) => p.id === raw.id && p.state === 'healthy'), { label: 'raw peer up' })
    raw.ws.send(Buffer.from([0x99, 0x01, 0x10, 0x01, 0x00, 0xc0, 0xc0, 0x00, 0x01])) // DATA frame cut before its payload
    expect((await raw.closed).code).toBe(1002)
    await until(() => b.peers().some((p) => p.id === raw.id && p.state === 'disconnected'), { label: 'raw peer down' })
    await stillServes(a, b)
  })

  it('a valid DATA frame from a raw peer is delivered; a handshake frame after the handshake is refused', async () => {
    const b = await makeMesh()
    const raw = await rawHandshake(b.addresses[0] as string)
    const got = collect(b, 1)
    raw.ws.send(encodeFrame({ version: 1, type: 16, lane: 1, flags: 4, src: null, dst: null, stream: 0, seq: 1, payload: new Uint8Array([1, 2, 3]) }))
    const [m] = await got
    expect(m.from).toBe(raw.id)
    expect([...m.payload]).toEqual([1, 2, 3])
    raw.ws.send(hello([1]))
    expect((await raw.closed).code).toBe(1002)
  })

  it('an oversized WebSocket message (over the 512 KiB batch limit) is closed with 1009', async () => {
    const [a, b] = await makePair({}, { maxMessageBytes: 16 * 1024 })
    const raw = await rawHandshake(b.addresses[0] as string)
    raw.ws.send(Buffer.alloc(600 * 1024))
    expect((await raw.closed).code).toBe(1009)
    await stillServes(a, b)
  })

  it('a frame whose payload exceeds maxMessageBytes (below the 64 KiB chunk size) is closed with 1009', async () => {
    const [a, b] = await makePair({}, { maxMessageBytes: 16 * 1024 })
    const raw = await rawHandshake(b.addresses[0] as string)
    raw.ws.send(encodeFrame({ version: 1, type: 16, lane: 1, flags: 4, src: null, dst: null, stream: 1, seq: 1, payload: new Uint8Array(20 * 1024) }))
    expect((await raw.closed).code).toBe(1009)
    await stillServes(a, b)
  })

  it('a HELLO with no common version is refused with a clear reason (close 4005)', async () => {
    const b = await makeMesh()
    const raw = await rawConnect(b.addresses[0] as string)
    raw.ws.send(hello([99, 100]))
    const closed = await raw.closed
    expect(closed.code).toBe(4005)
    const reject = raw.frames.find((f) => f.type === 5)
    expect(reject).toBeDefined()
    const { decodeControl } = await import('../../dist/src/index.js')
    expect(decodeControl(reject!.payload as Uint8Array)).toMatchObject({ reason: 'version', message: expect.stringMatching(/no common protocol version/) })
  })

  it('a connection that never completes the handshake is closed at handshakeTimeoutMs (4002)', async () => {
    const b = await makeMesh({ handshakeTimeoutMs: 300 })
    const raw = await rawConnect(b.addresses[0] as string)
    const t0 = Date.now()
    expect((await raw.closed).code).toBe(4002)
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250)
    expect(Date.now() - t0).toBeLessThan(3000)
  })

  it('an HTTP request that never upgrades is cut off; a plain GET gets 426', async () => {
    const b = await makeMesh({ handshakeTimeoutMs: 300 })
    const { port } = new URL(b.addresses[0] as string)
    const res = await fetch(`http://127.0.0.1:${port}/`)
    expect(res.status).toBe(426)
    // Half a request, then silence: the server must drop it.
    const sock = tcpConnect(Number(port), '127.0.0.1')
    sock.on('error', () => {})
    let reply = ''
    sock.on('data', (d: Buffer) => { reply += d.toString() }) // read, so 'end' and 'close' can happen
    sock.write('GET / HTTP/1.1\r\nHost: x\r\n')
    const t0 = Date.now()
    await new Promise<void>((resolve) => { sock.on('close', () => { resolve() }) })
    expect(Date.now() - t0).toBeLessThan(5000)
    expect(reply).toMatch(/^HTTP\/1\.1 40[08]/)
  })

  it('a burst of bad connections does not disturb an established peer', async () => {
    const [a, b] = await makePair()
    const raws = await Promise.all(Array.from({ length: 30 }, async () => await rawConnect(b.addresses[0] as string)))
    raws.forEach((r, i) => { r.ws.send(i % 2 === 0 ? Buffer.from([0xc1]) : hello([42])) })
    await Promise.all(raws.map(async (r) => await r.closed))
    await stillServes(a, b)
    expect(b.peers().filter((p) => p.state === 'healthy').map((p) => p.id)).toEqual([a.id])
  })

  it('a connection flood is capped: pending handshakes beyond the limit get 503, established peers carry on', async () => {
    const [a, b] = await makePair({}, { handshakeTimeoutMs: 5000 })
    const { WebSocket } = await import('ws')
    const flood: Array<InstanceType<typeof WebSocket>> = []
    // Open many sockets that upgrade but never say HELLO.
    const results = await Promise.all(Array.from({ length: 80 }, async () => await new Promise<'open' | number>((resolve) => {
      const ws = new WebSocket(b.addresses[0] as string)
      ws.on('open', () => { resolve('open') })
      ws.on('unexpected-response', (_req, res) => { resolve(res.statusCode ?? 0) })
      ws.on('error', () => {})
      flood.push(ws)
    })))
    const opened = results.filter((r) => r === 'open').length
    const refused = results.filter((r) => r === 503).length
    expect(opened).toBeLessThanOrEqual(64)
    expect(refused).toBeGreaterThanOrEqual(80 - 64)
    await stillServes(a, b)
    for (const ws of flood) ws.terminate()
  })
})

describe('payloads a peer got wrong', () => {
  it('a request, response, publication, subscription or message whose payload does not decode or has the wrong shape is dropped and counted; the host process lives on', async () => {
    const b = await makeMesh()
    const raw = await rawPeerOf(b)
    const got: unknown[] = []
    b.on('message', (m) => { got.push(m.payload) })
    let seq = 0
    // Types: DATA 16, REQUEST 35, RESPONSE 36, PUBLISH 37, SUBSCRIBE 38 (msgpack payloads unless RAW).
    const frame = (type: number, payload: Uint8Array | null): Uint8Array =>
      encodeFrame({ version: 1, type, lane: 1, flags: 0, src: null, dst: null, stream: 7, seq: ++seq, payload })
    raw.ws.send(Buffer.concat([
      frame(35, null), // a request with no payload
      frame(35, encodeControl(['not', 'a', 'request', 'tuple'])),
      frame(36, encodeControl('nope')),
      frame(37, encodeControl([42, 'topic must be a string'])),
      frame(38, encodeControl(['set', 5])),
      frame(16, Uint8Array.of(0xd9, 0x05, 0x61, 0x62)), // a str8 of 5 bytes with 2: truncated msgpack
      frame(16, encodeControl('fine')),
    ]))
    // The good message after them arrives on the same connection: nothing closed it.
    await until(() => got.length === 1, { label: () => `the good message delivered (discarded ${b._deliveryStats().discarded}, got ${JSON.stringify(got)})` })
    expect(got).toEqual(['fine'])
    expect(b._deliveryStats().discarded).toBe(6)
    // The host still serves its other peers.
    const a = await makeMesh()
    await a.connect(b.addresses[0] as string)
    await stillServes(a, b)
    raw.ws.terminate()
  })
})
