/**
 * Infection-style dissemination (SWIM §4.1): membership updates ride on the
 * probe traffic, each retransmitted a bounded number of times, the least
 * transmitted first. Same policy as memberlist's `TransmitLimitedQueue`.
 *
 * ```
 *   limit = retransmitMult × ceil(log10(n + 1))     n = live cluster size
 * ```
 *
 * With a fan-out of one message per protocol period per node, log(n) rounds
 * reach everybody with high probability; the multiplier buys robustness to
 * message loss.
 *
 * @module
 */
import type { Update } from './member-table.js'

/** How many times one update is sent before it is dropped from the queue. */
export function retransmitLimit (retransmitMult: number, n: number): number {
  return retransmitMult * Math.max(1, Math.ceil(Math.log10(n + 1)))
}

interface Entry {
  readonly key: string
  readonly update: Update
  transmits: number
  /** Enqueue order: among equally transmitted entries, the newest goes first. */
  readonly order: number
}

/**
 * The queue of updates waiting to be piggybacked. Keyed so that a newer
 * update about a member replaces the older one (`invalidate`), while suspect
 * confirmations from distinct suspecters coexist (each is news to Lifeguard).
 */
export class BroadcastQueue {
  readonly #entries = new Map<string, Entry>()
  #order = 0

  get size (): number { return this.#entries.size }

  /**
   * Queue `update` under `key`, replacing an entry with the same key and
   * resetting its transmit count (the news is fresh again).
   */
  enqueue (key: string, update: Update): void {
    this.#entries.delete(key)
    this.#entries.set(key, { key, update, transmits: 0, order: ++this.#order })
  }

  /** Drop every queued update about member `id` (it was superseded). */
  invalidate (id: string): void {
    for (const [key, e] of this.#entries) {
      if (e.update.id === id) this.#entries.delete(key)
    }
  }

  /** Queued updates (for tests and diagnostics), least transmitted first. */
  peek (): Array<{ update: Update, transmits: number }> {
    return this.#sorted().map((e) => ({ update: e.update, transmits: e.transmits }))
  }

  /**
   * Take up to `max` updates for one message, counting a transmission for
   * each and dropping those that reached `limit`. `skip` excludes updates
   * (without counting them) that are pointless for this recipient.
   */
  take (max: number, limit: number, skip?: (u: Update) => boolean): Update[] {
    const out: Update[] = []
    if (max <= 0) return out
    for (const e of this.#sorted()) {
      if (out.length >= max) break
      if (skip !== undefined && skip(e.update)) continue
      out.push(e.update)
      e.transmits++
      if (e.transmits >= limit) this.#entries.delete(e.key)
    }
    return out
  }

  #sorted (): Entry[] {
    return [...this.#entries.values()].sort((a, b) => a.transmits - b.transmits || b.order - a.order)
  }
}
