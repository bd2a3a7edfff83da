import type { LogRecord } from '../actor/protocol.js'

const LEVELS = { debug: 20, info: 30, warn: 40, error: 50 } as const
type Level = keyof typeof LEVELS

/** Records kept per event-loop turn; the excess is dropped and counted. */
const MAX_BATCH = 1000

/** State shared by a logger and its children: one batch per thread. */
interface Shared { batch: LogRecord[]; scheduled: boolean; dropped: number }

/**
 * A worker thread's logger. Workers never write to stdout themselves: records
 * are batched per event-loop turn and forwarded to the host's pino logger over
 * the control plane, so nothing blocks and lines never interleave.
 */
export class WorkerLogger {
  readonly #sink: (records: LogRecord[]) => void
  readonly #min: number
  readonly #bindings: Record<string, unknown>
  readonly #shared: Shared

  constructor (sink: (records: LogRecord[]) => void, level: string, bindings: Record<string, unknown> = {}, shared?: Shared) {
    this.#sink = sink
    this.#min = level in LEVELS ? LEVELS[level as Level] : level === 'silent' ? Infinity : LEVELS.info
    this.#bindings = bindings
    this.#shared = shared ?? { batch: [], scheduled: false, dropped: 0 }
  }

  child (bindings: Record<string, unknown>): WorkerLogger {
    return new WorkerLogger(this.#sink, levelName(this.#min), { ...this.#bindings, ...bindings }, this.#shared)
  }

  isEnabled (level: Level): boolean { return LEVELS[level] >= this.#min }
  debug (obj: Record<string, unknown>, msg: string): void { this.#log('debug', obj, msg) }
  info (obj: Record<string, unknown>, msg: string): void { this.#log('info', obj, msg) }
  warn (obj: Record<string, unknown>, msg: string): void { this.#log('warn', obj, msg) }
  error (obj: Record<string, unknown>, msg: string): void { this.#log('error', obj, msg) }

  #log (level: Level, obj: Record<string, unknown>, msg: string): void {
    if (LEVELS[level] < this.#min) return
    const s = this.#shared
    // A log storm must not grow memory: beyond MAX_BATCH records per turn
    // the rest are counted, and the count is logged with the batch.
    if (s.batch.length >= MAX_BATCH) { s.dropped++; return }
    s.batch.push({ level, obj: { ...this.#bindings, ...obj }, msg })
    if (!s.scheduled) {
      s.scheduled = true
      setImmediate(() => {
        const b = s.batch
        if (s.dropped > 0) {
          b.push({ level: 'warn', obj: { ...this.#bindings, event: 'log:dropped', dropped: s.dropped }, msg: `${s.dropped} log records dropped (more than ${MAX_BATCH} in one event-loop turn)` })
          s.dropped = 0
        }
        s.batch = []
        s.scheduled = false
        try { this.#sink(b) } catch { /* host gone: nothing to tell */ }
      }).unref()
    }
  }
}

function levelName (n: number): string {
  for (const [k, v] of Object.entries(LEVELS)) if (v === n) return k
  return 'silent'
}
