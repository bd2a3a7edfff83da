// AckBoard: the seqlock'd (stream, seq) word the host publishes and the IO
// worker's connection actor reads. The two-thread tests run the COMPILED
// board in a worker (test/fixtures/ack-board-worker.mjs imports dist/; run
// `npm run build` first, `npm test` does it in pretest) against src/ here.
import { Worker } from 'node:worker_threads'
import { existsSync } from 'node:fs'
import { once } from 'node:events'
import { describe, it, expect, onTestFinished } from 'vitest'
import { AckBoard, MAX_DISCARDED } from '../../../src/delivery/ack-board.js'
import { until } from '../../helpers/mesh.js'

const FIXTURE = new URL('../../fixtures/ack-board-worker.mjs', import.meta.url)
const COMPILED = new URL('../../../dist/src/delivery/ack-board.js', import.meta.url)
const N = 500_000
const TIMEOUT_MS = 8_000

interface ReadResult { reads: number, distinct: number, error?: string }
interface Fixture {
  BASE: number
  done (n: number): number
  streamOf (seq: number): number
  discardedOf (seq: number): number[]
  write (board: AckBoard, n: number, seen?: Int32Array, timeoutMs?: number): void
  read (board: AckBoard, n: number, deadline: number, seen?: Int32Array): ReadResult
}

async function loadFixture (): Promise<Fixture> {
  if (!existsSync(COMPILED)) {
    throw new Error(`${COMPILED.pathname} is missing: run \`npm run build\` first (npm test does it)`)
  }
  return await import(FIXTURE.href) as Fixture
}

function startWorker (workerData: Record<string, unknown>): Worker {
  const worker = new Worker(FIXTURE, { workerData })
  onTestFinished(async () => { await worker.terminate() })
  return worker
}

/** The worker's `{ result }` message, or its error/exit, within the deadline. */
async function resultOf<T> (worker: Worker): Promise<T> {
  const signal = AbortSignal.timeout(TIMEOUT_MS + 2_000)
  for (;;) {
    const [msg] = await Promise.race([
      once(worker, 'message', { signal }),
      once(worker, 'error', { signal }).then(([err]) => { throw err as Error }),
      once(worker, 'exit', { signal }).then(([code]) => { throw new Error(`worker exited (${String(code)}) before replying`) }),
    ]) as [{ result?: T }]
    if (msg.result !== undefined) return msg.result
  }
}

