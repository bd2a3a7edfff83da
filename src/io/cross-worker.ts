/**
 * The data plane between the IO workers of one node: one SPSC ring per
 * ordered pair of workers (from → to), made by the supervisor on
 * SharedArrayBuffers and handed to both workers at spawn. A relay whose two
 * links live on different workers passes FORWARD envelopes through these,
 * never through the main thread (DESIGN.md §1 "Ring buffers").
 *
 * A record is `kind u8 | frames u16 LE | idLen u8 | id (ASCII) | body`:
 * ```
 *   RELAY    one FORWARD frame another node sent through us; `id` is the
 *            neighbour to send it to (a link of the consuming worker)
 *   SEND     a ready WebSocket message (`frames` frames) of a routed peer's
 *            actor; `id` is the neighbour to send it to
 *   DELIVER  an envelope's inner message for this node; `id` is its origin,
 *            whose routed actor lives on the consuming worker
 * ```
 * The consumer is woken through its IO worker's doorbell (the one the host
 * rings for the per-peer send rings), so it sleeps on everything at once,
 * and only when it sleeps (Doorbell.ring costs a load otherwise).
 *
 * The rings outlive a crashed worker, like the per-peer rings: its thread is
 * gone before the supervisor starts the next one, which attaches to the same
 * memory and takes over its side at the published HEAD/TAIL (an append that
 * was not published is simply not there; a drain cut short is read again:
 * duplicates, which the destination drops, never corruption).
 *
 * Sans-IO: no sockets, no timers; the IO worker decides what to do with a
 * record.
 *
 * @module
 */

import { RingBuffer } from '../ring/ring-buffer.js'
import { Doorbell } from '../ring/doorbell.js'
import type { ConnectionState, FrameSink } from '../connection/connection.js'
import { BATCH_BYTES } from '../connection/peer-actor.js'

/** Data bytes of each cross-worker ring: two of the largest records (a 256 KiB batch of a routed actor) fit. */
export const CROSS_RING_BYTES = 1 << 20

/** Record kinds of a cross-worker ring (see the module comment). */
export const CrossKind = { RELAY: 1, SEND: 2, DELIVER: 3 } as const
export type CrossKind = typeof CrossKind[keyof typeof CrossKind]

const HEADER_BYTES = 4

/**
 * The cross-worker rings of one IO worker, as plain data (workerData):
 * indexed by the other worker's index, `null` at this worker's own index.
 */
export interface CrossWorkerData {
  /** Rings this worker consumes: `rx[from]`. */
  rx: Array<SharedArrayBuffer | null>
  /** Rings this worker produces: `tx[to]`. */
  tx: Array<SharedArrayBuffer | null>
  /** Every IO worker's doorbell, by index (rung after publishing to its ring). */
  doorbells: SharedArrayBuffer[]
}

/**
 * The IO worker that hosts the actor of a peer reached only through relays
 * (one per peer: its send ring has a single consumer), when the node has
 * `workers` IO workers. FNV-1a of the id, so routed peers spread over the
 * workers and every worker computes the same answer without asking.
 */
export function routedHome (peerId: string, workers: number): number {
  if (workers <= 1) return 0
  let h = 0x811c9dc5
  for (let i = 0; i < peerId.length; i++) h = Math.imul(h ^ peerId.charCodeAt(i), 0x01000193)
  return (h >>> 0) % workers
}

/** Counters of one worker's cross-worker traffic. */
export interface CrossWorkerCounters {
  /** Records handed to another worker. */
  out: number
  /** Records taken from another worker. */
  in: number
  /** Records refused because the ring to that worker was full. */
  full: number
}

/**
 * One IO worker's ends of the cross-worker rings: the producer of `tx[to]`
 * and the consumer of `rx[from]` for every other worker.
 */
