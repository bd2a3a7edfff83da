import { describe, it, expect } from 'vitest'
import fc from 'fast-check'
import { HealthMonitor, HealthState } from '../../../src/liveness/health-monitor.js'
import type { HealthConfig, HealthOutput } from '../../../src/liveness/health-monitor.js'
import { ErrorCode, MeshError } from '../../../src/errors.js'

const FAST: HealthConfig = { intervalMs: 100, missesUnhealthy: 3, missesDead: 6 }

type Ping = Extract<HealthOutput, { kind: 'send-ping' }>
type Transition = Extract<HealthOutput, { kind: 'transition' }>

/** Drain every queued output. */
function drain (hm: HealthMonitor): HealthOutput[] {
  const out: HealthOutput[] = []
  for (let o = hm.poll(); o !== undefined; o = hm.poll()) out.push(o)
  return out
}
const pings = (outs: HealthOutput[]): Ping[] => outs.filter((o): o is Ping => o.kind === 'send-ping')
const transitions = (outs: HealthOutput[]): Transition[] => outs.filter((o): o is Transition => o.kind === 'transition')
const states = (outs: HealthOutput[]): string[] => transitions(outs).map((t) => `${t.previous}->${t.state}`)

/** A started monitor with its first ping drained. */
function started (config: HealthConfig = FAST, at = 0): { hm: HealthMonitor, first: Ping } {
  const hm = new HealthMonitor(config)
  hm.start(at)
  const [first] = pings(drain(hm))
  if (first === undefined) throw new Error('start() queued no ping')
  return { hm, first }
}

/**
 * Drive the monitor the way its owner would: call tick() at each
 * nextDeadline() up to `until`, collecting outputs and the times they came out.
 */
function runUntil (hm: HealthMonitor, until: number): Array<{ at: number, out: HealthOutput }> {
  const log: Array<{ at: number, out: HealthOutput }> = []
  for (let guard = 0; guard < 100_000; guard++) {
    const d = hm.nextDeadline()
    if (d > until) return log
    hm.tick(d)
    for (const out of drain(hm)) log.push({ at: d, out })
  }
  throw new Error('runUntil: deadline did not advance')
}

describe('HealthMonitor config', () => {
  it.each([
    ['intervalMs 0', { intervalMs: 0 }, 'heartbeat.intervalMs'],
    ['intervalMs negative', { intervalMs: -5 }, 'heartbeat.intervalMs'],
    ['intervalMs NaN', { intervalMs: NaN }, 'heartbeat.intervalMs'],
    ['intervalMs Infinity', { intervalMs: Infinity }, 'heartbeat.intervalMs'],
    ['missesUnhealthy 0', { missesUnhealthy: 0 }, 'heartbeat.missesUnhealthy'],
    ['missesUnhealthy fractional', { missesUnhealthy: 1.5 }, 'heartbeat.missesUnhealthy'],
    ['missesDead equal to missesUnhealthy', { missesDead: 3 }, 'heartbeat.missesDead'],
    ['missesDead below missesUnhealthy', { missesDead: 2 }, 'heartbeat.missesDead'],
    ['missesDead fractional', { missesDead: 6.5 }, 'heartbeat.missesDead'],
  ])('rejects %s', (_name, patch, path) => {
    let err: unknown
    try { new HealthMonitor({ ...FAST, ...patch }) } catch (e) { err = e }
    expect(err).toBeInstanceOf(MeshError)
    expect((err as MeshError).code).toBe(ErrorCode.INVALID_OPTIONS)
    expect((err as MeshError).details).toEqual({ path })
    expect((err as MeshError).message).toContain(`options.${path}`)
  })

  it('accepts the documented defaults (1000 / 3 / 6) and a fractional interval', () => {
    expect(() => new HealthMonitor({ intervalMs: 1000, missesUnhealthy: 3, missesDead: 6 })).not.toThrow()
    expect(() => new HealthMonitor({ intervalMs: 12.5, missesUnhealthy: 1, missesDead: 2 })).not.toThrow()
  })

  it('exposes the state names as an as-const table', () => {
    expect(HealthState).toEqual({ HEALTHY: 'healthy', UNHEALTHY: 'unhealthy', DEAD: 'dead' })
  })
})

