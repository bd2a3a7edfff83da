/**
 * Perf child process for issue 4's figures (../scenarios/reliability.ts):
 * one meshwork node that serves requests, makes them (64 in flight, or
 * paced), moves a bulk transfer while it samples heartbeat RTT, or plays a
 * slow consumer / its producer while it tracks its own RSS.
 *
 * Not meant to be run by hand: `npm run perf` forks it.
 *
 * @module
 */
import { performance } from 'node:perf_hooks'
import { createMesh, type Mesh, type MeshMessage, type MeshOptions } from '../../src/index.js'
import { serve, type MemResult } from '../lib/ipc.js'
import { memAfterGc, round, schedStats, sleep, withWorkerHeaps } from '../lib/measure.js'

let mesh: Mesh | undefined
let slowMs = 0
const rx = { count: 0, bytes: 0, outOfOrder: 0, last: -1 }
const mem = { rssMax: 0 }
let rttPoll: { timer: NodeJS.Timeout; samples: number[] } | undefined
const health = { downs: 0, unhealthy: 0 }

function need (): Mesh {
  if (mesh === undefined) throw new Error('start first')
  return mesh
}

function sampleMem (): void {
  const rss = process.memoryUsage.rss()
  if (rss > mem.rssMax) mem.rssMax = rss
}

/** Heartbeat RTT samples to `to`: peers()[].rttMs is the IO worker's latest sample; a new value is a new sample. */
function pollRtt (m: Mesh, to: string, everyMs: number): { timer: NodeJS.Timeout; samples: number[] } {
  const samples: number[] = []
  let last: number | undefined
  const timer = setInterval(() => {
    const r = m.peers().find((p) => p.id === to)?.rttMs
    if (r !== undefined && r !== last) { samples.push(r); last = r }
  }, everyMs)
  return { timer, samples }
}

