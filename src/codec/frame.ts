/**
 * The wire frame: types, constant tables and the protocol error shape shared
 * by the encoder, the decoder and the control-payload codec.
 *
 * On the wire (DESIGN.md §4) a frame is ONE msgpack value, an array of exactly
 * nine elements:
 *
 * ```
 * [version, type, lane, flags, src, dst, stream, seq, payload]
 *  uint     uint  uint  uint   nil|str nil|str uint uint  nil|bin
 * ```
 *
 * A WebSocket binary message carries one or more frames back to back (a
 * msgpack stream of concatenated values). Any msgpack library can read our
 * frames; we encode and parse this one fixed shape by hand because it is the
 * hot path (see encode.ts / decode.ts).
 *
 * @module
 */
import { ErrorCode, MeshError } from '../errors.js'

/** The frame format version this build writes (element 0 of every frame). */
export const PROTOCOL_VERSION = 1

/**
 * Frame types (element 1). Ranges leave room to grow without renumbering:
 * 1–15 handshake, 16–31 link data and liveness, 32+ reserved for membership,
 * routing and delivery frames added later. Values are never reused.
 */
export const FrameType = {
  /** Dialer's opening frame: versions, features, peer id, nonce. */
  HELLO: 1,
  /** Listener's answer to HELLO: its id, nonce and the negotiated set. */
  WELCOME: 2,
  /** Proof of key possession: signature over both nonces. */
  AUTH: 3,
  /** Handshake finished; data may flow. */
  READY: 4,
  /** Handshake refused; payload says why; the socket closes next. */
  REJECT: 5,
  /** Application data (payload is an encoded application value or a chunk). */
  DATA: 16,
  /** Liveness probe; answered with PONG carrying the same seq. */
  PING: 17,
  /** Answer to PING. */
  PONG: 18,
  /** Sender is closing the link gracefully; payload may carry a reason. */
  GOAWAY: 19,
  /** SWIM membership message (probe, ack, gossip), control lane; payload is msgpack. */
  MEMBERSHIP: 32,
  /**
   * Cumulative acknowledgement of a reliable stream, control lane: `stream` is
   * the acked sender's stream epoch, `seq` the highest sequence its
   * application has taken (everything up to it); payload is msgpack
   * `{ w: windowBytes }`, the credit the receiver grants beyond `seq`.
   */
  ACK: 33,
  /**
   * Every sequence up to `seq` of `stream` is settled: the sender gave up on
   * (expired) them, or, sent as the stream's base ahead of the first frame
   * after each rewind (a new connection, a routed stream's timeout), they were
   * acknowledged. The receiver must not wait for them; one with no state for
   * `stream` starts after `seq` (else only at seq 1). Travels in stream order.
   */
  SKIP: 34,
  /** A request (reliable stream frame): payload is msgpack `[id, method, value]`. */
  REQUEST: 35,
  /** A response (reliable stream frame): payload is msgpack `[id, ok, value | { code, message }]`. */
  RESPONSE: 36,
  /** A pub/sub publication (reliable stream frame): payload is msgpack `[topic, value]`. */
  PUBLISH: 37,
  /** The sender's subscriptions (reliable stream frame): payload is msgpack `['set' | 'add' | 'del', topics[]]`. */
  SUBSCRIBE: 38,
  /** Link-state routing (a signed LSA, see routing/lsa.ts), control lane, flooded hop by hop. */
  ROUTING: 39,
  /**
   * A frame for another node, relayed hop by hop: `src` is its origin, `dst`
   * its destination, `seq` the hops it may still take (decremented by each
   * relay, dropped at 0), payload the inner frame as encoded by the origin.
   */
  FORWARD: 40,
} as const
/** A known frame type value. */
export type FrameType = typeof FrameType[keyof typeof FrameType]

/**
 * Frame types of a reliable stream: sequenced by (`stream`, `seq`), acked
 * cumulatively, deduplicated by the receiver, and handed to its host.
 */
