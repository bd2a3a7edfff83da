/**
 * A full garbage collection of the calling thread's heap, when the process
 * runs with `--expose-gc` (perf's harness does; a host never needs to).
 * Diagnostics only: perf samples RSS after collecting every isolate of a
 * node, so a worker's not-yet-collected garbage is not taken for per-link
 * state.
 *
 * @module
 */

/** Collect this thread's heap (twice: a second pass frees what finalizers of the first released). False without `--expose-gc`. */
export function collectGarbage (): boolean {
  const gc = (globalThis as { gc?: () => void }).gc
  if (typeof gc !== 'function') return false
  gc()
  gc()
  return true
}
