import { mkdir, readFile, realpath, rename, unlink, writeFile } from 'node:fs/promises'
import { readFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { ErrorCode, MeshError } from '../errors.js'

/**
 * One node per `dataDir`. Two processes sharing one would be two nodes with
 * the same id (each link of one displacing the other's) writing one outbox
 * whose in-memory index each believes it owns.
 *
 * The lock is a file naming its owner (`<pid> <hostname>`), created
 * exclusively and deleted by `close()`. One left by an owner that died
 * (kill -9, a crash, a power loss) is taken over: its pid no longer runs on
 * this host, is a zombie, or is this very process (a container restarted
 * with the same volume runs as the same pid). A lock from another host
 * cannot be checked and is refused. No timer keeps the lock fresh: a live
 * owner is a running process, not a recent mtime.
 *
 * Known limit: two processes taking over the same stale lock at the same
 * instant can both succeed.
 */
export const LOCK_FILE = 'meshwork.lock'

/** Directories locked by meshes of this process (realpaths): a pid check cannot tell them apart. */
const held = new Set<string>()

export class DataDirLock {
  readonly #dir: string
  readonly #file: string
  #released = false

  private constructor (dir: string) {
    this.#dir = dir
    this.#file = join(dir, LOCK_FILE)
  }

  /** The lock file's path. */
  get file (): string { return this.#file }

  /**
   * Lock `dataDir` (created if missing) for this mesh.
   * @throws MeshError INVALID_OPTIONS when another live node holds it, or it cannot be created.
   */
  static async acquire (dataDir: string): Promise<DataDirLock> {
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
    const lock = new DataDirLock(dir)
    const me = `${process.pid} ${hostname()}\n`
    try {
      try {
        await writeFile(lock.#file, me, { flag: 'wx', mode: 0o600 })
        return lock
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw fail(`cannot create ${lock.#file}: ${(err as Error).message}`, err)
      }
      const owner = parseOwner(await readFile(lock.#file, 'utf8').catch(() => ''))
      if (owner === undefined) throw fail(`${dataDir} is being locked by another process (${lock.#file} is empty or unreadable); one node per dataDir`)
      if (owner.host !== hostname()) {
        throw fail(`${dataDir} is locked by process ${owner.pid} on host ${owner.host} (${lock.#file}); one node per dataDir. If no node runs there, delete the file`)
      }
      if (owner.pid !== process.pid && isRunning(owner.pid)) {
        throw fail(`${dataDir} is in use by process ${owner.pid} (${lock.#file}); one node per dataDir. If that is not a meshwork node, delete the file`)
      }
      // Stale: its owner is gone. Replace it in one step (rename), never deleting someone else's fresh lock.
      const tmp = `${lock.#file}.${process.pid}.tmp`
      await writeFile(tmp, me, { mode: 0o600 })
      await rename(tmp, lock.#file)
      return lock
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
      const owner = parseOwner(await readFile(this.#file, 'utf8'))
      if (owner !== undefined && owner.pid === process.pid && owner.host === hostname()) await unlink(this.#file)
    } catch {
      // Already gone, or the directory was removed: nothing to release.
    } finally {
      held.delete(this.#dir)
    }
  }
}

function parseOwner (text: string): { pid: number; host: string } | undefined {
  const m = /^(\d+) (\S+)\s*$/.exec(text)
  if (m === null) return undefined
  return { pid: Number(m[1]), host: m[2] as string }
}

/** Whether `pid` is a live process of this host (a zombie is not: it only waits to be reaped). */
function isRunning (pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch (err) {
    // EPERM: it runs, as another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
  if (process.platform !== 'linux') return true
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z'
  } catch {
    return false
  }
}