describe('AckBoard', () => {
  it('version 0 means nothing published yet; publish/read round-trips (stream as uint32, seq as float64)', () => {
    const board = AckBoard.create()
    expect(board.version()).toBe(0)
    expect(board.read()).toBeUndefined()
    board.publish(7, 1)
    expect(board.read()).toEqual({ version: 2, stream: 7, seq: 1, discarded: [], prev: undefined })
    board.publish(0xffffffff, Number.MAX_SAFE_INTEGER, [Number.MAX_SAFE_INTEGER - 1])
    expect(board.read()).toEqual({ version: 4, stream: 0xffffffff, seq: Number.MAX_SAFE_INTEGER, discarded: [Number.MAX_SAFE_INTEGER - 1], prev: { stream: 7, seq: 1 } })
    board.publish(0x80000000, 0)
    expect(board.read()).toEqual({ version: 6, stream: 0x80000000, seq: 0, discarded: [], prev: { stream: 0xffffffff, seq: Number.MAX_SAFE_INTEGER } })
    // Discarded chunked messages (a seq of each rides in the ACK) go with the pair they were published with;
    // a restart cuts one message per lane, so several: the latest MAX_DISCARDED.
    board.publish(9, 40, [37, 38])
    // (Left at seq 0: nothing to ack there, so no prev.)
    expect(board.read()).toEqual({ version: 8, stream: 9, seq: 40, discarded: [37, 38], prev: undefined })
    board.publish(9, 50, [41, 42, 43, 44, 45, 46])
    expect(board.read()?.discarded).toEqual([43, 44, 45, 46])
    expect(MAX_DISCARDED).toBe(4)
    // The version moves by 2 per publish and is even whenever nobody writes.
    expect(board.version()).toBe(10)
    // Reading changes nothing.
    expect(board.read()).toEqual(board.read())
  })

  it('prev: the stream the host last left for another, and how far it got there; kept until the next switch', () => {
    const board = AckBoard.create(false, 2)
    board.publish(5, 10)
    board.publish(5, 11)
    expect(board.read()?.prev).toBeUndefined() // no switch yet
    board.publish(8, 1) // a stale frame of another epoch takes the slot
    expect(board.read()).toMatchObject({ stream: 8, seq: 1, prev: { stream: 5, seq: 11 } })
    board.publish(8, 2)
    expect(board.read()?.prev).toEqual({ stream: 5, seq: 11 })
    board.publish(5, 12) // and back
    expect(board.read()).toMatchObject({ stream: 5, seq: 12, prev: { stream: 8, seq: 2 } })
    board.publish(0x9000_0000, 2 ** 40 + 3)
    board.publish(3, 1)
    expect(board.read()?.prev).toEqual({ stream: 0x9000_0000, seq: 2 ** 40 + 3 })
    // The per-worker taken counters sit after it, untouched by publishes.
    board.noteTaken(1)
    board.publish(4, 1)
    expect([board.taken(0), board.taken(1)]).toEqual([0, 1])
    expect(board.read()?.prev).toEqual({ stream: 3, seq: 1 })
  })

  it('attach() shares the board; it refuses anything but a board buffer', () => {
    const host = AckBoard.create()
    const worker = AckBoard.attach(host.sab)
    expect(worker.read()).toBeUndefined()
    host.publish(3, 9)
    expect(worker.version()).toBe(host.version())
    expect(worker.read()).toEqual({ version: 2, stream: 3, seq: 9, discarded: [] })
    expect(() => AckBoard.attach(new SharedArrayBuffer(8))).toThrow(TypeError)
    expect(() => AckBoard.attach(new ArrayBuffer(host.sab.byteLength) as unknown as SharedArrayBuffer)).toThrow(TypeError)
  })

  it('claim/ownedBy/owner: no owner at first (worker 0 included); the newest claim wins', () => {
    const host = AckBoard.create()
    const w0 = AckBoard.attach(host.sab)
    const w1 = AckBoard.attach(host.sab)
    expect(w0.ownedBy(0)).toBe(false)
    expect(w1.ownedBy(1)).toBe(false)
    expect(host.owner()).toBeUndefined()
    w0.claim(0)
    expect(w0.ownedBy(0)).toBe(true)
    expect(w1.ownedBy(1)).toBe(false)
    expect(host.owner()).toBe(0) // the worker the host wakes for the peer
    w1.claim(1) // e.g. the peer moved to a restarted worker
    expect(w0.ownedBy(0)).toBe(false)
    expect(w1.ownedBy(1)).toBe(true)
    expect(host.owner()).toBe(1)
    // Held busy, still that owner.
    expect(w1.holdBusy(1)).toBe(true)
    expect(host.owner()).toBe(1)
    w1.endBusy(1)
    // Ownership does not disturb the seqlock'd pair.
    expect(host.read()).toBeUndefined()
    host.publish(1, 2)
    w0.claim(0)
    expect(host.read()).toEqual({ version: 2, stream: 1, seq: 2, discarded: [] })
  })

  it('claimIfFree takes an unowned board only; disown clears a dead worker\'s claim, not a newer one', () => {
    const host = AckBoard.create()
    const w0 = AckBoard.attach(host.sab)
    const w1 = AckBoard.attach(host.sab)
    expect(w1.claimIfFree(1)).toBe(true)
    expect(w0.claimIfFree(0)).toBe(false) // an adoption never steals
    expect(w1.ownedBy(1)).toBe(true)
    host.disown(0) // not the claimant: nothing changes
    expect(w1.ownedBy(1)).toBe(true)
    host.disown(1) // worker 1 died
    expect(w1.ownedBy(1)).toBe(false)
    expect(w0.claimIfFree(0)).toBe(true)
    w1.claim(1) // an attach always takes over
    expect(w1.ownedBy(1)).toBe(true)
    expect(w0.ownedBy(0)).toBe(false)
  })

  it('holdBusy: only the owner holds the ring busy; a claim from another thread waits until endBusy (it must see the release)', async () => {
    const host = AckBoard.create()
    const w0 = AckBoard.attach(host.sab)
    expect(w0.holdBusy(0)).toBe(false) // not the owner
    w0.claim(0)
    expect(w0.holdBusy(0)).toBe(true)
    expect(w0.ownedBy(0)).toBe(true) // still the owner while busy
    expect(AckBoard.attach(host.sab).holdBusy(1)).toBe(false)
    // flag[0]: 1 = the worker is about to claim, 2 = it claimed; flag[1]: the "released" marker; flag[2]: the marker as the worker saw it once it had claimed.
    const flag = new Int32Array(new SharedArrayBuffer(12))
    const w = new Worker(`import(${JSON.stringify(COMPILED.href)}).then(({ AckBoard }) => {
      const { sab, flag } = require('node:worker_threads').workerData
      const board = AckBoard.attach(sab)
      Atomics.store(flag, 0, 1)
      board.claim(1)
      Atomics.store(flag, 2, Atomics.load(flag, 1))
      Atomics.store(flag, 0, 2)
    })`, { eval: true, workerData: { sab: host.sab, flag } })
    try {
      await until(() => Atomics.load(flag, 0) >= 1, { label: 'the worker about to claim' })
      // The release the busy state guards (here: a marker), then endBusy: the claim must return after both.
      Atomics.store(flag, 1, 42)
      expect(w0.ownedBy(0)).toBe(true)
      w0.endBusy(0)
      await until(() => Atomics.load(flag, 0) === 2, { label: 'the claim after endBusy' })
      expect(Atomics.load(flag, 2)).toBe(42)
      expect(w0.ownedBy(0)).toBe(false)
      expect(w0.ownedBy(1)).toBe(true)
    } finally {
      await w.terminate()
    }
    // A worker that died busy: disown() frees the ring.
    expect(w0.holdBusy(1)).toBe(true)
    host.disown(1)
    expect(w0.claimIfFree(0)).toBe(true)
  })

  it('committed: Infinity without a durable outbox, else 0 and monotonic', () => {
    expect(AckBoard.create().committed()).toBe(Infinity)
    const host = AckBoard.create(true)
    const worker = AckBoard.attach(host.sab)
    expect(worker.committed()).toBe(0)
    host.commit(5)
    expect(worker.committed()).toBe(5)
    host.commit(3)
    expect(worker.committed()).toBe(5)
    // commit() is a separate word: the ack pair stays unpublished.
    expect(worker.read()).toBeUndefined()
  })

  it(`two threads: the host publishes ${N} (stream, seq) pairs, a worker reader never sees a torn pair`, async () => {
    const fx = await loadFixture()
    const board = AckBoard.create()
    const seen = new SharedArrayBuffer(4)
    const worker = startWorker({ role: 'read', sab: board.sab, seen, n: N, timeoutMs: TIMEOUT_MS })
    const result = resultOf<ReadResult>(worker)
    // Wait until the reader spins on read(), then publish as fast as we can.
    const [ready] = await once(worker, 'message', { signal: AbortSignal.timeout(TIMEOUT_MS) }) as [{ ready?: boolean }]
    expect(ready.ready).toBe(true)
    fx.write(board, N, new Int32Array(seen), TIMEOUT_MS)
    const r = await result
    expect(r.error).toBeUndefined()
    expect(r.distinct).toBeGreaterThan(1) // it really read while we wrote
    expect(board.read()).toEqual({ version: 2 * N, stream: fx.streamOf(fx.done(N)), seq: fx.done(N), discarded: fx.discardedOf(fx.done(N)), prev: { stream: fx.streamOf(fx.done(N) - 1), seq: fx.done(N) - 1 } })
  })

  it(`two threads: a worker publishes ${N} pairs, the reader here never sees a torn pair`, async () => {
    const fx = await loadFixture()
    const board = AckBoard.create()
    const go = new SharedArrayBuffer(4)
    // As above: the writer holds back its second half until we have seen a pair of the first (on a
    // loaded box it could otherwise publish them all before this thread reads once: CI saw distinct 1).
    const seen = new SharedArrayBuffer(4)
    const worker = startWorker({ role: 'write', sab: board.sab, go, seen, n: N, timeoutMs: TIMEOUT_MS })
    const written = resultOf<{ written?: number, error?: string }>(worker)
    await once(worker, 'online', { signal: AbortSignal.timeout(TIMEOUT_MS) })
    // Atomics.store + notify: release the writer; we start reading at once.
    // If it is not parked yet, its Atomics.wait sees 1 and returns 'not-equal'.
    const g = new Int32Array(go)
    Atomics.store(g, 0, 1)
    Atomics.notify(g, 0)
    const r = fx.read(board, N, performance.now() + TIMEOUT_MS, new Int32Array(seen))
    expect(await written).toEqual({ written: N })
    expect(r.error).toBeUndefined()
    expect(r.distinct).toBeGreaterThan(1)
  })
})
