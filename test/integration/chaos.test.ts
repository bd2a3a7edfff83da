// Issue 4's chaos run: 5 nodes in child processes, 20,000 reliable messages,
// senders killed with SIGKILL and restarted (same dataDir, same port),
// receivers stopped with SIGSTOP and resumed, all during the run. Counted at
// the receiving applications: 0 lost, 0 duplicated, 0 out of order.
import { describe, it, expect, afterEach } from 'vitest'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { spawnDeliveryNode, reply, nextMatching, kill9, killDeliveryChildren, type DeliveryChild } from '../helpers/delivery-child.js'

const dirs: string[] = []
afterEach(async () => {
  await killDeliveryChildren()
  await Promise.all(dirs.splice(0).map(async (d) => { await rm(d, { recursive: true, force: true }) }))
})

const TOTAL = 20_000
const RECEIVERS = 3
const SENDERS = 2
/** Per target and sender: ~13 s of sending without faults. */
const RATE_PER_S = 250
const NODE = {
  listen: 'ws://127.0.0.1:0',
  heartbeat: { intervalMs: 100, missesUnhealthy: 2, missesDead: 6 },
  reconnect: { initialDelayMs: 50, maxDelayMs: 500 },
}

/** A sender: restarted with the same dataDir and port, one incarnation per process. */
interface Sender {
  s: number
  dir: string
  log: string
  port: number
  inc: number
  node: DeliveryChild
  /** The current incarnation's 'chaos-done' (rejects when it is killed). */
  done: Promise<any>
  kills: number
}

