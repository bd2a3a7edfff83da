import { performance, type EventLoopUtilization } from 'node:perf_hooks'
import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import type { IoWorkerStats } from '../actor/protocol.js'
import type { PeerState } from '../events.js'
import { ELD_QUANTILES, ELD_RESOLUTION_MS, HostLoopDelay, type EldWindow } from './event-loop-delay.js'

/** What the metrics read at scrape time (nothing is pushed per message). */
export interface MetricsSource {
  /** Per-peer host-side counters and queue fill. */
  peers (): Array<{
    id: string
    state: PeerState
    messagesSent: number
    messagesReceived: number
    bytesSent: number
    bytesReceived: number
    queueBytes: number
    queueCapacity: number
    /** Unreliable messages dropped by sendQueue.policy (never reliable ones). */
    dropped: number
  }>
  /** One stats call per IO worker (control plane, only when scraped). */
  ioStats (): Promise<IoWorkerStats[]>
  /** Inbound ring fill per IO worker. */
  inboundRings (): Array<{ worker: number; usedBytes: number; capacity: number }>
  workerRestarts (): number
}

const STATES: readonly PeerState[] = ['connecting', 'healthy', 'unhealthy', 'disconnected', 'failed']


/**
 * The mesh's Prometheus metrics (`meshwork_<subsystem>_<name>_<unit>`, counters
 * end in `_total`, per-peer series carry a `peer` label). Registered into the
 * host's prom-client registry when given, else into a private one — never the
 * global default registry. Values are collected when scraped.
 */
export class MeshMetrics {
  readonly registry: Registry
  readonly #rtt: Histogram<'peer'>
  readonly #eld = new HostLoopDelay()
  readonly #ownRegistry: boolean
  readonly #names: string[] = []
  #closed = false

