// OutboxStore: the lmdb-backed durable outbox. Each test gets its own temp
// dataDir. The kill -9 test runs test/fixtures/outbox-writer.mjs in a child
// process against the COMPILED store (`npm run build` first; `npm test` does
// it in pretest).
import { spawn } from 'node:child_process'
import { existsSync, statSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, it, expect, onTestFinished } from 'vitest'
import fc from 'fast-check'
import { open } from 'lmdb'
import { OutboxStore, type OutboxEntry, type OutboxStoreOptions } from '../../../src/delivery/outbox-store.js'
import { MeshError } from '../../../src/errors.js'

const FIXTURE = fileURLToPath(new URL('../../fixtures/outbox-writer.mjs', import.meta.url))
const COMPILED = fileURLToPath(new URL('../../../dist/src/delivery/outbox-store.js', import.meta.url))
const SOURCE = fileURLToPath(new URL('../../../src/delivery/outbox-store.ts', import.meta.url))
/** Puts to peer 'b' in the fixture (its B_TOTAL): all acknowledged as they resolve. */
const B_TOTAL = 600

async function tempDir (): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'meshwork-outbox-'))
  onTestFinished(async () => { await rm(dir, { recursive: true, force: true }) })
  return dir
}

/** Open a store that is closed when the test ends (close is idempotent). */
async function openStore (dir: string, options?: OutboxStoreOptions): Promise<OutboxStore> {
  const store = await OutboxStore.open(dir, options)
  onTestFinished(async () => { await store.close() })
  return store
}

/** LMDB's last transaction id of the closed environment at `path`. */
async function lastTxnId (path: string): Promise<number> {
  const env = open({ path, readOnly: true })
  try {
    return (env.getStats() as { lastTxnId: number }).lastTxnId
  } finally {
    await env.close()
  }
}

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s)
const text = (b: Uint8Array): string => new TextDecoder().decode(b)

/** (peer, seq, frame text) of every committed entry, in store order. */
async function listed (store: OutboxStore, peer?: string): Promise<Array<[string, number, string]>> {
  await store.flush()
  return [...store.pending(peer)].map((e) => [e.peer, e.seq, text(e.frame)])
}

