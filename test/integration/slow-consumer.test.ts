// Issue 4: a slow consumer holds the producer back — no memory growth beyond
// the queues, heartbeats unaffected, nothing accepted lost. Producer and
// consumer are separate processes (their RSS is their own).
import { describe, it, expect, afterEach } from 'vitest'
import { spawnDeliveryNode, reply, killDeliveryChildren, type DeliveryChild } from '../helpers/delivery-child.js'
import { until } from '../helpers/mesh.js'
import { IO_WORKER_OLD_SPACE_FLOOR_MB } from '../../dist/src/supervisor/worker-heap.js'

afterEach(killDeliveryChildren)

const MiB = 1024 * 1024
// Unhealthy after 1 s of silence: at 50 ms × 6 the suite's own CPU contention (idle RTT p99 154 ms seen) tripped it with no fault.
const HEARTBEAT = { intervalMs: 100, missesUnhealthy: 10, missesDead: 20 }
/** The consumer's listener is busy this long per message: ~100 msgs/s, a few % of what the producer sends to a fast one (perf/ runs the 1 % figure). */
const SLOW_MS = 10
const SIZE = 4096
const WARM_MS = 2_000
/** The slow phase lasts at least this long, and until both late samples are taken. */
const FLOOD_MS = 12_000
const SEND_QUEUE = 1 * MiB
/** Messages the slow consumer takes between the two after-GC memory samples. */
const LATE_AFTER = 250
/** Receiver: its inbound ring (ringBytes; the IO worker grants each sender a quarter of it as credit). */
const RING_BYTES = 4 * MiB
const CREDIT = RING_BYTES / 2 // the receive window an IO worker grants (src/io/io-worker.ts)

const quantile = (xs: number[], q: number): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? 0 }
const p99 = (xs: number[]): number => quantile(xs, 0.99)
const stats = async (n: DeliveryChild): Promise<any> => await reply(n.proc, { type: 'stats' }, 'stats', 10_000)
/** After a GC of every heap of the child: RSS, and `held` (RSS less the V8 heaps' free page space). */
const settled = async (n: DeliveryChild): Promise<{ rss: number; held: number; workerHeaps: number }> => await reply(n.proc, { type: 'mem-settled' }, 'mem-settled', 30_000)

