/**
 * The `/metrics` HTTP endpoint of `meshwork node --metrics-port`: Prometheus
 * text from `mesh.metrics()` over `node:http`. It runs in the CLI process,
 * which is the host application here (the library itself never opens a
 * socket on the host's thread).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Registry } from 'prom-client'

/** What {@link startMetricsServer} needs. */
export interface MetricsServerOptions {
  /** TCP port; 0 picks a free one. */
  port: number
  /** Interface to bind, e.g. `127.0.0.1` (the CLI's default) or `::`. */
  host: string
  /**
   * The exposition text, or `undefined` while there is nothing to serve yet
   * (the endpoint answers 503 then).
   */
  scrape: () => Promise<string> | undefined
}

/** A listening metrics endpoint. */
export interface MetricsServer {
  /** `http://<host>:<port>/metrics` with the bound port. */
  readonly url: string
  /** Stop listening and end open connections (keep-alive scrapers included). Idempotent. */
  close: () => Promise<void>
}

/**
 * Listen on `host:port` and serve `GET /metrics` (and `HEAD`). Other paths
 * answer 404, other methods 405. Rejects with the listen error (e.g.
 * `EADDRINUSE`).
 */
export async function startMetricsServer (o: MetricsServerOptions): Promise<MetricsServer> {
  const server = createServer((req, res) => { void handle(req, res, o.scrape) })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(o.port, o.host, () => { server.off('error', reject); resolve() })
  })
  const { address, port } = server.address() as AddressInfo
  const host = address.includes(':') ? `[${address}]` : address
  let closing: Promise<void> | undefined
  return {
    url: `http://${host}:${port}/metrics`,
    close: async () => {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => { resolve() })
        // An idle keep-alive connection would hold close() open until it times out.
        server.closeAllConnections()
      })
      await closing
    },
  }
}

async function handle (req: IncomingMessage, res: ServerResponse, scrape: MetricsServerOptions['scrape']): Promise<void> {
  const path = (req.url ?? '/').split('?')[0]
  if (path !== '/metrics') {
    send(res, 404, 'text/plain; charset=utf-8', 'not found: the metrics are at /metrics\n')
    return
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('allow', 'GET, HEAD')
    send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n')
    return
  }
  const pending = scrape()
  if (pending === undefined) {
    send(res, 503, 'text/plain; charset=utf-8', 'the node is starting or closing\n')
    return
  }
  try {
    const text = await pending
    send(res, 200, Registry.PROMETHEUS_CONTENT_TYPE, text, req.method === 'HEAD')
  } catch (err) {
    send(res, 500, 'text/plain; charset=utf-8', `metrics failed: ${(err as Error).message}\n`)
  }
}

function send (res: ServerResponse, status: number, type: string, body: string, headOnly = false): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' })
  res.end(headOnly ? undefined : body)
}
