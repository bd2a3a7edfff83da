/**
 * The SWIM member table: member states, the precedence rules between updates,
 * and the validation of updates received from the network. Pure data, no
 * clock of its own (callers pass `now`), no I/O.
 *
 * ## Precedence (SWIM §4.2, memberlist `aliveNode`/`suspectNode`/`deadNode`)
 *
 * Every update carries `(incarnation, state)`. An update replaces what we hold
 * iff its key is larger in this lexicographic order:
 *
 * ```
 *   (incarnation, rank(state))     rank: alive 0 < suspect 1 < dead 2 < left 3
 * ```
 *
 * which gives exactly the classic rules:
 *
 * - alive(i)   overrides suspect(j) iff i > j     (refutation)
 * - suspect(i) overrides alive(j)   iff i >= j
 * - suspect(i) overrides suspect(j) iff i > j
 * - dead/left(i) override alive/suspect(j) iff i >= j
 * - alive(i)   overrides dead/left(j) iff i > j  (a restarted node comes back)
 * - left(i)    overrides dead(i): a graceful leave is the better explanation.
 *
 * Because the order is total and "keep the larger" is a join, the table is a
 * state-based CRDT (a map of max-registers): any set of updates applied in any
 * order, with any duplication, yields the same table. `test/unit/membership`
 * checks that with fast-check.
 *
 * Addresses are a second register per member, keyed by incarnation: a node
 * that changes its listen addresses must restart with a higher incarnation
 * (which it does: the incarnation is its start time). Suspect/dead updates
 * made by third parties may carry no addresses; they never erase known ones.
 *
 * @module
 */

/** Member states, in precedence order (see the module comment). */
export const MemberState = {
  ALIVE: 'alive',
  SUSPECT: 'suspect',
  DEAD: 'dead',
  LEFT: 'left',
} as const
/** A member's state: `alive`, `suspect`, `dead` or `left` (gracefully gone). */
export type MemberState = typeof MemberState[keyof typeof MemberState]

/** Tie-break rank for equal incarnations: the larger wins. */
export const STATE_RANK = { alive: 0, suspect: 1, dead: 2, left: 3 } as const satisfies Record<MemberState, number>

const STATES = new Set<string>(Object.values(MemberState))

/**
 * One piece of membership news, as gossiped.
 * `from` names who produced a suspect/dead verdict (absent for `alive`, which
 * only the member itself issues); Lifeguard counts distinct suspecters.
 */
export interface Update {
  id: string
  incarnation: number
  state: MemberState
  /** The member's listen URLs; may be empty (dial-only node, or unknown to the sender). */
  addresses: string[]
  from?: string
}

/** A member as reported to the owner (a snapshot; mutating it changes nothing). */
export interface MemberInfo {
  id: string
  incarnation: number
  state: MemberState
  addresses: string[]
  /** We hold a direct, authenticated connection to it (told by `setLinked`). */
  linked: boolean
}

/**
 * Bounds on what we accept from the network (updates arrive via msgpack from
 * peers we authenticated, but a buggy or hostile peer must not be able to make
 * us allocate without bound).
 */
export const SWIM_LIMITS = {
  /** Longest member id, in UTF-16 code units (peer ids are 52 characters). */
  maxIdLength: 128,
  /** Most listen addresses per member. */
  maxAddresses: 16,
  /** Longest listen address, in UTF-16 code units. */
  maxAddressLength: 512,
  /** Most updates in one message (piggyback or sync chunk). */
  maxGossip: 64,
  /** Most members in the table (and separately, most tombstones kept). */
  maxMembers: 10_000,
  /** Most ping-req relays we run for others at once. */
  maxRelays: 1_024,
} as const

/** The precedence rule: does `next` replace `cur`? (See the module comment.) */
export function supersedes (
  next: { incarnation: number, state: MemberState },
  cur: { incarnation: number, state: MemberState },
): boolean {
  if (next.incarnation !== cur.incarnation) return next.incarnation > cur.incarnation
  return STATE_RANK[next.state] > STATE_RANK[cur.state]
}

/** True when `s` is an acceptable member id. */
export function isMemberId (s: unknown): s is string {
  return typeof s === 'string' && s.length > 0 && s.length <= SWIM_LIMITS.maxIdLength
}

/** True when `a` is an acceptable address list. */
export function isAddressList (a: unknown): a is string[] {
  if (!Array.isArray(a) || a.length > SWIM_LIMITS.maxAddresses) return false
  for (const s of a) {
    if (typeof s !== 'string' || s.length === 0 || s.length > SWIM_LIMITS.maxAddressLength) return false
  }
  return true
}

/** True when `n` is an acceptable incarnation number. */
export function isIncarnation (n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0
}

/**
 * Check one update received from the network and return a clean copy (only
 * the known fields, frozen), or `undefined` when anything is off. Never throws.
 */
export function parseUpdate (raw: unknown): Update | undefined {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return undefined
  const r = raw as Record<string, unknown>
  if (!isMemberId(r.id) || !isIncarnation(r.incarnation)) return undefined
  if (typeof r.state !== 'string' || !STATES.has(r.state)) return undefined
  if (!isAddressList(r.addresses)) return undefined
  if (r.from !== undefined && r.from !== null && !isMemberId(r.from)) return undefined
  const u: Update = { id: r.id, incarnation: r.incarnation, state: r.state as MemberState, addresses: Object.freeze([...r.addresses]) as string[] }
  if (typeof r.from === 'string') u.from = r.from
  return Object.freeze(u)
}

