/**
 * `meshwork node`: run one standalone mesh node from the command line.
 *
 * Flags map onto `createMesh` options one to one; the library validates them
 * (it throws `MeshError` `INVALID_OPTIONS` naming the option), so this file
 * converts types only. Output goes to stdout, one line per record: a human
 * readable form, or JSON lines with `--json`. meshwork's own pino logs go to
 * stderr, so stdout stays parseable.
 *
 * Exit codes: 0 after a graceful close on SIGINT/SIGTERM, 1 when a second
 * signal forces the exit (or closing fails), 2 for invalid options.
 */
import { readFile } from 'node:fs/promises'
import { Command, Option } from 'commander'
import { pino } from 'pino'
import { createMesh, DEFAULTS, ErrorCode, MeshError, type Mesh, type MeshOptions } from '../index.js'
import { startMetricsServer, type MetricsServer } from './metrics-server.js'

/** The parsed flags of `meshwork node` (commander's camelCase names). */
export interface NodeCommandOptions {
  listen?: string[]
  bootstrap?: string[]
  dataDir?: string
  allow?: string[]
  meshKeyFile?: string
  join?: string
  /** A number, or the raw text when it is not one (so the library's message quotes what was typed). */
  heartbeatMs: number | string
  threads: number | string
  nice: number | string
  logLevel: LogLevel
  dialOnly: boolean
  json: boolean
  /** Serve `GET /metrics` on this HTTP port (0 picks one); absent: no endpoint. Raw text when not a number. */
  metricsPort?: number | string
  /** Interface of the metrics endpoint. */
  metricsHost: string
}

const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const
type LogLevel = typeof LOG_LEVELS[number]

/** Exit codes of `meshwork node`. */
export const NodeExitCode = { OK: 0, FAILED: 1, INVALID_OPTIONS: 2 } as const
export type NodeExitCode = typeof NodeExitCode[keyof typeof NodeExitCode]

/** Which flag sets which option path, to point the user at the flag in an INVALID_OPTIONS message. */
const FLAG_FOR_PATH: ReadonlyArray<readonly [string, string]> = [
  ['options.listen', '--listen'],
  ['options.bootstrap', '--bootstrap'],
  ['options.dataDir', '--data-dir'],
  ['options.allow', '--allow'],
  ['options.meshKey', '--mesh-key-file'],
  ['options.join', '--join'],
  ['options.heartbeat.intervalMs', '--heartbeat-ms'],
  ['options.threads.io', '--threads'],
  ['options.threads.nice', '--nice'],
]

/** Repeatable string flag: each use appends. */
const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value]

/**
 * Type conversion only: a numeric string becomes a number; anything else is
 * passed on as typed, so `createMesh` rejects it with a message that quotes it.
 */
const toNumber = (value: string): number | string => {
  const n = Number(value)
  return value.trim() !== '' && !Number.isNaN(n) ? n : value
}

/** Add the `node` subcommand to `program`. */
export function registerNodeCommand (program: Command): Command {
  return program.command('node')
    .description('run a standalone mesh node; prints its id, addresses and peer events until SIGINT/SIGTERM')
    .option('-l, --listen <url>', 'address to accept connections on, ws://host:port (repeatable; port 0 picks a free one) (default: ws://127.0.0.1:0)', collect)
    .option('-b, --bootstrap <peer>', 'peer to dial on start and keep linked: ws://host:port or <peerId>@ws://host:port (repeatable) (default: none)', collect)
    .option('-d, --data-dir <path>', 'directory for the identity key, so the peer id survives restarts (default: none, a new id on every start)')
    .option('--allow <peerId>', 'peer id that may connect (repeatable; once given, only listed peers may) (default: any peer)', collect)
    .option('--mesh-key-file <path>', 'file holding the shared mesh key (>= 16 chars; one trailing newline is ignored); never pass the key itself on the command line (default: none)')
    .option('--join <policy>', 'join policy: open | key | closed (default: "key" with a mesh key, else "open")')
    .option('--heartbeat-ms <ms>', 'time between heartbeats to each peer, in ms', toNumber, DEFAULTS.heartbeat.intervalMs)
    .option('--threads <n>', 'number of IO worker threads', toNumber, DEFAULTS.threads.io)
    .option('--nice <n>', "nice steps the mesh's worker threads run below the main thread (Linux; 0..19)", toNumber, DEFAULTS.threads.nice)
    .addOption(new Option('--log-level <level>', "level of meshwork's own pino logs, written to stderr").choices(LOG_LEVELS).default('info'))
    .addOption(new Option('--dial-only', 'do not listen: only dial out (for a node behind NAT)').default(false).conflicts('listen'))
    .option('--json', 'print JSON lines (one object per line) instead of text', false)
    .option('--metrics-port <port>', 'serve Prometheus metrics at http://<metrics-host>:<port>/metrics (0 picks a free port) (default: no endpoint)', toNumber)
    .option('--metrics-host <host>', 'interface the metrics endpoint listens on; it has no authentication, so think before exposing it', '127.0.0.1')
    .addHelpText('after', `
Output (stdout), one line each:
  node <peerId> | listening <url>… | options <summary>      on start
  metrics http://<host>:<port>/metrics                    on start, with --metrics-port
  <ISO time> peer:up <peerId> <inbound|outbound> <address>
  <ISO time> peer:down <peerId>
  <ISO time> peer:health <peerId> <previous>→<state> rtt=<ms>
  <ISO time> error <code> <message>
  <ISO time> closing <signal> | <ISO time> closed
With --json the same records as JSON objects with an "event" field.
Exit codes: 0 closed on SIGINT/SIGTERM, 1 forced by a second signal, 2 invalid options.

Example:
  meshwork node --listen ws://0.0.0.0:7000 --data-dir ./mesh-data \\
    --bootstrap <peerId>@ws://10.0.0.5:7000 --mesh-key-file ./mesh.key`)
    .action(async (flags: NodeCommandOptions) => { await runNode(flags) })
}