  constructor (source: MetricsSource, registry?: Registry) {
    this.registry = registry ?? new Registry()
    this.#ownRegistry = registry === undefined
    const registers = [this.registry]
    const before = new Set(this.registry.getMetricsAsArray().map((m) => m.name))
    const perPeer = (name: string, help: string, pick: (p: ReturnType<MetricsSource['peers']>[number]) => number, counter: boolean): void => {
      const cfg = {
        name,
        help,
        labelNames: ['peer'] as const,
        registers,
        collect (this: Gauge<'peer'> | Counter<'peer'>) {
          this.reset()
          for (const p of source.peers()) {
            if (counter) (this as Counter<'peer'>).inc({ peer: p.id }, pick(p))
            else (this as Gauge<'peer'>).set({ peer: p.id }, pick(p))
          }
        },
      }
      if (counter) new Counter(cfg as any)
      else new Gauge(cfg as any)
    }
    perPeer('meshwork_peer_messages_sent_total', 'Messages this node queued to the peer.', (p) => p.messagesSent, true)
    perPeer('meshwork_peer_messages_received_total', 'Messages from the peer delivered to this host.', (p) => p.messagesReceived, true)
    perPeer('meshwork_peer_bytes_sent_total', 'Payload bytes queued to the peer.', (p) => p.bytesSent, true)
    perPeer('meshwork_peer_bytes_received_total', 'Payload bytes from the peer delivered to this host.', (p) => p.bytesReceived, true)
    perPeer('meshwork_peer_queue_bytes', 'Bytes waiting in the peer\'s send queue (ring).', (p) => p.queueBytes, false)
    perPeer('meshwork_peer_queue_capacity_bytes', 'Capacity of the peer\'s send queue.', (p) => p.queueCapacity, false)
    perPeer('meshwork_peer_dropped_total', 'Unreliable messages to the peer dropped by sendQueue.policy (reliable messages are never dropped).', (p) => p.dropped, true)
    new Gauge({
      name: 'meshwork_peer_state',
      help: 'Current state of each peer (1 for the state it is in).',
      labelNames: ['peer', 'state'] as const,
      registers,
      collect () {
        this.reset()
        for (const p of source.peers()) for (const s of STATES) this.set({ peer: p.id, state: s }, p.state === s ? 1 : 0)
      },
    })
    this.#rtt = new Histogram({
      name: 'meshwork_peer_heartbeat_rtt_seconds',
      help: 'Heartbeat round-trip time per peer, measured in the IO worker.',
      labelNames: ['peer'] as const,
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    })
    // Worker counters: one stats RPC per IO worker per scrape, shared by the metrics below.
    let pending: Promise<IoWorkerStats[]> | undefined
    const stats = async (): Promise<IoWorkerStats[]> => {
      pending ??= source.ioStats().finally(() => { setImmediate(() => { pending = undefined }) })
      return await pending
    }
    const byReason = (name: string, help: string, pick: (s: IoWorkerStats) => Record<string, number>): void => {
      new Counter({
        name,
        help,
        labelNames: ['reason'] as const,
        registers,
        async collect () {
          this.reset()
          for (const s of await stats()) for (const [reason, n] of Object.entries(pick(s))) this.inc({ reason }, n)
        },
      })
    }
    byReason('meshwork_frames_rejected_total', 'Inbound frames or messages rejected (the connection was closed), by reason.', (s) => s.rejectedFrames)
    byReason('meshwork_handshakes_refused_total', 'Handshakes refused (by this node, or by-peer:<reason>), by reason.', (s) => s.refusedHandshakes)
    const perNode = (name: string, help: string, pick: (s: IoWorkerStats) => number): void => {
      new Counter({
        name,
        help,
        registers,
        async collect () {
          this.reset()
          this.inc((await stats()).reduce((n, s) => n + pick(s), 0))
        },
      })
    }
    perNode('meshwork_transport_frames_in_total', 'Frames received on all connections.', (s) => s.framesIn)
    perNode('meshwork_transport_frames_out_total', 'Frames sent on all connections.', (s) => s.framesOut)
    perNode('meshwork_transport_bytes_in_total', 'Bytes received on all connections (WebSocket payloads).', (s) => s.bytesIn)
    perNode('meshwork_transport_bytes_out_total', 'Bytes sent on all connections (WebSocket payloads).', (s) => s.bytesOut)
    perNode('meshwork_peer_reconnect_attempts_total', 'Re-dial attempts of kept links.', (s) => s.reconnectAttempts)
    perNode('meshwork_send_pump_rescues_total', 'Times an IO worker found queued frames by its safety-net timeout, not a wake-up (should stay 0: a bug to report).', (s) => s.pumpRescues)
    new Gauge({
      name: 'meshwork_ring_used_bytes',
      help: 'Bytes in use in each IO worker\'s inbound ring (worker → host).',
      labelNames: ['worker'] as const,
      registers,
      collect () {
        this.reset()
        for (const r of source.inboundRings()) this.set({ worker: String(r.worker) }, r.usedBytes)
      },
    })
    new Counter({
      name: 'meshwork_worker_restarts_total',
      help: 'IO workers restarted after a crash.',
      registers,
      collect () {
        this.reset()
        this.inc(source.workerRestarts())
      },
    })

    // Host event-loop delay, measured on the thread that created the mesh
    // (the host's main thread): the figure the worker design exists for.
    // One window per scrape, shared by the three gauges (like prom-client's
    // nodejs_eventloop_lag_*); the monitor starts at the first scrape.
    const eld = this.#eld
    let pendingWindow: Promise<EldWindow> | undefined
    const readWindow = async (): Promise<EldWindow> => {
      pendingWindow ??= eld.read().finally(() => { setImmediate(() => { pendingWindow = undefined }) })
      return await pendingWindow
    }
    new Gauge({
      name: 'meshwork_host_event_loop_delay_seconds',
      help: `Event-loop delay of the host's main thread since the previous scrape, by quantile (perf_hooks.monitorEventLoopDelay sampling every ${ELD_RESOLUTION_MS} ms, started by the first scrape).`,
      labelNames: ['quantile'] as const,
      registers,
      async collect () {
        const w = await readWindow()
        ELD_QUANTILES.forEach((q, i) => { this.set({ quantile: String(q) }, w.quantiles[i] ?? 0) })
      },
    })
    new Gauge({
      name: 'meshwork_host_event_loop_delay_max_seconds',
      help: 'Longest event-loop delay of the host\'s main thread since the previous scrape.',
      registers,
      async collect () { this.set((await readWindow()).max) },
    })
    new Gauge({
      name: 'meshwork_host_event_loop_delay_samples',
      help: 'Event-loop delay samples behind the quantiles (one per loop turn that ran the monitor\'s timer).',
      registers,
      async collect () { this.set((await readWindow()).samples) },
    })
    let elu: EventLoopUtilization = performance.eventLoopUtilization()
    new Gauge({
      name: 'meshwork_host_event_loop_utilization_ratio',
      help: 'Share of time the host\'s main thread was busy since the previous scrape (performance.eventLoopUtilization).',
      registers,
      collect () {
        const now = performance.eventLoopUtilization()
        this.set(performance.eventLoopUtilization(now, elu).utilization)
        elu = now
      },
    })
    for (const m of this.registry.getMetricsAsArray()) if (!before.has(m.name)) this.#names.push(m.name)
  }

  /**
   * Stop the host event-loop delay monitor and, in a host registry, remove
   * this mesh's series (so a later mesh can register there again). A private
   * registry keeps its series: `text()` still answers after close.
   * Idempotent. Without a call, the monitor stops when this object is
   * garbage collected (its timer never keeps the process alive).
   */
  close (): void {
    if (this.#closed) return
    this.#closed = true
    this.#eld.close()
    if (!this.#ownRegistry) for (const name of this.#names) this.registry.removeSingleMetric(name)
  }

  /** A heartbeat RTT sample (ms) for `peer`. */
  observeRtt (peer: string, rttMs: number): void {
    this.#rtt.observe({ peer }, rttMs / 1000)
  }

  /** Drop a forgotten peer's RTT histogram (the other per-peer series follow MetricsSource.peers()). */
  forgetPeer (peer: string): void {
    this.#rtt.remove({ peer })
  }

  /** Prometheus text exposition. */
  async text (): Promise<string> {
    return await this.registry.metrics()
  }
}
