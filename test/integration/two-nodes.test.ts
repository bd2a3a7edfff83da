import { describe, it, expect, afterEach } from 'vitest'
import { MeshError } from '../../dist/src/index.js'
import { makeMesh, makePair, closeAll, waitFor, collect, until } from '../helpers/mesh.js'

afterEach(closeAll)

describe('two nodes over real sockets', () => {
  it('link through a handshake: ids, addresses, peers(), peer:up on both sides', async () => {
    const b = await makeMesh()
    const a = await makeMesh()
    expect(a.id).toMatch(/^[a-z2-7]{52}$/)
    expect(b.addresses[0]).toMatch(/^ws:\/\/127\.0\.0\.1:\d+$/)
    const bUp = waitFor(b, 'peer:up')
    const info = await a.connect(b.addresses[0] as string)
    expect(info).toMatchObject({ id: b.id, direction: 'outbound', state: 'healthy', address: b.addresses[0] })
    expect(await bUp).toMatchObject({ id: a.id, direction: 'inbound', state: 'healthy' })
    expect(a.peers().map((p) => p.id)).toEqual([b.id])
    expect(b.peers()).toMatchObject([{ id: a.id, lanes: ['control', 'priority', 'bulk'] }])
  })

  it('delivers messages in order, once, both directions', async () => {
    const [a, b] = await makePair()
    const N = 20_000
    const atB = collect(b, N)
    const atA = collect(a, N)
    for (let i = 0; i < N; i++) {
      void a.send(b.id, i)
      void b.send(a.id, { i })
    }
    const got = await atB
    expect(got.map((m) => m.payload)).toEqual(Array.from({ length: N }, (_, i) => i))
    expect(got.every((m) => m.from === a.id)).toBe(true)
    expect(new Set(got.map((m) => m.id)).size).toBe(N)
    expect((await atA).map((m) => m.payload.i)).toEqual(Array.from({ length: N }, (_, i) => i))
  })

  it('carries any msgpack value: objects, strings, numbers, bytes, arrays, Maps, Dates', async () => {
    const [a, b] = await makePair()
    const values: unknown[] = [
      { nested: { x: [1, 2, { y: 'z' }] } }, 'a string', 42, -1.5, 2 ** 53 - 1, null, true,
      new Uint8Array([1, 2, 3]), Buffer.from('buf'), [1, 'two', null], new Map<unknown, unknown>([['k', 1], [2, 'v']]),
      new Date(1_700_000_000_000), '', new Uint8Array(0), { big: 'x'.repeat(100_000) },
    ]
    const got = collect(b, values.length)
    for (const v of values) await a.send(b.id, v)
    const payloads = (await got).map((m) => m.payload)
    expect(payloads[7]).toBeInstanceOf(Uint8Array)
    expect(Buffer.from(payloads[7]).equals(Buffer.from([1, 2, 3]))).toBe(true)
    expect(Buffer.from(payloads[8]).toString()).toBe('buf')
    expect(payloads[10]).toBeInstanceOf(Map)
    expect(payloads[10].get(2)).toBe('v')
    expect(payloads[11]).toBeInstanceOf(Date)
    expect(payloads[11].getTime()).toBe(1_700_000_000_000)
    expect(payloads.filter((_, i) => ![7, 8, 13].includes(i))).toEqual(values.filter((_, i) => ![7, 8, 13].includes(i)))
    expect(payloads[13].length).toBe(0)
  })

  it('borrowPayloads: 8–64 KiB byte payloads are lent to the listeners (right bytes, empty after they return); others are the application\'s', async () => {
    const [a, b] = await makePair({}, { borrowPayloads: true })
    const sizes = [100, 8 * 1024 - 1, 8 * 1024, 20_000, 64 * 1024, 200_000]
    const sent = sizes.map((n, k) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + k) & 0xff)))
    const seen: Array<{ copy: Buffer; kept: Buffer }> = []
    b.on('message', (m) => {
      if (!Buffer.isBuffer(m.payload)) return
      seen.push({ copy: Buffer.from(m.payload), kept: m.payload })
    })
    // A throwing listener must not leave a payload lent: the next messages still arrive intact.
    let threw = 0
    const boom = (m: { payload: unknown }): void => { if (threw === 0 && Buffer.isBuffer(m.payload) && m.payload.length === 20_000) { threw++; throw new Error('listener failure') } }
    b.on('message', boom)
    const uncaught: Error[] = []
    const onUncaught = (e: Error): void => { uncaught.push(e) }
    process.prependListener('uncaughtException', onUncaught)
    try {
      for (const p of sent) await a.send(b.id, p)
      await a.send(b.id, { obj: 'x'.repeat(20_000) })
      await until(() => seen.length === sizes.length, { label: () => `${seen.length}/${sizes.length} byte messages` })
    } finally {
      process.removeListener('uncaughtException', onUncaught)
      b.off('message', boom)
    }
    expect(threw).toBe(1)
    expect(uncaught.map((e) => e.message)).toEqual(['listener failure'])
    // Every listener saw the exact bytes sent.
    expect(seen.map((s) => s.copy.equals(sent[seen.indexOf(s)] as Buffer))).toEqual(sizes.map(() => true))
    // Lent ones (8 KiB..64 KiB, one frame) read empty now; smaller and chunked ones are kept intact.
    expect(seen.map((s) => s.kept.length)).toEqual([100, 8 * 1024 - 1, 0, 0, 0, 200_000])
    expect(seen[0]?.kept.equals(sent[0] as Buffer)).toBe(true)
    expect(seen[5]?.kept.equals(sent[5] as Buffer)).toBe(true)
  })

  it('borrowPayloads: a lent payload passed to send() inside the listener arrives intact (send copies before it returns)', async () => {
    const [a, b] = await makePair({}, { borrowPayloads: true })
    b.on('message', (m) => { void b.send(m.from, m.payload) })
    const sent = Array.from({ length: 20 }, (_, k) => Buffer.alloc(16_384 + k * 2048, k + 1))
    const back = collect(a, sent.length)
    for (const p of sent) void a.send(b.id, p)
    const got = (await back).map((m) => m.payload as Buffer)
    expect(got.map((p, k) => p.equals(sent[k] as Buffer))).toEqual(sent.map(() => true))
  })

  it('lanes arrive as sent', async () => {
    const [a, b] = await makePair()
    const got = collect(b, 2)
    await a.send(b.id, 1, { lane: 'bulk' })
    await a.send(b.id, 2)
    expect((await got).map((m) => m.lane)).toEqual(['bulk', 'priority'])
  })

  it('errors: UNKNOWN_PEER, PAYLOAD_TOO_LARGE, bad lane, CLOSED after close', async () => {
    const [a, b] = await makePair({ maxMessageBytes: 64 * 1024 })
    await expect(a.send('x'.repeat(52), 1)).rejects.toMatchObject({ code: 'UNKNOWN_PEER' })
    const big = a.send(b.id, new Uint8Array(64 * 1024 + 1))
    await expect(big).rejects.toBeInstanceOf(MeshError)
    await expect(big).rejects.toMatchObject({ code: 'PAYLOAD_TOO_LARGE' })
    await expect(a.send(b.id, 1, { lane: 'nope' as 'bulk' })).rejects.toMatchObject({ code: 'INVALID_OPTIONS' })
    await a.close()
    await expect(a.send(b.id, 1)).rejects.toMatchObject({ code: 'CLOSED' })
  })

  it('close() is graceful: queued messages are flushed first, peers see peer:down; idempotent', async () => {
    const [a, b] = await makePair()
    const N = 30_000
    const got = collect(b, N)
    const down = waitFor(b, 'peer:down')
    const sends: Array<Promise<string>> = []
    for (let i = 0; i < N; i++) sends.push(a.send(b.id, i))
    await Promise.all(sends)
    const c1 = a.close()
    const c2 = a.close()
    await Promise.all([c1, c2])
    const msgs = await got
    expect(msgs.map((m) => m.payload)).toEqual(Array.from({ length: N }, (_, i) => i))
    expect(await down).toMatchObject({ id: a.id, state: 'disconnected' })
    await a.close() // again: a no-op
  })

  it('the host main thread holds no TCP handle of the mesh', async () => {
    const before = process.getActiveResourcesInfo().filter((r) => /TCP/i.test(r)).length
    const [a, b] = await makePair()
    await a.send(b.id, 'x')
    await waitFor(b, 'message')
    const tcp = process.getActiveResourcesInfo().filter((r) => /TCP/i.test(r))
    expect(tcp.length).toBe(before)
  })

  it('pinned bootstrap id: the right id links, a wrong id is refused (id-mismatch)', async () => {
    const b = await makeMesh()
    const other = await makeMesh()
    const a = await makeMesh()
    await expect(a.connect(`${other.id}@${b.addresses[0]}`)).rejects.toMatchObject({ code: 'PROTOCOL', message: expect.stringMatching(/expected peer .* but the address is held by/) })
    expect(a.peers().filter((p) => p.state === 'healthy')).toEqual([])
    const ok = await a.connect(`${b.id}@${b.addresses[0]}`)
    expect(ok.id).toBe(b.id)
  })

  it('bootstrap option dials at start', async () => {
    const b = await makeMesh()
    const up = waitFor(b, 'peer:up')
    const a = await makeMesh({ bootstrap: [`${b.id}@${b.addresses[0]}`] })
    expect((await up).id).toBe(a.id)
  })

  it('a dial-only node (listen: false) links and exchanges messages', async () => {
    const b = await makeMesh()
    const a = await makeMesh({ listen: false })
    expect(a.addresses).toEqual([])
    // Listen before dialing: b's peer:up may come before connect() resolves (waiting
    // for it afterwards cost a 5 s timeout in most runs).
    const bUp = waitFor(b, 'peer:up', { label: 'b sees a' })
    await a.connect(b.addresses[0] as string)
    const got = collect(a, 1)
    expect((await bUp).id).toBe(a.id)
    await b.send(a.id, 'hello dial-only')
    expect((await got)[0].payload).toBe('hello dial-only')
  })

  it('connect() to nothing rejects with a clear error', async () => {
    const a = await makeMesh()
    await expect(a.connect('ws://127.0.0.1:1')).rejects.toMatchObject({ code: 'NO_ROUTE' })
    await expect(a.connect('http://x')).rejects.toMatchObject({ code: 'INVALID_OPTIONS' })
  })

  it('createMesh rejects bad options with INVALID_OPTIONS naming the option', async () => {
    const { createMesh } = await import('../../dist/src/index.js')
    await expect(createMesh({ heartbeat: { intervalMs: -5 } })).rejects.toMatchObject({ code: 'INVALID_OPTIONS', message: expect.stringContaining('options.heartbeat.intervalMs') })
    await expect(createMesh({ listen: 'http://x:1' })).rejects.toMatchObject({ code: 'INVALID_OPTIONS', message: expect.stringContaining('options.listen') })
    await expect(createMesh({ hearbeat: {} } as never)).rejects.toMatchObject({ code: 'INVALID_OPTIONS', message: expect.stringContaining('hearbeat') })
  })
})
