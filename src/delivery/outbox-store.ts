/**
 * The durable half of reliable delivery (DESIGN.md §3, `dataDir`): a sender's
 * unacknowledged reliable messages, kept in an embedded LMDB environment
 * (lmdb-js) at `<dataDir>/outbox` so that they survive a restart.
 *
 * Layout: three named databases in one environment.
 * ```
 *   messages   key [peer, seq]  (ordered-binary: peer, then numeric seq)
 *              value, binary:   u8 format | f64 LE enqueuedAt | f64 LE messageId | frame bytes…
 *   high-water key peer → lastSeq(peer) as of that peer's latest deletion
 *              (written only together with a deletion, see below)
 *   meta       'format' → 1  (stores of earlier versions also hold an
 *              'epoch', now unused: each frame carries its own epoch)
 * ```
 * Values are raw bytes behind a 17-byte header rather than msgpack: a put is
 * one allocation and one copy with no encoder, the frame comes back as a view
 * of the value lmdb-js already copied out for us, and it measured faster on
 * the write path (which is the hot one; reads happen once, after a restart).
 *
 * lastSeq invariant, for every peer and in every committed state:
 * `lastSeq(peer) = max(high-water[peer], largest stored seq of peer)` and it
 * is >= every seq ever committed for that peer. A put raises it atomically by
 * committing its own key; a deletion (ack or remove) could lower the largest
 * stored seq, so every deletion writes the high-water record in the same
 * transaction (`batch()`). This keeps "a restarted sender never reuses a
 * sequence number" without a second B-tree write on every put (a scratch
 * measurement with 256 puts in flight: ~20 % more puts/s with noSync, ~60 %
 * with fsync, than writing the record with every put).
 *
 * Crash semantics:
 * - default: every commit is fsynced before the `put` promise resolves
 *   (LMDB's classic synchronous commit; lmdb-js's `overlappingSync`, which
 *   resolves before the flush, is turned off). A resolved put survives a
 *   process kill and a machine crash or power loss.
 * - `noSync: true`: commits are written to the OS (page cache) but never
 *   fsynced. A resolved put survives `kill -9` of the process, not a machine
 *   crash, after which LMDB may lose recent transactions or even be corrupt
 *   (LMDB's MDB_NOSYNC caveat).
 * Both are exercised by test/unit/delivery/outbox-store.test.ts, which kills
 * a writing child process with SIGKILL and finds every resolved put.
 *
 * One process owns a `dataDir` at a time: the in-memory index (sizes,
 * lastSeq) is not shared with other processes opening the same environment.
 *
 * @module
 */
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { open, type Database, type RootDatabase } from 'lmdb'
import { ErrorCode, MeshError } from '../errors.js'

/** Directory inside `dataDir` that holds the outbox's LMDB environment. */
export const OUTBOX_DIR = 'outbox'

/** On-disk format of the message values; bumped on any incompatible change. */
export const OUTBOX_FORMAT = 1

/** Bytes before the frame in a stored value: u8 format, f64 enqueuedAt, f64 messageId. */
const HEADER_BYTES = 17

/** Largest sequence number (the codec's `MAX_SEQ`): integers stay exact up to here. */
const MAX_SEQ = Number.MAX_SAFE_INTEGER

/**
 * Longest peer id accepted, in UTF-16 code units. LMDB keys are limited to
 * ~1.9 KB; meshwork peer ids are 52 characters.
 */
const MAX_PEER_LENGTH = 256

/** Options of {@link OutboxStore.open}. */
export interface OutboxStoreOptions {
  /**
   * Do not fsync commits: a resolved `put` survives a process crash but not a
   * machine crash or power loss (see the module notes). Faster when the disk
   * is slow to sync. @default false
   */
  noSync?: boolean
}