const api = {
  async start (a: { listen?: boolean; heartbeatMs?: number; misses?: readonly [unhealthy: number, dead: number]; sendQueueBytes?: number; maxMessageBytes?: number; slowMs?: number }): Promise<{ id: string; addresses: string[] }> {
    const opts: MeshOptions = {
      listen: a.listen === false ? false : 'ws://127.0.0.1:0',
      logger: false,
      ...(a.heartbeatMs === undefined ? {} : { heartbeat: { intervalMs: a.heartbeatMs, missesUnhealthy: a.misses?.[0] ?? 10, missesDead: a.misses?.[1] ?? 20 } }),
      ...(a.sendQueueBytes === undefined ? {} : { sendQueue: { capacityBytes: a.sendQueueBytes } }),
      ...(a.maxMessageBytes === undefined ? {} : { maxMessageBytes: a.maxMessageBytes }),
    }
    const m = await createMesh(opts)
    mesh = m
    slowMs = a.slowMs ?? 0
    m.handle('echo', (p: unknown) => p)
    m.on('peer:down', () => { health.downs++ })
    m.on('peer:health', (h) => { if (h.state === 'unhealthy') health.unhealthy++ })
    m.on('message', (msg: MeshMessage) => {
      if (slowMs > 0) {
        const end = performance.now() + slowMs
        while (performance.now() < end) { /* a slow consumer: busy */ }
      }
      const p = msg.payload as { i?: number } | Uint8Array
      if (p instanceof Uint8Array) { rx.bytes += p.length } else if (typeof p?.i === 'number') {
        if (p.i !== rx.last + 1) rx.outOfOrder++
        rx.last = p.i
      }
      rx.count++
      if ((rx.count & 7) === 0) sampleMem()
    })
    setInterval(sampleMem, 100).unref()
    return { id: m.id, addresses: m.addresses }
  },

  async connect (a: { url: string }): Promise<{ peerId: string }> {
    return { peerId: (await need().connect(a.url)).id }
  },

  /** Received so far (count, payload bytes of Uint8Array messages, order breaks of { i } messages). */
  rx: () => ({ ...rx }),
  /** This process's threads' scheduler counters (see schedStats). */
  sched: () => schedStats(),

  /** Resolves once `count` messages arrived (polled every 10 ms), or throws after `timeoutMs`. */
  async waitCount (a: { count: number; timeoutMs: number }): Promise<{ count: number; ms: number }> {
    const t0 = performance.now()
    while (rx.count < a.count) {
      if (performance.now() - t0 > a.timeoutMs) throw new Error(`received ${rx.count} of ${a.count} within ${a.timeoutMs} ms`)
      await sleep(10)
    }
    return { count: rx.count, ms: performance.now() - t0 }
  },

  setSlow (a: { ms: number }): void { slowMs = a.ms },

  /** Peak RSS since the last reset (sampled every 100 ms, every 8 messages received and every 64 sends). */
  memPeak: () => ({ rssMax: mem.rssMax, rss: process.memoryUsage.rss() }),
  memReset (): void { mem.rssMax = process.memoryUsage.rss() },
  mem: () => memAfterGc(),
  /**
   * Memory after a full GC of every heap of the process (this thread, the
   * mesh's IO and router workers): RSS, and the V8 heaps' live bytes and
   * resident pages summed over all threads.
   */
  async memSettled (): Promise<MemResult> {
    const w = await need()._collectGarbage()
    return withWorkerHeaps(memAfterGc(), [w])
  },

  rttStart (a: { to: string; everyMs: number }): void {
    if (rttPoll !== undefined) clearInterval(rttPoll.timer)
    rttPoll = pollRtt(need(), a.to, a.everyMs)
  },
  rttStop (): number[] {
    if (rttPoll === undefined) return []
    clearInterval(rttPoll.timer)
    const s = rttPoll.samples
    rttPoll = undefined
    return s
  },

  /** Requests with `inflight` outstanding for `durationMs` after `warmupMs`; completed requests per second. */
  async reqLoad (a: { to: string; inflight: number; warmupMs: number; durationMs: number }): Promise<{ count: number; ms: number }> {
    const m = need()
    const t0 = performance.now()
    const tStart = t0 + a.warmupMs
    const tEnd = tStart + a.durationMs
    let count = 0
    await Promise.all(Array.from({ length: a.inflight }, async (_, k) => {
      for (let i = 0; ; i++) {
        await m.request(a.to, 'echo', k + i)
        const t = performance.now()
        if (t >= tStart && t < tEnd) count++
        if (t >= tEnd) return
      }
    }))
    return { count, ms: a.durationMs }
  },

  /** One request every 1000/ratePerS ms (fixed schedule, never waiting for answers); round-trip times in µs after `warmup`, and the rate achieved. */
  /** Paced requests: `warmup` then `n` measured; the warm-up's RTTs come back too (`warmupSamplesUs`). */
  async reqPaced (a: { to: string; ratePerS: number; n: number; warmup: number }): Promise<{ samplesUs: number[]; warmupSamplesUs: number[]; lateStarts: number; ratePerS: number }> {
    const m = need()
    const gap = 1000 / a.ratePerS
    const samples: number[] = []
    const warmupSamples: number[] = []
    const pending: Array<Promise<void>> = []
    const t0 = performance.now()
    let lateStarts = 0
    for (let i = 0; i < a.warmup + a.n; i++) {
      const at = t0 + i * gap
      const wait = at - performance.now()
      // Never spin: responses are dispatched on this loop, and a spin would add to their round trip.
      // Timers are coarse (~1 ms), so starts jitter; each RTT is taken from the request's actual start.
      if (wait > 0) await sleep(wait)
      else await new Promise<void>((resolve) => { setImmediate(resolve) })
      if (performance.now() - at > gap) lateStarts++
      const s = performance.now()
      pending.push(m.request(a.to, 'echo', i).then(() => { (i >= a.warmup ? samples : warmupSamples).push((performance.now() - s) * 1000) }))
    }
    const sent = performance.now() - t0
    await Promise.all(pending)
    return { samplesUs: samples, warmupSamplesUs: warmupSamples, lateStarts, ratePerS: round((a.warmup + a.n) / (sent / 1000)) }
  },

  /** Send `totalBytes` in `chunkBytes` messages on lane 'bulk' as fast as send() resolves; polls RTT to `to` meanwhile. */
  async bulk (a: { to: string; totalBytes: number; chunkBytes: number; rttEveryMs: number }): Promise<{ ms: number; rtt: number[] }> {
    const m = need()
    const payload = Buffer.alloc(a.chunkBytes, 0x5a)
    const poll = pollRtt(m, a.to, a.rttEveryMs)
    const t0 = performance.now()
    try {
      for (let sent = 0; sent < a.totalBytes; sent += a.chunkBytes) await m.send(a.to, payload, { lane: 'bulk' })
    } finally {
      clearInterval(poll.timer)
    }
    return { ms: performance.now() - t0, rtt: poll.samples }
  },

  /** `for (;;) await send()` of { i, pad } for `durationMs`: accepted count, send waits, QUEUE_FULL count; RTT polled meanwhile. */
  async produce (a: { to: string; size: number; durationMs: number; first: number; rttEveryMs?: number }): Promise<{ accepted: number; queueFull: number; waitP99Ms: number; waitMaxMs: number; rtt: number[] }> {
    const m = need()
    const pad = Buffer.alloc(a.size, 7)
    const poll = pollRtt(m, a.to, a.rttEveryMs ?? 10)
    const waits: number[] = []
    let accepted = 0
    let queueFull = 0
    const end = performance.now() + a.durationMs
    try {
      while (performance.now() < end) {
        const t = performance.now()
        try {
          await m.send(a.to, { i: a.first + accepted, pad })
          accepted++
          waits.push(performance.now() - t)
        } catch (err) {
          if ((err as { code?: string }).code !== 'QUEUE_FULL') throw err
          queueFull++
        }
        if ((accepted & 63) === 0) sampleMem()
      }
    } finally {
      clearInterval(poll.timer)
    }
    waits.sort((x, y) => x - y)
    return { accepted, queueFull, waitP99Ms: round(waits[Math.floor(0.99 * (waits.length - 1))] ?? 0, 2), waitMaxMs: round(waits[waits.length - 1] ?? 0, 1), rtt: poll.samples }
  },

  /** peer:down / unhealthy events seen since start. */
  health: () => ({ ...health }),
}

export type ReliabilityNodeApi = typeof api

serve(api, {
  onExit: async () => { await mesh?.destroy() },
})
