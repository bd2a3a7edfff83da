/**
 * Hypervisor steal time: the share of CPU time the VM's vCPUs were ready to
 * run but the host ran something else (`steal` in /proc/stat, Linux only).
 * On a shared VM it is what makes latency tails and absolute rates of a run
 * worthless whatever the code does (a spinning thread stalled up to 180 ms
 * at 15 % steal here), and the load average does not show it: the harness
 * reports it per scenario and for the whole run.
 *
 * @module
 */
import { readFileSync } from 'node:fs'

/** Cumulative CPU ticks of all CPUs: steal and total. */
export interface CpuTicks { steal: number; total: number }

/** Steal above this share of CPU time marks a run as disturbed by the host machine. */
export const STEAL_DISTURBED_PCT = 3

/** The `cpu` line of /proc/stat, or undefined where there is none (not Linux). */
export function cpuTicks (): CpuTicks | undefined {
  let text: string
  try { text = readFileSync('/proc/stat', 'utf8') } catch { return undefined }
  const line = text.split('\n').find((l) => l.startsWith('cpu '))
  if (line === undefined) return undefined
  // user nice system idle iowait irq softirq steal [guest guest_nice: already counted in user/nice]
  const f = line.trim().split(/\s+/).slice(1, 9).map(Number)
  if (f.length < 8 || f.some((x) => !Number.isFinite(x))) return undefined
  return { steal: f[7]!, total: f.reduce((a, b) => a + b, 0) }
}

/** Steal in % of all CPU time between two readings (undefined if either is missing or no time passed). */
export function stealPct (from: CpuTicks | undefined, to: CpuTicks | undefined): number | undefined {
  if (from === undefined || to === undefined) return undefined
  const total = to.total - from.total
  return total > 0 ? (to.steal - from.steal) / total * 100 : undefined
}