/** One stored message, as {@link OutboxStore.pending} yields it. */
export interface OutboxEntry {
  /** Destination peer id. */
  peer: string
  /** Sequence number in this node's stream to `peer`. */
  seq: number
  /** The frame bytes exactly as given to `put` (a view of a private copy). */
  frame: Uint8Array
  /** When the message was enqueued, in the caller's clock units (ms since epoch by convention). */
  enqueuedAt: number
  /** The message id given to `put`. */
  messageId: number
}

/**
 * Sequence numbers of one peer that are stored (or queued to be), ascending,
 * plus its lastSeq bookkeeping. `seqs[head..]` is live; acks advance `head`
 * so that a cumulative ack of k entries costs O(log n + k), not a splice of
 * the whole array.
 */
interface PeerIndex {
  seqs: number[]
  head: number
  /** Highest seq ever put for this peer (in this run or persisted before). */
  last: number
  /** Value of the persisted high-water record (0 if none), as last queued. */
  recorded: number
}

/** Index of the first element of `a[from..]` that is > `x` (a.length if none). */
function upperBound (a: readonly number[], from: number, x: number): number {
  let lo = from
  let hi = a.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if ((a[mid] as number) <= x) lo = mid + 1
    else hi = mid
  }
  return lo
}

function checkPeer (peer: unknown): asserts peer is string {
  if (typeof peer !== 'string' || peer.length === 0 || peer.length > MAX_PEER_LENGTH || peer.includes('\0')) {
    throw new TypeError(`peer must be a non-empty string of at most ${MAX_PEER_LENGTH} characters without NUL, got ${typeof peer === 'string' ? JSON.stringify(peer.slice(0, 64)) : typeof peer}`)
  }
}

function checkSeq (seq: unknown, name = 'seq'): asserts seq is number {
  if (!Number.isSafeInteger(seq) || (seq as number) < 0) {
    throw new RangeError(`${name} must be an integer in [0, ${MAX_SEQ}], got ${String(seq)}`)
  }
}

/**
 * Durable store of a sender's unacknowledged reliable messages, keyed by
 * (destination peer, sequence number). Reads are synchronous; writes are
 * queued to lmdb-js's write thread and many concurrent ones commit together
 * in one transaction (lmdb-js batches all writes of one event turn).
 *
 * Writes are applied in call order, so `put(p, 5)` followed at once by
 * `ackThrough(p, 5)` leaves nothing stored. `size()` and `lastSeq()` include
 * writes that are queued but not yet committed; `pending()` reads what is
 * committed.
 *
 * @example
 * const store = await OutboxStore.open(dataDir)
 * await store.put(peer, 1, frame, Date.now(), 7)  // durable from here on
 * store.ackThrough(peer, 1)                       // deleted in the background
 * await store.close()
 */
export class OutboxStore {
  /** Directory of the LMDB environment, `<dataDir>/outbox`. */
  readonly path: string
  /** True when commits are not fsynced (see {@link OutboxStoreOptions.noSync}). */
  readonly noSync: boolean

  readonly #root: RootDatabase
  readonly #messages: Database<Buffer, [string, number]>
  readonly #highWater: Database<number, string>
  readonly #peers = new Map<string, PeerIndex>()
  #size = 0
  #closing: Promise<void> | undefined
  /** True once the LMDB environment is closed (after `#closing` settles its flush). */
  #closed = false
  /** First failure of a background write (ack, remove); reported by flush/close/put. */
  #error: unknown = undefined
  /** Set by the {@link _failWrites} test hook. */
  #writesFail = false

  private constructor (path: string, noSync: boolean, root: RootDatabase, messages: Database<Buffer, [string, number]>,
    highWater: Database<number, string>) {
    this.path = path
    this.noSync = noSync
    this.#root = root
    this.#messages = messages
    this.#highWater = highWater
  }

