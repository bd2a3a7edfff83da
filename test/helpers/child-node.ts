// A mesh node in a child process (test/fixtures/mesh-child.mjs).
import { fork, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'

const FIXTURE = fileURLToPath(new URL('../fixtures/mesh-child.mjs', import.meta.url))
const children = new Set<ChildProcess>()

export interface ChildNode { proc: ChildProcess; id: string; addresses: string[]; readyAt: number }

export async function spawnNode (options: Record<string, unknown> = {}, readyTimeoutMs = 10_000): Promise<ChildNode> {
  const proc = fork(FIXTURE, [JSON.stringify(options)], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
  children.add(proc)
  proc.once('exit', () => { children.delete(proc) })
  const msg = await nextMessage(proc, 'ready', readyTimeoutMs)
  return { proc, id: msg.id, addresses: msg.addresses, readyAt: performance.now() }
}

/** The next IPC message of `type` from the child. */
export async function nextMessage (proc: ChildProcess, type: string, timeoutMs = 5000): Promise<any> {
  // One listener for the whole wait: IPC messages that arrive in one chunk are
  // emitted back to back, and a once() loop re-armed in a microtask misses all
  // but the first of them.
  return await new Promise((resolve, reject) => {
    const t = setTimeout(() => { proc.off('message', on); reject(new Error(`child sent no '${type}' within ${timeoutMs} ms`)) }, timeoutMs)
    const on = (m: any): void => {
      if (m?.type !== type) return
      clearTimeout(t)
      proc.off('message', on)
      resolve(m)
    }
    proc.on('message', on)
  })
}

/** kill -9 every child still running (afterEach). */
export async function killChildren (): Promise<void> {
  const all = [...children]
  await Promise.all(all.map(async (p) => {
    if (p.exitCode !== null || p.signalCode !== null) return
    const exited = once(p, 'exit')
    p.kill('SIGCONT')
    p.kill('SIGKILL')
    await exited
  }))
}

/**
 * Send `cmd` to the child and wait for its reply of type `replyType`. Listens
 * with a persistent handler, attached before sending: IPC messages that
 * arrive in one chunk are emitted in consecutive ticks, before the promise
 * continuations of a `once()` loop run, so a chatty child's reply could slip
 * between two `once()` calls.
 */
export async function request (proc: ChildProcess, cmd: Record<string, unknown>, replyType: string, timeoutMs = 5000): Promise<any> {
  const timeout = new Error(`child sent no '${replyType}' within ${timeoutMs} ms of '${String(cmd['type'])}'`)
  return await new Promise((resolve, reject) => {
    const onMessage = (m: any): void => { if (m?.type === replyType) { done(); resolve(m) } }
    const onExit = (code: number | null, signal: string | null): void => { done(); reject(new Error(`child exited (${String(code ?? signal)}) before '${replyType}'`)) }
    const timer = setTimeout(() => { done(); reject(timeout) }, timeoutMs)
    const done = (): void => { clearTimeout(timer); proc.off('message', onMessage); proc.off('exit', onExit) }
    proc.on('message', onMessage)
    proc.once('exit', onExit)
    proc.send(cmd)
  })
}