describe('OutboxStore', () => {
  it('opens at <dataDir>/outbox; a reopen finds what was stored', async () => {
    const dir = await tempDir()
    const first = await OutboxStore.open(dir)
    expect(first.path).toBe(join(dir, 'outbox'))
    await first.put('p', 1, Buffer.from('x'), 1, 1)
    await first.close()
    const again = await openStore(dir)
    expect([...again.pending()].map((e) => [e.peer, e.seq])).toEqual([['p', 1]])
  })

  it('stores frame, enqueuedAt and messageId and returns them exactly', async () => {
    const store = await openStore(await tempDir())
    const frame = Uint8Array.from([0, 1, 2, 255, 128, 7])
    const enqueuedAt = 1_700_000_000_123.5
    const messageId = 2 ** 40 + 3
    await store.put('peer', 1, frame, enqueuedAt, messageId)
    await store.put('peer', 2, new Uint8Array(0), -1, 0)
    frame.fill(9) // the store kept its own copy
    const all = [...store.pending()]
    expect(all).toHaveLength(2)
    const [one, two] = all as [OutboxEntry, OutboxEntry]
    expect(one).toMatchObject({ peer: 'peer', seq: 1, enqueuedAt, messageId })
    expect([...one.frame]).toEqual([0, 1, 2, 255, 128, 7])
    expect(two).toMatchObject({ peer: 'peer', seq: 2, enqueuedAt: -1, messageId: 0 })
    expect(two.frame.byteLength).toBe(0)
  })

  it('lists entries by peer, then numeric seq (9 before 10, 99 before 100)', async () => {
    const store = await openStore(await tempDir())
    const puts: Array<[string, number]> = [
      ['b', 10], ['a9', 1], ['b', 9], ['a', 100], ['a10', 2], ['a', 99], ['b', 1], ['a', 2 ** 40], ['a', 0],
    ]
    await Promise.all(puts.map(([p, s]) => store.put(p, s, bytes(`${p}:${s}`), 0, 0)))
    expect((await listed(store)).map(([p, s]) => `${p}:${s}`)).toEqual([
      'a:0', 'a:99', 'a:100', `a:${2 ** 40}`, 'a10:2', 'a9:1', 'b:1', 'b:9', 'b:10',
    ])
    expect((await listed(store, 'b')).map(([, s]) => s)).toEqual([1, 9, 10])
    expect(await listed(store, 'nobody')).toEqual([])
    for (const e of store.pending()) if (e.seq === 99) break // an early stop releases the cursor
    expect([...store.pending('a')]).toHaveLength(4)
    expect(store.size()).toBe(puts.length)
    expect(store.lastSeq('a')).toBe(2 ** 40)
    expect(store.lastSeq('b')).toBe(10)
    expect(store.lastSeq('nobody')).toBe(0)
  })

  it('ackThrough deletes that peer\'s entries up to and including seq, and keeps lastSeq', async () => {
    const store = await openStore(await tempDir())
    for (let s = 1; s <= 12; s++) void store.put('a', s, bytes(`a${s}`), 0, s)
    await store.put('b', 5, bytes('b5'), 0, 0)
    store.ackThrough('a', 10)
    expect(store.size()).toBe(3)
    expect((await listed(store)).map(([p, s]) => `${p}:${s}`)).toEqual(['a:11', 'a:12', 'b:5'])
    store.ackThrough('a', 10) // again: nothing left to delete
    store.ackThrough('nobody', 10)
    store.ackThrough('a', 12)
    expect(store.size()).toBe(1)
    expect(await listed(store, 'a')).toEqual([])
    expect(store.lastSeq('a')).toBe(12)
  })

  it('remove drops exactly the given seqs and ignores absent ones', async () => {
    const store = await openStore(await tempDir())
    await Promise.all([1, 2, 3, 4, 5].map((s) => store.put('a', s, bytes(`a${s}`), 0, 0)))
    store.remove('a', [4, 2, 42])
    store.remove('nobody', [1])
    expect(store.size()).toBe(3)
    expect((await listed(store)).map(([, s]) => s)).toEqual([1, 3, 5])
    store.remove('a', [5])
    expect(store.lastSeq('a')).toBe(5)
  })

  it('applies writes in call order: a put acked in the same turn leaves nothing', async () => {
    const store = await openStore(await tempDir())
    const put = store.put('a', 1, bytes('x'), 0, 0)
    store.ackThrough('a', 1)
    await put
    expect(store.size()).toBe(0)
    expect(await listed(store)).toEqual([])
  })

  it('a put to an existing key replaces it without counting twice', async () => {
    const store = await openStore(await tempDir())
    await store.put('a', 3, bytes('old'), 1, 1)
    await store.put('a', 3, bytes('new'), 2, 2)
    expect(store.size()).toBe(1)
    expect(await listed(store)).toEqual([['a', 3, 'new']])
  })

  it('commits many concurrent puts in few transactions and resolves each', async () => {
    const empty = await OutboxStore.open(await tempDir())
    await empty.close()
    const openTxns = await lastTxnId(empty.path)

    const store = await openStore(await tempDir())
    const frame = new Uint8Array(64)
    await Promise.all(Array.from({ length: 2000 }, (_, i) => store.put(`p${i % 7}`, i, frame, i, i)))
    expect(store.size()).toBe(2000)
    expect([...store.pending()]).toHaveLength(2000)
    await store.close()
    // All 2000 were issued in one event turn: lmdb-js commits them together.
    expect(await lastTxnId(store.path) - openTxns).toBeLessThanOrEqual(2)
  })

  it('persists lastSeq after every entry was acknowledged or removed', async () => {
    const dir = await tempDir()
    const store = await OutboxStore.open(dir)
    for (let s = 1; s <= 20; s++) void store.put('a', s, bytes('a'), 0, 0)
    for (let s = 1; s <= 7; s++) void store.put('b', s, bytes('b'), 0, 0)
    await store.put('c', 3, bytes('c'), 0, 0)
    store.ackThrough('a', 20)
    store.remove('b', [7]) // the highest one
    await store.close()

    const again = await openStore(dir)
    expect(again.lastSeq('a')).toBe(20)
    expect(again.lastSeq('b')).toBe(7)
    expect(again.lastSeq('c')).toBe(3)
    expect(again.size()).toBe(7)
    expect((await listed(again)).map(([p, s]) => `${p}:${s}`)).toEqual(['b:1', 'b:2', 'b:3', 'b:4', 'b:5', 'b:6', 'c:3'])
    // The index is rebuilt from disk, so acks after a restart work too.
    again.ackThrough('b', 6)
    expect(again.size()).toBe(1)
    expect(await listed(again, 'b')).toEqual([])
  })

  it('reopens a durable store with noSync and back', async () => {
    const dir = await tempDir()
    const durable = await OutboxStore.open(dir)
    expect(durable.noSync).toBe(false)
    await durable.put('a', 1, bytes('1'), 0, 0)
    await durable.close()
    const fast = await OutboxStore.open(dir, { noSync: true })
    expect(fast.noSync).toBe(true)
    await fast.put('a', 2, bytes('2'), 0, 0)
    await fast.close()
    const back = await openStore(dir)
    expect(await listed(back)).toEqual([['a', 1, '1'], ['a', 2, '2']])
  })

  it('close is idempotent; a closed store rejects puts and throws CLOSED', async () => {
    const store = await OutboxStore.open(await tempDir())
    await store.put('a', 1, bytes('x'), 0, 0)
    const closing = store.close()
    expect(store.close()).toBe(closing)
    await closing
    await expect(store.put('a', 2, bytes('y'), 0, 0)).rejects.toMatchObject({ code: 'CLOSED' })
    expect(() => store.ackThrough('a', 1)).toThrow(MeshError)
    expect(() => store.remove('a', [1])).toThrow(expect.objectContaining({ code: 'CLOSED' }))
    expect(() => store.lastSeq('a')).toThrow(expect.objectContaining({ code: 'CLOSED' }))
    expect(() => store.pending()).toThrow(expect.objectContaining({ code: 'CLOSED' }))
    await expect(store.flush()).rejects.toMatchObject({ code: 'CLOSED' })
  })

  it('stops an iteration of pending() that outlives close()', async () => {
    const store = await OutboxStore.open(await tempDir())
    await Promise.all([1, 2, 3].map((s) => store.put('a', s, bytes(String(s)), 0, 0)))
    const it = store.pending()[Symbol.iterator]()
    expect(it.next().value).toMatchObject({ seq: 1 })
    await store.close()
    expect(() => it.next()).toThrow(expect.objectContaining({ code: 'CLOSED' }))
  })

  it('rejects a bad dataDir', async () => {
    await expect(OutboxStore.open('')).rejects.toThrow(TypeError)
    await expect(OutboxStore.open(undefined as unknown as string)).rejects.toThrow(TypeError)
  })

  describe('throws synchronously on bad arguments', () => {
    const f = new Uint8Array(1)
    it.each<[string, (s: OutboxStore) => unknown, ErrorConstructor]>([
      ['put: empty peer', (s) => s.put('', 1, f, 0, 0), TypeError],
      ['put: non-string peer', (s) => s.put(7 as unknown as string, 1, f, 0, 0), TypeError],
      ['put: peer with NUL', (s) => s.put('a\0b', 1, f, 0, 0), TypeError],
      ['put: peer too long', (s) => s.put('x'.repeat(257), 1, f, 0, 0), TypeError],
      ['put: negative seq', (s) => s.put('a', -1, f, 0, 0), RangeError],
      ['put: fractional seq', (s) => s.put('a', 1.5, f, 0, 0), RangeError],
      ['put: seq beyond 2^53-1', (s) => s.put('a', 2 ** 53, f, 0, 0), RangeError],
      ['put: frame not bytes', (s) => s.put('a', 1, 'x' as unknown as Uint8Array, 0, 0), TypeError],
      ['put: enqueuedAt NaN', (s) => s.put('a', 1, f, Number.NaN, 0), RangeError],
      ['put: messageId Infinity', (s) => s.put('a', 1, f, 0, Infinity), RangeError],
      ['ackThrough: bad seq', (s) => { s.ackThrough('a', Number.NaN) }, RangeError],
      ['ackThrough: bad peer', (s) => { s.ackThrough('', 1) }, TypeError],
      ['remove: not an array', (s) => { s.remove('a', 1 as unknown as number[]) }, TypeError],
      ['remove: bad seq inside', (s) => { s.remove('a', [1, -2]) }, RangeError],
    ])('%s', async (_name, call, type) => {
      const store = await openStore(await tempDir())
      expect(() => call(store)).toThrow(type)
      expect(store.size()).toBe(0)
    })
  })

  it('matches an in-memory model under random interleavings of put/ack/remove/reopen', async () => {
    type Op =
      | { op: 'put', peer: string, seq: number }
      | { op: 'ack', peer: string, seq: number }
      | { op: 'remove', peer: string, seqs: number[] }
      | { op: 'settle' }
      | { op: 'reopen' }
    // 'p9' and 'p10' check that peers sort as strings while seqs sort as numbers.
    const peer = fc.constantFrom('p9', 'p10', 'q')
    const seq = fc.integer({ min: 0, max: 24 })
    const op: fc.Arbitrary<Op> = fc.oneof(
      { weight: 6, arbitrary: fc.record({ op: fc.constant('put' as const), peer, seq }) },
      { weight: 2, arbitrary: fc.record({ op: fc.constant('ack' as const), peer, seq }) },
      { weight: 2, arbitrary: fc.record({ op: fc.constant('remove' as const), peer, seqs: fc.array(seq, { maxLength: 4 }) }) },
      { weight: 1, arbitrary: fc.constant({ op: 'settle' as const }) },
      { weight: 1, arbitrary: fc.constant({ op: 'reopen' as const }) },
    )
    const root = await tempDir()
    let run = 0

    await fc.assert(fc.asyncProperty(fc.array(op, { maxLength: 40 }), fc.boolean(), async (ops, noSync) => {
      const dir = join(root, String(run++))
      let store = await OutboxStore.open(dir, { noSync })
      try {
        const model = new Map<string, { peer: string, seq: number, n: number }>()
        const last = new Map<string, number>()
        let inFlight: Array<Promise<void>> = []
        let n = 0
        const check = (): void => {
          expect(store.size()).toBe(model.size)
          for (const p of ['p9', 'p10', 'q']) expect(store.lastSeq(p)).toBe(last.get(p) ?? 0)
        }
        for (const o of ops) {
          if (o.op === 'put') {
            n++
            inFlight.push(store.put(o.peer, o.seq, bytes(`${o.peer}/${o.seq}/${n}`), n * 1.5, n))
            model.set(`${o.peer}/${o.seq}`, { peer: o.peer, seq: o.seq, n })
            last.set(o.peer, Math.max(last.get(o.peer) ?? 0, o.seq))
          } else if (o.op === 'ack') {
            store.ackThrough(o.peer, o.seq)
            for (const [k, e] of model) if (e.peer === o.peer && e.seq <= o.seq) model.delete(k)
          } else if (o.op === 'remove') {
            store.remove(o.peer, o.seqs)
            for (const s of o.seqs) model.delete(`${o.peer}/${s}`)
          } else if (o.op === 'settle') {
            await Promise.all(inFlight)
            inFlight = []
          } else {
            await Promise.all(inFlight)
            inFlight = []
            await store.close()
            store = await OutboxStore.open(dir, { noSync })
          }
          check()
        }
        await Promise.all(inFlight)
        const expected = [...model.values()]
          .sort((x, y) => x.peer < y.peer ? -1 : x.peer > y.peer ? 1 : x.seq - y.seq)
          .map((e) => ({ peer: e.peer, seq: e.seq, frame: `${e.peer}/${e.seq}/${e.n}`, enqueuedAt: e.n * 1.5, messageId: e.n }))
        const actual = (): unknown[] => [...store.pending()].map((e) => ({ ...e, frame: text(e.frame) }))
        await store.flush()
        expect(actual()).toEqual(expected)
        await store.close()
        store = await OutboxStore.open(dir, { noSync })
        check()
        expect(actual()).toEqual(expected)
      } finally {
        await store.close()
      }
    }), { numRuns: 60 })
  })
})