describe('HealthMonitor lifecycle', () => {
  it('is inert before start(): healthy, no outputs, no deadline', () => {
    const hm = new HealthMonitor(FAST)
    expect(hm.state).toBe('healthy')
    expect(hm.rttMs).toBeUndefined()
    expect(hm.nextDeadline()).toBe(Infinity)
    hm.tick(10_000)
    hm.onActivity(10_000)
    expect(hm.onPong(0, 10_000)).toBe(false)
    expect(hm.poll()).toBeUndefined()
    expect(hm.state).toBe('healthy')
  })

  it('start() queues the first ping at once and no transition', () => {
    const hm = new HealthMonitor(FAST)
    hm.start(5_000)
    expect(drain(hm)).toEqual([{ kind: 'send-ping', seq: 0, sentAt: 5_000 }])
    expect(hm.state).toBe('healthy')
    expect(hm.nextDeadline()).toBe(5_100)
  })

  it('a second start() is ignored', () => {
    const { hm } = started(FAST, 0)
    hm.start(50)
    expect(drain(hm)).toEqual([])
    expect(hm.nextDeadline()).toBe(100)
  })

  it('sends a ping every intervalMs with increasing seq, on a grid anchored at start', () => {
    const { hm, first } = started(FAST, 1_000)
    const ps: Ping[] = [first]
    for (let i = 0; i < 5; i++) {
      // keep it alive so only pings are due
      hm.onActivity(hm.nextDeadline() - 1)
      const d = hm.nextDeadline()
      hm.tick(d)
      ps.push(...pings(drain(hm)))
    }
    expect(ps.map((p) => p.seq)).toEqual([0, 1, 2, 3, 4, 5])
    expect(ps.map((p) => p.sentAt)).toEqual([1_000, 1_100, 1_200, 1_300, 1_400, 1_500])
  })

  it('counts pings sent, answered and lost (the link-cost loss figure): stale and duplicate pongs do not count', () => {
    const { hm, first } = started(FAST, 0)
    expect([hm.pingsSent, hm.pingsAnswered]).toEqual([1, 0])
    hm.onPong(first.seq, 5)
    hm.onPong(first.seq, 6) // duplicate
    expect([hm.pingsSent, hm.pingsAnswered]).toEqual([1, 1])
    const ps: Ping[] = []
    for (let i = 0; i < 3; i++) { hm.onActivity(hm.nextDeadline() - 1); hm.tick(hm.nextDeadline()); ps.push(...pings(drain(hm))) }
    expect(hm.pingsSent).toBe(4)
    expect(hm.pingsLost).toBe(0) // outstanding is not lost
    hm.onPong(ps[2]!.seq, 400) // answers the newest: the two before it are lost
    hm.onPong(ps[0]!.seq, 401) // stale
    expect([hm.pingsAnswered, hm.pingsLost]).toEqual([2, 2])
  })

  it('an early or repeated tick() is harmless', () => {
    const { hm } = started(FAST, 0)
    hm.tick(10)
    hm.tick(10)
    hm.tick(99)
    expect(drain(hm)).toEqual([])
    hm.tick(100)
    hm.tick(100)
    expect(pings(drain(hm)).map((p) => p.seq)).toEqual([1])
  })

  it('stop() is idempotent, drops queued outputs and ignores later inputs', () => {
    const { hm, first } = started(FAST, 0)
    expect(hm.onPong(first.seq, 20)).toBe(true)
    hm.tick(100) // queues a ping
    hm.stop()
    hm.stop()
    expect(hm.poll()).toBeUndefined()
    expect(hm.nextDeadline()).toBe(Infinity)
    hm.tick(10_000)
    hm.onActivity(10_000)
    expect(hm.onPong(1, 10_000)).toBe(false)
    expect(hm.poll()).toBeUndefined()
    expect(hm.state).toBe('healthy')
    // statistics stay readable after stop
    expect(hm.rttMs).toBe(20)
    expect(hm.rttStats().count).toBe(1)
    hm.start(20_000)
    expect(hm.poll()).toBeUndefined()
  })
})

