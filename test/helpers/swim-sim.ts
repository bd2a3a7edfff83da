/**
 * A deterministic, in-memory network of {@link Swim} cores with explicit time
 * stepping (the quinn-proto `Pair` idea, for N nodes).
 *
 * - Discrete-event: the clock jumps to the next message delivery or the next
 *   node deadline, whichever comes first; nothing runs in real time.
 * - Seeded: one mulberry32 stream for the network (delays, loss) and one per
 *   node (its `random`), so a seed reproduces a run exactly.
 * - Links are explicit and undirected; messages only travel over links, in
 *   FIFO order per direction (they model TCP/WebSocket connections).
 * - Faults: random loss, per-link drop rules, partitions, `kill` (the node
 *   stops; messages to it are lost), `pause`/`resume` (SIGSTOP-like: the node
 *   neither ticks nor reads; messages wait in its socket buffer and are read
 *   after its first tick on resume, as Node runs timers before I/O), and
 *   `restart` (same id, higher incarnation, links re-established).
 */
import { Swim, type MemberState, type SwimConfig, type SwimMessage, type SwimOutput } from '../../src/membership/swim.js'

/** mulberry32: a small, fast, seedable PRNG returning [0, 1). */
export function mulberry32 (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** FNV-1a of a string, to derive per-node seeds. */
function hash (s: string, seed: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0
  return h
}

/** Return true to drop the message. */
export type DropRule = (from: string, to: string, msg: SwimMessage, now: number) => boolean

/** Options of a {@link SwimSim}. */
export interface SwimSimOptions {
  seed: number
  /** Overrides for every node's config (selfId, incarnation, addresses, random are set by the sim). */
  config?: Partial<SwimConfig>
  /** One-way delay range in ms, uniform. @default { min: 1, max: 5 } */
  delay?: { min: number, max: number }
  /** Probability that any message is lost. @default 0 */
  loss?: number
  /** Simulated clock at start, in ms. @default 1_000_000 */
  start?: number
  /** Turn `dial` outputs into links (when the target runs). @default false */
  autoDial?: boolean
}

/** A `member` output, time-stamped. */
export interface MemberEvent {
  at: number
  observer: string
  id: string
  state: MemberState
  previous: MemberState | undefined
  incarnation: number
}

interface SimNode {
  id: string
  swim: Swim
  addresses: string[]
  /** Bumped on restart; in-flight messages of an older generation are dropped. */
  gen: number
  killed: boolean
  paused: boolean
  backlog: Array<{ from: string, msg: SwimMessage }>
  deadline: number
}

interface InFlight {
  at: number
  order: number
  from: string
  to: string
  fromGen: number
  toGen: number
  msg: SwimMessage
}

/** Binary min-heap on (at, order). */
class Heap {
  readonly #a: InFlight[] = []
  get size (): number { return this.#a.length }
  peek (): InFlight | undefined { return this.#a[0] }
  push (x: InFlight): void {
    const a = this.#a
    a.push(x)
    let i = a.length - 1
    while (i > 0) {
      const p = (i - 1) >> 1
      if (!less(a[i] as InFlight, a[p] as InFlight)) break
      ;[a[i], a[p]] = [a[p] as InFlight, a[i] as InFlight]
      i = p
    }
  }

  pop (): InFlight | undefined {
    const a = this.#a
    const top = a[0]
    const last = a.pop()
    if (a.length > 0 && last !== undefined) {
      a[0] = last
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        const r = l + 1
        let m = i
        if (l < a.length && less(a[l] as InFlight, a[m] as InFlight)) m = l
        if (r < a.length && less(a[r] as InFlight, a[m] as InFlight)) m = r
        if (m === i) break
        ;[a[i], a[m]] = [a[m] as InFlight, a[i] as InFlight]
        i = m
      }
    }
    return top
  }
}

function less (x: InFlight, y: InFlight): boolean {
  return x.at < y.at || (x.at === y.at && x.order < y.order)
}

const linkKey = (a: string, b: string): string => (a < b ? `${a}|${b}` : `${b}|${a}`)

/** See the module comment. */
export class SwimSim {
  now: number
  readonly nodes = new Map<string, SimNode>()
  readonly memberEvents: MemberEvent[] = []
  readonly statusEvents: Array<{ at: number, observer: string, state: string, unreachable: number }> = []
  readonly dials: Array<{ at: number, observer: string, id: string }> = []
  /** Messages handed to the network / delivered / dropped. */
  readonly counters = { sent: 0, delivered: 0, dropped: 0 }
  /** Called for every output (after the sim's own handling). */
  onOutput: ((node: string, o: SwimOutput) => void) | undefined

  readonly #opts: Required<Omit<SwimSimOptions, 'config'>> & { config: Partial<SwimConfig> }
  readonly #random: () => number
  readonly #links = new Set<string>()
  readonly #lastAt = new Map<string, number>()
  readonly #heap = new Heap()
  readonly #rules = new Set<DropRule>()
  #order = 0
  #loss: number

  constructor (opts: SwimSimOptions) {
    this.#opts = {
      seed: opts.seed,
      config: opts.config ?? {},
      delay: opts.delay ?? { min: 1, max: 5 },
      loss: opts.loss ?? 0,
      start: opts.start ?? 1_000_000,
      autoDial: opts.autoDial ?? false,
    }
    this.#loss = this.#opts.loss
    this.#random = mulberry32(opts.seed)
    this.now = this.#opts.start
  }

  /** Create a node (not linked to anyone yet). */
  addNode (id: string, o: { addresses?: string[], incarnation?: number } = {}): Swim {
    if (this.nodes.has(id)) throw new Error(`node ${id} exists`)
    const addresses = o.addresses ?? [`ws://${id}.test:7000`]
    const swim = this.#makeSwim(id, o.incarnation ?? this.now, addresses, 0)
    this.nodes.set(id, { id, swim, addresses, gen: 0, killed: false, paused: false, backlog: [], deadline: swim.nextDeadline() })
    this.#drain(id)
    return swim
  }

  /** Create `n` nodes named `${prefix}0`.. and return their ids. */
  addNodes (n: number, prefix = 'n'): string[] {
    const ids: string[] = []
    for (let i = 0; i < n; i++) { const id = `${prefix}${i}`; this.addNode(id); ids.push(id) }
    return ids
  }

  swim (id: string): Swim {
    return this.#node(id).swim
  }

  /** Bring a link up on both sides, like a completed handshake (incarnations exchanged). */
  link (a: string, b: string): void {
    const k = linkKey(a, b)
    if (this.#links.has(k)) return
    this.#links.add(k)
    const na = this.#node(a)
    const nb = this.#node(b)
    na.swim.addMember({ id: b, incarnation: nb.swim.incarnation, addresses: nb.addresses }, this.now)
    na.swim.setLinked(b, true, this.now)
    nb.swim.addMember({ id: a, incarnation: na.swim.incarnation, addresses: na.addresses }, this.now)
    nb.swim.setLinked(a, true, this.now)
    this.#touch(a)
    this.#touch(b)
  }

  /** Take a link down on both (running) sides. */
  unlink (a: string, b: string): void {
    if (!this.#links.delete(linkKey(a, b))) return
    for (const [x, y] of [[a, b], [b, a]] as const) {
      const n = this.#node(x)
      if (n.killed) continue
      n.swim.setLinked(y, false, this.now)
      this.#touch(x)
    }
  }

  linked (a: string, b: string): boolean {
    return this.#links.has(linkKey(a, b))
  }

  /** Link every pair. */
  linkAll (ids: string[]): void {
    for (let i = 0; i < ids.length; i++) for (let j = i + 1; j < ids.length; j++) this.link(ids[i] as string, ids[j] as string)
  }

  /** Link ids[i] to ids[i+1] (and the last to the first when `ring`). */
  chain (ids: string[], ring = false): void {
    for (let i = 0; i + 1 < ids.length; i++) this.link(ids[i] as string, ids[i + 1] as string)
    if (ring && ids.length > 2) this.link(ids[ids.length - 1] as string, ids[0] as string)
  }

  /** Crash a node: it stops; messages to it are lost. Links stay "up" on the other side. */
  kill (id: string): void {
    const n = this.#node(id)
    n.killed = true
    n.backlog = []
  }

  /** SIGSTOP: no ticks, no reads; inbound messages are buffered. */
  pause (id: string): void {
    this.#node(id).paused = true
  }

  /** SIGCONT: tick first (timers run before I/O in Node), then read the backlog. */
  resume (id: string): void {
    const n = this.#node(id)
    if (!n.paused) return
    n.paused = false
    n.swim.tick(this.now)
    this.#touch(id)
    const backlog = n.backlog
    n.backlog = []
    for (const m of backlog) {
      n.swim.handleMessage(m.from, m.msg, this.now)
      this.#touch(id)
    }
  }

  /**
   * Restart a node: a fresh Swim with the same id and a higher incarnation
   * (default: the current clock, like a start time), links re-handshaken.
   */
  restart (id: string, incarnation?: number): Swim {
    const n = this.#node(id)
    const inc = incarnation ?? Math.max(this.now, n.swim.incarnation + 1)
    const neighbours = [...this.nodes.keys()].filter((o) => o !== id && this.#links.has(linkKey(id, o)))
    for (const o of neighbours) this.unlink(id, o)
    n.gen++
    n.killed = false
    n.paused = false
    n.backlog = []
    n.swim = this.#makeSwim(id, inc, n.addresses, n.gen)
    this.#touch(id)
    for (const o of neighbours) if (!this.#node(o).killed) this.link(id, o)
    return n.swim
  }

  /** Drop everything between the two groups (links stay up, like a silent network fault). */
  partition (a: string[], b: string[]): () => void {
    const A = new Set(a)
    const B = new Set(b)
    return this.addDropRule((from, to) => (A.has(from) && B.has(to)) || (B.has(from) && A.has(to)))
  }

  /** Add a drop rule; returns its remover. */
  addDropRule (rule: DropRule): () => void {
    this.#rules.add(rule)
    return () => { this.#rules.delete(rule) }
  }

  setLoss (p: number): void {
    this.#loss = p
  }

  /** Run until the clock reaches `t`. */
  runUntil (t: number): void {
    for (;;) {
      const msgAt = this.#heap.peek()?.at ?? Infinity
      let tickAt = Infinity
      let tickId: string | undefined
      for (const n of this.nodes.values()) {
        if (n.killed || n.paused) continue
        if (n.deadline < tickAt) { tickAt = n.deadline; tickId = n.id }
      }
      const next = Math.min(msgAt, tickAt)
      if (next > t) break
      this.now = Math.max(this.now, next)
      if (msgAt <= tickAt) {
        this.#deliver(this.#heap.pop() as InFlight)
      } else if (tickId !== undefined) {
        this.#node(tickId).swim.tick(this.now)
        this.#touch(tickId)
      }
    }
    this.now = Math.max(this.now, t)
  }

  /** Run for `ms` of simulated time. */
  runFor (ms: number): void {
    this.runUntil(this.now + ms)
  }

  /**
   * Run in `step` ms slices until `pred()` holds or `maxMs` passed. Returns
   * the time it first held (checked at slice ends), or undefined.
   */
  runUntilTrue (pred: () => boolean, maxMs: number, step = 10): number | undefined {
    const end = this.now + maxMs
    while (this.now < end) {
      if (pred()) return this.now
      this.runUntil(Math.min(end, this.now + step))
    }
    return pred() ? this.now : undefined
  }

  /** What `observer` holds about `id` (undefined if unknown). */
  stateOf (observer: string, id: string): MemberState | undefined {
    return this.#node(observer).swim.member(id)?.state
  }

  /** Running (not killed) node ids. */
  running (): string[] {
    return [...this.nodes.values()].filter((n) => !n.killed).map((n) => n.id)
  }

  // ------------------------------------------------------------------ private

  #makeSwim (id: string, incarnation: number, addresses: string[], gen: number): Swim {
    const random = mulberry32(hash(`${id}#${gen}`, this.#opts.seed))
    return new Swim({
      protocolPeriodMs: 100,
      probeTimeoutMs: 40,
      indirectProbes: 3,
      suspicionMult: 4,
      suspicionMaxMult: 6,
      retransmitMult: 4,
      maxPiggyback: 8,
      maxPeers: 64,
      ...this.#opts.config,
      selfId: id,
      incarnation,
      addresses,
      random,
    }, this.now)
  }

  #node (id: string): SimNode {
    const n = this.nodes.get(id)
    if (n === undefined) throw new Error(`unknown node ${id}`)
    return n
  }

  /** After any input to node `id`: drain its outputs and refresh its deadline. */
  #touch (id: string): void {
    this.#drain(id)
    const n = this.#node(id)
    n.deadline = n.swim.nextDeadline()
  }

  #drain (id: string): void {
    const n = this.#node(id)
    for (let o = n.swim.poll(); o !== undefined; o = n.swim.poll()) {
      switch (o.kind) {
        case 'send':
          this.#send(n, o.to, o.msg)
          break
        case 'member':
          this.memberEvents.push({ at: this.now, observer: id, id: o.member.id, state: o.member.state, previous: o.previous, incarnation: o.member.incarnation })
          break
        case 'status':
          this.statusEvents.push({ at: this.now, observer: id, state: o.status.state, unreachable: o.status.unreachable })
          break
        case 'dial':
          this.dials.push({ at: this.now, observer: id, id: o.id })
          if (this.#opts.autoDial && this.nodes.has(o.id) && !this.#node(o.id).killed) this.link(id, o.id)
          break
        case 'forget':
          break
      }
      this.onOutput?.(id, o)
    }
  }

  #send (from: SimNode, to: string, msg: SwimMessage): void {
    this.counters.sent++
    const dst = this.nodes.get(to)
    if (dst === undefined || !this.#links.has(linkKey(from.id, to))) { this.counters.dropped++; return }
    // Draw randomness in a fixed order whatever the outcome, so adding a rule does not reshuffle the run.
    const lossDraw = this.#random()
    const delayDraw = this.#random()
    let drop = lossDraw < this.#loss
    for (const r of this.#rules) if (r(from.id, to, msg, this.now)) drop = true
    if (drop) { this.counters.dropped++; return }
    const { min, max } = this.#opts.delay
    const dir = `${from.id}>${to}`
    // FIFO per direction, like a TCP connection.
    const at = Math.max(this.now + min + delayDraw * (max - min), this.#lastAt.get(dir) ?? 0)
    this.#lastAt.set(dir, at)
    // structuredClone: the receiver must not share objects with the sender (msgpack in real life).
    this.#heap.push({ at, order: this.#order++, from: from.id, to, fromGen: from.gen, toGen: dst.gen, msg: structuredClone(msg) })
  }

  #deliver (m: InFlight): void {
    const src = this.#node(m.from)
    const dst = this.#node(m.to)
    if (dst.killed || dst.gen !== m.toGen || src.gen !== m.fromGen || !this.#links.has(linkKey(m.from, m.to))) {
      this.counters.dropped++
      return
    }
    if (dst.paused) { dst.backlog.push({ from: m.from, msg: m.msg }); return }
    this.counters.delivered++
    dst.swim.handleMessage(m.from, m.msg, this.now)
    this.#touch(m.to)
  }
}
