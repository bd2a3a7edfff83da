/**
 * A perf child's stand-in for an application's own heap: `mb` MB of live,
 * small JS objects kept for the life of the process.
 *
 * Why: a perf child's host heap is ~9 MB, V8's worst case for a receiver.
 * V8 (11.x) counts the external bytes of received Buffers against the old
 * generation's allocation limit, whose headroom grows with the live heap, so
 * a tiny heap runs a Mark-Compact every few MB received, where an
 * application with tens of MB live frees the same Buffers by Scavenges.
 * `npm run perf -- --host-heap-mb=N` measures that case (baselines too).
 * @module
 */
import { getHeapStatistics } from 'node:v8'

let kept: unknown[] = []

/** What was retained: heap used before and after, in MB. */
export interface HostHeap { readonly requestedMb: number; readonly usedBeforeMb: number; readonly usedAfterMb: number }

/** Keep about `mb` MB of live objects on this thread's heap (replacing any kept before). */
export function retainHostHeap (mb: number): HostHeap {
  if (!Number.isFinite(mb) || mb < 0) throw new RangeError(`retainHostHeap: mb must be a non-negative number (got ${mb})`)
  kept = []
  const before = getHeapStatistics().used_heap_size
  // ~64 bytes per entry on x64 (a 4-field object plus its slot in the array).
  const n = Math.round(mb * 1024 * 1024 / 64)
  const objs: unknown[] = new Array(n)
  for (let i = 0; i < n; i++) objs[i] = { i, a: i + 1, b: null, c: null }
  kept = objs
  const after = getHeapStatistics().used_heap_size
  return { requestedMb: mb, usedBeforeMb: before / 1048576, usedAfterMb: after / 1048576 }
}

/** Objects kept now. */
export function retainedObjects (): number { return kept.length }

/** The `PERF_HOST_HEAP_MB` a child was started with (the harness's --host-heap-mb), or 0. */
export function hostHeapMbFromEnv (env: NodeJS.ProcessEnv = process.env): number {
  const v = env['PERF_HOST_HEAP_MB']
  if (v === undefined || v === '') return 0
  const n = Number(v)
  if (!Number.isFinite(n) || n < 0) throw new RangeError(`PERF_HOST_HEAP_MB must be a non-negative number (got ${JSON.stringify(v)})`)
  return n
}
