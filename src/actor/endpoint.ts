import type { MessagePort, Worker } from 'node:worker_threads'
import { transferHandlers, type Endpoint, type Remote, type TransferHandler } from 'comlink'
import { MeshError, ErrorCode, toWire, fromWire } from '../errors.js'

type NodePort = Pick<MessagePort, 'postMessage' | 'on' | 'off'> & { start?: () => void }

/**
 * Adapt a Node MessagePort/Worker/parentPort to comlink's DOM-style Endpoint.
 * (comlink ships an equivalent node-adapter, but only as an .mjs file without
 * resolvable types under NodeNext.)
 */
export function nodeEndpoint (port: NodePort | Worker): Endpoint {
  const listeners = new WeakMap<object, (data: unknown) => void>()
  const p = port as NodePort
  return {
    postMessage: (message: unknown, transfer?: any[]) => { p.postMessage(message, transfer) },
    addEventListener: (_type: string, handler: any) => {
      const l = (data: unknown): void => {
        if (typeof handler === 'function') handler({ data })
        else handler.handleEvent({ data })
      }
      p.on('message', l)
      listeners.set(handler, l)
    },
    removeEventListener: (_type: string, handler: any) => {
      const l = listeners.get(handler)
      if (l === undefined) return
      p.off('message', l)
      listeners.delete(handler)
    },
    start: p.start?.bind(p),
  } as Endpoint
}

/**
 * A comlink remote whose calls reject with MeshError `CLOSED` (details.reason
 * 'worker-exit') once `worker` has exited, instead of waiting forever: a
 * worker that dies takes its pending answers with it, and comlink has no
 * notion of the other side going away (seen: a `connect()` that never
 * settled after an IO worker crash under load). Symbol properties (e.g.
 * `releaseProxy`) and `then` pass through untouched.
 */
export function untilExit<T> (remote: Remote<T>, worker: Pick<Worker, 'once'>, name: string): Remote<T> {
  let exited: MeshError | undefined
  const pending = new Set<(err: MeshError) => void>()
  worker.once('exit', (code: number) => {
    exited = new MeshError(ErrorCode.CLOSED, `${name} stopped (exit code ${code}) before answering`, { details: { reason: 'worker-exit' } })
    for (const fail of pending) fail(exited)
    pending.clear()
  })
  return new Proxy(remote as object, {
    get (target, prop, receiver) {
      const v: unknown = Reflect.get(target, prop, receiver)
      if (typeof prop === 'symbol' || prop === 'then') return v
      return async (...args: unknown[]): Promise<unknown> => {
        if (exited !== undefined) throw exited
        return await new Promise((resolve, reject) => {
          pending.add(reject)
          ;(v as (...a: unknown[]) => Promise<unknown>)(...args).then(
            (x) => { pending.delete(reject); resolve(x) },
            (err: unknown) => { pending.delete(reject); reject(err) },
          )
        })
      }
    },
  }) as Remote<T>
}

/**
 * comlink sends a thrown Error as {message, name, stack}: the class and `code`
 * are lost (STYLE.md §3). Wrap its 'throw' handler so a MeshError crosses the
 * port as toWire() and is rebuilt with fromWire() — users can match on
 * `err.code` and `instanceof MeshError`. Installed once, in every thread that
 * imports this module.
 */
function installErrorTransfer (): void {
  const original = transferHandlers.get('throw') as TransferHandler<{ value: unknown }, any> | undefined
  if (original === undefined || (original as { meshwork?: boolean }).meshwork === true) return
  const handler: TransferHandler<{ value: unknown }, any> & { meshwork: true } = {
    meshwork: true,
    canHandle: original.canHandle,
    serialize (v) {
      if (v.value instanceof MeshError) return [{ isError: 'meshwork', value: toWire(v.value) }, []]
      return original.serialize(v)
    },
    deserialize (s: any) {
      if (s?.isError === 'meshwork') throw fromWire(s.value)
      return original.deserialize(s)
    },
  }
  transferHandlers.set('throw', handler)
}
installErrorTransfer()
