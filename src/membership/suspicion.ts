/**
 * Lifeguard's dynamic suspicion timeout ("Local Health Aware Suspicion" in
 * Dadgar et al., "Lifeguard: Local Health Awareness for More Accurate Failure
 * Detection", 2018; the same formula as hashicorp/memberlist `suspicion.go`).
 *
 * A suspicion starts with a long timeout and shrinks it, logarithmically, as
 * other members independently suspect the same member: one slow observer alone
 * cannot kill a healthy node quickly, while a member that many observers
 * cannot reach is declared dead quickly.
 *
 * ```
 *   min     = suspicionMult × log10(max(n, 2)) × protocolPeriodMs
 *   max     = suspicionMaxMult × min
 *   K       = max(0, min(indirectProbes, n − 2))         expected confirmations
 *   timeout = max − (max − min) × log(c + 1) / log(K + 1)  c = confirmations so far
 *           (floored to a whole ms, clamped to [min, max]; K = 0 → min)
 * ```
 *
 * @module
 */

/** Suspicion bounds for a cluster of `n` members (self included). */
export interface SuspicionBounds {
  /** Timeout once K confirmations arrived, in ms. */
  minMs: number
  /** Timeout with no confirmation, in ms. */
  maxMs: number
  /** Confirmations expected before the timeout reaches `minMs`. */
  expected: number
}

/**
 * Compute {@link SuspicionBounds}. `n` is the live cluster size including
 * this node; `log10(max(n, 2))` keeps a two-node cluster from getting a zero
 * timeout.
 */
export function suspicionBounds (
  n: number,
  c: { protocolPeriodMs: number, suspicionMult: number, suspicionMaxMult: number, indirectProbes: number },
): SuspicionBounds {
  const minMs = Math.floor(c.suspicionMult * Math.log10(Math.max(n, 2)) * c.protocolPeriodMs)
  const maxMs = Math.floor(c.suspicionMaxMult * minMs)
  const expected = Math.max(0, Math.min(c.indirectProbes, n - 2))
  return { minMs, maxMs, expected }
}

/**
 * The suspicion timeout after `confirmations` independent confirmations, in
 * whole ms (see the module comment).
 */
export function suspicionTimeout (confirmations: number, b: SuspicionBounds): number {
  if (b.expected < 1) return b.minMs
  const frac = Math.log(confirmations + 1) / Math.log(b.expected + 1)
  const t = Math.floor(b.maxMs - (b.maxMs - b.minMs) * frac)
  return Math.max(b.minMs, Math.min(b.maxMs, t))
}

/**
 * One running suspicion of one member at one incarnation: its start, the
 * distinct suspecters seen, and the resulting deadline.
 */
export class Suspicion {
  /** The incarnation suspected; a suspicion of a higher incarnation replaces this one. */
  readonly incarnation: number
  /** `now` when we started suspecting, in ms. */
  readonly startedAt: number
  readonly bounds: SuspicionBounds
  /** Who raised the suspicion we heard first. */
  readonly first: string
  readonly #suspecters = new Set<string>()
  #deadline: number
  /** Floor set by {@link postpone}; confirmations cannot pull the deadline below it. */
  #notBefore = -Infinity

  /**
   * @param first who raised the suspicion we heard first (not a confirmation).
   */
  constructor (incarnation: number, first: string, startedAt: number, bounds: SuspicionBounds) {
    this.incarnation = incarnation
    this.startedAt = startedAt
    this.bounds = bounds
    this.first = first
    this.#suspecters.add(first)
    this.#deadline = startedAt + suspicionTimeout(0, bounds)
  }

  /** Independent confirmations so far (distinct suspecters after the first). */
  get confirmations (): number { return this.#suspecters.size - 1 }

  /** When the member is to be declared dead, in ms (same clock as `now`). */
  get deadline (): number { return this.#deadline }

  /**
   * Record that `from` suspects the member too. Returns true when `from` is
   * new, i.e. this is news worth gossiping on. Beyond K confirmations the
   * timeout cannot shrink further, so later suspecters are not tracked
   * (bounds memory and gossip).
   */
  confirm (from: string): boolean {
    if (this.#suspecters.has(from)) return false
    if (this.confirmations >= this.bounds.expected) return false
    this.#suspecters.add(from)
    this.#deadline = Math.max(this.#notBefore, this.startedAt + suspicionTimeout(this.confirmations, this.bounds))
    return true
  }

  /**
   * Move the deadline to at least `at` (used when this node was starved and
   * must read its backlog, which may hold a refutation, before judging).
   */
  postpone (at: number): this {
    this.#notBefore = Math.max(this.#notBefore, at)
    this.#deadline = Math.max(this.#deadline, at)
    return this
  }
}
