/**
 * SWIM membership with Lifeguard extensions, sans-IO (STYLE.md §1, the
 * quinn-proto idea): no sockets, no timers, no clock, no global randomness.
 * The owner (the routing actor, DESIGN.md §1) feeds inputs with the current
 * time — `addMember`, `setLinked`, `handleMessage`, `handleGossip`, `tick` —
 * and drains outputs with `poll()`; `nextDeadline()` says when to tick next.
 *
 * References:
 * - SWIM: Das, Gupta, Motivala, "SWIM: Scalable Weakly-consistent
 *   Infection-style Process Group Membership Protocol", DSN 2002.
 * - Lifeguard: Dadgar, Phillips, Currey, "Lifeguard: Local Health Awareness
 *   for More Accurate Failure Detection", 2018 (arXiv:1707.00788).
 * - hashicorp/memberlist, whose constants and corner cases we follow where
 *   the papers are silent.
 *
 * ## One protocol period (`protocolPeriodMs`, × local health multiplier)
 *
 * ```
 *  t0                      t0 + probeTimeout                       t0 + period
 *  │ ping(seq) ──▶ target    │ no ack yet: ping-req(seq, target) ──▶ │ no ack from anyone:
 *  │ (only LINKED members    │ to k other linked members; each pings │ target becomes suspect
 *  │  are probed, in a       │ the target if IT is linked to it and  │ (suspect(inc, from=self))
 *  │  shuffled round robin)  │ relays the ack, else answers nack     │
 * ```
 *
 * Deviations from textbook SWIM, each for a reason:
 * - Probing only runs over direct links (messages travel over the node's
 *   authenticated connections; there is no datagram socket to reach
 *   arbitrary members). When a link goes down we run one indirect check of
 *   that member through our other links, so a member whose last link was to
 *   us does not stay "alive" forever in everyone's view.
 * - A linked member declared dead is still pinged (no indirect stage, no
 *   penalty): the ping carries its death, so if it is in fact alive (a healed
 *   partition with the connection intact) it refutes and comes back.
 * - A refutation is pushed at once to every linked member (a `sync` message)
 *   as well as gossiped: a false death is the costliest outcome, and
 *   refutations are rare.
 * - A newly linked member gets our whole table in `sync` messages (the join
 *   half of memberlist's push-pull), so it need not wait for gossip.
 *
 * Lifeguard parts implemented: dynamic suspicion timeout (suspicion.ts),
 * nacks from helpers, local health multiplier on probe period and timeout
 * ("LHA-Probe"), buddy system (a suspected member is told first), and no
 * trust in timers after this node was starved (see `tick`).
 *
 * @module
 */
import type { MeshStatus } from '../events.js'
import { ErrorCode, MeshError } from '../errors.js'
import { BroadcastQueue, retransmitLimit } from './dissemination.js'
import {
  MemberState, MemberTable, SWIM_LIMITS, isAddressList, isIncarnation, isMemberId, parseUpdates, toInfo,
  type MemberInfo, type MemberRecord, type Update,
} from './member-table.js'
import { Suspicion, suspicionBounds } from './suspicion.js'

export { MemberState, SWIM_LIMITS, supersedes, parseUpdate, parseUpdates, type MemberInfo, type Update } from './member-table.js'
export { suspicionBounds, suspicionTimeout, type SuspicionBounds } from './suspicion.js'
export { retransmitLimit } from './dissemination.js'

/** Membership status; the same shape as the public {@link MeshStatus}. */
export type MembershipStatus = MeshStatus

/** Configuration of one {@link Swim} instance. All durations in ms. */
export interface SwimConfig {
  /** This node's member id (its peer id). */
  selfId: string
  /**
   * This node's incarnation at start, a non-negative safe integer. Use the
   * start time in ms, so a restarted node (same id) comes back with a HIGHER
   * incarnation and is recognised as alive again.
   */
  incarnation: number
  /** This node's listen URLs (empty for a dial-only node). */
  addresses: string[]
  /** Protocol period: one probe per period. Integer >= 1. @default 1000 */
  protocolPeriodMs: number
  /** Wait for a direct ack before asking helpers. Integer, 1 <= x < protocolPeriodMs. @default 300 */
  probeTimeoutMs: number
  /** Helpers asked by ping-req (k). Integer >= 0. @default 3 */
  indirectProbes: number
  /** Suspicion timeout floor multiplier (see suspicion.ts). > 0. @default 4 */
  suspicionMult: number
  /** Suspicion timeout ceiling, as a multiple of the floor. >= 1. @default 6 */
  suspicionMaxMult: number
  /** Retransmissions per update = retransmitMult × ceil(log10(n + 1)). Integer >= 1. @default 4 */
  retransmitMult: number
  /** Most updates piggybacked on one message. Integer 1..64. @default 8 */
  maxPiggyback: number
  /** Most direct links wanted: `dial` outputs stop at maxPeers − linked. Integer >= 0. @default 16 */
  maxPeers: number
  /** Uniform random in [0, 1), injected so runs are reproducible. */
  random: () => number
  /** Dead and left members are forgotten (tombstoned) after this long. Integer >= 1 or Infinity. @default 300000 */
  reapAfterMs?: number
  /** A `dial` not followed by a link within this long is given up and may be re-emitted. Integer >= 1. @default 30000 */
  dialRetryMs?: number
  /** Ceiling of the Lifeguard local health score (probe period and timeout scale by 1 + score). Integer >= 0. @default 8 */
  maxLocalHealth?: number
}

/** {@link SwimConfig} with every optional field filled; frozen. */
export type ResolvedSwimConfig = Readonly<Required<SwimConfig>>