describe('slow consumer (issue 4)', () => {
  it('holds the producer back: sends wait, RSS stays within the queue budgets, heartbeats unaffected, every accepted message arrives in order', async () => {
    const consumer = await spawnDeliveryNode({ listen: 'ws://127.0.0.1:0', heartbeat: HEARTBEAT, ringBytes: RING_BYTES }, { slowMs: 0 }, undefined, { exposeGc: true })
    const producer = await spawnDeliveryNode({ listen: false, heartbeat: HEARTBEAT, sendQueue: { capacityBytes: SEND_QUEUE, blockTimeoutMs: 5_000 } }, {}, undefined, { exposeGc: true })
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
    const floodP = reply(producer.proc, { type: 'flood', to: consumer.id, size: SIZE, durationMs: FLOOD_MS, first: warm.accepted, untilStopped: true }, 'flood-done', FLOOD_MS + 90_000)
    floodP.catch(() => {}) // awaited below; a failure in between must not also surface as an unhandled rejection
    // Once the backlog has built up (the producer's queue 3/4 full): what each process holds after a
    // GC of all its heaps, the reference for what the rest of the flood may add.
    const queued = async (): Promise<number> => (await stats(producer)).delivery.peers[consumer.id]?.queuedBytes ?? 0
    await until(async () => (await queued()) >= SEND_QUEUE * 3 / 4, { timeoutMs: FLOOD_MS / 2, label: 'the producer\'s queue filled' })
    const early = await Promise.all([producer, consumer].map(settled))
    // Later in the flood, once the consumer has taken LATE_AFTER more (~2.5 s), the backlog still queued
    // (the same regime; after the flood the consumer drains it within seconds).
    const earlyCount = (await stats(consumer)).slow.count as number
    await until(async () => (await stats(consumer)).slow.count >= earlyCount + LATE_AFTER, { timeoutMs: FLOOD_MS * 2, label: `the consumer took ${LATE_AFTER} more` })
    // The consumer answers only between batches of its inbound ring (a few seconds of 10-ms messages).
    const [late, lateBacklog] = await Promise.all([Promise.all([producer, consumer].map(settled)), queued()])
    await reply(producer.proc, { type: 'flood-stop' }, 'flood-stopping', 10_000) // it ends once FLOOD_MS have passed
    const flood = await floodP
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
    const held = { producer: late[0]!.held - early[0]!.held, consumer: late[1]!.held - early[1]!.held }
    console.log(`slow consumer: warm ${warm.accepted} msgs in ${WARM_MS} ms to a fast consumer (${(warm.accepted / WARM_MS * 1000).toFixed(0)}/s); ` +
      `slow: ${flood.accepted} accepted in ${flood.ms.toFixed(0)} ms (${SIZE} B), consumer took ${(slowCount / flood.ms * 1000).toFixed(0)}/s; ` +
      `send wait p50 ${flood.waitP50.toFixed(2)} ms p99 ${flood.waitP99.toFixed(2)} ms max ${flood.waitMax.toFixed(1)} ms, QUEUE_FULL ${flood.queueFull}; ` +
      `backlog at end ${total - atEnd.slow.count} msgs; peak RSS producer ${(base[0].memMax.rssMax / MiB).toFixed(1)} → ${(prodAfter.memMax.rssMax / MiB).toFixed(1)} MiB (queue ${SEND_QUEUE / MiB} MiB), ` +
      `consumer ${(base[1].memMax.rssMax / MiB).toFixed(1)} → ${(last.memMax.rssMax / MiB).toFixed(1)} MiB (inbound ring ${RING_BYTES / MiB} MiB, credit ${CREDIT / MiB} MiB); ` +
      `RTT p99 idle ${rttIdleP99.toFixed(3)} ms (n ${idle.length}), under load ${rttLoadP99.toFixed(3)} ms (p90 ${rttLoadP90.toFixed(3)}, n ${flood.rtt.length}); ` +
      `downs ${prodAfter.downs}/${last.downs}, unhealthy ${prodAfter.unhealthy}/${last.unhealthy}; ` +
      `held after GC, backlog queued (${(lateBacklog / MiB).toFixed(2)} MiB in the producer's queue at the second): producer ${(early[0]!.held / MiB).toFixed(1)} → ${(late[0]!.held / MiB).toFixed(1)} MiB (RSS ${(early[0]!.rss / MiB).toFixed(1)} → ${(late[0]!.rss / MiB).toFixed(1)}), ` +
      `consumer ${(early[1]!.held / MiB).toFixed(1)} → ${(late[1]!.held / MiB).toFixed(1)} MiB (RSS ${(early[1]!.rss / MiB).toFixed(1)} → ${(late[1]!.rss / MiB).toFixed(1)})`)

    // Held back: the producer got no further ahead of the consumer than its queue, the credit and socket buffers hold.
    expect((total - atEnd.slow.count) * SIZE).toBeLessThan(SEND_QUEUE + CREDIT + 2 * MiB)
    expect(flood.accepted).toBeLessThan(warm.accepted * flood.ms / WARM_MS / 4)
    expect(flood.waitMax).toBeGreaterThan(SLOW_MS)
    // Every accepted message delivered, in order, once.
    expect(last.slow.count).toBe(total)
    expect(last.slow.outOfOrder).toBe(0)
    // Memory, after a GC of every heap: what each process holds (RSS net of V8's free page space)
    // from early in the flood to late in it, the backlog queued both times, grows by no more than
    // the queue budgets + 20 %, and 8 MiB for what this figure moves by itself (-6 to +2.6 MiB in
    // ~100 MiB processes over 3 runs, the budgets being 3.6 / 4.8 MiB). A producer not held back
    // would push ~200 MiB/s. The strict figure is perf/'s (reliability d, 30 s).
    expect([...early, ...late].map((m) => m.workerHeaps)).toEqual([2, 2, 2, 2]) // the IO worker and the router collected too
    expect(lateBacklog).toBeGreaterThan(SEND_QUEUE / 4) // the second sample was taken with the backlog still queued
    expect(held.producer).toBeLessThan(1.2 * (SEND_QUEUE + CREDIT) + 8 * MiB)
    expect(held.consumer).toBeLessThan(1.2 * RING_BYTES + 8 * MiB)
    // And peak RSS over the warm peak, sampled all along (a burst between the two samples): the same
    // bounds, plus the garbage an IO worker may keep until its first full GC, up to its old-generation
    // floor (src/supervisor/worker-heap.ts; the producer's peak grew 18 MiB once in eight suite runs).
    const workerGarbage = IO_WORKER_OLD_SPACE_FLOOR_MB * MiB
    expect(growth.producer).toBeLessThan(1.2 * (SEND_QUEUE + CREDIT) + 8 * MiB + workerGarbage)
    expect(growth.consumer).toBeLessThan(1.2 * RING_BYTES + 8 * MiB + workerGarbage)
    // Heartbeats unaffected: no unhealthy, no peer:down, and 9 in 10 RTTs under load within 2× the idle
    // p99 (10 ms floor). Heartbeats held behind a paused socket would be late most of the time; the p99
    // of ~100 samples is their maximum, and one scheduling stall of a shared 2-core box sets it (177 ms
    // seen once in CI, 2-19 ms otherwise). The strict p99 figure is perf/'s (reliability, part d).
    expect(prodAfter.downs + last.downs).toBe(0)
    expect(prodAfter.unhealthy + last.unhealthy).toBe(0)
    expect(flood.rtt.length).toBeGreaterThan(flood.ms / HEARTBEAT.intervalMs / 2)
    expect(rttLoadP90).toBeLessThan(Math.max(2 * rttIdleP99, 10))
  }, 120_000)
})
