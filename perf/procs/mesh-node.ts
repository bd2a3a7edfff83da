/**
 * Perf child process hosting one or more meshwork nodes, driven by the
 * harness over IPC (see ../lib/ipc.ts). One script plays every role:
 * receiver (counts at its `message` handler), sender (`for (;;) await
 * send()`), echo, pinger, and idle hub/clients.
 *
 * Not meant to be run by hand: `npm run perf` forks it.
 *
 * @module
 */
import { randomBytes } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { pino } from 'pino'
import { createMesh, type Mesh, type MeshMessage } from '../../src/index.js'
import { serve, type EldSummary, type FloodResult, type MemResult, type PingResult } from '../lib/ipc.js'
import { CpuWindow, EldRecorder, FloodClock, RateMeter, memAfterGc, round, sleep, withWorkerHeaps } from '../lib/measure.js'

const meshes: Mesh[] = []
const meter = new RateMeter()
let echo = false
let stopFlag = false
let onReply: (() => void) | undefined
const cpu = new CpuWindow()
/** Scrapes of `mesh.metrics()` by the observed variant (see `start`). */
const scrapes = { count: 0, ms: 0, maxMs: 0, bytes: 0, failed: 0 }

function first (): Mesh {
  const m = meshes[0]
  if (m === undefined) throw new Error('start a mesh first')
  return m
}

function payloadLength (p: unknown): number {
  return p instanceof Uint8Array ? p.length : 0
}