/**
 * LAN defaults for everything but identity and randomness.
 * Compose: `new Swim({ ...SWIM_DEFAULTS, selfId, incarnation: Date.now(), addresses, random: Math.random }, now)`.
 */
export const SWIM_DEFAULTS = {
  protocolPeriodMs: 1_000,
  probeTimeoutMs: 300,
  indirectProbes: 3,
  suspicionMult: 4,
  suspicionMaxMult: 6,
  retransmitMult: 4,
  maxPiggyback: 8,
  maxPeers: 16,
  reapAfterMs: 300_000,
  dialRetryMs: 30_000,
  maxLocalHealth: 8,
} as const

/** Message types on the wire. */
export const SwimMessageType = {
  PING: 'ping',
  ACK: 'ack',
  PING_REQ: 'ping-req',
  NACK: 'nack',
  /** Bulk push of updates with no reply: our table to a new link, an urgent refutation, our leave. */
  SYNC: 'sync',
} as const
/** The `t` field of a {@link SwimMessage}. */
export type SwimMessageType = typeof SwimMessageType[keyof typeof SwimMessageType]

/**
 * A SWIM message between two linked nodes. `seq` correlates a reply with its
 * request and is chosen by the request's sender (per-sender space).
 */
export type SwimMessage =
  | { t: 'ping', seq: number, gossip: Update[] }
  | { t: 'ack', seq: number, gossip: Update[] }
  | { t: 'ping-req', seq: number, target: string, gossip: Update[] }
  | { t: 'nack', seq: number, gossip: Update[] }
  | { t: 'sync', gossip: Update[] }

/** What the core asks its owner to do or tells it. Drain with {@link Swim.poll}. */
export type SwimOutput =
  /** Send `msg` to the linked member `to` (control lane). */
  | { kind: 'send', to: string, msg: SwimMessage }
  /** A member appeared or changed state or incarnation (`previous` undefined when new). */
  | { kind: 'member', member: MemberInfo, previous: MemberState | undefined }
  /** {@link Swim.status} changed. */
  | { kind: 'status', status: MembershipStatus }
  /** An alive member we are not linked to; dial it if you can (capped by maxPeers). */
  | { kind: 'dial', id: string, addresses: string[] }
  /** A dead or left member was forgotten after `reapAfterMs`. */
  | { kind: 'forget', id: string, state: MemberState }

/** Counters, for metrics (`meshwork_membership_<name>_total`). */
export interface SwimStats {
  /** Inbound messages or gossip ignored for a wrong shape or size. */
  malformed: number
  /** Replies that matched no pending request (late or duplicate). */
  stale: number
  pingsSent: number
  pingReqsSent: number
  acksReceived: number
  nacksReceived: number
  /** Probes that ended with no ack, direct or indirect. */
  probesFailed: number
  /** Suspicions this node raised itself. */
  suspicions: number
  /** Members this node itself declared dead (timeout expired). */
  deaths: number
  /** Times this node refuted a suspicion or death of itself. */
  refutations: number
  /** Ticks that came more than a period late (this node was starved or paused). */
  starved: number
  /** Unknown members dropped because the table was full. */
  tableFull: number
}

/** A running suspicion, for diagnostics and tests. */
export interface SuspicionInfo {
  incarnation: number
  startedAt: number
  confirmations: number
  deadline: number
}

const MESSAGE_TYPES = new Set<string>(Object.values(SwimMessageType))

function isSeq (n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0
}

/**
 * Validate a message received from the network and return a clean copy, or
 * `undefined` when its shape or sizes are wrong. Never throws.
 */
export function parseSwimMessage (raw: unknown): SwimMessage | undefined {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return undefined
  const r = raw as Record<string, unknown>
  if (typeof r.t !== 'string' || !MESSAGE_TYPES.has(r.t)) return undefined
  const gossip = parseUpdates(r.gossip)
  if (gossip === undefined) return undefined
  const t = r.t as SwimMessageType
  if (t === 'sync') return { t, gossip }
  if (!isSeq(r.seq)) return undefined
  if (t === 'ping-req') {
    if (!isMemberId(r.target)) return undefined
    return { t, seq: r.seq, target: r.target, gossip }
  }
  return { t, seq: r.seq, gossip }
}

function invalid (path: string, rule: string): MeshError {
  return new MeshError(ErrorCode.INVALID_OPTIONS, `${path} must be ${rule}`, { details: { path } })
}

function isIntAtLeast (v: unknown, min: number): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= min
}

/**
 * Fill optional fields from {@link SWIM_DEFAULTS}, validate, freeze.
 * @throws MeshError `INVALID_OPTIONS` naming the field (`swim.<field>`).
 */
