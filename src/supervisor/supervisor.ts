import { Worker, MessageChannel } from 'node:worker_threads'
import { stat } from 'node:fs/promises'
import { setImmediate as yieldToIo } from 'node:timers/promises'
import { wrap, expose, transfer, proxy, releaseProxy, type Remote } from 'comlink'
import type { Logger } from 'pino'
import { RingBuffer, type RingPlace } from '../ring/ring-buffer.js'
import { Doorbell } from '../ring/doorbell.js'
import { nodeEndpoint, untilExit } from '../actor/endpoint.js'
import { forwardLogs } from '../observability/logger.js'
import type { HostCallbacks, IoWorkerApi, IoWorkerData, RouterApi, RouterHostCallbacks, RouterWorkerData } from '../actor/protocol.js'
import type { WorkerConfig } from '../options.js'
import { RestartPolicy } from './restart-policy.js'
import { holdWorkerHeapFloor } from './worker-heap.js'
import { CROSS_RING_BYTES, type CrossWorkerData } from '../io/cross-worker.js'

const IO_WORKER_URL = new URL('../../workers/io.worker.js', import.meta.url)
const ROUTER_WORKER_URL = new URL('../../workers/router.worker.js', import.meta.url)

/**
 * Young generation of each IO worker's heap (resourceLimits.maxYoungGenerationSizeMb;
 * V8's default grows it to 3 x 16 MiB on x64). Every socket read and most
 * WebSocket messages allocate a Buffer outside the heap, and V8 (11.3, Node 20)
 * counts such memory allocated since the last full GC against the old
 * generation's limit, while it scavenges young Buffers only after 32 MiB of
 * them. In the worker's small heap (a few MiB live, limit ~35 MiB) the limit
 * came first: a Mark-Compact every ~85 ms under a 1 KiB flood (54 in 4 s,
 * pauses up to 18 ms) instead of cheap Scavenges. A small young generation
 * scavenges often enough to free those Buffers first (1 Mark-Compact and 412
 * Scavenges of ~0.5 ms in 4 s). Throughput scenario, same machine, two runs
 * each: 1 KiB 192-204 MiB/s -> 349-380 MiB/s; 64 B 0.91-1.18 M -> 1.44-1.46 M
 * msgs/s; 64 KiB 235-255 -> 264-318 MiB/s. 2-4 MiB measured alike; 8 and 16
 * like the default.
 */
export const IO_WORKER_YOUNG_GENERATION_MB = 3

/** Handles of one worker generation live above generation << 20, so records of a crashed worker never alias the next one's. */
const HANDLE_GENERATION_SHIFT = 2 ** 20

/** One IO worker: its thread, its rings, what it listens on and what it dialed. */
export interface IoSlot {
  readonly index: number
  generation: number
  worker: Worker
  api: Remote<IoWorkerApi>
  readonly doorbell: Doorbell
  readonly inbound: RingBuffer
  /** Listen URLs as configured, then concrete after the first bind (so a restart rebinds the same port). */
  listen: string[]
  /** Outbound dials to repeat after a restart. */
  readonly dials: Map<string, string | undefined>
  /** Its ends of the rings to and from the other IO workers (relaying between them); kept across restarts. */
  cross: CrossWorkerData | undefined
  stopping: boolean
}

/** What the supervisor needs from the mesh facade. */
export interface SupervisorHost {
  ringFor (peerId: string): { ring: RingPlace; board: SharedArrayBuffer; datagrams: RingPlace }
  dispatch (slot: IoSlot, record: Uint8Array): void
  /** A worker died: everything it reported before is dispatched; its peers are gone. */
  workerLost (slot: IoSlot, err: Error): void
  workerRestarted (slot: IoSlot): void
  /** Membership events from the router worker. */
  membership: RouterHostCallbacks
}

export interface SupervisorOptions {
  selfId: string
  identityDer: Uint8Array
  config: WorkerConfig
  listen: string[]
  ioThreads: number
  ringBytes: number
  logger: Logger
  logLevel: string
  /** With dataDir: the lock the router worker keeps fresh (DataDirLock's file and text). */
  lock?: { file: string; text: string } | undefined
  host: SupervisorHost
}

