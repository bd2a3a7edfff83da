/**
 * Ring buffer vs postMessage: main thread → worker thread throughput.
 *
 *   npm run build && node dist/perf/ring.bench.js
 *
 * Scenarios (payload sizes in the names): "main→worker 64 B" and
 * "main→worker 1 KiB". Each sends N messages to one worker thread
 * (a) through a 1 MiB RingBuffer: the producer appends with tryAppend and
 *     publishes once per CHUNK messages (one Atomics store + at most one
 *     notify), waiting with waitForSpace when full; the worker drains and
 *     sleeps in waitForData; and
 * (b) by postMessage of a Uint8Array (structured clone, i.e. copied), with a
 *     credit window (WINDOW in flight, the worker acks every ACK_EVERY) so
 *     the queue stays bounded like the ring.
 * The worker reads one byte of every message in both cases. A round ends
 * when the worker reports it has received all N.
 *
 * Method: one warmup round of each, then ROUNDS rounds alternating the order
 * (ring, pm, pm, ring, …) so drift and other tenants hit both alike. Reported:
 * median msgs/s and MiB/s per variant, ns/msg at the median, the ring/postMessage
 * throughput ratio (> 1 means the ring is faster), and the main thread's
 * event-loop delay p99 while producing. Benchmarks never assert.
 *
 * Output: a table on stdout; one JSON line per scenario appended to
 * perf/results/ring.jsonl. Finishes by itself in well under a minute.
 *
 * Not measured here: per-message latency (under saturation it is queueing
 * time, not transport cost); STYLE.md §7 latency histograms belong to a
 * ping-pong scenario.
 *
 * @module
 */
import { execFileSync } from 'node:child_process'
import { appendFileSync, mkdirSync } from 'node:fs'
import { cpus } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads'
import { RingBuffer } from '../src/ring/ring-buffer.js'

const RING_BYTES = 1 << 20
const CHUNK = 64
const WINDOW = 1024
const ACK_EVERY = 256
const ROUNDS = 6
const SCENARIOS = [
  { name: 'main→worker 64 B', size: 64, n: 400_000 },
  { name: 'main→worker 1 KiB', size: 1024, n: 200_000 },
] as const

type Variant = 'ring' | 'postMessage'

/** Control messages main → worker. */
type Command =
  | { cmd: 'ring', sab: SharedArrayBuffer, n: number }
  | { cmd: 'pm', n: number }
/** Replies worker → main. */
type Reply = { kind: 'ack', count: number } | { kind: 'done', count: number, sink: number }

// ------------------------------- worker -------------------------------

function workerMain (): void {
  const port = parentPort
  if (port === null) throw new Error('ring.bench worker: no parentPort')
  let pmLeft = 0
  let pmCount = 0
  let sink = 0
  port.on('message', (msg: Command | Uint8Array) => {
    if (msg instanceof Uint8Array) {
      sink = (sink + (msg[0] as number)) | 0
      pmCount++
      if (pmCount === pmLeft) {
        port.postMessage({ kind: 'done', count: pmCount, sink } satisfies Reply)
      } else if (pmCount % ACK_EVERY === 0) {
        port.postMessage({ kind: 'ack', count: pmCount } satisfies Reply)
      }
      return
    }
    if (msg.cmd === 'pm') {
      pmLeft = msg.n
      pmCount = 0
      return
    }
    void consumeRing(RingBuffer.attach(msg.sab), msg.n).then((reply) => port.postMessage(reply))
  })
}

async function consumeRing (ring: RingBuffer, n: number): Promise<Reply> {
  let count = 0
  let sink = 0
  const onRecord = (rec: Uint8Array): void => { sink = (sink + (rec[0] as number)) | 0 }
  while (count < n) {
    count += ring.drain(onRecord)
    if (count < n && await ring.waitForData() === 'closed') break
  }
  return { kind: 'done', count, sink }
}

// -------------------------------- main --------------------------------

interface Round { variant: Variant, seconds: number, eldP99Ms: number }

class Bench {
  readonly #worker: Worker
  // Replies queue up here until #next() takes them (acks may arrive in bursts).
  readonly #replies: Reply[] = []
  #waiter: ((r: Reply) => void) | undefined

  constructor (worker: Worker) {
    this.#worker = worker
    worker.on('message', (r: Reply) => {
      const w = this.#waiter
      if (w !== undefined) { this.#waiter = undefined; w(r) } else this.#replies.push(r)
    })
    worker.on('error', (err) => { console.error(err); process.exit(1) })
  }

  async run (variant: Variant, size: number, n: number): Promise<Round> {
    const msg = new Uint8Array(size)
    const eld = monitorEventLoopDelay({ resolution: 1 })
    eld.enable()
    const t0 = performance.now()
    if (variant === 'ring') await this.#ring(msg, n)
    else await this.#postMessage(msg, n)
    const seconds = (performance.now() - t0) / 1000
    eld.disable()
    return { variant, seconds, eldP99Ms: eld.percentile(99) / 1e6 }
  }

  #next (): Promise<Reply> {
    const queued = this.#replies.shift()
    if (queued !== undefined) return Promise.resolve(queued)
    return new Promise((resolve) => { this.#waiter = resolve })
  }

  async #ring (msg: Uint8Array, n: number): Promise<void> {
    const ring = RingBuffer.create(RING_BYTES)
    this.#worker.postMessage({ cmd: 'ring', sab: ring.sab, n } satisfies Command)
    const done = this.#next()
    let batched = 0
    for (let i = 0; i < n;) {
      msg[0] = i & 0xff
      if (ring.tryAppend(msg)) {
        i++
        if (++batched === CHUNK) { ring.publish(); batched = 0 }
        continue
      }
      // Full: waitForSpace publishes the pending batch, then sleeps.
      batched = 0
      if (!await ring.waitForSpace(msg.length, 10_000)) throw new Error('ring: no space for 10 s')
    }
    ring.publish()
    const r = await done
    if (r.kind !== 'done' || r.count !== n) throw new Error(`ring: worker got ${r.count} of ${n}`)
    ring.close()
  }

  async #postMessage (msg: Uint8Array, n: number): Promise<void> {
    this.#worker.postMessage({ cmd: 'pm', n } satisfies Command)
    let sent = 0
    let acked = 0
    for (;;) {
      while (sent < n && sent - acked < WINDOW) {
        msg[0] = sent & 0xff
        this.#worker.postMessage(msg) // no transfer list: the bytes are copied
        sent++
      }
      const r = await this.#next()
      if (r.kind === 'done') {
        if (r.count !== n) throw new Error(`postMessage: worker got ${r.count} of ${n}`)
        return
      }
      acked = r.count
    }
  }
}