export function resolveSwimConfig (c: SwimConfig): ResolvedSwimConfig {
  if (c === null || typeof c !== 'object') throw invalid('swim', 'an object')
  const r: Required<SwimConfig> = {
    ...c,
    addresses: Array.isArray(c.addresses) ? [...c.addresses] : c.addresses,
    reapAfterMs: c.reapAfterMs ?? SWIM_DEFAULTS.reapAfterMs,
    dialRetryMs: c.dialRetryMs ?? SWIM_DEFAULTS.dialRetryMs,
    maxLocalHealth: c.maxLocalHealth ?? SWIM_DEFAULTS.maxLocalHealth,
  }
  if (!isMemberId(r.selfId)) throw invalid('swim.selfId', `a string of 1..${SWIM_LIMITS.maxIdLength} characters`)
  if (!isIncarnation(r.incarnation)) throw invalid('swim.incarnation', 'a non-negative safe integer')
  if (!isAddressList(r.addresses)) throw invalid('swim.addresses', `an array of at most ${SWIM_LIMITS.maxAddresses} non-empty strings of at most ${SWIM_LIMITS.maxAddressLength} characters`)
  if (!isIntAtLeast(r.protocolPeriodMs, 1)) throw invalid('swim.protocolPeriodMs', 'an integer >= 1')
  if (!isIntAtLeast(r.probeTimeoutMs, 1)) throw invalid('swim.probeTimeoutMs', 'an integer >= 1')
  if (!isIntAtLeast(r.indirectProbes, 0)) throw invalid('swim.indirectProbes', 'an integer >= 0')
  if (typeof r.suspicionMult !== 'number' || !Number.isFinite(r.suspicionMult) || r.suspicionMult <= 0) throw invalid('swim.suspicionMult', 'a finite number > 0')
  if (typeof r.suspicionMaxMult !== 'number' || !Number.isFinite(r.suspicionMaxMult) || r.suspicionMaxMult < 1) throw invalid('swim.suspicionMaxMult', 'a finite number >= 1')
  if (!isIntAtLeast(r.retransmitMult, 1)) throw invalid('swim.retransmitMult', 'an integer >= 1')
  if (!isIntAtLeast(r.maxPiggyback, 1) || r.maxPiggyback > SWIM_LIMITS.maxGossip) throw invalid('swim.maxPiggyback', `an integer in 1..${SWIM_LIMITS.maxGossip}`)
  if (!isIntAtLeast(r.maxPeers, 0)) throw invalid('swim.maxPeers', 'an integer >= 0')
  if (typeof r.random !== 'function') throw invalid('swim.random', 'a function returning a number in [0, 1)')
  if (r.reapAfterMs !== Infinity && !isIntAtLeast(r.reapAfterMs, 1)) throw invalid('swim.reapAfterMs', 'an integer >= 1 or Infinity')
  if (!isIntAtLeast(r.dialRetryMs, 1)) throw invalid('swim.dialRetryMs', 'an integer >= 1')
  if (!isIntAtLeast(r.maxLocalHealth, 0)) throw invalid('swim.maxLocalHealth', 'an integer >= 0')
  // Cross-field: the indirect stage must fit inside the period.
  if (r.probeTimeoutMs >= r.protocolPeriodMs) throw invalid('swim.probeTimeoutMs', 'less than swim.protocolPeriodMs')
  Object.freeze(r.addresses)
  return Object.freeze(r)
}

/** One probe of one member: the periodic one, or a check after its link went down. */
interface Probe {
  readonly seq: number
  readonly target: string
  readonly kind: 'periodic' | 'link-down'
  /** When to ask helpers (Infinity: never, or already done). */
  indirectAt: number
  readonly endAt: number
  readonly helpers: Set<string>
  readonly nackers: Set<string>
  /** Probing a member we already hold dead: success revives nothing by itself, failure means nothing. */
  readonly targetDead: boolean
}

/** A ping-req we serve for another node: we ping `target` with our own seq. */
interface Relay {
  readonly requester: string
  readonly requesterSeq: number
  readonly target: string
  /** Lifeguard: tell the requester "I am alive but got no ack" at 80 % of the probe timeout. */
  readonly nackAt: number
  readonly expireAt: number
  nacked: boolean
}

/** Fraction of the probe timeout after which a helper sends its nack (Lifeguard "Local Health Aware Probe"; memberlist uses the same 80 %). */
const NACK_FRACTION = 0.8

/**
 * The SWIM + Lifeguard membership core of one node. Deterministic given its
 * inputs and `config.random`; see the module comment for the protocol.
 *
 * Methods never throw on network input (bad shapes are counted in
 * `stats().malformed`); they throw `INVALID_OPTIONS` for bad arguments from
 * the owner (programming errors).
 */
