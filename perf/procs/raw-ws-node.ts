/**
 * Perf child process: the raw `ws` baseline, driven by the harness over IPC.
 * Receiver = WebSocketServer counting `message` events; sender = a client at
 * its best: `bufferutil` (ws loads it by itself), the socket corked per tick,
 * backpressure on `bufferedAmount`; echo server and pinger for latency.
 *
 * Not meant to be run by hand: `npm run perf` forks it.
 *
 * @module
 */
import { randomBytes } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import type { Socket } from 'node:net'
import { WebSocket, WebSocketServer, type RawData } from 'ws'
import { serve, type FloodResult, type PingResult } from '../lib/ipc.js'
import { FloodClock, RateMeter, defaultTickBytes, memAfterGc, round, sleep } from '../lib/measure.js'

const meter = new RateMeter()
let server: WebSocketServer | undefined
let client: WebSocket | undefined
let echo = false
let stopFlag = false
let onReply: (() => void) | undefined
const SEND_OPTS = { binary: true, compress: false } as const

/**
 * Bytes handed to ws but not yet on the wire, above which the sender waits
 * for 'drain'. The same 4 MiB as meshwork's own per-connection write
 * high-water mark (src/connection/connection.ts), so neither side gets
 * deeper buffering than the other.
 */
export const DEFAULT_HIGH_WATER = 4 * 1024 * 1024
function rawLength (d: RawData): number {
  return Array.isArray(d) ? d.reduce((n, b) => n + b.length, 0) : (d as Buffer | ArrayBuffer).byteLength
}

function need (): WebSocket {
  if (client === undefined) throw new Error('connect first')
  return client
}

const api = {
  async listen (): Promise<{ url: string }> {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 })
    server = wss
    await new Promise<void>((resolve, reject) => { wss.once('listening', resolve); wss.once('error', reject) })
    wss.on('connection', (ws) => {
      ws.binaryType = 'nodebuffer'
      ws.on('message', (data: RawData) => {
        meter.hit(rawLength(data))
        if (echo) ws.send(data as Buffer, SEND_OPTS)
      })
    })
    const addr = wss.address()
    if (addr === null || typeof addr === 'string') throw new Error('unexpected pipe address')
    return { url: `ws://127.0.0.1:${addr.port}` }
  },

  async connect (a: { url: string }): Promise<void> {
    const ws = new WebSocket(a.url, { perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 })
    ws.binaryType = 'nodebuffer'
    await new Promise<void>((resolve, reject) => { ws.once('open', () => { resolve() }); ws.once('error', reject) })
    ws.on('message', () => {
      const r = onReply
      onReply = undefined
      r?.()
    })
    client = ws
  },

  measure: async (a: { warmupMs: number; measureMs: number; firstTimeoutMs?: number }) => await meter.measure(a.warmupMs, a.measureMs, a.firstTimeoutMs),

  /** Wait until the previous flood's backlog has drained (no message for `quietMs`). */
  quiesce: async (a: { quietMs: number; maxMs: number }) => await meter.quiesce(a.quietMs, a.maxMs),

  /**
   * Best-practice raw sender: per event-loop turn, cork the socket, send
   * until `tickBytes` or the high-water mark, uncork on nextTick (one
   * writev); above the high-water mark wait for the socket's 'drain'.
   */
  async flood (a: { size: number; maxMs: number; warmupMs: number; highWater?: number; tickBytes?: number }): Promise<FloodResult> {
    const ws = need()
    const sock = (ws as unknown as { _socket: Socket })._socket
    const payload = randomBytes(a.size)
    const highWater = a.highWater ?? DEFAULT_HIGH_WATER
    const perTick = Math.max(1, Math.floor((a.tickBytes ?? defaultTickBytes(a.size)) / a.size))
    stopFlag = false
    const clock = new FloodClock(a.warmupMs, a.maxMs)
    let sent = 0
    const uncork = (): void => { sock.uncork() }
    const stoppedBy = await new Promise<FloodResult['stoppedBy']>((resolve) => {
      const pump = (): void => {
        if (stopFlag) { resolve('stop'); return }
        if (!clock.tick(sent)) { resolve('deadline'); return }
        sock.cork()
        let i = 0
        while (i < perTick && ws.bufferedAmount < highWater) { ws.send(payload, SEND_OPTS); i++ }
        sent += i
        process.nextTick(uncork)
        if (ws.bufferedAmount >= highWater) sock.once('drain', pump)
        else setImmediate(pump)
      }
      pump()
    })
    return clock.result(sent, stoppedBy)
  },

  stop (): void { stopFlag = true },

  echo (): void { echo = true },

  /**
   * One ping in flight, `warmup + n` times. With `gapMs`, paced like the
   * mesh's reqPaced: ping i starts at t0 + i × gapMs (timer sleep, never a
   * spin), so the threads sleep between pings as the mesh's do.
   */
  async ping (a: { size: number; warmup: number; n: number; gapMs?: number }): Promise<PingResult> {
    const ws = need()
    const payload = randomBytes(a.size)
    const samples: number[] = []
    const t0 = performance.now()
    for (let i = 0; i < a.warmup + a.n; i++) {
      if (a.gapMs !== undefined) {
        const wait = t0 + i * a.gapMs - performance.now()
        if (wait > 0) await sleep(wait)
      }
      const got = new Promise<void>((resolve) => { onReply = resolve })
      const s = process.hrtime.bigint()
      ws.send(payload, SEND_OPTS)
      await got
      const rtt = Number(process.hrtime.bigint() - s)
      if (i >= a.warmup) samples.push(rtt)
    }
    return { samplesNs: samples, ms: round(performance.now() - t0, 1) }
  },

  mem: () => memAfterGc(),
}

export type RawWsNodeApi = typeof api

serve(api, {
  onExit: async () => {
    client?.terminate()
    if (server !== undefined) {
      for (const c of server.clients) c.terminate()
      server.close()
    }
  },
})