  /**
   * Open or create the store at `<dataDir>/outbox` (directories are created
   * with mode 0700), and load the index of stored messages.
   *
   * @param dataDir the node's data directory (`MeshOptions.dataDir`)
   * @throws TypeError (rejection) for a bad `dataDir`
   * @throws MeshError `INVALID_OPTIONS` (rejection) when the outbox has another on-disk format
   */
  static async open (dataDir: string, options: OutboxStoreOptions = {}): Promise<OutboxStore> {
    if (typeof dataDir !== 'string' || dataDir.length === 0) {
      throw new TypeError(`dataDir must be a non-empty string, got ${typeof dataDir}`)
    }
    const noSync = options.noSync === true
    const path = join(dataDir, OUTBOX_DIR)
    await mkdir(path, { recursive: true, mode: 0o700 })
    const root = open({
      path,
      noSync,
      // overlappingSync (lmdb-js's default off Windows) resolves writes at
      // commit and fsyncs later; we want the put promise to mean durable.
      overlappingSync: false,
      maxDbs: 4,
    })
    try {
      const messages = root.openDB<Buffer, [string, number]>({ name: 'messages', encoding: 'binary' })
      const highWater = root.openDB<number, string>({ name: 'high-water' })
      const meta = root.openDB<number, string>({ name: 'meta' })
      // Once per open, so a synchronous (committed, fsynced) transaction is fine.
      root.transactionSync(() => {
        const format = meta.get('format')
        if (format !== undefined && format !== OUTBOX_FORMAT) {
          throw new MeshError(ErrorCode.INVALID_OPTIONS,
            `options.dataDir: outbox at ${path} has format ${String(format)}, this meshwork reads format ${OUTBOX_FORMAT}`,
            { details: { path, format } })
        }
        if (format === undefined) meta.putSync('format', OUTBOX_FORMAT)
      })
      const store = new OutboxStore(path, noSync, root, messages, highWater)
      store.#load()
      return store
    } catch (err) {
      await root.close()
      throw err
    }
  }