describe('HealthMonitor RTT', () => {
  it('measures RTT from the ping send time of that seq', () => {
    const { hm, first } = started(FAST, 1_000)
    expect(hm.onPong(first.seq, 1_012)).toBe(true)
    expect(hm.rttMs).toBe(12)
    hm.tick(1_100)
    const [p1] = pings(drain(hm))
    expect(p1).toEqual({ kind: 'send-ping', seq: 1, sentAt: 1_100 })
    expect(hm.onPong(1, 1_137)).toBe(true)
    expect(hm.rttMs).toBe(37)
    expect(hm.rttStats().count).toBe(2)
  })

  it('times a ping from the clock as read when its tick is a deadline rounded up, not from the deadline', () => {
    // The scheduler ticks a deadline up to 1 ms ahead when its timer fires
    // that early. Timing the ping from the deadline made a pong that came back
    // within that fraction an RTT of 0 (and peers() then showed a stale RTT).
    const { hm, first } = started(FAST, 1_000)
    expect(hm.onPong(first.seq, 1_001)).toBe(true)
    hm.tick(1_100, 1_099.3)
    const [p1] = pings(drain(hm))
    expect(p1).toEqual({ kind: 'send-ping', seq: 1, sentAt: 1_099.3 })
    expect(hm.onPong(1, 1_099.7)).toBe(true)
    expect(hm.rttMs).toBeCloseTo(0.4, 9)
    // The grid stays where it was: the next ping is due at 1_200.
    expect(hm.nextDeadline()).toBe(1_200)
    // A late pong after a rounded-up tick: still clock − sentAt.
    hm.tick(1_200, 1_199.5)
    const [p2] = pings(drain(hm))
    expect(hm.onPong(p2!.seq, 1_203.5)).toBe(true)
    expect(hm.rttMs).toBeCloseTo(4, 9)
  })

  it('ignores unknown seqs (never sent) for RTT, but counts the pong as proof of life', () => {
    const { hm } = started(FAST, 0)
    hm.tick(300)
    expect(hm.state).toBe('unhealthy')
    drain(hm)
    expect(hm.onPong(999, 310)).toBe(false)
    expect(hm.rttMs).toBeUndefined()
    expect(hm.rttStats().count).toBe(0)
    expect(states(drain(hm))).toEqual(['unhealthy->healthy'])
    expect(hm.misses).toBe(0)
  })

  it('ignores duplicate and stale pongs: no sample, last RTT and state never move backwards', () => {
    const { hm } = started(FAST, 0) // seq 0 at 0
    hm.tick(100) // seq 1 at 100
    hm.tick(200) // seq 2 at 200
    drain(hm)
    expect(hm.onPong(2, 210)).toBe(true)
    expect(hm.rttMs).toBe(10)
    // seq 1 and 0 were sent before the newest answered one: stale
    expect(hm.onPong(1, 220)).toBe(false)
    expect(hm.onPong(0, 230)).toBe(false)
    // duplicate of the newest answered
    expect(hm.onPong(2, 240)).toBe(false)
    expect(hm.rttMs).toBe(10)
    expect(hm.rttStats().count).toBe(1)
    expect(hm.state).toBe('healthy')
    expect(drain(hm)).toEqual([])
  })

  it('a stale pong arriving while unhealthy revives (it is traffic) but gives no RTT', () => {
    const { hm } = started(FAST, 0)
    hm.tick(100)
    drain(hm)
    expect(hm.onPong(1, 105)).toBe(true) // rtt 5, alive at 105
    hm.tick(200)
    hm.tick(300)
    hm.tick(405) // 3 misses since 105
    expect(states(drain(hm))).toEqual(['healthy->unhealthy'])
    expect(hm.onPong(0, 410)).toBe(false)
    const [t] = transitions(drain(hm))
    expect(t).toEqual({ kind: 'transition', state: 'healthy', previous: 'unhealthy', rttMs: 5 })
  })

  it('answers pongs out of order: a newer pong makes older outstanding pings stale', () => {
    const { hm } = started(FAST, 0)
    hm.tick(100)
    hm.tick(200)
    drain(hm)
    expect(hm.onPong(1, 150)).toBe(true) // rtt 50; seq 0 now stale
    expect(hm.onPong(0, 160)).toBe(false)
    expect(hm.onPong(2, 230)).toBe(true)
    expect(hm.rttMs).toBe(30)
  })

  it('a clock that steps back never yields a negative RTT', () => {
    const { hm } = started(FAST, 1_000)
    expect(hm.onPong(0, 990)).toBe(true)
    expect(hm.rttMs).toBe(0)
    expect(hm.rttStats()).toMatchObject({ count: 1, max: 0 })
  })

  it('rttStats() is all zero before the first sample', () => {
    const { hm } = started()
    expect(hm.rttStats()).toEqual({ p50: 0, p90: 0, p99: 0, max: 0, count: 0 })
  })

  it('rttStats() reports p50/p90/p99/max in ms to 3 significant digits', () => {
    const { hm } = started({ intervalMs: 10, missesUnhealthy: 3, missesDead: 6 }, 0)
    // 100 samples: RTT k ms for k = 1..100 (each pong within its interval)
    let now = 0
    let seq = 0
    for (let k = 1; k <= 100; k++) {
      expect(hm.onPong(seq, now + k / 20)).toBe(true) // k/20 ms = 0.05..5 ms
      now += 10
      hm.tick(now)
      seq = pings(drain(hm))[0]!.seq
    }
    const s = hm.rttStats()
    expect(s.count).toBe(100)
    const near = (actual: number, expected: number): void => {
      expect(Math.abs(actual - expected) / expected).toBeLessThanOrEqual(0.001)
    }
    near(s.p50, 50 / 20)
    near(s.p90, 90 / 20)
    near(s.p99, 99 / 20)
    near(s.max, 100 / 20)
    expect(hm.rttMs).toBe(5)
  })

  // One monitor per peer link: its histogram was a flat 17,408-cell counts
  // array (68 KiB) from construction on, two thirds of an idle link's memory
  // in the IO worker (issue 2, RSS per idle link).
  it('keeps its RTT histogram small: nothing before the first sample, a few KiB after hours of heartbeats', () => {
    const { hm } = started({ intervalMs: 1_000, missesUnhealthy: 3, missesDead: 6 }, 0)
    expect(hm.rttHistogramBytes).toBe(0)
    let seq = 0
    let now = 0
    /** One heartbeat: the pong of ping `seq` after `rttMs`, then the next ping. */
    const beat = (rttMs: number): void => {
      expect(hm.onPong(seq, now + rttMs)).toBe(true)
      now += 1_000
      hm.tick(now)
      seq = pings(drain(hm))[0]!.seq
    }
    let x = 1
    const next = (): number => { x = (x * 48_271) % 2_147_483_647; return x } // deterministic pseudo-random
    // 20,000 heartbeats (5.5 h at 1 s), RTTs of a loopback or LAN link: 0.05..2 ms
    for (let i = 0; i < 20_000; i++) beat(0.05 + (next() % 1_950) / 1_000)
    expect(hm.rttStats().count).toBe(20_000)
    expect(hm.rttHistogramBytes).toBeGreaterThan(0)
    expect(hm.rttHistogramBytes).toBeLessThan(8 * 1024)
    // A link whose RTT wanders all over 0.05..25 ms still stays well under the flat array.
    for (let i = 0; i < 20_000; i++) beat(0.05 + (next() % 25_000) / 1_000)
    expect(hm.rttHistogramBytes).toBeLessThan(32 * 1024)
  })

  it('clamps an absurd RTT into the 60 s histogram range instead of throwing', () => {
    const { hm } = started({ intervalMs: 60_000, missesUnhealthy: 3, missesDead: 6 }, 0)
    expect(hm.onPong(0, 120_000)).toBe(true)
    expect(hm.rttMs).toBe(120_000)
    const s = hm.rttStats()
    expect(s.count).toBe(1)
    expect(s.max).toBeGreaterThanOrEqual(59_999)
    expect(s.max).toBeLessThanOrEqual(60_100)
  })

  it('forgets the oldest of more than 64 unanswered pings (bounded memory on a busy link)', () => {
    const { hm } = started(FAST, 0)
    for (let t = 100; t <= 100 * 80; t += 100) {
      hm.onActivity(t - 1) // traffic keeps it alive; pongs never come
      hm.tick(t)
    }
    const sent = pings(drain(hm))
    expect(sent.at(-1)!.seq).toBe(80)
    expect(hm.state).toBe('healthy')
    // 81 pings sent (seq 0..80); only the last 64 (17..80) are remembered
    expect(hm.onPong(16, 8_050)).toBe(false)
    expect(hm.onPong(17, 8_050)).toBe(true)
    expect(hm.rttMs).toBe(8_050 - 1_700)
  })
})

