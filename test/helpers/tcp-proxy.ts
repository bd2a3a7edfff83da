import { createServer, connect as tcpConnect, type Server, type Socket } from 'node:net'

const open: Array<() => void> = []

/**
 * A TCP proxy to 127.0.0.1:port, for cutting one link while its two nodes
 * run on: cut() closes the proxy and every connection through it, so both
 * ends see the link drop. Dial `url` instead of the node's own address.
 * `delayMs` holds every chunk that long in each direction (order kept: equal
 * timeouts fire in order), a slow link of RTT ≈ 2 × delayMs. freeze()
 * stops every byte and every close from passing (see below).
 */
export async function tcpProxy (port: number, o: { delayMs?: number } = {}): Promise<{ url: string; cut: () => void; freeze: () => void }> {
  const sockets = new Set<Socket>()
  let frozen = false
  const server: Server = createServer((client) => {
    const upstream = tcpConnect(port, '127.0.0.1')
    for (const s of [client, upstream]) {
      sockets.add(s)
      // Frozen: a close on one side is not passed on (the other end keeps a half-open connection).
      s.on('error', () => { if (!frozen) { client.destroy(); upstream.destroy() } })
      s.on('close', () => { sockets.delete(s); if (!frozen) { client.destroy(); upstream.destroy() } })
    }
    const d = o.delayMs ?? 0
    if (d <= 0) {
      client.on('data', (b: Buffer) => { if (!frozen) upstream.write(b) })
      upstream.on('data', (b: Buffer) => { if (!frozen) client.write(b) })
    } else {
      client.on('data', (b: Buffer) => { setTimeout(() => { if (!frozen) upstream.write(b) }, d) })
      upstream.on('data', (b: Buffer) => { setTimeout(() => { if (!frozen) client.write(b) }, d) })
    }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const addr = server.address()
  if (addr === null || typeof addr === 'string') throw new Error('no proxy address')
  const cut = (): void => {
    server.close()
    for (const s of sockets) s.destroy()
  }
  open.push(cut)
  // A host that vanished without a FIN (power loss, a cable pulled): nothing passes any more, in either direction, and no close either.
  const freeze = (): void => { frozen = true }
  return { url: `ws://127.0.0.1:${addr.port}`, cut, freeze }
}

/** Close every proxy made by tcpProxy (use in afterEach). */
export function cutAllProxies (): void {
  for (const cut of open.splice(0)) cut()
}