/** Parse a gossip array; `undefined` when it is not an array, too long, or holds one bad update. */
export function parseUpdates (raw: unknown): Update[] | undefined {
  if (!Array.isArray(raw) || raw.length > SWIM_LIMITS.maxGossip) return undefined
  const out: Update[] = []
  for (const r of raw) {
    const u = parseUpdate(r)
    if (u === undefined) return undefined
    out.push(u)
  }
  return out
}

/** The table's record of one member. Mutable; owned by {@link MemberTable}. */
export interface MemberRecord {
  readonly id: string
  incarnation: number
  state: MemberState
  addresses: string[]
  /** Incarnation the `addresses` were learned at (-1 before any). */
  addrIncarnation: number
  linked: boolean
  /** `now` of the last state or incarnation change, in ms. */
  since: number
}

/** What {@link MemberTable.apply} did with an update. */
export type ApplyResult =
  /** Not known before: a record was created. */
  | { kind: 'new', record: MemberRecord }
  /** It superseded what we held. */
  | { kind: 'updated', record: MemberRecord, previous: MemberState, previousIncarnation: number }
  /** Same key as held (a duplicate, or a suspect confirmation). */
  | { kind: 'same', record: MemberRecord }
  /** Older than what we hold, or about a forgotten member at or below its tombstone. */
  | { kind: 'stale' }
  /** Unknown member and the table is full. */
  | { kind: 'full' }

/** Per-state counts of the members in the table (tombstones excluded). */
export type StateCounts = Record<MemberState, number>

/**
 * The member table: records keyed by id, plus tombstones for members that
 * were dead or left long enough to be forgotten. A tombstone keeps only the
 * precedence key, so stale gossip cannot bring the member back; a higher
 * incarnation can (a restart).
 */
export class MemberTable {
  readonly #records = new Map<string, MemberRecord>()
  /** Forgotten members, oldest first (Map keeps insertion order). */
  readonly #tombstones = new Map<string, { incarnation: number, state: MemberState }>()
  readonly #counts: StateCounts = { alive: 0, suspect: 0, dead: 0, left: 0 }
  readonly #maxMembers: number

  constructor (maxMembers: number = SWIM_LIMITS.maxMembers) {
    this.#maxMembers = maxMembers
  }

  get size (): number { return this.#records.size }
  get (id: string): MemberRecord | undefined { return this.#records.get(id) }
  has (id: string): boolean { return this.#records.has(id) }
  values (): IterableIterator<MemberRecord> { return this.#records.values() }
  /** Current per-state counts (a copy). */
  counts (): StateCounts { return { ...this.#counts } }
  /** Tombstone of a forgotten member, if any. */
  tombstone (id: string): { incarnation: number, state: MemberState } | undefined { return this.#tombstones.get(id) }

  /**
   * Merge one update by the precedence rules. `now` stamps `since` on a change.
   * Does not handle suspicion timers or dissemination: the caller reacts to
   * the result.
   */
  apply (u: Update, now: number): ApplyResult {
    const rec = this.#records.get(u.id)
    if (rec === undefined) {
      const tomb = this.#tombstones.get(u.id)
      if (tomb !== undefined && !supersedes(u, tomb)) return { kind: 'stale' }
      if (this.#records.size >= this.#maxMembers) return { kind: 'full' }
      this.#tombstones.delete(u.id)
      const record: MemberRecord = {
        id: u.id,
        incarnation: u.incarnation,
        state: u.state,
        addresses: [],
        addrIncarnation: -1,
        linked: false,
        since: now,
      }
      mergeAddresses(record, u)
      this.#records.set(u.id, record)
      this.#counts[u.state]++
      return { kind: 'new', record }
    }
    mergeAddresses(rec, u)
    if (supersedes(u, rec)) {
      const previous = rec.state
      const previousIncarnation = rec.incarnation
      this.#counts[previous]--
      this.#counts[u.state]++
      rec.incarnation = u.incarnation
      rec.state = u.state
      rec.since = now
      return { kind: 'updated', record: rec, previous, previousIncarnation }
    }
    if (u.incarnation === rec.incarnation && u.state === rec.state) return { kind: 'same', record: rec }
    return { kind: 'stale' }
  }

  /**
   * Drop a record, keeping a tombstone of its precedence key. The oldest
   * tombstones are evicted beyond `maxMembers` (memory bound; a very old
   * stale update could then revive a member, which its neighbours' probes
   * would correct).
   */
  forget (id: string): MemberRecord | undefined {
    const rec = this.#records.get(id)
    if (rec === undefined) return undefined
    this.#records.delete(id)
    this.#counts[rec.state]--
    this.#tombstones.set(id, { incarnation: rec.incarnation, state: rec.state })
    while (this.#tombstones.size > this.#maxMembers) {
      const oldest = this.#tombstones.keys().next()
      if (oldest.done === true) break
      this.#tombstones.delete(oldest.value)
    }
    return rec
  }
}

/**
 * The address register: adopt the update's addresses when they are at least
 * as new as ours. An `alive` update is issued by the member itself, so it is
 * authoritative even when empty (a node restarted as dial-only); anybody
 * else's empty list means "unknown" and never erases.
 */
function mergeAddresses (rec: MemberRecord, u: Update): void {
  const authoritative = u.state === MemberState.ALIVE || u.addresses.length > 0
  if (!authoritative) return
  if (u.incarnation > rec.addrIncarnation ||
      (u.incarnation === rec.addrIncarnation && rec.addresses.length === 0 && u.addresses.length > 0)) {
    rec.addresses = [...u.addresses]
    rec.addrIncarnation = u.incarnation
  }
}

/** Snapshot a record for the owner. */
export function toInfo (r: MemberRecord): MemberInfo {
  return { id: r.id, incarnation: r.incarnation, state: r.state, addresses: [...r.addresses], linked: r.linked }
}
