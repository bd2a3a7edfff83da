// PeerActor tells the host (AckBoard parked) when its rings for new reliable
// frames are useless: no credit left, or a write-blocked socket. The host
// then does not ring; the worker rings itself when an ACK or a writable
// socket ends it. Driven with a fake connection.
import { describe, it, expect, beforeEach } from 'vitest'
import { BULK_MIN_CREDIT_BYTES, CREDIT_BYTES_PER_MS, PeerActor } from '../../../src/connection/peer-actor.js'
import type { Connection } from '../../../src/connection/connection.js'
import { RingBuffer } from '../../../src/ring/ring-buffer.js'
import { AckBoard } from '../../../src/delivery/ack-board.js'
import { queueData } from '../../helpers/send-queue.js'
import { forEachFrame } from '../../../src/codec/decode.js'
import { FrameType } from '../../../src/codec/frame.js'

const STREAM = 42
const PAYLOAD = new Uint8Array(100)

function fakeConnection (): { conn: Connection & { writeBlocked: boolean }; dataSeqs: number[] } {
  const dataSeqs: number[] = []
  const conn = {
    state: 'open',
    writeBlocked: false,
    send (buf: Uint8Array) {
      forEachFrame(Buffer.from(buf), undefined, (f) => { if (f.type === FrameType.DATA) dataSeqs.push(f.seq) })
    },
  }
  return { conn: conn as unknown as Connection & { writeBlocked: boolean }, dataSeqs }
}

function queue (ring: RingBuffer, seq: number): void { queueData(ring, STREAM, seq, PAYLOAD) }

describe('PeerActor parking (AckBoard parked)', () => {
  let ring: RingBuffer
  let board: AckBoard
  let actor: PeerActor
  let fake: ReturnType<typeof fakeConnection>

  beforeEach(() => {
    ring = RingBuffer.create(64 * 1024, { keepAlive: false })
    board = AckBoard.create()
    const datagrams = RingBuffer.create(64 * 1024, { keepAlive: false })
    actor = new PeerActor('peer', 1, ring.sab, board.sab, datagrams.sab, 0, 1 << 20, false)
    fake = fakeConnection()
    actor.attach(fake.conn)
    // Credit for about three records (each ~170 bytes with prefix and framing).
    actor.onAck(STREAM, 0, 400)
  })

  it('parks when the credit is used up with frames still queued, and unparks once an ACK lets them go', () => {
    for (let seq = 1; seq <= 6; seq++) queue(ring, seq)
    expect(actor.pump()).toBe(true)
    const first = fake.dataSeqs.length
    expect(first).toBeGreaterThan(0)
    expect(first).toBeLessThan(6)
    expect(board.parked()).toBe(true)
    expect(actor.ready).toBe(false) // a host ring now would find nothing to do
    // The receiver acknowledges what it got: credit again, the worker rings itself (IoWorker#onAck) and pumps.
    actor.onAck(STREAM, first, 400)
    expect(actor.ready).toBe(true)
    actor.pump()
    actor.onAck(STREAM, fake.dataSeqs.at(-1)!, 400)
    actor.pump()
    expect(fake.dataSeqs).toEqual([1, 2, 3, 4, 5, 6])
    expect(board.parked()).toBe(false) // nothing queued: the host's next frame must ring
  })

  it('in flight up to the credit with nothing more queued is not parked', () => {
    for (let seq = 1; seq <= 2; seq++) queue(ring, seq)
    actor.pump()
    expect(fake.dataSeqs).toEqual([1, 2])
    expect(board.parked()).toBe(false)
  })

  it('parks while the socket is write-blocked, unparks when it drains', () => {
    queue(ring, 1)
    fake.conn.writeBlocked = true
    expect(actor.pump()).toBe(false)
    expect(board.parked()).toBe(true)
    fake.conn.writeBlocked = false // IoWorker#writable rings the doorbell
    expect(actor.pump()).toBe(true)
    expect(board.parked()).toBe(false)
  })

  it('detach and attach clear it: whoever serves the peer next must hear of new frames', () => {
    for (let seq = 1; seq <= 6; seq++) queue(ring, seq)
    actor.pump()
    expect(board.parked()).toBe(true)
    expect(actor.detach(fake.conn)).toBe(true)
    expect(board.parked()).toBe(false)
    actor.pump() // no connection: stays clear
    expect(board.parked()).toBe(false)
    const again = fakeConnection()
    actor.attach(again.conn)
    expect(board.parked()).toBe(false)
  })
})

describe('PeerActor: the bulk lane\'s share of the credit', () => {
  it('follows the direct link\'s lowest heartbeat RTT (at least BULK_MIN_CREDIT_BYTES), and starts over at the whole credit on each attach', () => {
    const ring = RingBuffer.create(64 * 1024, { keepAlive: false })
    const actor = new PeerActor('peer', 1, ring.sab, AckBoard.create().sab, RingBuffer.create(64 * 1024, { keepAlive: false }).sab, 0, 1 << 20, false)
    actor.attach(fakeConnection().conn)
    expect(actor.window.bulkLimit).toBe(Infinity) // no RTT yet
    actor.noteRtt(0.1)
    expect(actor.window.bulkLimit).toBe(BULK_MIN_CREDIT_BYTES)
    actor.noteRtt(0.5) // not lower: the lowest stands
    expect(actor.window.bulkLimit).toBe(BULK_MIN_CREDIT_BYTES)
    const slow = new PeerActor('peer', 2, ring.sab, AckBoard.create().sab, RingBuffer.create(64 * 1024, { keepAlive: false }).sab, 0, 1 << 20, false)
    slow.attach(fakeConnection().conn)
    slow.noteRtt(10) // a WAN link: its round trip's worth
    expect(slow.window.bulkLimit).toBe(10 * CREDIT_BYTES_PER_MS)
    actor.attach(fakeConnection().conn)
    expect(actor.window.bulkLimit).toBe(Infinity)
    // Through a relay: the next hop's RTT is not the peer's; the whole credit.
    actor.attach(fakeConnection().conn, { selfId: 'me', via: 'relay', hops: 8 })
    actor.noteRtt(0.05)
    expect(actor.window.bulkLimit).toBe(Infinity)
  })
})