export class CrossWorkerRings {
  /** This worker's index. */
  readonly index: number
  /** IO workers of the node. */
  readonly count: number
  readonly counters: CrossWorkerCounters = { out: 0, in: 0, full: 0 }
  readonly #rx: Array<RingBuffer | undefined>
  readonly #tx: Array<RingBuffer | undefined>
  readonly #doorbells: Doorbell[]
  /** Rings with appended, unpublished records (see {@link flush}). */
  readonly #dirty = new Set<number>()
  /** Encoded record headers by kind, then id (ids repeat: a few neighbours and routed peers); the frame count is written per record. */
  readonly #headers: Array<Map<string, Uint8Array>> = [new Map(), new Map(), new Map(), new Map()]
  /** Rings a producer waits on for room (one wait per ring at a time). */
  readonly #waiting = new Set<number>()

  constructor (index: number, data: CrossWorkerData) {
    this.index = index
    this.count = data.doorbells.length
    this.#rx = data.rx.map((sab) => sab === null ? undefined : RingBuffer.attach(sab))
    this.#tx = data.tx.map((sab) => sab === null ? undefined : RingBuffer.attach(sab))
    this.#doorbells = data.doorbells.map((sab) => Doorbell.attach(sab))
  }

  /**
   * Append a record for worker `to` without publishing it ({@link flush}
   * publishes every ring written since, once). False, counted in
   * `counters.full`, when the ring has no room: the caller drops (a relayed
   * envelope is resent end to end by its origin).
   */
  append (to: number, kind: CrossKind, id: string, body: Uint8Array, frames = 1): boolean {
    const ring = this.#tx[to]
    if (ring === undefined) return false
    const header = this.#header(kind, id, frames)
    if (header.length + body.length > ring.maxRecordBytes || !ring.tryAppend2(header, body)) {
      this.counters.full++
      return false
    }
    this.counters.out++
    this.#dirty.add(to)
    return true
  }

  /** {@link append}, published (and the consumer woken if it sleeps) at once. */
  send (to: number, kind: CrossKind, id: string, body: Uint8Array, frames = 1): boolean {
    if (!this.append(to, kind, id, body, frames)) return false
    this.#publish(to)
    return true
  }

  /** Publish every record appended since the last flush: one HEAD store and at most one wake-up per ring. */
  flush (): void {
    for (const to of this.#dirty) this.#publish(to)
    this.#dirty.clear()
  }

  #publish (to: number): void {
    this.#dirty.delete(to)
    this.#tx[to]?.publish()
    // After the HEAD store (publish): the Dekker pair of Doorbell.ring/sleep
    // then guarantees the consumer either sees the record or is notified.
    this.#doorbells[to]?.ring()
  }

  /** True if a record of `bytes` body bytes (and its header) fits in the ring to `to` now. */
  canSend (to: number, bytes: number): boolean {
    const ring = this.#tx[to]
    if (ring === undefined) return false
    return ring.canWrite(Math.min(ring.maxRecordBytes, bytes + HEADER_BYTES + 64))
  }

