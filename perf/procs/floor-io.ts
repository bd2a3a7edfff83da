/**
 * Worker thread of the architecture-floor baseline (see floor-node.ts): the
 * socket side of the floor, with none of meshwork's protocol.
 *
 * - `send`: takes records from the host's ring (our RingBuffer), packs them
 *   into WebSocket messages of up to BATCH_BYTES (`[u32 length][bytes]…`),
 *   sends them with a zero masking key (as meshwork does), and waits for
 *   'drain' above the same write high-water mark as meshwork's connections.
 * - `recv`: a WebSocketServer; each message's records go into the host's
 *   ring, published once per socket read (as meshwork's InboundWriter does);
 *   when the ring is full the socket is paused until there is room.
 *
 * Not meant to be run by hand: floor-node.ts starts it.
 *
 * @module
 */
import { parentPort, workerData } from 'node:worker_threads'
import { WebSocket, WebSocketServer, type RawData } from 'ws'
import { RingBuffer } from '../../src/ring/ring-buffer.js'
import { copyBytes } from '../../src/ring/copy-bytes.js'
import { BATCH_BYTES } from '../../src/connection/peer-actor.js'
import { WRITE_HIGH_WATER } from '../../src/connection/connection.js'

export interface FloorIoData {
  role: 'send' | 'recv'
  sab: SharedArrayBuffer
  /** The receiver's URL (role `send`). */
  url?: string
}

const data = workerData as FloorIoData
const port = parentPort
if (port === null) throw new Error('floor-io.ts runs as a worker thread')
const ring = RingBuffer.attach(data.sab)
const zeroMask = (mask: Uint8Array): void => { mask.fill(0) }
const SLAB_BYTES = 4 * 1024 * 1024

async function sender (url: string): Promise<void> {
  const ws = new WebSocket(url, { perMessageDeflate: false, generateMask: zeroMask })
  await new Promise<void>((resolve, reject) => { ws.once('open', () => { resolve() }); ws.once('error', reject) })
  port!.postMessage({ open: true })
  const sock = (ws as unknown as { _socket: NodeJS.EventEmitter })._socket
  // Batches are regions of a large slab, never written again once sent (meshwork's SendSlab).
  let slab = Buffer.allocUnsafe(SLAB_BYTES)
  let off = 0
  for (;;) {
    if (ring.isEmpty()) {
      if (await ring.waitForData(1_000) === 'closed') return
      continue
    }
    if (ws.bufferedAmount > WRITE_HIGH_WATER) {
      await new Promise((resolve) => sock.once('drain', resolve))
      continue
    }
    if (slab.length - off < BATCH_BYTES + 8) { slab = Buffer.allocUnsafe(SLAB_BYTES); off = 0 }
    const start = off
    let used = 0
    const s = slab
    ring.drain((rec) => {
      if (used > 0 && used + 4 + rec.length > BATCH_BYTES) return false
      s.writeUInt32LE(rec.length, start + used)
      copyBytes(s, start + used + 4, rec)
      used += 4 + rec.length
      return true
    })
    off += used
    ws.send(slab.subarray(start, start + used), { binary: true, compress: false })
    // One batch per turn: the socket flushes and the ring's wake-ups run, like a pump turn.
    await new Promise((resolve) => setImmediate(resolve))
  }
}

function receiver (): void {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 })
  wss.once('listening', () => {
    const addr = wss.address()
    if (addr === null || typeof addr === 'string') throw new Error('unexpected pipe address')
    port!.postMessage({ url: `ws://127.0.0.1:${addr.port}` })
  })
  wss.on('connection', (ws) => {
    const backlog: Uint8Array[] = []
    let waiting = false
    let publishQueued = false
    const publish = (): void => { publishQueued = false; ring.publish() }
    const flush = async (): Promise<void> => {
      while (backlog.length > 0) {
        await ring.waitForSpace(backlog[0]!.length, 1_000)
        while (backlog.length > 0 && ring.tryAppend(backlog[0]!)) backlog.shift()
        ring.publish()
      }
      waiting = false
      ws.resume()
    }
    ws.on('message', (d: RawData) => {
      const buf = d as Buffer
      for (let o = 0; o < buf.length;) {
        const len = buf.readUInt32LE(o)
        const rec = buf.subarray(o + 4, o + 4 + len)
        o += 4 + len
        if (backlog.length > 0 || !ring.tryAppend(rec)) backlog.push(rec)
      }
      if (backlog.length > 0) {
        ring.publish()
        if (!waiting) { waiting = true; ws.pause(); void flush() }
      } else if (!publishQueued) {
        publishQueued = true
        queueMicrotask(publish)
      }
    })
  })
}

if (data.role === 'send') {
  if (data.url === undefined) throw new Error('floor-io: a sender needs the url')
  void sender(data.url)
} else {
  receiver()
}
