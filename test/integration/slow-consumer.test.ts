// Issue 4: a slow consumer holds the producer back — no memory growth beyond
// the queues, heartbeats unaffected, nothing accepted lost. Producer and
// consumer are separate processes (their RSS is their own).
import { describe, it, expect, afterEach } from 'vitest'
import { spawnDeliveryNode, reply, killDeliveryChildren, type DeliveryChild } from '../helpers/delivery-child.js'
import { IO_WORKER_OLD_SPACE_FLOOR_MB } from '../../dist/src/supervisor/worker-heap.js'

afterEach(killDeliveryChildren)

const MiB = 1024 * 1024
// Unhealthy after 1 s of silence: at 50 ms × 6 the suite's own CPU contention (idle RTT p99 154 ms seen) tripped it with no fault.
const HEARTBEAT = { intervalMs: 100, missesUnhealthy: 10, missesDead: 20 }
/** The consumer's listener is busy this long per message: ~100 msgs/s, a few % of what the producer sends to a fast one (perf/ runs the 1 % figure). */
const SLOW_MS = 10
const SIZE = 4096
const WARM_MS = 2_000
const FLOOD_MS = 10_000
const SEND_QUEUE = 1 * MiB
/** Receiver: its inbound ring (ringBytes; the IO worker grants each sender a quarter of it as credit). */
const RING_BYTES = 4 * MiB
const CREDIT = RING_BYTES / 2 // the receive window an IO worker grants (src/io/io-worker.ts)

const quantile = (xs: number[], q: number): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? 0 }
const p99 = (xs: number[]): number => quantile(xs, 0.99)
const stats = async (n: DeliveryChild): Promise<any> => await reply(n.proc, { type: 'stats' }, 'stats', 10_000)

