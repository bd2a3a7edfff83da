/**
 * Perf child process for the `stall` scenario: one meshwork node per
 * process, joined by bootstrap + discovery, with
 *
 * - an event log of every `peer:up`, `peer:down`, `peer:health` and `status`
 *   (stamped in the listener itself, epoch ms),
 * - a stall loop that blocks THIS process's main thread with a synchronous
 *   busy loop (`stallLoop`; the IO and router workers keep running),
 * - a send loop of small sequenced messages to one peer (`sendLoop`), and a
 *   receive log of such messages (sender, seq, send and receive time), so the
 *   scenario can tell which messages were sent while the receiver's host was
 *   blocked and when they were delivered.
 *
 * Driven over IPC (../lib/ipc.ts); not meant to be run by hand.
 *
 * @module
 */
import { performance } from 'node:perf_hooks'
import { createMesh, type Mesh, type MeshOptions, type PeerState } from '../../src/index.js'
import { serve, type EldSummary } from '../lib/ipc.js'
import { EldRecorder, epochMs, round, sleep } from '../lib/measure.js'

type Kind = 'up' | 'down' | 'health' | 'status'
/** One event of this node; `t` is epoch ms taken in the listener. */
export interface StallEv { readonly kind: Kind; readonly peer: string; readonly state: string | undefined; readonly previous: string | undefined; readonly t: number }

/** Payload of a `sendLoop` message. */
interface Probe { readonly stallProbe: true; readonly seq: number; readonly sentAt: number }

/** Per-sender receive log, columns as arrays (thousands of messages). */
interface RecvLog { seq: number[]; sentAt: number[]; recvAt: number[] }

let mesh: Mesh | undefined
const events: StallEv[] = []
const received = new Map<string, RecvLog>()
let armedAt = Number.POSITIVE_INFINITY

function node (): Mesh {
  if (mesh === undefined) throw new Error('start first')
  return mesh
}

function isProbe (p: unknown): p is Probe {
  return typeof p === 'object' && p !== null && (p as Probe).stallProbe === true
}

/** Resolves at epoch-free `performance.now()` instant `at` (or at once if it passed). */
async function sleepUntil (at: number): Promise<void> {
  const left = at - performance.now()
  if (left > 0) await sleep(left)
}

