/**
 * Link cost: what a node advertises for each of its links in its LSA, from
 * the link's measured round-trip time, loss and send-queue depth.
 *
 * ```
 *  delayMs = rttMs · rtt + queueBytes / 1024 · queuePerKiB + hopMs
 *  cost    = ceil( delayMs / (1 − min(loss, maxLoss))^lossExponent ),  at least 1
 * ```
 *
 * - The unit is roughly "milliseconds of expected delay", so costs add up
 *   meaningfully along a path and a hop is never free (`hopMs`, 10 by
 *   default): among paths of similar delay the shorter one wins.
 * - Loss multiplies like ETX (De Couto et al., "A High-Throughput Path
 *   Metric for Multi-Hop Wireless Routing", MobiCom 2003): at loss p a frame
 *   needs 1/(1 − p) transmissions on average. On our reliable streams a loss
 *   costs a retransmission timeout rather than one more try, hence an
 *   exponent > 1 by default.
 * - Costs are integers: sums are then exact, so every node compares path
 *   costs bit for bit the same way (ties are broken by id, see dijkstra.ts).
 *
 * Re-originating an LSA for every small RTT wobble would flood the mesh and
 * churn routes: {@link significantCostChange} says when a change is worth
 * advertising.
 *
 * @module
 */

/** Weights of {@link linkCost}. */
export interface CostWeights {
  /** Cost per ms of RTT. */
  readonly rtt: number
  /** Cost per KiB queued to the peer (1/10 ≈ a 10 MB/s drain: 1 MiB queued ≈ 100 ms). */
  readonly queuePerKiB: number
  /** Fixed cost of every hop. */
  readonly hopMs: number
  /** Exponent of the loss multiplier 1 / (1 − loss). */
  readonly lossExponent: number
  /** Loss rates above this are clamped (a link at 100 % loss is down, not expensive). */
  readonly maxLoss: number
  /** RTT assumed before the first measurement, in ms. */
  readonly defaultRttMs: number
  /** Relative change below which a new cost is not worth advertising (see {@link significantCostChange}). */
  readonly hysteresis: number
  /** Absolute change (cost units) below which a new cost is not worth advertising. */
  readonly minDelta: number
}

/** Documented defaults of {@link CostWeights}. */
export const DEFAULT_COST_WEIGHTS: CostWeights = Object.freeze({
  rtt: 1,
  queuePerKiB: 0.1,
  // A relay hop is worth 10 ms of RTT: on a LAN or loopback (RTTs of a ms or
  // less, wobbling under load) paths stay shortest by hops, and RTT decides
  // where it differs by tens of ms (WAN links, a congested or lossy link).
  hopMs: 10,
  lossExponent: 2,
  maxLoss: 0.9,
  // Until measured (a few heartbeats), a link counts as a LAN link: on a LAN
  // the measurement then changes nothing (within hysteresis), no LSA churn.
  defaultRttMs: 1,
  hysteresis: 0.2,
  // A change smaller than a hop is not worth a flood: a 16-node full mesh
  // re-advertised ~4 LSAs a second on scheduling noise of a few ms with 2.
  minDelta: 10,
})

/** What is known of one link. */
export interface LinkStats {
  /** Smoothed round-trip time in ms; undefined before the first measurement. */
  readonly rttMs?: number | undefined
  /** Recent loss (or retransmission) rate, 0..1. @default 0 */
  readonly loss?: number | undefined
  /** Bytes queued to this peer right now. @default 0 */
  readonly queueBytes?: number | undefined
}

/**
 * The cost to advertise for a link: a positive integer (see the module doc).
 * Invalid inputs (negative, NaN) count as absent.
 */
export function linkCost (stats: LinkStats, weights: CostWeights = DEFAULT_COST_WEIGHTS): number {
  const rtt = nonNegative(stats.rttMs) ?? weights.defaultRttMs
  const loss = Math.min(nonNegative(stats.loss) ?? 0, weights.maxLoss)
  const queue = nonNegative(stats.queueBytes) ?? 0
  const delay = rtt * weights.rtt + (queue / 1024) * weights.queuePerKiB + weights.hopMs
  const cost = Math.ceil(delay / (1 - loss) ** weights.lossExponent)
  return Number.isFinite(cost) ? Math.max(1, cost) : Number.MAX_SAFE_INTEGER
}

/**
 * True when going from `previous` to `next` is worth a new LSA: the change
 * is at least `minDelta` AND at least `hysteresis` of the previous cost.
 * Always true when there was no previous cost.
 */
export function significantCostChange (previous: number | undefined, next: number, weights: CostWeights = DEFAULT_COST_WEIGHTS): boolean {
  if (previous === undefined) return true
  const delta = Math.abs(next - previous)
  return delta >= weights.minDelta && delta >= weights.hysteresis * previous
}

function nonNegative (v: number | undefined): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined
}

/** {@link hostSlowdown}: fewest links to judge by, and how much slower (ms) counts as slower. */
export const SLOWDOWN_MIN_LINKS = 3
export const SLOWDOWN_MS = 5

/**
 * Whether a round of link RTTs (this period's against the last reported, per
 * link) says the HOST slowed down rather than its links: at least `minLinks`
 * links, three quarters of them slower by more than `ms` at once. A starved
 * CPU delays every heartbeat it handles; re-costing every link for it would
 * flood LSAs exactly when the host can least afford them. Links without a
 * previous report do not count as slower.
 */
export function hostSlowdown (links: ReadonlyArray<{ readonly rttMs: number | undefined; readonly before: number | undefined }>, minLinks = SLOWDOWN_MIN_LINKS, ms = SLOWDOWN_MS): boolean {
  if (links.length < minLinks) return false
  let risen = 0
  for (const l of links) if (l.rttMs !== undefined && l.before !== undefined && l.rttMs > l.before + ms) risen++
  return risen * 4 >= links.length * 3
}
