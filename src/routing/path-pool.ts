/**
 * Where k-shortest paths are computed: inline for small graphs (a worker
 * round trip would cost more than the work), on a piscina pool for large
 * ones, so the routing actor's thread stays responsive to LSAs and
 * membership while a 1,000-node recomputation runs (DESIGN.md §1: heavy
 * path computations may go to the piscina pool).
 *
 * The pool is created on the first large job, not before: most meshes
 * never need it, and an idle pool is threads for nothing.
 *
 * @module
 */
import { fileURLToPath } from 'node:url'
import { Piscina } from 'piscina'
import { ErrorCode, MeshError } from '../errors.js'
import { compactGraph, indexOf, type CompactGraph, type Path, type ReadonlyGraph } from './graph.js'
import { isCompact } from './dijkstra.js'
import { decodePathsResult, type PathsResult, type PathsTask } from './path-task.js'
import { kShortestToAll } from './yen.js'

/** Built task entry, resolved from this file: dist/src/routing/ → dist/workers/. */
const DEFAULT_TASK_URL = new URL('../../workers/paths.task.js', import.meta.url)

/** Options of a {@link PathPool}. */
export interface PathPoolOptions {
  /** Graphs with at most this many nodes are computed inline. Integer >= 0. @default 200 */
  inlineMaxNodes?: number
  /** Pool threads. Integer >= 1. @default 1 */
  maxThreads?: number
  /** An idle pool thread exits after this long (ms). @default 30000 */
  idleTimeoutMs?: number
  /** The task entry (a path or file URL). @default dist/workers/paths.task.js next to this build */
  filename?: string | URL
}

/** Defaults of {@link PathPoolOptions}. */
export const PATH_POOL_DEFAULTS = { inlineMaxNodes: 200, maxThreads: 1, idleTimeoutMs: 30_000 } as const

/** Counters of a {@link PathPool}. */
export interface PathPoolStats {
  /** Jobs computed inline. */
  inline: number
  /** Jobs computed on the pool. */
  pooled: number
  /** Worker compute time of the last pooled job, ms. */
  lastPoolComputeMs: number
}

/** Inline-or-pool k-shortest-paths computation; see the module doc. */
export class PathPool {
  readonly inlineMaxNodes: number
  readonly stats: PathPoolStats = { inline: 0, pooled: 0, lastPoolComputeMs: 0 }
  readonly #maxThreads: number
  readonly #idleTimeoutMs: number
  readonly #filename: string
  #pool: Piscina<PathsTask, PathsResult> | undefined
  #closed = false

  /** @throws MeshError `INVALID_OPTIONS` naming the bad option. */
  constructor (opts: PathPoolOptions = {}) {
    this.inlineMaxNodes = int(opts.inlineMaxNodes ?? PATH_POOL_DEFAULTS.inlineMaxNodes, 'inlineMaxNodes', 0)
    this.#maxThreads = int(opts.maxThreads ?? PATH_POOL_DEFAULTS.maxThreads, 'maxThreads', 1)
    this.#idleTimeoutMs = int(opts.idleTimeoutMs ?? PATH_POOL_DEFAULTS.idleTimeoutMs, 'idleTimeoutMs', 0)
    const f = opts.filename ?? DEFAULT_TASK_URL
    this.#filename = f instanceof URL ? fileURLToPath(f) : f
  }

  /**
   * The up to `k` shortest loop-free paths from `source` to every node it
   * reaches (see {@link kShortestToAll}); on the pool when the graph has
   * more than `inlineMaxNodes` nodes.
   * @throws MeshError `CLOSED` after {@link close}; RangeError on a bad k or
   *   unknown source; the signal's reason when aborted.
   */
  async kShortestToAll (graph: ReadonlyGraph | CompactGraph, source: string, k: number, opts: { signal?: AbortSignal } = {}): Promise<Map<string, Path[]>> {
    if (this.#closed) throw new MeshError(ErrorCode.CLOSED, 'path pool is closed')
    opts.signal?.throwIfAborted()
    const cg = isCompact(graph) ? graph : compactGraph(graph)
    if (cg.ids.length <= this.inlineMaxNodes) {
      this.stats.inline++
      return kShortestToAll(cg, source, k)
    }
    const s = indexOf(cg, source)
    if (s < 0) throw new RangeError(`kShortestToAll: source ${source} is not a node of the graph`)
    if (!Number.isInteger(k) || k < 1) throw new RangeError(`k must be an integer >= 1 (got ${String(k)})`)
    this.#pool ??= new Piscina<PathsTask, PathsResult>({
      filename: this.#filename,
      name: 'default',
      minThreads: 0,
      maxThreads: this.#maxThreads,
      idleTimeout: this.#idleTimeoutMs,
    })
    const r = await this.#pool.run({ graph: cg, source: s, k }, opts.signal === undefined ? {} : { signal: opts.signal })
    this.stats.pooled++
    this.stats.lastPoolComputeMs = r.computeMs
    return decodePathsResult(cg.ids, r)
  }

  /** Graceful: running jobs finish, then the threads exit. Idempotent. */
  async close (): Promise<void> {
    this.#closed = true
    const p = this.#pool
    this.#pool = undefined
    await p?.close()
  }

  /** Immediate: running jobs are rejected, threads are terminated. Idempotent. */
  async destroy (): Promise<void> {
    this.#closed = true
    const p = this.#pool
    this.#pool = undefined
    await p?.destroy()
  }
}

function int (v: number, name: string, min: number): number {
  if (!Number.isSafeInteger(v) || v < min) throw new MeshError(ErrorCode.INVALID_OPTIONS, `pathPool.${name} must be an integer >= ${min} (got ${String(v)})`)
  return v
}
