/**
 * `meshwork bench`: run the perf harness (perf/harness.ts, built to
 * dist/perf/harness.js) in a child process with `--expose-gc`, passing every
 * argument on. The harness ships with the repository, not with the npm
 * package: from an installed package this says so and exits 2.
 */
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { Command } from 'commander'

/** dist/src/cli/ → dist/perf/harness.js */
const HARNESS = fileURLToPath(new URL('../../perf/harness.js', import.meta.url))

/** Add the `bench` subcommand to `program`. */
export function registerBenchCommand (program: Command): Command {
  return program.command('bench')
    .description('run the perf harness (what `npm run perf` runs): scenarios with nodes in separate processes, each against a raw ws baseline in the same run')
    .argument('[harness-args...]', 'scenarios and harness options, e.g. `throughput latency`, `--quick`, `--list`, `--duration-ms 1000`')
    .allowUnknownOption()
    .helpOption('-h, --help', 'show this help (the harness\'s own: meshwork bench -- --help)')
    .addHelpText('after', `
Examples:
  meshwork bench                     every scenario (minutes; rewrites perf/RESULTS.md and the chart)
  meshwork bench --quick             a smoke run with tiny durations (results in perf/results/quick/)
  meshwork bench throughput latency  some scenarios
  meshwork bench -- --list           the harness's scenario list

Run from a checkout after \`npm run build\`: the harness is not part of the npm package.`)
    .action(async (args: string[]) => { await runBench(args) })
}

async function runBench (args: string[]): Promise<void> {
  if (!existsSync(HARNESS)) {
    process.stderr.write(`meshwork bench: the perf harness is not here (${HARNESS}); it ships with the repository: clone it and run \`npm run build\` first\n`)
    process.exit(2)
  }
  const child = spawn(process.execPath, ['--expose-gc', HARNESS, ...args], { stdio: 'inherit' })
  // The harness kills its own children on SIGINT/SIGTERM; pass the signal on and wait for it.
  const forward = (sig: NodeJS.Signals): void => { child.kill(sig) }
  process.on('SIGINT', forward)
  process.on('SIGTERM', forward)
  const code = await new Promise<number>((resolve) => {
    child.on('error', (err) => { process.stderr.write(`meshwork bench: ${err.message}\n`); resolve(1) })
    child.on('exit', (c, signal) => { resolve(c ?? (signal === null ? 1 : 128 + (signal === 'SIGINT' ? 2 : 15))) })
  })
  process.exit(code)
}
