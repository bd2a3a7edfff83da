/**
 * Child-side measuring tools: the receiver's rate window, event-loop delay
 * and process CPU. All timestamps are taken by the process that measures.
 *
 * @module
 */
import { readFileSync, readdirSync } from 'node:fs'
import { getHeapStatistics } from 'node:v8'
import { monitorEventLoopDelay, performance, type IntervalHistogram } from 'node:perf_hooks'
import type { CpuResult, EldSummary, FloodResult, MemResult, RateResult } from './ipc.js'
import { quantile, round } from './stats.js'

/** Sampling interval of {@link EldRecorder}, ms. */
export const ELD_RESOLUTION_MS = 10

/**
 * Event-loop delay of this thread (`perf_hooks.monitorEventLoopDelay`, 10 ms
 * resolution). Node records the whole interval between two of the monitor's
 * timer callbacks, the resolution included (an idle loop reads ~10 ms), so
 * the resolution is subtracted: the figures are how late the timer ran.
 * (JSON lines without `eld_resolution_subtracted: true` read 10 ms high.)
 * The histogram only gets a sample when the loop turns, so a
 * loop that is blocked when `stop()` is called (or for the whole window)
 * would go unreported: a 10 ms interval timer notes the last turn, and a
 * stall still running at `stop()` counts as a sample of its own length.
 */
