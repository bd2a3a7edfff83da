// PeerActor's ACK policy: a due ACK rides on the next batch to the peer, goes
// alone only when urgent (the host marked it, a new connection, a routed
// peer) or after ACK_DELAY_MS; the IO worker's timer finds held ACKs through
// ackDeadline(). Driven with a fake connection and a faked performance clock.
import { describe, it, expect, beforeEach, afterEach, vi } from 'vitest'
import { PeerActor, ACK_DELAY_MS, ACK_EXPECT_PERIODS, MIN_CREDIT_BYTES, CREDIT_BYTES_PER_MS } from '../../../src/connection/peer-actor.js'
import { decodeControl } from '../../../src/codec/control.js'
import type { Connection } from '../../../src/connection/connection.js'
import { RingBuffer } from '../../../src/ring/ring-buffer.js'
import { AckBoard } from '../../../src/delivery/ack-board.js'
import { queueData } from '../../helpers/send-queue.js'
import { forEachFrame } from '../../../src/codec/decode.js'
import { FrameType } from '../../../src/codec/frame.js'

const STREAM = 42

interface Sent { frames: number; types: number[]; acked: number[]; credit?: number }

/** The credit (`w`) of each ACK sent on any fake connection, in order. */
const credits: Array<number | undefined> = []

function fakeConnection (): { conn: Connection; sent: Sent[] } {
  const sent: Sent[] = []
  const conn = {
    state: 'open',
    writeBlocked: false,
    send (buf: Uint8Array, frames: number) {
      const types: number[] = []
      const acked: number[] = []
      let credit: number | undefined
      forEachFrame(Buffer.from(buf), undefined, (f) => {
        types.push(f.type)
        if (f.type === FrameType.ACK) {
          acked.push(f.seq)
          credit = (decodeControl(Buffer.from(f.payload as Uint8Array)) as { w: number }).w
        }
      })
      sent.push({ frames, types, acked })
      credits.push(credit)
    },
  }
  return { conn: conn as unknown as Connection, sent }
}

/** Queue one DATA record the way the host does. */
function queue (ring: RingBuffer, seq: number): void { queueData(ring, STREAM, seq, new Uint8Array([1, 2, 3])) }