const api = {
  /** Create this process's node; `bootstrap` as in MeshOptions (omit for the seed). */
  async start (a: { bootstrap?: string[]; heartbeat?: MeshOptions['heartbeat'] }): Promise<{ id: string; addresses: string[] }> {
    if (mesh !== undefined) throw new Error('already started')
    const m = await createMesh({
      listen: 'ws://127.0.0.1:0',
      logger: false,
      ...(a.bootstrap === undefined ? {} : { bootstrap: a.bootstrap }),
      ...(a.heartbeat === undefined ? {} : { heartbeat: a.heartbeat }),
    })
    mesh = m
    m.on('peer:up', (p) => { events.push({ kind: 'up', peer: p.id, state: p.state, previous: undefined, t: epochMs() }) })
    m.on('peer:down', (p) => { events.push({ kind: 'down', peer: p.id, state: p.state, previous: undefined, t: epochMs() }) })
    m.on('peer:health', (h) => { events.push({ kind: 'health', peer: h.peer, state: h.state, previous: h.previous, t: epochMs() }) })
    m.on('status', (s) => { events.push({ kind: 'status', peer: '', state: `${s.state} ${s.reachable}/${s.members}`, previous: undefined, t: epochMs() }) })
    m.on('message', (msg) => {
      if (!isProbe(msg.payload)) return
      let r = received.get(msg.from)
      if (r === undefined) { r = { seq: [], sentAt: [], recvAt: [] }; received.set(msg.from, r) }
      r.seq.push(msg.payload.seq)
      r.sentAt.push(msg.payload.sentAt)
      r.recvAt.push(epochMs())
    })
    m.on('error', () => { /* counted by the mesh's own metrics; the scenario looks at peer events */ })
    return { id: m.id, addresses: m.addresses }
  },

  /**
   * Resolves once this node has a healthy link to every id in `ids` (its own
   * excepted) and its membership view is `healthy` with all of them in it.
   */
  async waitLinked (a: { ids: string[]; timeoutMs: number }): Promise<{ ms: number }> {
    const m = node()
    const t0 = performance.now()
    const others = a.ids.filter((id) => id !== m.id)
    for (;;) {
      const healthy = new Set(m.peers().filter((p) => p.state === 'healthy').map((p) => p.id))
      const st = m.status()
      const missing = others.filter((id) => !healthy.has(id))
      if (missing.length === 0 && st.state === 'healthy' && st.members >= others.length) return { ms: round(performance.now() - t0, 1) }
      if (performance.now() - t0 > a.timeoutMs) {
        throw new Error(`${missing.length} of ${others.length} link(s) not healthy after ${a.timeoutMs} ms; status ${st.state} ${st.reachable}/${st.members}`)
      }
      await sleep(20)
    }
  },

  /** Start of the measured window: events before it (mesh formation) are not counted. */
  arm (): { epochMs: number } {
    armedAt = epochMs()
    return { epochMs: armedAt }
  },

  /**
   * Block this host's main thread for `stallMs` (a synchronous busy loop)
   * every `everyMs`, the first at `everyMs / 2`, for `durationMs`. Returns
   * each stall's start (epoch ms) and measured length, and this thread's
   * event-loop delay over the run (its max shows the stalls happened).
   */
  async stallLoop (a: { everyMs: number; stallMs: number; durationMs: number }): Promise<{ stalls: Array<{ at: number; ms: number }>; eld: EldSummary }> {
    const eld = new EldRecorder()
    eld.start()
    const t0 = performance.now()
    const stalls: Array<{ at: number; ms: number }> = []
    // Stall k starts at t0 + everyMs/2 + k·everyMs: fixed targets, so a late timer does not stretch the period.
    for (let k = 0; ; k++) {
      const at = t0 + a.everyMs / 2 + k * a.everyMs
      if (at + a.stallMs > t0 + a.durationMs) break
      await sleepUntil(at)
      const s = performance.now()
      const end = s + a.stallMs
      while (performance.now() < end) { /* spin: the host is busy */ }
      stalls.push({ at: epochMs(s), ms: round(performance.now() - s, 1) })
    }
    await sleepUntil(t0 + a.durationMs)
    return { stalls, eld: eld.stop() }
  },

  /**
   * Send a sequenced probe to `to` every `everyMs` for `durationMs` (fixed
   * targets; a late timer sends once, it does not burst). `send` resolves
   * when queued; rejections are counted, not thrown.
   */
  async sendLoop (a: { to: string; everyMs: number; durationMs: number }): Promise<{ sent: number; failed: number; errors: string[] }> {
    const m = node()
    const t0 = performance.now()
    let sent = 0
    let failed = 0
    const errors: string[] = []
    const pending: Array<Promise<unknown>> = []
    for (let next = t0; next < t0 + a.durationMs; next += a.everyMs) {
      await sleepUntil(next)
      if (performance.now() - next > a.everyMs) next = performance.now() // fell behind: do not catch up in a burst
      const seq = sent++
      const probe: Probe = { stallProbe: true, seq, sentAt: epochMs() }
      pending.push(m.send(a.to, probe).catch((err: unknown) => {
        failed++
        if (errors.length < 5) errors.push(String((err as Error)?.message ?? err))
      }))
    }
    await Promise.all(pending)
    return { sent, failed, errors }
  },

  /** Resolves once `expected[from]` probes from each sender were received (or throws after `timeoutMs`). */
  async waitReceived (a: { expected: Record<string, number>; timeoutMs: number }): Promise<{ ms: number }> {
    const t0 = performance.now()
    for (;;) {
      const short = Object.entries(a.expected).filter(([from, n]) => (received.get(from)?.seq.length ?? 0) < n)
      if (short.length === 0) return { ms: round(performance.now() - t0, 1) }
      if (performance.now() - t0 > a.timeoutMs) {
        throw new Error(`probes missing after ${a.timeoutMs} ms: ${short.map(([f, n]) => `${f.slice(0, 8)}… ${received.get(f)?.seq.length ?? 0}/${n}`).join(', ')}`)
      }
      await sleep(20)
    }
  },

  /**
   * Everything logged since `arm()`: events, the probes received (per
   * sender: seq, sent and receive epoch ms), and the current peer states.
   */
  report (): { events: StallEv[]; received: Record<string, RecvLog>; peers: Array<{ id: string; state: PeerState }>; status: string } {
    const m = node()
    const st = m.status()
    return {
      events: events.filter((e) => e.t >= armedAt),
      received: Object.fromEntries(received),
      peers: m.peers().map((p) => ({ id: p.id, state: p.state })),
      status: `${st.state} ${st.reachable}/${st.members}`,
    }
  },
}

export type StallNodeApi = typeof api

serve(api, {
  onExit: async () => { await mesh?.close() },
})
