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

  it('lanes are scheduled by priority: priority messages sent after a 24 MiB bulk message arrive long before it, each lane in its own order, chunked messages of both lanes whole', async () => {
    // A 1 MiB send queue: the bulk message (384 chunks) is written into it as room frees.
    const opts = { sendQueue: { capacityBytes: MiB }, maxMessageBytes: 32 * MiB }
    const [a, b] = await makePair(opts, opts)
    const big = Buffer.alloc(24 * MiB)
    for (let i = 0; i < big.length; i += 4096) big[i] = (i >> 12) & 0xff
    const mid = Buffer.alloc(200 * 1024, 7) // chunked priority messages: 4 chunks each
    const got: Array<{ lane: string; tag: string; at: number; bytes?: Uint8Array }> = []
    b.on('message', (m) => {
      const p = m.payload as { tag?: string } | Uint8Array
      if (p instanceof Uint8Array) got.push({ lane: m.lane, tag: p.length === big.length ? 'big' : 'mid', at: performance.now(), bytes: p })
      else got.push({ lane: m.lane, tag: String(p.tag), at: performance.now() })
    })
    const t0 = performance.now()
    // The bulk send fills what it may of the queue at once (synchronously); the rest waits for room.
    const bigSent = a.send(b.id, big, { lane: 'bulk' })
    const after = a.send(b.id, { tag: 'bulk-after' }, { lane: 'bulk' })
    const sends: Array<Promise<string>> = []
    for (let i = 0; i < 5; i++) sends.push(a.send(b.id, { tag: `p${i}` }))
    sends.push(a.send(b.id, mid))
    sends.push(a.send(b.id, { tag: 'p-last' }))
    await Promise.all([bigSent, after, ...sends])
    await until(() => got.length === 9, { timeoutMs: 30_000, label: 'all 9 messages' })
    const order = got.map((g) => g.tag)
    const at = (tag: string): number => got.find((g) => g.tag === tag)?.at ?? NaN
    console.log(`lanes: priority messages in at ${(at('p-last') - t0).toFixed(0)} ms, the 24 MiB bulk message at ${(at('big') - t0).toFixed(0)} ms; order ${order.join(' ')}`)
    // Each lane in its own order; priority overtook the big bulk message.
    expect(got.filter((g) => g.lane === 'priority').map((g) => g.tag)).toEqual(['p0', 'p1', 'p2', 'p3', 'p4', 'mid', 'p-last'])
    expect(got.filter((g) => g.lane === 'bulk').map((g) => g.tag)).toEqual(['big', 'bulk-after'])
    expect(order.indexOf('p-last')).toBeLessThan(order.indexOf('big'))
    expect(at('p-last')).toBeLessThan(at('big'))
    // Chunked messages of both lanes, interleaved on the wire, arrive whole.
    expect(Buffer.compare(Buffer.from(got.find((g) => g.tag === 'big')!.bytes!), big)).toBe(0)
    expect(Buffer.compare(Buffer.from(got.find((g) => g.tag === 'mid')!.bytes!), mid)).toBe(0)
  }, 60_000)
})
