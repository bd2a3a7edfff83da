// Whole-protocol behaviour of N Swim cores on the deterministic in-memory
// network of test/helpers/swim-sim.ts. Time is simulated: ten minutes of
// protocol run in well under a second of wall clock.
import { describe, it, expect } from 'vitest'
import { SwimSim } from '../../helpers/swim-sim.js'
import { suspicionBounds } from '../../../src/membership/swim.js'

// The sim's node config: period 100 ms, probe timeout 40 ms, k = 3,
// suspicionMult 4, suspicionMaxMult 6; one-way delay 1..5 ms.
const P = 100
const N = 10
const CFG = { protocolPeriodMs: P, suspicionMult: 4, suspicionMaxMult: 6, indirectProbes: 3 }
/** n = 10: floor 400 ms, ceiling 2400 ms, K = 3. */
const BOUNDS = suspicionBounds(N, CFG)

/**
 * Detection bound for a crash in a fully linked cluster of n:
 * - every survivor probes every linked member once per round of n − 1
 *   periods, so within one round K + 1 survivors have each failed a probe of
 *   the dead node (independent suspicions): (n − 1) × P;
 * - the last of those probes needs its own period to fail: + P;
 * - with K confirmations the Lifeguard timeout is at its floor: + minMs;
 * - the first `dead` verdict then reaches everyone by gossip: + 2 × P.
 * For n = 10, P = 100: 900 + 100 + 400 + 200 = 1600 ms.
 */
const DETECT_BOUND = (N - 1) * P + P + BOUNDS.minMs + 2 * P

function fullMesh (seed: number, opts: { loss?: number } = {}): { sim: SwimSim, ids: string[] } {
  const sim = new SwimSim({ seed, ...opts })
  const ids = sim.addNodes(N)
  sim.linkAll(ids)
  return { sim, ids }
}

const everyoneSees = (sim: SwimSim, id: string, state: string): boolean =>
  sim.running().filter((o) => o !== id).every((o) => sim.stateOf(o, id) === state)

describe('failure detection, 10 nodes fully linked, period 100 ms', () => {
  it('the detection bound is on the order of period + suspicion timeout, well under 3 s', () => {
    expect(BOUNDS).toEqual({ minMs: 400, maxMs: 2400, expected: 3 })
    expect(DETECT_BOUND).toBe(1600)
    expect(DETECT_BOUND).toBeLessThan(3000)
  })

  it.each([1, 2, 3, 4, 5, 6])('a killed node is marked dead by every other node within the bound (seed %i)', (seed) => {
    const { sim } = fullMesh(seed)
    sim.runFor(3000)
    expect(sim.memberEvents.filter((e) => e.state !== 'alive')).toEqual([]) // quiet start
    const killedAt = sim.now
    sim.kill('n3')
    const at = sim.runUntilTrue(() => everyoneSees(sim, 'n3', 'dead'), 10_000, 1)
    expect(at).toBeDefined()
    expect(at! - killedAt).toBeLessThanOrEqual(DETECT_BOUND)
    // Nobody else was suspected along the way.
    expect(sim.memberEvents.filter((e) => e.id !== 'n3' && e.state !== 'alive')).toEqual([])
    // Every survivor's verdict came no earlier than a failed probe could produce it.
    const firstSuspect = sim.memberEvents.find((e) => e.id === 'n3' && e.state === 'suspect')
    expect(firstSuspect!.at - killedAt).toBeGreaterThanOrEqual(40)
  })

  it('no false positives over 10 minutes of simulated time with 1 % message loss', () => {
    const { sim, ids } = fullMesh(42, { loss: 0.01 })
    sim.runFor(10 * 60_000)
    expect(sim.counters.dropped).toBeGreaterThan(1000) // the loss did happen
    expect(sim.memberEvents.filter((e) => e.state === 'dead' || e.state === 'left')).toEqual([])
    for (const o of ids) for (const t of ids) if (o !== t) expect(sim.stateOf(o, t)).toBe('alive')
    for (const o of ids) expect(sim.swim(o).status().state).toBe('healthy')
  })
})