/** Polls a state that has no event (a log file's growth) with a deadline. */
async function until (cond: () => Promise<boolean>, timeoutMs: number, label: string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await cond()) return
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting until ${label}`)
    await new Promise((resolve) => { setTimeout(resolve, 20) })
  }
}

/** The sends a sender's incarnations saw resolve, from its log: "<target> <inc> <i>" per line. */
async function readLog (file: string): Promise<Array<[number, number, number]>> {
  let text = ''
  try { text = await readFile(file, 'utf8') } catch { return [] }
  const out: Array<[number, number, number]> = []
  for (const line of text.split('\n')) {
    const f = line.split(' ')
    if (f.length === 3 && f[2] !== '') out.push([Number(f[0]), Number(f[1]), Number(f[2])])
  }
  return out
}

describe('chaos run (issue 4)', () => {
  it('20,000 reliable messages, 5 nodes, kill -9 + restart of senders and SIGSTOP of receivers: 0 lost, 0 duplicated, 0 out of order', async () => {
    const t0 = Date.now()
    // ---- receivers: report every message they get, in order, in batches ----
    const receivers = await Promise.all(Array.from({ length: RECEIVERS }, async () => await spawnDeliveryNode(NODE, { report: true })))
    /** Per receiver, per sender: [inc, i] in arrival order. */
    const got = receivers.map(() => Array.from({ length: SENDERS }, () => [] as Array<[number, number]>))
    let received = 0
    receivers.forEach((r, k) => {
      r.proc.on('message', (m: any) => {
        if (m?.type !== 'got') return
        for (const [s, inc, i] of m.batch as Array<[number, number, number]>) { got[k]![s]!.push([inc, i]); received++ }
      })
    })
    const targets = receivers.map((r) => r.id)
    const bootstrap = receivers.map((r) => `${r.id}@${r.addresses[0]!}`)
    // 20,000 in all: 3334 + 3333 + 3333 per sender.
    const perTarget = Array.from({ length: RECEIVERS }, (_, t) => Math.floor(TOTAL / SENDERS / RECEIVERS) + (t < (TOTAL / SENDERS) % RECEIVERS ? 1 : 0))
    expect(perTarget.reduce((a, b) => a + b, 0) * SENDERS).toBe(TOTAL)

    // ---- senders: durable outbox, restarted on the same port ----
    // A restarted sender does not wait for its links: a send to a peer it does not know yet waits for
    // that peer inside the fixture, one it knows (messages of it in the outbox) is queued for it.
    const start = async (sd: Sender, waitUp: boolean): Promise<void> => {
      if (waitUp) await reply(sd.node.proc, { type: 'wait-up', ids: targets, timeoutMs: 15_000 }, 'up', 20_000)
      sd.done = reply(sd.node.proc, { type: 'chaos-send', s: sd.s, inc: sd.inc, targets, perTarget, log: sd.log, ratePerS: RATE_PER_S }, 'chaos-done', 120_000)
      sd.done.catch(() => {}) // a killed incarnation's promise rejects; the last one is awaited below
    }
    const senders: Sender[] = await Promise.all(Array.from({ length: SENDERS }, async (_, s) => {
      const dir = await mkdtemp(join(tmpdir(), 'mw-chaos-'))
      dirs.push(dir)
      const node = await spawnDeliveryNode({ ...NODE, dataDir: join(dir, 'data'), bootstrap })
      return { s, dir, log: join(dir, 'sent.log'), port: Number(new URL(node.addresses[0]!).port), inc: 1, node, done: Promise.resolve(), kills: 0 }
    }))
    await Promise.all(senders.map(async (sd) => { await start(sd, true) }))

    const resolvedBy = async (sd: Sender): Promise<number> => (await readLog(sd.log)).length
    const stages: string[] = []
    /** Waits until the given senders (default: all) each had `fraction` of their sends resolved. */
    const atProgress = async (fraction: number, only: Sender[] = senders, mode: 'every' | 'some' = 'every'): Promise<void> => {
      const per = TOTAL / SENDERS
      await until(async () => (await Promise.all(only.map(resolvedBy)))[mode]((n) => n >= fraction * per), 60_000, `${fraction * 100} % of the sends resolved`)
      stages.push(`${fraction * 100}% @${((Date.now() - t0) / 1000).toFixed(1)}s`)
    }
    /** kill -9 a sender mid-run, restart it (same dataDir, same port) and wait until it is linked again to the receivers not stopped. */
    const restart = async (sd: Sender, stopped: DeliveryChild[] = []): Promise<void> => {
      // Mid-run only: a sender that already finished (a slow stage on a loaded
      // box) is not killed; the run asserts below that enough kills happened.
      if ((await readLog(sd.log)).length >= TOTAL / SENDERS) { stages.push(`no kill: sender ${sd.s} done`); return }
      await kill9(sd.node.proc)
      sd.kills++
      sd.inc++
      sd.node = await spawnDeliveryNode({ ...NODE, listen: `ws://127.0.0.1:${sd.port}`, dataDir: join(sd.dir, 'data'), bootstrap })
      await start(sd, false)
      const running = receivers.filter((r) => !stopped.includes(r))
      try {
        await reply(sd.node.proc, { type: 'wait-up', ids: running.map((r) => r.id), timeoutMs: 10_000 }, 'up', 12_000)
      } catch (err) {
        const views = await Promise.all([sd.node, ...running].map(async (n) => await reply(n.proc, { type: 'stats' }, 'stats', 2000).then((v) => ({ id: n.id, peers: v.peers, status: v.status }), (e: Error) => e.message)))
        throw new Error(`restarted sender ${sd.node.id} not re-linked within 10 s; views: ${JSON.stringify(views)}`, { cause: err })
      }
    }
    /**
     * Resolves when a sender sees stopped receiver `r` as `what`: its peer:down (or peer:health
     * unhealthy) event, or, should the link have been down already when the receiver was stopped,
     * that state in the sender's peers().
     */
    const senderSees = async (r: DeliveryChild, what: 'down' | 'unhealthy'): Promise<void> => {
      const pred = (m: any): boolean => what === 'down' ? (m?.type === 'peer:down' && m.id === r.id) : (m?.type === 'peer:health' && m.peer === r.id && m.state === 'unhealthy')
      const states = what === 'down' ? ['disconnected', 'failed'] : ['unhealthy', 'disconnected', 'failed']
      const ac = new AbortController()
      const polled = (async () => {
        while (!ac.signal.aborted) {
          const views = await Promise.all(senders.map(async (sd) => await reply(sd.node.proc, { type: 'stats' }, 'stats', 2000).catch(() => undefined)))
          if (views.some((v) => v?.peers?.some((p: any) => p.id === r.id && states.includes(p.state)) === true)) return
          await new Promise((resolve) => { setTimeout(resolve, 50) })
        }
        throw new Error('aborted')
      })()
      try {
        await Promise.any([polled, ...senders.map(async (sd) => await nextMatching(sd.node.proc, pred, 10_000, `a sender's ${what} for a stopped receiver`))])
      } catch (err) {
        // What the senders think of their links, for the failure report.
        const views = await Promise.all(senders.map(async (sd) => await reply(sd.node.proc, { type: 'stats' }, 'stats', 2000).catch((e: Error) => e.message)))
        throw new Error(`no sender saw ${what} for ${r.id} within 10 s; senders' views: ${JSON.stringify(views)}`, { cause: err })
      } finally {
        ac.abort()
      }
    }
    const [r0, r1, r2] = receivers as [DeliveryChild, DeliveryChild, DeliveryChild]

    // ---- the faults, at points of the run ----
    // 1. A receiver stopped long enough to be declared dead (heartbeat 100 ms × 6), then resumed.
    await atProgress(0.1, [senders[0]!])
    let seen = senderSees(r0, 'down')
    r0.proc.kill('SIGSTOP')
    await seen
    r0.proc.kill('SIGCONT')
    // 2. A sender killed and restarted.
    await atProgress(0.2, [senders[0]!])
    await restart(senders[0]!)
    // 3. A receiver stopped briefly: unhealthy, resumed before it is declared dead.
    await atProgress(0.35, [senders[1]!])
    seen = senderSees(r1, 'unhealthy')
    r1.proc.kill('SIGSTOP')
    await seen
    r1.proc.kill('SIGCONT')
    // 4. The other sender killed and restarted.
    await atProgress(0.45, [senders[1]!])
    await restart(senders[1]!)
    // 5. A sender killed and restarted while a receiver is stopped (it comes back to a peer that is away).
    await atProgress(0.6, [senders[0]!])
    seen = senderSees(r2, 'down')
    r2.proc.kill('SIGSTOP')
    await restart(senders[0]!, [r2])
    await seen
    r2.proc.kill('SIGCONT')
    // 6. Both senders killed at once and restarted (when the first gets to 75 %: both have sends left).
    await atProgress(0.75, senders, 'some')
    await Promise.all(senders.map(async (sd) => { await restart(sd) }))

    // ---- the run ends: every send resolved, then everything accepted arrives ----
    const results = await Promise.all(senders.map(async (sd) => await sd.done))
    const logs = await Promise.all(senders.map(async (sd) => await readLog(sd.log)))
    expect(logs.reduce((n, l) => n + l.length, 0)).toBe(TOTAL)
    const missing = (): number => {
      const have = got.map((bySender) => bySender.map((stream) => new Set(stream.map(([inc, i]) => `${inc}/${i}`))))
      return logs.reduce((n, log, s) => n + log.filter(([t, inc, i]) => have[t]?.[s]?.has(`${inc}/${i}`) !== true).length, 0)
    }
    await until(async () => received >= TOTAL && missing() === 0, 30_000, `every accepted message arrived (received ${received}, missing ${missing()})`)

    // ---- counted at the applications ----
    let lost = 0
    let duplicated = 0
    let outOfOrder = 0
    let extra = 0
    for (let k = 0; k < RECEIVERS; k++) {
      for (let s = 0; s < SENDERS; s++) {
        const stream = got[k]![s]!
        const keys = new Set<string>()
        for (let j = 0; j < stream.length; j++) {
          const [inc, i] = stream[j]!
          const key = `${inc}/${i}`
          if (keys.has(key)) duplicated++
          keys.add(key)
          const prev = stream[j - 1]
          // In order per (sender, receiver): (incarnation, index) strictly increasing.
          if (prev !== undefined && !(inc > prev[0] || (inc === prev[0] && i > prev[1]))) outOfOrder++
        }
        const logged = logs[s]!.filter(([t]) => t === k)
        const loggedKeys = new Set(logged.map(([, inc, i]) => `${inc}/${i}`))
        lost += logged.filter(([, inc, i]) => !keys.has(`${inc}/${i}`)).length
        // Sent by an incarnation killed before its send resolved: may arrive (once, in order), not counted.
        extra += [...keys].filter((key) => !loggedKeys.has(key)).length
      }
    }
    const elapsed = Date.now() - t0
    console.log(`chaos run: ${TOTAL} accepted, ${received} received (${extra} unconfirmed sends of killed incarnations also arrived), ` +
      `${senders.reduce((n, sd) => n + sd.kills, 0)} kill -9, 3 SIGSTOP; lost ${lost}, duplicated ${duplicated}, out of order ${outOfOrder}; ` +
      `stages ${stages.join(', ')}; retries after rejections ${results.reduce((n, r) => n + Number(r.rejected), 0)}; ${(elapsed / 1000).toFixed(1)} s`)
    expect({ lost, duplicated, outOfOrder }).toEqual({ lost: 0, duplicated: 0, outOfOrder: 0 })
    // 5 kills are planned; one may be skipped when a sender finished early (see restart).
    expect(senders.reduce((n, sd) => n + sd.kills, 0)).toBeGreaterThanOrEqual(4)
  }, 120_000)
})