export class EldRecorder {
  readonly #h: IntervalHistogram = monitorEventLoopDelay({ resolution: ELD_RESOLUTION_MS })
  #timer: NodeJS.Timeout | undefined
  #lastTurn = 0
  start (): void {
    this.#h.reset()
    this.#h.enable()
    this.#lastTurn = performance.now()
    clearInterval(this.#timer)
    this.#timer = setInterval(() => { this.#lastTurn = performance.now() }, ELD_RESOLUTION_MS)
  }

  /** Drop what was recorded so far (e.g. at the end of warmup). */
  reset (): void { this.#h.reset(); this.#lastTurn = performance.now() }

  stop (): EldSummary {
    this.#h.disable()
    clearInterval(this.#timer)
    const stallMs = Math.max(0, performance.now() - this.#lastTurn - ELD_RESOLUTION_MS)
    const n = this.#h.count
    // Histogram values are ns (interval incl. the resolution); with no samples it reports huge mins and NaN means.
    const ms = (ns: number): number => (Number.isFinite(ns) && n > 0 ? Math.max(0, ns / 1e6 - ELD_RESOLUTION_MS) : 0)
    const p50 = ms(this.#h.percentile(50))
    const p99 = ms(this.#h.percentile(99))
    const max = Math.max(ms(this.#h.max), stallMs)
    // A stall at stop() is one more sample: with few samples it is the p99 (and the p50 with none).
    const p99WithStall = n === 0 || stallMs > p99 && 1 / (n + 1) > 0.01 ? Math.max(p99, stallMs) : p99
    return { p50Ms: round(n === 0 ? stallMs : p50, 2), p99Ms: round(p99WithStall, 2), maxMs: round(max, 2), samples: n, stallAtStopMs: round(stallMs, 2) }
  }
}

/**
 * How late a timer of this thread runs, over several windows with gaps
 * between them (ms, no resolution to subtract). monitorEventLoopDelay cannot
 * do that: it keeps its last timestamp across disable()/enable(), so the
 * first sample of each window is the whole gap since the previous one (a
 * histogram of ~100 ms windows then reads the gaps as its p99). Here a
 * `resolutionMs` timer chain runs only inside windows; a timer still
 * pending at stop() counts as a sample if already late (a blocked loop).
 */
export class TimerLateness {
  readonly #samples: number[] = []
  readonly #resolutionMs: number
  #timer: NodeJS.Timeout | undefined
  #due = 0
  constructor (resolutionMs = ELD_RESOLUTION_MS) { this.#resolutionMs = resolutionMs }

  start (): void {
    this.#arm(performance.now())
  }

  stop (): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
    const late = performance.now() - this.#due
    if (late > 0) this.#samples.push(late)
  }

  readonly #tick = (): void => {
    const now = performance.now()
    this.#samples.push(Math.max(0, now - this.#due))
    this.#arm(now)
  }

  #arm (now: number): void {
    this.#due = now + this.#resolutionMs
    this.#timer = setTimeout(this.#tick, this.#resolutionMs)
  }

  /** p50 / p99 / max lateness in ms (nearest rank) and the sample count. */
  summary (): { p50Ms: number; p99Ms: number; maxMs: number; samples: number } {
    const s = this.#samples
    const q = (p: number): number => s.length === 0 ? 0 : round(quantile(s, p), 2)
    return { p50Ms: q(0.5), p99Ms: q(0.99), maxMs: q(1), samples: s.length }
  }
}

/** CPU of the whole process (every thread: process.cpuUsage covers them all) over a window. */
export class CpuWindow {
  #cpu = process.cpuUsage()
  #t = performance.now()
  start (): void { this.#cpu = process.cpuUsage(); this.#t = performance.now() }
  stop (): CpuResult {
    const d = process.cpuUsage(this.#cpu)
    const wallMs = performance.now() - this.#t
    const cpuMs = (d.user + d.system) / 1000
    return { cpuMs: round(cpuMs, 1), wallMs: round(wallMs, 1), pctOfCore: round(100 * cpuMs / wallMs, 2) }
  }
}

/**
 * Counts received messages. `measure()` waits for the next message, lets
 * `warmupMs` pass, then counts for `measureMs` between two timestamps of its
 * own; the event-loop delay and CPU are taken over the same window.
 */
export class RateMeter {
  count = 0
  bytes = 0
  #next: (() => void) | undefined

  /** Call from the message handler. */
  hit (bytes: number): void {
    this.count++
    this.bytes += bytes
    if (this.#next !== undefined) { const f = this.#next; this.#next = undefined; f() }
  }

  async measure (warmupMs: number, measureMs: number, firstTimeoutMs = 10_000): Promise<RateResult> {
    const err = new Error(`receiver: no message within ${firstTimeoutMs} ms of arming the measurement`)
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => { this.#next = undefined; reject(err) }, firstTimeoutMs)
      this.#next = () => { clearTimeout(t); resolve() }
    })
    await sleep(warmupMs)
    const eld = new EldRecorder()
    const cpu = new CpuWindow()
    const c0 = this.count
    const b0 = this.bytes
    const t0 = performance.now()
    eld.start()
    cpu.start()
    await sleep(measureMs)
    const t1 = performance.now()
    const c1 = this.count
    const b1 = this.bytes
    const cpuR = cpu.stop()
    return { count: c1 - c0, bytes: b1 - b0, ms: t1 - t0, eld: eld.stop(), cpuPct: cpuR.pctOfCore, windowEndEpochMs: epochMs(t1) }
  }

  /**
   * Resolves once no message has arrived for `quietMs` (the previous flood's
   * backlog has drained), or after `maxMs`. Returns the messages drained.
   */
  async quiesce (quietMs: number, maxMs: number): Promise<{ drained: number; quiet: boolean }> {
    const start = performance.now()
    const c0 = this.count
    let seen = this.count
    let since = performance.now()
    for (;;) {
      await sleep(Math.min(25, quietMs))
      const now = performance.now()
      if (this.count !== seen) { seen = this.count; since = now }
      if (now - since >= quietMs) return { drained: this.count - c0, quiet: true }
      if (now - start >= maxMs) return { drained: this.count - c0, quiet: false }
    }
  }
}

/** Memory after a forced GC of this thread's heap (needs --expose-gc; the harness forks children with it). */
export function memAfterGc (): MemResult {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc !== undefined) { gc(); gc() }
  const m = process.memoryUsage()
  const h = getHeapStatistics()
  const smaps = residentByMapping()
  return {
    rss: m.rss,
    heapUsed: m.heapUsed,
    external: m.external,
    arrayBuffers: m.arrayBuffers,
    heapsUsed: h.used_heap_size,
    heapsPhysical: h.total_physical_size,
    ...(smaps === undefined ? {} : { residentKiB: smaps }),
  }
}

/** What `Mesh._collectGarbage()` reports of one node's worker heaps. */
export interface WorkerHeaps { readonly collected: number; readonly usedBytes: number; readonly physicalBytes: number }

/**
 * This thread's {@link memAfterGc} sample with the worker heaps of the
 * process's nodes (each already collected by `Mesh._collectGarbage()`)
 * added to its V8 heap totals.
 */
export function withWorkerHeaps (m: MemResult, workers: readonly WorkerHeaps[]): MemResult {
  let collected = 0
  let used = 0
  let physical = 0
  for (const w of workers) { collected += w.collected; used += w.usedBytes; physical += w.physicalBytes }
  return { ...m, workerHeapsCollected: collected, heapsUsed: (m.heapsUsed ?? 0) + used, heapsPhysical: (m.heapsPhysical ?? 0) + physical, workerHeapsPhysical: physical }
}

/** Free space in the V8 heaps' resident pages (resident − live): V8's sizing, not data held. NaN if not sampled. */
export function heapSlackBytes (m: MemResult): number {
  return m.heapsPhysical === undefined || m.heapsUsed === undefined ? NaN : m.heapsPhysical - m.heapsUsed
}

/** What the process holds: RSS less the V8 heaps' free page space (native memory plus live JS objects). */
export function heldBytes (m: MemResult): number {
  return m.rss - heapSlackBytes(m)
}

/**
 * Resident KiB by kind of mapping (Linux /proc/self/smaps): where RSS growth
 * lives. 'malloc' is glibc's brk heap plus the used part of its per-thread
 * arenas (anonymous mappings starting on a 64 MiB boundary, where glibc
 * places them), 'file' is code and data mapped from files, 'anon' every
 * other anonymous mapping (V8's heap pages, SharedArrayBuffers, thread
 * stacks). undefined off Linux.
 */
export function residentByMapping (): Record<string, number> | undefined {
  let text: string
  try { text = readFileSync('/proc/self/smaps', 'utf8') } catch { return undefined }
  const out: Record<string, number> = {}
  let key = 'anon'
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]+)-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line)
    if (m !== null) {
      const name = m[2] ?? ''
      const arena = name === '' && BigInt('0x' + m[1]!) % ARENA_ALIGN === 0n
      key = name.startsWith('/') ? 'file' : name === '[heap]' || arena ? 'malloc' : name === '' ? 'anon' : name
      continue
    }
    const r = /^Rss:\s+(\d+) kB/.exec(line)
    if (r !== null) out[key] = (out[key] ?? 0) + Number(r[1])
  }
  return out
}

/** Per thread of this process (by tid): ms on a CPU and ms runnable but waiting for one, since it started. */
export type SchedStats = Record<string, readonly [runMs: number, waitMs: number]>

/**
 * Every thread's scheduler counters (/proc/self/task/<tid>/schedstat: time
 * on a CPU, time runnable in a run queue), undefined off Linux. Run-queue
 * wait is what a thread loses to others on a busy machine: a heartbeat
 * answered late because its IO worker was ready but not running shows here,
 * not in any profile.
 */
export function schedStats (): SchedStats | undefined {
  let tids: string[]
  try { tids = readdirSync('/proc/self/task') } catch { return undefined }
  const out: Record<string, readonly [number, number]> = {}
  for (const tid of tids) {
    try {
      const [run, wait] = readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8').split(' ')
      out[tid] = [Number(run) / 1e6, Number(wait) / 1e6]
    } catch { /* the thread ended meanwhile */ }
  }
  return out
}

/**
 * Run-queue wait between two {@link schedStats} samples: the sum over the
 * threads alive at both, and the largest single thread's (ms).
 */
export function schedWaitBetween (a: SchedStats, b: SchedStats): { waitMs: number; maxThreadWaitMs: number; runMs: number } {
  let waitMs = 0
  let runMs = 0
  let maxThreadWaitMs = 0
  for (const [tid, [run1, wait1]] of Object.entries(b)) {
    const before = a[tid]
    if (before === undefined) continue
    const w = wait1 - before[1]
    waitMs += w
    runMs += run1 - before[0]
    if (w > maxThreadWaitMs) maxThreadWaitMs = w
  }
  return { waitMs, maxThreadWaitMs, runMs }
}

/** glibc's HEAP_MAX_SIZE on 64-bit: per-thread arenas start on this boundary. */
const ARENA_ALIGN = 64n << 20n

/**
 * A sender's side of a flood: the warmup, the deadline, and its event-loop
 * delay and CPU windows, restarted when the warmup ends (as the receiver's
 * {@link RateMeter.measure} window is).
 */
export class FloodClock {
  readonly #eld = new EldRecorder()
  readonly #cpu = new CpuWindow()
  readonly #warmupMs: number
  readonly #t0: number
  readonly #deadline: number
  #tWarm: number
  #warm = false
  #sentWarm = 0

  constructor (warmupMs: number, maxMs: number) {
    this.#warmupMs = warmupMs
    this.#eld.start()
    this.#cpu.start()
    this.#t0 = this.#tWarm = performance.now()
    this.#deadline = this.#t0 + maxMs
  }

  /** Call between sends with the count so far: ends the warmup when due; false once the deadline has passed. */
  tick (sent: number): boolean {
    const t = performance.now()
    if (!this.#warm && t - this.#t0 >= this.#warmupMs) {
      this.#warm = true
      this.#tWarm = t
      this.#sentWarm = sent
      this.#eld.reset()
      this.#cpu.start()
    }
    return t < this.#deadline
  }

  /** The flood's result: what was sent after the warmup, and over how long. */
  result (sent: number, stoppedBy: FloodResult['stoppedBy']): FloodResult {
    const tEnd = performance.now()
    return { sent: sent - this.#sentWarm, ms: round(tEnd - this.#tWarm, 1), eld: this.#eld.stop(), cpuPct: this.#cpu.stop().pctOfCore, stoppedBy, endedEpochMs: epochMs(tEnd) }
  }
}

/**
 * Bytes written per corked tick before yielding to the event loop: 16
 * messages, within 64 KiB .. 1 MiB. A sweep of 64 KiB .. 4 MiB ticks and
 * 256 KiB .. 16 MiB high-water marks found no setting clearly better (the
 * spread between runs on a shared 2-core box was larger than between
 * settings); this one was never the worst.
 */
export function defaultTickBytes (size: number): number {
  return Math.min(1024 * 1024, Math.max(64 * 1024, 16 * size))
}

/** A `performance.now()` reading as epoch ms: comparable between processes on one machine. */
export function epochMs (now = performance.now()): number {
  return performance.timeOrigin + now
}

export async function sleep (ms: number): Promise<void> {
  await new Promise<void>((resolve) => { setTimeout(resolve, ms) })
}

// One rounding for every perf figure (stats.ts); re-exported for the child processes that import it from here.
export { round }