/**
 * Start the node, print its records until SIGINT/SIGTERM, close it gracefully
 * and exit the process (see the exit codes above).
 */
export async function runNode (flags: NodeCommandOptions): Promise<void> {
  const print = printer(flags.json)
  let mesh: Mesh | undefined
  let stopping: string | undefined
  // Closers run before `mesh.close()` on shutdown (the metrics endpoint).
  const shutdownHooks: Array<() => Promise<void>> = []

  const shutdown = async (): Promise<void> => {
    if (mesh === undefined) return // still starting: runNode closes it once createMesh returns
    try {
      for (const hook of shutdownHooks) await hook()
      await mesh.close()
    } catch (err) {
      process.stderr.write(`meshwork node: closing failed: ${(err as Error).message}\n`)
      await exit(NodeExitCode.FAILED)
    }
    print('closed', {}, 'closed')
    await exit(NodeExitCode.OK)
  }
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping !== undefined) {
      // The user insists: do not wait for the graceful close any longer.
      process.stderr.write(`meshwork node: ${signal} while closing; exiting now\n`)
      process.exit(NodeExitCode.FAILED)
    }
    stopping = signal
    print('closing', { signal }, `closing ${signal}`)
    void shutdown()
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)

  // The metrics endpoint binds first: a port that is taken or invalid fails
  // the start before any worker is spawned. It answers 503 until the node is up.
  let metricsServer: MetricsServer | undefined
  if (flags.metricsPort !== undefined) {
    const port = flags.metricsPort
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65_535) {
      process.stderr.write(`meshwork node: --metrics-port must be an integer from 0 to 65535 (got ${JSON.stringify(String(port))})\n  see meshwork node --help\n`)
      await exit(NodeExitCode.INVALID_OPTIONS)
      return
    }
    try {
      metricsServer = await startMetricsServer({
        port,
        host: flags.metricsHost,
        scrape: () => mesh === undefined || stopping !== undefined ? undefined : mesh.metrics(),
      })
    } catch (err) {
      process.stderr.write(`meshwork node: --metrics-port/--metrics-host: cannot listen on ${flags.metricsHost}:${port}: ${(err as Error).message}\n`)
      await exit(NodeExitCode.INVALID_OPTIONS)
      return
    }
    const server = metricsServer
    shutdownHooks.push(async () => { await server.close() })
  }

  try {
    mesh = await createMesh(await toMeshOptions(flags))
  } catch (err) {
    await metricsServer?.close()
    process.stderr.write(`meshwork node: ${(err as Error).message}\n`)
    const flagNames = err instanceof MeshError ? flagsNamedBy(err) : []
    if (flagNames.length > 0) process.stderr.write(`  check ${flagNames.join(', ')}; see meshwork node --help\n`)
    await exit(err instanceof MeshError && err.code === ErrorCode.INVALID_OPTIONS ? NodeExitCode.INVALID_OPTIONS : NodeExitCode.FAILED)
    return
  }

  mesh.on('peer:up', (p) => { print('peer:up', { peer: p.id, direction: p.direction, address: p.address ?? null }, `peer:up ${p.id} ${p.direction} ${p.address ?? '-'}`) })
  mesh.on('peer:down', (p) => { print('peer:down', { peer: p.id }, `peer:down ${p.id}`) })
  mesh.on('peer:health', (h) => {
    const rtt = h.rttMs === undefined ? undefined : Math.round(h.rttMs * 10) / 10
    print('peer:health', { peer: h.peer, previous: h.previous, state: h.state, rttMs: rtt ?? null }, `peer:health ${h.peer} ${h.previous}→${h.state} rtt=${rtt ?? '-'}`)
  })
  // Listening also keeps an `error` from crashing the process (see the README on `error`).
  mesh.on('error', (e) => { print('error', { code: e.code, message: e.message }, `error ${e.code} ${e.message}`) })

  const o = mesh.options
  const bootstrap = o.bootstrap.map((b) => b.peerId === undefined ? b.url : `${b.peerId}@${b.url}`)
  print('node', { id: mesh.id }, `node ${mesh.id}`, false)
  print('listening', { addresses: mesh.addresses }, mesh.addresses.length === 0 ? 'listening none (dial-only)' : `listening ${mesh.addresses.join(' ')}`, false)
  if (metricsServer !== undefined) print('metrics', { url: metricsServer.url }, `metrics ${metricsServer.url}`, false)
  const summary = {
    bootstrap,
    dataDir: o.dataDir ?? null,
    join: o.join,
    allow: o.allow === undefined ? null : [...o.allow],
    meshKeyFile: flags.meshKeyFile ?? null,
    heartbeatMs: o.heartbeat.intervalMs,
    threads: o.threads.io,
    logLevel: flags.logLevel,
  }
  print('options', summary, 'options ' + [
    `bootstrap=${bootstrap.length === 0 ? 'none' : bootstrap.join(',')}`,
    `data-dir=${summary.dataDir ?? 'none'}`,
    `join=${summary.join}`,
    `allow=${summary.allow === null ? 'any' : `${summary.allow.length} peer(s)`}`,
    `mesh-key=${summary.meshKeyFile === null ? 'none' : `from ${summary.meshKeyFile}`}`,
    `heartbeat-ms=${summary.heartbeatMs}`,
    `threads=${summary.threads}`,
    `log-level=${summary.logLevel}`,
  ].join(' '), false)

  // A signal that arrived while the node was starting.
  if (stopping !== undefined) await shutdown()
}

