// Issue 4, lanes: a large bulk transfer must not hold up control frames
// (heartbeat PING/PONG, ACKs bypass the send queue) — heartbeat RTT stays
// low — and a 'priority' message sent during the transfer arrives.
import { describe, it, expect, afterEach } from 'vitest'
import { makePair, closeAll, until } from '../helpers/mesh.js'

afterEach(closeAll)

const MiB = 1024 * 1024
const CHUNK = 512 * 1024
/** 4 rounds of 10 MiB: ~40 MiB in 512 KiB messages (each travels as 64 KiB frames). */
const ROUNDS = 4
const PER_ROUND = 20
const HEARTBEAT = { intervalMs: 20, missesUnhealthy: 10, missesDead: 20 }

const pct = (xs: number[], p: number): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? 0 }

describe('lanes (issue 4)', () => {
  it('a 40 MiB bulk transfer: heartbeat RTT p99 stays low, priority messages sent meanwhile arrive, the bulk data arrives whole and in order', async () => {
    const [a, b] = await makePair({ heartbeat: HEARTBEAT }, { heartbeat: HEARTBEAT })
    // RTT samples: peers()[].rttMs is the IO worker's latest sample; a new value is a new sample.
    const rtt: number[] = []
    let last: number | undefined
    const poll = setInterval(() => {
      const r = a.peers().find((p) => p.id === b.id)?.rttMs
      if (r !== undefined && r !== last) { rtt.push(r); last = r }
    }, 2)
    // Idle first, for comparison.
    await until(() => rtt.length >= 30, { timeoutMs: 10_000, label: '30 idle RTT samples' })
    const idle = rtt.splice(0)

    const bulkGot: number[] = []
    let bulkBytes = 0
    let allBulk!: () => void
    let expected = Infinity
    const allBulkIn = new Promise<void>((resolve) => { allBulk = resolve })
    const prioritySentAt = new Map<number, number>()
    const priorityLatency: number[] = []
    b.on('message', (m) => {
      if (m.lane === 'bulk') {
        const buf = m.payload as Uint8Array
        bulkGot.push(buf[0]! | (buf[1]! << 8))
        bulkBytes += buf.length
        if (bulkGot.length >= expected) allBulk()
      } else {
        const k = (m.payload as { k: number }).k
        priorityLatency.push(performance.now() - (prioritySentAt.get(k) ?? NaN))
      }
    })

    const payload = Buffer.alloc(CHUNK, 0xab)
    let transferring = true
    // A priority message every ~20 ms while the transfer runs.
    const priority = (async () => {
      let k = 0
      while (transferring) {
        prioritySentAt.set(k, performance.now())
        await a.send(b.id, { k: k++ })
        await new Promise((resolve) => { setTimeout(resolve, 20) })
      }
      return k
    })()
    const t0 = performance.now()
    // At least 40 MiB, and on until 20 RTT samples were taken during the transfer (a fast machine
    // moves 40 MiB within a few heartbeats), up to 4× that.
    let n = 0
    while (n < ROUNDS * PER_ROUND || (rtt.length < 20 && n < 4 * ROUNDS * PER_ROUND)) {
      payload[0] = n & 0xff
      payload[1] = n >> 8
      await a.send(b.id, payload, { lane: 'bulk' })
      n++
    }
    expected = n
    if (bulkGot.length >= expected) allBulk()
    await Promise.race([allBulkIn, new Promise((_resolve, reject) => { setTimeout(() => { reject(new Error(`bulk: ${bulkGot.length} of ${n} messages within 30 s`)) }, 30_000).unref() })])
    const ms = performance.now() - t0
    transferring = false
    const prioritySent = await priority
    clearInterval(poll)
    await until(() => priorityLatency.length === prioritySent, { timeoutMs: 10_000, label: 'all priority messages' })
    const busy = rtt.splice(0)

    console.log(`lanes: ${(bulkBytes / MiB).toFixed(0)} MiB bulk in ${ms.toFixed(0)} ms (${(bulkBytes / MiB / ms * 1000).toFixed(0)} MiB/s); ` +
      `heartbeat RTT idle p50 ${pct(idle, 0.5).toFixed(3)} p99 ${pct(idle, 0.99).toFixed(3)} ms (n ${idle.length}), ` +
      `during the transfer p50 ${pct(busy, 0.5).toFixed(3)} p99 ${pct(busy, 0.99).toFixed(3)} max ${pct(busy, 1).toFixed(3)} ms (n ${busy.length}); ` +
      `${prioritySent} priority messages, latency p50 ${pct(priorityLatency, 0.5).toFixed(1)} p99 ${pct(priorityLatency, 0.99).toFixed(1)} ms`)

    expect(bulkGot).toEqual(Array.from({ length: n }, (_, k) => k & 0xffff))
    expect(bulkBytes).toBe(n * CHUNK)
    expect(prioritySent).toBeGreaterThan(0)
    expect(priorityLatency.every((l) => Number.isFinite(l))).toBe(true)
    expect(busy.length).toBeGreaterThanOrEqual(10)
    expect(n).toBeGreaterThanOrEqual(ROUNDS * PER_ROUND)
    // Issue 4's figure is 5 ms on loopback (perf/scenarios/reliability.ts). Here a generous bound for a loaded
    // shared box: the transfer adds less than 50 ms to the idle p99 (heartbeats queued behind the bulk data
    // would wait for the 4 MiB send queue and the socket buffers to drain: hundreds of ms at these rates).
    expect(pct(busy, 0.99)).toBeLessThan(50 + pct(idle, 0.99))
    expect(a.peers().find((p) => p.id === b.id)?.state).toBe('healthy')
  }, 60_000)
})
