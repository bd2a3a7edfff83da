import type { MeshError } from './errors.js'

/** Lane names (DESIGN.md §3). Application messages use 'priority' or 'bulk'. */
export type LaneName = 'control' | 'priority' | 'bulk'

export type PeerState = 'connecting' | 'healthy' | 'unhealthy' | 'disconnected' | 'failed'

/** A peer as seen by this node. */
export interface PeerInfo {
  id: string
  /** Where the peer can be dialed: the URL we dialed, or the first address it advertised. */
  address?: string | undefined
  direction: 'inbound' | 'outbound'
  state: PeerState
  rttMs?: number | undefined
  /** Epoch ms of the last state change. */
  since: number
  lanes: LaneName[]
}

/** A message for this node. */
export interface MeshMessage {
  from: string
  payload: unknown
  lane: LaneName
  topic?: string
  /** Unique per sender → receiver stream (the stream sequence number). */
  id: string
}

export interface PeerHealthEvent { peer: string; state: PeerState; previous: PeerState; rttMs?: number | undefined }
export interface RouteChangeEvent { to: string; via: string | null; previousVia: string | null }
/**
 * A reliable message given up on. `id` is what `send` resolved with (and
 * `{ ack: true }` rejected with); `publish` resolves with a count instead, so a
 * publication's report carries its `topic` (when the message's first chunk
 * was still queued: always, unless the peer acknowledged part of a large one).
 */
export interface UndeliveredEvent { to: string; id: string; reason: string; topic?: string }

export type MeshState = 'healthy' | 'degraded' | 'critical'
export interface MeshStatus { state: MeshState; members: number; reachable: number; unreachable: number }

export interface RouteInfo { to: string; via: string; hops: number; cost: number; paths: string[][] }

/** Event name → argument (DESIGN.md §2). */
export interface MeshEvents {
  message: MeshMessage
  'peer:up': PeerInfo
  'peer:down': PeerInfo
  'peer:health': PeerHealthEvent
  'route:change': RouteChangeEvent
  status: MeshStatus
  undelivered: UndeliveredEvent
  error: MeshError
}
