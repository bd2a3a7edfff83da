// `meshwork node`, run as users run it: the built CLI (dist/) in child processes.
import { describe, it, expect, afterEach } from 'vitest'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('../..', import.meta.url))
const CLI = join(root, 'dist/src/cli/main.js')
const DEADLINE_MS = 10_000

interface Exit { code: number | null; signal: NodeJS.Signals | null }

/** A running CLI process: its stdout lines so far, its stderr, and its exit. */
interface Cli {
  proc: ChildProcess
  lines: string[]
  stderr: string
  /** Resolves once the process exited and its stdio closed (every line read). */
  exited: Promise<Exit>
  /** Set once stdout ended: no more lines will come. */
  ended: boolean
  /** Called after every new line and at the end of stdout. */
  watchers: Set<() => void>
}

const running = new Set<Cli>()
const tmpDirs: string[] = []

function start (args: string[]): Cli {
  const proc = spawn(process.execPath, [CLI, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
  const cli: Cli = { proc, lines: [], stderr: '', exited: undefined as unknown as Promise<Exit>, ended: false, watchers: new Set() }
  cli.exited = once(proc, 'close').then(([code, signal]) => ({ code, signal }) as Exit)
  proc.stderr?.setEncoding('utf8').on('data', (s: string) => { cli.stderr += s })
  const rl = createInterface({ input: proc.stdout as NodeJS.ReadableStream })
  const notify = (): void => { for (const w of [...cli.watchers]) w() }
  rl.on('line', (l) => { cli.lines.push(l); notify() })
  rl.on('close', () => { cli.ended = true; notify() })
  running.add(cli)
  void cli.exited.then(() => { running.delete(cli) })
  return cli
}

/** Run the CLI to completion (with a deadline). */
async function run (args: string[]): Promise<Exit & { stdout: string; stderr: string }> {
  const cli = start(args)
  const exit = await deadline(cli.exited, `exit of meshwork ${args.join(' ')}`)
  return { ...exit, stdout: cli.lines.join('\n'), stderr: cli.stderr }
}

/** The first stdout line (seen already or still to come) that `match` accepts; rejects at the deadline or at end of output. */
async function waitForLine (cli: Cli, match: (line: string) => boolean, label: string, timeoutMs = DEADLINE_MS): Promise<string> {
  return await new Promise<string>((resolve, reject) => {
    const check = (): void => {
      const line = cli.lines.find(match)
      if (line !== undefined) { cleanup(); resolve(line) } else if (cli.ended) fail('output ended')
    }
    const fail = (why: string): void => {
      cleanup()
      reject(new Error(`${label}: ${why}\n--- stdout:\n${cli.lines.join('\n')}\n--- stderr:\n${cli.stderr.slice(-4000)}`))
    }
    const timer = setTimeout(() => { fail(`not seen within ${timeoutMs} ms`) }, timeoutMs)
    const cleanup = (): void => { clearTimeout(timer); cli.watchers.delete(check) }
    cli.watchers.add(check)
    check()
  })
}

/** The first `--json` record with `event` that `match` accepts. */
async function waitForEvent (cli: Cli, event: string, match: (r: Record<string, any>) => boolean = () => true): Promise<Record<string, any>> {
  const parse = (line: string): Record<string, any> | undefined => {
    try { return JSON.parse(line) as Record<string, any> } catch { return undefined }
  }
  const line = await waitForLine(cli, (l) => { const r = parse(l); return r?.event === event && match(r) }, `'${event}' record`)
  return parse(line) as Record<string, any>
}

async function deadline<T> (p: Promise<T>, label: string, timeoutMs = DEADLINE_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([p, new Promise<never>((_resolve, reject) => { timer = setTimeout(() => { reject(new Error(`${label}: not within ${timeoutMs} ms`)) }, timeoutMs) })])
  } finally {
    clearTimeout(timer)
  }
}

/** Start a `--json` node on 127.0.0.1 port 0 and read its id and address. */
async function startNode (extra: string[] = []): Promise<{ cli: Cli; id: string; address: string }> {
  const cli = start(['node', '--json', '--listen', 'ws://127.0.0.1:0', ...extra])
  const { id } = await waitForEvent(cli, 'node')
  const { addresses } = await waitForEvent(cli, 'listening')
  expect(id).toMatch(/^[a-z2-7]{52}$/)
  expect(addresses).toEqual([expect.stringMatching(/^ws:\/\/127\.0\.0\.1:\d+$/)])
  return { cli, id, address: addresses[0] }
}

async function tmp (): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'meshwork-cli-'))
  tmpDirs.push(dir)
  return dir
}

afterEach(async () => {
  await Promise.all([...running].map(async (cli) => {
    if (cli.proc.exitCode === null && cli.proc.signalCode === null) cli.proc.kill('SIGKILL')
    await cli.exited
  }))
  await Promise.all(tmpDirs.splice(0).map(async (d) => { await rm(d, { recursive: true, force: true }) }))
})

