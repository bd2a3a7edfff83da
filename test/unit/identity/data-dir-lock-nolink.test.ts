// DataDirLock on a file system without hard links (vfat, exfat, some SMB/FUSE mounts): link() fails with
// EPERM and the lock is created in place instead; every start used to fail there.
import { describe, it, expect, vi, afterEach } from 'vitest'
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const links: string[] = []
vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>()
  return {
    ...real,
    link: async (from: string) => {
      links.push(from)
      throw Object.assign(new Error('EPERM: operation not permitted, link'), { code: 'EPERM' })
    },
  }
})

const { DataDirLock, LOCK_FILE } = await import('../../../src/identity/data-dir-lock.js')

const dirs: string[] = []
afterEach(async () => { for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true }) })

describe('DataDirLock without hard links', () => {
  it('creates the lock in place (exclusively), refuses a second one, and leaves no temporary file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'meshwork-nolink-'))
    dirs.push(dir)
    const lock = await DataDirLock.acquire(dir)
    expect(links.length).toBeGreaterThan(0) // link() was tried
    expect(JSON.parse(await readFile(join(dir, LOCK_FILE), 'utf8'))).toMatchObject({ pid: process.pid })
    expect(await readdir(dir)).toEqual([LOCK_FILE])
    await expect(DataDirLock.acquire(dir)).rejects.toMatchObject({ code: 'INVALID_OPTIONS' })
    await lock.release()
    expect(await readdir(dir)).toEqual([])
  })
})
