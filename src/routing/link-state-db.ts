/**
 * The link-state database, sans-IO (STYLE.md §1): every node's latest LSA,
 * the flooding rules, aging, and this node's own advertisements. No
 * sockets, no timers, no clock: the owner (the routing actor) passes `now`
 * in, sends what the results say to send, and calls
 * {@link LinkStateDb.handleTimeout} at {@link LinkStateDb.nextDeadline}.
 *
 * Flooding (after OSPF, RFC 2328 §13, simplified: links are reliable
 * streams, so there are no acks or retransmission lists):
 *
 * ```
 *  receive(lsa, from)
 *    origin is us ──────────── seq > ours? re-originate above it, flood to all
 *    seq < held ────────────── drop 'stale'; send our newer copy back to `from`
 *    seq = held ────────────── drop 'duplicate' (the common case: no verify)
 *    signature bad ─────────── drop 'forged'
 *    aged out (age >= max) ─── flush the held copy, flood the flush onwards
 *    otherwise ─────────────── install; flood to every neighbour but `from`,
 *                              the origin and those it lists as linked
 *                              (the origin sent them this copy itself)
 * ```
 *
 * The sequence check runs before the (costly) signature check: duplicates
 * are most of the flooding traffic, and an unverified LSA is never
 * installed, so the order is safe.
 *
 * Aging: a copy expires `maxAgeMs − ageMs` after receipt. The origin
 * re-originates every `refreshMs` (< maxAgeMs), so only the LSAs of nodes
 * that are gone age out. Routing does not wait for that: a link counts only
 * when both ends advertise it (see route-table.ts), so a dead node drops out
 * as soon as its neighbours re-originate without it. {@link LinkStateDb.leave}
 * floods a flush (an LSA at max age) for a graceful exit.
 *
 * Restarts: a node that restarts with a lower seq than its old LSAs still
 * in flight sees its own old LSA come back, and jumps its seq above it.
 * Start `initialSeq` at the wall clock in ms (like SWIM incarnations) and
 * that rarely happens.
 *
 * Rate limits are the owner's: debounce re-origination after link changes
 * (OSPF's MinLSInterval) and route recomputation after `changed`.
 *
 * @module
 */
import { createLsa, sameLinks, verifyLsa, withAge, type Lsa, type LsaLink, type LsaSigner } from './lsa.js'

/** Configuration of a {@link LinkStateDb}. Durations in ms. */
export interface LinkStateDbConfig {
  /** Signs this node's LSAs; its id is this node's peer id. */
  signer: LsaSigner
  /** Sequence number of this node's first LSA (safe integer >= 1). Use `Date.now()`. */
  initialSeq: number
  /** An LSA not refreshed for this long is dropped. Integer > refreshMs. @default 120000 */
  maxAgeMs?: number
  /** This node re-originates its LSA this often. Integer >= 1. @default 40000 */
  refreshMs?: number
  /**
   * Each refresh comes up to this fraction of refreshMs early, at random, so
   * nodes started together do not flood their refreshes in the same moment
   * (a 16-node full mesh started at once sent ~3 KB/s per link for a while
   * every 40 s, and next to nothing in between). 0..0.5. @default 0
   */
  refreshJitter?: number
  /** Random numbers in [0, 1) for the jitter (tests pass a fixed one). @default Math.random */
  random?: () => number
  /** Most LSAs held (LSAs from new origins beyond it are dropped: 'db-full'). @default 4096 */
  maxEntries?: number
  /** Signature check; defaults to {@link verifyLsa} (ed25519 against the origin id). */
  verify?: (lsa: Lsa) => boolean
}

/** Defaults of the optional {@link LinkStateDbConfig} fields. */
export const LSDB_DEFAULTS = {
  maxAgeMs: 120_000,
  refreshMs: 40_000,
  maxEntries: 4096,
} as const