  /** Build the in-memory index from what is committed. */
  #load (): void {
    for (const key of this.#messages.getKeys()) {
      const [peer, seq] = key
      const p = this.#peer(peer)
      p.seqs.push(seq) // keys come in (peer, seq) order: already ascending
      if (seq > p.last) p.last = seq
      this.#size++
    }
    for (const { key, value } of this.#highWater.getRange()) {
      const p = this.#peer(key)
      p.recorded = value
      if (value > p.last) p.last = value
    }
  }

  #peer (peer: string): PeerIndex {
    let p = this.#peers.get(peer)
    if (p === undefined) {
      p = { seqs: [], head: 0, last: 0, recorded: 0 }
      this.#peers.set(peer, p)
    }
    return p
  }

  #checkOpen (): void {
    if (this.#closing !== undefined) throw new MeshError(ErrorCode.CLOSED, 'outbox store is closed')
  }

  /**
   * Highest sequence number ever put for `peer` (0 if none). It survives acks,
   * removals and restarts, so a restarted sender that continues from
   * `lastSeq(peer) + 1` never reuses a sequence number. Includes puts that are
   * queued but not yet committed.
   *
   * @throws MeshError `CLOSED` after `close()`
   */
  lastSeq (peer: string): number {
    this.#checkOpen()
    return this.#peers.get(peer)?.last ?? 0
  }

  /**
   * Durably store one message under (`peer`, `seq`), replacing any entry with
   * the same key, and raise `lastSeq(peer)` to at least `seq`. The bytes of
   * `frame` are copied before this returns, so the caller may reuse it.
   * Concurrent puts commit together: all writes of one event turn share a
   * transaction.
   *
   * @param enqueuedAt when the message was enqueued (ms since epoch by convention; any finite number)
   * @param messageId the message id (any finite number; safe integers stay exact)
   * @returns a promise that resolves once the transaction holding this entry
   *   is committed (and fsynced, unless `noSync`)
   * @throws TypeError / RangeError synchronously for bad arguments
   * @throws MeshError `CLOSED` (rejection) after `close()`; the error of a
   *   failed commit (rejection), or of an earlier failed background write
   */
  put (peer: string, seq: number, frame: Uint8Array, enqueuedAt: number, messageId: number): Promise<void> {
    checkPeer(peer)
    checkSeq(seq)
    if (!(frame instanceof Uint8Array)) throw new TypeError(`frame must be a Uint8Array, got ${typeof frame}`)
    if (!Number.isFinite(enqueuedAt)) throw new RangeError(`enqueuedAt must be a finite number, got ${String(enqueuedAt)}`)
    if (!Number.isFinite(messageId)) throw new RangeError(`messageId must be a finite number, got ${String(messageId)}`)
    if (this.#closing !== undefined) return Promise.reject(new MeshError(ErrorCode.CLOSED, 'outbox store is closed'))
    if (this.#error !== undefined) return Promise.reject(this.#error)

    const value = Buffer.allocUnsafe(HEADER_BYTES + frame.byteLength)
    value[0] = OUTBOX_FORMAT
    value.writeDoubleLE(enqueuedAt, 1)
    value.writeDoubleLE(messageId, 9)
    value.set(frame, HEADER_BYTES)

    const p = this.#peer(peer)
    const inserted = this.#insert(p, seq)
    if (seq > p.last) p.last = seq
    // A plain async put: lmdb-js returns one shared promise per transaction
    // and resolves it after the commit (and its fsync without noSync).
    return this.#messages.put([peer, seq], value).then(() => undefined, (err: unknown) => {
      // Not stored: forget it (lastSeq stays raised, which is only conservative).
      if (inserted && this.#forget(p, seq)) this.#size--
      throw err
    })
  }

  /**
   * @internal test hook: every write from now on fails with `err` and
   * commits nothing (a disk that stays full): puts reject, deletions and
   * their high-water records are lost.
   */
  _failWrites (err: Error): void {
    this.#error ??= err
    this.#writesFail = true
  }

  /** Add `seq` to the index; false if it was already there (an overwrite). */
  #insert (p: PeerIndex, seq: number): boolean {
    const { seqs } = p
    const n = seqs.length
    // Fast path: sequence numbers normally arrive in ascending order.
    if (n === p.head || (seqs[n - 1] as number) < seq) {
      seqs.push(seq)
      this.#size++
      return true
    }
    const i = upperBound(seqs, p.head, seq)
    if (i > p.head && seqs[i - 1] === seq) return false
    seqs.splice(i, 0, seq)
    this.#size++
    return true
  }

  /** Remove `seq` from the index; false if absent. */
  #forget (p: PeerIndex, seq: number): boolean {
    const i = upperBound(p.seqs, p.head, seq) - 1
    if (i < p.head || p.seqs[i] !== seq) return false
    if (i === p.head) p.head++
    else p.seqs.splice(i, 1)
    this.#compact(p)
    return true
  }

  /** Drop the consumed prefix once it is large, so memory follows the live count. */
  #compact (p: PeerIndex): void {
    if (p.head === p.seqs.length) {
      p.seqs.length = 0
      p.head = 0
    } else if (p.head > 1024 && p.head * 2 > p.seqs.length) {
      p.seqs = p.seqs.slice(p.head)
      p.head = 0
    }
  }

  /**
   * Queue the deletions of `seqs` (all stored, of one peer) together with the
   * high-water record, in one transaction (see the lastSeq invariant above).
   */
  #delete (peer: string, p: PeerIndex, seqs: readonly number[]): void {
    if (this.#writesFail) return
    const record = p.last > p.recorded
    if (record) p.recorded = p.last
    const last = p.last
    this.#root.batch(() => {
      for (const seq of seqs) void this.#messages.remove([peer, seq])
      if (record) void this.#highWater.put(peer, last)
    }).then(undefined, (err: unknown) => { this.#error ??= err })
  }

  /**
   * The receiver acknowledged everything of `peer` up to and including `seq`:
   * delete those entries. Returns at once; the deletion commits in the
   * background with other writes (a failure is reported by the next `put`,
   * `flush` or `close`). `lastSeq(peer)` is unchanged.
   *
   * @throws TypeError / RangeError for bad arguments
   * @throws MeshError `CLOSED` after `close()`
   */
  ackThrough (peer: string, seq: number): void {
    checkPeer(peer)
    checkSeq(seq)
    this.#checkOpen()
    const p = this.#peers.get(peer)
    if (p === undefined) return
    const end = upperBound(p.seqs, p.head, seq)
    if (end === p.head) return
    const acked = p.seqs.slice(p.head, end)
    p.head = end
    this.#size -= acked.length
    this.#compact(p)
    this.#delete(peer, p, acked)
  }

  /**
   * Drop specific entries of `peer` (given up on, e.g. expired); absent ones
   * are ignored. Returns at once, like {@link ackThrough}. `lastSeq(peer)` is
   * unchanged.
   *
   * @throws TypeError / RangeError for bad arguments
   * @throws MeshError `CLOSED` after `close()`
   */
  remove (peer: string, seqs: readonly number[]): void {
    checkPeer(peer)
    if (!Array.isArray(seqs)) throw new TypeError('seqs must be an array of sequence numbers')
    for (const s of seqs) checkSeq(s, 'seqs[]')
    this.#checkOpen()
    const p = this.#peers.get(peer)
    if (p === undefined) return
    const gone: number[] = []
    for (const s of seqs) if (this.#forget(p, s)) gone.push(s)
    if (gone.length === 0) return
    this.#size -= gone.length
    this.#delete(peer, p, gone)
  }

  /**
   * Every committed message, ascending by peer then numeric seq (or only
   * `peer`'s, ascending by seq): what a restarted sender must resend. Reads a
   * consistent snapshot lazily; await `flush()` first to include queued
   * writes. Iterating after `close()` throws `CLOSED`.
   *
   * @throws TypeError for a bad `peer`
   * @throws MeshError `CLOSED` after `close()`
   */
  pending (peer?: string): Iterable<OutboxEntry> {
    this.#checkOpen()
    if (peer !== undefined) checkPeer(peer)
    const range = peer === undefined
      ? this.#messages.getRange({ snapshot: true })
      : this.#messages.getRange({ start: [peer, 0], end: [peer, MAX_SEQ], inclusiveEnd: true, snapshot: true })
    return this.#entries(range)
  }

  * #entries (range: Iterable<{ key: [string, number], value: Buffer }>): Generator<OutboxEntry, void, undefined> {
    const it = range[Symbol.iterator]()
    let done = false
    try {
      for (;;) {
        // The environment closes once close() has flushed: check before every
        // read from it (lmdb-js would throw MDB_BAD_TXN).
        this.#checkOpen()
        const r = it.next()
        if (r.done === true) {
          done = true
          return
        }
        const { key, value } = r.value
        // lmdb-js hands out a fresh copy per value (binary encoding), so a view is safe.
        yield {
          peer: key[0],
          seq: key[1],
          frame: value.subarray(HEADER_BYTES),
          enqueuedAt: value.readDoubleLE(1),
          messageId: value.readDoubleLE(9),
        }
      }
    } finally {
      // The caller stopped early (break, throw): release lmdb-js's cursor,
      // unless the environment is already gone.
      if (!done && !this.#closed) it.return?.()
    }
  }

  /** Number of stored messages, including puts queued but not yet committed. */
  size (): number {
    return this.#size
  }

  /**
   * Resolves when every write queued so far (puts, acks, removals) is
   * committed (and fsynced unless `noSync`).
   *
   * @throws MeshError `CLOSED` (rejection) after `close()`; the error of a failed background write (rejection)
   */
  async flush (): Promise<void> {
    this.#checkOpen()
    await this.#root.committed
    if (this.#error !== undefined) throw this.#error
  }

  /**
   * Commit every queued write, then close the environment. Idempotent: later
   * calls return the same promise. Rejects with the error of a failed
   * background write, if any, after closing.
   */
  close (): Promise<void> {
    this.#closing ??= (async () => {
      try {
        await this.#root.committed
      } finally {
        await this.#root.close()
        this.#closed = true
      }
      if (this.#error !== undefined) throw this.#error
    })()
    return this.#closing
  }
}
