import { describe, it, expect, vi } from 'vitest'
import { InboundWriter } from '../../../src/io/inbound-writer.js'
import { RingBuffer } from '../../../src/ring/ring-buffer.js'
import { InboundKind, INBOUND_ENVELOPE_BYTES, readHandle, readKind } from '../../../src/actor/inbound-record.js'
import { decodeControl } from '../../../src/codec/control.js'

interface Rec { kind: number; handle: number; body: Uint8Array }

function drain (host: RingBuffer): Rec[] {
  const out: Rec[] = []
  host.drain((r) => { out.push({ kind: readKind(r), handle: readHandle(r), body: r.slice(INBOUND_ENVELOPE_BYTES) }) })
  return out
}

function setup (capacity = 4096): { host: RingBuffer, writer: InboundWriter, blocked: boolean[] } {
  const host = RingBuffer.create(capacity)
  const blocked: boolean[] = []
  const writer = new InboundWriter(host.sab, (b) => { blocked.push(b) })
  return { host, writer, blocked }
}

const bytes = (n: number, v: number): Uint8Array => new Uint8Array(n).fill(v)

describe('InboundWriter', () => {
  it('data written in one task reaches the host in one publish, at the end of that task', async () => {
    const { host, writer } = setup()
    // The host is asleep on the ring: every publish would notify it.
    const wait = host.waitForData()
    const notify = vi.spyOn(Atomics, 'notify')
    try {
      writer.data(1, bytes(10, 1))
      writer.data(2, bytes(20, 2))
      writer.data(1, bytes(30, 3))
      expect(host.isEmpty()).toBe(true) // appended, not yet published
      await Promise.resolve()
      expect(host.isEmpty()).toBe(false)
      expect(notify).toHaveBeenCalledTimes(1)
    } finally {
      notify.mockRestore()
    }
    expect(await wait).toBe('ok')
    expect(drain(host).map((r) => [r.kind, r.handle, r.body.length, r.body[0]])).toEqual([
      [InboundKind.DATA, 1, 10, 1], [InboundKind.DATA, 2, 20, 2], [InboundKind.DATA, 1, 30, 3],
    ])
  })

  it('an event is visible at once, with the data written before it, in order', () => {
    const { host, writer } = setup()
    writer.data(7, bytes(5, 9))
    writer.event(7, { type: 'peer:down', peerId: 'p', reason: 'test' })
    const recs = drain(host)
    expect(recs.map((r) => [r.kind, r.handle])).toEqual([[InboundKind.DATA, 7], [InboundKind.EVENT, 7]])
    expect(decodeControl(recs[1]!.body)).toEqual({ type: 'peer:down', peerId: 'p', reason: 'test' })
  })

  it('when the ring fills, the host sees what is appended, the rest queues in order and nothing is lost', async () => {
    const { host, writer, blocked } = setup(4096)
    const sizes: number[] = []
    for (let i = 0; i < 40; i++) { const n = 100 + i; sizes.push(n); writer.data(i, bytes(n, i)) }
    // Full after ~20 records: what was appended so far is published at once
    // (the host can only free space it sees), and the sockets are paused.
    expect(host.isEmpty()).toBe(false)
    expect(blocked).toEqual([true])
    const got: Rec[] = []
    const deadline = performance.now() + 5000
    while (got.length < 40 && performance.now() < deadline) {
      got.push(...drain(host))
      await new Promise((resolve) => { setImmediate(resolve) })
    }
    expect(got.map((r) => r.handle)).toEqual(sizes.map((_, i) => i))
    expect(got.map((r) => r.body.length)).toEqual(sizes)
    expect(got.every((r, i) => r.body.every((x) => x === i))).toBe(true)
    expect(blocked).toEqual([true, false])
  })

  it('flushed() publishes data still waiting for its microtask', async () => {
    const { host, writer } = setup()
    writer.data(3, bytes(8, 3))
    const done = writer.flushed()
    expect(host.isEmpty()).toBe(false)
    await done
    expect(drain(host).map((r) => r.handle)).toEqual([3])
  })
})
