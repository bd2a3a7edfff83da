// PeerActor toward a routed peer: small frames share FORWARD envelopes of at
// most INNER_BATCH_BYTES (within what every node accepts as an envelope
// payload), larger ones travel one per envelope; the order of frames is kept.
import { describe, it, expect } from 'vitest'
import { PeerActor, INNER_BATCH_BYTES } from '../../../src/connection/peer-actor.js'
import { ENVELOPE_PAYLOAD_BYTES } from '../../../src/io/io-worker.js'
import type { Connection } from '../../../src/connection/connection.js'
import { RingBuffer } from '../../../src/ring/ring-buffer.js'
import { AckBoard } from '../../../src/delivery/ack-board.js'
import { SEND_PREFIX_BYTES, writeSendPrefix } from '../../../src/delivery/send-record.js'
import { encodeHeaderOnlyInto } from '../../../src/codec/encode.js'
import { forEachFrame } from '../../../src/codec/decode.js'
import { FrameType, Lane, PROTOCOL_VERSION } from '../../../src/codec/frame.js'

const STREAM = 9

function queue (ring: RingBuffer, seq: number, size: number): void {
  const h = new Uint8Array(SEND_PREFIX_BYTES + 128)
  writeSendPrefix(h, 0, { seq, enqueuedAt: 0, stream: STREAM, chunk: 0, flags: 0 })
  const n = encodeHeaderOnlyInto({ version: PROTOCOL_VERSION, type: FrameType.DATA, lane: Lane.PRIORITY, flags: 0, src: null, dst: null, stream: STREAM, seq }, size, h, SEND_PREFIX_BYTES)
  expect(ring.tryWrite2(h.subarray(0, SEND_PREFIX_BYTES + n), new Uint8Array(size).fill(seq & 0xff))).toBe(true)
}

type Envelope = { dst: string | null; src: string | null; hops: number; payloadBytes: number; inner: number[] }

/**
 * Route frames of `sizes` payload bytes to a routed peer; returns the FORWARD
 * envelopes sent: the inner seqs of each, a SKIP to seq s as -(s + 1) (so the
 * base SKIP 0 of a fresh stream is -1). `then` runs after everything went out.
 */
function route (sizes: number[], then?: (actor: PeerActor, out: Envelope[]) => void): Envelope[] {
  const ring = RingBuffer.create(1 << 20, { keepAlive: false })
  const board = AckBoard.create()
  const datagrams = RingBuffer.create(64 * 1024, { keepAlive: false })
  const actor = new PeerActor('far-peer', 1, ring.sab, board.sab, datagrams.sab, 0, 1 << 20, false)
  const out: Array<{ dst: string | null; src: string | null; hops: number; payloadBytes: number; inner: number[] }> = []
  const conn = {
    state: 'open',
    writeBlocked: false,
    send (buf: Uint8Array) {
      forEachFrame(Buffer.from(buf), undefined, (f) => {
        expect(f.type).toBe(FrameType.FORWARD)
        const inner: number[] = []
        forEachFrame(f.payload as Uint8Array, undefined, (x) => {
          // The stream's base (see SendWindow.base): ahead of the first frame after a rewind, in its envelope.
          if (x.type === FrameType.SKIP) { inner.push(-x.seq - 1); return }
          expect(x.type).toBe(FrameType.DATA)
          expect(x.payload?.every((v) => v === (x.seq & 0xff))).toBe(true)
          inner.push(x.seq)
        })
        out.push({ dst: f.dst, src: f.src, hops: f.seq, payloadBytes: (f.payload as Uint8Array).length, inner })
      })
    },
  } as unknown as Connection
  actor.attach(conn, { selfId: 'me', via: 'relay', hops: 4 })
  sizes.forEach((size, i) => { queue(ring, i + 1, size) })
  while (actor.pump()) { /* until everything queued went out */ }
  then?.(actor, out)
  return out
}

