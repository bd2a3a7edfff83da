import { describe, it, expect, afterEach } from 'vitest'
import { mkdtemp, stat, rm, readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createServer, type Server, type Socket } from 'node:net'
import { MeshError } from '../../dist/src/index.js'
import { IO_WORKER_YOUNG_GENERATION_MB } from '../../dist/src/supervisor/supervisor.js'
import { makeMesh, closeAll, waitFor, collect, until } from '../helpers/mesh.js'

afterEach(closeAll)

/** A TCP listener that accepts and never answers (a peer whose HTTP upgrade hangs). */
async function silentServer (): Promise<{ url: string; accepted: Promise<void>; close: () => void }> {
  const socks: Socket[] = []
  let onAccept = (): void => {}
  const accepted = new Promise<void>((resolve) => { onAccept = resolve })
  const server: Server = createServer((s) => { socks.push(s); s.on('error', () => {}); onAccept() })
  await new Promise<void>((resolve) => { server.listen(0, '127.0.0.1', resolve) })
  const port = (server.address() as { port: number }).port
  return { url: `ws://127.0.0.1:${port}`, accepted, close: () => { for (const s of socks) s.destroy(); server.close() } }
}

async function restarts (m: { metrics: () => Promise<string> }): Promise<number> {
  const line = (await m.metrics()).split('\n').find((l) => l.startsWith('meshwork_worker_restarts_total'))
  return Number(line?.split(' ').at(-1) ?? NaN)
}

describe('supervisor', () => {
  it('a dial whose socket is still connecting at the handshake deadline fails with TIMEOUT; the IO worker lives on', async () => {
    const silent = await silentServer()
    try {
      const a = await makeMesh({ handshakeTimeoutMs: 200 })
      const b = await makeMesh()
      // Before the fix the deadline queued a REJECT on the CONNECTING socket: ws.send threw and killed the worker.
      await expect(a.connect(silent.url)).rejects.toMatchObject({ code: 'TIMEOUT' })
      await a.connect(b.addresses[0] as string)
      expect(await restarts(a)).toBe(0)
    } finally { silent.close() }
  })

  it('a call in flight to an IO worker that dies settles (CLOSED) instead of hanging', async () => {
    const silent = await silentServer()
    try {
      const a = await makeMesh({ handshakeTimeoutMs: 30_000 })
      const pending = a.connect(silent.url)
      const settled = pending.then(() => 'resolved', (err: unknown) => err)
      await silent.accepted // the worker's socket reached the server: the dial is in flight there
      a._crashIoWorker(0)
      const r = await Promise.race([settled, new Promise((resolve) => setTimeout(() => { resolve('still pending') }, 5000))])
      expect(r).toBeInstanceOf(MeshError)
      expect(r).toMatchObject({ code: 'CLOSED', details: { reason: 'worker-exit' } })
    } finally { silent.close() }
  })

  it('restarts a crashed IO worker; its outbound peers are re-linked and traffic resumes', async () => {
    const b = await makeMesh()
    const a = await makeMesh()
    await a.connect(b.addresses[0] as string)
    const aDown = waitFor(a, 'peer:down', { label: 'a sees b down' })
    const aUp = waitFor(a, 'peer:up', { label: 'a re-links b', timeoutMs: 10_000 })
    const bUp = waitFor(b, 'peer:up', { label: 'b re-links a', timeoutMs: 10_000 })
    a._crashIoWorker(0)
    expect((await aDown).id).toBe(b.id)
    expect((await aUp).id).toBe(b.id)
    await bUp
    const got = collect(b, 100)
    for (let i = 0; i < 100; i++) void a.send(b.id, i)
    expect((await got).map((m) => m.payload)).toEqual([...Array(100).keys()])
    const back = collect(a, 1)
    await b.send(a.id, 'back')
    expect((await back)[0].payload).toBe('back')
    // The restarted worker gets the same heap limits as the first (see the next test).
    expect((await a._ioStats())[0]!.youngGenerationMb).toBe(IO_WORKER_YOUNG_GENERATION_MB)
  })

  it('runs every IO worker with a small young generation (frequent cheap scavenges free its socket Buffers before a full GC is due)', async () => {
    const m = await makeMesh({ threads: { io: 2 } })
    const st = await m._ioStats()
    expect(st).toHaveLength(2)
    for (const s of st) expect(s.youngGenerationMb).toBe(IO_WORKER_YOUNG_GENERATION_MB)
    expect(IO_WORKER_YOUNG_GENERATION_MB).toBeGreaterThan(0)
    expect(IO_WORKER_YOUNG_GENERATION_MB).toBeLessThanOrEqual(4)
  })

  it('a restarted IO worker keeps listening on the same address', async () => {
    const b = await makeMesh()
    const addr = b.addresses[0] as string
    const a = await makeMesh()
    await a.connect(addr)
    const down = waitFor(a, 'peer:down')
    b._crashIoWorker(0)
    await down
    const c = await makeMesh()
    // Worker restart is quick but not instant: retry the dial until it is bound again.
    const deadline = Date.now() + 5000
    for (;;) {
      try { await c.connect(addr); break } catch (err) { if (Date.now() > deadline) throw err }
      await new Promise((resolve) => setImmediate(resolve))
    }
    expect(c.peers()[0]?.id).toBe(b.id)
  })

  it('with dataDir the identity is created once (0600) and reused', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'meshwork-id-'))
    try {
      const m1 = await makeMesh({ dataDir: dir })
      const id = m1.id
      await m1.close()
      const st = await stat(join(dir, 'identity.key'))
      expect(st.mode & 0o777).toBe(0o600)
      const m2 = await makeMesh({ dataDir: dir })
      expect(m2.id).toBe(id)
      const m3 = await makeMesh()
      expect(m3.id).not.toBe(id)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})

