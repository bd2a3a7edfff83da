// DataDirLock (src/identity/data-dir-lock.ts): one node per dataDir, stale locks of dead owners taken over.
import { describe, it, expect, afterEach } from 'vitest'
import { mkdtemp, readFile, rm, writeFile, access } from 'node:fs/promises'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import { DataDirLock, LOCK_FILE } from '../../../src/identity/data-dir-lock.js'
import { ErrorCode, MeshError } from '../../../src/errors.js'

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

describe('DataDirLock', () => {
  it('creates the directory and a lock file naming this process; a second lock in the same process is refused until the first is released', async () => {
    const dir = join(await tempDir(), 'nested', 'data')
    const a = await DataDirLock.acquire(dir)
    expect(a.file).toContain(LOCK_FILE)
    expect(await readFile(a.file, 'utf8')).toBe(`${process.pid} ${hostname()}\n`)
    const err = await refused(DataDirLock.acquire(dir))
    expect(err.message).toMatch(/in use by another mesh of this process/)
    await a.release()
    await a.release() // idempotent
    expect(await exists(a.file)).toBe(false)
    const b = await DataDirLock.acquire(dir)
    await b.release()
  })

  it('refuses a lock held by a live process, naming its pid; takes it over once that process is gone', async () => {
    const dir = await tempDir()
    const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' })
    try {
      await writeFile(join(dir, LOCK_FILE), `${child.pid} ${hostname()}\n`)
      const err = await refused(DataDirLock.acquire(dir))
      expect(err.message).toContain(`in use by process ${child.pid}`)
      expect(err.message).toContain(join(dir, LOCK_FILE))
    } finally {
      child.kill('SIGKILL')
      await once(child, 'exit')
    }
    const lock = await DataDirLock.acquire(dir)
    expect(await readFile(lock.file, 'utf8')).toBe(`${process.pid} ${hostname()}\n`)
    await lock.release()
  })

  it('takes over a lock naming this very pid that no mesh of this process holds (a container restarted with the same volume)', async () => {
    const dir = await tempDir()
    await writeFile(join(dir, LOCK_FILE), `${process.pid} ${hostname()}\n`)
    const lock = await DataDirLock.acquire(dir)
    await lock.release()
    expect(await exists(lock.file)).toBe(false)
  })

  it('refuses a lock from another host, and an empty or garbled lock file, without touching them', async () => {
    const dir = await tempDir()
    const file = join(dir, LOCK_FILE)
    await writeFile(file, '4242 some-other-host\n')
    expect((await refused(DataDirLock.acquire(dir))).message).toMatch(/locked by process 4242 on host some-other-host/)
    await writeFile(file, '')
    expect((await refused(DataDirLock.acquire(dir))).message).toMatch(/being locked by another process/)
    await writeFile(file, 'not a lock')
    await refused(DataDirLock.acquire(dir))
    expect(await readFile(file, 'utf8')).toBe('not a lock')
    // A refused attempt leaves no in-process claim behind.
    await rm(file)
    await (await DataDirLock.acquire(dir)).release()
  })

  it('release() leaves a lock file that is no longer ours alone', async () => {
    const dir = await tempDir()
    const lock = await DataDirLock.acquire(dir)
    await writeFile(lock.file, '4242 some-other-host\n')
    await lock.release()
    expect(await readFile(lock.file, 'utf8')).toBe('4242 some-other-host\n')
  })

  it('a path that cannot be a directory is refused with the reason', async () => {
    const dir = await tempDir()
    await writeFile(join(dir, 'file'), 'x')
    expect((await refused(DataDirLock.acquire(join(dir, 'file', 'sub')))).message).toMatch(/cannot create/)
  })
})
