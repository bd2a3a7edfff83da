import { describe, it, expect } from 'vitest'
import fc from 'fast-check'
import { LinkRegistry, wins } from '../../../src/router/link-registry.js'

const A = 'a'.repeat(52)
const B = 'b'.repeat(51) + 'a' // B > A

describe('LinkRegistry: one connection per peer pair', () => {
  it('keeps the connection dialed by the larger id, whichever claims first', () => {
    for (const order of [['ab', 'ba'], ['ba', 'ab']]) {
      // Seen from A's node: conn 'ab' dialed by A, conn 'ba' dialed by B (peer B).
      const reg = new LinkRegistry()
      const conns = { ab: { connKey: 'ab', worker: 0, peerId: B, dialerId: A }, ba: { connKey: 'ba', worker: 0, peerId: B, dialerId: B } }
      const first = reg.claim(conns[order[0] as 'ab'])
      const second = reg.claim(conns[order[1] as 'ab'])
      expect(first.ok).toBe(true)
      if (order[1] === 'ba') expect(second).toMatchObject({ ok: true, drop: [{ connKey: 'ab' }] })
      else expect(second).toMatchObject({ ok: false })
      expect(reg.entries().map((e) => e.connKey)).toEqual(['ba'])
    }
  })

  it('two dials by the same side: the dialer keeps the older (it refuses its own second), the other end the newer (the older is a restarted dialer\'s half-open link)', () => {
    // At A, the dialer.
    const atA = new LinkRegistry()
    expect(atA.claim({ connKey: '1', worker: 0, peerId: B, dialerId: A }).ok).toBe(true)
    expect(atA.claim({ connKey: '2', worker: 0, peerId: B, dialerId: A }).ok).toBe(false)
    expect(atA.entries().map((e) => e.connKey)).toEqual(['1'])
    // At B: a second connection from A reaches B only when A no longer has the first.
    const atB = new LinkRegistry()
    expect(atB.claim({ connKey: '1', worker: 0, peerId: A, dialerId: A }).ok).toBe(true)
    expect(atB.claim({ connKey: '2', worker: 0, peerId: A, dialerId: A })).toMatchObject({ ok: true, drop: [{ connKey: '1' }] })
    expect(atB.entries().map((e) => e.connKey)).toEqual(['2'])
  })

  it('both ends pick the same survivor for any ids and claim orders (property)', () => {
    fc.assert(fc.property(fc.string({ minLength: 1 }), fc.string({ minLength: 1 }), fc.boolean(), fc.boolean(), (x, y, xFirst, yFirst) => {
      fc.pre(x !== y)
      const survivor = (self: string, other: string, selfFirst: boolean): string => {
        const reg = new LinkRegistry()
        const mine = { connKey: `${self}->${other}`, worker: 0, peerId: other, dialerId: self }
        const theirs = { connKey: `${other}->${self}`, worker: 0, peerId: other, dialerId: other }
        for (const c of selfFirst ? [mine, theirs] : [theirs, mine]) reg.claim(c)
        return (reg.entries()[0] as { connKey: string }).connKey
      }
      // Connection names are written dialer->responder, so both ends name a connection the same.
      expect(survivor(x, y, xFirst)).toBe(survivor(y, x, yFirst))
    }))
  })

  it('release frees the slot; releaseWorker drops a crashed worker\'s links', () => {
    const reg = new LinkRegistry()
    reg.claim({ connKey: '1', worker: 0, peerId: B, dialerId: A })
    reg.release('1')
    expect(reg.claim({ connKey: '2', worker: 1, peerId: B, dialerId: A }).ok).toBe(true)
    expect(reg.releaseWorker(1).map((e) => e.connKey)).toEqual(['2'])
    expect(reg.entries()).toEqual([])
  })

  it('wins() is a strict order', () => {
    expect(wins({ dialerId: B, peerId: B, order: 5 }, { dialerId: A, order: 1 })).toBe(true)
    expect(wins({ dialerId: A, peerId: B, order: 1 }, { dialerId: B, order: 5 })).toBe(false)
    // Both dialed by us (A), to B: the older.
    expect(wins({ dialerId: A, peerId: B, order: 1 }, { dialerId: A, order: 2 })).toBe(true)
    expect(wins({ dialerId: A, peerId: B, order: 2 }, { dialerId: A, order: 1 })).toBe(false)
    // Both dialed by the peer (A): the newer.
    expect(wins({ dialerId: A, peerId: A, order: 2 }, { dialerId: A, order: 1 })).toBe(true)
    expect(wins({ dialerId: A, peerId: A, order: 1 }, { dialerId: A, order: 2 })).toBe(false)
  })
})
