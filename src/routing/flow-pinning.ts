/**
 * Multipath spreading with per-flow pinning (DESIGN.md §3, routing): each
 * flow — (sender, receiver, stream) — is pinned to one of the k paths to its
 * receiver, so a flow's frames never race each other down different paths
 * (no reordering), while different flows spread over the paths in
 * proportion to 1 / cost. Sans-IO: the caller passes `now`.
 *
 * Choice: weighted rendezvous hashing (highest random weight; Thaler and
 * Ravishankar 1998, with Schindelhauer and Schomaker's logarithmic
 * weighting): path p scores `(1 / cost_p) / −ln(u)`, `u = hash(flow, p)` in
 * (0, 1), and the best score wins. Each path wins with probability
 * proportional to its weight, a flow's choice depends only on the flow and
 * the path set (the same on every call, the same on every node), and a
 * path that appears or disappears moves only the flows it takes or had.
 *
 * How pinned flows move:
 * - tables unchanged: never (the pin is kept; even an evicted pin is
 *   re-chosen identically);
 * - a path's cost FALLS or another path APPEARS: an active flow stays; a
 *   flow re-chooses over the new weights at its first frame after an idle
 *   gap of at least `idleMs`, or at once when the caller says it is
 *   quiescent (nothing of it in flight). Without this, a flow pinned while
 *   its destination had one path (or a dear second one) would never spread
 *   once the second path arrived (or got cheap);
 * - a path's cost RISES: the path is *draining* for `drainMs`. New flows
 *   avoid it (unless every path drains). A flow pinned to it stays while it
 *   is active, and moves at its first frame after an idle gap of at least
 *   `idleMs`: after such a gap nothing of the flow is in flight, so moving
 *   cannot reorder it. When the drain ends the path takes new flows again,
 *   at its new weight;
 * - a path DISAPPEARS (a link died): its flows move at their next frame.
 *   Frames already in flight on the dead path are lost or late; the delivery
 *   layer's sequence numbers and retransmission restore order and
 *   completeness at the receiver (DESIGN.md §3, reliable by default).
 *
 * @module
 */

/** One flow: the unit pinned to a path. */
export interface FlowKey {
  readonly sender: string
  readonly receiver: string
  readonly stream: number | string
}

/** Options of a {@link FlowPinner}. Durations in ms. */
export interface FlowPinnerOptions {
  /** A flow pinned to a draining path moves after an idle gap this long. @default 1000 */
  idleMs?: number
  /** A path whose cost rose takes no new flows for this long. @default 10000 */
  drainMs?: number
  /** Most pins kept (least recently used evicted first; an evicted flow re-pins identically if nothing changed). @default 65536 */
  maxFlows?: number
}

/** Defaults of {@link FlowPinnerOptions}. */
export const FLOW_PINNER_DEFAULTS = { idleMs: 1_000, drainMs: 10_000, maxFlows: 65_536 } as const

interface DestState {
  readonly paths: Map<string, PathState>
  /** Bumped when the paths or their costs change: idle or quiescent pins of an older generation re-choose. */
  gen: number
}

interface PathState {
  readonly key: string
  readonly nodes: readonly string[]
  cost: number
  drainingUntil: number
}

interface Pin {
  readonly to: string
  path: string
  lastUsed: number
  gen: number
}

/** Per-flow path choice over the k paths of each destination; see the module doc. */
export class FlowPinner {
  readonly idleMs: number
  readonly drainMs: number
  readonly maxFlows: number
  readonly #dests = new Map<string, DestState>()
  readonly #pins = new Map<string, Pin>()
  /** Flows moved off a path (draining or gone) since construction. */
  moved = 0

  /** @throws RangeError on a negative or non-integer option. */
  constructor (opts: FlowPinnerOptions = {}) {
    this.idleMs = nonNegInt(opts.idleMs ?? FLOW_PINNER_DEFAULTS.idleMs, 'idleMs')
    this.drainMs = nonNegInt(opts.drainMs ?? FLOW_PINNER_DEFAULTS.drainMs, 'drainMs')
    this.maxFlows = nonNegInt(opts.maxFlows ?? FLOW_PINNER_DEFAULTS.maxFlows, 'maxFlows')
  }