/**
 * Spawns and watches the worker threads: `threads.io` IO workers and one
 * router worker. Restarts a crashed worker (its peers reconnect; its rings
 * outlive it, so nothing already queued is lost), and stops them all on close.
 */
export class Supervisor {
  readonly slots: IoSlot[] = []
  readonly #o: SupervisorOptions
  readonly #restarts = new RestartPolicy({ max: 10, windowMs: 60_000 })
  #router!: Worker
  #routerApi!: Remote<RouterApi>
  #closed = false
  #restartCount = 0
  /**
   * Inbound records wait for this: peers may link and send as soon as the
   * workers listen, before createMesh() has resolved and the application
   * has attached its listeners. A message emitted then would reach nobody,
   * and its ACK would tell the sender it was taken.
   */
  readonly #inboundOpen: Promise<void>
  #openInbound!: () => void

  constructor (o: SupervisorOptions) {
    this.#o = o
    this.#inboundOpen = new Promise((resolve) => { this.#openInbound = resolve })
  }

  /** Start dispatching inbound records (messages and events) to the host. Idempotent. */
  openInbound (): void { this.#openInbound() }

  /** IO workers restarted after a crash, since start. */
  get restarts (): number { return this.#restartCount }

  get router (): Remote<RouterApi> { return this.#routerApi }

  /** Spawn all workers and bind listeners; resolves to the concrete listen URLs. */
  async start (): Promise<string[]> {
    // Workers lower their own priority (threads.nice), and threads inherit
    // their creator's. libuv's thread pool is process-wide and started by
    // whichever thread first needs it: start it here, from the host's thread
    // (an async fs call does), so the host's own fs, dns and crypto work never
    // runs on pool threads a worker started at its lowered priority.
    await stat(IO_WORKER_URL)
    this.#spawnRouter()
    const n = this.#o.ioThreads
    for (let i = 0; i < n; i++) {
      this.slots.push({
        index: i,
        generation: 0,
        worker: undefined as unknown as Worker,
        api: undefined as unknown as Remote<IoWorkerApi>,
        doorbell: Doorbell.create(),
        inbound: RingBuffer.create(this.#o.ringBytes, { keepAlive: false }),
        listen: this.#o.listen.filter((_, j) => j % n === i),
        dials: new Map(),
        cross: undefined,
        stopping: false,
      })
    }
    this.#makeCrossRings()
    for (const slot of this.slots) {
      await this.#spawnIo(slot)
      void this.#readLoop(slot)
    }
    const urls = (await Promise.all(this.slots.map(async (s) => {
      s.listen = await s.api.listen()
      return s.listen
    }))).flat()
    await this.#routerApi.startMembership(urls, proxy(this.#o.host.membership))
    return urls
  }

  /**
   * One SPSC ring per ordered pair of IO workers (from → to): a relay whose
   * two links are on different workers passes envelopes through them, never
   * through this thread. Made once: they outlive a crashed worker, whose
   * successor attaches to the same memory (see io/cross-worker.ts).
   */
  #makeCrossRings (): void {
    const n = this.slots.length
    if (n < 2) return
    const rings = this.slots.map((_, from) => this.slots.map((__, to) => from === to ? null : RingBuffer.create(CROSS_RING_BYTES).sab))
    const doorbells = this.slots.map((s) => s.doorbell.sab)
    for (const s of this.slots) {
      s.cross = { rx: rings.map((row) => row[s.index] ?? null), tx: rings[s.index] ?? [], doorbells }
    }
  }

  /** The slot that should own a new outbound dial (least dials so far). */
  pickSlot (): IoSlot {
    let best = this.slots[0] as IoSlot
    for (const s of this.slots) if (s.dials.size < best.dials.size) best = s
    return best
  }

  /** Graceful stop: workers flush within deadlineMs, then every thread ends. */
  async close (deadlineMs: number): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    for (const s of this.slots) s.stopping = true
    // Tell the members we are leaving (so they do not suspect a crash), then flush and close.
    // Bounded: a wedged router must not hold close() (its leave is a courtesy, not a correctness need).
    let bound: NodeJS.Timeout | undefined
    await Promise.race([
      this.#routerApi.leave().catch(() => {}),
      new Promise<void>((resolve) => { bound = setTimeout(resolve, Math.min(500, deadlineMs)) }),
    ])
    clearTimeout(bound)
    await Promise.all(this.slots.map(async (s) => {
      try { await s.api.close(deadlineMs) } catch { /* worker already gone */ }
    }))
    // Everything the workers delivered before closing reaches the host first.
    for (const s of this.slots) this.#drainAll(s)
    await this.destroy()
  }

  /** Immediate stop. Idempotent: a destroy() during a graceful close() and the close's own end share one. */
  async destroy (): Promise<void> {
    this.#destroying ??= this.#destroy()
    await this.#destroying
  }

  #destroying: Promise<void> | undefined

  async #destroy (): Promise<void> {
    this.#closed = true
    // Stop every socket first (bounded): terminating a worker whose HTTP
    // parser is mid-read aborts the process (a Node fatal error).
    await Promise.all(this.slots.map(async (s) => {
      let t: NodeJS.Timeout | undefined
      await Promise.race([
        s.api?.halt().catch(() => {}),
        new Promise<void>((resolve) => { t = setTimeout(resolve, 500); t.unref() }),
      ])
      clearTimeout(t)
    }))
    for (const s of this.slots) {
      s.stopping = true
      s.inbound.close()
      s.api?.[releaseProxy]()
    }
    await Promise.all([...this.slots.map(async (s) => await s.worker?.terminate()), this.#router?.terminate()])
  }

  /** Test hook: make IO worker `index` crash. */
  crashIo (index: number): void {
    const s = this.slots[index]
    if (s !== undefined) s.api.crash().catch(() => { /* it exits: that is the point */ })
  }

  #spawnRouter (): void {
    const data: RouterWorkerData = { kind: 'router', selfId: this.#o.selfId, identityDer: this.#o.identityDer, config: this.#o.config, logLevel: this.#o.logLevel, ...(this.#o.lock === undefined ? {} : { lock: this.#o.lock }) }
    // V8's default young generation, unlike the IO workers': with 3 MiB, the router's heap pages grew less
    // with join bursts (40 -> 80 idle links at one node: +2.3 MiB instead of +8.2 MiB), but idle CPU per
    // node (perf detection 6, 16 nodes, heartbeat 1 s) went from 0.85 and 0.51 % to 2.76 and 1.46 %.
    this.#router = new Worker(ROUTER_WORKER_URL, { workerData: data, stdout: true, stderr: false, name: 'meshwork-router' })
    // A stray console.log in the router must not pile up in host memory (nor reach its stdout).
    this.#router.stdout.resume()
    this.#routerApi = untilExit(wrap<RouterApi>(nodeEndpoint(this.#router)), this.#router, 'router worker')
    this.#router.on('error', (err) => { this.#o.logger.error({ component: 'supervisor', event: 'worker:error', worker: 'router', err }, 'router worker failed') })
  }

  async #spawnIo (slot: IoSlot): Promise<void> {
    const toRouter = new MessageChannel() // IO worker calls the router
    const toIo = new MessageChannel() // the router calls the IO worker
    const hostChannel = new MessageChannel() // the IO worker calls the host
    const callbacks: HostCallbacks = {
      ringFor: (peerId) => this.#o.host.ringFor(peerId),
      log: (records) => { forwardLogs(this.#o.logger, records) },
    }
    expose(callbacks, nodeEndpoint(hostChannel.port1))
    hostChannel.port1.unref()
    await this.#routerApi.attachWorker(slot.index, transfer(toIo.port2, [toIo.port2]) as any, transfer(toRouter.port1, [toRouter.port1]) as any)
    const data: IoWorkerData = {
      kind: 'io',
      index: slot.index,
      config: this.#o.config,
      identityDer: this.#o.identityDer,
      listen: slot.listen,
      inboundRing: slot.inbound.sab,
      doorbell: slot.doorbell.sab,
      routerPort: toRouter.port2,
      controlPort: toIo.port1,
      hostPort: hostChannel.port2,
      cross: slot.cross,
      logLevel: this.#o.logLevel,
      handleBase: slot.generation * HANDLE_GENERATION_SHIFT,
    }
    const release = holdWorkerHeapFloor()
    let worker: Worker
    try {
      worker = new Worker(IO_WORKER_URL, {
        workerData: data,
        transferList: [toRouter.port2, toIo.port1, hostChannel.port2],
        // Workers log through the host logger; a stray console.log must not reach the host's stdout.
        stdout: true,
        name: `meshwork-io-${slot.index}`,
        resourceLimits: { maxYoungGenerationSizeMb: IO_WORKER_YOUNG_GENERATION_MB },
      })
    } catch (err) {
      release() // no isolate will read the flag
      throw err
    }
    // The isolate exists once the worker runs JavaScript (or has failed).
    worker.once('online', release).once('error', release).once('exit', release)
    worker.stdout.resume()
    slot.worker = worker
    slot.api = untilExit(wrap<IoWorkerApi>(nodeEndpoint(worker)), worker, `IO worker ${slot.index}`)
    let failure: Error | undefined
    worker.on('error', (err) => { failure = err })
    worker.on('exit', (code) => {
      hostChannel.port1.close()
      if (slot.stopping || this.#closed) return
      this.#onCrash(slot, failure ?? new Error(`IO worker ${slot.index} exited with code ${code}`)).catch((err: unknown) => {
        // The mesh closing meanwhile ends the restart (its calls to the router fail): nothing to report then.
        if (!this.#closed) this.#o.logger.error({ component: 'supervisor', event: 'worker:restart-failed', worker: `io${slot.index}`, err: (err as Error).message }, 'could not restart the IO worker')
      })
    })
  }

  async #onCrash (slot: IoSlot, err: Error): Promise<void> {
    this.#o.logger.error({ component: 'supervisor', event: 'worker:crash', worker: `io${slot.index}`, err: err.message }, 'IO worker died; restarting it')
    this.#drainAll(slot)
    await this.#routerApi.releaseWorker(slot.index).catch(() => {})
    this.#o.host.workerLost(slot, err)
    if (!this.#restarts.allow(Date.now())) {
      this.#o.logger.error({ component: 'supervisor', event: 'worker:give-up', worker: `io${slot.index}` }, 'IO worker keeps crashing; not restarting it')
      return
    }
    slot.generation++
    this.#restartCount++
    await this.#spawnIo(slot)
    try {
      slot.listen = await slot.api.listen()
    } catch (e) {
      this.#o.logger.error({ component: 'supervisor', event: 'worker:listen-failed', worker: `io${slot.index}`, err: (e as Error).message }, 'restarted IO worker could not bind its listeners')
    }
    this.#o.host.workerRestarted(slot)
  }

  /** Dispatch every record waiting in a slot's inbound ring, now. */
  #drainAll (slot: IoSlot): void {
    while (!slot.inbound.isEmpty()) slot.inbound.drain((rec) => { this.#o.host.dispatch(slot, rec) })
  }

  /**
   * Host side of the inbound ring: sleeps in Atomics.waitAsync (no timer, no
   * handle on the host's loop) until the IO worker publishes, then dispatches
   * in batches, yielding between large batches so the host stays responsive.
   */
  async #readLoop (slot: IoSlot): Promise<void> {
    const ring = slot.inbound
    // One record that cannot be dispatched (a bug: listeners' throws are rethrown outside) must not end
    // this loop: every later record of the slot would never be read.
    const dispatch = (rec: Uint8Array): void => {
      try {
        this.#o.host.dispatch(slot, rec)
      } catch (err) {
        this.#o.logger.error({ component: 'supervisor', event: 'inbound:dispatch-failed', worker: slot.index, err }, 'could not dispatch an inbound record; skipped it')
      }
    }
    await this.#inboundOpen
    while (!ring.closed) {
      const r = await ring.waitForData()
      if (r === 'closed') break
      // Bounded by time, not only by count: the host's own work (its timers,
      // its I/O) gets the loop back within ~2 ms even under a flood.
      const end = performance.now() + 2
      do ring.drain(dispatch, 256)
      while (!ring.isEmpty() && performance.now() < end)
      if (!ring.isEmpty()) await yieldToIo()
    }
  }
}