describe('HealthMonitor health state machine', () => {
  it('declares dead exactly at t + missesDead × intervalMs after the last proof of life (boundary)', () => {
    const { hm } = started(FAST, 0)
    const t = 1_234
    // link alive up to t
    for (const d of [100, 200, 300, 400, 500, 600, 700, 800, 900, 1_000, 1_100, 1_200]) {
      hm.onActivity(d - 50)
      hm.tick(d)
    }
    hm.onActivity(t)
    drain(hm)
    expect(hm.state).toBe('healthy')

    hm.tick(t + 299)
    expect(hm.state).toBe('healthy')
    hm.tick(t + 300)
    expect(hm.state).toBe('unhealthy')
    hm.tick(t + 599)
    expect(hm.state).toBe('unhealthy')
    expect(hm.misses).toBe(5)
    expect(hm.nextDeadline()).toBe(t + 600)
    hm.tick(t + 600)
    expect(hm.state).toBe('dead')
    expect(hm.misses).toBe(6)
    expect(states(drain(hm))).toEqual(['healthy->unhealthy', 'unhealthy->dead'])
  })

  it('an owner following nextDeadline() alone detects death exactly on the boundary', () => {
    const { hm, first } = started(FAST, 0)
    expect(hm.onPong(first.seq, 7)).toBe(true)
    hm.onActivity(1_234) // last proof of life, off the ping grid
    const log = runUntil(hm, 10_000)
    const trans = log.filter((e) => e.out.kind === 'transition')
    expect(trans.map((e) => [e.at, (e.out as Transition).state])).toEqual([
      [1_234 + 300, 'unhealthy'],
      [1_234 + 600, 'dead'],
    ])
    expect(trans[1]!.out).toEqual({ kind: 'transition', state: 'dead', previous: 'unhealthy', rttMs: 7 })
    // pings kept going on the grid while unhealthy, and stopped at death
    expect(log.filter((e) => e.out.kind === 'send-ping').map((e) => e.at).at(-1)).toBe(1_800)
    expect(hm.nextDeadline()).toBe(Infinity)
  })

  it('nextDeadline() is the earlier of the next ping and the next state-changing boundary', () => {
    const { hm } = started(FAST, 0) // 100 ms × 3 / 6
    expect(hm.nextDeadline()).toBe(100) // ping at 100 < unhealthy boundary at 300
    hm.onActivity(30)
    expect(hm.nextDeadline()).toBe(100)
    hm.tick(100)
    expect(hm.nextDeadline()).toBe(200)
    hm.tick(200)
    hm.tick(300)
    expect(hm.misses).toBe(2) // 30 → 300: two whole intervals; intermediate boundaries wake nobody
    expect(hm.nextDeadline()).toBe(330) // unhealthy boundary 30 + 300 < ping at 400
    hm.tick(330)
    expect(hm.state).toBe('unhealthy')
    expect(hm.misses).toBe(3)
    hm.tick(400)
    expect(hm.nextDeadline()).toBe(500) // ping; the dead boundary is 630
    hm.onActivity(450) // back to healthy: the next boundary is unhealthy again
    expect(hm.state).toBe('healthy')
    expect(hm.nextDeadline()).toBe(500)
    hm.tick(500)
    hm.tick(600)
    hm.tick(700)
    expect(hm.nextDeadline()).toBe(750)
  })

  it('a live link never wakes its owner between pings (proof of life pushes the boundary out)', () => {
    const { hm, first } = started({ intervalMs: 1000, missesUnhealthy: 3, missesDead: 6 }, 0)
    hm.onPong(first.seq, 1)
    const wakes: number[] = []
    for (let t = 0; t < 10_000;) {
      t = hm.nextDeadline()
      wakes.push(t)
      hm.tick(t)
      for (const o of drain(hm)) if (o.kind === 'send-ping') hm.onPong(o.seq, t + 0.5) // pong 0.5 ms later
    }
    expect(wakes).toEqual([1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000, 10_000])
  })

  it('start() with a grid origin aligns the second ping to origin + k × intervalMs', () => {
    const a = new HealthMonitor(FAST)
    a.start(1_234, { gridOrigin: 1_000 })
    expect(drain(a)).toEqual([{ kind: 'send-ping', seq: 0, sentAt: 1_234 }])
    expect(a.nextDeadline()).toBe(1_300)
    const b = new HealthMonitor(FAST)
    b.start(1_277, { gridOrigin: 1_000 })
    drain(b)
    expect(b.nextDeadline()).toBe(1_300) // same instant: one wake-up for both
    const c = new HealthMonitor(FAST)
    c.start(1_300, { gridOrigin: 1_000 }) // on the grid: the next slot, not now again
    drain(c)
    expect(c.nextDeadline()).toBe(1_400)
    a.tick(1_300)
    b.tick(1_300)
    expect(pings(drain(a))[0]!.sentAt).toBe(1_300)
    expect(a.nextDeadline()).toBe(1_400)
    expect(pings(drain(b))[0]!.sentAt).toBe(1_300)
  })

  it('one-way (ping: false): never pings, judged on the peer\'s pings, RTT from the peer', () => {
    const hm = new HealthMonitor(FAST)
    hm.start(0, { ping: false })
    expect(drain(hm)).toEqual([])
    expect(hm.nextDeadline()).toBe(300) // only the unhealthy boundary
    for (let t = 100; t <= 1_000; t += 100) {
      hm.onActivity(t) // the peer's ping
      expect(hm.nextDeadline()).toBe(t + 300)
    }
    hm.onRemoteRtt(0.75)
    hm.onRemoteRtt(Number.NaN) // ignored
    hm.onRemoteRtt(-1) // ignored
    expect(hm.rttMs).toBe(0.75)
    expect(hm.rttStats().count).toBe(1)
    // The peer falls silent after 1000: unhealthy at 1300, dead at 1600, and no ping ever.
    const log = runUntil(hm, 5_000)
    expect(log.map((e) => [e.at, e.out.kind === 'transition' ? e.out.state : e.out.kind])).toEqual([[1_300, 'unhealthy'], [1_600, 'dead']])
    expect((log[1]!.out as Transition).rttMs).toBe(0.75)
  })

  it('nextDeadline() agrees with the miss count for a fractional interval', () => {
    const cfg = { intervalMs: 0.1, missesUnhealthy: 3, missesDead: 6 }
    const { hm } = started(cfg, 0.3)
    const log = runUntil(hm, 100)
    const dead = log.find((e) => e.out.kind === 'transition' && e.out.state === 'dead')
    expect(dead).toBeDefined()
    expect(dead!.at).toBeCloseTo(0.3 + 0.6, 9)
    expect(dead!.at).toBeGreaterThanOrEqual(0.3 + 6 * 0.1 - 1e-12)
  })

  it('comes back from unhealthy to healthy on the next proof of life, with the last RTT', () => {
    const { hm, first } = started(FAST, 0)
    hm.onPong(first.seq, 20)
    hm.tick(320)
    expect(hm.state).toBe('unhealthy')
    hm.onActivity(330)
    expect(hm.state).toBe('healthy')
    expect(transitions(drain(hm))).toEqual([
      { kind: 'transition', state: 'unhealthy', previous: 'healthy', rttMs: 20 },
      { kind: 'transition', state: 'healthy', previous: 'unhealthy', rttMs: 20 },
    ])
    // miss counting restarts from 330
    expect(hm.nextDeadline()).toBe(400)
    hm.tick(629)
    expect(hm.state).toBe('healthy')
    hm.tick(630)
    expect(hm.state).toBe('unhealthy')
  })

  it('a pong that revives carries the fresh RTT in its transition', () => {
    const { hm } = started(FAST, 0)
    hm.tick(100)
    hm.tick(200)
    hm.tick(300)
    expect(hm.state).toBe('unhealthy')
    drain(hm)
    expect(hm.onPong(2, 340)).toBe(true)
    expect(transitions(drain(hm))).toEqual([
      { kind: 'transition', state: 'healthy', previous: 'unhealthy', rttMs: 140 },
    ])
  })

  it('traffic alone keeps a busy link healthy without any pong, and gives no RTT sample', () => {
    const { hm } = started(FAST, 0)
    let t = 0
    const all: HealthOutput[] = []
    while (t < 10_000) {
      t += 250 // a frame every 2.5 intervals: never 3 whole intervals of silence
      hm.tick(t - 1)
      hm.onActivity(t)
      hm.tick(t)
      all.push(...drain(hm))
    }
    expect(transitions(all)).toEqual([])
    expect(hm.state).toBe('healthy')
    expect(hm.rttMs).toBeUndefined()
    expect(hm.rttStats().count).toBe(0)
    // it still pings, for RTT: at least one per 250 ms step (ticks are that coarse here)
    expect(pings(all).length).toBeGreaterThanOrEqual(40)
  })

  it('dead is terminal: no more pings, inputs ignored, no deadline', () => {
    const { hm } = started(FAST, 0)
    hm.tick(600)
    expect(hm.state).toBe('dead')
    drain(hm)
    expect(hm.nextDeadline()).toBe(Infinity)
    hm.onActivity(601)
    expect(hm.onPong(0, 602)).toBe(false)
    hm.tick(10_000)
    expect(hm.state).toBe('dead')
    expect(hm.poll()).toBeUndefined()
  })

  it('a very late tick with no proof of life goes healthy -> dead in one transition', () => {
    const { hm } = started(FAST, 0)
    hm.tick(5_000)
    expect(transitions(drain(hm))).toEqual([
      { kind: 'transition', state: 'dead', previous: 'healthy', rttMs: undefined },
    ])
  })

  it('a late tick does not kill a peer whose proof of life was fed first (busy worker loop)', () => {
    const { hm } = started(FAST, 0)
    // The worker loop stalls from 50 to 900: the tick due at 100 runs at 900,
    // but a frame that arrived at 850 is processed first, as documented.
    hm.onActivity(850)
    hm.tick(900)
    expect(hm.state).toBe('healthy')
    expect(hm.misses).toBe(0)
    const outs = drain(hm)
    expect(transitions(outs)).toEqual([])
    // one catch-up ping, not a burst of 9, and the grid is kept
    expect(pings(outs)).toEqual([{ kind: 'send-ping', seq: 1, sentAt: 900 }])
    expect(hm.nextDeadline()).toBe(1_000) // the ping; the unhealthy boundary is 850 + 300
    hm.tick(950)
    hm.tick(1_000)
    expect(pings(drain(hm)).map((p) => p.sentAt)).toEqual([1_000])
  })

  it('a late pong (processed with its arrival time, before tick) also keeps the peer alive', () => {
    const { hm } = started(FAST, 0)
    hm.tick(100)
    drain(hm)
    // pong for seq 1 arrived at 640 but the loop only got to it at 700
    expect(hm.onPong(1, 640)).toBe(true)
    hm.tick(700)
    expect(hm.state).toBe('healthy')
    expect(hm.rttMs).toBe(540)
  })

  it('works with missesUnhealthy 1 / missesDead 2', () => {
    const { hm } = started({ intervalMs: 1_000, missesUnhealthy: 1, missesDead: 2 }, 0)
    hm.tick(999)
    expect(hm.state).toBe('healthy')
    hm.tick(1_000)
    expect(hm.state).toBe('unhealthy')
    hm.tick(1_999)
    expect(hm.state).toBe('unhealthy')
    hm.tick(2_000)
    expect(hm.state).toBe('dead')
  })

  it('with the defaults (1000 / 3 / 6) a silent peer is dead 6 s after the last frame', () => {
    const { hm } = started({ intervalMs: 1_000, missesUnhealthy: 3, missesDead: 6 }, 0)
    hm.onActivity(2_500)
    const log = runUntil(hm, 60_000)
    const trans = log.filter((e) => e.out.kind === 'transition').map((e) => [e.at, (e.out as Transition).state])
    expect(trans).toEqual([[5_500, 'unhealthy'], [8_500, 'dead']])
  })
})