/** Why {@link LinkStateDb.receive} did not install an LSA. */
export const DropReason = {
  /** Older than the copy held (our copy goes back to the sender). */
  STALE: 'stale',
  /** Same seq as the copy held. */
  DUPLICATE: 'duplicate',
  /** Signature does not verify against the origin id. */
  FORGED: 'forged',
  /** Arrived at or past max age with nothing newer to flush. */
  EXPIRED: 'expired',
  /** One of our own LSAs (an older incarnation's, if its seq was higher we re-originated). */
  OWN: 'own',
  /** A new origin while the database holds `maxEntries` LSAs. */
  FULL: 'db-full',
} as const
/** A value of {@link DropReason}. */
export type DropReason = typeof DropReason[keyof typeof DropReason]

/** One LSA to send to one neighbour. */
export interface LsaSend {
  readonly to: string
  /** Send with `encodeLsa(lsa)`: its `ageMs` is already the age to put on the wire. */
  readonly lsa: Lsa
}

/** What the owner must do after an input. */
export interface LsdbOutput {
  /** LSAs to send, in order. */
  readonly sends: LsaSend[]
  /**
   * The topology changed (links added, removed or re-costed, an origin
   * appeared or went): recompute routes (debounced). Refreshes with the same
   * links are not changes.
   */
  readonly changed: boolean
}

/** Result of {@link LinkStateDb.receive}. */
export interface ReceiveResult extends LsdbOutput {
  /** 'installed' (new or newer, or a flush of the copy held) or 'dropped'. */
  readonly action: 'installed' | 'dropped'
  /** Why it was dropped (undefined when installed). */
  readonly reason: DropReason | undefined
  /** Neighbours the received LSA is flooded to (all but the sender, the origin and the origin's listed links; empty when dropped). */
  readonly flood: string[]
}

/** A held LSA. */
export interface LsdbEntry {
  readonly lsa: Lsa
  /** When it was received or originated (ms, the owner's clock). */
  readonly receivedAt: number
  /** When it ages out (Infinity for our own). */
  readonly expiresAt: number
}

function positiveInt (v: unknown, name: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) throw new RangeError(`${name} must be an integer >= 1 (got ${String(v)})`)
  return v
}

/** Sans-IO link-state database of one node; see the module doc. */
export class LinkStateDb {
  readonly selfId: string
  readonly maxAgeMs: number
  readonly refreshMs: number
  readonly maxEntries: number
  readonly refreshJitter: number
  readonly #random: () => number
  readonly #signer: LsaSigner
  readonly #verify: (lsa: Lsa) => boolean
  readonly #entries = new Map<string, LsdbEntry>()
  readonly #neighbors = new Set<string>()
  /** Origins that left (flushed), with the flush seq, kept for a max age. */
  readonly #flushed = new Map<string, { seq: number, until: number }>()
  #seq: number
  #ownLinks: readonly LsaLink[] = []
  #refreshAt = Infinity
  #version = 0

  /**
   * @throws RangeError on a bad config field (named in the message).
   */
  constructor (config: LinkStateDbConfig) {
    this.#signer = config.signer
    this.selfId = config.signer.id
    this.#seq = positiveInt(config.initialSeq, 'initialSeq') - 1
    this.maxAgeMs = positiveInt(config.maxAgeMs ?? LSDB_DEFAULTS.maxAgeMs, 'maxAgeMs')
    this.refreshMs = positiveInt(config.refreshMs ?? LSDB_DEFAULTS.refreshMs, 'refreshMs')
    this.maxEntries = positiveInt(config.maxEntries ?? LSDB_DEFAULTS.maxEntries, 'maxEntries')
    if (this.refreshMs >= this.maxAgeMs) throw new RangeError(`refreshMs (${this.refreshMs}) must be less than maxAgeMs (${this.maxAgeMs})`)
    const jitter = config.refreshJitter ?? 0
    if (!(jitter >= 0 && jitter <= 0.5)) throw new RangeError(`refreshJitter must be in 0..0.5 (got ${String(config.refreshJitter)})`)
    this.refreshJitter = jitter
    this.#random = config.random ?? Math.random
    this.#verify = config.verify ?? verifyLsa
  }

