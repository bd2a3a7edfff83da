/**
 * The node's table of direct links, and the one-connection-per-peer-pair rule
 * (DESIGN.md §3), sans-IO.
 *
 * When a second connection to the same peer claims the peer (after the peer
 * proved its key), exactly one survives, decided by a rule both ends compute
 * identically: the connection dialed by the LARGER peer id wins. Both ends
 * apply the rule before they establish a connection, so they converge on the
 * same survivor whatever the message interleaving.
 *
 * Two connections dialed by the same side: the dialer keeps the older (it
 * refuses its own new one before the other end claims it), and the other
 * end keeps the newer. A dialer with a connection to the peer refuses the
 * second at once, so the other end only ever sees a second one from a dialer
 * that no longer has the first: its process restarted (same id, dataDir), or
 * it saw the link die first. The other end may still hold that connection
 * half-open (no FIN came: the host vanished, a network cut) until its
 * heartbeats give up on it, seconds later; keeping the older there refused
 * the dialer meanwhile, and the dialer took the refusal for "already linked"
 * and did not dial again.
 */
export interface LinkEntry {
  connKey: string
  worker: number
  peerId: string
  dialerId: string
  up: boolean
  /** Claim order, for the same-dialer case (see the module comment). */
  order: number
}

export type ClaimOutcome =
  | { ok: true; drop: LinkEntry[] }
  | { ok: false; reason: string; keep: LinkEntry }

const NONE: readonly LinkEntry[] = Object.freeze([])

export class LinkRegistry {
  readonly #byPeer = new Map<string, LinkEntry[]>()
  readonly #byKey = new Map<string, LinkEntry>()
  #order = 0

  /** Register a connection for `peerId`; say whether it may go on and which existing ones must be dropped. */
  claim (c: Omit<LinkEntry, 'up' | 'order'>): ClaimOutcome {
    const existing = this.#byKey.get(c.connKey)
    if (existing !== undefined) return { ok: true, drop: [] }
    const entry: LinkEntry = { ...c, up: false, order: this.#order++ }
    const others = this.#byPeer.get(c.peerId) ?? []
    const drop: LinkEntry[] = []
    for (const o of others) {
      if (wins(o, entry)) return { ok: false, reason: `duplicate connection to ${c.peerId}: keeping ${describe(o)}`, keep: o }
      drop.push(o)
    }
    for (const d of drop) this.release(d.connKey)
    const list = this.#byPeer.get(c.peerId) ?? []
    list.push(entry)
    this.#byPeer.set(c.peerId, list)
    this.#byKey.set(c.connKey, entry)
    return { ok: true, drop }
  }

  linkUp (connKey: string): LinkEntry | undefined {
    const e = this.#byKey.get(connKey)
    if (e !== undefined) e.up = true
    return e
  }

  release (connKey: string): LinkEntry | undefined {
    const e = this.#byKey.get(connKey)
    if (e === undefined) return undefined
    this.#byKey.delete(connKey)
    const list = (this.#byPeer.get(e.peerId) ?? []).filter((x) => x.connKey !== connKey)
    if (list.length === 0) this.#byPeer.delete(e.peerId)
    else this.#byPeer.set(e.peerId, list)
    return e
  }

  releaseWorker (worker: number): LinkEntry[] {
    const gone = [...this.#byKey.values()].filter((e) => e.worker === worker)
    for (const e of gone) this.release(e.connKey)
    return gone
  }

  entries (): LinkEntry[] { return [...this.#byKey.values()] }
  /** The connections claimed for `peerId` (handshaking or up); do not modify. */
  ofPeer (peerId: string): readonly LinkEntry[] { return this.#byPeer.get(peerId) ?? NONE }
  /** An up connection to `peerId`, if any (the router looks this up per LSA and probe it sends). */
  upOf (peerId: string): LinkEntry | undefined {
    const list = this.#byPeer.get(peerId)
    if (list !== undefined) for (const e of list) if (e.up) return e
    return undefined
  }
  get (connKey: string): LinkEntry | undefined { return this.#byKey.get(connKey) }
}

/** True when `a` survives against `b` (two connections to the same peer). */
export function wins (a: Pick<LinkEntry, 'dialerId' | 'peerId' | 'order'>, b: Pick<LinkEntry, 'dialerId' | 'order'>): boolean {
  if (a.dialerId !== b.dialerId) return a.dialerId > b.dialerId
  // Both dialed by the peer: the newer (see the module comment). Both by us: the older.
  return a.dialerId === a.peerId ? a.order > b.order : a.order < b.order
}

function describe (e: LinkEntry): string {
  return `the connection dialed by ${e.dialerId}`
}