describe('HealthMonitor with a simulated peer (quinn-style Pair)', () => {
  /**
   * Event-driven simulation: the owner's timer fires at nextDeadline(); each
   * ping is answered after `rttMs` until the peer goes silent at `silentAt`.
   * Inbound pongs due at a time are fed before the tick at that time.
   */
  function simulate (cfg: HealthConfig, rttMs: number, silentAt: number, until: number): {
    log: Array<{ at: number, out: HealthOutput }>, hm: HealthMonitor
  } {
    const hm = new HealthMonitor(cfg)
    const inflight: Array<{ at: number, seq: number }> = []
    const log: Array<{ at: number, out: HealthOutput }> = []
    const collect = (at: number): void => {
      for (const out of drain(hm)) {
        log.push({ at, out })
        if (out.kind === 'send-ping' && out.sentAt + rttMs / 2 < silentAt) inflight.push({ at: out.sentAt + rttMs, seq: out.seq })
      }
    }
    hm.start(0)
    collect(0)
    for (let guard = 0; guard < 100_000; guard++) {
      const deadline = hm.nextDeadline()
      const pong = inflight[0]
      const at = Math.min(deadline, pong?.at ?? Infinity)
      if (at > until || at === Infinity) break
      if (pong !== undefined && pong.at <= deadline) {
        inflight.shift()
        hm.onPong(pong.seq, pong.at)
      } else {
        hm.tick(at)
      }
      collect(at)
    }
    return { log, hm }
  }

  it('stays healthy with a live peer and measures its RTT', () => {
    const { log, hm } = simulate(FAST, 42, Infinity, 10_000)
    expect(log.filter((e) => e.out.kind === 'transition')).toEqual([])
    expect(hm.rttMs).toBe(42)
    const s = hm.rttStats()
    expect(s.count).toBe(100)
    expect(s.p50).toBeCloseTo(42, 1)
    expect(s.max).toBeCloseTo(42, 1)
  })

  it('a peer that goes silent is dead within missesDead intervals of its last pong', () => {
    // pings go out at 0,100,...; pongs come back 42 ms later; the peer stops answering at 1000
    const { log, hm } = simulate(FAST, 42, 1_000, 10_000)
    const lastPong = 900 + 42
    const trans = log.filter((e) => e.out.kind === 'transition').map((e) => [e.at, (e.out as Transition).state])
    expect(trans).toEqual([[lastPong + 300, 'unhealthy'], [lastPong + 600, 'dead']])
    expect(hm.state).toBe('dead')
  })

  it('a slow peer (RTT > missesUnhealthy intervals) flaps between unhealthy and healthy but never dies', () => {
    const { log, hm } = simulate(FAST, 350, Infinity, 5_000)
    const trans = log.filter((e) => e.out.kind === 'transition').map((e) => (e.out as Transition).state)
    expect(trans).not.toContain('dead')
    expect(hm.state).not.toBe('dead')
    expect(hm.rttMs).toBe(350)
  })
})