  /** Bumped on every topology change; compare to know whether routes are stale. */
  get version (): number { return this.#version }

  /** Sequence number of this node's latest LSA (initialSeq − 1 before the first). */
  get seq (): number { return this.#seq }

  /** Number of LSAs held, ours included. */
  get size (): number { return this.#entries.size }

  /** Current neighbours (flooding targets). */
  neighbors (): string[] { return [...this.#neighbors] }

  /** The LSA held for `origin`, if any. */
  get (origin: string): LsdbEntry | undefined { return this.#entries.get(origin) }

  /** Every held LSA (ours included). */
  entries (): IterableIterator<LsdbEntry> { return this.#entries.values() }

  /**
   * A link to `peer` came up: it becomes a flooding target and gets our
   * whole database (every held LSA at its current age), so it need not wait
   * for refreshes. Re-originating our own LSA with the new link is the
   * owner's call ({@link originate}).
   */
  addNeighbor (peer: string, now: number): LsdbOutput {
    this.#neighbors.add(peer)
    const sends: LsaSend[] = []
    for (const e of this.#entries.values()) sends.push({ to: peer, lsa: this.#aged(e, now) })
    return { sends, changed: false }
  }

  /** The link to `peer` went down: no more flooding to it. */
  removeNeighbor (peer: string): void {
    this.#neighbors.delete(peer)
  }

  /**
   * Originate this node's LSA with `links` (seq + 1), install it and flood it
   * to every neighbour. Also schedules the next refresh.
   * @throws MeshError `PROTOCOL` when a link is invalid (see createLsa).
   */
  originate (links: readonly LsaLink[], now: number): LsdbOutput {
    const lsa = createLsa(this.#signer, this.#seq + 1, links)
    this.#seq = lsa.seq
    const prev = this.#entries.get(this.selfId)
    this.#ownLinks = lsa.links
    this.#entries.set(this.selfId, { lsa, receivedAt: now, expiresAt: Infinity })
    // Early by a random part of the jitter, never late: maxAgeMs still holds.
    this.#refreshAt = now + Math.round(this.refreshMs * (1 - this.refreshJitter * this.#random()))
    const changed = prev === undefined || !sameLinks(prev.lsa.links, lsa.links)
    if (changed) this.#version++
    return { sends: [...this.#neighbors].map((to) => ({ to, lsa })), changed }
  }

  /**
   * Leave gracefully: flood a flush of our LSA (next seq, no links, at max
   * age) so every node drops it now instead of after `maxAgeMs`. No refresh
   * is scheduled afterwards.
   */
  leave (now: number): LsdbOutput {
    const out = this.originate([], now)
    const flush = withAge(this.#entries.get(this.selfId)!.lsa, this.maxAgeMs)
    this.#entries.delete(this.selfId)
    this.#refreshAt = Infinity
    this.#version++
    return { sends: out.sends.map((s) => ({ to: s.to, lsa: flush })), changed: true }
  }

  /** Handle an LSA (decoded by the owner) from neighbour `from`. See the module doc for the rules. */
  receive (lsa: Lsa, from: string, now: number): ReceiveResult {
    if (lsa.origin === this.selfId) return this.#receiveOwn(lsa, now)
    const held = this.#entries.get(lsa.origin)
    const flushed = this.#flushed.get(lsa.origin)
    if (flushed !== undefined && lsa.seq <= flushed.seq) {
      // A copy from before the origin left, still in flight: do not revive it.
      return dropped(lsa.seq === flushed.seq ? DropReason.DUPLICATE : DropReason.STALE, [])
    }
    if (held !== undefined) {
      if (lsa.seq < held.lsa.seq) {
        // The sender is behind: give it our copy (it floods it on).
        return dropped(DropReason.STALE, [{ to: from, lsa: this.#aged(held, now) }])
      }
      if (lsa.seq === held.lsa.seq) return dropped(DropReason.DUPLICATE, [])
    }
    if (lsa.ageMs >= this.maxAgeMs && held === undefined) return dropped(DropReason.EXPIRED, [])
    if (held === undefined && this.#entries.size >= this.maxEntries) return dropped(DropReason.FULL, [])
    if (!this.#verify(lsa)) return dropped(DropReason.FORGED, [])
    const flood = this.#floodTargets(lsa, from)
    const sends = flood.map((to) => ({ to, lsa }))
    if (lsa.ageMs >= this.maxAgeMs) {
      // A flush of what we hold (a graceful leave): drop ours, pass it on,
      // and remember its seq for a max age so late copies stay dead.
      this.#entries.delete(lsa.origin)
      this.#flushed.set(lsa.origin, { seq: lsa.seq, until: now + this.maxAgeMs })
      const changed = held!.lsa.links.length > 0
      if (changed) this.#version++
      return { action: 'installed', reason: undefined, flood, sends, changed }
    }
    this.#entries.set(lsa.origin, { lsa, receivedAt: now, expiresAt: now + this.maxAgeMs - lsa.ageMs })
    const changed = held === undefined ? lsa.links.length > 0 : !sameLinks(held.lsa.links, lsa.links)
    if (changed) this.#version++
    return { action: 'installed', reason: undefined, flood, sends, changed }
  }

  /**
   * Who gets an LSA installed from `from`: every neighbour but `from`, its
   * origin, and those the origin lists as linked. An origin floods each LSA
   * to all its neighbours, and the links it lists are those neighbours when
   * it originated it (routing-service.ts adds and drops both together), so
   * each of them had this copy from the origin itself, whichever way it
   * reached us. In a full mesh of n nodes a refresh then takes n−1
   * deliveries, not (n−1)² (16 nodes: 225, of them 210 duplicates). A listed
   * neighbour whose copy was lost with its link gets the whole database at
   * the next link-up; if the link stays down, the origin re-originates
   * without it, and that copy is flooded to it. One whose copy could not be
   * sent on a link that stayed up gets it from the origin's owner
   * (RoutingService.resync).
   */
  #floodTargets (lsa: Lsa, from: string): string[] {
    const out: string[] = []
    for (const n of this.#neighbors) {
      if (n === from || n === lsa.origin || hasLink(lsa, n)) continue
      out.push(n)
    }
    return out
  }

  #receiveOwn (lsa: Lsa, now: number): ReceiveResult {
    // Only an authentic old LSA of ours may push our seq up (else anyone
    // could burn our sequence space).
    if (lsa.seq <= this.#seq || !this.#verify(lsa)) return dropped(DropReason.OWN, [])
    this.#seq = lsa.seq
    if (!this.#entries.has(this.selfId)) return dropped(DropReason.OWN, []) // not originated yet, or left
    // Re-originate above the old incarnation's LSA; every neighbour must see it.
    const out = this.originate(this.#ownLinks, now)
    return { action: 'dropped', reason: DropReason.OWN, flood: [], sends: out.sends, changed: out.changed }
  }

  /** When {@link handleTimeout} is next due (ms), or undefined when nothing is scheduled. */
  nextDeadline (): number | undefined {
    let t = this.#refreshAt
    for (const e of this.#entries.values()) if (e.expiresAt < t) t = e.expiresAt
    return t === Infinity ? undefined : t
  }

  /** Refresh our LSA and age others out as due at `now`. */
  handleTimeout (now: number): LsdbOutput {
    let changed = false
    for (const [origin, e] of this.#entries) {
      if (e.expiresAt <= now) {
        this.#entries.delete(origin)
        if (e.lsa.links.length > 0) changed = true
      }
    }
    if (changed) this.#version++
    for (const [origin, f] of this.#flushed) if (f.until <= now) this.#flushed.delete(origin)
    if (now >= this.#refreshAt) {
      const out = this.originate(this.#ownLinks, now)
      return { sends: out.sends, changed: changed || out.changed }
    }
    return { sends: [], changed }
  }

  /** The copy of an entry to send now: its age advanced by the time held. */
  #aged (e: LsdbEntry, now: number): Lsa {
    const age = e.lsa.ageMs + Math.max(0, now - e.receivedAt)
    return age === e.lsa.ageMs ? e.lsa : withAge(e.lsa, age)
  }
}

/** Whether `lsa` lists a link to `peer` (links are sorted by id: a binary search). */
function hasLink (lsa: Lsa, peer: string): boolean {
  const links = lsa.links
  let lo = 0
  let hi = links.length - 1
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1
    const p = links[mid]!.peer
    if (p === peer) return true
    if (p < peer) lo = mid + 1
    else hi = mid - 1
  }
  return false
}

function dropped (reason: DropReason, sends: LsaSend[]): ReceiveResult {
  return { action: 'dropped', reason, flood: [], sends, changed: false }
}
