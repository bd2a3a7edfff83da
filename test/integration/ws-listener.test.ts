// A listener keeps no upgrade request alive for the life of its socket
// (issue 2, RSS per idle link). Its error handler for a reset during the
// upgrade was an arrow in the 'upgrade' handler, which shares that
// handler's closure context, and the context held `req` for the
// handleUpgrade callback: every accepted link kept its IncomingMessage
// (headers, raw headers, parser state: ~1 KiB) until the socket closed.
import { describe, it, expect, onTestFinished } from 'vitest'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { once } from 'node:events'
import { setImmediate as nextTurn } from 'node:timers/promises'
import { WebSocket } from 'ws'
import { WsListener } from '../../src/transport/ws-listener.js'

// A gc() for this test only (node's documented way without --expose-gc).
setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

describe('WsListener', () => {
  it('does not retain the upgrade request of an accepted WebSocket', async () => {
    const requests: Array<WeakRef<object>> = []
    const accepted: WebSocket[] = []
    const listener = new WsListener({
      host: '127.0.0.1',
      port: 0,
      maxPayload: 1 << 20,
      handshakeTimeoutMs: 5_000,
      maxPending: () => false,
      onConnection: (ws, req) => { accepted.push(ws); requests.push(new WeakRef(req)) },
      onRefused: () => {},
    })
    const url = await listener.listen()
    const clients: WebSocket[] = []
    onTestFinished(() => {
      for (const c of clients) c.terminate()
      for (const ws of accepted) ws.terminate()
      listener.halt()
    })
    for (let i = 0; i < 3; i++) {
      const c = new WebSocket(url)
      clients.push(c)
      await once(c, 'open', { signal: AbortSignal.timeout(5_000) })
    }
    expect(requests).toHaveLength(3)
    // Both ends stay open (the server side's sockets are held in `accepted`);
    // only the requests may go. WeakRef targets live until the current job
    // ends, so collect after a turn of the loop.
    for (let i = 0; i < 3 && requests.some((r) => r.deref() !== undefined); i++) {
      await nextTurn()
      gc()
    }
    expect(accepted.every((ws) => ws.readyState === WebSocket.OPEN)).toBe(true)
    expect(requests.filter((r) => r.deref() !== undefined)).toHaveLength(0)
  })
})
