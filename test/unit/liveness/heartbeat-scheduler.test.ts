import { describe, it, expect } from 'vitest'
import { HeartbeatScheduler, type HeartbeatClient, type SchedulerTimers } from '../../../src/liveness/heartbeat-scheduler.js'
import { HealthMonitor } from '../../../src/liveness/health-monitor.js'

/** A manual clock with one-shot timers, run in deadline order. */
class FakeClock implements SchedulerTimers {
  t = 0
  armed = 0
  #timers = new Map<number, { at: number; fn: () => void }>()
  #id = 0
  now = (): number => this.t
  setTimeout = (fn: () => void, ms: number): unknown => { const id = ++this.#id; this.armed++; this.#timers.set(id, { at: this.t + ms, fn }); return id }
  clearTimeout = (id: unknown): void => { this.#timers.delete(id as number) }
  get pending (): number { return this.#timers.size }
  /** Advance to `until`, firing due timers in order. */
  run (until: number): void {
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined
      for (const e of this.#timers) if (e[1].at <= until && (next === undefined || e[1].at < next[1].at)) next = e
      if (next === undefined) break
      this.#timers.delete(next[0])
      this.t = Math.max(this.t, next[1].at)
      next[1].fn()
    }
    this.t = until
  }
}

/** A connection-like client: a HealthMonitor whose pings are answered after `rtt` ms (unless dead). */
function client (sched: HeartbeatScheduler, clock: FakeClock, o: { rtt?: number; silentFrom?: number } = {}): { hm: HealthMonitor; pings: number[]; c: HeartbeatClient } {
  const hm = new HealthMonitor({ intervalMs: 1000, missesUnhealthy: 3, missesDead: 6 })
  const pings: number[] = []
  const drain = (): void => {
    for (let out = hm.poll(); out !== undefined; out = hm.poll()) {
      if (out.kind !== 'send-ping') continue
      pings.push(out.sentAt)
      // The pong arrives rtt later (fed at the next tick as a past input).
      if (o.silentFrom === undefined || out.sentAt < o.silentFrom) { const seq = out.seq; const at = out.sentAt + (o.rtt ?? 0.5); queueMicrotask(() => { hm.onPong(seq, at) }) }
    }
  }
  const c: HeartbeatClient = {
    heartbeatDeadline: () => hm.nextDeadline(),
    onHeartbeatTimer: (now) => { hm.tick(now); drain() },
  }
  hm.start(clock.now(), { gridOrigin: sched.origin })
  drain()
  sched.add(c)
  return { hm, pings, c }
}

describe('HeartbeatScheduler', () => {
  it('one timer for all connections: pings of clients started at different times leave in one wake-up per interval', async () => {
    const clock = new FakeClock()
    const sched = new HeartbeatScheduler(clock)
    const cs = []
    for (let i = 0; i < 15; i++) {
      clock.run(i * 37) // links come up at different moments
      cs.push(client(sched, clock))
      await Promise.resolve()
    }
    expect(clock.pending).toBe(1)
    const w0 = sched.wakeups
    for (let t = 1000; t <= 10_000; t += 1000) { clock.run(t); await Promise.resolve() }
    // 10 intervals: 10 wake-ups for 15 connections (was one timer per connection per beat).
    expect(sched.wakeups - w0).toBe(10)
    for (const { pings, hm } of cs) {
      expect(pings.slice(1)).toEqual([1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000, 10_000])
      expect(hm.state).toBe('healthy')
    }
    expect(clock.pending).toBe(1)
  })

  it('a silent peer is still declared dead on time, the others unaffected', async () => {
    const clock = new FakeClock()
    const sched = new HeartbeatScheduler(clock)
    const ok = client(sched, clock)
    const bad = client(sched, clock, { silentFrom: 2000 })
    // Last proof of life of `bad`: the pong of its 1000 ping, at 1000.5: unhealthy at 4000.5, dead at 7000.5.
    for (let t = 250; t <= 4000; t += 250) { clock.run(t); await Promise.resolve() }
    expect(bad.hm.state).toBe('healthy')
    clock.run(4001)
    expect(bad.hm.state).toBe('unhealthy')
    for (let t = 4250; t <= 7000; t += 250) { clock.run(t); await Promise.resolve() }
    expect(bad.hm.state).toBe('unhealthy')
    clock.run(7001)
    expect(bad.hm.state).toBe('dead')
    for (let t = 7250; t <= 12_000; t += 250) { clock.run(t); await Promise.resolve() }
    expect(ok.hm.state).toBe('healthy')
    expect(ok.hm.rttMs).toBe(0.5)
    expect(ok.pings.at(-1)).toBe(12_000)
  })

  it('a client due within the slack is ticked at its deadline and told the clock as read', () => {
    const clock = new FakeClock()
    const sched = new HeartbeatScheduler(clock)
    const seen: Array<[string, number, number]> = []
    sched.add({ heartbeatDeadline: () => seen.length === 0 ? 100 : Infinity, onHeartbeatTimer: (now, clock) => { seen.push(['a', now, clock]) } })
    sched.add({ heartbeatDeadline: () => seen.length < 2 ? 100.6 : Infinity, onHeartbeatTimer: (now, clock) => { seen.push(['b', now, clock]) } })
    clock.run(100)
    expect(seen).toEqual([['a', 100, 100], ['b', 100.6, 100]])
  })

  it('a deadline that moved earlier is honoured (wake), one that moved later costs at most one spurious wake-up', () => {
    const clock = new FakeClock()
    const sched = new HeartbeatScheduler(clock)
    let deadline = 5000
    const ticks: number[] = []
    const c: HeartbeatClient = { heartbeatDeadline: () => deadline, onHeartbeatTimer: (now) => { ticks.push(now); deadline = now + 5000 } }
    sched.add(c)
    deadline = 2000
    sched.wake(2000)
    clock.run(2000)
    expect(ticks).toEqual([2000])
    deadline = 9000 // moved later without telling: the timer armed for 7000 finds nothing due
    const w = sched.wakeups
    clock.run(8000)
    expect(ticks).toEqual([2000])
    expect(sched.wakeups - w).toBe(1)
    clock.run(9000)
    expect(ticks).toEqual([2000, 9000])
  })

  it('remove() and stop() leave no timer; a client removed while another is ticked is skipped', () => {
    const clock = new FakeClock()
    const sched = new HeartbeatScheduler(clock)
    const ticked: string[] = []
    const b: HeartbeatClient = { heartbeatDeadline: () => 100, onHeartbeatTimer: () => { ticked.push('b') } }
    const a: HeartbeatClient = { heartbeatDeadline: () => 100, onHeartbeatTimer: () => { ticked.push('a'); sched.remove(b) } }
    sched.add(a)
    sched.add(b)
    expect(sched.size).toBe(2)
    clock.run(100)
    expect(ticked).toEqual(['a'])
    sched.remove(a)
    expect(clock.pending).toBe(0)
    sched.add({ heartbeatDeadline: () => Infinity, onHeartbeatTimer: () => {} })
    expect(clock.pending).toBe(0) // never due: no timer
    sched.add(b)
    sched.stop()
    expect(clock.pending).toBe(0)
    expect(sched.size).toBe(0)
  })

  it('a client whose deadline does not advance is retried a millisecond later, not in a tight loop', () => {
    const clock = new FakeClock()
    const sched = new HeartbeatScheduler(clock)
    let n = 0
    sched.add({ heartbeatDeadline: () => 10, onHeartbeatTimer: () => { n++ } })
    clock.run(20)
    expect(n).toBe(11) // 10, 11, …, 20
  })
})
