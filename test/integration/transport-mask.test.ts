// The dialing side sends WebSocket frames with a zero masking key (io-worker.ts
// #dialOnce: both ends are meshwork nodes, so masking protects nothing and
// costs a copy + XOR of every payload byte). A raw TCP server plays the
// listener: it completes the upgrade by hand and reads the first client
// frame's header, mask bit and key as they are on the wire.
import { describe, it, expect, afterEach } from 'vitest'
import { createServer, type Socket } from 'node:net'
import { createHash } from 'node:crypto'
import { makeMesh, closeAll } from '../helpers/mesh.js'

afterEach(closeAll)

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'

describe('transport masking', () => {
  it("a dialing node's frames carry the mask bit with a zero key", async () => {
    const sockets: Socket[] = []
    const frame = new Promise<Buffer>((resolve, reject) => {
      const server = createServer((sock) => {
        sockets.push(sock)
        let buf = Buffer.alloc(0)
        let upgraded = false
        sock.on('error', () => {})
        sock.on('data', (d) => {
          buf = Buffer.concat([buf, d])
          if (!upgraded) {
            const end = buf.indexOf('\r\n\r\n')
            if (end < 0) return
            const head = buf.subarray(0, end).toString('latin1')
            const key = /sec-websocket-key:\s*(\S+)/i.exec(head)?.[1]
            if (key === undefined) { reject(new Error('no Sec-WebSocket-Key')); return }
            const accept = createHash('sha1').update(key + GUID).digest('base64')
            sock.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`)
            upgraded = true
            buf = buf.subarray(end + 4)
          }
          if (buf.length >= 14) { resolve(Buffer.from(buf)); server.close(); sock.destroy() }
        })
      }).listen(0, '127.0.0.1', () => {
        const port = (server.address() as { port: number }).port
        makeMesh({ listen: false, handshakeTimeoutMs: 1000 }).then((m) => m.connect(`ws://127.0.0.1:${port}`)).catch(() => { /* the fake listener never completes the handshake */ })
      })
    })
    const f = await frame
    expect(f[0]! & 0x0f).toBe(2) // binary
    expect(f[1]! & 0x80).toBe(0x80) // masked, as RFC 6455 requires of a client
    const len7 = f[1]! & 0x7f
    const keyAt = len7 === 126 ? 4 : len7 === 127 ? 10 : 2
    expect([...f.subarray(keyAt, keyAt + 4)]).toEqual([0, 0, 0, 0])
    for (const s of sockets) s.destroy()
  })
})
