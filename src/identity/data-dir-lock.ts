import { link, mkdir, open, readdir, readFile, realpath, rename, stat, unlink, utimes } from 'node:fs/promises'
import { readFileSync, readlinkSync } from 'node:fs'
import { hostname, uptime } from 'node:os'
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
 * - Last touched before this host booted (same hostname): stale.
 * - Anything else (another container's pid namespace, another host on a
 *   shared file system, an unreadable lock): stale once it has not been
 *   touched for {@link LOCK_STALE_MS}. A container restarted under a new
 *   hostname so waits at most that long.
 *
 * A lock is created complete (written, synced, then linked into place) and
 * never changed in place. A stale one is removed under a takeover mutex
 * (`meshwork.lock.takeover`, created the same way), only if it still holds
 * what was judged; a fresh one is then created. A mutex left by a process
 * that died within those few milliseconds is removed after 10 s (if
 * several contenders do that at once, the known race remains).
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

/** Lock attempts before giving up (each: create, or judge a lock there and remove it if stale). */
const MAX_ATTEMPTS = 4

/** Directories locked by meshes of this thread (realpaths; the file check covers other threads). */
const held = new Set<string>()

export class DataDirLock {
  readonly #dir: string
  readonly #file: string
  readonly #text: string
  #released = false

  private constructor (dir: string, text: string) {
    this.#dir = dir
    this.#file = join(dir, LOCK_FILE)
    this.#text = text
  }

