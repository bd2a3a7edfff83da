/**
 * Perf child process: the architecture floor, a baseline between raw `ws`
 * and meshwork. It moves the payloads the way meshwork's design requires,
 * and does nothing else: the host thread writes each message into a
 * SharedArrayBuffer ring (our RingBuffer), a worker thread sends them over
 * `ws` in batches (floor-io.ts), the receiving worker writes them into a ring
 * to its host thread, and the host copies each one out (into one reused
 * buffer from 8 KiB, as `borrowPayloads` does; below, into a fresh Buffer).
 * No frame header, sequence number, ACK, credit, lane, event or promise.
 *
 * The distance from raw ws to the floor is what the design costs on this
 * machine (two more threads, two more copies, cross-thread wake-ups); the
 * distance from the floor to meshwork is what meshwork's own code costs.
 *
 * Not meant to be run by hand: `npm run perf` forks it.
 *
 * @module
 */
import { Worker } from 'node:worker_threads'
import { randomBytes } from 'node:crypto'
import { RingBuffer } from '../../src/ring/ring-buffer.js'
import { copyBytes, copyOut } from '../../src/ring/copy-bytes.js'
import { CHUNK_BYTES } from '../../src/io/io-worker.js'
import { BORROW_MIN_BYTES } from '../../src/codec/payload-lender.js'
import { serve, type FloodResult } from '../lib/ipc.js'
import { FloodClock, RateMeter, defaultTickBytes } from '../lib/measure.js'
import type { FloorIoData } from './floor-io.js'

/** Each ring's size: meshwork's default send queue and inbound ring (options.ts: 4 MiB). */
const RING_BYTES = 4 * 1024 * 1024
const IO_URL = new URL('./floor-io.js', import.meta.url)

const meter = new RateMeter()
let worker: Worker | undefined
let sendRing: RingBuffer | undefined
let stopFlag = false

function spawn (d: FloorIoData): Worker {
  const w = new Worker(IO_URL, { workerData: d })
  w.on('error', (err) => { console.error(`floor IO worker: ${String(err)}`) })
  worker = w
  return w
}

async function message<T> (w: Worker, key: string): Promise<T> {
  return await new Promise<T>((resolve, reject) => {
    const onMsg = (m: Record<string, unknown>): void => { if (key in m) { w.off('error', reject); w.off('message', onMsg); resolve(m[key] as T) } }
    w.on('message', onMsg)
    w.once('error', reject)
  })
}

/** The receiving host: copy every record out of the ring, count it. */
async function drainLoop (ring: RingBuffer): Promise<void> {
  // What the receiving host of meshwork does: borrowPayloads' size range into one reused buffer, else a fresh copy.
  const lent = new Uint8Array(CHUNK_BYTES)
  const take = (rec: Uint8Array): void => {
    if (rec.length >= BORROW_MIN_BYTES && rec.length <= lent.length) copyBytes(lent, 0, rec)
    else copyOut(rec)
    meter.hit(rec.length)
  }
  for (;;) {
    if (ring.isEmpty()) {
      if (await ring.waitForData(1_000) === 'closed') return
      continue
    }
    ring.drain(take, 4096)
    // Let the loop turn (IPC, timers) between slices, as meshwork's inbound dispatch does.
    await new Promise((resolve) => setImmediate(resolve))
  }
}

const api = {
  async listen (): Promise<{ url: string }> {
    const ring = RingBuffer.create(RING_BYTES)
    const w = spawn({ role: 'recv', sab: ring.sab })
    const url = await message<string>(w, 'url')
    void drainLoop(ring)
    return { url }
  },

  async connect (a: { url: string }): Promise<void> {
    const ring = RingBuffer.create(RING_BYTES)
    const w = spawn({ role: 'send', sab: ring.sab, url: a.url })
    await message<boolean>(w, 'open')
    sendRing = ring
  },

  measure: async (a: { warmupMs: number; measureMs: number; firstTimeoutMs?: number }) => await meter.measure(a.warmupMs, a.measureMs, a.firstTimeoutMs),

  quiesce: async (a: { quietMs: number; maxMs: number }) => await meter.quiesce(a.quietMs, a.maxMs),

  /** Write `size`-byte records into the ring as fast as it takes them: per turn up to the raw sender's tick, waiting for room when full. */
  async flood (a: { size: number; maxMs: number; warmupMs: number }): Promise<FloodResult> {
    const ring = sendRing
    if (ring === undefined) throw new Error('connect first')
    const payload = randomBytes(a.size)
    const perTick = Math.max(1, Math.floor(defaultTickBytes(a.size) / a.size))
    stopFlag = false
    const clock = new FloodClock(a.warmupMs, a.maxMs)
    let sent = 0
    for (;;) {
      if (stopFlag) return clock.result(sent, 'stop')
      if (!clock.tick(sent)) return clock.result(sent, 'deadline')
      let i = 0
      while (i < perTick && ring.tryWrite(payload)) i++
      sent += i
      if (i < perTick) await ring.waitForSpace(a.size, 100)
      else await new Promise((resolve) => setImmediate(resolve))
    }
  },

  stop (): void { stopFlag = true },
}

export type FloorNodeApi = typeof api

serve(api, {
  onExit: async () => { await worker?.terminate() },
})
