import { WebSocket, type RawData } from 'ws'
import { Handshake, type HandshakeAction, type HandshakeConfig, type HandshakeResult, type RejectReason, type DecideStage } from '../handshake/handshake.js'
import { FrameType, CloseCode, ProtocolReason, STREAM_FRAME_TYPES } from '../codec/frame.js'
import { encodeFrame } from '../codec/encode.js'
import { decodeFrames, forEachFrame, frameScratch } from '../codec/decode.js'
import type { CodecLimits } from '../codec/limits.js'
import { MeshError, ErrorCode } from '../errors.js'
import type { WorkerLogger } from '../observability/worker-logger.js'
import { HealthMonitor, type HealthConfig, type HealthOutput } from '../liveness/health-monitor.js'
import type { HeartbeatClient, HeartbeatScheduler } from '../liveness/heartbeat-scheduler.js'

/** Bytes handed to the socket but not yet written, above which we stop pumping this connection. */
export const WRITE_HIGH_WATER = 512 * 1024
/** ... and below which we start again. */
export const WRITE_LOW_WATER = 128 * 1024

/** The validation pass parses every inbound frame into this one object (it only reads the type). */
const VALIDATED = frameScratch()

/** What a Connection needs from its IO worker. */
export interface ConnectionOwner {
  readonly limits: CodecLimits
  readonly log: WorkerLogger
  /** Admission and the duplicate rule; undefined = go on. */
  decide (conn: Connection, peerId: string, stage: DecideStage): Promise<{ reason: RejectReason; message: string } | undefined>
  established (conn: Connection, result: HandshakeResult): void
  /** Validated reliable-stream frames (DATA, REQUEST, …; see STREAM_FRAME_TYPES), bytes back to back, in arrival order. */
  data (conn: Connection, frames: Uint8Array, count: number): void
  /** The socket may take more bytes again. */
  writable (conn: Connection): void
  closed (conn: Connection, code: number, reason: string, failure: MeshError | undefined): void
  rejected (conn: Connection, reason: string): void
  /** A handshake failed: refused by us (remote false) or by the peer. */
  refused (conn: Connection, reason: string, remote: boolean): void
  /** Heartbeat settings for established connections. */
  readonly heartbeat: HealthConfig
  /** The worker's single heartbeat timer (and the ping grid its connections share). */
  readonly heartbeats: HeartbeatScheduler
  /** A membership (SWIM) payload from the peer of an established connection. */
  membership (conn: Connection, payload: Uint8Array): void
  /** A link-state routing payload (an LSA) from the peer. */
  routing (conn: Connection, payload: Uint8Array): void
  /** A FORWARD frame (a frame relayed for another node); `frame` is a view valid during the call. */
  forward (conn: Connection, frame: { src: string | null; dst: string | null; seq: number; flags: number; payload: Uint8Array | null }): void
  /** A cumulative ACK from the peer for our stream `stream` up to `seq`; `payload` carries its credit. */
  ack (conn: Connection, stream: number, seq: number, payload: Uint8Array | null): void
  /** A heartbeat health transition or RTT sample of an established connection. */
  health (conn: Connection, event: Extract<HealthOutput, { kind: 'transition' }> | { kind: 'rtt'; rttMs: number }): void
  counters: { framesIn: number; bytesIn: number; wsMessagesIn: number; framesOut: number; bytesOut: number; wsMessagesOut: number }
}

/** Handshake feature: only the dialer pings; the listener answers (and learns the RTT from the pings). */
export const ONE_WAY_HEARTBEAT = 'heartbeat-one-way'

/** A PING's RTT field: the sender's latest RTT in µs, uint32 big-endian (capped at ~71 min). */
function rttPayload (ms: number): Uint8Array {
  const b = Buffer.allocUnsafe(4)
  b.writeUInt32BE(Math.min(0xffffffff, Math.max(0, Math.round(ms * 1000))), 0)
  return b
}

function readRttUs (p: Uint8Array): number {
  return ((p[0]! << 24) >>> 0) + (p[1]! << 16) + (p[2]! << 8) + p[3]!
}

export type ConnectionState = 'handshaking' | 'open' | 'closing' | 'closed'

/**
 * Where a peer actor sends: its peer's own {@link Connection}, a relay's
 * connection, or a relay's link on another IO worker of this node (a
 * RemoteHop, see io/cross-worker.ts).
 */
