// Worker logs reach the host's logger: records made in an IO worker are
// forwarded over the control plane to the pino logger the host passed in,
// with their fields, and nothing is written to the process's stdout.
import { describe, it, expect, afterEach } from 'vitest'
import { fork, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { rawHandshake } from '../helpers/raw-peer.js'
import { until } from '../helpers/mesh.js'

const CHILD = fileURLToPath(new URL('../fixtures/log-child.mjs', import.meta.url))

interface LogChild {
  proc: ChildProcess
  address: string
  id: string
  records: Array<Record<string, any>>
  /** IPC messages other than log records (ready, peer:up, closed). */
  events: Array<Record<string, any>>
  stdout: () => string
  /** The first record (seen already or still to come) that `match` accepts. */
  record: (match: (r: Record<string, any>) => boolean, label: string) => Promise<Record<string, any>>
}

const children: ChildProcess[] = []

afterEach(async () => {
  await Promise.all(children.splice(0).map(async (p) => {
    if (p.exitCode === null && p.signalCode === null) {
      p.kill('SIGKILL')
      await once(p, 'exit')
    }
  }))
})

async function startChild (level: string): Promise<LogChild> {
  const proc = fork(CHILD, [level], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] })
  children.push(proc)
  let out = ''
  proc.stdout?.setEncoding('utf8').on('data', (s: string) => { out += s })
  proc.stderr?.resume()
  const records: Array<Record<string, any>> = []
  const events: Array<Record<string, any>> = []
  const watchers = new Set<() => void>()
  proc.on('message', (m: any) => {
    if (m.type === 'log') records.push(m.record)
    else events.push(m)
    for (const w of [...watchers]) w()
  })
  const find = async (list: Array<Record<string, any>>, match: (r: Record<string, any>) => boolean, label: string): Promise<Record<string, any>> =>
    await new Promise((resolve, reject) => {
      const check = (): void => {
        const r = list.find(match)
        if (r !== undefined) { clearTimeout(t); watchers.delete(check); resolve(r) }
      }
      const t = setTimeout(() => {
        watchers.delete(check)
        reject(new Error(`no ${label} within 10000 ms; got:\n${list.map((x) => JSON.stringify(x)).join('\n')}`))
      }, 10_000)
      watchers.add(check)
      check()
    })
  const ready = await find(events, (m) => m.type === 'ready', 'ready message')
  const record = async (match: (r: Record<string, any>) => boolean, label: string): Promise<Record<string, any>> => await find(records, match, `log record ${label}`)
  return { proc, address: ready.addresses[0], id: ready.id, records, events, stdout: () => out, record }
}

/** Close the child's mesh, wait for its exit, and return what it wrote to stdout. */
async function closeChild (c: LogChild): Promise<string> {
  const exited = once(c.proc, 'close')
  c.proc.send({ type: 'close' })
  await Promise.race([exited, new Promise((_resolve, reject) => { setTimeout(() => { reject(new Error('child did not exit')) }, 10_000) })])
  return c.stdout()
}

describe('worker logs reach the host logger', () => {
  it('a protocol violation logged in the IO worker arrives at the host\'s pino logger with component, event and peer; stdout stays empty', async () => {
    const c = await startChild('debug')
    const raw = await rawHandshake(c.address)
    // debug: the worker explains the state change.
    const up = await c.record((r) => r.event === 'peer:up' && r.peer === raw.id, 'peer:up (debug, from the IO worker)')
    expect(up).toMatchObject({ level: 20, component: 'io0', direction: 'inbound', msg: expect.any(String) })

    raw.ws.send(Buffer.from([0x99, 0x01, 0x10, 0x01, 0x00, 0xc0, 0xc0, 0x00, 0x01])) // DATA frame cut before its payload
    expect((await raw.closed).code).toBe(1002)
    const rejected = await c.record((r) => r.event === 'frame:rejected' && r.peer === raw.id, 'frame:rejected (warn, from the IO worker)')
    expect(rejected).toMatchObject({ level: 40, component: 'io0', reason: expect.any(String), msg: expect.any(String) })
    expect(typeof rejected.time).toBe('number')
    // The host's own records go to the same logger.
    expect(c.records.some((r) => r.component === 'mesh' && r.event === 'start' && r.peer === c.id)).toBe(true)
    await c.record((r) => r.event === 'peer:down' && r.peer === raw.id, 'peer:down (debug, from the IO worker)')

    expect(await closeChild(c)).toBe('')
  })

  it('at level info the worker\'s debug records are not forwarded, its warnings are', async () => {
    const c = await startChild('info')
    const raw = await rawHandshake(c.address)
    await until(() => c.events.some((m) => m.type === 'peer:up' && m.id === raw.id), { label: 'peer:up in the child' })
    raw.ws.send('not a binary frame')
    expect((await raw.closed).code).toBe(1002)
    await c.record((r) => r.event === 'frame:rejected' && r.level === 40, 'frame:rejected')
    expect(c.records.filter((r) => r.level < 30)).toEqual([])
    expect(await closeChild(c)).toBe('')
  })
})
