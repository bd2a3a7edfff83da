/**
 * Harness side of the child processes: fork a compiled `dist/perf/procs/*.js`
 * script, call its commands with a deadline each, and make sure it dies —
 * on close, on a scenario timeout, and when the harness itself exits.
 *
 * @module
 */
import { fork, type ChildProcess } from 'node:child_process'
import { appendFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { Api, Reply } from './ipc.js'

/** The argument type of a command: `null` for a command that takes none. */
export type ArgOf<F extends (...a: any[]) => unknown> = Parameters<F> extends [] ? null : Parameters<F>[0]

/** Every child still alive, so an exiting harness can kill them (no strays). */
const live = new Set<Child<Api>>()

/** Extra node flags for every child (e.g. `--cpu-prof`), set by the harness. */
let extraExecArgv: string[] = []
/** When profiling: file that maps child pids to their role, next to the profiles. */
let pidLog: string | undefined
export function setChildExecArgv (args: string[], pidLogFile?: string): void {
  extraExecArgv = [...args]
  pidLog = pidLogFile
}

/** Extra environment for every child (e.g. PERF_HOST_HEAP_MB), set by the harness. */
let extraEnv: Record<string, string> = {}
export function setChildEnv (env: Record<string, string>): void {
  extraEnv = { ...env }
}

let exitHooked = false
function hookExit (): void {
  if (exitHooked) return
  exitHooked = true
  // 'exit' handlers must be synchronous: SIGKILL is.
  process.on('exit', () => { killAll() })
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      killAll()
      process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1))
    })
  }
}

/** SIGKILL every live child. */
export function killAll (): void {
  for (const c of live) c.kill()
}

/** A forked perf child speaking the ipc.ts protocol. */
export class Child<A extends Api> {
  readonly name: string
  readonly #proc: ChildProcess
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>()
  readonly #ready: Promise<void>
  readonly #exited: Promise<number | null>
  #nextId = 1
  #exitCode: number | null | undefined

  private constructor (name: string, script: URL, env: Record<string, string>) {
    this.name = name
    hookExit()
    this.#proc = fork(fileURLToPath(script), [], {
      execArgv: ['--expose-gc', ...extraExecArgv],
      env: { ...process.env, ...extraEnv, ...env },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      serialization: 'advanced',
    })
    live.add(this as unknown as Child<Api>)
    if (pidLog !== undefined) appendFileSync(pidLog, `${String(this.#proc.pid)} ${name}\n`)
    let readyResolve!: () => void
    let readyReject!: (e: Error) => void
    this.#ready = new Promise((resolve, reject) => { readyResolve = resolve; readyReject = reject })
    this.#exited = new Promise((resolve) => {
      this.#proc.once('exit', (code, signal) => {
        this.#exitCode = code
        live.delete(this as unknown as Child<Api>)
        const err = new Error(`${this.name}: child exited (code ${String(code)}, signal ${String(signal)})`)
        readyReject(err)
        for (const p of this.#pending.values()) { clearTimeout(p.timer); p.reject(err) }
        this.#pending.clear()
        resolve(code)
      })
    })
    this.#ready.catch(() => {}) // observed through spawn()
    this.#proc.on('error', (err) => { readyReject(err) })
    this.#proc.on('message', (raw: unknown) => {
      const r = raw as Reply
      if (r.id === 0) { readyResolve(); return }
      const p = this.#pending.get(r.id)
      if (p === undefined) return
      this.#pending.delete(r.id)
      clearTimeout(p.timer)
      if (r.ok) p.resolve(r.result)
      else p.reject(new Error(`${this.name}: ${r.error}`))
    })
  }

  /** Fork `script` (a URL of a compiled dist/perf/procs/*.js) and wait until it serves. */
  static async spawn<A extends Api> (name: string, script: URL, opts: { timeoutMs?: number; env?: Record<string, string> } = {}): Promise<Child<A>> {
    const c = new Child<A>(name, script, opts.env ?? {})
    const timeoutMs = opts.timeoutMs ?? 10_000
    let timer: NodeJS.Timeout | undefined
    try {
      await Promise.race([
        c.#ready,
        new Promise<never>((_resolve, reject) => { timer = setTimeout(() => { reject(new Error(`${name}: not ready after ${timeoutMs} ms`)) }, timeoutMs) }),
      ])
    } catch (err) {
      c.kill()
      throw err
    } finally {
      clearTimeout(timer)
    }
    return c
  }

  get pid (): number | undefined { return this.#proc.pid }

  /** Call `cmd`; rejects if no answer within `timeoutMs` or the child dies. */
  async call<K extends keyof A & string> (cmd: K, arg: ArgOf<A[K]>, timeoutMs: number): Promise<Awaited<ReturnType<A[K]>>> {
    if (this.#exitCode !== undefined) throw new Error(`${this.name}: child already exited`)
    const id = this.#nextId++
    // Built here, so the stack names the call that timed out.
    const timeoutErr = new Error(`${this.name}: ${cmd} got no answer within ${timeoutMs} ms`)
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => { this.#pending.delete(id); reject(timeoutErr) }, timeoutMs)
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer })
      this.#proc.send({ id, cmd, arg })
    })
  }

  /** Fire-and-forget (e.g. `stop`); errors are ignored. */
  notify<K extends keyof A & string> (cmd: K, arg: ArgOf<A[K]>): void {
    if (this.#exitCode !== undefined || !this.#proc.connected) return
    this.#proc.send({ id: -1, cmd, arg })
  }

  /**
   * Ask the child to exit (so `--cpu-prof` profiles get written), and SIGKILL
   * it if it has not after `graceMs`.
   */
  async close (graceMs = 3_000): Promise<void> {
    if (this.#exitCode !== undefined) return
    if (this.#proc.connected) this.#proc.send({ id: -1, cmd: 'exit', arg: null })
    const t = setTimeout(() => { this.kill() }, graceMs)
    await this.#exited
    clearTimeout(t)
  }

  /**
   * SIGKILL now (synchronous; safe in an 'exit' handler). SIGCONT first: a
   * child some scenario SIGSTOPped must not linger stopped (harmless otherwise).
   */
  kill (): void {
    if (this.#exitCode !== undefined) return
    try { this.#proc.kill('SIGCONT') } catch { /* already gone */ }
    try { this.#proc.kill('SIGKILL') } catch { /* already gone */ }
  }
}

/**
 * Tracks the children one scenario spawns, so the harness can kill them all
 * when the scenario ends, fails or times out.
 */
export class ChildGroup {
  readonly #children = new Set<Child<any>>()
  #over = false

  /** @throws Error once the group was killed: a timed-out scenario that runs on must not spawn more. */
  async spawn<A extends Api> (name: string, script: URL, opts?: { timeoutMs?: number; env?: Record<string, string> }): Promise<Child<A>> {
    if (this.#over) throw new Error(`${name}: the scenario is over (timed out or failed); not spawning`)
    const c = await Child.spawn<A>(name, script, opts)
    this.#children.add(c)
    if (this.#over) c.kill() // killed while it was starting
    return c
  }

  /** Graceful close of every child, in parallel. */
  async closeAll (graceMs?: number): Promise<void> {
    await Promise.all([...this.#children].map(async (c) => { await c.close(graceMs) }))
    this.#children.clear()
  }

  /** SIGKILL every child, now and any spawned later. */
  killAll (): void {
    this.#over = true
    for (const c of this.#children) c.kill()
    this.#children.clear()
  }
}

/** URL of a compiled child script under dist/perf/procs/. */
export function procUrl (name: string): URL {
  return new URL(`../procs/${name}.js`, import.meta.url)
}