const api = {
  /**
   * Start `count` nodes (listening on an ephemeral loopback port unless `listen` is false).
   * `observe`: run as an operator would — a pino logger at `info` (to
   * /dev/null, through pino's async destination) and every node's
   * `metrics()` scraped each `scrapeMs`; without it, `logger: false` and no
   * scrapes.
   */
  async start (a: { count?: number; listen?: boolean; sendQueueBytes?: number; maxPeers?: number; observe?: { scrapeMs: number }; borrowPayloads?: boolean }): Promise<{ nodes: Array<{ id: string; addresses: string[] }> }> {
    const count = a.count ?? 1
    const logger = a.observe === undefined ? false : pino({ level: 'info' }, pino.destination({ dest: '/dev/null', sync: false }))
    const made = await Promise.all(Array.from({ length: count }, async () => await createMesh({
      listen: a.listen === false ? false : 'ws://127.0.0.1:0',
      logger,
      ...(a.maxPeers === undefined ? {} : { maxPeers: a.maxPeers }),
      ...(a.sendQueueBytes === undefined ? {} : { sendQueue: { capacityBytes: a.sendQueueBytes } }),
      ...(a.borrowPayloads === true ? { borrowPayloads: true } : {}),
    })))
    meshes.push(...made)
    if (a.observe !== undefined) {
      // One Prometheus-style scrape of every node per interval (unref'd: never keeps the child alive).
      setInterval(() => {
        for (const m of made) {
          const t = performance.now()
          m.metrics().then((text) => {
            const ms = performance.now() - t
            scrapes.count++
            scrapes.ms += ms
            scrapes.maxMs = Math.max(scrapes.maxMs, ms)
            scrapes.bytes += text.length
          }, () => { scrapes.failed++ })
        }
      }, a.observe.scrapeMs).unref()
    }
    const m0 = first()
    m0.on('message', (m: MeshMessage) => {
      meter.hit(payloadLength(m.payload))
      if (echo) {
        m0.send(m.from, m.payload).catch(() => {})
      } else if (onReply !== undefined) {
        const r = onReply
        onReply = undefined
        r()
      }
    })
    return { nodes: made.map((m) => ({ id: m.id, addresses: m.addresses })) }
  },

  /** Nodes [from, to) dial `url`; resolves once every link is up. */
  async connect (a: { url: string; from?: number; to?: number }): Promise<{ peerIds: string[] }> {
    const sel = meshes.slice(a.from ?? 0, a.to ?? meshes.length)
    const peers = await Promise.all(sel.map(async (m) => await m.connect(a.url)))
    return { peerIds: peers.map((p) => p.id) }
  },

  /** Links known to node 0 (hub side of the idle scenario). */
  peers (): { count: number; up: number } {
    const ps = first().peers()
    return { count: ps.length, up: ps.filter((p) => p.state === 'healthy').length }
  },

  /** Resolves once node 0 has `n` healthy links (they come up on the accepting side a little after the dialer's `connect`). */
  async waitPeers (a: { n: number; timeoutMs: number }): Promise<{ up: number }> {
    const deadline = performance.now() + a.timeoutMs
    for (;;) {
      const up = first().peers().filter((p) => p.state === 'healthy').length
      if (up >= a.n) return { up }
      if (performance.now() > deadline) throw new Error(`node 0 has ${up} healthy links after ${a.timeoutMs} ms, expected ${a.n}`)
      await sleep(20)
    }
  },

  /** Resolves once node 0 has a route to `to` (the relay scenario: through another node). */
  async waitRoute (a: { to: string; timeoutMs: number }): Promise<{ via: string; hops: number }> {
    const deadline = performance.now() + a.timeoutMs
    for (;;) {
      const r = first().routes().find((x) => x.to === a.to)
      if (r !== undefined) return { via: r.via, hops: r.hops }
      if (performance.now() > deadline) throw new Error(`node 0 has no route to ${a.to} after ${a.timeoutMs} ms`)
      await sleep(20)
    }
  },

  /** Relay counters of node 0's IO workers (FORWARD frames passed on, dropped). */
  async relayStats (): Promise<{ forwarded: number; dropped: Record<string, number>; retransmits: number }> {
    const out = { forwarded: 0, dropped: {} as Record<string, number>, retransmits: 0 }
    for (const st of await first()._ioStats()) {
      out.forwarded += st.relay.forwarded
      out.retransmits += st.relay.retransmits
      for (const [k, v] of Object.entries(st.relay.dropped)) out.dropped[k] = (out.dropped[k] ?? 0) + v
    }
    return out
  },

  measure: async (a: { warmupMs: number; measureMs: number; firstTimeoutMs?: number }) => await meter.measure(a.warmupMs, a.measureMs, a.firstTimeoutMs),

  /** Wait until the previous flood's backlog has drained (no message for `quietMs`). */
  quiesce: async (a: { quietMs: number; maxMs: number }) => await meter.quiesce(a.quietMs, a.maxMs),

  /**
   * Send `size`-byte payloads to `to` as fast as `send` resolves, until `stop`
   * or `maxMs`. Event-loop delay and CPU are taken after `warmupMs`. With
   * `reliable: false` the sends are unreliable (`{ reliable: false }`: what
   * the queue cannot take is dropped and counted, never waited for), so the
   * receiver's count is what got through.
   */
  async flood (a: { to: string; size: number; maxMs: number; warmupMs: number; reliable?: boolean }): Promise<FloodResult> {
    const m = first()
    const payload = new Uint8Array(randomBytes(a.size))
    const opts = a.reliable === false ? { reliable: false } : undefined
    stopFlag = false
    const clock = new FloodClock(a.warmupMs, a.maxMs)
    let sent = 0
    for (;;) {
      await m.send(a.to, payload, opts)
      sent++
      // No turns of our own: the mesh resolves a send on a macrotask now and
      // then (reliable or not), which lets stop and IPC in.
      // Look at the clock only every 128 sends: it is not free at 64 B rates.
      if ((sent & 127) === 0) {
        if (stopFlag) return clock.result(sent, 'stop')
        if (!clock.tick(sent)) return clock.result(sent, 'deadline')
      }
    }
  },

  stop (): void { stopFlag = true },

  /** Node 0 sends every message back to its sender. */
  echo (): void { echo = true },

  /** `warmup` + `n` round trips to `to`, one in flight; returns the `n` RTTs in ns. */
  async ping (a: { to: string; size: number; warmup: number; n: number }): Promise<PingResult> {
    const m = first()
    const payload = new Uint8Array(randomBytes(a.size))
    const samples: number[] = []
    const t0 = performance.now()
    for (let i = 0; i < a.warmup + a.n; i++) {
      const got = new Promise<void>((resolve) => { onReply = resolve })
      const s = process.hrtime.bigint()
      await m.send(a.to, payload)
      await got
      const rtt = Number(process.hrtime.bigint() - s)
      if (i >= a.warmup) samples.push(rtt)
    }
    return { samplesNs: samples, ms: round(performance.now() - t0, 1) }
  },

  /** Scrapes so far (observed variant): count, mean and max duration in ms, mean text size. */
  scrapes: () => ({ count: scrapes.count, meanMs: scrapes.count === 0 ? 0 : round(scrapes.ms / scrapes.count, 2), maxMs: round(scrapes.maxMs, 2), meanBytes: scrapes.count === 0 ? 0 : Math.round(scrapes.bytes / scrapes.count), failed: scrapes.failed }),

  /**
   * What one `metrics()` scrape of node 0 costs: `n` scrapes back to back
   * (after 20 of warmup), CPU of the whole process (host and workers) and
   * wall time per scrape. Run it with no traffic, so the CPU is the scrape's.
   */
  async scrapeCost (a: { n: number }): Promise<{ cpuMsPerScrape: number; wallMsPerScrape: number; bytes: number }> {
    const m = first()
    for (let i = 0; i < 20; i++) await m.metrics()
    const win = new CpuWindow()
    win.start()
    let bytes = 0
    for (let i = 0; i < a.n; i++) bytes = (await m.metrics()).length
    const r = win.stop()
    return { cpuMsPerScrape: round(r.cpuMs / a.n, 3), wallMsPerScrape: round(r.wallMs / a.n, 3), bytes }
  },

  /**
   * This process's event-loop delay over `ms` after `delayMs`, with nothing
   * else to do: the control of the throughput scenario, i.e. what the
   * machine alone (other processes competing for the cores) does to an idle
   * Node.js loop.
   */
  async eldProbe (a: { delayMs: number; ms: number }): Promise<EldSummary> {
    await sleep(a.delayMs)
    const eld = new EldRecorder()
    eld.start()
    await sleep(a.ms)
    return eld.stop()
  },

  /**
   * RSS after a full GC of every heap in the process: each node's IO and
   * router workers (Mesh._collectGarbage), then this thread. Worker heaps
   * otherwise hold hundreds of KiB of garbage from the last joins for
   * seconds (their first collections land ~8 s after start), which moved
   * the idle scenario's per-link figure between -235 and +765 KiB.
   */
  async mem (): Promise<MemResult> {
    const workers = await Promise.all(meshes.map(async (m) => await m._collectGarbage()))
    return withWorkerHeaps(memAfterGc(), workers)
  },
  cpuStart (): void { cpu.start() },
  cpuStop: () => cpu.stop(),
}

export type MeshNodeApi = typeof api

serve(api, {
  onExit: async () => { await Promise.all(meshes.map(async (m) => { await m.destroy() })) },
})