  /** The lock file's path. */
  get file (): string { return this.#file }

  /** The lock file's exact content (a lock is never changed in place: the same text is the same lock). */
  get text (): string { return this.#text }

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
    // The token makes each lock's text its own (the same process may lock again): the text is its identity.
    const me: LockOwner & { token: string } = { ...self(), token: randomBytes(8).toString('hex') }
    const lock = new DataDirLock(dir, `${JSON.stringify(me)}\n`)
    const file = lock.#file
    const busy = (): MeshError => fail(`${dataDir} is being locked by another process (${file}); one node per dataDir`)
    try {
      for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        if (await createExclusive(file, lock.#text)) {
          await sweep(dir, now)
          return lock
        }
        let text: string
        try {
          text = await readFile(file, 'utf8')
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue // removed meanwhile: try again
          throw fail(`cannot read ${file}: ${(err as Error).message}`, err)
        }
        const mtime = (await stat(file).catch(() => undefined))?.mtimeMs ?? 0
        const verdict = judge(parseOwner(text), now() - mtime)
        if (verdict !== 'stale') throw fail(`${dataDir} ${verdict} (${file}); one node per dataDir`)
        // Remove it under the takeover mutex: only its holder removes a lock, and only the one it
        // judged (a lock is never changed in place, so the same text is the same lock).
        if (!await removeUnderMutex(file, text, now)) throw busy()
      }
      throw busy()
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
      if (await readFile(this.#file, 'utf8') === this.#text) await unlink(this.#file)
    } catch {
      // Already gone, or the directory was removed: nothing to release.
    } finally {
      held.delete(this.#dir)
    }
  }
}

/**
 * Keep the lock whose file holds `text` fresh: every {@link LOCK_REFRESH_MS}
 * touch it (the owner's proof of life for contenders that cannot check its
 * pid), after checking it is still this one. Lost means another process
 * holds the file now (it judged ours stale: this process was paused, or its
 * refreshes failed, for over {@link LOCK_STALE_MS} where it could not check
 * the pid): `on.lost` is called once with why, and the file, no longer
 * ours, is not touched again. A lock file found deleted is created again if
 * nobody else has (`on.recreated`: it was removed by hand, or another
 * process took it over and released it within one refresh period, which
 * this cannot tell apart). Returns a stop function; the timer does not keep
 * the thread alive.
 */
export function keepLockFresh (file: string, text: string, on: { lost: (why: string) => void; recreated?: (why: string) => void }, everyMs = LOCK_REFRESH_MS): () => void {
  let busy = false
  const t = setInterval(() => {
    if (busy) return
    busy = true
    checkAndTouch(file, text).then((r) => {
      if (r === undefined) return
      if (r.recreated) { on.recreated?.(r.why); return }
      clearInterval(t)
      on.lost(r.why)
    }, () => { /* unreadable this time (the directory removed, a permission): try again next time */ }).finally(() => { busy = false })
  }, everyMs)
  t.unref()
  return () => { clearInterval(t) }
}

/**
 * One refresh: touch the lock if it is still `text`, or re-create it if it
 * is gone (recreated); why it is lost otherwise (another's lock is there).
 */
async function checkAndTouch (file: string, text: string): Promise<{ why: string; recreated: boolean } | undefined> {
  let now: string
  try {
    now = await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    if (await createExclusive(file, text)) return { why: `${file} was missing (removed by hand, or taken over and released by another process meanwhile); created again`, recreated: true }
    now = await readFile(file, 'utf8')
  }
  if (now === text) {
    const d = new Date()
    await utimes(file, d, d)
    return undefined
  }
  const owner = parseOwner(now)
  return { why: owner === undefined ? `${file} was replaced by another process's (unreadable) lock` : `${file} is now held by process ${owner.pid} on host ${owner.host}`, recreated: false }
}

/** A takeover mutex older than this (ms) was left by a process that died taking over: it is removed. */
const MUTEX_STALE_MS = 10_000

/**
 * Remove the stale lock `file` if it still holds `text`, under the mutex
 * `<file>.takeover` (created like a lock). False if another process holds
 * the mutex. True otherwise, removed or not (the caller tries again).
 */
async function removeUnderMutex (file: string, text: string, now: () => number): Promise<boolean> {
  const mutex = `${file}.takeover`
  if (!await createExclusive(mutex, `${process.pid}\n`)) {
    const m = await stat(mutex).catch(() => undefined)
    if (m !== undefined && now() - m.mtimeMs <= MUTEX_STALE_MS) return false
    // Its holder died mid-takeover: move it aside (one contender wins the rename).
    const aside = `${mutex}.stale-${randomBytes(4).toString('hex')}`
    if (await rename(mutex, aside).then(() => true, () => false)) await unlink(aside).catch(() => {})
    return true
  }
  try {
    // Read, then unlink by name: safe while we hold the mutex, because only its holder removes a
    // lock and a lock is only created where none is (moving the file aside to check it instead
    // would leave a moment with no lock, in which a fresh one could be created and then lost).
    const still = await readFile(file, 'utf8').catch(() => undefined)
    if (still === text) await unlink(file).catch(() => {})
    return true
  } finally {
    await unlink(mutex).catch(() => {})
  }
}

/** link() errors of file systems without hard links (vfat, exfat, some SMB/FUSE mounts). */
const NO_LINKS = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EXDEV'])

/**
 * Create `file` holding `text` if it does not exist. The text is written and
 * synced to a private file first and then linked into place, so a lock is
 * never seen half written (a contender would take an empty lock for a
 * stale one). Where the file system has no hard links: created in place
 * (exclusively); a contender then refuses a fresh empty lock (see
 * {@link judge}) rather than taking it over.
 */
async function createExclusive (file: string, text: string): Promise<boolean> {
  const tmp = `${file}.new-${randomBytes(4).toString('hex')}`
  await writeSynced(tmp, text)
  try {
    await link(tmp, file)
    return true
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? ''
    if (code === 'EEXIST') return false
    if (!NO_LINKS.has(code) && process.platform !== 'win32') throw err
  } finally {
    await unlink(tmp).catch(() => {})
  }
  try {
    await writeSynced(file, text)
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw err
  }
}

async function writeSynced (file: string, text: string): Promise<void> {
  const fh = await open(file, 'wx', 0o600)
  try {
    await fh.writeFile(text)
    await fh.sync()
  } finally {
    await fh.close()
  }
}

/** Remove what a process that died locking left beside the lock (its temporary and moved-aside files). */
async function sweep (dir: string, now: () => number): Promise<void> {
  const names = await readdir(dir).catch(() => [] as string[])
  for (const n of names) {
    if (!n.startsWith(`${LOCK_FILE}.`) || !/\.(new|stale)-[0-9a-f]{8}$/.test(n)) continue
    const f = join(dir, n)
    const st = await stat(f).catch(() => undefined)
    if (st !== undefined && now() - st.mtimeMs > LOCK_STALE_MS) await unlink(f).catch(() => {})
  }
}

/** Why a lock is not stale (for the error message), or 'stale'. `ageMs`: since it was last touched. */
export function judge (owner: LockOwner | undefined, ageMs: number, here: LockOwner = self()): string {
  const untouched = ageMs > LOCK_STALE_MS
  const touched = `last touched ${Math.round(ageMs / 1000)} s ago; taken over ${Math.round(LOCK_STALE_MS / 1000)} s after that`
  if (owner === undefined) return untouched ? 'stale' : `is being locked by another process (unreadable lock, ${touched})`
  const checkable = here.boot !== undefined && here.pidNs !== undefined && here.start !== undefined &&
    owner.boot === here.boot && owner.pidNs === here.pidNs && owner.start !== undefined
  if (checkable) {
    const start = startTime(owner.pid)
    // No such process: gone, unless /proc hides it (hidepid): then kill() says whether it runs.
    if (start === undefined ? !isRunning(owner.pid) || existsProc(owner.pid) : start !== owner.start) return 'stale'
    return owner.pid === process.pid ? 'is in use by another mesh of this process (another thread, or another copy of meshwork)' : `is in use by process ${owner.pid}`
  }
  if (here.boot === undefined && owner.boot === undefined && owner.host === here.host) {
    // No /proc (not Linux): a dead pid is stale at once; a live one (maybe reused) only while the lock is kept fresh.
    return isRunning(owner.pid) && !untouched ? `is in use by process ${owner.pid}` : 'stale'
  }
  // Untouched since before this host booted: its owner ran in an earlier boot.
  if (owner.host === here.host && ageMs > uptime() * 1000) return 'stale'
  // Another host, pid namespace or boot: only the owner's refreshes tell.
  return untouched ? 'stale' : `is locked by process ${owner.pid} on host ${owner.host} (${touched})`
}

/** Whether /proc shows `pid` at all (with hidepid, other users' processes are hidden). */
function existsProc (pid: number): boolean {
  try {
    readFileSync(`/proc/${pid}/stat`)
    return true
  } catch {
    return false
  }
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

function parseOwner (text: string): LockOwner | undefined {
  try {
    const o = JSON.parse(text) as Record<string, unknown>
    if (typeof o.pid !== 'number' || typeof o.host !== 'string') return undefined
    return o as unknown as LockOwner
  } catch {
    return undefined
  }
}
