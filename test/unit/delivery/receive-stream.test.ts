// ReceiveStream (exactly-once, in-order sequencing of one peer's stream) and
// Reassembly (joining the chunks of large messages). Both sans-IO.
import { describe, it, expect } from 'vitest'
import fc from 'fast-check'
import { MAX_RETIRED_STREAMS, ReceiveStream, Reassembly, StreamAssemblies, type Assembled, type Verdict } from '../../../src/delivery/receive-stream.js'
import { BufferPool } from '../../../src/util/buffer-pool.js'

const S = 0xfeedf00d
const T = 42

describe('ReceiveStream', () => {
  it('an unknown stream starts at seq 1, or after the base the sender puts ahead of a resumed stream, never at another first frame', () => {
    const rx = new ReceiveStream()
    expect(rx.stream).toBeUndefined()
    expect(rx.delivered).toBe(0)
    // Frames 1..16 lost in a relay: 17 is not where the stream starts, it is dropped (and resent after the sender's rewind).
    expect(rx.accept(S, 17)).toBe('gap')
    expect(rx.stream).toBeUndefined()
    expect(rx.delivered).toBe(0)
    // After its rewind the sender declares its base: everything up to 16 was taken (by this receiver's previous life).
    rx.skip(S, 16)
    expect(rx.stream).toBe(S)
    expect(rx.accept(S, 17)).toBe('deliver')
    expect(rx.delivered).toBe(17)
    expect(rx.accept(S, 18)).toBe('deliver')
    expect({ duplicates: rx.duplicates, gaps: rx.gaps }).toEqual({ duplicates: 0, gaps: 1 })
    // A fresh sender's first frame starts a stream by itself.
    const fresh = new ReceiveStream()
    expect(fresh.accept(T, 1)).toBe('deliver')
    expect(fresh.stream).toBe(T)
  })

  it('property: whatever arrives first, frames lost before it are never skipped (it starts at 1 or at the base)', () => {
    fc.assert(fc.property(
      fc.integer({ min: 2, max: 50 }),
      fc.array(fc.integer({ min: 1, max: 50 }), { maxLength: 40 }),
      fc.nat({ max: 49 }),
      (n, early, acked) => {
        // `acked` frames were taken by this receiver's previous incarnation; the
        // sender resends from acked + 1. Some later frames arrive first (relay loss), then the rewind.
        const base = Math.min(acked, n - 1)
        const rx = new ReceiveStream()
        const got: number[] = []
        for (const s of early) if (s > base && s <= n && rx.accept(S, s) === 'deliver') got.push(s)
        rx.skip(S, base)
        for (let s = base + 1; s <= n; s++) if (rx.accept(S, s) === 'deliver') got.push(s)
        // Exactly base+1..n, in order: none lost, none twice (a seq-1 frame arriving early is the true start).
        expect(got).toEqual(Array.from({ length: n - base }, (_, i) => base + 1 + i))
      },
    ))
  })

  it('drops and counts duplicates (seq <= delivered) and gaps (seq > delivered + 1)', () => {
    const rx = new ReceiveStream()
    const v: Verdict[] = [1, 2, 3, 3, 1, 2, 5, 6, 4, 4, 5, 7, 6].map((s) => rx.accept(S, s))
    expect(v).toEqual([
      'deliver', 'deliver', 'deliver', 'duplicate', 'duplicate', 'duplicate',
      'gap', 'gap', 'deliver', 'duplicate', 'deliver', 'gap', 'deliver',
    ])
    expect(rx.delivered).toBe(6)
    expect(rx.duplicates).toBe(4)
    expect(rx.gaps).toBe(3)
  })

  it('a new stream epoch (the sender restarted) starts over', () => {
    const rx = new ReceiveStream()
    for (let s = 1; s <= 5; s++) rx.accept(S, s)
    expect(rx.accept(T, 1)).toBe('deliver')
    expect(rx.stream).toBe(T)
    expect(rx.delivered).toBe(1)
    expect(rx.accept(T, 1)).toBe('duplicate')
    expect(rx.accept(T, 2)).toBe('deliver')
    expect(rx.accept(T, 4)).toBe('gap')
  })

  it('a stale base or frame of an epoch the receiver left (a relay held it across the sender\'s restart) never delivers anything twice', () => {
    const rx = new ReceiveStream()
    for (let s = 1; s <= 5; s++) expect(rx.accept(S, s)).toBe('deliver')
    // The sender restarted without a dataDir: a new epoch.
    for (let s = 1; s <= 3; s++) expect(rx.accept(T, s)).toBe('deliver')
    // Its old process's base and frames, late through a relay: where S was left is known.
    rx.skip(S, 2)
    expect({ stream: rx.stream, delivered: rx.delivered }).toEqual({ stream: T, delivered: 3 })
    expect(rx.accept(S, 3)).toBe('duplicate')
    expect(rx.accept(S, 5)).toBe('duplicate')
    expect(rx.accept(S, 1)).toBe('duplicate')
    expect(rx.accept(S, 7)).toBe('gap')
    // Nothing delivered; the ACK slot follows the epoch heard from last (S, where it was left)...
    expect({ stream: rx.stream, delivered: rx.delivered }).toEqual({ stream: S, delivered: 5 })
    // ...until the live one's next frame.
    expect(rx.accept(T, 4)).toBe('deliver')
    expect({ stream: rx.stream, delivered: rx.delivered }).toEqual({ stream: T, delivered: 4 })
    expect({ duplicates: rx.duplicates, gaps: rx.gaps }).toEqual({ duplicates: 3, gaps: 1 })
  })

  it('a live epoch interrupted by a stale one it never knew resumes at its next frame, with no base (a direct link never rewinds)', () => {
    const rx = new ReceiveStream()
    for (let s = 1; s <= 3; s++) rx.accept(T, s)
    // A base of the sender's previous process (this receiver never saw it) arrives late: it is unknown, so it starts.
    rx.skip(S, 7)
    expect(rx.stream).toBe(S)
    expect(rx.accept(S, 8)).toBe('deliver') // never delivered by this receiver: late, but once
    // The live epoch's next frame goes on where it was left.
    expect(rx.accept(T, 3)).toBe('duplicate')
    expect(rx.accept(T, 4)).toBe('deliver')
    expect({ stream: rx.stream, delivered: rx.delivered }).toEqual({ stream: T, delivered: 4 })
    // ...and the stale one stays remembered: a second copy of its frame is a duplicate.
    expect(rx.accept(S, 8)).toBe('duplicate')
    expect(rx.accept(T, 5)).toBe('deliver')
    // A SKIP of a left epoch beyond where it was left (the sender gave up on more) moves it on.
    rx.skip(S, 12)
    expect({ stream: rx.stream, delivered: rx.delivered }).toEqual({ stream: S, delivered: 12 })
    expect(rx.accept(T, 6)).toBe('deliver')
  })

  it('a duplicate of an epoch it left makes it current again: the ACK goes back to the epoch heard from last (a stale frame does not keep it)', () => {
    const rx = new ReceiveStream()
    for (let s = 1; s <= 10; s++) rx.accept(S, s)
    for (let s = 1; s <= 6; s++) rx.accept(T, s) // the restarted sender; its ACK for 6 not sent yet
    expect(rx.accept(S, 11)).toBe('deliver') // a stale frame of the old process, never delivered: the ACK slot is S's now
    expect(rx.stream).toBe(S)
    // The live sender resends 6 (it saw no ACK): a duplicate, and T is current again, at 6: its ACK goes out.
    expect(rx.accept(T, 6)).toBe('duplicate')
    expect({ stream: rx.stream, delivered: rx.delivered }).toEqual({ stream: T, delivered: 6 })
    expect(rx.accept(T, 7)).toBe('deliver')
  })

  it(`remembers the last ${MAX_RETIRED_STREAMS} epochs it left; an older one is unknown again`, () => {
    const rx = new ReceiveStream()
    const epochs = Array.from({ length: MAX_RETIRED_STREAMS + 2 }, (_, i) => 100 + i)
    for (const e of epochs) { rx.accept(e, 1); rx.accept(e, 2) }
    // Current: the last; remembered: the MAX_RETIRED_STREAMS before it.
    for (const e of epochs.slice(1, -1)) expect(rx.accept(e, 2)).toBe('duplicate')
    // The first was forgotten: its seq 1 starts it again, as for any unknown epoch.
    const first = epochs[0] as number
    expect(rx.accept(first, 2)).toBe('gap')
    expect(rx.accept(first, 1)).toBe('deliver')
    // Going back to a remembered epoch does not cost another one its place.
    const again = new ReceiveStream()
    for (const e of epochs.slice(0, MAX_RETIRED_STREAMS + 1)) again.accept(e, 1)
    expect(again.accept(epochs[0] as number, 2)).toBe('deliver')
    for (const e of epochs.slice(1, MAX_RETIRED_STREAMS + 1)) expect(again.accept(e, 1)).toBe('duplicate')
  })

  it('property: stale frames and bases of earlier epochs, interleaved anywhere with a live stream, deliver each (epoch, seq) at most once and the live stream whole, in order', () => {
    const E0 = 7; const E1 = 8; const LIVE = 9
    const stale = fc.record({ epoch: fc.constantFrom(E0, E1), seq: fc.integer({ min: 0, max: 12 }), skip: fc.boolean() })
    fc.assert(fc.property(
      fc.nat({ max: 10 }), fc.nat({ max: 10 }), fc.integer({ min: 1, max: 30 }),
      fc.array(fc.tuple(fc.nat({ max: 30 }), stale), { maxLength: 30 }),
      (seenE0, seenE1, n, interleaved) => {
        const rx = new ReceiveStream()
        const delivered = new Set<string>()
        const live: number[] = []
        const take = (epoch: number, seq: number): void => {
          if (rx.accept(epoch, seq) !== 'deliver') return
          const k = `${epoch}:${seq}`
          expect(delivered.has(k)).toBe(false)
          delivered.add(k)
          if (epoch === LIVE) live.push(seq)
        }
        // What this receiver saw of the earlier processes (maybe nothing).
        for (let s = 1; s <= seenE0; s++) take(E0, s)
        for (let s = 1; s <= seenE1; s++) take(E1, s)
        // The live process sends 1..n once, in order, on a direct link (no rewind); stale frames land in between.
        for (let s = 1; s <= n; s++) {
          for (const [at, f] of interleaved) {
            if (at !== s) continue
            if (f.skip) rx.skip(f.epoch, f.seq)
            else if (f.seq > 0) take(f.epoch, f.seq)
          }
          take(LIVE, s)
        }
        expect(live).toEqual(Array.from({ length: n }, (_, i) => i + 1))
      },
    ))
  })

  it('property: a stream rebuilt from its position() (a forgotten peer met again) judges every later frame and skip exactly as the original', () => {
    const op = fc.record({ epoch: fc.integer({ min: 1, max: 8 }), seq: fc.integer({ min: 0, max: 12 }), skip: fc.boolean() })
    fc.assert(fc.property(fc.array(op, { maxLength: 60 }), fc.array(op, { maxLength: 60 }), (before, after) => {
      const apply = (rx: ReceiveStream, o: { epoch: number; seq: number; skip: boolean }): Verdict | 'skip' => {
        if (o.skip) { rx.skip(o.epoch, o.seq); return 'skip' }
        return o.seq > 0 ? rx.accept(o.epoch, o.seq) : 'skip'
      }
      const original = new ReceiveStream()
      for (const o of before) apply(original, o)
      const rebuilt = ReceiveStream.at(original.position())
      expect(rebuilt.position()).toEqual(original.position())
      expect([rebuilt.duplicates, rebuilt.gaps]).toEqual([0, 0])
      for (const o of after) {
        expect(apply(rebuilt, o)).toBe(apply(original, o))
        expect(rebuilt.position()).toEqual(original.position())
      }
    }))
    // A position is plain data (it outlives the stream); a new stream's is empty.
    expect(new ReceiveStream().position()).toEqual({ stream: undefined, delivered: 0, retired: [] })
  })

  it('at() keeps at most the last MAX_RETIRED_STREAMS retired epochs, and never the current one among them', () => {
    const retired = Array.from({ length: MAX_RETIRED_STREAMS + 3 }, (_, i) => [100 + i, 10 + i] as const)
    const rx = ReceiveStream.at({ stream: 105, delivered: 7, retired: [...retired, [105, 3]] })
    const p = rx.position()
    expect(p.stream).toBe(105)
    expect(p.delivered).toBe(7)
    expect(p.retired.length).toBeLessThanOrEqual(MAX_RETIRED_STREAMS)
    expect(p.retired.some(([s]) => s === 105)).toBe(false)
    // The newest retired epochs are the ones kept: a duplicate of one is still a duplicate.
    expect(rx.accept(106, 16)).toBe('duplicate')
    expect(rx.accept(105, 7)).toBe('duplicate') // 106 is current now; 105 was left at 7
    expect(rx.accept(100, 1)).toBe('deliver') // the oldest retired ones were not kept: 100 is unknown, it starts at 1
  })

  it('skip() moves past messages the sender gave up on, never backwards', () => {
    const rx = new ReceiveStream()
    rx.accept(S, 1)
    rx.accept(S, 2)
    expect(rx.accept(S, 6)).toBe('gap') // 3..5 expired at the sender
    rx.skip(S, 5)
    expect(rx.delivered).toBe(5)
    expect(rx.accept(S, 6)).toBe('deliver')
    rx.skip(S, 3) // stale SKIP (resent on a later connection)
    expect(rx.delivered).toBe(6)
    expect(rx.accept(S, 7)).toBe('deliver')
    // A SKIP for an unknown stream starts it after the skipped frames.
    const fresh = new ReceiveStream()
    fresh.skip(T, 9)
    expect(fresh.stream).toBe(T)
    expect(fresh.accept(T, 9)).toBe('duplicate')
    expect(fresh.accept(T, 10)).toBe('deliver')
    // A SKIP for a new epoch switches to it.
    rx.skip(T, 3)
    expect(rx.stream).toBe(T)
    expect(rx.accept(T, 4)).toBe('deliver')
  })

  it('property: reordered and duplicated frames, then go-back-N retries, deliver exactly 1..N in order', () => {
    fc.assert(fc.property(
      fc.integer({ min: 1, max: 60 }),
      fc.array(fc.nat(), { maxLength: 150 }), // noise: seqs (mod N) in any order, with repeats
      fc.array(fc.record({ lag: fc.nat({ max: 5 }), cut: fc.nat({ max: 20 }), dupAt: fc.nat({ max: 20 }) }), { minLength: 1, maxLength: 60 }),
      (n, noise, retries) => {
        const rx = new ReceiveStream()
        const deliveredSeqs: number[] = []
        let fed = 0
        const feed = (seq: number): void => {
          fed++
          if (rx.accept(S, seq) === 'deliver') deliveredSeqs.push(seq)
        }
        // The first connection always starts at the sender's oldest unacknowledged frame: 1.
        feed(1)
        for (const x of noise) feed(1 + (x % n))
        // Go-back-N: each retry resends from (at or before) the receiver's
        // ack point, in order, possibly cut short (connection lost), possibly
        // with one frame sent twice; the last retry runs to the end.
        for (let r = 0; rx.delivered < n; r++) {
          const { lag, cut, dupAt } = retries[r % retries.length]!
          const from = Math.max(1, rx.delivered + 1 - lag)
          const to = r >= retries.length ? n : Math.min(n, from + cut)
          for (let s = from; s <= to; s++) {
            feed(s)
            if (s === from + dupAt) feed(s)
          }
        }
        expect(deliveredSeqs).toEqual(Array.from({ length: n }, (_, i) => i + 1))
        expect(rx.delivered).toBe(n)
        expect(rx.duplicates + rx.gaps + n).toBe(fed)
      },
    ), { numRuns: 500 })
  })
})

