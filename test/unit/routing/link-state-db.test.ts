import { describe, it, expect } from 'vitest'
import { generateIdentity } from '../../../src/identity/identity.js'
import { LinkStateDb, DropReason, LSDB_DEFAULTS, type LinkStateDbConfig } from '../../../src/routing/link-state-db.js'
import { createLsa, decodeLsa, encodeLsa, verifyLsa, withAge, type Lsa } from '../../../src/routing/lsa.js'
import { topologyFromLsas } from '../../../src/routing/route-table.js'
import { forgeLsa } from './helpers.js'

const [A, B, C, D, M] = Array.from({ length: 5 }, () => generateIdentity())
const a = A!; const b = B!; const c = C!; const d = D!; const m = M!

function db (cfg: Partial<LinkStateDbConfig> = {}): LinkStateDb {
  return new LinkStateDb({ signer: a, initialSeq: 1, maxAgeMs: 10_000, refreshMs: 4_000, ...cfg })
}

describe('LinkStateDb', () => {
  it('validates its config', () => {
    expect(() => db({ initialSeq: 0 })).toThrow(/initialSeq/)
    expect(() => db({ refreshMs: 10_000 })).toThrow(/refreshMs/)
    expect(() => db({ maxAgeMs: 1.5 })).toThrow(/maxAgeMs/)
    const x = new LinkStateDb({ signer: a, initialSeq: 5 })
    expect([x.maxAgeMs, x.refreshMs, x.maxEntries]).toEqual([LSDB_DEFAULTS.maxAgeMs, LSDB_DEFAULTS.refreshMs, LSDB_DEFAULTS.maxEntries])
    expect(x.seq).toBe(4)
  })

  it('originate bumps its own seq, signs, floods to every neighbour, schedules a refresh', () => {
    const x = db({ initialSeq: 100 })
    x.addNeighbor(b.id, 0)
    x.addNeighbor(c.id, 0)
    const out = x.originate([{ peer: b.id, cost: 2 }, { peer: c.id, cost: 3 }], 0)
    expect(out.changed).toBe(true)
    expect(out.sends.map((s) => s.to).sort()).toEqual([b.id, c.id].sort())
    expect(out.sends[0]!.lsa.seq).toBe(100)
    expect(verifyLsa(out.sends[0]!.lsa)).toBe(true)
    expect(x.nextDeadline()).toBe(4_000)
    const again = x.originate([{ peer: b.id, cost: 2 }, { peer: c.id, cost: 3 }], 10)
    expect(again.sends[0]!.lsa.seq).toBe(101)
    expect(again.changed).toBe(false) // same links: a refresh, not a topology change
  })

  it('refreshJitter: each refresh comes early by a random part of it, never late; out of 0..0.5 is refused', () => {
    const draws = [0, 0.5, 0.999]
    const x = db({ refreshJitter: 0.25, random: () => draws.shift() ?? 0 })
    x.originate([], 0)
    expect(x.nextDeadline()).toBe(4_000) // random 0: on time
    x.originate([], 0)
    expect(x.nextDeadline()).toBe(3_500) // a half of the quarter early
    x.originate([], 0)
    expect(x.nextDeadline()).toBe(3_001) // at most a quarter early
    expect(db().refreshJitter).toBe(0)
    expect(() => db({ refreshJitter: 0.6 })).toThrow(/refreshJitter/)
    expect(() => db({ refreshJitter: -0.1 })).toThrow(/refreshJitter/)
  })

  it('installs newer LSAs and floods to all neighbours but the sender; older, equal, forged are dropped with a reason', () => {
    const x = db()
    for (const n of [b.id, c.id, d.id]) x.addNeighbor(n, 0)
    const v0 = x.version
    const l5 = createLsa(b, 5, [{ peer: a.id, cost: 1 }])
    const r = x.receive(l5, b.id, 0)
    expect(r).toMatchObject({ action: 'installed', reason: undefined, changed: true })
    expect(r.flood.sort()).toEqual([c.id, d.id].sort())
    expect(r.sends.every((s) => s.lsa === l5)).toBe(true)
    expect(x.version).toBe(v0 + 1)

    expect(x.receive(l5, c.id, 1)).toMatchObject({ action: 'dropped', reason: DropReason.DUPLICATE, flood: [], sends: [] })

    const l4 = createLsa(b, 4, [])
    const stale = x.receive(l4, d.id, 1_000)
    expect(stale.reason).toBe(DropReason.STALE)
    // The sender is behind: it gets our copy back, aged by the time we held it.
    expect(stale.sends).toHaveLength(1)
    expect(stale.sends[0]!.to).toBe(d.id)
    expect(stale.sends[0]!.lsa.seq).toBe(5)
    expect(stale.sends[0]!.lsa.ageMs).toBe(1_000)

    // Mallory claims to be b with a higher seq.
    const forged = forgeLsa(b.id, m, 6, [])
    expect(x.receive(forged, c.id, 2).reason).toBe(DropReason.FORGED)
    expect(x.get(b.id)!.lsa.seq).toBe(5)

    // Same links, newer seq: installed and flooded, but no topology change.
    const l6 = createLsa(b, 6, [{ peer: a.id, cost: 1 }])
    expect(x.receive(l6, c.id, 3)).toMatchObject({ action: 'installed', changed: false })
    // New cost: a change.
    expect(x.receive(createLsa(b, 7, [{ peer: a.id, cost: 9 }]), c.id, 4).changed).toBe(true)
  })

  it('an LSA is not flooded to its origin or the neighbours the origin lists (the origin sent them this copy)', () => {
    const x = db()
    for (const n of [b.id, c.id, d.id, m.id]) x.addNeighbor(n, 0)
    // b lists a (us), c and e (not our neighbour): only d and m are left to give it to.
    const e = generateIdentity()
    const direct = createLsa(b, 5, [{ peer: a.id, cost: 1 }, { peer: c.id, cost: 1 }, { peer: e.id, cost: 1 }])
    const r = x.receive(direct, b.id, 0)
    expect(r.action).toBe('installed')
    expect(r.flood.sort()).toEqual([d.id, m.id].sort())
    expect(r.sends.map((s) => s.to).sort()).toEqual([d.id, m.id].sort())
    // Relayed by c: not back to c, nor to b (its origin) or d (listed by b).
    const relayed = createLsa(b, 6, [{ peer: a.id, cost: 1 }, { peer: c.id, cost: 1 }, { peer: d.id, cost: 1 }])
    expect(x.receive(relayed, c.id, 1).flood).toEqual([m.id])
    // An origin that is not our neighbour, listing none of ours: all but the sender.
    const far = createLsa(e, 1, [{ peer: m.id, cost: 1 }])
    expect(x.receive(far, c.id, 1).flood.sort()).toEqual([b.id, d.id].sort())
    // Every neighbour listed: nobody left.
    const all = createLsa(b, 7, [{ peer: a.id, cost: 1 }, { peer: c.id, cost: 1 }, { peer: d.id, cost: 1 }, { peer: m.id, cost: 1 }])
    expect(x.receive(all, b.id, 2)).toMatchObject({ action: 'installed', flood: [], sends: [] })
    // A flush (a graceful leave) lists no links: it goes to all but the sender.
    const flush = withAge(createLsa(b, 8, []), 10_000)
    expect(x.receive(flush, b.id, 3).flood.sort()).toEqual([c.id, d.id, m.id].sort())
  })

  it('checks the sequence before the signature: duplicates and stale copies cost no verify', () => {
    let verifies = 0
    const x = db({ verify: (l) => { verifies++; return verifyLsa(l) } })
    const l = createLsa(b, 5, [])
    x.receive(l, b.id, 0)
    expect(verifies).toBe(1)
    for (let i = 0; i < 10; i++) x.receive(l, c.id, i)
    x.receive(createLsa(b, 3, []), c.id, 0)
    expect(verifies).toBe(1)
  })

  it('ages LSAs out at receipt + maxAge - age; nextDeadline and handleTimeout drive it', () => {
    const x = db()
    x.receive(withAge(createLsa(b, 1, [{ peer: a.id, cost: 1 }]), 3_000), b.id, 1_000)
    expect(x.get(b.id)!.expiresAt).toBe(1_000 + 10_000 - 3_000)
    x.originate([{ peer: b.id, cost: 1 }], 1_000) // refresh due at 5_000
    expect(x.nextDeadline()).toBe(5_000)
    const r1 = x.handleTimeout(5_000)
    expect(r1.changed).toBe(false)
    expect(x.get(a.id)!.lsa.seq).toBe(2) // refreshed
    expect(x.nextDeadline()).toBe(8_000)
    expect(x.handleTimeout(7_999).changed).toBe(false)
    const r2 = x.handleTimeout(8_000)
    expect(r2.changed).toBe(true)
    expect(x.get(b.id)).toBeUndefined()
  })

  it('an LSA arriving at max age with nothing held is dropped as expired', () => {
    const x = db()
    expect(x.receive(withAge(createLsa(b, 1, []), 10_000), b.id, 0).reason).toBe(DropReason.EXPIRED)
    expect(x.get(b.id)).toBeUndefined()
  })

  it('graceful leave floods a flush; receivers drop the origin now and a late older copy stays dead', () => {
    const leaver = new LinkStateDb({ signer: b, initialSeq: 1, maxAgeMs: 10_000, refreshMs: 4_000 })
    leaver.addNeighbor(a.id, 0)
    const first = leaver.originate([{ peer: a.id, cost: 1 }], 0).sends[0]!.lsa
    const x = db()
    x.addNeighbor(b.id, 0)
    x.addNeighbor(c.id, 0)
    x.receive(first, b.id, 0)
    const flush = leaver.leave(100).sends[0]!.lsa
    expect(flush.ageMs).toBe(10_000)
    expect(leaver.nextDeadline()).toBeUndefined()
    const r = x.receive(decodeLsa(encodeLsa(flush)), b.id, 100)
    expect(r).toMatchObject({ action: 'installed', changed: true, flood: [c.id] })
    expect(x.get(b.id)).toBeUndefined()
    expect(x.receive(first, c.id, 200).action).toBe('dropped')
    expect(x.get(b.id)).toBeUndefined()
  })

  it('a restarted node that sees its old, higher-seq LSA re-originates above it', () => {
    const old = createLsa(a, 50, [{ peer: b.id, cost: 1 }])
    const x = db({ initialSeq: 1 })
    x.addNeighbor(b.id, 0)
    x.originate([{ peer: b.id, cost: 2 }], 0)
    const r = x.receive(old, b.id, 10)
    expect(r.reason).toBe(DropReason.OWN)
    expect(r.sends.map((s) => s.to)).toEqual([b.id])
    expect(r.sends[0]!.lsa.seq).toBe(51)
    expect(r.sends[0]!.lsa.links).toEqual([{ peer: b.id, cost: 2 }])
    // A forged "own" LSA cannot burn our sequence space.
    const forged = forgeLsa(a.id, m, 1_000, [])
    expect(x.receive(forged, b.id, 20)).toMatchObject({ reason: DropReason.OWN, sends: [] })
    expect(x.seq).toBe(51)
  })

  it('a new neighbour gets the whole database at current ages', () => {
    const x = db()
    x.originate([], 0)
    x.receive(createLsa(b, 1, []), b.id, 0)
    x.receive(createLsa(c, 1, []), c.id, 500)
    const out = x.addNeighbor(d.id, 2_000)
    expect(out.sends.map((s) => [s.lsa.origin, s.lsa.ageMs]).sort()).toEqual([[a.id, 2_000], [b.id, 2_000], [c.id, 1_500]].sort())
    expect(out.sends.every((s) => s.to === d.id)).toBe(true)
    x.removeNeighbor(d.id)
    expect(x.neighbors()).toEqual([])
  })

  it('refuses new origins beyond maxEntries', () => {
    const x = db({ maxEntries: 2 })
    x.originate([], 0)
    expect(x.receive(createLsa(b, 1, []), b.id, 0).action).toBe('installed')
    expect(x.receive(createLsa(c, 1, []), c.id, 0).reason).toBe(DropReason.FULL)
    expect(x.receive(createLsa(b, 2, []), b.id, 0).action).toBe('installed') // known origins still update
  })

  it('topology keeps a link only when both ends advertise it', () => {
    const lsas: Lsa[] = [
      createLsa(a, 1, [{ peer: b.id, cost: 1 }, { peer: c.id, cost: 2 }]),
      createLsa(b, 1, [{ peer: a.id, cost: 3 }]),
      createLsa(c, 1, []), // c no longer lists a: the link is gone
    ]
    const g = topologyFromLsas(lsas.map((lsa) => ({ lsa })))
    expect(g.get(a.id)!.get(b.id)).toBe(1)
    expect(g.get(b.id)!.get(a.id)).toBe(3)
    expect(g.get(a.id)!.has(c.id)).toBe(false)
    const one = topologyFromLsas(lsas.map((lsa) => ({ lsa })), { requireBidirectional: false })
    expect(one.get(a.id)!.get(c.id)).toBe(2)
  })
})
