// DataDirLock (src/identity/data-dir-lock.ts): one node per dataDir; a lock whose owner is gone is taken over,
// exactly when its owner can be checked (same boot and pid namespace), after LOCK_STALE_MS untouched otherwise.
import { describe, it, expect, afterEach, vi } from 'vitest'
import { mkdtemp, mkdir, readFile, rename, rm, writeFile, access, stat, utimes, readdir } from 'node:fs/promises'
import { readFileSync, readdirSync, readlinkSync } from 'node:fs'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { hostname, tmpdir, uptime } from 'node:os'
import { join } from 'node:path'
import { DataDirLock, LOCK_FILE, LOCK_REFRESH_MS, LOCK_STALE_MS, judge, keepLockFresh, type LockOwner } from '../../../src/identity/data-dir-lock.js'
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
  // Whole at once (written aside, renamed into place): a refresh reading it meanwhile must not see it empty.
  await writeFile(`${file}.test`, typeof owner === 'string' ? owner : JSON.stringify({ ...owner, token: 'theirs' }))
  await rename(`${file}.test`, file)
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
    // The oldest other thread (V8's platform threads live as long as the process).
    const tid = Math.min(...readdirSync('/proc/self/task').map(Number).filter((t) => t !== process.pid))
    expect(tid).toBeGreaterThan(0)
    const s = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8')
    await writeLock(dir, ownerHere(tid, Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[19])))
    await takesOver(dir)
    // The background child exits a second later, by when its parent has exec'd `sleep`, which never
    // reaps it. (A child that exits at once can be reaped by the shell itself before its exec: CI saw
    // ESRCH.)
    const sh = spawn('sh', ['-c', 'sleep 1 & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] })
    try {
      const zombie = Number(String((await once(sh.stdout, 'data'))[0]).trim())
      await until(() => readFileSync(`/proc/${zombie}/stat`, 'utf8').includes(') Z '), { label: 'a zombie', timeoutMs: 10_000 })
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

  it.runIf(linux)('a lock of this host last touched before its last boot is stale at once; one of another boot touched since is not (another machine with this hostname)', async () => {
    const dir = await tempDir()
    const file = await writeLock(dir, { ...ownerHere(process.pid), boot: 'an-earlier-boot' })
    expect((await refused(DataDirLock.acquire(dir))).message).toMatch(/last touched 0 s ago/)
    const beforeBoot = (Date.now() - uptime() * 1000) / 1000 - 3600
    await utimes(file, beforeBoot, beforeBoot)
    await takesOver(dir)
  })

  it('an unreadable lock (a directory in its place, or another user\'s file) is refused with the reason, not retried forever', async () => {
    const dir = await tempDir()
    await mkdir(join(dir, LOCK_FILE))
    expect((await refused(DataDirLock.acquire(dir))).message).toMatch(/cannot read .*meshwork\.lock/)
  })

  it.runIf(linux)('a live owner without a start time in its lock (e.g. an older version) falls back to its refreshes', async () => {
    const dir = await tempDir()
    const { start: _, ...noStart } = ownerHere(process.pid)
    await writeLock(dir, noStart)
    await refused(DataDirLock.acquire(dir))
    await takesOver(dir, () => Date.now() + LOCK_STALE_MS + 5_000)
  })

  it('processes taking over one stale lock at once: never two holders at a time, and one gets it', async () => {
    const script = `
      import { DataDirLock } from ${JSON.stringify(new URL('../../../dist/src/identity/data-dir-lock.js', import.meta.url).href)}
      const [dir, at] = process.argv.slice(1)
      while (Date.now() < Number(at)) {}
      try {
        const l = await DataDirLock.acquire(dir)
        const t0 = performance.timeOrigin + performance.now()
        await new Promise((r) => setTimeout(r, 50))
        const t1 = performance.timeOrigin + performance.now()
        await l.release()
        console.log('GOT', t0, t1)
      } catch (e) { console.log('NO', e.code) }`
    for (const stale of ['', JSON.stringify({ pid: 2 ** 22 + 1, host: 'elsewhere' })]) {
      for (let round = 0; round < 3; round++) {
        const dir = await tempDir()
        const file = await writeLock(dir, stale)
        await utimes(file, 1000, 1000)
        const at = Date.now() + 600
        const outs = await Promise.all(Array.from({ length: 4 }, async () => {
          const c = spawn(process.execPath, ['--input-type=module', '-e', script, dir, String(at)], { stdio: ['ignore', 'pipe', 'inherit'] })
          let out = ''
          c.stdout.on('data', (d: Buffer) => { out += String(d) })
          await once(c, 'exit')
          return out.trim()
        }))
        const held = outs.filter((o) => o.startsWith('GOT')).map((o) => o.split(' ').slice(1).map(Number) as [number, number])
        expect(held.length, outs.join(' | ')).toBeGreaterThanOrEqual(1)
        for (const a of held) for (const b of held) if (a !== b) expect(a[0] < b[1] && b[0] < a[1], outs.join(' | ')).toBe(false)
        expect(outs.filter((o) => !o.startsWith('GOT')).every((o) => o === 'NO INVALID_OPTIONS'), outs.join(' | ')).toBe(true)
        expect((await readdir(dir)).filter((f) => f.startsWith(LOCK_FILE))).toEqual([])
      }
    }
  })

  it('files a process that died locking left beside the lock are swept once they are old', async () => {
    const dir = await tempDir()
    const old = join(dir, `${LOCK_FILE}.new-0123abcd`)
    const young = join(dir, `${LOCK_FILE}.takeover.stale-89abcdef`)
    const other = join(dir, 'identity.key')
    for (const f of [old, young, other]) await writeFile(f, 'x')
    await utimes(old, 1000, 1000)
    await utimes(other, 1000, 1000)
    const lock = await DataDirLock.acquire(dir)
    expect(await exists(old)).toBe(false)
    expect(await exists(young)).toBe(true) // maybe another process's, in use
    expect(await exists(other)).toBe(true)
    await lock.release()
  })

  it('judge() without /proc (not Linux): a dead pid is stale at once; a live pid only while its lock is kept fresh (pids get reused)', () => {
    const here: LockOwner = { pid: process.pid, host: hostname() }
    const child = { pid: process.pid, host: hostname() }
    expect(judge(child, 1_000, here)).toMatch(/in use by process/)
    expect(judge(child, LOCK_STALE_MS + 1, here)).toBe('stale')
    expect(judge({ pid: 2 ** 22 + 1, host: hostname() }, 0, here)).toBe('stale')
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
    const lock = await DataDirLock.acquire(await tempDir())
    await utimes(lock.file, 1000, 1000)
    const lost: string[] = []
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] })
    try {
      const stop = keepLockFresh(lock.file, lock.text, { lost: (why) => lost.push(why) })
      vi.advanceTimersByTime(LOCK_REFRESH_MS - 1)
      vi.advanceTimersByTime(1)
      stop()
    } finally {
      vi.useRealTimers()
    }
    await until(async () => (await stat(lock.file)).mtimeMs > Date.now() - 60_000, { label: 'the lock touched' })
    expect(lost).toEqual([])
    await lock.release()
  })

  it('keepLockFresh: a lock another process holds now is reported lost once and never touched again', async () => {
    const dir = await tempDir()
    const lock = await DataDirLock.acquire(dir)
    const lost: string[] = []
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] })
    try {
      const stop = keepLockFresh(lock.file, lock.text, { lost: (why) => lost.push(why) }, 5)
      // Another process judged ours stale and took over: its lock replaces ours.
      await rm(lock.file)
      const theirs = await writeLock(dir, { pid: 4242, host: 'other-host', boot: 'b', pidNs: 'pid:[1]', start: 1 })
      vi.advanceTimersByTime(5) // one refresh
      await until(() => lost.length > 0, { label: 'the lock reported lost' })
      expect(lost[0]).toBe(`${theirs} is now held by process 4242 on host other-host`)
      // The refresh timer is gone: nothing will touch their lock or report again.
      expect(vi.getTimerCount()).toBe(0)
      await utimes(theirs, 1000, 1000)
      vi.advanceTimersByTime(50)
      expect(lost).toHaveLength(1)
      expect((await stat(theirs)).mtimeMs).toBe(1000 * 1000)
      // And release() leaves another's lock alone.
      await lock.release()
      expect(JSON.parse(await readFile(theirs, 'utf8'))).toMatchObject({ pid: 4242, token: 'theirs' })
      stop()
    } finally {
      vi.useRealTimers()
    }
  })

  it('keepLockFresh: a lock file deleted under its owner is created again, the same lock', async () => {
    const lock = await DataDirLock.acquire(await tempDir())
    const lost: string[] = []
    const recreated: string[] = []
    const stop = keepLockFresh(lock.file, lock.text, { lost: (why) => lost.push(why), recreated: (why) => recreated.push(why) }, 5)
    try {
      await rm(lock.file)
      await until(async () => await exists(lock.file) && await readFile(lock.file, 'utf8') === lock.text, { label: 'the lock created again' })
      await until(() => recreated.length > 0, { label: 'the re-creation reported' })
      expect(recreated[0]).toMatch(/was missing \(removed by hand, or taken over and released by another process meanwhile\); created again$/)
      expect(lost).toEqual([])
    } finally {
      stop()
      await lock.release()
    }
    expect(await exists(lock.file)).toBe(false)
  })
})
