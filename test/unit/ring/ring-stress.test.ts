// Two-thread stress of the SPSC ring: a real worker_thread on the other end,
// a small ring so it wraps and fills constantly, every record checked for
// order and content. The worker runs the compiled ring from dist/ (Node 20
// cannot load .ts in a worker), so `npm run build` must have run (npm test
// does it in pretest); the main thread uses src/. Deadline-based, no sleeps.
import { Worker } from 'node:worker_threads'
import { existsSync } from 'node:fs'
import { describe, it, expect, onTestFinished } from 'vitest'
import { RingBuffer, type RingBufferStats } from '../../../src/ring/ring-buffer.js'
import { Doorbell } from '../../../src/ring/doorbell.js'

const FIXTURE = new URL('../../fixtures/ring-stress-worker.mjs', import.meta.url)
const COMPILED = new URL('../../../dist/src/ring/ring-buffer.js', import.meta.url)
const N = 200_000
const DEADLINE_MS = 20_000

interface Totals { records: number, bytes: number, checksum: number }
interface WorkerReply { ok: boolean, result?: Totals, stats?: RingBufferStats, error?: string }
/** Duck-typed end of a ring, as the fixture's produce/consume use it. */
type RingEnd = RingBuffer
interface Fixture {
  recordLength (seq: number): number
  produce (ring: RingEnd, n: number, deadline: number, want?: (len: number) => number): Promise<Totals>
  consume (ring: RingEnd, deadline: number, wait?: (ms: number) => Promise<'ok' | 'timed-out' | 'closed'>): Promise<Totals>
}

async function loadFixture (): Promise<Fixture> {
  if (!existsSync(COMPILED)) {
    throw new Error(`${COMPILED.pathname} is missing: run \`npm run build\` first (npm test does it)`)
  }
  return await import(FIXTURE.href) as Fixture
}

/** Start the fixture worker; its reply, or its crash (which also closes the ring so our side stops). */
function startWorker (ring: RingBuffer, workerData: Record<string, unknown>): Promise<WorkerReply> {
  const worker = new Worker(FIXTURE, { workerData })
  onTestFinished(async () => { await worker.terminate() })
  return new Promise<WorkerReply>((resolve, reject) => {
    worker.once('message', resolve)
    worker.once('error', (err) => { ring.close(); reject(err) })
    worker.once('exit', (code) => { ring.close(); reject(new Error(`worker exited (${code}) before replying`)) })
  })
}

function expectedTotals (fx: Fixture): { records: number, bytes: number } {
  let bytes = 0
  for (let seq = 0; seq < N; seq++) bytes += fx.recordLength(seq)
  return { records: N, bytes }
}

