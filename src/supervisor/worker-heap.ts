import { setFlagsFromString } from 'node:v8'

/**
 * The old-generation floor of an IO worker's heap, in MiB: V8 skips full
 * GCs (Mark-Compacts) while the old generation, counted with the external
 * bytes allocated since the last one, stays below it.
 *
 * Why: an IO worker allocates a Buffer outside its heap for every socket
 * read and every WebSocket message spanning reads. V8 11.3 (Node 20) counts
 * those bytes against the old generation's limit until a Scavenge frees
 * them, and scavenges for them only every ~10 MiB. The worker's heap is
 * small (~8-12 MiB live), so its limit leaves ~12 MiB of slack and under a
 * 64 KiB flood the limit came first: 16 Mark-Compacts a second, whose
 * concurrent marking kept V8's helper threads at 65 % of a core on a 2-core
 * machine (receiving process, `perf record` and /proc task times), 22 % of
 * the worker's own samples in GC, and its socket's receive queue backed up.
 * With a floor of 32 MiB, 64 Mark-Compacts in 6 s remained; from 48 none
 * (scavenges of ~0.2 ms every ~8 ms free the Buffers). Measured
 * (`.scratch` two-process flood, 64 KiB payloads, MiB/s, two runs each):
 * `borrowPayloads` receiver 734-840 -> 1,316-1,350; default receiver with
 * 64 MB of application heap 465-542 -> 1,132-1,272.
 *
 * Cost: garbage promoted to the worker's old generation waits for a full GC
 * until the floor is reached (in a 6 s flood the worker grew from 8 to
 * 12 MiB), so a busy worker may hold up to this much more heap.
 */
export const IO_WORKER_OLD_SPACE_FLOOR_MB = 64

const FLAG = 'initial-old-space-size'

let holds = 0

/** V8 flags that size a new heap's old generation: an operator who gave one keeps it (it applies to our workers too). Node refuses them in NODE_OPTIONS. */
const OPERATOR_FLAGS = [`--${FLAG}`, '--initial-heap-size']

/** Whether this process was started with its own initial heap sizing (then we leave the flag alone). */
function setByOperator (): boolean {
  return process.execArgv.some((a) => OPERATOR_FLAGS.some((f) => a.replace(/_/g, '-').startsWith(f)))
}

/**
 * Give the worker isolates created from now on an old-generation floor of
 * {@link IO_WORKER_OLD_SPACE_FLOOR_MB}, until the returned function is
 * called (once the worker is online: V8 reads the flag when it creates an
 * isolate). The flag is process-wide: holds are counted, and the last
 * release puts V8's default back, so workers the application starts later
 * are unaffected (one started meanwhile gets the floor too, which costs it
 * nothing but heap). A process started with its own
 * `--initial-old-space-size` or `--initial-heap-size` keeps it untouched.
 * Holds are counted per thread: meshes created from several threads at
 * once may restore the default while another's worker starts (that worker
 * then runs without the floor: slower, not wrong).
 */
export function holdWorkerHeapFloor (): () => void {
  if (setByOperator()) return () => {}
  if (holds++ === 0) setFlag(IO_WORKER_OLD_SPACE_FLOOR_MB)
  let released = false
  return () => {
    if (released) return
    released = true
    if (--holds === 0) setFlag(0)
  }
}

function setFlag (mb: number): void {
  try {
    setFlagsFromString(`--${FLAG}=${mb}`)
  } catch {
    // A V8 that froze its flags: the workers keep V8's default heap sizing.
  }
}
