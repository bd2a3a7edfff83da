// Fake IO workers for RouterService unit tests: the IoPeerControl a worker
// exposes, over an in-process MessageChannel (comlink), no worker thread.
import { MessageChannel, type MessagePort } from 'node:worker_threads'
import { expose } from 'comlink'
import { nodeEndpoint } from '../../src/actor/endpoint.js'
import type { IoPeerControl } from '../../src/actor/protocol.js'
import type { RouterService } from '../../src/router/router-service.js'

const ports: MessagePort[] = []

/** Attach a fake IO worker `index` to `svc`: every call a no-op that succeeds, unless `over` says otherwise. */
export async function attachFakeIo (svc: RouterService, index: number, over: Partial<IoPeerControl> = {}): Promise<void> {
  const ch = new MessageChannel()
  ports.push(ch.port1, ch.port2)
  const io: IoPeerControl = {
    dropConnection: async () => {},
    sendMembership: async () => true,
    discover: async () => true,
    sendRouting: async () => true,
    // The batched form goes through sendRouting, so tests that watch LSAs override that one only.
    sendRoutingMany: async (batch) => {
      const failed: string[] = []
      for (const x of batch) if (!await io.sendRouting(x.to, x.payloads)) failed.push(x.to)
      return failed
    },
    setRoutes: async () => {},
    setLinks: async () => {},
    ...over,
  }
  expose(io, nodeEndpoint(ch.port1))
  await svc.attachWorker(index, ch.port2)
}

/** Close every fake IO worker's channel (use in afterEach). */
export function closeFakeIos (): void {
  for (const p of ports.splice(0)) p.close()
}

/** Poll `cond` every 2 ms until it holds; throws naming `label` after `timeoutMs`. */
export async function until (cond: () => boolean, label: string, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${label}`)
    await new Promise((resolve) => setTimeout(resolve, 2))
  }
}