export const STREAM_FRAME_TYPES: ReadonlySet<number> = new Set([FrameType.DATA, FrameType.SKIP, FrameType.REQUEST, FrameType.RESPONSE, FrameType.PUBLISH, FrameType.SUBSCRIBE])

/**
 * Lanes (element 2). Control frames are scheduled before priority, priority
 * before bulk (DESIGN.md §3 "Lanes").
 */
export const Lane = {
  /** Heartbeats, acks, gossip, routing. */
  CONTROL: 0,
  /** Latency-sensitive application traffic. */
  PRIORITY: 1,
  /** Large or throughput-oriented application traffic. */
  BULK: 2,
} as const
/** A lane value. */
export type Lane = typeof Lane[keyof typeof Lane]

/** Highest valid lane value; the decoder rejects larger ones ('bad-lane'). */
export const MAX_LANE: number = Lane.BULK

/**
 * Flag bits (element 3, a uint 0..255). Unknown bits are carried, not
 * rejected, so a newer peer can set bits an older one ignores.
 */
export const FrameFlag = {
  /** The sender wants an acknowledgement for this frame's seq. */
  ACK_REQUESTED: 1,
  /** The payload is one chunk of a larger message; more chunks follow. */
  MORE: 2,
  /** The payload is the application's bytes as they are (not msgpack): a Uint8Array/Buffer payload. */
  RAW_PAYLOAD: 4,
  /** The frame continues a chunked message (it is not the message's first chunk). */
  CONTINUATION: 8,
} as const
/** A single flag bit. */
export type FrameFlag = typeof FrameFlag[keyof typeof FrameFlag]

/**
 * WebSocket close codes used by meshwork. 1000–1015 are RFC 6455 §7.4.1
 * codes; 4000–4999 are the range the RFC leaves to applications.
 */
export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  PROTOCOL_ERROR: 1002,
  TOO_BIG: 1009,
  HANDSHAKE_FAILED: 4001,
  HANDSHAKE_TIMEOUT: 4002,
  DUPLICATE: 4003,
  UNAUTHORIZED: 4004,
  VERSION: 4005,
  /** The peer missed heartbeat.missesDead heartbeats. */
  HEARTBEAT_TIMEOUT: 4006,
} as const
/** A close code value. */
export type CloseCode = typeof CloseCode[keyof typeof CloseCode]

/**
 * One decoded (or to-be-encoded) frame.
 *
 * - `version`: frame format version, {@link PROTOCOL_VERSION}.
 * - `type`: one of {@link FrameType}.
 * - `lane`: one of {@link Lane}.
 * - `flags`: bit field 0..255 of {@link FrameFlag}.
 * - `src`, `dst`: peer ids (UTF-8, at most `CodecLimits.maxIdBytes` bytes on
 *   decode); `null` means "the link's peer" / "me" on a direct link.
 * - `stream`: stream id, 0..2^32-1.
 * - `seq`: sequence number, 0..Number.MAX_SAFE_INTEGER.
 * - `payload`: opaque bytes (already-encoded application value or control
 *   object), or `null`. On decode this is a VIEW into the received buffer.
 */
export interface Frame {
  version: number
  type: number
  lane: number
  flags: number
  src: string | null
  dst: string | null
  stream: number
  seq: number
  payload: Uint8Array | null
}

/** Everything of a frame but its payload (see `encodeHeaderInto`). */
export type FrameHeader = Omit<Frame, 'payload'>

/** Largest `stream` value (uint32). */
export const MAX_STREAM = 0xffff_ffff
/** Largest `seq` value: beyond it a JS number loses integer precision. */
export const MAX_SEQ = Number.MAX_SAFE_INTEGER
/** Largest `flags` value (one byte of bits). */
export const MAX_FLAGS = 0xff