describe('refutation', () => {
  // Less than the suspicion floor (400 ms for n = 10), the shortest time in
  // which anyone can be declared dead after its first suspicion.
  const PAUSE = BOUNDS.minMs - P / 2

  it.each([1, 2, 3, 4, 5])('a node paused for less than the suspicion timeout (350 ms) is never declared dead (seed %i)', (seed) => {
    const { sim } = fullMesh(seed)
    sim.runFor(3000)
    sim.pause('n4')
    sim.runFor(PAUSE)
    sim.resume('n4')
    sim.runFor(5000)
    expect(sim.memberEvents.filter((e) => e.state === 'dead')).toEqual([])
    expect(everyoneSees(sim, 'n4', 'alive')).toBe(true)
  })

  it.each([1, 2, 3, 4, 5])('a paused node resuming inside the suspicion window refutes; nobody ever reaches dead (seed %i)', (seed) => {
    const { sim } = fullMesh(seed)
    sim.runFor(3000)
    const before = sim.swim('n4').incarnation
    sim.pause('n4')
    // Frozen until its peers suspect it, then most of the suspicion floor more.
    const suspectedAt = sim.runUntilTrue(() => sim.memberEvents.some((e) => e.id === 'n4' && e.state === 'suspect'), 5000, 1)
    expect(suspectedAt).toBeDefined()
    sim.runFor(BOUNDS.minMs - P)
    sim.resume('n4')
    sim.runFor(5000)
    expect(sim.swim('n4').incarnation).toBeGreaterThan(before)
    expect(sim.swim('n4').stats().refutations).toBeGreaterThan(0)
    expect(sim.memberEvents.filter((e) => e.state === 'dead')).toEqual([])
    expect(everyoneSees(sim, 'n4', 'alive')).toBe(true)
    for (const o of sim.running()) expect(sim.swim(o).member('n4')?.incarnation ?? sim.swim(o).incarnation).toBe(sim.swim('n4').incarnation)
  })

  it('a node paused longer than the suspicion timeout is declared dead, then comes back alive by refuting', () => {
    const { sim } = fullMesh(7)
    sim.runFor(3000)
    sim.pause('n4')
    sim.runUntilTrue(() => everyoneSees(sim, 'n4', 'dead'), 10_000)
    expect(everyoneSees(sim, 'n4', 'dead')).toBe(true)
    sim.resume('n4')
    // The links stayed up: peers keep pinging it with the news, it refutes.
    const at = sim.runUntilTrue(() => everyoneSees(sim, 'n4', 'alive'), 5000)
    expect(at).toBeDefined()
  })
})

describe('restart', () => {
  it('a restarted node (same id, higher incarnation) is alive again everywhere', () => {
    const { sim } = fullMesh(11)
    sim.runFor(2000)
    const oldInc = sim.swim('n2').incarnation
    sim.kill('n2')
    sim.runUntilTrue(() => everyoneSees(sim, 'n2', 'dead'), 10_000)
    expect(everyoneSees(sim, 'n2', 'dead')).toBe(true)
    sim.runFor(1000)
    const fresh = sim.restart('n2')
    expect(fresh.incarnation).toBeGreaterThan(oldInc)
    const at = sim.runUntilTrue(() => sim.running().every((o) => o === 'n2' || (sim.stateOf(o, 'n2') === 'alive' && sim.swim(o).member('n2')?.incarnation === fresh.incarnation)), 5000)
    expect(at).toBeDefined()
    // ...and it knows everyone.
    sim.runFor(2000)
    expect(fresh.members().filter((m) => m.state === 'alive')).toHaveLength(N - 1)
    expect(sim.memberEvents.filter((e) => e.at >= at! && e.state !== 'alive')).toEqual([])
  })

  it('a quick restart (still suspected, not yet dead) supersedes the suspicion', () => {
    const { sim } = fullMesh(12)
    sim.runFor(2000)
    sim.kill('n2')
    sim.runUntilTrue(() => sim.memberEvents.some((e) => e.id === 'n2' && e.state === 'suspect'), 5000, 1)
    const fresh = sim.restart('n2')
    sim.runFor(3000)
    expect(everyoneSees(sim, 'n2', 'alive')).toBe(true)
    expect(sim.memberEvents.filter((e) => e.id === 'n2' && e.state === 'dead')).toEqual([])
    for (const o of sim.running()) if (o !== 'n2') expect(sim.swim(o).member('n2')?.incarnation).toBe(fresh.incarnation)
  })
})