describe('slow consumer (issue 4)', () => {
  it('holds the producer back: sends wait, RSS stays within the queue budgets, heartbeats unaffected, every accepted message arrives in order', async () => {
    const consumer = await spawnDeliveryNode({ listen: 'ws://127.0.0.1:0', heartbeat: HEARTBEAT, ringBytes: RING_BYTES }, { slowMs: 0 })
    const producer = await spawnDeliveryNode({ listen: false, heartbeat: HEARTBEAT, sendQueue: { capacityBytes: SEND_QUEUE, blockTimeoutMs: 5_000 } })
    await reply(producer.proc, { type: 'connect', url: consumer.addresses[0] }, 'connected', 10_000)
    await reply(consumer.proc, { type: 'wait-up', ids: [producer.id] }, 'up', 10_000)

    // Idle heartbeat RTT, linked, before any message.
    const idle = (await reply(producer.proc, { type: 'sample-rtt', to: consumer.id, durationMs: 2_000 }, 'rtt', 10_000)).rtt as number[]
    // Warm: the same traffic to a fast consumer, so both processes' JS heaps (main thread and
    // workers) and allocator reach their working size; the peak RSS of this phase is the baseline.
    const warm = await reply(producer.proc, { type: 'flood', to: consumer.id, size: SIZE, durationMs: WARM_MS }, 'flood-done', WARM_MS + 30_000)
    const deadline1 = Date.now() + 20_000
    while ((await stats(consumer)).slow.count < warm.accepted && Date.now() < deadline1) { /* drain the warm phase */ }
    const base = await Promise.all([producer, consumer].map(stats))
    await Promise.all([producer, consumer].map(async (n) => await reply(n.proc, { type: 'mem-reset' }, 'mem-reset', 5_000)))

    // Slow: the consumer takes ~1 % of that rate; the producer pushes as fast as send() lets it.
    await reply(consumer.proc, { type: 'set-slow', ms: SLOW_MS }, 'slow-set', 5_000)
    const flood = await reply(producer.proc, { type: 'flood', to: consumer.id, size: SIZE, durationMs: FLOOD_MS, first: warm.accepted }, 'flood-done', FLOOD_MS + 30_000)
    const atEnd = await stats(consumer)
    const total = warm.accepted + flood.accepted

    // Afterwards every accepted message is delivered, in order, once.
    const deadline2 = Date.now() + 30_000
    let last = atEnd
    while (last.slow.count < total && Date.now() < deadline2) last = await stats(consumer)
    const prodAfter = await stats(producer)

    const slowCount = atEnd.slow.count - warm.accepted
    const rttIdleP99 = p99(idle)
    const rttLoadP99 = p99(flood.rtt)
    const rttLoadP90 = quantile(flood.rtt, 0.9)
    const growth = { producer: prodAfter.memMax.rssMax - base[0].memMax.rssMax, consumer: last.memMax.rssMax - base[1].memMax.rssMax }
    console.log(`slow consumer: warm ${warm.accepted} msgs in ${WARM_MS} ms to a fast consumer (${(warm.accepted / WARM_MS * 1000).toFixed(0)}/s); ` +
      `slow: ${flood.accepted} accepted in ${FLOOD_MS} ms (${SIZE} B), consumer took ${(slowCount / FLOOD_MS * 1000).toFixed(0)}/s; ` +
      `send wait p50 ${flood.waitP50.toFixed(2)} ms p99 ${flood.waitP99.toFixed(2)} ms max ${flood.waitMax.toFixed(1)} ms, QUEUE_FULL ${flood.queueFull}; ` +
      `backlog at end ${total - atEnd.slow.count} msgs; peak RSS producer ${(base[0].memMax.rssMax / MiB).toFixed(1)} → ${(prodAfter.memMax.rssMax / MiB).toFixed(1)} MiB (queue ${SEND_QUEUE / MiB} MiB), ` +
      `consumer ${(base[1].memMax.rssMax / MiB).toFixed(1)} → ${(last.memMax.rssMax / MiB).toFixed(1)} MiB (inbound ring ${RING_BYTES / MiB} MiB, credit ${CREDIT / MiB} MiB); ` +
      `RTT p99 idle ${rttIdleP99.toFixed(3)} ms (n ${idle.length}), under load ${rttLoadP99.toFixed(3)} ms (p90 ${rttLoadP90.toFixed(3)}, n ${flood.rtt.length}); ` +
      `downs ${prodAfter.downs}/${last.downs}, unhealthy ${prodAfter.unhealthy}/${last.unhealthy}`)

    // Held back: the producer got no further ahead of the consumer than its queue, the credit and socket buffers hold.
    expect((total - atEnd.slow.count) * SIZE).toBeLessThan(SEND_QUEUE + CREDIT + 2 * MiB)
    expect(flood.accepted).toBeLessThan(warm.accepted * FLOOD_MS / WARM_MS / 4)
    expect(flood.waitMax).toBeGreaterThan(SLOW_MS)
    // Every accepted message delivered, in order, once.
    expect(last.slow.count).toBe(total)
    expect(last.slow.outOfOrder).toBe(0)
    // Memory: a slow consumer adds no more than the queue budgets + 20 % to the warm peak.
    // The suite bounds add a GC slack of 8 MiB: under a loaded
    // CI box its young generation alone moved RSS by that much (8.6 MiB growth
    // seen once against 5 MiB); the strict budget + 20 % figure is measured by
    // perf/scenarios/reliability.ts (slow consumer, 30 s). Unbounded buffering
    // of a 10 s flood would be hundreds of MiB, so this still catches it.
    // Peak RSS also holds the garbage an IO worker may keep until its first full GC, up to its
    // old-generation floor (src/supervisor/worker-heap.ts): the producer's peak grew 18 MiB once
    // in eight suite runs after the floor came in. The after-GC figure in perf/ stays strict.
    const workerGarbage = IO_WORKER_OLD_SPACE_FLOOR_MB * MiB
    expect(growth.producer).toBeLessThan(1.2 * (SEND_QUEUE + CREDIT) + 8 * MiB + workerGarbage)
    expect(growth.consumer).toBeLessThan(1.2 * RING_BYTES + 8 * MiB + workerGarbage)
    // Heartbeats unaffected: no unhealthy, no peer:down, and 9 in 10 RTTs under load within 2× the idle
    // p99 (10 ms floor). Heartbeats held behind a paused socket would be late most of the time; the p99
    // of ~100 samples is their maximum, and one scheduling stall of a shared 2-core box sets it (177 ms
    // seen once in CI, 2-19 ms otherwise). The strict p99 figure is perf/'s (reliability, part d).
    expect(prodAfter.downs + last.downs).toBe(0)
    expect(prodAfter.unhealthy + last.unhealthy).toBe(0)
    expect(flood.rtt.length).toBeGreaterThan(FLOOD_MS / HEARTBEAT.intervalMs / 2)
    expect(rttLoadP90).toBeLessThan(Math.max(2 * rttIdleP99, 10))
  }, 120_000)
})
