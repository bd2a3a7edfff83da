/**
 * Perf child process: the raw `ws` baseline of the idle heartbeat figure of
 * the `detection` scenario. `count` endpoints, each in its own worker thread
 * (as each meshwork node does its socket work in an IO worker), each a
 * WebSocketServer plus client links to the endpoints it is told to dial.
 * Both ends of every connection send a `bytes`-long message every `intervalMs`
 * on their own timer, and answer the other end's with a PONG of the same
 * size: the message pattern of meshwork's heartbeats, with nothing else.
 *
 * Driven over IPC (../lib/ipc.ts); not meant to be run by hand.
 *
 * @module
 */
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads'
import { WebSocket, WebSocketServer, type RawData } from 'ws'
import { serve, type CpuResult } from '../lib/ipc.js'
import { CpuWindow, memAfterGc } from '../lib/measure.js'
import type { MemResult } from '../lib/ipc.js'

const PING = 1
const PONG = 2
const SEND_OPTS = { binary: true, compress: false } as const

type ToWorker = { dial: string[] } | { gc: true }
type FromWorker = { url: string } | { linked: number } | { gc: true }

function endpoint (intervalMs: number, bytes: number): void {
  const port = parentPort!
  const ping = Buffer.alloc(bytes, 0)
  ping[0] = PING
  const pong = Buffer.alloc(bytes, 0)
  pong[0] = PONG
  const heartbeat = (s: WebSocket): void => {
    s.on('message', (m: RawData) => {
      const b = m as Buffer
      if (b[0] === PING && s.readyState === WebSocket.OPEN) s.send(pong, SEND_OPTS)
    })
    const t = setInterval(() => { if (s.readyState === WebSocket.OPEN) s.send(ping, SEND_OPTS) }, intervalMs)
    s.on('close', () => { clearInterval(t) })
  }
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  wss.on('connection', heartbeat)
  wss.on('listening', () => {
    const a = wss.address()
    if (typeof a === 'string' || a === null) throw new Error('no address')
    port.postMessage({ url: `ws://127.0.0.1:${a.port}` } satisfies FromWorker)
  })
  port.on('message', (msg: ToWorker) => {
    if ('gc' in msg) {
      // The idle scenario's RSS samples: this thread's heap collected too (children run with --expose-gc).
      const gc = (globalThis as { gc?: () => void }).gc
      if (gc !== undefined) { gc(); gc() }
      port.postMessage({ gc: true } satisfies FromWorker)
      return
    }
    void Promise.all(msg.dial.map(async (url) => await new Promise<void>((resolve, reject) => {
      const s = new WebSocket(url)
      s.once('open', () => { heartbeat(s); resolve() })
      s.once('error', reject)
    }))).then(() => { port.postMessage({ linked: msg.dial.length } satisfies FromWorker) })
  })
}

if (!isMainThread) {
  const d = workerData as { intervalMs: number; bytes: number }
  endpoint(d.intervalMs, d.bytes)
} else {
  const workers: Worker[] = []
  const cpu = new CpuWindow()
  const next = async (w: Worker): Promise<FromWorker> => await new Promise((resolve, reject) => {
    // One call at a time per worker: the listener pair goes when either fires (no pile of 'error' listeners).
    const onMessage = (m: FromWorker): void => { w.off('error', onError); resolve(m) }
    const onError = (err: Error): void => { w.off('message', onMessage); reject(err) }
    w.once('message', onMessage)
    w.once('error', onError)
  })

  const api = {
    /** Start `count` endpoints, one worker thread each, heartbeats of `bytes` every `intervalMs`; their listen URLs in order. */
    async start (a: { count: number; intervalMs: number; bytes: number }): Promise<{ urls: string[] }> {
      const made = Array.from({ length: a.count }, () => new Worker(new URL(import.meta.url), { workerData: { intervalMs: a.intervalMs, bytes: a.bytes } }))
      workers.push(...made)
      const r = await Promise.all(made.map(async (w) => await next(w)))
      return { urls: r.map((m) => ('url' in m ? m.url : '')) }
    },

    /** Endpoint i dials every URL in `dial[i]`; resolves once every link is open. */
    async connect (a: { dial: string[][] }): Promise<{ links: number }> {
      const r = await Promise.all(workers.map(async (w, i) => {
        const p = next(w)
        w.postMessage({ dial: a.dial[i] ?? [] } satisfies ToWorker)
        return await p
      }))
      return { links: r.reduce((s, m) => s + ('linked' in m ? m.linked : 0), 0) }
    },

    /** RSS and heap figures after a full GC of every thread's heap (the workers' first). */
    async mem (): Promise<MemResult> {
      await Promise.all(workers.map(async (w) => {
        const p = next(w)
        w.postMessage({ gc: true } satisfies ToWorker)
        await p
      }))
      return memAfterGc()
    },

    idleStart (): void { cpu.start() },
    idleStop: (): { cpu: CpuResult; nodes: number } => ({ cpu: cpu.stop(), nodes: workers.length }),
  }

  serve(api, {
    onExit: async () => { await Promise.all(workers.map(async (w) => await w.terminate())) },
  })
}

export type RawHeartbeatNodeApi = {
  start (a: { count: number; intervalMs: number; bytes: number }): Promise<{ urls: string[] }>
  connect (a: { dial: string[][] }): Promise<{ links: number }>
  mem (): Promise<MemResult>
  idleStart (): void
  idleStop (): { cpu: CpuResult; nodes: number }
}
