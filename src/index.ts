// Public API of meshwork (named re-exports only).
export { createMesh, Mesh, DEFAULT_REQUEST_TIMEOUT_MS, type SendOptions, type RequestOptions, type RequestContext, type RequestHandler, type TopicHandler } from './mesh.js'
export { MeshError, ErrorCode, type WireError } from './errors.js'
export type {
  MeshEvents, MeshMessage, PeerInfo, PeerState, PeerHealthEvent, RouteChangeEvent,
  UndeliveredEvent, MeshStatus, MeshState, RouteInfo, LaneName,
} from './events.js'
export { DEFAULTS, type MeshOptions, type ResolvedMeshOptions } from './options.js'
// Wire-level pieces, for tools and tests that speak the protocol directly.
export { encodeFrame } from './codec/encode.js'
export { decodeFrames } from './codec/decode.js'
export { encodeControl, decodeControl } from './codec/control.js'
export { FrameType, Lane, CloseCode, PROTOCOL_VERSION, type Frame } from './codec/frame.js'