describe('meshwork CLI', () => {
  it('`meshwork --help` lists the commands; `meshwork node --help` lists every flag with its default', async () => {
    const top = await run(['--help'])
    expect(top.code).toBe(0)
    expect(top.stdout).toMatch(/^\s+demo\b/m)
    expect(top.stdout).toMatch(/^\s+node\b/m)
    expect(top.stdout).toMatch(/^\s+bench\b/m)

    const node = await run(['node', '--help'])
    expect(node.code).toBe(0)
    for (const flag of ['--listen', '--bootstrap', '--data-dir', '--allow', '--mesh-key-file', '--join', '--heartbeat-ms', '--threads', '--nice', '--log-level', '--dial-only', '--json', '--metrics-port', '--metrics-host']) {
      expect(node.stdout).toContain(flag)
    }
    const help = node.stdout.replace(/\s+/g, ' ')
    expect(help).toContain('(default: ws://127.0.0.1:0)')
    expect(help).toContain('(default: 1000)')
    expect(help).toContain('default: "info"')
    expect(help).toContain('default: "127.0.0.1"')
  })

  it('two nodes link through --bootstrap; SIGTERM closes one gracefully (exit 0) and the other sees peer:down', async () => {
    const a = await startNode()
    const b = await startNode(['--bootstrap', `${a.id}@${a.address}`])

    const upAtA = await waitForEvent(a.cli, 'peer:up', (r) => r.peer === b.id)
    const upAtB = await waitForEvent(b.cli, 'peer:up', (r) => r.peer === a.id)
    expect(upAtA).toMatchObject({ direction: 'inbound' })
    expect(upAtB).toMatchObject({ direction: 'outbound', address: a.address })
    expect(Date.parse(upAtB.ts)).not.toBeNaN()
    expect(await waitForEvent(b.cli, 'options')).toMatchObject({ bootstrap: [`${a.id}@${a.address}`], join: 'open', heartbeatMs: 1000, threads: 1 })

    b.cli.proc.kill('SIGTERM')
    await waitForEvent(a.cli, 'peer:down', (r) => r.peer === b.id)
    await waitForEvent(b.cli, 'closed')
    expect(await deadline(b.cli.exited, 'exit of b')).toEqual({ code: 0, signal: null })
    // a keeps running.
    expect(a.cli.proc.exitCode).toBeNull()
  })

  it('--data-dir keeps the peer id across a restart (SIGINT closes with exit 0)', async () => {
    const dataDir = join(await tmp(), 'node-data')
    const first = await startNode(['--data-dir', dataDir])
    expect(await waitForEvent(first.cli, 'options')).toMatchObject({ dataDir })
    first.cli.proc.kill('SIGINT')
    await waitForEvent(first.cli, 'closed')
    expect(await deadline(first.cli.exited, 'exit of the first run')).toEqual({ code: 0, signal: null })

    const second = await startNode(['--data-dir', dataDir])
    expect(second.id).toBe(first.id)
  })

  it('--mesh-key-file: the key is read from the file (one trailing newline ignored) and never printed', async () => {
    const dir = await tmp()
    const key = 'correct-horse-battery-staple'
    await writeFile(join(dir, 'a.key'), `${key}\n`, { mode: 0o600 })
    await writeFile(join(dir, 'b.key'), key, { mode: 0o600 })
    const a = await startNode(['--mesh-key-file', join(dir, 'a.key')])
    const b = await startNode(['--mesh-key-file', join(dir, 'b.key'), '--bootstrap', a.address])
    expect(await waitForEvent(a.cli, 'options')).toMatchObject({ join: 'key', meshKeyFile: join(dir, 'a.key') })
    await waitForEvent(a.cli, 'peer:up', (r) => r.peer === b.id)
    await waitForEvent(b.cli, 'peer:up', (r) => r.peer === a.id)

    await writeFile(join(dir, 'short.key'), 'too-short\n')
    const bad = await run(['node', '--json', '--mesh-key-file', join(dir, 'short.key')])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain('options.meshKey')
    for (const out of [a.cli.lines.join('\n'), a.cli.stderr, b.cli.lines.join('\n'), b.cli.stderr, bad.stdout, bad.stderr]) {
      expect(out).not.toContain(key)
      expect(out).not.toContain('too-short')
    }
  })

  it.each([
    [['--heartbeat-ms', '-5'], 'heartbeat.intervalMs'],
    [['--listen', 'http://x'], 'options.listen'],
    [['--threads', 'many'], 'options.threads.io'],
    [['--nice', '40'], 'options.threads.nice'],
  ])('invalid option %j: exit 2 with the library message naming %s', async (args, path) => {
    const r = await run(['node', '--json', ...args])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain(path)
    expect(r.stderr).toContain(args[0])
    expect(r.stdout).toBe('')
  })

  it('without --json: human-readable lines, events stamped with the ISO time', async () => {
    const cli = start(['node', '--listen', 'ws://127.0.0.1:0', '--log-level', 'silent'])
    const id = (await waitForLine(cli, (l) => l.startsWith('node '), 'node line')).slice('node '.length)
    expect(id).toMatch(/^[a-z2-7]{52}$/)
    await waitForLine(cli, (l) => /^listening ws:\/\/127\.0\.0\.1:\d+$/.test(l), 'listening line')
    await waitForLine(cli, (l) => l.startsWith('options ') && l.includes('join=open') && l.includes('heartbeat-ms=1000'), 'options line')
    cli.proc.kill('SIGTERM')
    await waitForLine(cli, (l) => /^\d{4}-\d\d-\d\dT[\d:.]+Z closed$/.test(l), 'closed line')
    expect((await deadline(cli.exited, 'exit')).code).toBe(0)
    expect(cli.stderr).toBe('')
  })

  it('--metrics-port 0: prints the URL, serves Prometheus text at GET /metrics (404 elsewhere), closes it on SIGTERM', async () => {
    const a = await startNode(['--metrics-port', '0'])
    const b = await startNode(['--bootstrap', a.address])
    await waitForEvent(a.cli, 'peer:up', (r) => r.peer === b.id)
    const { url } = await waitForEvent(a.cli, 'metrics')
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/)

    const res = await fetch(url, { signal: AbortSignal.timeout(DEADLINE_MS) })
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8')
    const text = await res.text()
    expect(text).toContain('# TYPE meshwork_peer_messages_sent_total counter')
    expect(text).toMatch(new RegExp(`^meshwork_peer_state\\{peer="${b.id}",state="healthy"\\} 1$`, 'm'))
    expect(text).toContain('meshwork_host_event_loop_delay_seconds{quantile="0.99"}')
    expect((await fetch(url.replace('/metrics', '/'), { signal: AbortSignal.timeout(DEADLINE_MS) })).status).toBe(404)
    expect((await fetch(url, { method: 'POST', signal: AbortSignal.timeout(DEADLINE_MS) })).status).toBe(405)

    // The scrapes above left keep-alive connections open: the close must not wait for them.
    a.cli.proc.kill('SIGTERM')
    await waitForEvent(a.cli, 'closed')
    expect(await deadline(a.cli.exited, 'exit of a')).toEqual({ code: 0, signal: null })
    await expect(fetch(url, { signal: AbortSignal.timeout(DEADLINE_MS) })).rejects.toThrow()
  })

  it('without --json the metrics URL is a line of its own; a bad --metrics-port exits 2 naming the flag', async () => {
    const cli = start(['node', '--listen', 'ws://127.0.0.1:0', '--log-level', 'silent', '--metrics-port', '0'])
    await waitForLine(cli, (l) => /^metrics http:\/\/127\.0\.0\.1:\d+\/metrics$/.test(l), 'metrics line')
    cli.proc.kill('SIGINT')
    expect((await deadline(cli.exited, 'exit')).code).toBe(0)

    for (const bad of ['http', '70000', '-1']) {
      const r = await run(['node', '--json', '--metrics-port', bad])
      expect(r.code).toBe(2)
      expect(r.stderr).toContain('--metrics-port')
      expect(r.stdout).toBe('')
    }
  })

  it('a taken --metrics-port exits 2 before the node starts', async () => {
    const a = await startNode(['--metrics-port', '0'])
    const { url } = await waitForEvent(a.cli, 'metrics')
    const port = new URL(url).port
    const r = await run(['node', '--json', '--metrics-port', port])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('EADDRINUSE')
    expect(r.stdout).toBe('')
  })

  it('`meshwork demo --nodes 2 --duration 1`: links the nodes, shows traffic, closes them and exits 0', async () => {
    const r = await run(['demo', '--nodes', '2', '--duration', '1', '--rate', '5'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toContain('meshwork demo: 2 nodes on 127.0.0.1')
    expect(r.stdout).toMatch(/total delivered: \d+/)
    expect(r.stdout).toMatch(/^done: \d+ messages sent, \d+ delivered between 2 nodes/m)
    expect((await run(['demo', '--nodes', '1'])).code).not.toBe(0)
  })

  it('`meshwork bench --help` describes the harness; `meshwork bench --list` lists its scenarios; an unknown scenario exits 2', async () => {
    const help = await run(['bench', '--help'])
    expect(help.code).toBe(0)
    expect(help.stdout).toContain('perf harness')
    // Harness flags pass through, with or without `--`.
    const list = await run(['bench', '--list'])
    expect(list.code, list.stderr).toBe(0)
    expect(list.stdout).toMatch(/^ {2}throughput\b/m)
    expect(list.stdout).toMatch(/^ {2}observability\b/m)
    const bad = await run(['bench', 'no-such-scenario'])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain('unknown scenario')
  })
})