describe('PeerActor ACKs', () => {
  let ring: RingBuffer
  let board: AckBoard
  let actor: PeerActor
  let conn: Connection
  let sent: Sent[]
  const WINDOW = 4 << 20

  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['performance'] })
    ring = RingBuffer.create(64 * 1024, { keepAlive: false })
    board = AckBoard.create()
    const datagrams = RingBuffer.create(64 * 1024, { keepAlive: false })
    actor = new PeerActor('peer', 1, ring.sab, board.sab, datagrams.sab, 0, WINDOW, false)
    ;({ conn, sent } = fakeConnection())
    actor.attach(conn)
    // The first ACK on a connection goes at once (the peer resumes from it).
    board.publish(7, 1)
    expect(actor.ready).toBe(true)
    expect(actor.pump()).toBe(true)
    expect(sent).toEqual([{ frames: 1, types: [FrameType.ACK], acked: [1] }])
    sent.length = 0
  })
  afterEach(() => { vi.useRealTimers() })

  it('holds a due ACK back for ACK_DELAY_MS, then sends it alone', () => {
    // As the IO worker and the host do it: a record handed over, then handled (publish, then counted).
    actor.handedOff()
    actor.expectAck(performance.now())
    board.publish(7, 2)
    board.noteTaken(0)
    expect(actor.ackDue).toBe(true)
    expect(actor.ready).toBe(false)
    expect(actor.pump()).toBe(false)
    expect(sent).toEqual([])
    expect(actor.ackDeadline(performance.now())).toBe(performance.now() + ACK_DELAY_MS)
    vi.advanceTimersByTime(ACK_DELAY_MS - 1)
    expect(actor.ready).toBe(false)
    vi.advanceTimersByTime(1)
    expect(actor.ready).toBe(true)
    expect(actor.pump()).toBe(true)
    expect(sent).toEqual([{ frames: 1, types: [FrameType.ACK], acked: [2] }])
    expect(actor.ackDue).toBe(false)
    expect(actor.ackDeadline(performance.now())).toBe(Infinity)
  })

  it('a held ACK rides at the head of the next data batch (one WebSocket message)', () => {
    board.publish(7, 2)
    expect(actor.pump()).toBe(false)
    queue(ring, 1)
    queue(ring, 2)
    expect(actor.pump()).toBe(true)
    // The stream's base (a SKIP, first data on this connection: SendWindow.base) goes ahead of the data.
    expect(sent).toEqual([{ frames: 4, types: [FrameType.ACK, FrameType.SKIP, FrameType.DATA, FrameType.DATA], acked: [2] }])
    expect(actor.ackDue).toBe(false)
  })

  it('an urgent mark from the host sends the ACK at once, whichever order it comes in', () => {
    board.publish(7, 2)
    board.markUrgent()
    expect(actor.ready).toBe(true)
    expect(actor.pump()).toBe(true)
    expect(sent.at(-1)?.acked).toEqual([2])
    // Marked before the publish it is about: the ACK still goes at once once published.
    board.markUrgent()
    expect(actor.ready).toBe(false) // nothing new to acknowledge yet
    board.publish(7, 3)
    expect(actor.ready).toBe(true)
    expect(actor.pump()).toBe(true)
    expect(sent.at(-1)?.acked).toEqual([3])
    // A mark already acted on does not make the next ACK urgent.
    board.publish(7, 4)
    expect(actor.ready).toBe(false)
  })

  it('while the host has not taken the frames, the deadline moves on instead of firing empty', () => {
    const t0 = performance.now()
    actor.handedOff()
    actor.expectAck(t0)
    expect(actor.ackDeadline(t0)).toBe(t0 + ACK_DELAY_MS)
    vi.advanceTimersByTime(ACK_DELAY_MS)
    const t1 = performance.now()
    expect(actor.ackDue).toBe(false)
    expect(actor.ackDeadline(t1)).toBe(t1 + ACK_DELAY_MS) // looked again: not taken yet
    board.publish(7, 2)
    board.noteTaken(0)
    vi.advanceTimersByTime(ACK_DELAY_MS)
    expect(actor.ackDeadline(performance.now())).toBe(t1 + ACK_DELAY_MS)
    expect(actor.flushAck()).toBe(true)
    expect(sent).toEqual([{ frames: 1, types: [FrameType.ACK], acked: [2] }])
    expect(actor.flushAck()).toBe(false) // nothing new
  })

  it('frames the host never handles stop the ACK clock after ACK_EXPECT_PERIODS (an idle link has no timer)', () => {
    actor.handedOff()
    actor.expectAck(performance.now())
    for (let i = 1; i < ACK_EXPECT_PERIODS; i++) {
      vi.advanceTimersByTime(ACK_DELAY_MS)
      expect(actor.ackDeadline(performance.now())).toBe(performance.now() + ACK_DELAY_MS)
    }
    expect(board.takeWaiting()).toBe(false)
    vi.advanceTimersByTime(ACK_DELAY_MS)
    expect(actor.ackDeadline(performance.now())).toBe(Infinity)
    // New frames start it again.
    actor.handedOff()
    actor.expectAck(performance.now())
    expect(actor.ackDeadline(performance.now())).toBe(performance.now() + ACK_DELAY_MS)
  })

  it('records the host handled without publishing anything (duplicates, unreliable messages) stop the clock at once', () => {
    actor.handedOff()
    actor.expectAck(performance.now())
    expect(actor.ackDeadline(performance.now())).toBe(performance.now() + ACK_DELAY_MS)
    board.noteTaken(0) // handled; no progress to acknowledge
    vi.advanceTimersByTime(ACK_DELAY_MS)
    expect(actor.ackDeadline(performance.now())).toBe(Infinity)
    expect(board.takeWaiting()).toBe(false) // nothing is left to the host either
    expect(sent).toEqual([])
  })

  it('an ACK sent while the host has not taken every record handed to it keeps the clock running for the rest', () => {
    // Two records handed over; the host has handled (and published for) the first only when the ACK goes.
    actor.handedOff()
    actor.expectAck(performance.now())
    board.publish(7, 2)
    board.noteTaken(0)
    actor.handedOff()
    actor.expectAck(performance.now()) // the clock was already running
    expect(actor.hostBehind).toBe(true)
    vi.advanceTimersByTime(ACK_DELAY_MS)
    expect(actor.ackDeadline(performance.now())).toBe(performance.now())
    expect(actor.flushAck()).toBe(true)
    expect(sent.at(-1)?.acked).toEqual([2])
    // Still expected: the timer comes back for it (it stopped here, and the host's publish below,
    // neither urgent nor awaited, rang nobody: the ACK waited for other traffic).
    const t1 = performance.now()
    expect(actor.ackDeadline(t1)).toBe(t1 + ACK_DELAY_MS)
    expect(board.takeWaiting()).toBe(false)
    board.publish(7, 3)
    board.noteTaken(0)
    expect(actor.hostBehind).toBe(false)
    vi.advanceTimersByTime(ACK_DELAY_MS)
    expect(actor.ackDeadline(performance.now())).toBe(performance.now())
    expect(actor.flushAck()).toBe(true)
    expect(sent.at(-1)?.acked).toEqual([3])
    // Caught up when this one went: no timer for an idle link.
    expect(actor.ackDeadline(performance.now())).toBe(Infinity)
  })

  it('an ACK the host prompted while still handling the record (urgent, before counting it taken) stops the clock once counted', () => {
    // The host's order for one record: publish, noteTaken, then ring: a worker woken by the ring sees it counted.
    actor.handedOff()
    actor.expectAck(performance.now())
    board.markUrgent()
    board.publish(7, 2)
    board.noteTaken(0)
    expect(actor.ready).toBe(true)
    expect(actor.pump()).toBe(true)
    expect(sent.at(-1)?.acked).toEqual([2])
    expect(actor.ackDeadline(performance.now())).toBe(Infinity)
  })

  it('records counted before this actor existed, or by another worker, do not count as handed by it', () => {
    board.noteTaken(0)
    board.noteTaken(0)
    const ring2 = RingBuffer.create(64 * 1024, { keepAlive: false })
    const later = new PeerActor('peer', 2, ring2.sab, board.sab, RingBuffer.create(64 * 1024, { keepAlive: false }).sab, 0, WINDOW, false)
    expect(later.hostBehind).toBe(false)
    later.handedOff()
    expect(later.hostBehind).toBe(true)
    board.noteTaken(0)
    expect(later.hostBehind).toBe(false)
    // Another IO worker's records of the same peer count on that worker's counter.
    const two = AckBoard.create(false, 2)
    const onOne = new PeerActor('peer', 3, RingBuffer.create(64 * 1024, { keepAlive: false }).sab, two.sab, RingBuffer.create(64 * 1024, { keepAlive: false }).sab, 1, WINDOW, false)
    onOne.handedOff()
    two.noteTaken(0)
    two.noteTaken(0)
    expect(onOne.hostBehind).toBe(true)
    two.noteTaken(1)
    expect(onOne.hostBehind).toBe(false)
    // An earlier actor's records still waiting when this one was made: counted past ours, taken as ours.
    two.noteTaken(1)
    expect(onOne.hostBehind).toBe(false)
    onOne.handedOff()
    expect(onOne.hostBehind).toBe(true)
    two.noteTaken(1)
    expect(onOne.hostBehind).toBe(false)
  })

  it('on giving up, the actor leaves the ACK to the host: its next publish finds the board waiting (once) and prompts it', () => {
    actor.handedOff()
    actor.expectAck(performance.now())
    for (let i = 0; i < ACK_EXPECT_PERIODS; i++) {
      vi.advanceTimersByTime(ACK_DELAY_MS)
      actor.ackDeadline(performance.now())
    }
    expect(actor.ackDeadline(performance.now())).toBe(Infinity)
    // The host (src/mesh.ts) publishes, counts the record, then takes the flag: markUrgent and a doorbell.
    board.publish(7, 2)
    board.noteTaken(0)
    expect(board.takeWaiting()).toBe(true)
    expect(board.takeWaiting()).toBe(false)
    board.markUrgent()
    expect(actor.ready).toBe(true)
    expect(actor.pump()).toBe(true)
    expect(sent.at(-1)?.acked).toEqual([2])
  })

  it('progress published while the actor gives up is not left behind (the board is read again after the flag)', () => {
    actor.handedOff()
    actor.expectAck(performance.now())
    for (let i = 1; i < ACK_EXPECT_PERIODS; i++) {
      vi.advanceTimersByTime(ACK_DELAY_MS)
      actor.ackDeadline(performance.now())
    }
    vi.advanceTimersByTime(ACK_DELAY_MS)
    // The host's publish lands between the actor's "nothing new" check and the flag:
    // modelled by publishing from inside setWaiting (the host then saw no flag).
    const own = actor.board // the actor's view of the same shared board
    const setWaiting = own.setWaiting.bind(own)
    own.setWaiting = () => { board.publish(7, 2); board.noteTaken(0); setWaiting() }
    const now = performance.now()
    expect(actor.ackDeadline(now)).toBe(now) // due now: the ACK timer sends it
    expect(actor.flushAck()).toBe(true)
    expect(sent.at(-1)?.acked).toEqual([2])
  })

  it('a new connection gets its first ACK at once, and a blocked socket holds no deadline', () => {
    board.publish(7, 2)
    actor.handedOff()
    actor.expectAck(performance.now())
    const other = fakeConnection()
    actor.attach(other.conn)
    expect(actor.pump()).toBe(true)
    expect(other.sent).toEqual([{ frames: 1, types: [FrameType.ACK], acked: [2] }])
    board.publish(7, 3)
    actor.handedOff()
    actor.expectAck(performance.now())
    ;(other.conn as unknown as { writeBlocked: boolean }).writeBlocked = true
    expect(actor.ackDeadline(performance.now())).toBe(Infinity)
    expect(actor.ready).toBe(false)
  })

  it('a stale frame of another epoch took the slot before the live epoch was acked: that ACK goes too, first, once per connection', () => {
    const acks: Array<[number, number]> = []
    const frames: number[] = []
    const probe = {
      state: 'open',
      writeBlocked: false,
      send (buf: Uint8Array, n: number) {
        frames.push(n)
        forEachFrame(Buffer.from(buf), undefined, (f) => { if (f.type === FrameType.ACK) acks.push([f.stream, f.seq]) })
      },
    } as unknown as Connection
    actor.attach(probe)
    expect(actor.flushAck()).toBe(true) // the first ACK on a connection: (7, 1)
    expect(acks).toEqual([[7, 1]])
    // The live epoch's last frames are taken (their ACK not sent yet), then a stale frame of epoch 3.
    board.publish(7, 2)
    board.publish(3, 40)
    expect(actor.flushAck()).toBe(true)
    expect(acks.slice(1)).toEqual([[7, 2], [3, 40]])
    expect(frames.at(-1)).toBe(2)
    // Once is enough: more of epoch 3 acks epoch 3 only.
    board.publish(3, 41)
    actor.flushAck()
    expect(acks.slice(3)).toEqual([[3, 41]])
    expect(frames.at(-1)).toBe(1)
    // Back to the live epoch, whose ACK for (7, 2) went: no prev ACK of epoch 3 owed beyond what was sent.
    board.publish(7, 3)
    actor.flushAck()
    expect(acks.slice(4)).toEqual([[7, 3]])
    // An epoch left after its ACK went is not acked again; one left before it was is.
    board.publish(3, 42)
    actor.flushAck()
    expect(acks.slice(5)).toEqual([[3, 42]])
    // A new connection: the peer resumes from its first ACKs, the left epoch's included (once).
    actor.attach(probe)
    actor.flushAck()
    expect(acks.slice(6)).toEqual([[7, 3], [3, 42]])
    board.publish(3, 43)
    actor.flushAck()
    expect(acks.slice(8)).toEqual([[3, 43]])
  })

  it('grants less credit on a fast link: enough for its speed, so little queues in front of heartbeats', () => {
    expect(credits.at(-1)).toBe(WINDOW) // no RTT known yet: the whole window
    expect(actor.credit).toBe(WINDOW)
    actor.noteRtt(0.3)
    expect(actor.credit).toBe(MIN_CREDIT_BYTES)
    actor.noteRtt(9) // queueing inflates samples: the lowest one counts
    expect(actor.credit).toBe(MIN_CREDIT_BYTES)
    board.publish(7, 2)
    board.markUrgent()
    actor.pump()
    expect(credits.at(-1)).toBe(MIN_CREDIT_BYTES)
    // A new connection starts over; a slow one earns more, up to the window.
    actor.attach(fakeConnection().conn)
    expect(actor.credit).toBe(WINDOW)
    actor.noteRtt(5)
    expect(actor.credit).toBe(Math.min(WINDOW, 5 * CREDIT_BYTES_PER_MS))
    actor.noteRtt(50)
    expect(actor.credit).toBe(Math.min(WINDOW, 5 * CREDIT_BYTES_PER_MS))
    actor.attach(fakeConnection().conn)
    actor.noteRtt(50)
    expect(actor.credit).toBe(WINDOW)
  })
})