export class Swim {
  readonly #cfg: ResolvedSwimConfig
  readonly #self: string
  #incarnation: number
  #selfState: 'alive' | 'left' = 'alive'
  readonly #table = new MemberTable()
  readonly #queue = new BroadcastQueue()
  readonly #suspicions = new Map<string, Suspicion>()
  readonly #reapAt = new Map<string, number>()
  readonly #pendingDials = new Map<string, number>()
  /** Members whose discovery dial failed: not dialed again before `at`; `fails` drives the backoff. */
  readonly #dialBackoff = new Map<string, { at: number; fails: number; armed: boolean }>()
  readonly #probes = new Map<number, Probe>()
  readonly #relays = new Map<number, Relay>()
  /** Members we hold a direct link to (by id; also ids not, or no longer, in the table). */
  readonly #links = new Set<string>()
  #probeList: string[] = []
  #probeIndex = 0
  #nextProbeAt: number
  #seq: number
  #health = 0
  #dialDirty = false
  /** nextDeadline() as of the end of the previous input, to detect starvation. */
  #expectedTick: number
  #lastStatus: MembershipStatus
  readonly #out: SwimOutput[] = []
  #outHead = 0
  readonly #stats: SwimStats = {
    malformed: 0, stale: 0, pingsSent: 0, pingReqsSent: 0, acksReceived: 0, nacksReceived: 0,
    probesFailed: 0, suspicions: 0, deaths: 0, refutations: 0, starved: 0, tableFull: 0,
  }

  /**
   * @param config see {@link SwimConfig}; validated (throws `INVALID_OPTIONS`).
   * @param now current time in ms (any monotonic clock, same for every call).
   */
  constructor (config: SwimConfig, now: number) {
    this.#cfg = resolveSwimConfig(config)
    this.#self = this.#cfg.selfId
    this.#incarnation = this.#cfg.incarnation
    // Random phase so nodes started together do not probe in lockstep, and a
    // random seq start so a restarted node does not reuse its predecessor's seqs.
    this.#nextProbeAt = now + Math.floor(this.#cfg.random() * this.#cfg.protocolPeriodMs)
    this.#seq = Math.floor(this.#cfg.random() * 0x10_0000)
    this.#expectedTick = this.#nextProbeAt
    this.#lastStatus = this.status()
  }

  /** This node's id. */
  get id (): string { return this.#self }

  /** This node's current incarnation (grows when it refutes a suspicion). */
  get incarnation (): number { return this.#incarnation }

  /** Lifeguard local health score, 0 (healthy) .. maxLocalHealth. Probing slows by (1 + score). */
  get localHealth (): number { return this.#health }

  /** The resolved configuration. */
  get config (): ResolvedSwimConfig { return this.#cfg }

  /**
   * Tell the core about a member: when a direct link to it comes up (after
   * the handshake authenticated it) or when the owner learned of it. With
   * `incarnation` it is merged as `alive(incarnation)` and gossiped; without,
   * it is recorded locally only (alive at incarnation 0 if unknown, so the
   * member's own gossip wins), filling in addresses we lacked.
   * @throws MeshError `INVALID_OPTIONS` for a bad id, incarnation or address list.
   */
  addMember (m: { id: string, incarnation?: number, addresses: string[] }, now: number): void {
    if (m === null || typeof m !== 'object' || !isMemberId(m.id)) throw invalid('addMember: m.id', `a string of 1..${SWIM_LIMITS.maxIdLength} characters`)
    if (m.incarnation !== undefined && !isIncarnation(m.incarnation)) throw invalid('addMember: m.incarnation', 'a non-negative safe integer')
    if (!isAddressList(m.addresses)) throw invalid('addMember: m.addresses', `an array of at most ${SWIM_LIMITS.maxAddresses} non-empty strings`)
    if (m.id === this.#self) return
    if (m.incarnation !== undefined) {
      this.#apply({ id: m.id, incarnation: m.incarnation, state: 'alive', addresses: [...m.addresses] }, m.id, now, true)
    } else {
      const rec = this.#table.get(m.id)
      if (rec === undefined) {
        this.#apply({ id: m.id, incarnation: 0, state: 'alive', addresses: [...m.addresses] }, m.id, now, false)
      } else if (rec.addresses.length === 0 && m.addresses.length > 0) {
        rec.addresses = [...m.addresses]
        rec.addrIncarnation = rec.incarnation
        if (rec.state === 'alive' && !rec.linked) this.#dialDirty = true
      }
    }
    this.#afterInput(now)
  }

  /**
   * The `dial` emitted for `id` did not end in a link (refused, timed out,
   * lost a duplicate race to a connection that then failed). It may be
   * emitted again after a backoff — 1 s, doubling per failure up to
   * `dialRetryMs`, with jitter — instead of waiting `dialRetryMs` for the
   * pending dial to expire (that is up to 5 protocol periods: minutes with a
   * slow heartbeat). A link to `id` resets the backoff.
   */
  dialFailed (id: string, now: number): void {
    if (!this.#pendingDials.has(id) || this.#links.has(id)) return
    this.#pendingDials.delete(id)
    const fails = (this.#dialBackoff.get(id)?.fails ?? 0) + 1
    const base = Math.min(this.#cfg.dialRetryMs, 1000 * 2 ** Math.min(fails - 1, 20))
    this.#dialBackoff.set(id, { at: now + base * (0.5 + this.#cfg.random() / 2), fails, armed: true })
    this.#afterInput(now)
  }

  /**
   * Tell the core whether we hold a direct, authenticated connection to `id`.
   * Only linked members are probed. Link up: the member gets our table (sync)
   * and joins the probe rotation. Link down: if it was alive, we ask our
   * other links whether they still reach it, and suspect it if none does.
   * @throws MeshError `INVALID_OPTIONS` for a bad id.
   */
  setLinked (id: string, linked: boolean, now: number): void {
    if (!isMemberId(id)) throw invalid('setLinked: id', `a string of 1..${SWIM_LIMITS.maxIdLength} characters`)
    if (id === this.#self) return
    if (linked === this.#links.has(id)) { this.#afterInput(now); return }
    if (linked) {
      this.#links.add(id)
      // Unknown (or forgotten) member: record it locally; its own sync brings its real incarnation.
      if (!this.#table.has(id) && this.#table.tombstone(id) === undefined) {
        this.#apply({ id, incarnation: 0, state: 'alive', addresses: [] }, id, now, false)
      }
      const rec = this.#table.get(id)
      if (rec !== undefined) rec.linked = true
      this.#pendingDials.delete(id)
      this.#dialBackoff.delete(id)
      // SWIM §4.3: a new member goes to a random position of the remaining round.
      const pos = this.#probeIndex + Math.floor(this.#cfg.random() * (this.#probeList.length - this.#probeIndex + 1))
      this.#probeList.splice(pos, 0, id)
      this.#sendSync(id, this.#fullState(id))
    } else {
      this.#links.delete(id)
      this.#dialDirty = true // a slot freed up
      const rec = this.#table.get(id)
      if (rec !== undefined) {
        rec.linked = false
        if (this.#selfState === 'alive' && (rec.state === 'alive' || rec.state === 'suspect')) this.#linkDownCheck(rec, now)
      }
    }
    this.#afterInput(now)
  }

  /**
   * A SWIM message from the linked member `from` (already authenticated by
   * the connection). Malformed input is counted and ignored.
   */
  handleMessage (from: string, message: SwimMessage, now: number): void {
    // Typed for the owner's convenience, but it is decoded network input: check it all.
    const msg = isMemberId(from) && from !== this.#self ? parseSwimMessage(message) : undefined
    if (msg === undefined) { this.#stats.malformed++; return }
    // Gossip first: a refutation must be in our table before we answer, so
    // the reply below already carries our new incarnation.
    this.#applyAll(from, msg.gossip, now)
    switch (msg.t) {
      case 'ping':
        this.#send(from, { t: 'ack', seq: msg.seq, gossip: this.gossipFor(from) })
        break
      case 'ack':
        this.#onAck(from, msg.seq)
        break
      case 'ping-req':
        this.#onPingReq(from, msg.seq, msg.target, now)
        break
      case 'nack':
        this.#onNack(from, msg.seq)
        break
      case 'sync':
        break
    }
    this.#afterInput(now)
  }

  /**
   * Updates that arrived by another path (piggybacked by the owner on other
   * control traffic from `from`). Malformed input is counted and ignored.
   */
  handleGossip (from: string, updates: Update[], now: number): void {
    const parsed = isMemberId(from) && from !== this.#self ? parseUpdates(updates) : undefined
    if (parsed === undefined) { this.#stats.malformed++; return }
    this.#applyAll(from, parsed, now)
    this.#afterInput(now)
  }

  /**
   * Updates to piggyback on a message to `to`: at most `maxPiggyback`, the
   * least transmitted first; each counts as one transmission. If we suspect
   * `to` (or hold it dead) that news goes first, uncounted (Lifeguard's buddy
   * system), so it can refute at once.
   */
  gossipFor (to: string): Update[] {
    const out: Update[] = []
    const bad = this.#badNewsAbout(to)
    if (bad !== undefined) out.push(bad)
    const limit = retransmitLimit(this.#cfg.retransmitMult, this.#clusterSize())
    // An update about the recipient itself is useless to it unless it is bad news (sent above).
    const taken = this.#queue.take(this.#cfg.maxPiggyback - out.length, limit, (u) => u.id === to)
    for (const u of taken) out.push(u)
    return out
  }

  /**
   * Advance timers to `now`: probe stages, helper nacks, suspicion
   * deadlines, forgetting, the next probe. Call at (or after)
   * {@link nextDeadline}; extra calls are harmless.
   */
  tick (now: number): void {
    // Lifeguard spirit: when we were not run for over a period (event loop
    // blocked, process paused), the silence we observed is ours, not our
    // peers'. Do not turn it into verdicts before reading what waited in our
    // inbound buffers (the owner's timer may fire before its socket reads).
    for (const b of this.#dialBackoff.values()) {
      if (b.armed && b.at <= now) { b.armed = false; this.#dialDirty = true } // due for another try (fails kept for the next backoff)
    }
    const starved = now - this.#expectedTick > this.#cfg.protocolPeriodMs
    if (starved) {
      this.#stats.starved++
      this.#adjustHealth(1)
    }

    for (const [seq, r] of this.#relays) {
      if (!r.nacked && now >= r.nackAt) {
        r.nacked = true
        this.#send(r.requester, { t: 'nack', seq: r.requesterSeq, gossip: this.gossipFor(r.requester) })
      }
      if (now >= r.expireAt) this.#relays.delete(seq)
    }

    for (const p of this.#probes.values()) {
      if (now >= p.endAt) this.#finishProbe(p, now, starved)
      else if (now >= p.indirectAt) this.#askHelpers(p)
    }

    for (const [id, s] of this.#suspicions) {
      if (now < s.deadline) continue
      if (starved) {
        this.#suspicions.set(id, s.postpone(now + this.#cfg.protocolPeriodMs))
        continue
      }
      this.#suspicions.delete(id)
      const rec = this.#table.get(id)
      if (rec !== undefined && rec.state === 'suspect' && rec.incarnation === s.incarnation) {
        this.#stats.deaths++
        this.#apply(this.#verdict(rec, 'dead'), this.#self, now, true)
      }
    }

    for (const [id, at] of this.#reapAt) {
      if (now < at) continue
      this.#reapAt.delete(id)
      const rec = this.#table.forget(id)
      if (rec !== undefined) {
        this.#suspicions.delete(id)
        this.#queue.invalidate(id)
        this.#emit({ kind: 'forget', id, state: rec.state })
      }
    }

    if (this.#selfState === 'alive' && now >= this.#nextProbeAt) {
      this.#startProbe(now)
      this.#dialDirty = true // periodically retry expired dials
    }
    this.#afterInput(now)
  }

  /** Next output, or `undefined` when drained. */
  poll (): SwimOutput | undefined {
    if (this.#outHead >= this.#out.length) return undefined
    const o = this.#out[this.#outHead]
    this.#out[this.#outHead++] = undefined as unknown as SwimOutput // let it be collected
    if (this.#outHead === this.#out.length) { this.#out.length = 0; this.#outHead = 0 }
    return o
  }

  /** When `tick` should next be called, in ms (Infinity when nothing is scheduled). */
  nextDeadline (): number {
    let d = this.#selfState === 'alive' ? this.#nextProbeAt : Infinity
    for (const p of this.#probes.values()) d = Math.min(d, p.indirectAt, p.endAt)
    for (const r of this.#relays.values()) d = Math.min(d, r.nacked ? r.expireAt : r.nackAt)
    for (const s of this.#suspicions.values()) d = Math.min(d, s.deadline)
    for (const at of this.#reapAt.values()) d = Math.min(d, at)
    if (this.#selfState === 'alive') for (const b of this.#dialBackoff.values()) if (b.armed) d = Math.min(d, b.at)
    return d
  }

  /** Every known member except this node (snapshots), dead and left included. */
  members (): MemberInfo[] {
    const out: MemberInfo[] = []
    for (const r of this.#table.values()) out.push(toInfo(r))
    return out
  }

  /** One member (snapshot), or `undefined`. */
  member (id: string): MemberInfo | undefined {
    const r = this.#table.get(id)
    return r === undefined ? undefined : toInfo(r)
  }

  /**
   * Health of the mesh as this node sees it. `members` counts known members
   * other than this node that did not leave; `unreachable` those suspect or
   * dead. `degraded` when any is unreachable, `critical` when half or more.
   */
  status (): MembershipStatus {
    const c = this.#table.counts()
    const members = c.alive + c.suspect + c.dead
    const unreachable = c.suspect + c.dead
    const state = unreachable === 0 ? 'healthy' : unreachable * 2 >= members ? 'critical' : 'degraded'
    return { state, members, reachable: members - unreachable, unreachable }
  }

  /** The running suspicion of `id`, if any. */
  suspicion (id: string): SuspicionInfo | undefined {
    const s = this.#suspicions.get(id)
    if (s === undefined) return undefined
    return { incarnation: s.incarnation, startedAt: s.startedAt, confirmations: s.confirmations, deadline: s.deadline }
  }

  /** Updates waiting in the dissemination queue, least transmitted first (diagnostics). */
  pendingGossip (): Array<{ update: Update, transmits: number }> {
    return this.#queue.peek()
  }

  /** Counters (a copy). */
  stats (): SwimStats {
    return { ...this.#stats }
  }

  /**
   * Leave gracefully: stop probing, and tell every linked member (and, by
   * gossip, everyone) that we left. Idempotent. Keep answering messages for
   * a few periods before closing the links so the news spreads.
   */
  leave (now: number): void {
    if (this.#selfState === 'left') return
    this.#selfState = 'left'
    this.#probes.clear()
    this.#queue.invalidate(this.#self)
    this.#queue.enqueue(this.#self, this.#selfUpdate())
    this.#pushToLinked([this.#selfUpdate()])
    this.#afterInput(now)
  }

  // ---------------------------------------------------------------- inputs

  #applyAll (sender: string, updates: Update[], now: number): void {
    for (const u of updates) this.#apply(u, sender, now, true)
  }

  /**
   * Merge one update and react: dissemination, suspicion timers, reaping,
   * dial candidates, `member` output. `gossip` false keeps it local.
   */
  #apply (u: Update, sender: string, now: number, gossip: boolean): void {
    if (u.id === this.#self) { this.#aboutSelf(u); return }
    // Who produced a verdict: an update without `from` is the sender's own.
    const from = u.from ?? sender
    const norm: Update = u.state === 'suspect' || u.state === 'dead'
      ? Object.freeze({ ...u, from })
      : u
    const r = this.#table.apply(norm, now)
    switch (r.kind) {
      case 'full':
        this.#stats.tableFull++
        return
      case 'stale':
        return
      case 'same': {
        // Our own name on a suspicion only counts when we raised it (not an echo or a forgery).
        if (norm.state !== 'suspect' || (from === this.#self && sender !== this.#self) || from === norm.id) return
        const s = this.#suspicions.get(norm.id)
        // A new, independent suspecter shortens the timeout (Lifeguard) and is news to others.
        if (s !== undefined && s.incarnation === norm.incarnation && s.confirm(from) && gossip) {
          this.#queue.enqueue(`${norm.id}\u0000${from}`, norm)
        }
        return
      }
      case 'new':
      case 'updated': {
        const rec = r.record
        if (r.kind === 'new') rec.linked = this.#links.has(rec.id)
        const previous = r.kind === 'new' ? undefined : r.previous
        this.#queue.invalidate(rec.id)
        if (gossip) this.#queue.enqueue(norm.state === 'suspect' ? `${rec.id}\u0000${from}` : rec.id, norm)
        this.#suspicions.delete(rec.id)
        this.#reapAt.delete(rec.id)
        if (rec.state === 'suspect') {
          this.#suspicions.set(rec.id, new Suspicion(rec.incarnation, from, now, suspicionBounds(this.#clusterSize(), this.#cfg)))
        } else if (rec.state === 'dead' || rec.state === 'left') {
          if (this.#cfg.reapAfterMs !== Infinity) this.#reapAt.set(rec.id, now + this.#cfg.reapAfterMs)
        } else if (!rec.linked && rec.addresses.length > 0) {
          this.#dialDirty = true
        }
        this.#emit({ kind: 'member', member: toInfo(rec), previous })
        return
      }
    }
  }

  /** News about ourselves: refute suspicion or death (SWIM §4.2), unless we left. */
  #aboutSelf (u: Update): void {
    if (this.#selfState === 'left') return
    if (u.state === 'alive') {
      // Someone holds us alive at a higher incarnation than we know (e.g. our
      // previous run started with a clock ahead of ours): move past it.
      if (u.incarnation > this.#incarnation) this.#refute(u.incarnation + 1, false)
      return
    }
    if (u.incarnation >= this.#incarnation) this.#refute(u.incarnation + 1, true)
  }

  #refute (incarnation: number, suspected: boolean): void {
    this.#incarnation = incarnation
    this.#stats.refutations++
    // Lifeguard LHA: being suspected hints that our own messages are slow.
    if (suspected) this.#adjustHealth(1)
    this.#queue.invalidate(this.#self)
    this.#queue.enqueue(this.#self, this.#selfUpdate())
    this.#pushToLinked([this.#selfUpdate()])
  }

  #onAck (from: string, seq: number): void {
    const relay = this.#relays.get(seq)
    if (relay !== undefined && from === relay.target) {
      // We served a ping-req: relay the target's ack to the requester.
      this.#relays.delete(seq)
      this.#send(relay.requester, { t: 'ack', seq: relay.requesterSeq, gossip: this.gossipFor(relay.requester) })
      return
    }
    const p = this.#probes.get(seq)
    if (p === undefined || (from !== p.target && !p.helpers.has(from))) { this.#stats.stale++; return }
    this.#stats.acksReceived++
    this.#probes.delete(seq)
    if (p.kind === 'periodic' && !p.targetDead) this.#adjustHealth(-1)
  }

  #onNack (from: string, seq: number): void {
    const p = this.#probes.get(seq)
    if (p === undefined || !p.helpers.has(from)) { this.#stats.stale++; return }
    this.#stats.nacksReceived++
    p.nackers.add(from)
  }

  #onPingReq (from: string, seq: number, target: string, now: number): void {
    if (target === this.#self) {
      // The requester cannot reach us directly but reached us through this very link: answer.
      this.#send(from, { t: 'ack', seq, gossip: this.gossipFor(from) })
      return
    }
    if (!this.#links.has(target) || target === from || this.#relays.size >= SWIM_LIMITS.maxRelays) {
      // Not linked to the target (or out of capacity): a nack tells the
      // requester we are alive and answering, just unable to help.
      this.#send(from, { t: 'nack', seq, gossip: this.gossipFor(from) })
      return
    }
    const mySeq = this.#nextSeq()
    const timeout = this.#cfg.probeTimeoutMs * (1 + this.#health)
    this.#relays.set(mySeq, {
      requester: from,
      requesterSeq: seq,
      target,
      nackAt: now + Math.floor(timeout * NACK_FRACTION),
      // Keep relaying a late ack until the requester's period is surely over.
      expireAt: now + this.#cfg.protocolPeriodMs * (1 + this.#health),
      nacked: false,
    })
    this.#stats.pingsSent++
    this.#send(target, { t: 'ping', seq: mySeq, gossip: this.gossipFor(target) })
  }

  // ---------------------------------------------------------------- probing

  #startProbe (now: number): void {
    const scale = 1 + this.#health
    this.#nextProbeAt = now + this.#cfg.protocolPeriodMs * scale
    const target = this.#nextTarget()
    if (target === undefined) return
    const rec = this.#table.get(target)
    if (rec === undefined) return
    const targetDead = rec.state === 'dead'
    const p: Probe = {
      seq: this.#nextSeq(),
      target,
      kind: 'periodic',
      // A member already dead gets only the direct ping (see module comment).
      indirectAt: targetDead ? Infinity : now + this.#cfg.probeTimeoutMs * scale,
      endAt: this.#nextProbeAt,
      helpers: new Set(),
      nackers: new Set(),
      targetDead,
    }
    this.#probes.set(p.seq, p)
    this.#stats.pingsSent++
    this.#send(target, { t: 'ping', seq: p.seq, gossip: this.gossipFor(target) })
  }

  /** Shuffled round robin over linked, not-left members (SWIM §4.3). */
  #nextTarget (): string | undefined {
    for (let pass = 0; pass < 2; pass++) {
      while (this.#probeIndex < this.#probeList.length) {
        const id = this.#probeList[this.#probeIndex++] as string
        const rec = this.#table.get(id)
        if (rec !== undefined && this.#links.has(id) && rec.state !== 'left') return id
      }
      const list: string[] = []
      for (const id of this.#links) {
        const rec = this.#table.get(id)
        if (rec !== undefined && rec.state !== 'left') list.push(id)
      }
      shuffle(list, this.#cfg.random)
      this.#probeList = list
      this.#probeIndex = 0
      if (list.length === 0) return undefined
    }
    return undefined
  }

  /** Send ping-req for `p` to up to k random linked, alive members other than its target. */
  #askHelpers (p: Probe): void {
    p.indirectAt = Infinity
    const candidates: string[] = []
    for (const id of this.#links) {
      if (id !== p.target && this.#table.get(id)?.state === 'alive') candidates.push(id)
    }
    const k = Math.min(this.#cfg.indirectProbes, candidates.length)
    partialShuffle(candidates, k, this.#cfg.random)
    for (let i = 0; i < k; i++) {
      const h = candidates[i] as string
      p.helpers.add(h)
      this.#stats.pingReqsSent++
      this.#send(h, { t: 'ping-req', seq: p.seq, target: p.target, gossip: this.gossipFor(h) })
    }
  }

  #linkDownCheck (rec: MemberRecord, now: number): void {
    for (const p of this.#probes.values()) if (p.kind === 'link-down' && p.target === rec.id) return
    const p: Probe = {
      seq: this.#nextSeq(),
      target: rec.id,
      kind: 'link-down',
      indirectAt: Infinity,
      endAt: now + this.#cfg.protocolPeriodMs * (1 + this.#health),
      helpers: new Set(),
      nackers: new Set(),
      targetDead: false,
    }
    this.#probes.set(p.seq, p)
    this.#askHelpers(p)
  }

  /** A probe's time is up with no ack. */
  #finishProbe (p: Probe, now: number, starved: boolean): void {
    this.#probes.delete(p.seq)
    if (p.targetDead) return
    if (starved) return // inconclusive: we, not the target, were silent (see tick)
    this.#stats.probesFailed++
    if (p.kind === 'periodic') {
      // Lifeguard LHA: a failed probe whose helpers did not even nack points
      // at our own connectivity; with no helpers we cannot tell, so memberlist
      // charges one point.
      const expected = p.helpers.size
      this.#adjustHealth(expected > 0 ? expected - p.nackers.size : 1)
    }
    const rec = this.#table.get(p.target)
    if (rec === undefined || (rec.state !== 'alive' && rec.state !== 'suspect')) return
    this.#stats.suspicions++
    this.#apply(this.#verdict(rec, 'suspect'), this.#self, now, true)
  }

  // ---------------------------------------------------------------- helpers

  /** A suspect/dead verdict by this node about `rec` at its current incarnation. */
  #verdict (rec: MemberRecord, state: 'suspect' | 'dead'): Update {
    // Addresses only when known for this very incarnation (see mergeAddresses).
    const addresses = rec.addrIncarnation === rec.incarnation ? [...rec.addresses] : []
    return Object.freeze({ id: rec.id, incarnation: rec.incarnation, state, addresses, from: this.#self })
  }

  #selfUpdate (): Update {
    return Object.freeze({ id: this.#self, incarnation: this.#incarnation, state: this.#selfState, addresses: [...this.#cfg.addresses] })
  }

  /** Our whole table as updates, for a newly linked member. */
  #fullState (to: string): Update[] {
    const out: Update[] = [this.#selfUpdate()]
    // A forgotten member must learn it was declared dead, or it could never refute.
    if (!this.#table.has(to)) {
      const bad = this.#badNewsAbout(to)
      if (bad !== undefined) out.push(bad)
    }
    for (const r of this.#table.values()) {
      if (r.id === to && r.state === 'alive') continue
      const s = this.#suspicions.get(r.id)
      const u: Update = { id: r.id, incarnation: r.incarnation, state: r.state, addresses: r.addrIncarnation === r.incarnation ? [...r.addresses] : [] }
      if (r.state === 'suspect' || r.state === 'dead') u.from = s?.first ?? this.#self
      out.push(u)
    }
    return out
  }

  #sendSync (to: string, updates: Update[]): void {
    for (let i = 0; i < updates.length; i += SWIM_LIMITS.maxGossip) {
      this.#send(to, { t: 'sync', gossip: updates.slice(i, i + SWIM_LIMITS.maxGossip) })
    }
  }

  #pushToLinked (updates: Update[]): void {
    for (const id of this.#links) this.#sendSync(id, updates)
  }

  /**
   * Our suspicion or death verdict about `id` (from the table or its
   * tombstone), for the member itself (Lifeguard buddy system).
   */
  #badNewsAbout (id: string): Update | undefined {
    const rec = this.#table.get(id) ?? this.#table.tombstone(id)
    // A member that left said so itself; only suspicion and death are news to it.
    if (rec === undefined || rec.state === 'alive' || rec.state === 'left') return undefined
    return Object.freeze({ id, incarnation: rec.incarnation, state: rec.state, addresses: [], from: this.#self })
  }

  /** Live cluster size n (alive + suspect members, and us): drives K, timeouts, retransmits. */
  #clusterSize (): number {
    const c = this.#table.counts()
    return 1 + c.alive + c.suspect
  }

  #adjustHealth (delta: number): void {
    this.#health = Math.max(0, Math.min(this.#cfg.maxLocalHealth, this.#health + delta))
  }

  #nextSeq (): number {
    this.#seq = this.#seq >= Number.MAX_SAFE_INTEGER ? 0 : this.#seq + 1
    return this.#seq
  }

  #send (to: string, msg: SwimMessage): void {
    this.#emit({ kind: 'send', to, msg })
  }

  #emit (o: SwimOutput): void {
    this.#out.push(o)
  }

  /** Common tail of every input: dials, status change, the expected next tick. */
  #afterInput (now: number): void {
    if (this.#dialDirty) {
      this.#dialDirty = false
      this.#maybeDial(now)
    }
    const s = this.status()
    const l = this.#lastStatus
    if (s.state !== l.state || s.members !== l.members || s.reachable !== l.reachable || s.unreachable !== l.unreachable) {
      this.#lastStatus = s
      this.#emit({ kind: 'status', status: { ...s } })
    }
    this.#expectedTick = Math.max(now, this.nextDeadline())
  }

  /** Emit `dial` for alive, unlinked members with addresses, up to maxPeers − linked − pending. */
  #maybeDial (now: number): void {
    if (this.#selfState !== 'alive') return
    for (const [id, at] of this.#pendingDials) {
      const rec = this.#table.get(id)
      if (now - at >= this.#cfg.dialRetryMs || rec === undefined || rec.linked || rec.state !== 'alive') this.#pendingDials.delete(id)
    }
    // Backoffs of members that are gone or linked (setLinked clears its own) are dropped with them.
    for (const [id, b] of this.#dialBackoff) {
      const rec = this.#table.get(id)
      if (!b.armed && (rec === undefined || rec.linked || rec.state !== 'alive')) this.#dialBackoff.delete(id)
    }
    const budget = this.#cfg.maxPeers - this.#links.size - this.#pendingDials.size
    if (budget <= 0) return
    const candidates: MemberRecord[] = []
    for (const r of this.#table.values()) {
      if (r.state === 'alive' && !r.linked && r.addresses.length > 0 && !this.#pendingDials.has(r.id) && this.#dialBackoff.get(r.id)?.armed !== true) candidates.push(r)
    }
    // Random choice, so members learning the same news do not all dial the same few nodes.
    const n = Math.min(budget, candidates.length)
    partialShuffle(candidates, n, this.#cfg.random)
    for (let i = 0; i < n; i++) {
      const r = candidates[i] as MemberRecord
      this.#pendingDials.set(r.id, now)
      this.#emit({ kind: 'dial', id: r.id, addresses: [...r.addresses] })
    }
  }
}

/** Fisher–Yates, in place. */
function shuffle<T> (a: T[], random: () => number): void {
  partialShuffle(a, a.length, random)
}

/** Put a uniform random sample of `k` elements in a[0..k), in place. */
function partialShuffle<T> (a: T[], k: number, random: () => number): void {
  for (let i = 0; i < k && i < a.length - 1; i++) {
    const j = i + Math.floor(random() * (a.length - i))
    const t = a[i] as T
    a[i] = a[j] as T
    a[j] = t
  }
}
