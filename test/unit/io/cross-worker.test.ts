// The cross-worker rings of one node's IO workers (io/cross-worker.ts), both
// ends in one thread: batching (nothing visible before flush, one publish per
// ring), record layout, views valid until `done`, a full ring as a counted
// refusal, RemoteHop's back-pressure and wake-up, and routedHome.
import { describe, it, expect } from 'vitest'
import { CrossKind, CrossWorkerRings, RemoteHop, REMOTE_HOP_ROOM, routedHome, type CrossWorkerData } from '../../../src/io/cross-worker.js'
import { RingBuffer } from '../../../src/ring/ring-buffer.js'
import { Doorbell } from '../../../src/ring/doorbell.js'

/** What Supervisor makes for `n` workers: rings[from][to] and one doorbell per worker. */
function node (n: number, ringBytes = 1 << 20): { data: CrossWorkerData[]; doorbells: Doorbell[] } {
  const doorbells = Array.from({ length: n }, () => Doorbell.create())
  const rings = Array.from({ length: n }, (_, from) => Array.from({ length: n }, (__, to) => from === to ? null : RingBuffer.create(ringBytes, { keepAlive: false }).sab))
  const data = Array.from({ length: n }, (_, i) => ({ rx: rings.map((row) => row[i] ?? null), tx: rings[i] ?? [], doorbells: doorbells.map((d) => d.sab) }))
  return { data, doorbells }
}

type Rec = { from: number; kind: number; id: string; body: number[]; frames: number }

function drainAll (w: CrossWorkerRings): Rec[] {
  const out: Rec[] = []
  w.drain((from, kind, id, body, frames) => { out.push({ from, kind, id, body: [...body], frames }) }, () => {})
  return out
}

describe('CrossWorkerRings', () => {
  it('appended records stay invisible until flush, then arrive in order with kind, id, frames and body', () => {
    const { data } = node(3)
    const w0 = new CrossWorkerRings(0, data[0]!)
    const w1 = new CrossWorkerRings(1, data[1]!)
    const w2 = new CrossWorkerRings(2, data[2]!)
    expect(w0.append(1, CrossKind.RELAY, 'peer-a', Uint8Array.of(1, 2, 3))).toBe(true)
    expect(w0.append(1, CrossKind.SEND, 'peer-b', Uint8Array.of(4), 7)).toBe(true)
    expect(w2.append(1, CrossKind.DELIVER, 'origin', Uint8Array.of(5, 6))).toBe(true)
    expect(w1.hasData()).toBe(false) // batched: not published yet
    w0.flush()
    w2.flush()
    expect(w1.hasData()).toBe(true)
    expect(w0.hasData()).toBe(false)
    expect(drainAll(w1)).toEqual([
      { from: 0, kind: CrossKind.RELAY, id: 'peer-a', body: [1, 2, 3], frames: 1 },
      { from: 0, kind: CrossKind.SEND, id: 'peer-b', body: [4], frames: 7 },
      { from: 2, kind: CrossKind.DELIVER, id: 'origin', body: [5, 6], frames: 1 },
    ])
    expect(w1.hasData()).toBe(false)
    expect(w0.counters).toEqual({ out: 2, in: 0, full: 0 })
    expect(w1.counters).toEqual({ out: 0, in: 3, full: 0 })
  })

  it('records to one id keep their own frame counts (the cached header is rewritten per record)', () => {
    const { data } = node(2)
    const w0 = new CrossWorkerRings(0, data[0]!)
    const w1 = new CrossWorkerRings(1, data[1]!)
    for (const frames of [3, 300, 1, 70_000]) w0.append(1, CrossKind.SEND, 'same', Uint8Array.of(frames & 0xff), frames)
    w0.flush()
    expect(drainAll(w1).map((r) => r.frames)).toEqual([3, 300, 1, 0xffff])
  })

  it('flush wakes a sleeping consumer through its doorbell, once per flush however many records', async () => {
    const { data, doorbells } = node(2)
    const w0 = new CrossWorkerRings(0, data[0]!)
    const w1 = new CrossWorkerRings(1, data[1]!)
    const bell1 = doorbells[1]!
    const sleeping = bell1.sleep(() => w1.hasData(), 5_000)
    for (let i = 0; i < 100; i++) w0.append(1, CrossKind.RELAY, 'hop', Uint8Array.of(i))
    w0.flush()
    expect(await sleeping).toBe('ok')
    const got = drainAll(w1)
    expect(got.map((r) => r.body[0])).toEqual(Array.from({ length: 100 }, (_, i) => i))
  })

  it('bodies are views valid until done; the space is released only after it', () => {
    const { data } = node(2, 1024)
    const w0 = new CrossWorkerRings(0, data[0]!)
    const w1 = new CrossWorkerRings(1, data[1]!)
    const body = new Uint8Array(400).fill(9)
    expect(w0.send(1, CrossKind.RELAY, 'hop', body)).toBe(true)
    expect(w0.send(1, CrossKind.RELAY, 'hop', body)).toBe(true)
    expect(w0.send(1, CrossKind.RELAY, 'hop', body)).toBe(false) // 1 KiB ring: full
    const views: Uint8Array[] = []
    w1.drain((_f, _k, _id, b) => { views.push(b) }, () => {
      // Still unreleased here: the producer cannot overwrite what done() reads.
      expect(w0.canSend(1, 400)).toBe(false)
      expect(views.every((v) => v.every((x) => x === 9))).toBe(true)
    })
    expect(w0.canSend(1, 400)).toBe(true)
  })

  it('a full ring refuses and counts, never throws or blocks, and takes records again once drained', () => {
    const { data } = node(2, 4096)
    const w0 = new CrossWorkerRings(0, data[0]!)
    const w1 = new CrossWorkerRings(1, data[1]!)
    const body = new Uint8Array(1000)
    let ok = 0
    for (let i = 0; i < 10; i++) if (w0.append(1, CrossKind.RELAY, 'hop', body)) ok++
    expect(ok).toBeLessThan(10)
    expect(w0.counters.full).toBe(10 - ok)
    // Larger than a record may be: refused and counted, not a RangeError.
    expect(w0.append(1, CrossKind.RELAY, 'hop', new Uint8Array(4096))).toBe(false)
    w0.flush()
    expect(drainAll(w1)).toHaveLength(ok)
    expect(w0.send(1, CrossKind.RELAY, 'hop', body)).toBe(true)
  })

  it('a throwing consumer callback consumes its record (it does not come back forever)', () => {
    const { data } = node(2)
    const w0 = new CrossWorkerRings(0, data[0]!)
    const w1 = new CrossWorkerRings(1, data[1]!)
    w0.send(1, CrossKind.RELAY, 'hop', Uint8Array.of(1))
    w0.send(1, CrossKind.RELAY, 'hop', Uint8Array.of(2))
    expect(() => w1.drain(() => { throw new Error('boom') }, () => {})).toThrow('boom')
    expect(drainAll(w1).map((r) => r.body)).toEqual([[2]])
  })
})