/** Bytes 0..n-1 of a recognisable pattern starting at `tag`. */
function bytes (tag: number, n: number): Uint8Array {
  const b = new Uint8Array(n)
  for (let i = 0; i < n; i++) b[i] = (tag + i * 13) & 0xff
  return b
}

/** A result with its bytes as a plain array (a joined message is a Buffer, a passed-through one the caller's view). */
function asArrays (r: Assembled): unknown {
  return r.kind === 'message' ? { ...r, bytes: Array.from(r.bytes) } : r
}

describe('Reassembly', () => {
  it('a whole (unchunked) message passes through without a copy and leaves nothing held (heldBytes 0)', () => {
    const ra = new Reassembly(1024)
    const p = bytes(1, 100)
    const r = ra.push(p, 7, false, false)
    expect(r).toEqual({ kind: 'message', bytes: p, firstSeq: 7, owned: false })
    if (r.kind === 'message') expect(r.bytes).toBe(p)
    expect(ra.heldBytes).toBe(0)
  })

  it('joins chunks in order into one message with the first chunk\'s seq; chunks are copied when kept', () => {
    const ra = new Reassembly(1024)
    const a = bytes(1, 10)
    const b = bytes(2, 0)
    const c = bytes(3, 7)
    const d = bytes(4, 5)
    expect(ra.push(a, 20, false, true)).toEqual({ kind: 'partial' })
    a.fill(0xee) // the caller's buffer (a view of shared memory) is reused
    expect(ra.heldBytes).toBe(10)
    expect(ra.push(b, 21, true, true)).toEqual({ kind: 'partial' })
    expect(ra.push(c, 22, true, true)).toEqual({ kind: 'partial' })
    expect(ra.heldBytes).toBe(17)
    const r = ra.push(d, 23, true, false)
    expect(r.kind).toBe('message')
    if (r.kind !== 'message') return
    expect(r.firstSeq).toBe(20)
    expect(r.owned).toBe(true)
    expect(Array.from(r.bytes)).toEqual([...bytes(1, 10), ...c, ...d])
    expect(ra.heldBytes).toBe(0)
    // The next message is independent.
    expect(ra.push(bytes(5, 3), 24, false, false)).toMatchObject({ kind: 'message', firstSeq: 24 })
  })

  it('an orphan continuation is discarded up to the end of its message; the next message is fine', () => {
    const ra = new Reassembly(1024)
    // The first chunks went to a previous incarnation of this receiver.
    expect(ra.push(bytes(1, 10), 5, true, true)).toEqual({ kind: 'orphan' })
    expect(ra.push(bytes(2, 10), 6, true, true)).toEqual({ kind: 'partial' })
    expect(ra.heldBytes).toBe(0)
    expect(ra.push(bytes(3, 10), 7, true, false)).toEqual({ kind: 'partial' })
    expect(ra.push(bytes(4, 4), 8, false, false)).toEqual({ kind: 'message', bytes: bytes(4, 4), firstSeq: 8, owned: false })
    // An orphan that is the message's last chunk.
    expect(ra.push(bytes(5, 4), 9, true, false)).toEqual({ kind: 'orphan' })
    expect(ra.push(bytes(6, 4), 10, false, true)).toEqual({ kind: 'partial' })
    expect(asArrays(ra.push(bytes(7, 4), 11, true, false))).toEqual({ kind: 'message', bytes: [...bytes(6, 4), ...bytes(7, 4)], firstSeq: 10, owned: true })
  })

  it('a message larger than maxBytes is discarded up to its end; the next message is fine', () => {
    const ra = new Reassembly(20)
    expect(ra.push(bytes(1, 12), 1, false, true)).toEqual({ kind: 'partial' })
    expect(ra.push(bytes(2, 12), 2, true, true)).toEqual({ kind: 'too-large', bytes: 24 })
    expect(ra.heldBytes).toBe(0)
    expect(ra.push(bytes(3, 12), 3, true, true)).toEqual({ kind: 'partial' })
    expect(ra.push(bytes(4, 12), 4, true, false)).toEqual({ kind: 'partial' })
    expect(ra.push(bytes(5, 20), 5, false, false)).toEqual({ kind: 'message', bytes: bytes(5, 20), firstSeq: 5, owned: false }) // exactly maxBytes
    // Too large on its last chunk: nothing to skip afterwards.
    expect(ra.push(bytes(6, 15), 6, false, true)).toEqual({ kind: 'partial' })
    expect(ra.push(bytes(7, 6), 7, true, false)).toEqual({ kind: 'too-large', bytes: 21 })
    expect(ra.push(bytes(8, 2), 8, false, true)).toEqual({ kind: 'partial' })
    expect(ra.push(bytes(9, 2), 9, true, false)).toMatchObject({ kind: 'message', firstSeq: 8 })
    // A whole message over the limit.
    expect(ra.push(bytes(10, 21), 10, false, false)).toEqual({ kind: 'too-large', bytes: 21 })
    expect(ra.push(bytes(11, 1), 11, false, false)).toMatchObject({ kind: 'message', firstSeq: 11 })
  })

  it('a first chunk while a message is half assembled starts over with the new message', () => {
    const ra = new Reassembly(1024)
    ra.push(bytes(1, 8), 1, false, true)
    expect(ra.push(bytes(2, 8), 2, false, true)).toEqual({ kind: 'partial' })
    expect(ra.heldBytes).toBe(8)
    expect(asArrays(ra.push(bytes(3, 8), 3, true, false))).toEqual({ kind: 'message', bytes: [...bytes(2, 8), ...bytes(3, 8)], firstSeq: 2, owned: true })
  })

  it('with a pool: chunk copies come from it and go back once the message is whole; messages never alias pool memory', () => {
    const pool = new BufferPool(8, 4)
    // Two lanes' reassemblies share the host's pool.
    const lanes = [new Reassembly(1024, pool), new Reassembly(1024, pool)]
    const kept: Array<{ bytes: Uint8Array; want: number[] }> = []
    for (let m = 0; m < 20; m++) {
      const ra = lanes[m % 2]!
      // Chunks of 20 bytes: each is copied into three 8-byte pool buffers (8 + 8 + 4).
      const parts = [bytes(m, 20), bytes(m + 50, 20), bytes(m + 100, 3)]
      const seq = m * 10
      expect(ra.push(parts[0]!, seq, false, true)).toEqual({ kind: 'partial' })
      parts[0]!.fill(0xee) // ring memory is reused once pushed
      expect(ra.push(parts[1]!, seq + 1, true, true)).toEqual({ kind: 'partial' })
      const r = ra.push(parts[2]!, seq + 2, true, false)
      if (r.kind !== 'message') return expect.fail(`message ${m}: ${r.kind}`)
      expect(r.owned).toBe(true)
      expect(r.bytes.buffer.byteLength).not.toBe(pool.size) // its own memory, not a pool buffer
      kept.push({ bytes: r.bytes, want: [...bytes(m, 20), ...bytes(m + 50, 20), ...bytes(m + 100, 3)] })
      expect(pool.free).toBe(4) // 7 copies went back; the pool keeps 4
    }
    // Later messages reused the pool's buffers; the delivered ones are intact.
    for (const k of kept) expect(Array.from(k.bytes)).toEqual(k.want)
  })

  it('property: random chunkings of random messages reassemble to the same bytes', () => {
    fc.assert(fc.property(
      fc.array(
        fc.uint8Array({ maxLength: 300 }).chain((m) => fc.tuple(
          fc.constant(m),
          // Cut points (any, including empty chunks) → a chunking of m.
          fc.uniqueArray(fc.integer({ min: 0, max: m.length }), { maxLength: 8 }).map((cuts) => cuts.sort((a, b) => a - b)),
        )),
        { minLength: 1, maxLength: 20 },
      ),
      fc.boolean(), // start with an orphan tail from a previous incarnation
      fc.boolean(), // chunk copies from a (small) pool
      (messages, orphanFirst, withPool) => {
        const ra = new Reassembly(300, withPool ? new BufferPool(16, 3) : undefined)
        const delivered: Array<[Uint8Array, Uint8Array]> = []
        let seq = 100
        if (orphanFirst) {
          expect(ra.push(bytes(0, 9), seq++, true, true).kind).toBe('orphan')
          expect(ra.push(bytes(0, 9), seq++, true, false).kind).toBe('partial')
        }
        for (const [m, cuts] of messages) {
          const bounds = [0, ...cuts.filter((c) => c > 0 && c < m.length), m.length]
          const parts: Uint8Array[] = []
          for (let i = 0; i + 1 < bounds.length; i++) parts.push(m.subarray(bounds[i], bounds[i + 1]))
          if (parts.length === 0) parts.push(m) // empty message: one empty chunk
          const first = seq
          for (let i = 0; i < parts.length; i++) {
            const last = i === parts.length - 1
            const r = ra.push(parts[i]!, seq++, i > 0, !last)
            if (!last) {
              if (r.kind !== 'partial') expect.fail(`chunk ${i}: ${r.kind}, expected partial`)
              continue
            }
            if (r.kind !== 'message') return expect.fail(`last chunk: ${r.kind}, expected message`)
            if (r.firstSeq !== first) expect.fail(`firstSeq ${r.firstSeq}, expected ${first}`)
            if (!Buffer.from(r.bytes).equals(m)) expect.fail('reassembled bytes differ')
            delivered.push([r.bytes, Uint8Array.from(m)])
          }
          if (ra.heldBytes !== 0) expect.fail(`heldBytes ${ra.heldBytes} after a message`)
        }
        // Nothing delivered changed afterwards (pool buffers are reused, delivered bytes are not).
        for (const [got, want] of delivered) if (!Buffer.from(got).equals(want)) expect.fail('a delivered message changed later')
      },
    ), { numRuns: 200 })
  })
})

