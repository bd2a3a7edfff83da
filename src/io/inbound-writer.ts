import { copyOut } from '../ring/copy-bytes.js'
import { RingBuffer } from '../ring/ring-buffer.js'
import { InboundKind, INBOUND_ENVELOPE_BYTES, writeEnvelope } from '../actor/inbound-record.js'
import { encodeControl } from '../codec/control.js'
import type { InboundEvent } from '../actor/protocol.js'

interface Pending { env: Uint8Array; body: Uint8Array }

/**
 * The IO worker's (single) producer side of the worker → host inbound ring.
 * When the host is slow or its event loop is blocked, the ring fills: records
 * then queue here in order, and `onBackpressure(true)` asks the connections to
 * pause their sockets (TCP pushes back on the senders). Nothing is dropped:
 * the queue is bounded by what the paused sockets had already buffered.
 */
export class InboundWriter {
  readonly #ring: RingBuffer
  readonly #queue: Pending[] = []
  readonly #onBackpressure: (blocked: boolean) => void
  #waiting = false
  #blocked = false
  #publishQueued = false

  constructor (sab: SharedArrayBuffer, onBackpressure: (blocked: boolean) => void) {
    this.#ring = RingBuffer.attach(sab)
    this.#onBackpressure = onBackpressure
  }

  get blocked (): boolean { return this.#blocked }

  /**
   * Deliver validated frames (bytes back to back) from the peer with `handle`.
   * The host sees them once the current task's synchronous work is done
   * (see {@link #schedulePublish}).
   */
  data (handle: number, frames: Uint8Array): void {
    this.#put(writeEnvelope(new Uint8Array(INBOUND_ENVELOPE_BYTES), InboundKind.DATA, handle), frames, false)
  }

  /**
   * An ordered event (after every frame written before it), visible to the
   * host at once: a control-plane reply sent right after it (e.g. dial()'s)
   * must not reach the host before the event does.
   */
  event (handle: number, ev: InboundEvent): void {
    this.#put(writeEnvelope(new Uint8Array(INBOUND_ENVELOPE_BYTES), InboundKind.EVENT, handle), encodeControl(ev), true)
  }

  /** Resolves when everything queued here reached the ring (or it closed). */
  async flushed (): Promise<void> {
    this.#ring.publish()
    while (this.#queue.length > 0 && !this.#ring.closed) {
      if (!this.#waiting) this.#drainQueue()
      const first = this.#queue[0]
      if (first === undefined) break
      await this.#ring.waitForSpace(first.env.length + first.body.length, 100)
      this.#drainQueue()
    }
  }

  #put (env: Uint8Array, body: Uint8Array, now: boolean): void {
    if (body.length + env.length > this.#ring.maxRecordBytes) {
      // Cannot happen with resolved options (ringBytes >= 4 × the largest WebSocket message); guard anyway.
      throw new RangeError(`inbound record of ${body.length} bytes exceeds the ring's ${this.#ring.maxRecordBytes}`)
    }
    if (this.#queue.length === 0 && this.#ring.tryAppend2(env, body)) {
      if (now) this.#ring.publish() // also publishes the data appended before it
      else this.#schedulePublish()
      return
    }
    // The host can only free space it can see.
    this.#ring.publish()
    // A copy: `body` may be a view of memory its owner reuses once this returns (a cross-worker
    // ring record, released after the call; the host read garbage from it, issue 4).
    this.#queue.push({ env, body: copyOut(body) })
    this.#setBlocked(true)
    this.#waitForSpace()
  }

  /**
   * Publish the records appended by this task in one go, in a microtask:
   * after every WebSocket message of the socket read being handled (ws emits
   * them synchronously), before the worker does anything else. A publish to
   * a sleeping host is an Atomics.notify (6 µs idle, far more on a loaded
   * box, where the woken host thread can preempt this one: CPU profiles of
   * 64 B and 1 KiB floods put 24–30 % of a receiving IO worker's samples in
   * publish) and a turn of the host's loop. This makes it one per socket
   * read, however many WebSocket messages the read carried.
   */
  #schedulePublish (): void {
    if (this.#publishQueued) return
    this.#publishQueued = true
    queueMicrotask(() => {
      this.#publishQueued = false
      this.#ring.publish()
    })
  }

  #waitForSpace (): void {
    if (this.#waiting) return
    const first = this.#queue[0]
    if (first === undefined) return
    this.#waiting = true
    // Hysteresis: resume only once a quarter of the ring is free, so a slow
    // host does not make the sockets flap between paused and reading per record.
    const want = Math.max(first.env.length + first.body.length, Math.min(this.#ring.maxRecordBytes, this.#ring.capacity >> 2))
    void this.#ring.waitForSpace(want).then(() => {
      this.#waiting = false
      this.#drainQueue()
    })
  }

  #drainQueue (): void {
    while (this.#queue.length > 0) {
      const p = this.#queue[0] as Pending
      if (!this.#ring.tryWrite2(p.env, p.body)) break
      this.#queue.shift()
    }
    if (this.#queue.length === 0) this.#setBlocked(false)
    else if (!this.#ring.closed) this.#waitForSpace()
  }

  #setBlocked (b: boolean): void {
    if (this.#blocked === b) return
    this.#blocked = b
    this.#onBackpressure(b)
  }
}
