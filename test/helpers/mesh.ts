// Integration helpers. Integration tests use the BUILT library (dist/, made by
// `pretest`): worker threads cannot load .ts on Node 20.
import { once, type EventEmitter } from 'node:events'
import { createMesh, type Mesh, type MeshOptions } from '../../dist/src/index.js'

const open: Mesh[] = []

/** createMesh on 127.0.0.1:0, quiet, closed by closeAll(). */
export async function makeMesh (options: MeshOptions = {}): Promise<Mesh> {
  const m = await createMesh({ listen: 'ws://127.0.0.1:0', logger: false, ...options })
  open.push(m)
  return m
}

/**
 * Close every mesh made by makeMesh (use in afterEach). Fails the test if a
 * send pump of one still open found queued frames by its safety-net timeout
 * instead of a doorbell ring (IoWorkerStats.pumpRescues): a missed wake-up
 * that would otherwise only show as a 5 s delay.
 */
export async function closeAll (): Promise<void> {
  const all = open.splice(0)
  // A worker a test crashed on purpose cannot answer (its successor can): count what answers.
  const rescues = await Promise.all(all.map(async (m) => await m._ioStats().then((st) => st.reduce((n, s) => n + s.pumpRescues, 0), () => 0)))
  await Promise.all(all.map(async (m) => { await m.destroy() }))
  const n = rescues.reduce((a, b) => a + b, 0)
  if (n > 0) throw new Error(`${n} send-pump rescue(s): frames were queued and no doorbell rang for them`)
}

/** Two linked nodes: a dialed b. */
export async function makePair (a: MeshOptions = {}, b: MeshOptions = {}): Promise<[Mesh, Mesh]> {
  const mb = await makeMesh(b)
  const ma = await makeMesh(a)
  const up = waitFor(mb, 'peer:up', { label: 'b sees a' })
  await ma.connect(mb.addresses[0] as string)
  await up
  return [ma, mb]
}

/** Wait for one event (optionally matching `filter`) with a deadline. */
export async function waitFor<T = any> (emitter: EventEmitter, event: string, o: { timeoutMs?: number; label?: string; filter?: (v: T) => boolean } = {}): Promise<T> {
  const timeoutMs = o.timeoutMs ?? 5000
  const signal = AbortSignal.timeout(timeoutMs)
  try {
    for (;;) {
      const [v] = await once(emitter, event, { signal }) as [T]
      if (o.filter === undefined || o.filter(v)) return v
    }
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw new Error(`timed out after ${timeoutMs} ms waiting for '${event}'${o.label === undefined ? '' : ` (${o.label})`}`)
    throw err
  }
}

/** Collect `n` messages from `mesh`. */
export async function collect (mesh: Mesh, n: number, timeoutMs = 10_000): Promise<any[]> {
  const got: any[] = []
  return await new Promise((resolve, reject) => {
    const t = setTimeout(() => { mesh.off('message', on); reject(new Error(`timed out with ${got.length}/${n} messages`)) }, timeoutMs)
    const on = (m: any): void => {
      got.push(m)
      if (got.length === n) { clearTimeout(t); mesh.off('message', on); resolve(got) }
    }
    mesh.on('message', on)
  })
}

/** Poll a condition with a deadline (for state that has no event). A function label is read at the deadline, so it can report the state then. */
export async function until (cond: () => boolean | Promise<boolean>, o: { timeoutMs?: number; label?: string | (() => string) } = {}): Promise<void> {
  const deadline = Date.now() + (o.timeoutMs ?? 5000)
  for (;;) {
    if (await cond()) return
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${(typeof o.label === 'function' ? o.label() : o.label) ?? 'condition'}`)
    await new Promise((resolve) => setImmediate(resolve))
  }
}
