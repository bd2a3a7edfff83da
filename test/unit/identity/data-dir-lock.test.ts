// DataDirLock (src/identity/data-dir-lock.ts): one node per dataDir; a lock whose owner is gone is taken over,
// exactly when its owner can be checked (same boot and pid namespace), after LOCK_STALE_MS untouched otherwise.
import { describe, it, expect, afterEach, vi } from 'vitest'
import { mkdtemp, readFile, rm, writeFile, access, stat, utimes, readdir } from 'node:fs/promises'
import { readFileSync, readdirSync, readlinkSync } from 'node:fs'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import { DataDirLock, LOCK_FILE, LOCK_REFRESH_MS, LOCK_STALE_MS, keepLockFresh, type LockOwner } from '../../../src/identity/data-dir-lock.js'
import { ErrorCode, MeshError } from '../../../src/errors.js'
import { until } from '../../helpers/mesh.js'

const dirs: string[] = []
async function tempDir (): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'meshwork-lock-'))
  dirs.push(d)
  return d
}
afterEach(async () => { for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true }) })

async function refused (p: Promise<unknown>): Promise<MeshError> {
  const err = await p.then(() => undefined, (e: unknown) => e)
  expect(err).toBeInstanceOf(MeshError)
  expect((err as MeshError).code).toBe(ErrorCode.INVALID_OPTIONS)
  return err as MeshError
}

const exists = async (f: string): Promise<boolean> => await access(f).then(() => true, () => false)
const linux = process.platform === 'linux'

/** Start time (field 22 of /proc/<pid>/stat) of a process. */
function startOf (pid: number): number {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8')
  return Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[19])
}

/** A lock as `pid` of this boot and pid namespace would write it. */
function ownerHere (pid: number, start = startOf(pid)): LockOwner {
  return { pid, host: hostname(), boot: readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim(), pidNs: readlinkSync('/proc/self/ns/pid'), start }
}

async function writeLock (dir: string, owner: LockOwner | string): Promise<string> {
  const file = join(dir, LOCK_FILE)
  await writeFile(file, typeof owner === 'string' ? owner : JSON.stringify({ ...owner, token: 'theirs' }))
  return file
}

async function takesOver (dir: string, now?: () => number): Promise<void> {
  const lock = await DataDirLock.acquire(dir, now)
  expect(JSON.parse(await readFile(lock.file, 'utf8'))).toMatchObject({ pid: process.pid, host: hostname() })
  await lock.release()
  expect(await exists(lock.file)).toBe(false)
  // Nothing left beside it (a stale lock is renamed away, then deleted).
  expect((await readdir(dir)).filter((f) => f.startsWith(LOCK_FILE))).toEqual([])
}