describe('PeerActor toward a routed peer', () => {
  it('small frames share envelopes of at most INNER_BATCH_BYTES, in order', () => {
    const out = route(Array.from({ length: 100 }, () => 40))
    expect(out.length).toBeLessThan(20)
    expect(out.flatMap((e) => e.inner)).toEqual([-1, ...Array.from({ length: 100 }, (_, i) => i + 1)])
    for (const e of out) {
      expect(e.payloadBytes).toBeLessThanOrEqual(INNER_BATCH_BYTES)
      expect(e).toMatchObject({ src: 'me', dst: 'far-peer', hops: 4 })
    }
  })

  it('1 KiB frames share envelopes too (a dozen or more each)', () => {
    const out = route(Array.from({ length: 100 }, () => 1024))
    expect(out.flatMap((e) => e.inner)).toEqual([-1, ...Array.from({ length: 100 }, (_, i) => i + 1)])
    expect(out.length).toBeLessThanOrEqual(Math.ceil(100 / 12))
    for (const e of out) expect(e.payloadBytes).toBeLessThanOrEqual(INNER_BATCH_BYTES)
  })

  it('a batch fits the envelope payload every node accepts', () => {
    expect(INNER_BATCH_BYTES).toBeLessThanOrEqual(ENVELOPE_PAYLOAD_BYTES)
  })

  it('a frame larger than a batch travels alone, between the batches around it', () => {
    const sizes = [40, 40, INNER_BATCH_BYTES + 100, 40, 60_000, 40]
    const out = route(sizes)
    expect(out.map((e) => e.inner)).toEqual([[-1, 1, 2], [3], [4], [5], [6]])
  })

  it('after a rewind (a relay timeout) the base goes once, in the envelope of the oldest unacknowledged frame', () => {
    let resent: Envelope[] = []
    route(Array.from({ length: 10 }, () => 40), (actor, out) => {
      expect(out.flatMap((e) => e.inner)).toEqual([-1, ...Array.from({ length: 10 }, (_, i) => i + 1)])
      actor.onAck(STREAM, 4, undefined) // 1..4 taken; 5..10 lost in a relay
      actor.window.rewind()
      out.length = 0
      while (actor.pump()) { /* resend */ }
      resent = [...out]
      out.length = 0
      while (actor.pump()) { /* nothing more */ }
      expect(out).toEqual([])
    })
    // SKIP 4 (everything up to 4 is settled) ahead of 5: a receiver that never saw 1..4 may start at 5, and only there.
    expect(resent.map((e) => e.inner)).toEqual([[-5, 5, 6, 7, 8, 9, 10]])
  })
})

describe('PeerActor: the peer served from another IO worker meanwhile', () => {
  it('attach() picks up the queue where the other worker\'s actor left it (a ring\'s worth and more later): resends start at the oldest unacknowledged frame, after its base', () => {
    const ring = RingBuffer.create(1024, { keepAlive: false })
    const board = AckBoard.create(false, 2) // IO workers 0 and 1
    const datagrams = RingBuffer.create(64 * 1024, { keepAlive: false })
    const sent: number[][] = []
    const conn = {
      state: 'open',
      writeBlocked: false,
      send (buf: Uint8Array) {
        forEachFrame(Buffer.from(buf), undefined, (f) => {
          const inner: number[] = []
          forEachFrame(f.payload as Uint8Array, undefined, (x) => { inner.push(x.type === FrameType.SKIP ? -x.seq - 1 : x.seq) })
          sent.push(inner)
        })
      },
    } as unknown as Connection
    const relay = { selfId: 'me', via: 'relay', hops: 4 }
    const onWorker0 = new PeerActor('far-peer', 1, ring.sab, board.sab, datagrams.sab, 0, 1 << 20, false)
    const onWorker1 = new PeerActor('far-peer', 1, ring.sab, board.sab, datagrams.sab, 1, 1 << 20, false)
    let seq = 0
    const pumpAll = (a: PeerActor): number[] => { sent.length = 0; while (a.pump()) { /* all out */ } return sent.flat() }
    onWorker0.attach(conn, relay)
    for (let i = 0; i < 4; i++) queue(ring, ++seq, 100)
    expect(pumpAll(onWorker0)).toEqual([-1, 1, 2, 3, 4])
    onWorker0.onAck(STREAM, 2, undefined)
    onWorker0.detach(conn)
    // Worker 1 serves the peer now, and moves ~1.5 KiB through the 1 KiB queue.
    onWorker1.attach(conn, relay)
    expect(pumpAll(onWorker1)).toEqual([-3, 3, 4])
    for (let round = 0; round < 8; round++) {
      queue(ring, ++seq, 100)
      queue(ring, ++seq, 100)
      pumpAll(onWorker1)
      onWorker1.onAck(STREAM, seq - 1, undefined)
    }
    onWorker1.detach(conn)
    queue(ring, ++seq, 100)
    // Back on worker 0 (before: it resumed at its own stale position, inside records overwritten since).
    onWorker0.attach(conn, relay)
    expect(onWorker0.owns).toBe(true)
    expect(pumpAll(onWorker0)).toEqual([-20, 20, 21])
    expect(onWorker0.onAck(STREAM, 21, undefined).released).toBe(2)
    expect(ring.usedBytes()).toBe(0)
  })
})