/** Map the flags onto `createMesh` options. Reads the mesh key file. */
async function toMeshOptions (flags: NodeCommandOptions): Promise<MeshOptions> {
  const options: MeshOptions = {
    listen: flags.dialOnly ? false : flags.listen,
    bootstrap: flags.bootstrap,
    dataDir: flags.dataDir,
    allow: flags.allow,
    join: flags.join as MeshOptions['join'],
    // Non-numeric text is passed on as typed, for createMesh to reject by name.
    heartbeat: { intervalMs: flags.heartbeatMs as number },
    threads: { io: flags.threads as number, nice: flags.nice as number },
    // stdout carries the node's records; the logs go to stderr.
    logger: flags.logLevel === 'silent' ? false : pino({ level: flags.logLevel }, pino.destination(2)),
  }
  if (flags.meshKeyFile !== undefined) {
    // From a file, never argv: other users can read a process's arguments (ps).
    let key: string
    try {
      key = await readFile(flags.meshKeyFile, 'utf8')
    } catch (err) {
      throw new MeshError(ErrorCode.INVALID_OPTIONS, `--mesh-key-file: cannot read ${flags.meshKeyFile}: ${(err as Error).message}`, { cause: err })
    }
    options.meshKey = key.replace(/\r?\n$/, '')
  }
  return options
}

/** The flags behind the option paths an INVALID_OPTIONS error names. */
function flagsNamedBy (err: MeshError): string[] {
  const issues = err.details?.issues
  const paths = Array.isArray(issues)
    ? issues.map((i: { path?: unknown }) => String(i.path))
    : [String(err.details?.path ?? '')]
  const flags = new Set<string>()
  for (const path of paths) {
    for (const [prefix, flag] of FLAG_FOR_PATH) {
      if (path === prefix || path.startsWith(`${prefix}.`) || path.startsWith(`${prefix}[`)) flags.add(flag)
    }
  }
  return [...flags]
}

/**
 * One record per stdout line: `{ ts, event, ...fields }` as JSON, or the
 * human text, prefixed with the ISO time when `stamped`.
 */
function printer (json: boolean): (event: string, fields: Record<string, unknown>, text: string, stamped?: boolean) => void {
  return (event, fields, text, stamped = true) => {
    const ts = new Date().toISOString()
    process.stdout.write(json ? `${JSON.stringify({ ts, event, ...fields })}\n` : stamped ? `${ts} ${text}\n` : `${text}\n`)
  }
}

/** Exit once stdout and stderr have taken everything written so far. */
async function exit (code: NodeExitCode): Promise<never> {
  const flushed = async (s: NodeJS.WriteStream): Promise<void> => { await new Promise<void>((resolve) => { s.write('', () => { resolve() }) }) }
  await Promise.all([flushed(process.stdout), flushed(process.stderr)])
  process.exit(code)
}
