// Router worker entry: wires the port to src/; no logic here.
import { parentPort, workerData } from 'node:worker_threads'
import { expose } from 'comlink'
import { nodeEndpoint } from '../src/actor/endpoint.js'
import { lowerThreadPriority } from '../src/util/thread-priority.js'
import { RouterService } from '../src/router/router-service.js'
import { identityFromDer } from '../src/identity/identity.js'
import type { RouterWorkerData } from '../src/actor/protocol.js'
import { keepLockFresh } from '../src/identity/data-dir-lock.js'

if (parentPort === null) throw new Error('router.worker must run in a worker thread')
const data = workerData as RouterWorkerData
lowerThreadPriority(data.config.threads.nice)
const service = new RouterService({
  selfId: data.selfId,
  join: data.config.join,
  allow: data.config.allow,
  // SWIM probes at the heartbeat pace, so a fast-heartbeat mesh also agrees fast.
  protocolPeriodMs: data.config.heartbeat.intervalMs,
  maxPeers: data.config.maxPeers,
  // SWIM forgets a dead or left member after this; the host then drops the peer's state (Mesh.#forget).
  reapAfterMs: data.config.delivery.forgetAfterMs,
  // The router signs this node's link-state advertisements with the node key.
  routing: { signer: identityFromDer(data.identityDer), k: data.config.routing.k, maxHops: data.config.routing.maxHops, tuning: { costWeights: data.config.routing.cost } },
})
if (data.lock !== undefined) keepLockFresh(data.lock.file, data.lock.text, { lost: (why) => { service.lockLost(why) }, recreated: (why) => { service.lockRecreated(why) } })
expose(service, nodeEndpoint(parentPort))