describe('RemoteHop', () => {
  it('is open while the owning worker reports its link up, and sends SEND records to it', () => {
    const { data } = node(2)
    const w0 = new CrossWorkerRings(0, data[0]!)
    const w1 = new CrossWorkerRings(1, data[1]!)
    let up = true
    const hop = new RemoteHop(1, 'neighbour', w0, () => up, () => {})
    expect(hop.state).toBe('open')
    hop.send(Uint8Array.of(7, 7), 2)
    expect(drainAll(w1)).toEqual([{ from: 0, kind: CrossKind.SEND, id: 'neighbour', body: [7, 7], frames: 2 }])
    up = false
    expect(hop.state).toBe('closed')
  })

  it('blocks while the ring lacks a pump\'s worth of room and wakes its worker once the consumer drains', async () => {
    const { data } = node(2, 1 << 20)
    const w0 = new CrossWorkerRings(0, data[0]!)
    const w1 = new CrossWorkerRings(1, data[1]!)
    let woken = 0
    const hop = new RemoteHop(1, 'neighbour', w0, () => true, () => { woken++ })
    expect(hop.writeBlocked).toBe(false)
    const chunk = new Uint8Array(256 * 1024)
    while (w0.canSend(1, REMOTE_HOP_ROOM)) hop.send(chunk, 1)
    expect(hop.writeBlocked).toBe(true)
    expect(hop.writeBlocked).toBe(true) // asking again arms no second wait
    drainAll(w1)
    await expect.poll(() => woken, { timeout: 2_000 }).toBe(1)
    expect(hop.writeBlocked).toBe(false)
  })
})

describe('routedHome', () => {
  it('is 0 with one worker, deterministic, in range, and spreads peers over the workers', () => {
    expect(routedHome('any', 1)).toBe(0)
    const ids = Array.from({ length: 400 }, (_, i) => `peer-${i}-${'x'.repeat(i % 7)}`)
    const counts = [0, 0, 0, 0]
    for (const id of ids) {
      const h = routedHome(id, 4)
      expect(h).toBe(routedHome(id, 4))
      counts[h]!++
    }
    expect(Math.min(...counts)).toBeGreaterThan(50)
  })
})
