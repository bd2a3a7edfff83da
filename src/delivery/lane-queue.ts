/**
 * Sends waiting for room in a peer's send queue, one FIFO per lane, taken
 * highest lane first (control, then priority, then bulk). The host writes a
 * large message into the queue chunk by chunk as room frees; with one FIFO
 * per lane, a `priority` message that arrives meanwhile is written before
 * the bulk message's remaining chunks instead of after all of them. Within a
 * lane, order is call order: messages of one lane never overtake each other.
 *
 * Sans-IO: no ring, no clock; the host's send pump drives it.
 */
export class LaneQueue<T> {
  readonly #lanes: T[][]

  /** `lanes`: the number of lanes; lane 0 is served first. */
  constructor (lanes: number) {
    if (!Number.isInteger(lanes) || lanes < 1) throw new RangeError(`lanes must be a positive integer (got ${lanes})`)
    this.#lanes = Array.from({ length: lanes }, () => [])
  }

  /** Sends waiting, all lanes. */
  get size (): number {
    let n = 0
    for (const q of this.#lanes) n += q.length
    return n
  }

  /** Queue `item` at the back of `lane`. */
  push (lane: number, item: T): void {
    this.#queue(lane).push(item)
  }

  /** The send to serve next: the oldest of the highest lane that has one. */
  peek (): T | undefined {
    for (const q of this.#lanes) if (q.length > 0) return q[0]
    return undefined
  }

  /** Remove and return the oldest send of `lane`. */
  shift (lane: number): T | undefined {
    return this.#queue(lane).shift()
  }

  /**
   * True if a send on `lane` must queue behind others: something waits on
   * that lane (it would be overtaken) or on a higher one (it goes first).
   */
  busyFor (lane: number): boolean {
    const last = Math.min(lane, this.#lanes.length - 1)
    for (let i = 0; i <= last; i++) if ((this.#lanes[i] as T[]).length > 0) return true
    return false
  }

  /** Visit every waiting send (all lanes, lane order, then call order). */
  forEach (fn: (item: T) => void): void {
    for (const q of this.#lanes) for (const it of q) fn(it)
  }

  /** Remove every send for which `pred` is true (all lanes, order kept); returns them. */
  removeWhere (pred: (item: T) => boolean): T[] {
    const out: T[] = []
    for (let i = 0; i < this.#lanes.length; i++) {
      const q = this.#lanes[i] as T[]
      const keep: T[] = []
      for (const it of q) (pred(it) ? out : keep).push(it)
      this.#lanes[i] = keep
    }
    return out
  }

  #queue (lane: number): T[] {
    const q = this.#lanes[lane]
    if (q === undefined) throw new RangeError(`lane ${lane} out of range 0..${this.#lanes.length - 1}`)
    return q
  }
}
