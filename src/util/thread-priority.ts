import { readlinkSync } from 'node:fs'
import { getPriority, setPriority } from 'node:os'

/**
 * Lower the calling thread's scheduling priority by `delta` nice steps
 * (capped at 19), so that when the machine's cores are all busy the host's
 * main thread runs first and its event loop stays responsive; the mesh's
 * threads still get their share (at +5, about a quarter of a contended core
 * against a main thread at +0), which is plenty for heartbeats.
 *
 * Linux only: there a nice value belongs to a thread (`setpriority` with the
 * thread id), and threads this thread starts inherit it (the router's path
 * pool). Elsewhere, or if the thread id cannot be read, nothing changes.
 * Never raises priority (that would need privileges).
 *
 * @returns the thread's nice value afterwards, or undefined if unchanged.
 */
export function lowerThreadPriority (delta: number): number | undefined {
  if (!(delta > 0) || process.platform !== 'linux') return undefined
  try {
    // /proc/thread-self resolves to "<pid>/task/<tid>" for the calling thread.
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop())
    if (!Number.isInteger(tid) || tid <= 0) return undefined
    const before = getPriority(tid)
    const after = Math.min(19, before + delta)
    if (after === before) return undefined
    setPriority(tid, after)
    return after
  } catch {
    return undefined
  }
}
