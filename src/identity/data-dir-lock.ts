import { mkdir, open, readFile, realpath, rename, stat, unlink, utimes } from 'node:fs/promises'
import { readFileSync, readlinkSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { ErrorCode, MeshError } from '../errors.js'

/**
 * One node per `dataDir`. Two processes sharing one would be two nodes with
 * the same id (each link of one displacing the other's) writing one outbox
 * whose in-memory index each believes it owns.
 *
 * The lock is a JSON file naming its owner, created exclusively, kept fresh
 * (its mtime touched every {@link LOCK_REFRESH_MS} by the mesh's router
 * worker) and deleted by `close()`. Whether a lock left behind is stale:
 *
 * - Written in this boot and pid namespace (Linux: same `boot_id` and
 *   `/proc/self/ns/pid`): exactly, at once. Its owner runs if its pid is a
 *   live process (not a thread, not a zombie) started when the lock says.
 *   That tells a dead owner from a reused pid, and a live one from this
 *   very process (another mesh in a worker thread, or a second copy of
 *   the library), which is refused.
 * - Written in a previous boot of this host: stale.
 * - Anything else (another container's pid namespace, another host on a
 *   shared file system, an older or unreadable lock): stale once it has
 *   not been touched for {@link LOCK_STALE_MS}. A container restarted
 *   under a new hostname so waits at most that long.
 *
 * A stale lock is renamed away (one contender wins the rename) and a fresh
 * one created exclusively.
 */
export const LOCK_FILE = 'meshwork.lock'
/** How often the owner touches its lock file (ms). */
export const LOCK_REFRESH_MS = 10_000
/** A lock not touched for this long (ms) is stale when its owner cannot be checked directly. */
export const LOCK_STALE_MS = 3 * LOCK_REFRESH_MS

/** What a lock file says about its owner. */
export interface LockOwner {
  pid: number
  host: string
  /** Linux: /proc/sys/kernel/random/boot_id. */
  boot?: string
  /** Linux: the pid namespace (readlink /proc/self/ns/pid). */
  pidNs?: string
  /** Linux: the process's start time (clock ticks after boot, /proc/<pid>/stat field 22). */
  start?: number
}

/** Directories locked by meshes of this thread (realpaths; the file check covers other threads). */
const held = new Set<string>()

export class DataDirLock {
  readonly #dir: string
  readonly #file: string
  readonly #token: string
  #released = false

  private constructor (dir: string, token: string) {
    this.#dir = dir
    this.#file = join(dir, LOCK_FILE)
    this.#token = token
  }

  /** The lock file's path. */
  get file (): string { return this.#file }

  /**
   * Lock `dataDir` (created if missing) for this mesh.
   * @throws MeshError INVALID_OPTIONS when another live node holds it, or it cannot be created.
   */
  static async acquire (dataDir: string, now: () => number = Date.now): Promise<DataDirLock> {
    const fail = (why: string, cause?: unknown): MeshError =>
      new MeshError(ErrorCode.INVALID_OPTIONS, `options.dataDir: ${why}`, { cause, details: { path: 'options.dataDir' } })
    let dir: string
    try {
      await mkdir(dataDir, { recursive: true, mode: 0o700 })
      dir = await realpath(dataDir)
    } catch (err) {
      throw fail(`cannot create ${dataDir}: ${(err as Error).message}`, err)
    }
    if (held.has(dir)) throw fail(`${dataDir} is in use by another mesh of this process (one node per dataDir)`)
    held.add(dir)
    const me: LockOwner & { token: string } = { ...self(), token: randomBytes(8).toString('hex') }
    const lock = new DataDirLock(dir, me.token)
    const file = lock.#file
    try {
      // Twice at most: a stale lock renamed away, then created afresh.
      for (let attempt = 0; ; attempt++) {
        if (await createExclusive(file, `${JSON.stringify(me)}\n`)) return lock
        const text = await readFile(file, 'utf8').catch(() => undefined)
        if (text === undefined) continue // removed meanwhile: try again
        const mtime = (await stat(file).catch(() => undefined))?.mtimeMs ?? 0
        const verdict = judge(parseOwner(text), now() - mtime)
        if (verdict !== 'stale') throw fail(`${dataDir} ${verdict} (${file}); one node per dataDir`)
        if (attempt > 0) throw fail(`${dataDir} is being locked by another process (${file}); one node per dataDir`)
        // Rename the stale lock away: of processes taking it over at once, one wins the rename.
        const aside = `${file}.stale-${randomBytes(4).toString('hex')}`
        try {
          await rename(file, aside)
        } catch {
          continue // someone else took it over: look again
        }
        const moved = await readFile(aside, 'utf8').catch(() => '')
        if (moved !== text) {
          // Not the lock we judged (a fresh one replaced it meanwhile): put it back.
          await rename(aside, file).catch(() => {})
          throw fail(`${dataDir} is being locked by another process (${file}); one node per dataDir`)
        }
        await unlink(aside).catch(() => {})
      }
    } catch (err) {
      held.delete(dir)
      if (err instanceof MeshError) throw err
      throw fail(`cannot lock ${dataDir}: ${(err as Error).message}`, err)
    }
  }

  /** Delete the lock file (if it is still ours). Idempotent. */
  async release (): Promise<void> {
    if (this.#released) return
    this.#released = true
    try {
      if (parseOwner(await readFile(this.#file, 'utf8'))?.token === this.#token) await unlink(this.#file)
    } catch {
      // Already gone, or the directory was removed: nothing to release.
    } finally {
      held.delete(this.#dir)
    }
  }
}

/**
 * Touch `file` every {@link LOCK_REFRESH_MS} (the owner's proof of life for
 * contenders that cannot check its pid). Returns a stop function. The timer
 * does not keep the thread alive.
 */
export function keepLockFresh (file: string): () => void {
  const t = setInterval(() => {
    const d = new Date()
    utimes(file, d, d).catch(() => { /* gone (the directory was removed): nothing to keep fresh */ })
  }, LOCK_REFRESH_MS)
  t.unref()
  return () => { clearInterval(t) }
}

/** Create `file` with `text` if it does not exist; written and synced before it is visible as complete. */
async function createExclusive (file: string, text: string): Promise<boolean> {
  let fh
  try {
    fh = await open(file, 'wx', 0o600)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw err
  }
  try {
    await fh.writeFile(text)
    await fh.sync()
  } finally {
    await fh.close()
  }
  return true
}

/** Why a lock is not stale (for the error message), or 'stale'. `ageMs`: since it was last touched. */
export function judge (owner: LockOwner | undefined, ageMs: number, here: LockOwner = self()): string {
  const touched = `last touched ${Math.round(ageMs / 1000)} s ago; taken over ${Math.round(LOCK_STALE_MS / 1000)} s after that`
  if (owner === undefined) return ageMs > LOCK_STALE_MS ? 'stale' : `is being locked by another process (unreadable lock, ${touched})`
  if (here.boot !== undefined && owner.boot !== undefined && owner.pidNs !== undefined && here.pidNs !== undefined) {
    if (owner.boot === here.boot && owner.pidNs === here.pidNs) {
      const start = startTime(owner.pid)
      if (start === undefined || start !== owner.start) return 'stale'
      return owner.pid === process.pid ? 'is in use by another mesh of this process (another thread, or another copy of meshwork)' : `is in use by process ${owner.pid}`
    }
    if (owner.boot !== here.boot && owner.host === here.host) return 'stale' // a previous boot of this host
  } else if (owner.host === here.host && here.boot === undefined) {
    // No /proc (not Linux): the pid alone.
    return isRunning(owner.pid) ? `is in use by process ${owner.pid}` : 'stale'
  }
  return ageMs > LOCK_STALE_MS ? 'stale' : `is locked by process ${owner.pid} on host ${owner.host} (${touched})`
}

/** This process, as a lock names it. */
function self (): LockOwner {
  const o: LockOwner = { pid: process.pid, host: hostname() }
  if (process.platform !== 'linux') return o
  try {
    o.boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()
    o.pidNs = readlinkSync('/proc/self/ns/pid')
    const start = startTime(process.pid)
    if (start !== undefined) o.start = start
  } catch {
    delete o.boot
    delete o.pidNs
  }
  return o
}

/** Linux: when process `pid` started (clock ticks after boot), or undefined if no such live process (a zombie or a thread is none). */
function startTime (pid: number): number | undefined {
  try {
    if (!new RegExp(`^Tgid:\\s*${pid}$`, 'm').test(readFileSync(`/proc/${pid}/status`, 'utf8'))) return undefined
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    // fields[0] is field 3 (state); the start time is field 22.
    if (fields[0] === 'Z' || fields[0] === 'X') return undefined
    const start = Number(fields[19])
    return Number.isFinite(start) ? start : undefined
  } catch {
    return undefined
  }
}

function isRunning (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

function parseOwner (text: string): (LockOwner & { token?: string }) | undefined {
  try {
    const o = JSON.parse(text) as Record<string, unknown>
    if (typeof o.pid !== 'number' || typeof o.host !== 'string') return undefined
    return o as unknown as LockOwner & { token?: string }
  } catch {
    return undefined
  }
}
