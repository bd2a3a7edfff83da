// Router worker entry: wires the port to src/; no logic here.
import { parentPort } from 'node:worker_threads'
import { expose } from 'comlink'
import { nodeEndpoint } from '../src/actor/endpoint.js'
import { RouterService } from '../src/router/router-service.js'

if (parentPort === null) throw new Error('router.worker must run in a worker thread')
expose(new RouterService(), nodeEndpoint(parentPort))
