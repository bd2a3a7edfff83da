import { describe, it, expect } from 'vitest'
import fc from 'fast-check'
import { BULK_MIN_CREDIT_BYTES } from '../../../src/connection/peer-actor.js'
import { ACK_ASK_DIVISOR, ACK_EAGER_BULK_MAX_BYTES, ACK_EAGER_MAX_BYTES, ackEagerBytes, asksForAck } from '../../../src/delivery/ack-pacing.js'

const KiB = 1024
const MiB = 1024 * KiB

describe('ackEagerBytes (receiver)', () => {
  it('is a quarter of the credit, at most 256 KiB', () => {
    expect(ackEagerBytes(4 * MiB)).toBe(ACK_EAGER_MAX_BYTES)
    expect(ackEagerBytes(2 * MiB)).toBe(256 * KiB)
    expect(ackEagerBytes(512 * KiB)).toBe(128 * KiB)
    expect(ackEagerBytes(64 * KiB)).toBe(16 * KiB)
  })

  it('with bulk-lane frames among those taken, at most half of what a bulk sender may have in flight on a fast link', () => {
    expect(ackEagerBytes(4 * MiB, true)).toBe(ACK_EAGER_BULK_MAX_BYTES)
    expect(2 * ACK_EAGER_BULK_MAX_BYTES).toBeLessThanOrEqual(BULK_MIN_CREDIT_BYTES)
    expect(ackEagerBytes(128 * KiB, true)).toBe(32 * KiB) // small windows: a quarter, as for the priority lane
  })

  it('never 0, so a tiny window still acks each message at once', () => {
    expect(ackEagerBytes(0)).toBe(1)
    expect(ackEagerBytes(3)).toBe(1)
  })

  it('property: at least four thresholds fit in the window (the credit is renewed before it runs out)', () => {
    fc.assert(fc.property(fc.integer({ min: 4, max: 1 << 30 }), (w) => {
      const e = ackEagerBytes(w)
      expect(e).toBeGreaterThanOrEqual(1)
      expect(e).toBeLessThanOrEqual(ACK_EAGER_MAX_BYTES)
      expect(4 * e).toBeLessThanOrEqual(w)
    }))
  })
})

describe('asksForAck (sender)', () => {
  /** Replays the host's bookkeeping: which of `sizes` carry ACK_REQUESTED. */
  function asks (sizes: number[], queueBytes: number): number[] {
    const out: number[] = []
    let unasked = 0
    sizes.forEach((b, i) => {
      if (asksForAck(unasked, b, queueBytes)) { out.push(i); unasked = 0 } else unasked += b
    })
    return out
  }

  it('a 64 KiB queue asks every 16 KiB; a 4 MiB queue not within 40 KiB', () => {
    const sizes = Array.from({ length: 40 }, () => KiB)
    expect(asks(sizes, 64 * KiB)).toEqual([15, 31])
    expect(asks(sizes, 4 * MiB)).toEqual([])
  })

  it('a record of a quarter of the queue or more always asks', () => {
    expect(asksForAck(0, 16 * KiB, 64 * KiB)).toBe(true)
    expect(asksForAck(0, 16 * KiB - 1, 64 * KiB)).toBe(false)
  })

  it('property: never more than a quarter of the queue is queued without an ask', () => {
    fc.assert(fc.property(
      fc.integer({ min: 64 * KiB, max: 64 * MiB }),
      fc.array(fc.integer({ min: 1, max: 64 * KiB }), { maxLength: 300 }),
      (queue, sizes) => {
        let unasked = 0
        for (const b of sizes) {
          if (asksForAck(unasked, b, queue)) unasked = 0
          else unasked += b
          expect(unasked).toBeLessThan(queue / ACK_ASK_DIVISOR)
        }
      }))
  })
})