/**
 * Why a frame (or control payload) was rejected: `details.reason` of every
 * `PROTOCOL` MeshError thrown by the codec. Stable strings; extend, never
 * rename.
 *
 * | reason | meaning |
 * |---|---|
 * | `empty` | a WebSocket message with zero bytes |
 * | `truncated` | the bytes end inside a frame |
 * | `not-array` | a frame does not start with a msgpack array header |
 * | `bad-arity` | the array does not have exactly 9 elements |
 * | `bad-type` | a field has the wrong msgpack type (e.g. str where uint is expected, ext, 0xc1) |
 * | `bad-field` | right type, value out of range (negative, flags > 255, stream > 2^32-1, seq > 2^53-1, non-integral float) |
 * | `bad-utf8` | a peer id is not valid UTF-8 |
 * | `unsupported-version` | `version` is not one this build speaks |
 * | `unknown-frame-type` | `type` is not in `CodecLimits.knownTypes` |
 * | `bad-lane` | `lane` is not a {@link Lane} |
 * | `id-too-long` | `src`/`dst` longer than `CodecLimits.maxIdBytes` bytes |
 * | `payload-too-large` | payload longer than `CodecLimits.maxPayloadBytes` (`maxEnvelopeBytes` for FORWARD) (close code 1009) |
 * | `trailing-bytes` | bytes left over after a control payload's value |
 * | `bad-control` | a control payload is not valid msgpack (or exceeds 64 KiB) |
 * | `bad-offset` | the caller passed an offset outside the buffer (a local bug) |
 * | `text-message` | a WebSocket text message (the protocol is binary only) |
 * | `unexpected-frame` | a frame type not allowed in the connection's state (e.g. HELLO after the handshake) |
 * | `websocket` | WebSocket-level framing error reported by `ws` |
 */
export const ProtocolReason = {
  EMPTY: 'empty',
  TRUNCATED: 'truncated',
  NOT_ARRAY: 'not-array',
  BAD_ARITY: 'bad-arity',
  BAD_TYPE: 'bad-type',
  BAD_FIELD: 'bad-field',
  BAD_UTF8: 'bad-utf8',
  UNSUPPORTED_VERSION: 'unsupported-version',
  UNKNOWN_FRAME_TYPE: 'unknown-frame-type',
  BAD_LANE: 'bad-lane',
  ID_TOO_LONG: 'id-too-long',
  PAYLOAD_TOO_LARGE: 'payload-too-large',
  TRAILING_BYTES: 'trailing-bytes',
  BAD_CONTROL: 'bad-control',
  BAD_OFFSET: 'bad-offset',
  TEXT_MESSAGE: 'text-message',
  UNEXPECTED_FRAME: 'unexpected-frame',
  WEBSOCKET: 'websocket',
} as const
/** A protocol rejection reason. */
export type ProtocolReason = typeof ProtocolReason[keyof typeof ProtocolReason]

/** `details` of a `PROTOCOL` MeshError raised by the codec. */
export interface ProtocolErrorDetails {
  /** Why the input was rejected. */
  reason: ProtocolReason
  /** The WebSocket close code the connection should close with. */
  closeCode: CloseCode
  /** Byte offset in the input where the problem was found. */
  offset: number
}

/** The close code that goes with a reason: 1009 for size, 1002 otherwise. */
export function closeCodeFor (reason: ProtocolReason): CloseCode {
  return reason === ProtocolReason.PAYLOAD_TOO_LARGE ? CloseCode.TOO_BIG : CloseCode.PROTOCOL_ERROR
}

/**
 * Build the codec's one error shape: a `PROTOCOL` MeshError whose `details`
 * are {@link ProtocolErrorDetails}. The message is prefixed with the offset so
 * a log line alone locates the fault.
 *
 * @param reason - why the input was rejected
 * @param message - what was wrong, naming the field
 * @param offset - byte offset where it was found
 * @param cause - underlying error, if any (e.g. from msgpackr)
 */
export function protocolError (reason: ProtocolReason, message: string, offset: number, cause?: unknown): MeshError {
  const d: ProtocolErrorDetails = { reason, closeCode: closeCodeFor(reason), offset }
  // Spread: an interface is not assignable to Record<string, unknown>.
  const details: Record<string, unknown> = { ...d }
  return new MeshError(ErrorCode.PROTOCOL, `${message} (at byte ${offset})`,
    cause === undefined ? { details } : { cause, details })
}