/** Same bytes as frameFor() in test/fixtures/outbox-writer.mjs. */
function frameFor (peer: string, seq: number): number[] {
  const b: number[] = []
  for (let i = 0; i < 24; i++) b.push((seq * 31 + i * 7 + peer.charCodeAt(0)) & 0xff)
  return b
}

describe('OutboxStore after kill -9', () => {
  it.each([
    ['durable (fsync per commit)', 'durable'],
    ['noSync (OS page cache only)', 'nosync'],
  ])('%s: every put that resolved before SIGKILL is there after reopen', async (_name, mode) => {
    if (!existsSync(COMPILED) || statSync(COMPILED).mtimeMs < statSync(SOURCE).mtimeMs) {
      throw new Error(`${COMPILED} is missing or older than its source: run \`npm run build\` first (npm test does it)`)
    }
    const dir = await tempDir()
    const child = spawn(process.execPath, [FIXTURE, dir, mode], { stdio: ['ignore', 'pipe', 'inherit'] })
    onTestFinished(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })

    // Collect printed lines until enough puts of both peers have resolved,
    // then kill the writer mid-stream. The deadline bounds a stuck child.
    const printed = { a: [] as number[], b: [] as number[] }
    let partial = ''
    const closed = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL')
        reject(new Error(`writer printed only ${printed.a.length}+${printed.b.length} lines within 15 s`))
      }, 15_000)
      child.stdout.setEncoding('utf8')
      child.stdout.on('data', (chunk: string) => {
        const lines = (partial + chunk).split('\n')
        partial = lines.pop() ?? '' // a line is counted only once complete
        for (const line of lines) {
          const [what, value] = line.split(' ') as [string, string]
          if (what === 'a' || what === 'b') printed[what].push(Number(value))
        }
        if (printed.a.length >= 3000 && printed.b.length === B_TOTAL && child.signalCode === null) child.kill('SIGKILL')
      })
      child.once('close', (code, signal) => {
        clearTimeout(timer)
        if (signal === 'SIGKILL') resolve()
        else reject(new Error(`writer exited by itself (code ${String(code)}, signal ${String(signal)})`))
      })
    })
    await closed

    const store = await openStore(dir)
    const stored = new Map<number, OutboxEntry>()
    for (const e of store.pending('a')) stored.set(e.seq, e)
    const missing = printed.a.filter((s) => !stored.has(s))
    expect(missing).toEqual([])
    for (const s of printed.a) {
      const e = stored.get(s) as OutboxEntry
      expect([...e.frame]).toEqual(frameFor('a', s))
      expect(e.enqueuedAt).toBe(s * 1.5)
      expect(e.messageId).toBe(s + 1_000_000)
    }
    // Puts were issued in seq order and transactions commit in order, so
    // what survived is a prefix 1..k, and k covers everything printed.
    const seqs = [...stored.keys()]
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1))
    expect(seqs.length).toBeGreaterThanOrEqual(Math.max(...printed.a))
    // Peer b was acknowledged as it went and stopped at B_TOTAL: the
    // high-water record must still cover every resolved put, so the next seq
    // is never reused even though (most of) its entries are gone.
    expect(printed.b.toSorted((x, y) => x - y)).toEqual(Array.from({ length: B_TOTAL }, (_, i) => i + 1))
    expect(store.lastSeq('b')).toBe(B_TOTAL)
    expect(store.lastSeq('a')).toBe(seqs.length)
  })
})