describe('partial topologies converge via gossip', () => {
  it.each([
    ['ring', true],
    ['chain', false],
  ])('10-node %s: everyone learns everyone, then a crash is seen by all', (_name, ring) => {
    const sim = new SwimSim({ seed: 5 })
    const ids = sim.addNodes(N)
    sim.chain(ids, ring)
    // Only neighbours are linked; the rest must come by gossip.
    expect(sim.swim('n0').members()).toHaveLength(ring ? 2 : 1)
    const learned = sim.runUntilTrue(() => ids.every((o) => sim.swim(o).members().filter((m) => m.state === 'alive').length === N - 1), 10_000)
    expect(learned).toBeDefined()
    // Gossip-learned members with addresses were offered for dialing (the sim does not act on it).
    expect(sim.dials.length).toBeGreaterThan(0)
    // Kill a node whose removal keeps the rest connected (a ring survives any; a chain its end).
    const victim = ring ? 'n5' : 'n9'
    sim.kill(victim)
    const seen = sim.runUntilTrue(() => everyoneSees(sim, victim, 'dead'), 10_000)
    expect(seen).toBeDefined()
    // Probing is over links only: nodes far away never suspected anyone else.
    expect(sim.memberEvents.filter((e) => e.id !== victim && e.state === 'dead')).toEqual([])
  })

  it('a node whose only link goes down is suspected through the other links and declared dead', () => {
    const sim = new SwimSim({ seed: 9 })
    const ids = sim.addNodes(5)
    sim.linkAll(ids.slice(0, 4))
    sim.link('n4', 'n0') // n4 is a leaf hanging off n0
    sim.runFor(3000)
    expect(ids.every((o) => sim.swim(o).members().length === 4)).toBe(true)
    sim.unlink('n4', 'n0')
    sim.kill('n4')
    const at = sim.runUntilTrue(() => everyoneSees(sim, 'n4', 'dead'), 10_000)
    expect(at).toBeDefined()
  })

  it('autoDial: gossip-learned members get dialed, up to maxPeers', () => {
    const sim = new SwimSim({ seed: 3, autoDial: true, config: { maxPeers: 4 } })
    const ids = sim.addNodes(8)
    sim.chain(ids)
    sim.runFor(5000)
    for (const o of ids) {
      const links = ids.filter((x) => x !== o && sim.linked(o, x)).length
      expect(links).toBeGreaterThanOrEqual(1)
      // Each node dials at most maxPeers − its links; being dialed is not capped here.
      expect(sim.dials.filter((d) => d.observer === o).length).toBeLessThanOrEqual(4)
    }
    expect(ids.every((o) => sim.swim(o).members().filter((m) => m.state === 'alive').length === 7)).toBe(true)
  })
})

describe('partitions and leaving', () => {
  it('a healed partition (links kept up) brings everyone back alive', () => {
    const { sim, ids } = fullMesh(21)
    sim.runFor(2000)
    const heal = sim.partition(ids.slice(0, 5), ids.slice(5))
    sim.runFor(5000)
    expect(sim.stateOf('n0', 'n9')).toBe('dead')
    expect(sim.stateOf('n9', 'n0')).toBe('dead')
    expect(sim.swim('n0').status()).toMatchObject({ state: 'critical', unreachable: 5 })
    heal()
    const at = sim.runUntilTrue(() => ids.every((o) => sim.swim(o).status().state === 'healthy'), 10_000)
    expect(at).toBeDefined()
  })

  it('a node that leaves is seen as left, never dead', () => {
    const { sim } = fullMesh(31)
    sim.runFor(2000)
    sim.swim('n6').leave(sim.now)
    sim.runFor(1000)
    sim.kill('n6') // closes after spreading the news
    sim.runFor(5000)
    expect(everyoneSees(sim, 'n6', 'left')).toBe(true)
    expect(sim.memberEvents.filter((e) => e.id === 'n6' && (e.state === 'dead' || e.state === 'suspect'))).toEqual([])
    for (const o of sim.running()) expect(sim.swim(o).status()).toMatchObject({ state: 'healthy', members: N - 2 })
  })
})

describe('determinism', () => {
  it('the same seed replays the same run', () => {
    const run = (): string => {
      const { sim } = fullMesh(77, { loss: 0.05 })
      sim.runFor(2000)
      sim.kill('n1')
      sim.runFor(3000)
      return JSON.stringify([sim.counters, sim.memberEvents])
    }
    expect(run()).toBe(run())
  })
})
