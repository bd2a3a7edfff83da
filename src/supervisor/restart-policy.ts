/** How often a crashing worker is restarted: at most `max` restarts in any `windowMs`. */
export class RestartPolicy {
  readonly #max: number
  readonly #windowMs: number
  readonly #times: number[] = []

  constructor (o: { max: number; windowMs: number }) {
    this.#max = o.max
    this.#windowMs = o.windowMs
  }

  /** Record a restart at `now`; false once the budget of the window is spent. */
  allow (now: number): boolean {
    while (this.#times.length > 0 && (this.#times[0] as number) <= now - this.#windowMs) this.#times.shift()
    if (this.#times.length >= this.#max) return false
    this.#times.push(now)
    return true
  }
}
