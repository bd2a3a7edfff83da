import { monitorEventLoopDelay, performance, type IntervalHistogram } from 'node:perf_hooks'

/**
 * Sampling interval of the host event-loop delay monitor, in ms. The monitor
 * is one native libuv timer (no JavaScript runs per sample). A timer wake-up
 * is not free on a VM (about 0.7 % of a core at 10 ms on the 2-core Xeon of
 * perf/RESULTS.md), so the monitor only runs once someone scrapes.
 */
export const ELD_RESOLUTION_MS = 10

/** The quantiles a window reports. */
export const ELD_QUANTILES = [0.5, 0.9, 0.99, 0.999] as const

/** The event-loop delay over one window, in seconds. */
export interface EldWindow {
  /** Delay at each of {@link ELD_QUANTILES}, in seconds. */
  readonly quantiles: readonly number[]
  /** Longest delay, in seconds. */
  readonly max: number
  /** Samples behind the figures (0 for the first window: the monitor starts at the first read). */
  readonly samples: number
}

/** Stops the monitor of an instance dropped without `close()` (the held value is the monitor alone). */
const orphans = new FinalizationRegistry<IntervalHistogram>((h) => { h.disable() })

/**
 * Event-loop delay of the thread that made it (the host's main thread), in
 * windows: each {@link read} returns the delay since the previous read.
 *
 * Node's `monitorEventLoopDelay` records the whole interval between two of
 * its timer callbacks, the resolution included (an idle loop reads ~10 ms at
 * resolution 10), so the delay is the interval minus the resolution. Its
 * `reset()` also forgets when the running interval began, so the first
 * interval after a reset is never recorded — a stall right after a scrape
 * would be lost. A one-shot "bridge" timer, due one resolution after the
 * reset, measures that interval instead: it fires no earlier than the
 * monitor's first callback after the reset (due within one resolution), so
 * its interval covers the one the monitor drops.
 */
export class HostLoopDelay {
  #h: IntervalHistogram | undefined
  #resetAt = 0
  #bridge: NodeJS.Timeout | undefined
  /** Delay (ms) measured by the bridge timer of the current window, once it fired. */
  #bridgeMs: number | undefined
  #closed = false
  #reading: Promise<EldWindow> | undefined

  /**
   * The delay since the previous read (the first read starts the monitor and
   * returns an empty window). Concurrent reads share one window.
   */
  async read (): Promise<EldWindow> {
    this.#reading ??= this.#read().finally(() => { this.#reading = undefined })
    return await this.#reading
  }

  async #read (): Promise<EldWindow> {
    if (this.#closed) return { quantiles: ELD_QUANTILES.map(() => 0), max: 0, samples: 0 }
    if (this.#h === undefined) {
      this.#h = monitorEventLoopDelay({ resolution: ELD_RESOLUTION_MS })
      this.#h.enable()
      orphans.register(this, this.#h, this)
      this.#startWindow()
      return { quantiles: ELD_QUANTILES.map(() => 0), max: 0, samples: 0 }
    }
    // Let the loop pass its timers phase first: a stall that ended just
    // before this read is recorded only when the monitor's (overdue) timer
    // runs. libuv runs timers in order of due time, computed from the loop
    // time of the iteration that armed them — after a stall in the same
    // iteration that is stale, so a 1 ms timer armed now can be due before
    // the monitor's (seen on a loaded box: the stall was missed). One
    // resolution + 1 ms is due after the monitor's next tick whatever the
    // loop time says.
    await new Promise<void>((resolve) => { setTimeout(resolve, ELD_RESOLUTION_MS + 1).unref() })
    const h = this.#h
    const res = ELD_RESOLUTION_MS
    // The bridge interval: measured when it fired, else still running (the
    // loop is turning now, so it ends here).
    const bridgeMs = this.#bridgeMs ?? Math.max(0, performance.now() - this.#resetAt - res)
    const n = h.count
    const ms = (ns: number): number => n > 0 && Number.isFinite(ns) ? Math.max(0, ns / 1e6 - res) : 0
    const quantiles = ELD_QUANTILES.map((q) => {
      const p = ms(h.percentile(q * 100))
      // One extra sample (the bridge) above the monitor's quantile is the
      // union's quantile only when it is the top-ranked sample of it.
      return bridgeMs > p && (1 - q) * (n + 1) < 1 ? bridgeMs : p
    })
    const window: EldWindow = { quantiles: quantiles.map((v) => v / 1e3), max: Math.max(ms(h.max), bridgeMs) / 1e3, samples: n + 1 }
    h.reset()
    this.#startWindow()
    return window
  }

  #startWindow (): void {
    clearTimeout(this.#bridge)
    this.#bridgeMs = undefined
    const at = performance.now()
    this.#resetAt = at
    this.#bridge = setTimeout(() => {
      this.#bridge = undefined
      this.#bridgeMs = Math.max(0, performance.now() - at - ELD_RESOLUTION_MS)
    }, ELD_RESOLUTION_MS).unref()
  }

  /** Stop the monitor. Idempotent; later reads return empty windows. */
  close (): void {
    if (this.#closed) return
    this.#closed = true
    clearTimeout(this.#bridge)
    this.#h?.disable()
    orphans.unregister(this)
  }
}
