// delivery.forgetAfterMs: a node drops what it keeps for a peer that left
// the mesh (its queues, its IO worker actor, its metric series), keeping
// only where the two streams stand, so that a peer met again loses and
// repeats nothing. The departed peer is a child process (stopped or killed):
// a peer in this process would find its way back at once through the
// addresses gossip gave it.
import { afterEach, describe, expect, it } from 'vitest'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ChildProcess } from 'node:child_process'
import { pino, type Logger } from 'pino'
import { closeAll, makeMesh, until, waitFor } from '../helpers/mesh.js'
import { killChildren, request, spawnNode } from '../helpers/child-node.js'
import type { Mesh } from '../../dist/src/index.js'
import { OutboxStore } from '../../dist/src/delivery/outbox-store.js'

const FAST = { heartbeat: { intervalMs: 50, missesUnhealthy: 2, missesDead: 4 }, reconnect: { initialDelayMs: 20, maxDelayMs: 200 } }
const dirs: string[] = []

afterEach(async () => {
  await killChildren()
  await closeAll()
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

const range = (a: number, b: number): number[] => Array.from({ length: b - a + 1 }, (_, i) => a + i)

/** Payloads `m` got from `from` from now on. */
function inbox (m: Mesh, from: () => string): number[] {
  const got: number[] = []
  m.on('message', (msg) => { if (msg.from === from()) got.push(msg.payload as number) })
  return got
}

/** Payloads the child got from `from` from now on. */
function childInbox (proc: ChildProcess, from: string): number[] {
  const got: number[] = []
  proc.on('message', (m: any) => { if (m?.type === 'message' && m.from === from) got.push(m.payload as number) })
  return got
}


const knows = (m: Mesh, id: string): boolean => m.peers().some((p) => p.id === id)
const healthy = (m: Mesh, id: string): boolean => m.peers().some((p) => p.id === id && p.state === 'healthy')

/** A debug logger whose records collect in `logs`. */
function debugLog (): { logs: Array<Record<string, any>>; logger: Logger } {
  const logs: Array<Record<string, any>> = []
  return { logs, logger: pino({ level: 'debug' }, { write: (line: string) => { logs.push(JSON.parse(line)) } }) }
}

/** SIGSTOP a child peer and wait until `a` has lost it. */
async function stop (a: Mesh, peer: { id: string; proc: ChildProcess }): Promise<void> {
  peer.proc.kill('SIGSTOP')
  await waitFor(a, 'peer:down', { filter: (p: { id: string }) => p.id === peer.id, label: `${a.id} loses ${peer.id}` })
}

/** Until `a`'s log says membership forgot `id`. */
async function membershipForgets (logs: Array<Record<string, any>>, id: string): Promise<void> {
  await until(() => logs.some((r) => r.event === 'member:forgotten' && r.peer === id), { timeoutMs: 5_000, label: `membership forgets ${id}` })
}

/** SIGCONT a stopped child peer and wait until `a` has it linked again. */
async function resume (a: Mesh, peer: { id: string; proc: ChildProcess }): Promise<void> {
  const up = waitFor(a, 'peer:up', { filter: (p: { id: string }) => p.id === peer.id, timeoutMs: 10_000, label: `${a.id} sees ${peer.id} again` })
  peer.proc.kill('SIGCONT')
  await up
}

/** `m` no longer knows `id`, and none of its IO workers holds an actor for it. */
async function forgotten (m: Mesh, id: string): Promise<void> {
  await until(async () => !knows(m, id) && !await m._hasActor(id), { timeoutMs: 10_000, label: () => `${m.id} still keeps ${id}: ${JSON.stringify(m.peers())}, ${JSON.stringify(m._ringStats().outbound[id])}` })
}

describe('forgetting a departed peer (delivery.forgetAfterMs)', () => {
  it('drops the peer (queues, actor, metric series) and, when it is back, goes on with its stream to it where it stood', async () => {
    // b keeps its state for a (forgetAfterMs ~25 days) across a 1 s+ stop: a
    // must not restart its stream to b at 1 after forgetting b, or b takes
    // every new message as a duplicate (and acknowledges it: silent loss).
    const a = await makeMesh({ ...FAST, delivery: { forgetAfterMs: 300 } })
    const b = await spawnNode({ ...FAST, listen: false, bootstrap: [a.addresses[0]], delivery: { forgetAfterMs: 2 ** 31 - 1 } })
    const bGot = childInbox(b.proc, a.id)
    await until(() => healthy(a, b.id), { label: 'a sees b' })
    for (const i of range(1, 20)) await a.send(b.id, i, { ack: true })
    expect(bGot).toEqual(range(1, 20))
    expect(await a.metrics()).toContain(b.id)

    b.proc.kill('SIGSTOP')
    const stoppedAt = Date.now()
    await forgotten(a, b.id)
    expect(Date.now() - stoppedAt).toBeGreaterThanOrEqual(300) // dead first, then forgetAfterMs
    expect(a._deliveryStats().peers[b.id]).toBeUndefined()
    expect(a._ringStats().outbound[b.id]).toBeUndefined()
    expect(await a.metrics()).not.toContain(b.id)
    await expect(a.send(b.id, 0)).rejects.toMatchObject({ code: 'UNKNOWN_PEER' })
    // A subscription made while b is forgotten reaches b once it is back (with the whole set, at peer:up).
    const news: unknown[] = []
    a.subscribe('news', (m) => { news.push(m.payload) })

    await resume(a, b)
    for (const i of range(21, 30)) await a.send(b.id, i, { ack: true })
    await until(() => bGot.length >= 30, { timeoutMs: 5_000, label: () => `b got ${JSON.stringify(bGot)}` })
    expect(bGot).toEqual(range(1, 30))
    // (a's subscription went to b ahead of the messages above, in one stream: b knows it by now.)
    await request(b.proc, { type: 'publish', topic: 'news', payload: 'hello' }, 'published')
    await until(() => news.length > 0, { timeoutMs: 5_000, label: 'b publishes to a\'s topic' })
    expect(news).toEqual(['hello'])
    // (Every link-up also queues the mesh's own subscription update: more than 30, where a stream restarted at 1 would stand at about 10.)
    expect(a._deliveryStats().peers[b.id]?.sent).toBeGreaterThan(30)
  }, 30_000)

  it('beyond the forgotten peers it keeps positions for, one that comes back still gets every new message (its stream goes on after every number used)', async () => {
    // (retainMs: d is sent nothing; a's subscription update to it may be unacknowledged when it stops.)
    const a = await makeMesh({ ...FAST, delivery: { forgetAfterMs: 300, retainMs: 1_000 } })
    a._setMaxForgotten(1)
    const opts = { ...FAST, listen: false, bootstrap: [a.addresses[0]], delivery: { forgetAfterMs: 2 ** 31 - 1 } }
    const [b, c, d] = await Promise.all([spawnNode(opts), spawnNode(opts), spawnNode(opts)])
    const bGot = childInbox(b.proc, a.id)
    await until(() => healthy(a, b.id) && healthy(a, c.id) && healthy(a, d.id), { timeoutMs: 10_000, label: 'a sees b, c and d' })
    for (const i of range(1, 5)) await a.send(b.id, i, { ack: true })
    for (const i of range(1, 30)) await a.send(c.id, i, { ack: true })
    // Forgotten in the order c, b, d, one record kept: c's goes first (the floor rises past
    // b's position to c's 30-odd), then b's. b's stream then starts above where b stands.
    for (const x of [c, b, d]) {
      x.proc.kill('SIGSTOP')
      await forgotten(a, x.id)
    }
    await resume(a, b)
    for (const i of range(6, 10)) await a.send(b.id, i, { ack: true })
    await until(() => bGot.length >= 10, { timeoutMs: 5_000, label: () => `b got ${JSON.stringify(bGot)}` })
    expect(bGot).toEqual(range(1, 10))
    expect(a._deliveryStats().peers[b.id]?.sent).toBeGreaterThan(30)
  }, 30_000)

  it('remembers how far it got with the peer\'s stream: what a restarted peer resends from its outbox is not delivered twice', async () => {
    // (retainMs: a's subscription update to b, queued at link-up, may be unacknowledged when b dies; it holds b's entry until it expires.)
    const a = await makeMesh({ ...FAST, delivery: { forgetAfterMs: 300, retainMs: 1_000 } })
    const dataDir = mkdtempSync(join(tmpdir(), 'meshwork-forget-'))
    dirs.push(dataDir)
    const opts = { ...FAST, listen: false, bootstrap: [a.addresses[0]], dataDir }
    let b = await spawnNode(opts)
    const bId = b.id
    const aGot = inbox(a, () => bId)
    await until(() => healthy(a, bId), { label: 'a sees b' })
    // b dies the moment a's application takes its 20th message: a's ACK for it
    // (sent once the listener returns) never reaches b, whose durable outbox
    // keeps it to send again.
    const victim = b.proc
    a.on('message', (m) => { if (m.from === bId && m.payload === 20) victim.kill('SIGKILL') })
    for (const i of range(1, 19)) await request(b.proc, { type: 'send', to: a.id, payload: i }, 'sent')
    // (Not waiting for b's 'sent': b may be dead before it says so. A message leaves b only once committed.)
    b.proc.send({ type: 'send', to: a.id, payload: 20 })
    await until(() => aGot.length >= 20, { label: () => `a got ${aGot.length}/20` })
    await forgotten(a, bId)
    // b's outbox holds messages a took but never acknowledged (else this test proves nothing): b resends them.
    const store = await OutboxStore.open(dataDir)
    try {
      expect(store.size()).toBeGreaterThan(0)
    } finally {
      await store.close()
    }

    b = await spawnNode(opts)
    expect(b.id).toBe(bId)
    await until(() => healthy(a, bId), { timeoutMs: 10_000, label: 'a sees b again' })
    await request(b.proc, { type: 'send', to: a.id, payload: 21 }, 'sent')
    await until(() => aGot.length >= 21, { timeoutMs: 5_000, label: () => `a got ${JSON.stringify(aGot)}` })
    // b's outbox still held what a had taken unacknowledged (about the last 10): a's first
    // ACK on the new link says it has them (or, were b quicker, a drops them as duplicates).
    expect(aGot).toEqual(range(1, 21))
  }, 30_000)

  it('keeps a forgotten peer while messages to it are queued, and drops it once they expired (undelivered)', async () => {
    const { logs, logger } = debugLog()
    const a = await makeMesh({ ...FAST, logger, delivery: { forgetAfterMs: 200, retainMs: 2_000 } })
    const b = await spawnNode({ ...FAST, listen: false, bootstrap: [a.addresses[0]] })
    await until(() => healthy(a, b.id), { label: 'a sees b' })
    await stop(a, b)
    const id = await a.send(b.id, 'held')
    let keptUntilExpiry = false
    a.on('undelivered', (u) => { if (u.to === b.id && u.id === id) keptUntilExpiry = knows(a, b.id) })
    // Once membership forgot b, a subscription change is not queued to it (it
    // would hold b for another retainMs; b gets the whole set when it is back).
    await membershipForgets(logs, b.id)
    expect(knows(a, b.id)).toBe(true)
    const written = a._ringStats().outbound[b.id]?.recordsWritten
    a.subscribe('news', () => {})
    expect(a._ringStats().outbound[b.id]?.recordsWritten).toBe(written)
    await forgotten(a, b.id)
    expect(keptUntilExpiry).toBe(true)
    const at = (event: string, extra: (r: Record<string, any>) => boolean = () => true): number => {
      const r = logs.find((x) => x.event === event && x.peer === b.id && extra(x))
      if (r === undefined) throw new Error(`no ${event} record for b in ${JSON.stringify(logs.map((x) => x.event))}`)
      return r.time as number
    }
    const dead = at('member', (r) => r.state === 'dead')
    const gaveUp = at('undelivered', (r) => r.messages === 1)
    // Membership forgot b 200 ms after it was dead, long before the message expired (and b was still kept then: keptUntilExpiry).
    expect(gaveUp - dead).toBeGreaterThan(200 + 500)
    at('peer:forgotten')
  }, 30_000)

  it('a subscription broadcast skipped while a departed peer is kept (a message waits for it) reaches the peer when it is back', async () => {
    const { logs, logger } = debugLog()
    const a = await makeMesh({ ...FAST, logger, delivery: { forgetAfterMs: 200 } })
    const b = await spawnNode({ ...FAST, listen: false, bootstrap: [a.addresses[0]], delivery: { forgetAfterMs: 2 ** 31 - 1 } })
    const bGot = childInbox(b.proc, a.id)
    await until(() => healthy(a, b.id), { label: 'a sees b' })
    await stop(a, b)
    await a.send(b.id, 1) // held for b (retainMs 5 min): b's entry stays
    await membershipForgets(logs, b.id)
    const written = a._ringStats().outbound[b.id]?.recordsWritten
    const news: unknown[] = []
    a.subscribe('news', (m) => { news.push(m.payload) })
    expect(a._ringStats().outbound[b.id]?.recordsWritten).toBe(written) // skipped
    await resume(a, b)
    await until(() => bGot.length >= 1, { timeoutMs: 5_000, label: 'b gets the held message' })
    await a.send(b.id, 2, { ack: true }) // behind the subscription set in a's stream to b
    await request(b.proc, { type: 'publish', topic: 'news', payload: 'hello' }, 'published')
    await until(() => news.length > 0, { timeoutMs: 5_000, label: 'b publishes to a\'s topic' })
    expect(news).toEqual(['hello'])
    expect(bGot).toEqual([1, 2])
  }, 30_000)

  it('publishing does not hold a forgotten subscriber: no publication is queued to it, it is dropped, and publish() counts only live subscribers', async () => {
    const { logs, logger } = debugLog()
    const a = await makeMesh({ ...FAST, logger, delivery: { forgetAfterMs: 200, retainMs: 1_000 } })
    const b = await spawnNode({ ...FAST, listen: false, bootstrap: [a.addresses[0]] })
    await until(() => healthy(a, b.id), { label: 'a sees b' })
    await request(b.proc, { type: 'subscribe', topic: 'news' }, 'subscribed')
    await until(async () => (await a.publish('news', 0)) === 1, { label: 'b\'s subscription reaches a' })
    await stop(a, b)
    await membershipForgets(logs, b.id)
    const written = a._ringStats().outbound[b.id]?.recordsWritten
    expect(await a.publish('news', 1)).toBe(0)
    expect(a._ringStats().outbound[b.id]?.recordsWritten).toBe(written)
    // Publishing every 100 ms, longer than retainMs: b still goes once what was queued to it expired.
    let publishing = true
    const loop = (async () => { while (publishing) { await a.publish('news', 2); await new Promise((resolve) => setTimeout(resolve, 100)) } })()
    try {
      await forgotten(a, b.id)
    } finally {
      publishing = false
      await loop
    }
  }, 30_000)

  it('with forgetAfterMs Infinity a departed peer is kept, where a node with a finite one drops it', async () => {
    const keep = await makeMesh({ ...FAST, delivery: { forgetAfterMs: Infinity } })
    // (retainMs: the mesh's own subscription update to b, queued at link-up, may still be unacknowledged when b stops.)
    const drop = await makeMesh({ ...FAST, delivery: { forgetAfterMs: 200, retainMs: 1_000 } })
    const b = await spawnNode({ ...FAST, listen: false, bootstrap: [keep.addresses[0], drop.addresses[0]] })
    await until(() => healthy(keep, b.id) && healthy(drop, b.id), { timeoutMs: 10_000, label: 'both see b' })
    b.proc.kill('SIGSTOP')
    // Both declare b dead at about the same time: once `drop` has forgotten it, `keep` would have too.
    await forgotten(drop, b.id)
    expect(knows(keep, b.id)).toBe(true)
    expect(await keep.send(b.id, 'still known')).toMatch(/^\d+$/)
    await expect(drop.send(b.id, 'forgotten')).rejects.toMatchObject({ code: 'UNKNOWN_PEER' })
  }, 30_000)
})