  /**
   * Call `wake` once the ring to `to` has room for `bytes` again (the
   * consumer's drain notifies a waiting producer; see RingBuffer
   * waitForSpace). At most one wait per ring is pending.
   */
  whenRoom (to: number, bytes: number, wake: () => void): void {
    const ring = this.#tx[to]
    if (ring === undefined || this.#waiting.has(to)) return
    this.#waiting.add(to)
    void ring.waitForSpace(Math.min(ring.maxRecordBytes, bytes + HEADER_BYTES + 64), 1000).then(() => {
      this.#waiting.delete(to)
      wake()
    })
  }

  /** Whether any other worker published records for this one (Atomics loads: a doorbell `hasWork` check). */
  hasData (): boolean {
    for (const r of this.#rx) if (r !== undefined && !r.isEmpty()) return true
    return false
  }

  /**
   * Hand every waiting record to `fn`, ring by ring, then call `done` before
   * any of them is released: `body` is a view of ring memory, valid until
   * `done` returns (copy what must outlive it, e.g. a frame given to ws).
   * @returns records consumed.
   */
  drain (fn: (from: number, kind: number, id: string, body: Uint8Array, frames: number) => void, done: () => void): number {
    let n = 0
    const ends: Array<[RingBuffer, number, number]> = []
    try {
      for (let from = 0; from < this.#rx.length; from++) {
        const ring = this.#rx[from]
        if (ring === undefined || ring.isEmpty()) continue
        const at: [RingBuffer, number, number] = [ring, ring.readStart, 0]
        ends.push(at)
        ring.peek(at[1], (rec, end) => {
          // Consumed before fn runs: a throwing fn does not make its record come back forever.
          at[1] = end
          at[2]++
          n++
          const idLen = rec[3] as number
          let id = ''
          for (let i = 0; i < idLen; i++) id += String.fromCharCode(rec[HEADER_BYTES + i] as number)
          fn(from, rec[0] as number, id, rec.subarray(HEADER_BYTES + idLen), (rec[1] as number) | ((rec[2] as number) << 8))
        })
      }
      done()
    } finally {
      // Released only now: `done` may still read the views.
      for (const [ring, end, records] of ends) ring.releaseTo(end, records)
    }
    this.counters.in += n
    return n
  }

  /** The record header (cached per kind and id; append copies it into the ring before the next call). */
  #header (kind: CrossKind, id: string, frames: number): Uint8Array {
    const byId = this.#headers[kind] as Map<string, Uint8Array>
    let h = byId.get(id)
    if (h === undefined) {
      if (id.length > 255) throw new RangeError(`cross-worker record id longer than 255 characters: ${id.length}`)
      h = new Uint8Array(HEADER_BYTES + id.length)
      h[0] = kind
      h[3] = id.length
      for (let i = 0; i < id.length; i++) h[HEADER_BYTES + i] = id.charCodeAt(i) & 0x7f
      // Bounded: ids are a node's neighbours and routed peers.
      if (byId.size >= 4096) byId.clear()
      byId.set(id, h)
    }
    const n = Math.min(frames, 0xffff)
    h[1] = n & 0xff
    h[2] = n >> 8
    return h
  }

}

/** Room a routed actor's pump needs in the ring before it sends (one batch of BATCH_BYTES and a chunk, with headers). */
export const REMOTE_HOP_ROOM = BATCH_BYTES + 66 * 1024

/**
 * A link of another IO worker of this node, as a routed actor's next hop:
 * what the actor sends goes to that worker through the cross-worker ring
 * (SEND records), which sends it on its connection. Open while the router
 * reports that worker's link to `peerId` up.
 */
export class RemoteHop implements FrameSink {
  /** Nothing waits in a socket buffer of ours: graceful close does not wait on it. */
  readonly bufferedBytes = 0
  readonly worker: number
  readonly peerId: string
  readonly #rings: CrossWorkerRings
  readonly #isUp: () => boolean
  readonly #wake: () => void

  /**
   * @param isUp - whether `worker` still has an up link to `peerId`.
   * @param wake - rings this worker's doorbell (room came back in the ring).
   */
  constructor (worker: number, peerId: string, rings: CrossWorkerRings, isUp: () => boolean, wake: () => void) {
    this.worker = worker
    this.peerId = peerId
    this.#rings = rings
    this.#isUp = isUp
    this.#wake = wake
  }

  get state (): ConnectionState { return this.#isUp() ? 'open' : 'closed' }

  /**
   * The ring to that worker lacks room for a pump's worth: the actor waits
   * (as for a socket that is full) and is woken when the consumer drains.
   */
  get writeBlocked (): boolean {
    if (this.#rings.canSend(this.worker, REMOTE_HOP_ROOM)) return false
    this.#rings.whenRoom(this.worker, REMOTE_HOP_ROOM, this.#wake)
    return true
  }

  /** Hand one WebSocket message to the worker owning the link. A full ring drops it (counted; the actor's relay timeout resends). */
  send (buf: Uint8Array, frames: number): void {
    this.#rings.send(this.worker, CrossKind.SEND, this.peerId, buf, frames)
  }
}