export interface FrameSink {
  readonly state: ConnectionState
  /** The neighbour at the other end. */
  readonly peerId: string | undefined
  /** True while the sink cannot take more now (the owner wakes the actor when it can). */
  readonly writeBlocked: boolean
  /** Bytes handed over and not yet written. */
  readonly bufferedBytes: number
  /** Send one WebSocket message holding `frames` encoded frames. */
  send (buf: Uint8Array, frames: number): void
}

/**
 * One WebSocket: its handshake, frame validation and write accounting. The
 * per-peer state (outbound ring, delivery) lives in the PeerActor this
 * connection is attached to once the handshake is done.
 */
export class Connection implements FrameSink {
  readonly id: number
  readonly key: string
  readonly direction: 'inbound' | 'outbound'
  /** The dialed URL (outbound) or the remote socket address (inbound). */
  readonly address: string
  readonly #ws: WebSocket
  readonly #owner: ConnectionOwner
  readonly #hs: Handshake
  #state: ConnectionState = 'handshaking'
  #timer: NodeJS.Timeout | undefined
  #inflight = 0
  #writeBlocked = false
  #paused = false
  #failure: MeshError | undefined
  #health: HealthMonitor | undefined
  /** Whether this side sends heartbeat pings (see #startHealth). */
  #pings = true
  peerId: string | undefined
  result: HandshakeResult | undefined