describe('DataDirLock', () => {
  it('creates the directory and a lock naming this process; a second lock in the same thread is refused until the first is released', async () => {
    const dir = join(await tempDir(), 'nested', 'data')
    const a = await DataDirLock.acquire(dir)
    expect(JSON.parse(await readFile(a.file, 'utf8'))).toMatchObject({ pid: process.pid, host: hostname() })
    expect((await stat(a.file)).mode & 0o777).toBe(0o600)
    expect((await refused(DataDirLock.acquire(dir))).message).toMatch(/in use by another mesh of this process/)
    await a.release()
    await a.release() // idempotent
    expect(await exists(a.file)).toBe(false)
    await (await DataDirLock.acquire(dir)).release()
  })

  it.runIf(linux)('refuses a lock of a live process, naming its pid; takes it over once that process is gone', async () => {
    const dir = await tempDir()
    const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' })
    try {
      await writeLock(dir, ownerHere(child.pid as number))
      const err = await refused(DataDirLock.acquire(dir))
      expect(err.message).toContain(`in use by process ${child.pid}`)
      expect(err.message).toContain(join(dir, LOCK_FILE))
    } finally {
      child.kill('SIGKILL')
      await once(child, 'exit')
    }
    await takesOver(dir)
  })

  it.runIf(linux)('a reused pid (a live process started at another time) is not the owner: taken over', async () => {
    const dir = await tempDir()
    const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' })
    try {
      await writeLock(dir, ownerHere(child.pid as number, startOf(child.pid as number) - 1))
      await takesOver(dir)
    } finally {
      child.kill('SIGKILL')
      await once(child, 'exit')
    }
  })

  it.runIf(linux)('this process, not this thread (another mesh in a worker thread, another copy of the library): refused', async () => {
    const dir = await tempDir()
    await writeLock(dir, ownerHere(process.pid))
    expect((await refused(DataDirLock.acquire(dir))).message).toMatch(/in use by another mesh of this process/)
  })

  it.runIf(linux)('a pid that is a thread, or a zombie, is no owner: taken over', async () => {
    const dir = await tempDir()
    const tid = Number(readdirSync('/proc/self/task').find((t) => Number(t) !== process.pid))
    expect(tid).toBeGreaterThan(0)
    await writeLock(dir, ownerHere(tid))
    await takesOver(dir)
    // `true` exits; its parent then execs `sleep`, which never reaps it.
    const sh = spawn('sh', ['-c', 'true & echo $!; exec sleep 5'], { stdio: ['ignore', 'pipe', 'ignore'] })
    try {
      const zombie = Number(String((await once(sh.stdout, 'data'))[0]).trim())
      await until(() => readFileSync(`/proc/${zombie}/stat`, 'utf8').includes(') Z '), { label: 'a zombie' })
      await writeLock(dir, ownerHere(zombie))
      await takesOver(dir)
    } finally {
      sh.kill('SIGKILL')
      await once(sh, 'exit')
    }
  })

  it('an owner that cannot be checked (another host or pid namespace, an unreadable lock) is refused until the lock is LOCK_STALE_MS untouched', async () => {
    const dir = await tempDir()
    const later = (): number => Date.now() + LOCK_STALE_MS + 5_000
    await writeLock(dir, { pid: 4242, host: 'some-other-host', boot: 'b', pidNs: 'pid:[1]', start: 1 })
    const err = await refused(DataDirLock.acquire(dir))
    expect(err.message).toMatch(/locked by process 4242 on host some-other-host \(last touched 0 s ago; taken over 30 s after that\)/)
    await takesOver(dir, later)
    if (linux) {
      // Same host, another pid namespace (a container sharing the volume and the hostname).
      await writeLock(dir, { ...ownerHere(process.pid), pidNs: 'pid:[1]' })
      await refused(DataDirLock.acquire(dir))
      await takesOver(dir, later)
    }
    for (const text of ['', 'not a lock', '{"pid":"x"}']) {
      const file = await writeLock(dir, text)
      expect((await refused(DataDirLock.acquire(dir))).message).toMatch(/being locked by another process/)
      expect(await readFile(file, 'utf8')).toBe(text)
      await takesOver(dir, later)
    }
  })

  it.runIf(linux)('a lock of this host written before its last boot is stale at once', async () => {
    const dir = await tempDir()
    await writeLock(dir, { ...ownerHere(process.pid), boot: 'an-earlier-boot' })
    await takesOver(dir)
  })

  it('release() leaves a lock that is no longer ours alone', async () => {
    const dir = await tempDir()
    const lock = await DataDirLock.acquire(dir)
    await writeLock(dir, { pid: process.pid, host: hostname() })
    await lock.release()
    expect(await exists(lock.file)).toBe(true)
  })

  it('a path that cannot be a directory is refused with the reason', async () => {
    const dir = await tempDir()
    await writeFile(join(dir, 'file'), 'x')
    expect((await refused(DataDirLock.acquire(join(dir, 'file', 'sub')))).message).toMatch(/cannot create/)
  })

  it('keepLockFresh touches the lock every LOCK_REFRESH_MS until stopped', async () => {
    const dir = await tempDir()
    const file = await writeLock(dir, 'x')
    await utimes(file, 1000, 1000)
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] })
    try {
      const stop = keepLockFresh(file)
      vi.advanceTimersByTime(LOCK_REFRESH_MS - 1)
      vi.advanceTimersByTime(1)
      stop()
    } finally {
      vi.useRealTimers()
    }
    await until(async () => (await stat(file)).mtimeMs > Date.now() - 60_000, { label: 'the lock touched' })
  })
})