describe('HealthMonitor properties', () => {
  type Ev = { kind: 'tick' | 'activity' | 'pong', dt: number, seqBack: number }
  const evArb: fc.Arbitrary<Ev> = fc.record({
    kind: fc.constantFrom('tick' as const, 'activity' as const, 'pong' as const),
    dt: fc.integer({ min: 0, max: 400 }),
    seqBack: fc.integer({ min: -1, max: 5 }),
  })
  const cfgArb = fc.record({
    intervalMs: fc.integer({ min: 1, max: 200 }),
    missesUnhealthy: fc.integer({ min: 1, max: 4 }),
  }).chain((c) => fc.record({
    intervalMs: fc.constant(c.intervalMs),
    missesUnhealthy: fc.constant(c.missesUnhealthy),
    missesDead: fc.integer({ min: c.missesUnhealthy + 1, max: c.missesUnhealthy + 5 }),
  }))

  it('matches a reference model of the state machine on random schedules', () => {
    fc.assert(fc.property(cfgArb, fc.array(evArb, { maxLength: 200 }), (cfg, evs) => {
      const hm = new HealthMonitor(cfg)
      hm.start(0)
      let now = 0
      let lastAlive = 0
      let state: string = 'healthy'
      let nextSeq = 0
      let newest = -1
      const sentAt = new Map<number, number>()
      let rtt: number | undefined
      const apply = (outs: HealthOutput[]): void => {
        for (const o of outs) {
          if (o.kind === 'send-ping') {
            expect(o.seq).toBe(nextSeq++)
            expect(o.sentAt).toBe(now)
            sentAt.set(o.seq, o.sentAt)
          } else {
            // every transition is a real change, from the state we believed
            expect(o.previous).toBe(state)
            expect(o.state).not.toBe(o.previous)
            expect(o.rttMs).toBe(rtt)
            state = o.state
          }
        }
      }
      apply(drain(hm))
      for (const ev of evs) {
        now += ev.dt
        const wasDead = state === 'dead'
        if (ev.kind === 'tick') {
          const deadlineBefore = hm.nextDeadline()
          const stateBefore = state
          hm.tick(now)
          const outs = drain(hm)
          // nothing at all is due before the deadline it announced
          if (now < deadlineBefore) expect(outs).toEqual([])
          apply(outs)
          if (now < deadlineBefore) expect(state).toBe(stateBefore)
          if (!wasDead) {
            const misses = Math.floor((now - lastAlive) / cfg.intervalMs)
            const expected = misses >= cfg.missesDead ? 'dead' : misses >= cfg.missesUnhealthy ? 'unhealthy' : 'healthy'
            expect(state).toBe(expected)
            expect(hm.misses).toBe(misses)
          }
          if (state !== 'dead') expect(hm.nextDeadline()).toBeGreaterThan(now)
        } else if (ev.kind === 'activity') {
          hm.onActivity(now)
          apply(drain(hm))
          if (!wasDead) { lastAlive = now; expect(state).toBe('healthy') }
        } else {
          const seq = nextSeq - 1 - ev.seqBack // -1 → a never-sent seq
          const known = seq > newest && sentAt.has(seq) && nextSeq - seq <= 64
          const sampled = hm.onPong(seq, now)
          if (!wasDead) {
            expect(sampled).toBe(known)
            if (known) {
              rtt = now - sentAt.get(seq)!
              newest = seq
              for (const s of [...sentAt.keys()]) if (s <= seq) sentAt.delete(s)
            }
          }
          apply(drain(hm))
          if (!wasDead) { lastAlive = now; expect(state).toBe('healthy') }
        }
        if (wasDead) expect(state).toBe('dead')
        expect(hm.state).toBe(state)
        expect(hm.rttMs).toBe(rtt)
      }
    }), { numRuns: 300 })
  })
})
