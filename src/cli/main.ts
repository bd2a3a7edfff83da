#!/usr/bin/env node
import { Command, InvalidArgumentError } from 'commander'
import { runDemo } from './demo.js'
import { registerNodeCommand } from './node-command.js'
import { registerBenchCommand } from './bench-command.js'

function positiveInt (v: string): number {
  const n = Number(v)
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('must be a positive integer')
  return n
}

const program = new Command('meshwork')
  .description('meshwork: an embedded peer-to-peer mesh runtime for Node.js')
  .showHelpAfterError()

program.command('demo')
  .description('start a few nodes on 127.0.0.1, link them, send traffic and show a live view')
  .option('-n, --nodes <count>', 'number of nodes', positiveInt, 4)
  .option('-d, --duration <seconds>', 'how long to run', positiveInt, 8)
  .option('-r, --rate <messages>', 'messages per peer per 100 ms tick', positiveInt, 50)
  .action(async (opts: { nodes: number; duration: number; rate: number }) => {
    if (opts.nodes < 2) throw new InvalidArgumentError('--nodes must be at least 2')
    await runDemo({ nodes: opts.nodes, durationMs: opts.duration * 1000, rate: opts.rate, out: process.stdout })
  })

registerNodeCommand(program)
registerBenchCommand(program)

await program.parseAsync(process.argv)
