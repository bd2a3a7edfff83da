import { describe, expect, it } from 'vitest'
import { Registry } from 'prom-client'
import { MeshMetrics, type MetricsSource } from '../../../src/observability/metrics.js'

const empty: MetricsSource = {
  peers: () => [],
  ioStats: async () => [],
  inboundRings: () => [],
  workerRestarts: () => 0,
}

describe('MeshMetrics.close()', () => {
  it('removes the series from a host registry (a later mesh may register again); idempotent', async () => {
    const registry = new Registry()
    const m = new MeshMetrics(empty, registry)
    expect(await registry.metrics()).toContain('meshwork_host_event_loop_delay_seconds')
    expect(() => new MeshMetrics(empty, registry)).toThrow(/already been registered/)
    m.close()
    m.close()
    expect(await registry.metrics()).not.toContain('meshwork_')
    const again = new MeshMetrics(empty, registry)
    expect(await again.text()).toContain('meshwork_peer_messages_sent_total')
    again.close()
  })

  it('keeps a private registry readable after close', async () => {
    const m = new MeshMetrics(empty)
    m.close()
    expect(await m.text()).toContain('meshwork_host_event_loop_delay_max_seconds')
  })

  it('leaves series of the host\'s own in its registry', async () => {
    const { Counter } = await import('prom-client')
    const registry = new Registry()
    new Counter({ name: 'host_requests_total', help: 'x', registers: [registry] })
    const m = new MeshMetrics(empty, registry)
    m.close()
    const text = await registry.metrics()
    expect(text).toContain('host_requests_total')
    expect(text).not.toContain('meshwork_')
  })
})
