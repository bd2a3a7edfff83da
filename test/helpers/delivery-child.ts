// Nodes in child processes for the delivery fault tests (test/fixtures/delivery-child.mjs).
import { fork, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'

const FIXTURE = fileURLToPath(new URL('../fixtures/delivery-child.mjs', import.meta.url))
const children = new Set<ChildProcess>()

export interface DeliveryChild { proc: ChildProcess; id: string; addresses: string[] }

/**
 * Fork a node with mesh `options` and fixture `role`; resolves when its mesh
 * has started. `exposeGc`: the child runs with --expose-gc (its 'mem-settled'
 * command needs it).
 */
export async function spawnDeliveryNode (options: Record<string, unknown>, role: Record<string, unknown> = {}, readyTimeoutMs = 15_000, o: { exposeGc?: boolean } = {}): Promise<DeliveryChild> {
  const execArgv = o.exposeGc === true ? [...process.execArgv, '--expose-gc'] : process.execArgv
  const proc = fork(FIXTURE, [JSON.stringify(options), JSON.stringify(role)], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], execArgv })
  children.add(proc)
  proc.once('exit', () => { children.delete(proc) })
  const msg = await reply(proc, undefined, 'ready', readyTimeoutMs)
  return { proc, id: msg.id, addresses: msg.addresses }
}

/**
 * Send `cmd` (if any) and wait for the child's message of type `type`, with a
 * deadline. The listener is attached before sending, and an 'error' message
 * from the child (a command that threw) or its exit rejects.
 */
export async function reply (proc: ChildProcess, cmd: Record<string, unknown> | undefined, type: string, timeoutMs = 5000): Promise<any> {
  const timeout = new Error(`child sent no '${type}' within ${timeoutMs} ms${cmd === undefined ? '' : ` of '${String(cmd['type'])}'`}`)
  return await new Promise((resolve, reject) => {
    const onMessage = (m: any): void => {
      if (m?.type === type) { done(); resolve(m) } else if (m?.type === 'error') { done(); reject(new Error(`child: ${String(m.message)}`)) }
    }
    const onExit = (code: number | null, signal: string | null): void => { done(); reject(new Error(`child exited (${String(code ?? signal)}) before '${type}'`)) }
    const timer = setTimeout(() => { done(); reject(timeout) }, timeoutMs)
    const done = (): void => { clearTimeout(timer); proc.off('message', onMessage); proc.off('exit', onExit) }
    proc.on('message', onMessage)
    proc.once('exit', onExit)
    if (cmd === undefined) return
    if (!proc.connected) { done(); reject(new Error(`child gone before '${String(cmd['type'])}'`)); return }
    // With a callback a failed send (the child just died) is reported here, not as an 'error' event.
    proc.send(cmd, (err) => { if (err !== null) { done(); reject(err) } })
  })
}

/** Wait for a message matching `pred`, with a deadline (attach before causing it). */
export async function nextMatching (proc: ChildProcess, pred: (m: any) => boolean, timeoutMs: number, label: string): Promise<any> {
  return await new Promise((resolve, reject) => {
    const onMessage = (m: any): void => { if (pred(m)) { done(); resolve(m) } }
    const timer = setTimeout(() => { done(); reject(new Error(`timed out after ${timeoutMs} ms waiting for ${label}`)) }, timeoutMs)
    const done = (): void => { clearTimeout(timer); proc.off('message', onMessage) }
    proc.on('message', onMessage)
  })
}

/** kill -9 now; resolves when it is gone. */
export async function kill9 (proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return
  const exited = once(proc, 'exit')
  proc.kill('SIGKILL')
  await exited
}

/** SIGCONT + SIGKILL every child still running (afterEach). */
export async function killDeliveryChildren (): Promise<void> {
  await Promise.all([...children].map(async (p) => {
    if (p.exitCode !== null || p.signalCode !== null) return
    const exited = once(p, 'exit')
    p.kill('SIGCONT')
    p.kill('SIGKILL')
    await exited
  }))
}