  constructor (id: number, worker: number, ws: WebSocket, direction: 'inbound' | 'outbound', address: string, owner: ConnectionOwner, hs: HandshakeConfig) {
    this.id = id
    this.key = `${worker}:${id}`
    this.#ws = ws
    this.direction = direction
    this.address = address
    this.#owner = owner
    this.#hs = new Handshake(hs)
    ws.binaryType = 'nodebuffer'
    ws.on('message', (data: RawData, isBinary: boolean) => { this.#onMessage(data as Buffer, isBinary) })
    ws.on('close', (code: number, reason: Buffer) => { this.#onClose(code, reason.toString()) })
    ws.on('error', (err: Error & { code?: string }) => { this.#onError(err) })
    const wait = Math.max(0, hs.deadline - Date.now())
    // A Node timer may fire up to ~1 ms early by Date.now() (libuv caches loop
    // time in whole ms): the timer firing *is* the deadline, so tick at it, or a
    // "not yet" would leave the connection with no timer at all.
    this.#timer = setTimeout(() => { this.#run(this.#hs.tick(Math.max(Date.now(), hs.deadline))) }, wait)
    this.#timer.unref()
  }

  get state (): ConnectionState { return this.#state }
  /** Whether ws masks our frames (we dialed: client side, RFC 6455 §5.3). */
  get masks (): boolean { return this.direction === 'outbound' }
  get writeBlocked (): boolean { return this.#writeBlocked }
  get bufferedBytes (): number { return this.#inflight }

  /** Dialer: begin (call once the socket is open). */
  start (): void { this.#run(this.#hs.start()) }

  /** Send one WebSocket message holding one or more encoded frames. */
  send (buf: Uint8Array, frames: number): void {
    if (this.#state !== 'open' && this.#state !== 'handshaking') return
    // A dialed socket still connecting (TCP or the HTTP upgrade is slow: the
    // handshake deadline can pass first and queue a REJECT): ws.send would
    // throw and take the whole IO worker down. Nothing to say to it yet.
    if (this.#ws.readyState !== WebSocket.OPEN) return
    const n = buf.length
    this.#inflight += n
    const c = this.#owner.counters
    c.framesOut += frames; c.bytesOut += n; c.wsMessagesOut++
    if (this.#inflight > WRITE_HIGH_WATER) this.#writeBlocked = true
    this.#ws.send(buf, { binary: true, compress: false }, () => {
      this.#inflight -= n
      if (this.#writeBlocked && this.#inflight <= WRITE_LOW_WATER) {
        this.#writeBlocked = false
        this.#owner.writable(this)
      }
    })
  }

  /** Stop / resume reading (the host's inbound ring is full). */
  pause (paused: boolean): void {
    if (this.#paused === paused || this.#state === 'closed') return
    this.#paused = paused
    if (paused) this.#ws.pause()
    else this.#ws.resume()
  }

  /** Close with a code and reason (reason cut to the 123 bytes a close frame allows). */
  close (code: number, reason: string, failure?: MeshError): void {
    if (this.#state === 'closed' || this.#state === 'closing') return
    this.#failure ??= failure
    this.#state = 'closing'
    clearTimeout(this.#timer)
    this.#stopHealth()
    try {
      this.#ws.close(code, Buffer.from(reason).subarray(0, 123).toString())
    } catch {
      this.#ws.terminate()
    }
    // A peer that never answers the close handshake must not hold the socket.
    const t = setTimeout(() => { this.#ws.terminate() }, 2000)
    t.unref()
  }

  /** Drop the socket at once. */
  terminate (): void { this.#ws.terminate() }

  #onMessage (data: Buffer, isBinary: boolean): void {
    if (this.#state === 'closing' || this.#state === 'closed') return
    const c = this.#owner.counters
    c.wsMessagesIn++
    c.bytesIn += data.length
    const hm = this.#health
    if (hm !== undefined) {
      // Any inbound message is proof of life; a transition back to healthy is reported at once.
      const wasHealthy = hm.state === 'healthy'
      hm.onActivity(performance.now())
      if (!wasHealthy) this.#drainHealth()
    }
    if (!isBinary) {
      this.#protocolError(new MeshError(ErrorCode.PROTOCOL, 'text WebSocket messages are not part of the protocol', { details: { reason: ProtocolReason.TEXT_MESSAGE, closeCode: CloseCode.PROTOCOL_ERROR } }))
      return
    }
    if (this.#state === 'handshaking') {
      let frames
      try {
        frames = decodeFrames(data, this.#owner.limits)
      } catch (err) {
        this.#protocolError(err as MeshError)
        return
      }
      for (const f of frames) {
        c.framesIn++
        this.#run(this.#hs.handle(f))
        if (this.#state !== 'handshaking') break
      }
      return
    }
    // Open: validate the whole message first, so a bad frame delivers nothing of it.
    let dataFrames = 0
    let other = 0
    let firstData = -1
    let lastDataEnd = -1
    let contiguous = true
    try {
      forEachFrame(data, this.#owner.limits, (f, start, end) => {
        if (STREAM_FRAME_TYPES.has(f.type)) {
          if (firstData < 0) firstData = start
          else if (start !== lastDataEnd) contiguous = false
          lastDataEnd = end
          dataFrames++
        } else if (f.type === FrameType.PING || f.type === FrameType.PONG || f.type === FrameType.GOAWAY || f.type === FrameType.MEMBERSHIP || f.type === FrameType.ACK || f.type === FrameType.ROUTING || f.type === FrameType.FORWARD) {
          other++
        } else {
          throw new MeshError(ErrorCode.PROTOCOL, `frame type ${f.type} is not allowed after the handshake`, { details: { reason: ProtocolReason.UNEXPECTED_FRAME, closeCode: CloseCode.PROTOCOL_ERROR, offset: start } })
        }
      }, VALIDATED)
    } catch (err) {
      this.#protocolError(err as MeshError)
      return
    }
    c.framesIn += dataFrames + other
    if (other === 0 || contiguous) {
      if (dataFrames > 0) this.#owner.data(this, data.subarray(firstData, lastDataEnd), dataFrames)
      if (other === 0) return
    }
    // Mixed message: deliver data runs in order, answer control frames.
    let runStart = -1
    let runEnd = -1
    let runCount = 0
    forEachFrame(data, this.#owner.limits, (f, start, end) => {
      if (STREAM_FRAME_TYPES.has(f.type)) {
        if (contiguous) return
        if (runStart < 0) runStart = start
        runEnd = end
        runCount++
        return
      }
      if (runStart >= 0) { this.#owner.data(this, data.subarray(runStart, runEnd), runCount); runStart = -1; runCount = 0 }
      if (f.type === FrameType.PING) {
        this.send(encodeFrame({ ...f, type: FrameType.PONG, payload: null }), 1)
        // One-way heartbeats: the pinging side tells us the RTT it measured.
        if (f.payload !== null && f.payload.length === 4 && this.#health !== undefined && !this.#pings) {
          this.#health.onRemoteRtt(readRttUs(f.payload) / 1000)
          const rtt = this.#health.rttMs
          if (rtt !== undefined) this.#owner.health(this, { kind: 'rtt', rttMs: rtt })
        }
      } else if (f.type === FrameType.MEMBERSHIP) {
        if (f.payload !== null) this.#owner.membership(this, f.payload)
      } else if (f.type === FrameType.ACK) {
        this.#owner.ack(this, f.stream, f.seq, f.payload)
      } else if (f.type === FrameType.ROUTING) {
        if (f.payload !== null) this.#owner.routing(this, f.payload)
      } else if (f.type === FrameType.FORWARD) {
        this.#owner.forward(this, f)
      } else if (f.type === FrameType.PONG && this.#health !== undefined) {
        if (this.#health.onPong(f.seq, performance.now())) {
          const rtt = this.#health.rttMs
          if (rtt !== undefined) this.#owner.health(this, { kind: 'rtt', rttMs: rtt })
        }
        this.#drainHealth()
      }
    })
    if (runStart >= 0) this.#owner.data(this, data.subarray(runStart, runEnd), runCount)
  }

  #run (actions: HandshakeAction[]): void {
    for (const a of actions) {
      switch (a.kind) {
        case 'send':
          this.send(encodeFrame(a.frame), 1)
          break
        case 'decide':
          this.peerId = a.peerId
          this.#owner.decide(this, a.peerId, a.stage).then(
            (refusal) => { if (this.#state === 'handshaking') this.#run(this.#hs.decide(refusal)) },
            (err: unknown) => { if (this.#state === 'handshaking') this.#run(this.#hs.decide({ reason: 'busy', message: String((err as Error)?.message ?? err) })) },
          )
          break
        case 'established':
          clearTimeout(this.#timer)
          this.#state = 'open'
          this.peerId = a.result.peerId
          this.result = a.result
          this.#owner.established(this, a.result)
          if (this.#state === 'open') this.#startHealth()
          break
        case 'failed': {
          const code = a.reason === 'unauthorized' ? ErrorCode.UNAUTHORIZED
            : a.reason === 'timeout' ? ErrorCode.TIMEOUT : ErrorCode.PROTOCOL
          const err = new MeshError(code, `handshake with ${this.address} failed (${a.reason}): ${a.message}`, { details: { reason: a.reason, closeCode: a.closeCode, remote: a.remote, peerId: a.peerId } })
          this.#owner.refused(this, a.reason, a.remote)
          this.#owner.log.info({ event: 'handshake:failed', conn: this.key, address: this.address, reason: a.reason, remote: a.remote, peer: a.peerId }, a.message)
          // Let the REJECT frame go out first: close after the queued send.
          this.close(a.closeCode, a.reason, err)
          break
        }
      }
    }
  }

  // ---- heartbeats (the HealthMonitor is sans-IO; this is its clock and socket) ----

  #startHealth (): void {
    const sched = this.#owner.heartbeats
    this.#health = new HealthMonitor(this.#owner.heartbeat)
    // One-way heartbeats when both sides speak them: the dialer pings, the
    // listener answers and judges the dialer by its pings (half the frames
    // of both sides pinging; an idle link costs two small frames a beat).
    this.#pings = this.direction === 'outbound' || this.result?.features.includes(ONE_WAY_HEARTBEAT) !== true
    // Ping grid shared by the worker's connections: one wake-up sends them all.
    this.#health.start(sched.now(), { gridOrigin: sched.origin, ping: this.#pings })
    this.#drainHealth()
    if (this.#state === 'open') sched.add(this.#hbClient)
  }

  /** Heartbeat pings sent and known lost so far, or undefined when this side does not ping (one-way heartbeats, listener). */
  pingCounts (): { sent: number; lost: number } | undefined {
    const hm = this.#health
    return hm === undefined || !this.#pings ? undefined : { sent: hm.pingsSent, lost: hm.pingsLost }
  }

  #stopHealth (): void {
    this.#owner.heartbeats.remove(this.#hbClient)
    this.#health?.stop()
  }

  /** This connection as the worker's HeartbeatScheduler sees it. */
  readonly #hbClient: HeartbeatClient = {
    heartbeatDeadline: () => this.#health?.nextDeadline() ?? Infinity,
    onHeartbeatTimer: (now, clock) => { this.#onHealthTimer(now, clock) },
  }

  #onHealthTimer (now: number, clock: number): void {
    const hm = this.#health
    if (hm === undefined || this.#state !== 'open') return
    // While we hold the socket paused (our host is not keeping up), the peer's
    // frames wait in the kernel: their silence is our doing, not a failure.
    if (this.#paused) hm.onActivity(now)
    hm.tick(now, clock)
    this.#drainHealth()
  }

  #drainHealth (): void {
    const hm = this.#health
    if (hm === undefined) return
    for (let o = hm.poll(); o !== undefined; o = hm.poll()) {
      if (o.kind === 'send-ping') {
        // Our latest RTT rides along for a listener that does not ping (one-way heartbeats).
        const rtt = hm.rttMs
        this.send(encodeFrame({ version: 1, type: FrameType.PING, lane: 0, flags: 0, src: null, dst: null, stream: 0, seq: o.seq, payload: rtt === undefined ? null : rttPayload(rtt) }), 1)
        continue
      }
      if (o.state === 'dead') {
        const cfg = this.#owner.heartbeat
        const err = new MeshError(ErrorCode.TIMEOUT, `peer ${this.peerId ?? this.address} missed ${cfg.missesDead} heartbeats of ${cfg.intervalMs} ms`, { details: { reason: 'heartbeat', closeCode: CloseCode.HEARTBEAT_TIMEOUT } })
        this.#owner.log.info({ event: 'peer:dead', conn: this.key, peer: this.peerId, rttMs: o.rttMs }, err.message)
        this.close(CloseCode.HEARTBEAT_TIMEOUT, 'heartbeat timeout', err)
        // A silent peer will not answer the close handshake: drop the socket now so peer:down is prompt.
        this.#ws.terminate()
        return
      }
      this.#owner.health(this, o)
    }
  }

  #protocolError (err: MeshError): void {
    const reason = String(err.details?.reason ?? 'protocol')
    const closeCode = Number(err.details?.closeCode ?? CloseCode.PROTOCOL_ERROR)
    this.#owner.rejected(this, reason)
    this.#owner.log.warn({ event: 'frame:rejected', conn: this.key, peer: this.peerId, address: this.address, reason }, err.message)
    this.close(closeCode, `protocol error: ${reason}`, err)
  }

  #onError (err: Error & { code?: string }): void {
    // ws reports oversized messages (maxPayload) and bad framing here, then closes.
    if (err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') {
      this.#failure ??= new MeshError(ErrorCode.PROTOCOL, `peer sent a WebSocket message over the size limit: ${err.message}`, { details: { reason: 'payload-too-large', closeCode: CloseCode.TOO_BIG } })
      this.#owner.rejected(this, 'payload-too-large')
      this.#owner.log.warn({ event: 'frame:rejected', conn: this.key, peer: this.peerId, reason: 'payload-too-large' }, err.message)
    } else if (err.code?.startsWith('WS_ERR_') === true) {
      this.#failure ??= new MeshError(ErrorCode.PROTOCOL, `WebSocket protocol error: ${err.message}`, { details: { reason: ProtocolReason.WEBSOCKET, closeCode: CloseCode.PROTOCOL_ERROR } })
      this.#owner.rejected(this, ProtocolReason.WEBSOCKET)
      this.#owner.log.warn({ event: 'frame:rejected', conn: this.key, peer: this.peerId, reason: ProtocolReason.WEBSOCKET }, err.message)
    } else {
      this.#failure ??= new MeshError(ErrorCode.NO_ROUTE, `cannot reach ${this.address}: ${err.message}`, { cause: err, details: { reason: err.code ?? 'socket' } })
      this.#owner.log.debug({ event: 'socket:error', conn: this.key, address: this.address, code: err.code }, err.message)
    }
  }

  #onClose (code: number, reason: string): void {
    if (this.#state === 'closed') return
    const wasHandshaking = this.#state === 'handshaking'
    this.#state = 'closed'
    clearTimeout(this.#timer)
    this.#stopHealth()
    if (wasHandshaking && this.#failure === undefined) {
      // The peer's link registry may drop a connection that lost the
      // duplicate tie-break after its handshake began: that arrives as close
      // 4003 with no REJECT frame, and means "linked through the other one".
      const dup = code === CloseCode.DUPLICATE
      this.#failure = new MeshError(ErrorCode.PROTOCOL, `connection ${this.address} closed during the handshake (${code}${reason === '' ? '' : ` ${reason}`})`, { details: { reason: dup ? 'duplicate' : 'closed', closeCode: code } })
    }
    this.#owner.closed(this, code, reason, this.#failure)
  }
}
