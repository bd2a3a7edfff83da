// sendQueue.policy 'drop-oldest' in the IO worker: while unreliable messages
// cannot go (no connection, or a write-blocked socket), PeerActor sheds the
// oldest down to half the queue, counts them on the AckBoard, and keeps the
// newest in order.
import { describe, it, expect } from 'vitest'
import { PeerActor } from '../../../src/connection/peer-actor.js'
import type { Connection } from '../../../src/connection/connection.js'
import { RingBuffer } from '../../../src/ring/ring-buffer.js'
import { AckBoard } from '../../../src/delivery/ack-board.js'

const CAPACITY = 64 * 1024

function setup (dropOldest: boolean): { actor: PeerActor; datagrams: RingBuffer; board: AckBoard } {
  const ring = RingBuffer.create(CAPACITY, { keepAlive: false })
  const board = AckBoard.create()
  const datagrams = RingBuffer.create(CAPACITY, { keepAlive: false })
  const actor = new PeerActor('peer', 1, ring.sab, board.sab, datagrams.sab, 0, 1 << 20, dropOldest)
  return { actor, datagrams, board }
}

/** Queue 1 KiB records numbered from `from` until the ring refuses one; the count written. */
function fill (datagrams: RingBuffer, from: number, upTo = Infinity): number {
  let i = 0
  while (i < upTo && datagrams.tryWrite(new Uint8Array(1020).fill((from + i) & 0xff))) i++
  return i
}

function firstBytes (datagrams: RingBuffer): number[] {
  const out: number[] = []
  datagrams.resyncConsumer() // the actor consumed meanwhile
  datagrams.drain((rec) => { out.push(rec[0] as number) })
  return out
}

describe('PeerActor.shedDatagrams (drop-oldest)', () => {
  it('sheds the oldest down to half the queue, not the whole queue, and counts each', () => {
    const { actor, datagrams, board } = setup(true)
    const written = fill(datagrams, 0)
    expect(written).toBe(CAPACITY / 1024)
    expect(actor.adopt()).toBe(true) // the consumer, with no connection (a peer that is away)
    expect(actor.pump()).toBe(true) // shed instead of sent
    const kept = firstBytes(datagrams)
    expect(board.dropped() + kept.length).toBe(written)
    expect(kept.length).toBe(CAPACITY / 1024 / 2)
    // The newest survive, in order.
    expect(kept).toEqual(Array.from({ length: kept.length }, (_, i) => written - kept.length + i))
  })

  it('counts the skip at the end of the ring (a message that did not fit there): no more is shed than needed', () => {
    const { actor, datagrams, board } = setup(true)
    // Leave the ring's positions near its end, then queue one large message: it wraps to the start
    // behind a 2 KiB skip. Then 1 KiB messages until full.
    expect(fill(datagrams, 0, 62)).toBe(62)
    datagrams.drain(() => {}) // taken (sent) by an earlier link: the read position is at 63,488 of 65,536
    expect(datagrams.tryWrite(new Uint8Array(16_380).fill(0xee))).toBe(true) // 16 KiB after a 2,048-byte skip
    const small = fill(datagrams, 1)
    expect(small).toBe(46)
    expect(datagrams.usedBytes()).toBe(CAPACITY)
    expect(actor.adopt()).toBe(true)
    actor.pump()
    // Half is 32,768 bytes: the large message with its skip (18,432) and 14 of 1 KiB go, 32 stay.
    const kept = firstBytes(datagrams)
    expect(board.dropped()).toBe(15)
    expect(kept).toEqual(Array.from({ length: 32 }, (_, i) => 1 + 14 + i))
  })

  it('does nothing at or under three quarters full, nor with drop-newest', () => {
    const { actor, datagrams, board } = setup(true)
    actor.adopt()
    fill(datagrams, 0, (CAPACITY / 1024) * 3 / 4)
    expect(actor.pump()).toBe(false)
    expect(board.dropped()).toBe(0)
    const newest = setup(false)
    newest.actor.adopt()
    fill(newest.datagrams, 0)
    expect(newest.actor.pump()).toBe(false)
    expect(newest.board.dropped()).toBe(0)
    expect(firstBytes(newest.datagrams)).toHaveLength(CAPACITY / 1024)
  })

  it('sheds while the socket is write-blocked, and again as new messages fill the queue past three quarters', () => {
    const { actor, datagrams, board } = setup(true)
    const conn = { state: 'open', writeBlocked: true, send () { throw new Error('write-blocked: nothing may be sent') } }
    actor.attach(conn as unknown as Connection)
    let next = fill(datagrams, 0)
    actor.pump()
    next += fill(datagrams, next)
    actor.pump()
    const kept = firstBytes(datagrams)
    expect(kept.length).toBe(CAPACITY / 1024 / 2)
    expect(board.dropped() + kept.length).toBe(next)
    expect(kept.at(-1)).toBe((next - 1) & 0xff)
  })
})
