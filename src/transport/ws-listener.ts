import { createServer, type Server, type IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { WebSocketServer, type WebSocket } from 'ws'

export interface ListenerOptions {
  host: string
  port: number
  maxPayload: number
  /** Bounds a request that never upgrades and a slow header write. */
  handshakeTimeoutMs: number
  /** Connections upgraded but not yet handshaken, above which new ones get 503. */
  maxPending: () => boolean
  onConnection: (ws: WebSocket, req: IncomingMessage) => void
  onRefused: (reason: string) => void
}

/**
 * A reset during the upgrade: nothing to do. A function of its own, not an
 * arrow in the 'upgrade' handler: that one would share the handler's closure
 * context, which holds `req` for the handleUpgrade callback, and so keep the
 * upgrade request (headers and all, ~1 KiB) alive as long as the socket.
 */
function ignoreSocketError (): void {}

/**
 * One listening address: a plain HTTP server that only upgrades to WebSocket
 * (any other request gets 426), with header/request timeouts so a client that
 * never finishes its upgrade request is dropped.
 */
export class WsListener {
  readonly #server: Server
  readonly #wss: WebSocketServer
  readonly #o: ListenerOptions

  constructor (o: ListenerOptions) {
    this.#o = o
    this.#server = createServer({
      headersTimeout: o.handshakeTimeoutMs,
      requestTimeout: o.handshakeTimeoutMs,
      // How often Node checks the two timeouts above (default 30 s is too coarse).
      connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(o.handshakeTimeoutMs / 4))),
      keepAliveTimeout: 1000,
    })
    this.#wss = new WebSocketServer({ noServer: true, maxPayload: o.maxPayload, perMessageDeflate: false, clientTracking: false })
    this.#server.on('request', (req, res) => {
      o.onRefused('not-upgrade')
      res.writeHead(426, { 'content-type': 'text/plain', connection: 'close', upgrade: 'websocket' })
      res.end('meshwork: WebSocket upgrade required\n')
    })
    this.#server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      socket.on('error', ignoreSocketError)
      if (o.maxPending()) {
        o.onRefused('busy')
        socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n')
        return
      }
      this.#wss.handleUpgrade(req, socket, head, (ws) => { o.onConnection(ws, req) })
    })
    this.#server.on('clientError', (_err, socket: Duplex) => {
      o.onRefused('bad-request')
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n')
      else socket.destroy()
    })
  }

  /** Bind; resolves to the concrete `ws://host:port` URL. */
  async listen (): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => { reject(err) }
      this.#server.once('error', onError)
      this.#server.listen({ host: this.#o.host, port: this.#o.port, exclusive: true }, () => {
        this.#server.off('error', onError)
        resolve()
      })
    })
    const a = this.#server.address()
    if (a === null || typeof a === 'string') throw new Error('listener has no TCP address')
    const host = a.family === 'IPv6' || a.address.includes(':') ? `[${a.address}]` : a.address
    return `ws://${host}:${a.port}`
  }

  /** Stop accepting; established WebSockets are not affected (they were upgraded out). */
  /**
   * Stop at once: no new connections, and every socket the HTTP server still
   * parses is destroyed (used before a worker is terminated: Node aborts the
   * process if a worker is torn down while its HTTP parser runs).
   */
  halt (): void {
    this.#server.close()
    this.#server.closeAllConnections()
  }

  close (): void {
    this.#server.close()
    this.#server.closeIdleConnections()
    this.#wss.close()
  }
}