describe('RingBuffer across two threads', () => {
  it(`a ring placed after another in one SharedArrayBuffer: ${N} records through it, its neighbour's records untouched`, async () => {
    const fx = await loadFixture()
    // The neighbour first, at 0, holding records for the whole run; the stressed ring right after it.
    const at = RingBuffer.bytesFor(4096)
    const sab = new SharedArrayBuffer(at + RingBuffer.bytesFor(16384) + RingBuffer.bytesFor(4096))
    const neighbour = RingBuffer.create(4096, undefined, { sab, byteOffset: 0 })
    const after = RingBuffer.create(4096, undefined, { sab, byteOffset: at + RingBuffer.bytesFor(16384) })
    const sentinel = Uint8Array.from({ length: 1000 }, (_, i) => (i * 7 + 3) & 0xff)
    expect(neighbour.tryWrite(sentinel)).toBe(true)
    expect(after.tryWrite(sentinel)).toBe(true)
    const ring = RingBuffer.create(16384, undefined, { sab, byteOffset: at })
    const reply = startWorker(ring, { role: 'produce', sab: { sab, byteOffset: at }, n: N, timeoutMs: DEADLINE_MS })
    const consumed = await fx.consume(ring, performance.now() + DEADLINE_MS)
    const produced = await reply
    expect(produced.error).toBeUndefined()
    expect(consumed).toEqual(produced.result)
    expect(consumed).toMatchObject(expectedTotals(fx))
    for (const r of [neighbour, after]) {
      const got: Uint8Array[] = []
      r.drain((rec) => { got.push(rec.slice()) })
      expect(got).toEqual([sentinel])
    }
  })

  it(`worker produces ${N} records into a 16 KiB ring, main consumes and checks each`, async () => {
    const fx = await loadFixture()
    const ring = RingBuffer.create(16384)
    const reply = startWorker(ring, { role: 'produce', sab: ring.sab, n: N, timeoutMs: DEADLINE_MS })
    const consumed = await fx.consume(ring, performance.now() + DEADLINE_MS)
    const produced = await reply
    expect(produced.error).toBeUndefined()
    expect(consumed).toEqual(produced.result)
    expect(consumed).toMatchObject(expectedTotals(fx))
    expect(ring.stats()).toMatchObject({ recordsWritten: N, recordsRead: N, bytesWritten: consumed.bytes, usedBytes: 0 })
    expect(ring.stats().fullEvents).toBeGreaterThan(100) // it really filled up, many times
  })

  it(`main produces ${N} records into an 8 KiB ring, worker consumes and posts back its checksum`, async () => {
    const fx = await loadFixture()
    const ring = RingBuffer.create(8192)
    const reply = startWorker(ring, { role: 'consume', sab: ring.sab, timeoutMs: DEADLINE_MS })
    const produced = await fx.produce(ring, N, performance.now() + DEADLINE_MS)
    const consumed = await reply
    expect(consumed.error).toBeUndefined()
    expect(consumed.result).toEqual(produced)
    expect(produced).toMatchObject(expectedTotals(fx))
    expect(consumed.stats).toMatchObject({ recordsWritten: N, recordsRead: N, bytesWritten: produced.bytes, usedBytes: 0 })
    expect(ring.stats().fullEvents).toBeGreaterThan(100)
  })

  it(`main produces ${N} records into an 8 KiB ring waiting for a quarter of it each time it is full, worker consumes`, async () => {
    // The host's send path waits for more than one record (a quarter of the
    // queue); the consumer then wakes it only once that much is free, and its
    // HEAD may sit anywhere relative to the wrap point.
    const fx = await loadFixture()
    const ring = RingBuffer.create(8192)
    const reply = startWorker(ring, { role: 'consume', sab: ring.sab, timeoutMs: DEADLINE_MS })
    const produced = await fx.produce(ring, N, performance.now() + DEADLINE_MS, (len) => Math.max(len, 2048))
    const consumed = await reply
    expect(consumed.error).toBeUndefined()
    expect(consumed.result).toEqual(produced)
    expect(ring.stats().fullEvents).toBeGreaterThan(100)
  })

  it('close() from the other thread wakes a waiting consumer and a waiting producer', async () => {
    await loadFixture()
    const empty = RingBuffer.create(1024)
    const full = RingBuffer.create(1024)
    while (full.tryWrite(new Uint8Array(100)));
    const data = empty.waitForData()
    const space = full.waitForSpace(100)
    const reply = startWorker(empty, { role: 'close', sabs: [empty.sab, full.sab] })
    expect(await data).toBe('closed')
    expect(await space).toBe(false)
    expect(await reply).toEqual({ ok: true })
  })

  it('worker produces into a 4 KiB ring with a doorbell, main sleeps on the doorbell instead of the ring', async () => {
    const fx = await loadFixture()
    const n = 50_000
    const bell = Doorbell.create()
    const ring = RingBuffer.create(4096)
    const reply = startWorker(ring, { role: 'produce', sab: ring.sab, bellSab: bell.sab, n, timeoutMs: DEADLINE_MS })
    const viaBell = async (ms: number): Promise<'ok' | 'timed-out' | 'closed'> => {
      if (await bell.sleep(() => !ring.isEmpty() || ring.closed, ms) === 'timed-out') return 'timed-out'
      return ring.closed && ring.isEmpty() ? 'closed' : 'ok'
    }
    const consumed = await fx.consume(ring, performance.now() + DEADLINE_MS, viaBell)
    const produced = await reply
    expect(produced.error).toBeUndefined()
    expect(consumed).toEqual(produced.result)
    expect(consumed.records).toBe(n)
  })
})
