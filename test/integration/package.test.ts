import { describe, it, expect } from 'vitest'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { fileURLToPath } from 'node:url'

const run = promisify(execFile)
const root = fileURLToPath(new URL('../..', import.meta.url))

describe('package', () => {
  it("`import { createMesh } from 'meshwork'` resolves through package.json exports to the build", async () => {
    const code = "const m = await import('meshwork'); console.log(typeof m.createMesh, typeof m.MeshError, Object.keys(m.ErrorCode).length)"
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', code], { cwd: root })
    expect(stdout.trim()).toBe('function function 11')
  })

  it('ws finds its native helper (bufferutil) for masking', async () => {
    const { stdout } = await run(process.execPath, ['-e', "console.log(typeof require('bufferutil').mask)"], { cwd: root })
    expect(stdout.trim()).toBe('function')
  })

  it('`npm run demo` entry runs a short demo and closes cleanly', async () => {
    const { stdout } = await run(process.execPath, ['dist/src/cli/main.js', 'demo', '--nodes', '3', '--duration', '2', '--rate', '5'], { cwd: root, timeout: 30_000 })
    expect(stdout).toMatch(/meshwork demo: 3 nodes/)
    expect(stdout).toMatch(/ok\/(in|out)/)
    expect(stdout).toMatch(/done: \d+ messages sent, \d+ delivered/)
  })
})