function median (xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m] as number : ((s[m - 1] as number) + (s[m] as number)) / 2
}

function gitCommit (): string {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
  } catch {
    return 'unknown'
  }
}

function resultsDir (): string {
  // dist/perf/ring.bench.js or perf/ring.bench.ts → <repo>/perf/results
  const here = dirname(fileURLToPath(import.meta.url))
  const repo = here.endsWith(join('dist', 'perf')) ? join(here, '..', '..') : join(here, '..')
  return join(repo, 'perf', 'results')
}

async function main (): Promise<void> {
  const worker = new Worker(new URL(import.meta.url), { workerData: { ringBenchWorker: true } })
  const bench = new Bench(worker)
  const node = process.version
  const cpu = cpus()[0]?.model ?? 'unknown'
  const commit = gitCommit()
  const rows: string[][] = []
  const lines: object[] = []
  for (const sc of SCENARIOS) {
    // Warmup: JIT both paths and the worker.
    await bench.run('ring', sc.size, sc.n / 4)
    await bench.run('postMessage', sc.size, sc.n / 4)
    const rounds: Round[] = []
    for (let i = 0; i < ROUNDS; i++) {
      const order: Variant[] = i % 2 === 0 ? ['ring', 'postMessage'] : ['postMessage', 'ring']
      for (const v of order) rounds.push(await bench.run(v, sc.size, sc.n))
    }
    const rate = (v: Variant): number => median(rounds.filter((r) => r.variant === v).map((r) => sc.n / r.seconds))
    const eld = (v: Variant): number => median(rounds.filter((r) => r.variant === v).map((r) => r.eldP99Ms))
    const ring = rate('ring')
    const pm = rate('postMessage')
    const mib = (msgsPerS: number): number => msgsPerS * sc.size / 2 ** 20
    rows.push(
      [sc.name, 'ring', fmt(ring), fmt(mib(ring)), fmt(1e9 / ring), fmt(eld('ring'), 2), (ring / pm).toFixed(2) + 'x'],
      [sc.name, 'postMessage', fmt(pm), fmt(mib(pm)), fmt(1e9 / pm), fmt(eld('postMessage'), 2), '1.00x'],
    )
    lines.push({
      name: `ring vs postMessage ${sc.name}`,
      node,
      cpu,
      commit,
      n: sc.n,
      rounds: ROUNDS,
      payload_bytes: sc.size,
      ring_bytes: RING_BYTES,
      chunk: CHUNK,
      ring_msgs_per_s: Math.round(ring),
      postmessage_msgs_per_s: Math.round(pm),
      ring_p50_ns_per_msg: Math.round(1e9 / ring),
      postmessage_p50_ns_per_msg: Math.round(1e9 / pm),
      ring_mib_per_s: Math.round(mib(ring)),
      postmessage_mib_per_s: Math.round(mib(pm)),
      ring_eld_p99_ms: eld('ring'),
      postmessage_eld_p99_ms: eld('postMessage'),
      ratio_throughput: ring / pm,
      ts: new Date().toISOString(),
    })
  }
  await worker.terminate()
  printTable(['scenario', 'variant', 'msgs/s', 'MiB/s', 'ns/msg', 'ELD p99 ms', 'ring/pm'], rows)
  const dir = resultsDir()
  mkdirSync(dir, { recursive: true })
  const file = join(dir, 'ring.jsonl')
  appendFileSync(file, lines.map((l) => JSON.stringify(l) + '\n').join(''))
  console.log(`\n${node} on ${cpu}, commit ${commit}; medians of ${ROUNDS} interleaved rounds; appended ${lines.length} lines to ${file}`)
}

function fmt (x: number, digits = 0): string {
  return x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
}

function printTable (head: string[], rows: string[][]): void {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: string[]): string =>
    '| ' + cells.map((c, i) => i < 2 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number)).join(' | ') + ' |'
  console.log(line(head))
  console.log('|' + widths.map((w, i) => i < 2 ? '-'.repeat(w + 2) : '-'.repeat(w + 1) + ':').join('|') + '|')
  for (const r of rows) console.log(line(r))
}

if (!isMainThread && (workerData as { ringBenchWorker?: boolean } | null)?.ringBenchWorker === true) {
  workerMain()
} else if (isMainThread) {
  await main()
}
