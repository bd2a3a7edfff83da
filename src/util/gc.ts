/**
 * A full garbage collection of the calling thread's heap, when the process
 * runs with `--expose-gc` (perf's harness does; a host never needs to).
 * Diagnostics only: perf samples RSS after collecting every isolate of a
 * node, so a worker's not-yet-collected garbage is not taken for per-link
 * state, and reports what the collection left (live bytes against the
 * pages V8 keeps), so the idle scenario can tell live per-link state from
 * heap slack.
 *
 * @module
 */
import { getHeapStatistics } from 'node:v8'
import { resourceLimits } from 'node:worker_threads'

/** One thread's heap after a full collection. */
export interface HeapAfterGc {
  /** Bytes of live objects (v8 used_heap_size). */
  readonly usedBytes: number
  /** Resident bytes of the heap's pages (v8 total_physical_size): live objects plus slack. */
  readonly physicalBytes: number
  /** Bytes of this thread's ArrayBuffers and Buffers (outside the heap: process.memoryUsage().arrayBuffers of this isolate). */
  readonly arrayBufferBytes: number
  /** This thread's young-generation limit in MiB (resourceLimits.maxYoungGenerationSizeMb: a worker's, V8's default if none was given; 0 on the main thread). */
  readonly youngGenerationMb: number
}

/** Collect this thread's heap (twice: a second pass frees what finalizers of the first released). null without `--expose-gc`. */
export function collectGarbage (): HeapAfterGc | null {
  const gc = (globalThis as { gc?: () => void }).gc
  if (typeof gc !== 'function') return null
  gc()
  gc()
  const h = getHeapStatistics()
  return { usedBytes: h.used_heap_size, physicalBytes: h.total_physical_size, arrayBufferBytes: process.memoryUsage().arrayBuffers, youngGenerationMb: resourceLimits.maxYoungGenerationSizeMb ?? 0 }
}
