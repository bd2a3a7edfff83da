import { describe, it, expect, afterEach } from 'vitest'
import { Registry } from 'prom-client'
import { makeMesh, makePair, closeAll, collect, until } from '../helpers/mesh.js'

afterEach(closeAll)

/** The value of one sample line, e.g. value(text, 'meshwork_peer_messages_sent_total', { peer }) */
function value (text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue
    const m = /^([a-z_]+)(\{[^}]*\})? (.+)$/.exec(line)
    if (m === null || m[1] !== name) continue
    const ls = Object.fromEntries([...(m[2] ?? '').matchAll(/([a-z_]+)="([^"]*)"/g)].map((x) => [x[1], x[2]]))
    if (Object.entries(labels).every(([k, v]) => ls[k] === v)) return Number(m[3])
  }
  return undefined
}

describe('metrics()', () => {
  it('after traffic: per-peer messages and bytes, queue, state, heartbeat RTT histogram, transport totals', async () => {
    const hb = { heartbeat: { intervalMs: 50, missesUnhealthy: 2, missesDead: 6 } }
    const [a, b] = await makePair(hb, hb)
    const got = collect(b, 100)
    for (let i = 0; i < 100; i++) void a.send(b.id, new Uint8Array(10))
    await got
    // RTT samples arrive with heartbeats (every 50 ms here).
    await until(async () => (value(await a.metrics(), 'meshwork_peer_heartbeat_rtt_seconds_count', { peer: b.id }) ?? 0) >= 2, { label: 'rtt samples' })
    const ta = await a.metrics()
    const tb = await b.metrics()
    expect(value(ta, 'meshwork_peer_messages_sent_total', { peer: b.id })).toBe(100)
    expect(value(ta, 'meshwork_peer_bytes_sent_total', { peer: b.id })).toBe(1000)
    expect(value(tb, 'meshwork_peer_messages_received_total', { peer: a.id })).toBe(100)
    expect(value(tb, 'meshwork_peer_bytes_received_total', { peer: a.id })).toBe(1000)
    expect(value(ta, 'meshwork_peer_queue_capacity_bytes', { peer: b.id })).toBeGreaterThan(0)
    expect(value(ta, 'meshwork_peer_state', { peer: b.id, state: 'healthy' })).toBe(1)
    expect(value(ta, 'meshwork_peer_state', { peer: b.id, state: 'disconnected' })).toBe(0)
    expect(ta).toMatch(/meshwork_peer_heartbeat_rtt_seconds_bucket\{le="0.01",peer="[a-z2-7]{52}"\} \d+/)
    expect(value(ta, 'meshwork_transport_frames_out_total')).toBeGreaterThanOrEqual(100)
    expect(value(tb, 'meshwork_transport_frames_in_total')).toBeGreaterThanOrEqual(100)
    expect(value(ta, 'meshwork_worker_restarts_total')).toBe(0)
    expect(value(ta, 'meshwork_send_pump_rescues_total')).toBe(0)
    expect(value(tb, 'meshwork_send_pump_rescues_total')).toBe(0)
    expect(ta).toContain('# TYPE meshwork_frames_rejected_total counter')
  })

  it('counts refused handshakes by reason', async () => {
    const b = await makeMesh({ allow: [] })
    const a = await makeMesh()
    await expect(a.connect(b.addresses[0] as string)).rejects.toMatchObject({ code: 'UNAUTHORIZED' })
    expect(value(await b.metrics(), 'meshwork_handshakes_refused_total', { reason: 'unauthorized' })).toBeGreaterThanOrEqual(1)
    expect(value(await a.metrics(), 'meshwork_handshakes_refused_total', { reason: 'by-peer:unauthorized' })).toBeGreaterThanOrEqual(1)
  })

  it("registers into the host's registry when given one (never the global default)", async () => {
    const registry = new Registry()
    const [a, b] = await makePair({ metrics: { registry } })
    await a.send(b.id, 'x')
    await until(() => b.peers().length === 1)
    const text = await registry.metrics()
    expect(value(text, 'meshwork_peer_messages_sent_total', { peer: b.id })).toBe(1)
    const { register } = await import('prom-client')
    expect(await register.metrics()).not.toContain('meshwork_')
    // One mesh per registry: a second one is a clear option error.
    await expect(makeMesh({ metrics: { registry } })).rejects.toMatchObject({ code: 'INVALID_OPTIONS', message: expect.stringContaining('options.metrics.registry') })
  })
})

describe('host event-loop delay', () => {
  it('a blocked host loop shows in meshwork_host_event_loop_delay_*; the next scrape starts a new window', async () => {
    const a = await makeMesh()
    const first = await a.metrics()
    expect(first).toContain('# TYPE meshwork_host_event_loop_delay_seconds gauge')
    expect(first).toContain('# TYPE meshwork_host_event_loop_utilization_ratio gauge')
    // Block the host's main thread: this stall is what the metric exists to show.
    const stallMs = 120
    const t0 = performance.now()
    while (performance.now() - t0 < stallMs) { /* busy */ }
    // The monitor records the stall when its timer next runs (within one 10 ms interval).
    let text = ''
    await until(async () => {
      text = await a.metrics()
      return (value(text, 'meshwork_host_event_loop_delay_max_seconds') ?? 0) >= (stallMs - 15) / 1000
    }, { label: 'stall in max' })
    const max = value(text, 'meshwork_host_event_loop_delay_max_seconds') as number
    const p50 = value(text, 'meshwork_host_event_loop_delay_seconds', { quantile: '0.5' }) as number
    const p99 = value(text, 'meshwork_host_event_loop_delay_seconds', { quantile: '0.99' }) as number
    expect(p50).toBeGreaterThanOrEqual(0)
    expect(p50).toBeLessThanOrEqual(p99)
    expect(p99).toBeLessThanOrEqual(max)
    expect(max).toBeLessThan(10)
    expect(value(text, 'meshwork_host_event_loop_delay_samples')).toBeGreaterThanOrEqual(1)
    expect(value(text, 'meshwork_host_event_loop_utilization_ratio')).toBeGreaterThan(0)
    // Each scrape reads and resets the window: the stall is gone from a later one.
    await until(async () => (value(await a.metrics(), 'meshwork_host_event_loop_delay_max_seconds') ?? 1) < (stallMs - 15) / 1000, { label: 'stall out of the window' })
  })

  it('a host registry gets the delay series too', async () => {
    const registry = new Registry()
    await makeMesh({ metrics: { registry } })
    const text = await registry.metrics()
    for (const q of ['0.5', '0.9', '0.99', '0.999']) expect(value(text, 'meshwork_host_event_loop_delay_seconds', { quantile: q })).toBeGreaterThanOrEqual(0)
  })
})