  /** Number of pinned flows. */
  get size (): number { return this.#pins.size }

  /**
   * Install the paths to `to` (e.g. a route's `paths` and `costs`). A known
   * path (same node sequence) whose cost rose starts draining; a path no
   * longer listed is gone. An empty list removes the destination.
   * @throws RangeError when lengths differ or a cost is not finite and > 0.
   */
  setPaths (to: string, paths: readonly (readonly string[])[], costs: readonly number[], now: number): void {
    if (paths.length !== costs.length) throw new RangeError(`setPaths: ${paths.length} paths but ${costs.length} costs`)
    if (paths.length === 0) { this.#dests.delete(to); return }
    const prevDest = this.#dests.get(to)
    const prev = prevDest?.paths
    const next = new Map<string, PathState>()
    let changed = prev === undefined || prev.size !== paths.length
    for (let i = 0; i < paths.length; i++) {
      const cost = costs[i]!
      if (!(Number.isFinite(cost) && cost > 0)) throw new RangeError(`setPaths: cost ${i} must be finite and > 0`)
      const key = paths[i]!.join('>')
      const old = prev?.get(key)
      if (old === undefined || old.cost !== cost) changed = true
      const drainingUntil = old === undefined ? 0
        : cost > old.cost ? now + this.drainMs
          : cost < old.cost ? 0
            : old.drainingUntil
      next.set(key, { key, nodes: [...paths[i]!], cost, drainingUntil })
    }
    this.#dests.set(to, { paths: next, gen: (prevDest?.gen ?? 0) + (changed && prevDest !== undefined ? 1 : 0) })
  }

  /** Whether the path `nodes` to `to` is draining at `now`. */
  isDraining (to: string, nodes: readonly string[], now: number): boolean {
    const p = this.#dests.get(to)?.paths.get(nodes.join('>'))
    return p !== undefined && p.drainingUntil > now
  }

  /**
   * The path for the next frame of `flow` (to `flow.receiver`), pinning the
   * flow if it is new; undefined when no path to the receiver is known.
   * `quiescent`: the caller knows nothing of the flow is in flight, so it
   * may move now as if after an idle gap (no frame of it can be overtaken).
   */
  pathFor (flow: FlowKey, now: number, quiescent = false): readonly string[] | undefined {
    const to = flow.receiver
    const dest = this.#dests.get(to)
    if (dest === undefined || dest.paths.size === 0) return undefined
    const paths = dest.paths
    const id = flowId(flow)
    const pin = this.#pins.get(id)
    if (pin !== undefined) {
      const p = paths.get(pin.path)
      const idle = quiescent || now - pin.lastUsed >= this.idleMs
      if (p !== undefined && (!idle || (p.drainingUntil <= now && pin.gen === dest.gen))) {
        // Keep the pin (refresh its LRU position).
        pin.lastUsed = now
        this.#pins.delete(id)
        this.#pins.set(id, pin)
        return p.nodes
      }
    }
    const chosen = choose(id, paths, now)
    if (pin !== undefined && chosen.key !== pin.path) this.moved++
    this.#pins.delete(id)
    this.#pins.set(id, { to, path: chosen.key, lastUsed: now, gen: dest.gen })
    while (this.#pins.size > this.maxFlows) this.#pins.delete(this.#pins.keys().next().value!)
    return chosen.nodes
  }

  /** Forget the pin of a finished flow. */
  release (flow: FlowKey): void {
    this.#pins.delete(flowId(flow))
  }

  /** Forget pins unused for `maxIdleMs` (default 60 s); returns how many. */
  prune (now: number, maxIdleMs = 60_000): number {
    let n = 0
    for (const [id, pin] of this.#pins) {
      if (now - pin.lastUsed >= maxIdleMs) { this.#pins.delete(id); n++ }
    }
    return n
  }
}

/** Weighted rendezvous choice among the non-draining paths (all paths when every one drains). */
function choose (id: string, paths: ReadonlyMap<string, PathState>, now: number): PathState {
  let best: PathState | undefined
  let bestScore = -Infinity
  let anyOpen = false
  for (const p of paths.values()) if (p.drainingUntil <= now) { anyOpen = true; break }
  for (const p of paths.values()) {
    if (anyOpen && p.drainingUntil > now) continue
    const u = (hash32(id + '\u0000' + p.key) + 0.5) / 4294967296 // in (0, 1)
    const score = (1 / p.cost) / -Math.log(u)
    // Ties (astronomically rare) go to the smaller key, so every node agrees.
    if (score > bestScore || (score === bestScore && best !== undefined && p.key < best.key)) {
      best = p
      bestScore = score
    }
  }
  return best!
}

function flowId (f: FlowKey): string {
  return `${f.sender}\u0000${f.receiver}\u0000${String(f.stream)}`
}

/** FNV-1a over UTF-16 code units, then the murmur3 finaliser for avalanche. */
function hash32 (s: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

function nonNegInt (v: number, name: string): number {
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`${name} must be an integer >= 0 (got ${String(v)})`)
  return v
}
