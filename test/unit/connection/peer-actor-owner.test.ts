// Two IO workers, one peer: when a new link on worker 1 replaces worker 0's
// (its actor claims the peer's send ring), worker 0's actor, whose link is
// still open for a moment, must neither release records (an ACK still
// arriving on its link) nor read and send them: worker 1 consumes the ring
// now, and what it releases the host overwrites.
import { describe, it, expect } from 'vitest'
import { PeerActor } from '../../../src/connection/peer-actor.js'
import type { Connection } from '../../../src/connection/connection.js'
import { RingBuffer } from '../../../src/ring/ring-buffer.js'
import { AckBoard } from '../../../src/delivery/ack-board.js'
import { queueData } from '../../helpers/send-queue.js'
import { forEachFrame } from '../../../src/codec/decode.js'
import { FrameType } from '../../../src/codec/frame.js'

const STREAM = 42

function fakeConnection (): { conn: Connection; data: number[]; acks: number } {
  const out = { conn: undefined as unknown as Connection, data: [] as number[], acks: 0 }
  out.conn = {
    state: 'open',
    writeBlocked: false,
    send (buf: Uint8Array) {
      forEachFrame(Buffer.from(buf), undefined, (f) => {
        if (f.type === FrameType.DATA) out.data.push(f.seq)
        if (f.type === FrameType.ACK) out.acks++
      })
    },
  } as unknown as Connection
  return out
}

/** One peer's queues, and its actors in IO workers 0 (the link being replaced) and 1 (the new one). */
function twoWorkers (): { ring: RingBuffer; board: AckBoard; old: PeerActor; fresh: PeerActor } {
  const ring = RingBuffer.create(64 * 1024, { keepAlive: false })
  const board = AckBoard.create(false, 2) // two IO workers (0 and 1) serve the peer in turn
  const datagrams = RingBuffer.create(64 * 1024, { keepAlive: false })
  const old = new PeerActor('peer', 1, ring.sab, board.sab, datagrams.sab, 0, 1 << 20, false)
  const fresh = new PeerActor('peer', 1, ring.sab, board.sab, datagrams.sab, 1, 1 << 20, false)
  return { ring, board, old, fresh }
}

describe('PeerActor: the send ring has one owner', () => {
  it('a replaced link\'s actor releases nothing on a late ACK and sends nothing of the queue; the new owner resends and releases', () => {
    const { ring, old, fresh } = twoWorkers()
    const a = fakeConnection()
    old.attach(a.conn)
    old.onAck(STREAM, 0, 1 << 20)
    for (let seq = 1; seq <= 4; seq++) queueData(ring, STREAM, seq, new Uint8Array(100))
    old.pump()
    expect(a.data).toEqual([1, 2, 3, 4])

    // Worker 1's link comes up: it claims the ring and resends what is unacknowledged.
    const b = fakeConnection()
    fresh.attach(b.conn)
    fresh.onAck(STREAM, 0, 1 << 20)
    fresh.pump()
    expect(b.data).toEqual([1, 2, 3, 4])
    expect(old.owns).toBe(false)

    // A late ACK on the old link: nothing released (the ring's read position stays where worker 1 has it).
    const before = ring.usedBytes()
    expect(old.onAck(STREAM, 4, 1 << 20)).toEqual({ released: 0, notify: false, throughSeq: 0 })
    expect(ring.usedBytes()).toBe(before)
    // What must read acknowledged records first (the ACK's discard reports) runs only for the owner.
    let read = 0
    old.onAck(STREAM, 4, 1 << 20, () => { read++ })
    expect(read).toBe(0)
    // New messages: only the owner sends them, and the replaced actor is not ready (its worker's pump
    // loop would otherwise spin on it, finding nothing it may do).
    for (let seq = 5; seq <= 6; seq++) queueData(ring, STREAM, seq, new Uint8Array(100))
    expect(old.ready).toBe(false)
    expect(fresh.ready).toBe(true)
    expect(old.pump()).toBe(false)
    expect(a.data).toEqual([1, 2, 3, 4])
    fresh.pump()
    expect(b.data).toEqual([1, 2, 3, 4, 5, 6])
    // The owner's ACK releases.
    expect(fresh.onAck(STREAM, 6, 1 << 20).released).toBe(6)
    expect(ring.usedBytes()).toBe(0)
  })

  it('the parked flag is the owner\'s: a new owner clears the old one\'s, and the replaced actor does not set it', () => {
    const { ring, board, old, fresh } = twoWorkers()
    const a = fakeConnection()
    old.attach(a.conn)
    queueData(ring, STREAM, 1, new Uint8Array(100));
    (a.conn as unknown as { writeBlocked: boolean }).writeBlocked = true
    old.pump()
    expect(board.parked()).toBe(true) // the host stops ringing: the socket rings when it drains
    fresh.attach(fakeConnection().conn)
    expect(board.parked()).toBe(false) // or the host would never ring the new owner
    old.pump()
    expect(board.parked()).toBe(false)
  })

  it('a replaced link\'s actor that goes (detach) leaves the new owner\'s parked flag alone', () => {
    const { ring, board, old, fresh } = twoWorkers()
    const a = fakeConnection()
    old.attach(a.conn)
    for (let seq = 1; seq <= 20; seq++) queueData(ring, STREAM, seq, new Uint8Array(100));
    (a.conn as unknown as { writeBlocked: boolean }).writeBlocked = true
    old.pump()
    expect(board.parked()).toBe(true)
    fresh.attach(fakeConnection().conn)
    fresh.onAck(STREAM, 0, 400) // credit for a few records: the rest wait for an ACK
    fresh.pump()
    expect(board.parked()).toBe(true) // the new owner is credit-blocked
    old.detach(a.conn)
    expect(board.parked()).toBe(true) // or the host rang the new owner's worker at every send
  })

  it('a replaced link\'s actor still sends our ACK for the peer\'s stream (the board is not the ring)', () => {
    const { board, old, fresh } = twoWorkers()
    const a = fakeConnection()
    old.attach(a.conn)
    fresh.attach(fakeConnection().conn)
    board.publish(7, 3) // the host took the peer's messages through seq 3 of its stream 7
    board.markUrgent()
    expect(old.pump()).toBe(true)
    expect(a.acks).toBe(1)
  })
})
