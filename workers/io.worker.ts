// IO worker entry: wires ports and rings to src/; no logic here.
import { parentPort, workerData } from 'node:worker_threads'
import { expose } from 'comlink'
import { nodeEndpoint } from '../src/actor/endpoint.js'
import { lowerThreadPriority } from '../src/util/thread-priority.js'
import { IoWorker } from '../src/io/io-worker.js'
import type { IoWorkerData } from '../src/actor/protocol.js'

if (parentPort === null) throw new Error('io.worker must run in a worker thread')
const data = workerData as IoWorkerData
lowerThreadPriority(data.config.threads.nice)
const worker = new IoWorker(data)
expose(worker.api(), nodeEndpoint(parentPort))