describe('one node per dataDir', () => {
  it('a second mesh on a dataDir in use is refused (INVALID_OPTIONS naming it) and starts once the first closed; so does one after a destroy()', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'meshwork-lock-'))
    try {
      const m1 = await makeMesh({ dataDir: dir })
      const err = await makeMesh({ dataDir: dir }).then(() => undefined, (e: unknown) => e)
      expect(err).toBeInstanceOf(MeshError)
      expect((err as MeshError).code).toBe('INVALID_OPTIONS')
      expect((err as MeshError).message).toContain('options.dataDir')
      expect((err as MeshError).message).toContain('in use')
      // The refused attempt changed nothing: m1 still works and keeps its lock.
      await stat(join(dir, 'meshwork.lock'))
      await m1.close()
      await expect(stat(join(dir, 'meshwork.lock'))).rejects.toThrow()
      const m2 = await makeMesh({ dataDir: dir })
      expect(m2.id).toBe(m1.id)
      await m2.destroy()
      const m3 = await makeMesh({ dataDir: dir })
      expect(m3.id).toBe(m1.id)
      // A start that fails (its listen address is taken) lets go of the directory too.
      await m3.close()
      const other = await makeMesh()
      const err2 = await makeMesh({ dataDir: dir, listen: other.addresses[0] as string }).then(() => undefined, (e: unknown) => e)
      expect(err2).toBeInstanceOf(MeshError)
      await expect(stat(join(dir, 'meshwork.lock'))).rejects.toThrow()
      expect((await makeMesh({ dataDir: dir })).id).toBe(m1.id)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('a node whose lock another process took over (it judged ours stale) stops at its next refresh: error CLOSED, and the other\'s lock stays', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'meshwork-lock-'))
    try {
      const m = await makeMesh({ dataDir: dir })
      const errors: MeshError[] = []
      // A common handler: close on error (the node is stopping already: the close joins that stop).
      m.on('error', (e) => { errors.push(e); void m.close() })
      const file = join(dir, 'meshwork.lock')
      // What a contender on another host (a shared volume) writes once ours is 30 s untouched.
      const theirs = `${JSON.stringify({ pid: 4242, host: 'other-host', token: 'theirs' })}\n`
      await rm(file)
      await writeFile(file, theirs)
      // The router worker checks every LOCK_REFRESH_MS (10 s).
      await until(() => errors.length > 0, { timeoutMs: 25_000, label: 'the lost lock reported' })
      expect(errors[0]?.code).toBe('CLOSED')
      expect(errors[0]?.message).toBe(`dataDir lock lost: ${file} is now held by process 4242 on host other-host; this node stops (one node per dataDir)`)
      await until(async () => await m.send(m.id, 'x').then(() => false, (e: MeshError) => e.code === 'CLOSED'), { label: 'sends refused (CLOSED) once stopped' })
      await m.close() // idempotent after the stop
      expect(await readFile(file, 'utf8')).toBe(theirs)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  }, 40_000)
})

describe('inbound gate (messages wait until createMesh() resolved)', () => {
  it('records in the inbound ring are dispatched only after openInbound()', async () => {
    const { Supervisor } = await import('../../dist/src/supervisor/supervisor.js')
    const { resolveOptions, toWorkerConfig } = await import('../../dist/src/options.js')
    const { generateIdentity } = await import('../../dist/src/identity/identity.js')
    const { createLogger } = await import('../../dist/src/observability/logger.js')
    const id = generateIdentity()
    const dispatched: number[] = []
    const sup = new Supervisor({
      selfId: id.id,
      identityDer: id.privateDer,
      config: toWorkerConfig(resolveOptions({ listen: false, logger: false })),
      listen: [],
      ioThreads: 1,
      ringBytes: 4 * 1024 * 1024,
      logger: createLogger(false),
      logLevel: 'info',
      host: {
        ringFor: () => { throw new Error('no peers in this test') },
        dispatch: (_slot, rec) => { dispatched.push(rec[0] ?? -1) },
        workerLost: () => {},
        workerRestarted: () => {},
        membership: { routes: () => {}, status: () => {}, member: () => {}, lockLost: () => {}, lockRecreated: () => {}, forgotten: () => true },
      },
    })
    try {
      await sup.start()
      // What an IO worker writes while the host's createMesh() is still starting (written from
      // here: this worker has no peers, so it writes nothing itself meanwhile).
      expect(sup.slots[0]!.inbound.tryWrite(new Uint8Array([7, 0, 0, 0, 0, 0, 0, 0]))).toBe(true)
      // Absence needs turns of the loop, not a sleep: an open read loop drains the ring within a
      // few (the write's notify resolves its wait as a task), so without the gate this fails.
      for (let i = 0; i < 10; i++) await new Promise((resolve) => { setImmediate(resolve) })
      expect(dispatched).toEqual([])
      sup.openInbound()
      await until(() => dispatched.length === 1, { label: 'the record dispatched once the gate opened' })
      expect(dispatched).toEqual([7])
    } finally {
      await sup.destroy()
    }
  })
})
