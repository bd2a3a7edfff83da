import { pino, type Logger } from 'pino'
import type { LogRecord } from '../actor/protocol.js'

/** The host-side logger: the host's own pino logger, one made from its options, or a silent one. */
export function createLogger (option: unknown): Logger {
  if (option === false) return pino({ level: 'silent' })
  if (option !== undefined && option !== null && typeof (option as Logger).child === 'function' && typeof (option as Logger).info === 'function') {
    return (option as Logger).child({ name: 'meshwork' })
  }
  const opts = (option ?? {}) as Record<string, unknown>
  return pino({ name: 'meshwork', level: 'info', ...opts })
}

/** Replay worker log records into the host logger (never on stdout of the worker). */
export function forwardLogs (logger: Logger, records: LogRecord[]): void {
  for (const r of records) {
    switch (r.level) {
      case 'debug': logger.debug(r.obj, r.msg); break
      case 'info': logger.info(r.obj, r.msg); break
      case 'warn': logger.warn(r.obj, r.msg); break
      case 'error': logger.error(r.obj, r.msg); break
    }
  }
}
