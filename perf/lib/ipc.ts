/**
 * The control channel between the harness and its child processes: one file
 * of message types shared by both sides (like piscina's `types.ts`), plus the
 * child side's `serve()`.
 *
 * Every request carries an id; the child answers each with exactly one reply.
 * Requests may overlap (the harness can ask the receiver for a measurement and
 * start the sender's flood before that measurement answers).
 *
 * @module
 */
import { hostHeapMbFromEnv, retainHostHeap } from './host-heap.js'

/** Harness → child. */
export interface Request { readonly id: number; readonly cmd: string; readonly arg: unknown }
/** Child → harness. */
export type Reply =
  | { readonly id: number; readonly ok: true; readonly result: unknown }
  | { readonly id: number; readonly ok: false; readonly error: string }

/** A child's command table: command name → handler of one argument. */
export type Api = Record<string, (arg: any) => unknown>

/** Result of a receiver-side rate measurement (the receiver takes both timestamps itself). */
export interface RateResult {
  /** Messages counted in the window. */
  readonly count: number
  /** Payload bytes counted in the window (application payload only, no framing). */
  readonly bytes: number
  /** Window length in ms, between the receiver's own two `performance.now()` readings. */
  readonly ms: number
  /** Receiver's event-loop delay during the window, ms. */
  readonly eld: EldSummary
  /** Receiver process CPU (all threads) during the window, % of one core. */
  readonly cpuPct: number
  /** Wall clock (epoch ms, comparable across processes) at the end of the window. */
  readonly windowEndEpochMs: number
}

/** The sender's side of a flood. */
export interface FloodResult {
  readonly sent: number
  readonly ms: number
  /** Sender's event-loop delay after warmup, ms. */
  readonly eld: EldSummary
  /** Sender process CPU (all threads) after warmup, % of one core. */
  readonly cpuPct: number
  /** Why the flood stopped. */
  readonly stoppedBy: 'stop' | 'deadline'
  /** Wall clock (epoch ms, comparable across processes) when the sender stopped. */
  readonly endedEpochMs: number
}

export interface EldSummary {
  readonly p50Ms: number
  readonly p99Ms: number
  readonly maxMs: number
  /** Times the loop turned and the histogram took a sample. */
  readonly samples: number
  /** The loop was blocked this long when the window ended (0 if it was turning). */
  readonly stallAtStopMs: number
}

/** Round-trip samples, ns, after warmup. */
export interface PingResult { readonly samplesNs: number[]; readonly ms: number }

/** process.memoryUsage() after a forced GC, bytes. */
export interface MemResult {
  readonly rss: number
  readonly heapUsed: number
  readonly external: number
  readonly arrayBuffers: number
  /**
   * V8 heaps after the GC, summed over this thread and (mesh-node's mem) every
   * worker of every node: live bytes, and resident bytes of their pages.
   */
  readonly heapsUsed?: number
  readonly heapsPhysical?: number
  /** The workers' share of heapsPhysical. */
  readonly workerHeapsPhysical?: number
  /** Resident KiB by kind of mapping (perf/lib/measure.ts residentByMapping), Linux only. */
  readonly residentKiB?: Record<string, number>
  /** Worker heaps (IO and router workers of every node) collected before the sample (Mesh._collectGarbage). */
  readonly workerHeapsCollected?: number
}

/** CPU of the whole process (all threads) over a window. */
export interface CpuResult { readonly cpuMs: number; readonly wallMs: number; readonly pctOfCore: number }

/**
 * Child side: answer requests from the harness with `handlers`, and exit when
 * the harness goes away (its IPC channel closes), so no child outlives it.
 * A watchdog ends the child after `PERF_CHILD_MAX_MS` (default 10 min) whatever happens.
 */
export function serve (handlers: Api, opts: { onExit?: () => Promise<void> } = {}): void {
  if (process.send === undefined) {
    console.error('this script is a perf child process: start it through perf/harness.ts')
    process.exit(2)
  }
  const heapMb = hostHeapMbFromEnv()
  if (heapMb > 0) {
    const h = retainHostHeap(heapMb)
    console.error(`perf child ${process.pid}: host heap ${h.usedBeforeMb.toFixed(1)} → ${h.usedAfterMb.toFixed(1)} MB used (--host-heap-mb=${heapMb})`)
  }
  const maxMs = Number(process.env['PERF_CHILD_MAX_MS'] ?? 600_000)
  setTimeout(() => { process.exit(3) }, maxMs).unref()
  process.on('disconnect', () => { process.exit(0) })
  process.on('message', (raw: unknown) => {
    const req = raw as Request
    if (typeof req !== 'object' || req === null || typeof req.id !== 'number') return
    const reply = (r: Reply): void => {
      if (process.connected) process.send?.(r)
    }
    if (req.cmd === 'exit') {
      // Close what the child opened (bounded), then exit so --cpu-prof profiles are written.
      const hard = setTimeout(() => { process.exit(0) }, 2_000)
      void Promise.resolve(opts.onExit?.()).catch(() => {}).finally(() => { clearTimeout(hard); process.exit(0) })
      return
    }
    const h = handlers[req.cmd]
    if (h === undefined) { reply({ id: req.id, ok: false, error: `unknown command ${req.cmd}` }); return }
    Promise.resolve()
      .then(() => h(req.arg))
      .then(
        (result) => { reply({ id: req.id, ok: true, result: result ?? null }) },
        (err: unknown) => { reply({ id: req.id, ok: false, error: String((err as Error)?.stack ?? err) }) },
      )
  })
  process.send({ id: 0, ok: true, result: 'ready' } satisfies Reply)
}