describe('StreamAssemblies', () => {
  const bytes = (...xs: number[]): Uint8Array => Uint8Array.from(xs)

  it('a frame of another epoch between the chunks of a message (a stale one, delivered once) leaves the message whole', () => {
    const a = new StreamAssemblies(3, 1024)
    expect(a.get(T, 2).push(bytes(1, 2), 10, false, true).kind).toBe('partial')
    // A stale whole message of the sender's previous process on the same lane.
    const stale = a.get(S, 2).push(bytes(9), 4, false, false)
    expect(stale).toMatchObject({ kind: 'message', firstSeq: 4 })
    expect(a.get(T, 2).push(bytes(3), 11, true, true).kind).toBe('partial')
    const r = a.get(T, 2).push(bytes(4), 12, true, false)
    expect(r.kind).toBe('message')
    if (r.kind === 'message') {
      expect([...r.bytes]).toEqual([1, 2, 3, 4])
      expect(r.firstSeq).toBe(10)
    }
    // With one assembly per lane (before), the stale frame started over and the rest was an orphan:
    const one = new Reassembly(1024)
    one.push(bytes(1, 2), 10, false, true)
    one.push(bytes(9), 4, false, false)
    expect(one.push(bytes(3), 11, true, true).kind).toBe('orphan')
  })

  it('a stale first chunk of an epoch it never knew, in the middle of the live epoch\'s message, loses neither; the live one completing drops the stale one', () => {
    const rx = new ReceiveStream()
    const a = new StreamAssemblies(3, 1024)
    const push = (stream: number, seq: number, data: number, continuation: boolean, more: boolean): Assembled | undefined =>
      rx.accept(stream, seq) === 'deliver' ? a.get(stream, 2).push(bytes(data), seq, continuation, more) : undefined
    expect(push(T, 1, 1, false, true)?.kind).toBe('partial')
    expect(push(T, 2, 2, true, true)?.kind).toBe('partial')
    // The dead process's first chunk, late through a relay: an epoch this receiver never saw, so it starts.
    expect(push(S, 1, 9, false, true)?.kind).toBe('partial')
    expect(push(T, 3, 3, true, false)).toMatchObject({ kind: 'message', firstSeq: 1 })
    // The stale half message is kept (which epoch is live cannot be told here): bounded, see the next test.
    expect(a.get(S, 2).heldBytes).toBe(1)
    expect(a.get(T, 2).idle).toBe(true)
  })

  it('the epoch in use is never the one forgotten: half messages of epochs not used for longest go first', () => {
    const a = new StreamAssemblies(3, 1024)
    a.get(T, 1).push(bytes(1), 1, false, true) // the live epoch, half way through a message
    for (let e = 1; e <= MAX_RETIRED_STREAMS + 3; e++) {
      a.get(e, 1).push(bytes(e), 1, false, true) // a stale half message of another epoch each
      a.get(T, 1) // the live epoch keeps being used
    }
    expect(a.streams).toBe(MAX_RETIRED_STREAMS + 1)
    expect(a.get(T, 1).heldBytes).toBe(1)
    expect(a.get(T, 1).push(bytes(2), 2, true, false)).toMatchObject({ kind: 'message', firstSeq: 1 })
    // The oldest stale ones were forgotten: a continuation of theirs is an orphan.
    expect(a.get(1, 1).push(bytes(9), 2, true, false).kind).toBe('orphan')
  })

  it(`keeps at most ${MAX_RETIRED_STREAMS + 1} epochs: idle ones go first, then the oldest; bad lanes throw`, () => {
    const a = new StreamAssemblies(3, 1024)
    for (let e = 1; e <= 10; e++) a.get(e, 0).push(bytes(e), 1, false, false)
    // Whole messages leave nothing in progress: each new epoch finds the others idle.
    expect(a.streams).toBe(1)
    for (let e = 11; e <= 20; e++) a.get(e, 0).push(bytes(e), 1, false, true)
    expect(a.streams).toBe(MAX_RETIRED_STREAMS + 1)
    expect(a.get(20, 0).heldBytes).toBe(1) // the newest is kept
    expect(() => a.get(20, 3)).toThrow(RangeError)
  })
})
