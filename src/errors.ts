/**
 * Error codes of meshwork. Stable: never renamed or reused once released
 * (DESIGN.md §2). Match on `err.code`.
 */
export const ErrorCode = {
  INVALID_OPTIONS: 'INVALID_OPTIONS',
  UNKNOWN_PEER: 'UNKNOWN_PEER',
  NO_ROUTE: 'NO_ROUTE',
  QUEUE_FULL: 'QUEUE_FULL',
  PAYLOAD_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  TIMEOUT: 'TIMEOUT',
  REMOTE_ERROR: 'REMOTE_ERROR',
  NO_HANDLER: 'NO_HANDLER',
  UNAUTHORIZED: 'UNAUTHORIZED',
  PROTOCOL: 'PROTOCOL',
  CLOSED: 'CLOSED',
} as const
export type ErrorCode = typeof ErrorCode[keyof typeof ErrorCode]

const CODES = new Set<string>(Object.values(ErrorCode))

/** Plain-data form of a MeshError, safe to send over a MessagePort or a frame. */
export interface WireError {
  code: ErrorCode
  message: string
  details?: Record<string, unknown>
}

/**
 * The one error class of meshwork. `code` is stable; `details` carries
 * structured context (the option path, the peer id, a close code).
 */
export class MeshError extends Error {
  readonly code: ErrorCode
  readonly details: Record<string, unknown> | undefined

  constructor (code: ErrorCode, message: string, options?: ErrorOptions & { details?: Record<string, unknown> }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'MeshError'
    this.code = code
    this.details = options?.details
  }
}

/** Serialise an error for a thread or wire boundary (an Error loses its class there). */
export function toWire (err: unknown): WireError {
  if (err instanceof MeshError) {
    return err.details === undefined
      ? { code: err.code, message: err.message }
      : { code: err.code, message: err.message, details: err.details }
  }
  const message = err instanceof Error ? err.message : String(err)
  return { code: ErrorCode.REMOTE_ERROR, message }
}

/** Rebuild a real MeshError from its wire form; unknown codes become PROTOCOL. */
export function fromWire (w: unknown): MeshError {
  if (w !== null && typeof w === 'object' && typeof (w as WireError).message === 'string' &&
      typeof (w as WireError).code === 'string' && CODES.has((w as WireError).code)) {
    const { code, message, details } = w as WireError
    return new MeshError(code, message, details === undefined ? undefined : { details })
  }
  return new MeshError(ErrorCode.PROTOCOL, `malformed error from peer: ${safeString(w)}`)
}

function safeString (v: unknown): string {
  try { return JSON.stringify(v)?.slice(0, 200) ?? String(v) } catch { return String(v) }
}
