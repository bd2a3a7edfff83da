import { createSecretKey, generateKeyPairSync } from 'node:crypto'
import { seededKeyPair } from '../helpers/ed25519.js'
import pino from 'pino'
import { Registry } from 'prom-client'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { ErrorCode, MeshError } from '../../src/errors.js'
import { base32Encode } from '../../src/identity/peer-id.js'
import {
  DEFAULTS, parseDialAddress, resolveOptions, toWorkerConfig,
  type MeshOptions, type ResolvedMeshOptions,
} from '../../src/options.js'

const KiB = 1024
const MiB = 1024 * KiB
const GiB = 1024 * MiB

const ID = base32Encode(new Uint8Array(32).fill(7))
const ID2 = base32Encode(new Uint8Array(32).fill(9))
const ed25519 = seededKeyPair('ed25519')
const x25519 = seededKeyPair('x25519')
// Encoded by the generation job itself: no export of a KeyObject whose job may be finalized meanwhile (test/helpers/ed25519.ts).
const ecPem = generateKeyPairSync('ec', { namedCurve: 'P-256', privateKeyEncoding: { format: 'pem', type: 'pkcs8' }, publicKeyEncoding: { format: 'pem', type: 'spki' } }).privateKey
const edPem = ed25519.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string
const TLS = { cert: 'CERT PEM', key: 'KEY PEM' }
const SECRET = 'sixteen-chars-ok'

/** Run resolveOptions and return the MeshError it throws. */
function invalid (input: unknown): MeshError {
  try {
    resolveOptions(input)
  } catch (err) {
    expect(err).toBeInstanceOf(MeshError)
    expect((err as MeshError).code).toBe(ErrorCode.INVALID_OPTIONS)
    return err as MeshError
  }
  throw new Error(`resolveOptions accepted ${JSON.stringify(input)}`)
}

describe('resolveOptions: defaults', () => {
  it('fills every default', () => {
    expect(resolveOptions()).toEqual({
      listen: [{ url: 'ws://127.0.0.1:0', protocol: 'ws', host: '127.0.0.1', port: 0 }],
      bootstrap: [],
      join: 'open',
      heartbeat: { intervalMs: 1000, missesUnhealthy: 3, missesDead: 6 },
      reconnect: { initialDelayMs: 100, maxDelayMs: 10_000, multiplier: 2, jitter: 1, maxRetries: Infinity },
      sendQueue: { capacityBytes: 4 * MiB, policy: 'drop-oldest', blockTimeoutMs: 5000 },
      maxMessageBytes: 1 * MiB,
      maxPeers: 16,
      delivery: { retainMs: 300_000, forgetAfterMs: 300_000 },
      routing: { k: 3, maxHops: 8, multipath: false, cost: { rtt: 1, queuePerKiB: 0.1, hopMs: 10, lossExponent: 2, maxLoss: 0.9, defaultRttMs: 1, hysteresis: 0.2, minDelta: 10 } },
      threads: { io: 1, nice: 5 },
      metrics: {},
      handshakeTimeoutMs: 5000,
      closeTimeoutMs: 2000,
      ringBytes: 4 * MiB,
      borrowPayloads: false,
    } satisfies ResolvedMeshOptions)
  })

  it('routing.cost: a partial override keeps the other weights, and reaches the workers as plain data', () => {
    const r = resolveOptions({ routing: { cost: { hopMs: 3, maxLoss: 0.5 } } })
    expect(r.routing.cost).toEqual({ ...DEFAULTS.routing.cost, hopMs: 3, maxLoss: 0.5 })
    const w = toWorkerConfig(r)
    expect(w.routing.cost).toEqual(r.routing.cost)
    expect(Object.isFrozen(w.routing.cost)).toBe(false)
    expect(structuredClone(w.routing)).toEqual(w.routing)
  })

  it('treats undefined, {} and keys set to undefined alike', () => {
    const d = resolveOptions()
    expect(resolveOptions({})).toEqual(d)
    expect(resolveOptions({ listen: undefined, heartbeat: { intervalMs: undefined }, logger: undefined })).toEqual(d)
  })

  it('omits the optional fields that have no default', () => {
    const r = resolveOptions()
    for (const key of ['dataDir', 'identity', 'allow', 'meshKey', 'tls', 'logger']) expect(r).not.toHaveProperty(key)
  })

  it('fills a partly given section from the defaults', () => {
    expect(resolveOptions({ heartbeat: { intervalMs: 250 } }).heartbeat).toEqual({ intervalMs: 250, missesUnhealthy: 3, missesDead: 6 })
  })

  it('defaults join to "key" when meshKey is set', () => {
    expect(resolveOptions({ meshKey: SECRET }).join).toBe('key')
    expect(resolveOptions({ meshKey: SECRET, join: 'open' }).join).toBe('open')
  })

  it('accepts a null-prototype options object', () => {
    const o = Object.assign(Object.create(null) as object, { maxPeers: 3 })
    expect(resolveOptions(o).maxPeers).toBe(3)
  })

  it('DEFAULTS is deeply frozen and agrees with the resolved defaults', () => {
    expect(Object.isFrozen(DEFAULTS)).toBe(true)
    expect(Object.isFrozen(DEFAULTS.heartbeat)).toBe(true)
    expect(Object.isFrozen(DEFAULTS.listen)).toBe(true)
    const r = resolveOptions()
    expect(r.heartbeat).toEqual(DEFAULTS.heartbeat)
    expect(r.reconnect).toEqual(DEFAULTS.reconnect)
    expect(r.sendQueue).toEqual(DEFAULTS.sendQueue)
    expect(r.listen.map((a) => a.url)).toEqual(DEFAULTS.listen)
  })
})

describe('resolveOptions: freezing and copying', () => {
  const full = (): MeshOptions => ({
    listen: ['ws://127.0.0.1:0', 'wss://[::1]:0'],
    bootstrap: [`${ID}@ws://10.0.0.5:7000`],
    dataDir: './mesh-data',
    identity: { privateKey: new Uint8Array(32).fill(1) },
    allow: [ID],
    meshKey: new Uint8Array(16).fill(2),
    tls: { cert: 'C', key: new Uint8Array([1, 2, 3]), ca: ['A', 'B'] },
    logger: pino({ level: 'silent' }),
    metrics: { registry: new Registry() },
  })

  it('freezes the result deeply', () => {
    const r = resolveOptions(full())
    const frozen = [r, r.listen, r.listen[0], r.bootstrap, r.bootstrap[0], r.identity, r.allow, r.heartbeat,
      r.reconnect, r.sendQueue, r.delivery, r.routing, r.threads, r.tls, r.tls?.ca, r.metrics]
    for (const x of frozen) expect(Object.isFrozen(x)).toBe(true)
    expect(() => { (r as { maxPeers: number }).maxPeers = 1 }).toThrow(TypeError)
    expect(() => { (r.heartbeat as { intervalMs: number }).intervalMs = 1 }).toThrow(TypeError)
    expect(() => { (r.listen as unknown[]).push('x') }).toThrow(TypeError)
  })

  it('neither freezes nor keeps the caller\'s objects; copies byte arrays', () => {
    const o = full()
    const r = resolveOptions(o)
    expect(Object.isFrozen(o.heartbeat ?? {})).toBe(false)
    expect(Object.isFrozen(o.bootstrap)).toBe(false)
    ;(o.meshKey as Uint8Array).fill(0)
    expect(r.meshKey).toEqual(new Uint8Array(16).fill(2))
    expect(r.identity && 'privateKey' in r.identity && r.identity.privateKey).toEqual(new Uint8Array(32).fill(1))
  })

  it('passes collaborators through by reference, unfrozen', () => {
    const o = full()
    const r = resolveOptions(o)
    expect(r.logger).toBe(o.logger)
    expect(Object.isFrozen(r.logger)).toBe(false)
    expect(r.metrics.registry).toBe(o.metrics?.registry)
    const opts = { level: 'debug', redact: ['a'] }
    const r2 = resolveOptions({ logger: opts })
    expect(r2.logger).toBe(opts)
    expect(Object.isFrozen(opts) || Object.isFrozen(opts.redact)).toBe(false)
    const key = ed25519.privateKey
    expect(resolveOptions({ identity: { privateKey: key } }).identity).toEqual({ privateKey: key })
  })
})

// One row per rule (STYLE §4): input, the option path it names, a fragment of the message.
type Row = [name: string, input: unknown, path: string, message: string]

const fieldRules: Row[] = [
  // the options object itself
  ['options is null', null, 'options', 'options must be an object (got null)'],
  ['options is a number', 42, 'options', 'options must be an object (got 42)'],
  ['options is an array', [], 'options', 'options must be an object (got an array)'],
  ['options is a string', 'ws://x:1', 'options', 'options must be an object (got "ws://x:1")'],
  ['options is a class instance', new Map(), 'options', 'options must be an object (got a Map)'],
  ['unknown top-level key, near a known one', { hearbeat: {} }, 'options.hearbeat', 'options: unknown option "hearbeat" (did you mean "heartbeat"?)'],
  ['unknown nested key, near a known one', { heartbeat: { intervalMS: 5 } }, 'options.heartbeat.intervalMS', 'options.heartbeat: unknown option "intervalMS" (did you mean "intervalMs"?)'],
  ['unknown nested key, a few edits away', { reconnect: { maxRetry: 3 } }, 'options.reconnect.maxRetry', 'options.reconnect: unknown option "maxRetry" (did you mean "maxRetries"?)'],
  ['unknown key set to undefined', { maxpeers: undefined }, 'options.maxpeers', 'unknown option "maxpeers" (did you mean "maxPeers"?)'],
  // listen
  ['listen of a wrong type', { listen: 5 }, 'options.listen', 'options.listen must be a ws:// or wss:// URL, an array of them, or false (got 5)'],
  ['listen: true', { listen: true }, 'options.listen', '(got true)'],
  ['listen element not ws(s)://', { listen: ['ws://127.0.0.1:0', 'http://x:1'] }, 'options.listen[1]', 'options.listen[1] must be a ws:// or wss:// URL with a host and port (got "http://x:1")'],
  ['listen element not a string', { listen: [123] }, 'options.listen[0]', 'options.listen[0] must be a ws:// or wss:// URL with a host and port (got 123)'],
  ['listen string not a URL', { listen: 'localhost:7000' }, 'options.listen', 'options.listen must be a ws:// or wss:// URL with a host and port (got "localhost:7000")'],
  ['listen without a port', { listen: 'ws://example.com' }, 'options.listen', 'the port is missing (got "ws://example.com")'],
  ['listen with an empty port', { listen: 'ws://example.com:/' }, 'options.listen', 'the port is missing'],
  ['listen port above 65535', { listen: 'ws://h:65536' }, 'options.listen', 'port 65536 is out of range 0..65535'],
  ['listen without a host', { listen: 'ws://:7000' }, 'options.listen', 'the host is missing'],
  ['listen with an invalid host', { listen: 'ws://[zz]:1' }, 'options.listen', 'the host is not valid'],
  ['listen with a backslash in the host', { listen: 'ws://h\\x:1' }, 'options.listen', 'the host is not valid'],
  ['listen with an unbracketed IPv6 host', { listen: 'ws://::1:0' }, 'options.listen', 'must be a ws:// or wss:// URL with a host and port (got "ws://::1:0")'],
  ['listen with a path', { listen: 'ws://h:1/mesh' }, 'options.listen', 'a path other than "/" is not allowed'],
  ['listen with a query', { listen: 'ws://h:1/?a=1' }, 'options.listen', 'a query or fragment is not allowed'],
  ['listen with a fragment', { listen: 'ws://h:1#x' }, 'options.listen', 'a query or fragment is not allowed'],
  ['listen with credentials', { listen: 'ws://user:pw@h:1' }, 'options.listen', 'credentials (user:password@) are not allowed'],
  ['listen with whitespace', { listen: ' ws://h:1' }, 'options.listen', 'whitespace and control characters are not allowed'],
  ['listen duplicate URL', { listen: ['ws://h:1', 'ws://H:1/'] }, 'options.listen[1]', 'options.listen[1] duplicates options.listen[0] (got "ws://H:1/")'],
  ['listen duplicate ephemeral URL', { listen: ['ws://h:0', 'ws://h:0'] }, 'options.listen[1]', 'duplicates options.listen[0]'],
  ['listen ws and wss on one port', { listen: ['ws://h:7000', 'wss://h:7000'], tls: TLS }, 'options.listen[1]', 'duplicates options.listen[0]'],
  // bootstrap
  ['bootstrap of a wrong type', { bootstrap: 5 }, 'options.bootstrap', 'options.bootstrap must be a ws:// or wss:// URL (optionally "<peerId>@ws://host:port") or an array of them (got 5)'],
  ['bootstrap element not ws(s)://', { bootstrap: ['ws://h:1', 'tcp://h:1'] }, 'options.bootstrap[1]', 'options.bootstrap[1] must be a ws:// or wss:// URL with a host and port'],
  ['bootstrap element not a string', { bootstrap: [null] }, 'options.bootstrap[0]', 'optionally prefixed "<peerId>@" (got null)'],
  ['bootstrap to port 0', { bootstrap: 'ws://h:0' }, 'options.bootstrap', 'port 0 cannot be dialed'],
  ['bootstrap with an invalid pinned id', { bootstrap: ['nope@ws://h:1'] }, 'options.bootstrap[0]', 'options.bootstrap[0] has an invalid peer id before "@" (a peer id is 52 characters of a-z and 2-7) (got "nope")'],
  ['bootstrap pinned id with a bad URL', { bootstrap: `${ID}@ws://h` }, 'options.bootstrap', 'the port is missing'],
  ['bootstrap with credentials', { bootstrap: 'ws://me@h:1' }, 'options.bootstrap', 'credentials'],
  ['bootstrap duplicate', { bootstrap: ['ws://h:1', `${ID}@ws://h:1`] }, 'options.bootstrap[1]', 'options.bootstrap[1] duplicates options.bootstrap[0]'],
  // dataDir
  ['dataDir empty', { dataDir: '' }, 'options.dataDir', 'options.dataDir must be a non-empty path string (got "")'],
  ['dataDir not a string', { dataDir: 5 }, 'options.dataDir', 'must be a non-empty path string (got 5)'],
  ['dataDir with a NUL byte', { dataDir: 'a\0b' }, 'options.dataDir', 'must be a non-empty path string'],
  // identity
  ['identity not an object', { identity: 'key.pem' }, 'options.identity', 'options.identity must be an object (got "key.pem")'],
  ['identity with neither key', { identity: {} }, 'options.identity', 'options.identity must have exactly one of privateKey or keyFile (got neither)'],
  ['identity with both keys', { identity: { privateKey: edPem, keyFile: 'k.pem' } }, 'options.identity', '(got both)'],
  ['identity with an unknown key', { identity: { keyFile: 'k.pem', passphrase: 'x' } }, 'options.identity.passphrase', 'options.identity: unknown option "passphrase"'],
  ['identity.keyFile empty', { identity: { keyFile: '' } }, 'options.identity.keyFile', 'options.identity.keyFile must be a non-empty path string'],
  ['identity.privateKey of a wrong type', { identity: { privateKey: 5 } }, 'options.identity.privateKey', 'must be an ed25519 private KeyObject, a PEM string or a 32-byte seed (got a number)'],
  ['identity.privateKey seed not 32 bytes', { identity: { privateKey: new Uint8Array(31) } }, 'options.identity.privateKey', 'must be a 32-byte ed25519 seed (got 31 bytes)'],
  ['identity.privateKey public KeyObject', { identity: { privateKey: ed25519.publicKey } }, 'options.identity.privateKey', 'must be an ed25519 private key (got a public ed25519 KeyObject)'],
  ['identity.privateKey x25519 KeyObject', { identity: { privateKey: x25519.privateKey } }, 'options.identity.privateKey', '(got a private x25519 KeyObject)'],
  ['identity.privateKey secret KeyObject', { identity: { privateKey: createSecretKey(new Uint8Array(32)) } }, 'options.identity.privateKey', '(got a secret KeyObject)'],
  ['identity.privateKey PEM of another key type', { identity: { privateKey: ecPem } }, 'options.identity.privateKey', 'must be a PEM-encoded (PKCS#8, unencrypted) ed25519 private key (got a ec key)'],
  ['identity.privateKey unreadable PEM', { identity: { privateKey: 'not a key' } }, 'options.identity.privateKey', '(got a string that is not a readable private key)'],
  // allow
  ['allow not an array', { allow: ID }, 'options.allow', 'options.allow must be an array of peer ids (got "'],
  ['allow element not a peer id', { allow: [ID, 'peer-b'] }, 'options.allow[1]', 'options.allow[1] must be a peer id: 52 characters of a-z and 2-7 (got "peer-b")'],
  ['allow element in uppercase', { allow: [ID.toUpperCase()] }, 'options.allow[0]', 'must be a peer id'],
  ['allow duplicate', { allow: [ID, ID2, ID] }, 'options.allow[2]', 'options.allow[2] duplicates options.allow[0]'],
  // meshKey / join
  ['meshKey string too short', { meshKey: 'hunter2' }, 'options.meshKey', 'options.meshKey must be at least 16 characters long (got 7 characters)'],
  ['meshKey bytes too short', { meshKey: new Uint8Array(15) }, 'options.meshKey', 'must be at least 16 bytes long (got 15 bytes)'],
  ['meshKey of a wrong type', { meshKey: 1234567890123456 }, 'options.meshKey', 'must be a string of at least 16 characters or a Uint8Array of at least 16 bytes (got a number)'],
  ['join not a policy', { join: 'kye' }, 'options.join', 'options.join must be one of "open", "key", "closed" (got "kye") (did you mean "key"?)'],
  ['join of a wrong type', { join: true }, 'options.join', '(got true)'],
  // heartbeat
  ['heartbeat not an object', { heartbeat: 1000 }, 'options.heartbeat', 'options.heartbeat must be an object (got 1000)'],
  ['heartbeat.intervalMs negative', { heartbeat: { intervalMs: -5 } }, 'options.heartbeat.intervalMs', 'options.heartbeat.intervalMs must be a positive integer (got -5)'],
  ['heartbeat.intervalMs fractional', { heartbeat: { intervalMs: 1.5 } }, 'options.heartbeat.intervalMs', 'must be a positive integer (got 1.5)'],
  ['heartbeat.intervalMs a string', { heartbeat: { intervalMs: '1000' } }, 'options.heartbeat.intervalMs', 'must be a positive integer (got "1000")'],
  ['heartbeat.intervalMs NaN', { heartbeat: { intervalMs: NaN } }, 'options.heartbeat.intervalMs', '(got NaN)'],
  ['heartbeat.intervalMs below 10', { heartbeat: { intervalMs: 9 } }, 'options.heartbeat.intervalMs', 'options.heartbeat.intervalMs must be between 10 ms and 60000 ms (got 9)'],
  ['heartbeat.intervalMs above 60000', { heartbeat: { intervalMs: 60_001 } }, 'options.heartbeat.intervalMs', 'must be between 10 ms and 60000 ms (got 60001)'],
  ['heartbeat.missesUnhealthy zero', { heartbeat: { missesUnhealthy: 0 } }, 'options.heartbeat.missesUnhealthy', 'must be a positive integer (got 0)'],
  ['heartbeat.missesDead Infinity', { heartbeat: { missesDead: Infinity } }, 'options.heartbeat.missesDead', 'must be a positive integer (got Infinity)'],
  // reconnect
  ['reconnect.initialDelayMs zero', { reconnect: { initialDelayMs: 0 } }, 'options.reconnect.initialDelayMs', 'must be a positive integer (got 0)'],
  ['reconnect.maxDelayMs beyond the timer limit', { reconnect: { maxDelayMs: 2 ** 31 } }, 'options.reconnect.maxDelayMs', 'must be between 1 ms and 2147483647 ms (got 2147483648)'],
  ['reconnect.multiplier below 1', { reconnect: { multiplier: 0.5 } }, 'options.reconnect.multiplier', 'options.reconnect.multiplier must be a finite number >= 1 (got 0.5)'],
  ['reconnect.multiplier Infinity', { reconnect: { multiplier: Infinity } }, 'options.reconnect.multiplier', '(got Infinity)'],
  ['reconnect.jitter above 1', { reconnect: { jitter: 1.5 } }, 'options.reconnect.jitter', 'must be a finite number between 0 and 1 (got 1.5)'],
  ['reconnect.jitter negative', { reconnect: { jitter: -0.1 } }, 'options.reconnect.jitter', '(got -0.1)'],
  ['reconnect.maxRetries negative', { reconnect: { maxRetries: -1 } }, 'options.reconnect.maxRetries', 'must be a non-negative integer or Infinity (got -1)'],
  ['reconnect.maxRetries fractional', { reconnect: { maxRetries: 2.5 } }, 'options.reconnect.maxRetries', '(got 2.5)'],
  // sendQueue
  ['sendQueue.capacityBytes below 64 KiB', { sendQueue: { capacityBytes: 1000 } }, 'options.sendQueue.capacityBytes', 'must be between 64 KiB (65536 bytes) and 1 GiB (1073741824 bytes) (got 1000)'],
  ['sendQueue.capacityBytes above 1 GiB', { sendQueue: { capacityBytes: 2 * GiB } }, 'options.sendQueue.capacityBytes', '(got 2147483648)'],
  ['sendQueue.policy unknown', { sendQueue: { policy: 'drop' } }, 'options.sendQueue.policy', 'must be one of "drop-oldest", "drop-newest" (got "drop")'],
  ['sendQueue.blockTimeoutMs negative', { sendQueue: { blockTimeoutMs: -1 } }, 'options.sendQueue.blockTimeoutMs', 'must be a non-negative integer (got -1)'],
  // scalar limits
  ['maxMessageBytes below 1 KiB', { maxMessageBytes: 512 }, 'options.maxMessageBytes', 'must be between 1 KiB (1024 bytes) and 1 GiB (1073741824 bytes) (got 512)'],
  ['maxMessageBytes above 1 GiB', { maxMessageBytes: GiB + 1 }, 'options.maxMessageBytes', '(got 1073741825)'],
  ['maxPeers zero', { maxPeers: 0 }, 'options.maxPeers', 'options.maxPeers must be a positive integer (got 0)'],
  ['maxPeers above 10000', { maxPeers: 10_001 }, 'options.maxPeers', 'must be between 1 and 10000 (got 10001)'],
  ['delivery.retainMs negative', { delivery: { retainMs: -1 } }, 'options.delivery.retainMs', 'must be a non-negative integer (got -1)'],
  ['delivery.forgetAfterMs zero', { delivery: { forgetAfterMs: 0 } }, 'options.delivery.forgetAfterMs', 'must be a positive integer or Infinity (got 0)'],
  ['delivery.forgetAfterMs beyond a timer', { delivery: { forgetAfterMs: 2 ** 31 } }, 'options.delivery.forgetAfterMs', 'must be between 1 ms and 2147483647 ms (got 2147483648)'],
  ['delivery.forgetAfterMs a string', { delivery: { forgetAfterMs: '5m' } }, 'options.delivery.forgetAfterMs', 'must be a positive integer or Infinity (got "5m")'],
  ['routing.k zero', { routing: { k: 0 } }, 'options.routing.k', 'must be a positive integer (got 0)'],
  ['routing.k above 16', { routing: { k: 17 } }, 'options.routing.k', 'must be between 1 and 16 (got 17)'],
  ['routing.maxHops above 64', { routing: { maxHops: 65 } }, 'options.routing.maxHops', 'must be between 1 and 64 (got 65)'],
  ['routing.multipath not a boolean', { routing: { multipath: 'yes' } }, 'options.routing.multipath', 'options.routing.multipath must be true or false (got "yes")'],
  ['routing.cost.rtt negative', { routing: { cost: { rtt: -1 } } }, 'options.routing.cost.rtt', 'must be a finite number >= 0 (got -1)'],
  ['routing.cost.maxLoss 1', { routing: { cost: { maxLoss: 1 } } }, 'options.routing.cost.maxLoss', 'must be a finite number between 0 and 0.99 (got 1)'],
  ['routing.cost unknown key', { routing: { cost: { latency: 1 } } }, 'options.routing.cost.latency', 'unknown'],
  ['routing.cost not an object', { routing: { cost: 5 } }, 'options.routing.cost', 'must be an object'],
  ['threads.io zero', { threads: { io: 0 } }, 'options.threads.io', 'must be a positive integer (got 0)'],
  ['threads.io above 64', { threads: { io: 65 } }, 'options.threads.io', 'must be between 1 and 64 (got 65)'],
  ['threads.nice negative', { threads: { nice: -1 } }, 'options.threads.nice', 'must be a non-negative integer (got -1)'],
  ['threads.nice above 19', { threads: { nice: 20 } }, 'options.threads.nice', 'must be between 0 and 19 (got 20)'],
  ['handshakeTimeoutMs below 100', { handshakeTimeoutMs: 99 }, 'options.handshakeTimeoutMs', 'must be between 100 ms and 60000 ms (got 99)'],
  ['handshakeTimeoutMs above 60000', { handshakeTimeoutMs: 60_001 }, 'options.handshakeTimeoutMs', '(got 60001)'],
  ['closeTimeoutMs negative', { closeTimeoutMs: -1 }, 'options.closeTimeoutMs', 'must be a non-negative integer (got -1)'],
  ['closeTimeoutMs above 60000', { closeTimeoutMs: 60_001 }, 'options.closeTimeoutMs', 'must be between 0 ms and 60000 ms (got 60001)'],
  ['ringBytes below 64 KiB', { ringBytes: 4096 }, 'options.ringBytes', 'must be between 64 KiB (65536 bytes) and 1 GiB (1073741824 bytes) (got 4096)'],
  ['ringBytes above 1 GiB', { ringBytes: 2 * GiB }, 'options.ringBytes', '(got 2147483648)'],
  ['borrowPayloads not a boolean', { borrowPayloads: 1 }, 'options.borrowPayloads', 'options.borrowPayloads must be true or false (got 1)'],
  // tls
  ['tls not an object', { tls: true }, 'options.tls', 'options.tls must be an object (got true)'],
  ['tls.cert empty', { tls: { cert: '' } }, 'options.tls.cert', 'options.tls.cert must be a non-empty PEM string or Uint8Array (got "")'],
  ['tls.key of a wrong type', { tls: { key: 12345 } }, 'options.tls.key', 'options.tls.key must be a non-empty PEM string or Uint8Array (got a number)'],
  ['tls.ca of a wrong type', { tls: { ca: 5 } }, 'options.tls.ca', 'options.tls.ca must be a non-empty PEM string or Uint8Array (got 5)'],
  ['tls.ca element of a wrong type', { tls: { ca: ['A', null] } }, 'options.tls.ca[1]', 'options.tls.ca[1] must be a non-empty PEM string or Uint8Array (got null)'],
  ['tls.rejectUnauthorized not a boolean', { tls: { rejectUnauthorized: 'no' } }, 'options.tls.rejectUnauthorized', 'must be true or false (got "no")'],
  // logger / metrics
  ['logger: true', { logger: true }, 'options.logger', 'options.logger must be a pino Logger, a pino options object, or false (got true)'],
  ['logger a level string', { logger: 'info' }, 'options.logger', '(got "info")'],
  ['logger without child()', { logger: console }, 'options.logger', 'options.logger looks like a logger but lacks child()'],
  ['logger a class instance', { logger: new Date(0) }, 'options.logger', '(got a Date)'],
  ['metrics not an object', { metrics: 5 }, 'options.metrics', 'options.metrics must be an object (got 5)'],
  ['metrics.registry not a Registry', { metrics: { registry: {} } }, 'options.metrics.registry', 'options.metrics.registry must be a prom-client Registry, with registerMetric() and metrics() (got an object)'],
]

const crossFieldRules: Row[] = [
  ['join "key" without meshKey', { join: 'key' }, 'options.join', 'options.join is "key" but options.meshKey is not set'],
  ['heartbeat.missesDead not above missesUnhealthy', { heartbeat: { missesUnhealthy: 4, missesDead: 4 } }, 'options.heartbeat.missesDead',
    'options.heartbeat.missesDead (4) must be greater than options.heartbeat.missesUnhealthy (4)'],
  ['heartbeat.missesUnhealthy above the default missesDead', { heartbeat: { missesUnhealthy: 10 } }, 'options.heartbeat.missesDead',
    'options.heartbeat.missesDead (6, the default) must be greater than options.heartbeat.missesUnhealthy (10)'],
  ['reconnect.maxDelayMs below initialDelayMs', { reconnect: { initialDelayMs: 500, maxDelayMs: 499 } }, 'options.reconnect.maxDelayMs',
    'options.reconnect.maxDelayMs (499) must be at least options.reconnect.initialDelayMs (500)'],
  ['reconnect.initialDelayMs above the default maxDelayMs', { reconnect: { initialDelayMs: 20_000 } }, 'options.reconnect.maxDelayMs',
    'options.reconnect.maxDelayMs (10000, the default) must be at least options.reconnect.initialDelayMs (20000)'],
  ['wss:// listen without tls', { listen: 'wss://0.0.0.0:7443' }, 'options.tls.cert',
    'options.tls.cert and options.tls.key are required because options.listen is a wss:// address ("wss://0.0.0.0:7443")'],
  ['wss:// listen with tls.cert only', { listen: ['ws://h:1', 'wss://h:2'], tls: { cert: 'C' } }, 'options.tls.key',
    'options.tls.key is required because options.listen[1] is a wss:// address'],
]

describe('resolveOptions: one row per field rule', () => {
  it.each(fieldRules)('%s', (_name, input, path, message) => {
    const err = invalid(input)
    expect(err.message).toContain(message)
    expect(err.details?.path).toBe(path)
  })
})

describe('resolveOptions: one row per cross-field rule', () => {
  it.each(crossFieldRules)('%s', (_name, input, path, message) => {
    const err = invalid(input)
    expect(err.message).toContain(message)
    expect(err.details?.path).toBe(path)
  })
})

describe('resolveOptions: accepted edge values', () => {
  it.each<[string, MeshOptions]>([
    ['heartbeat.intervalMs at both bounds', { heartbeat: { intervalMs: 10 } }],
    ['heartbeat.intervalMs at the upper bound', { heartbeat: { intervalMs: 60_000 } }],
    ['reconnect without retries, no jitter', { reconnect: { maxRetries: 0, jitter: 0, multiplier: 1 } }],
    ['reconnect.maxDelayMs equal to initialDelayMs', { reconnect: { initialDelayMs: 300, maxDelayMs: 300 } }],
    ['reconnect.maxRetries Infinity', { reconnect: { maxRetries: Infinity } }],
    ['delivery.forgetAfterMs Infinity (never forget)', { delivery: { forgetAfterMs: Infinity } }],
    ['delivery.forgetAfterMs at its lower bound', { delivery: { forgetAfterMs: 1 } }],
    ['smallest send queue with the largest message it fits', { sendQueue: { capacityBytes: 64 * KiB }, maxMessageBytes: 32 * KiB - 64 }],
    ['largest send queue and message', { sendQueue: { capacityBytes: GiB }, maxMessageBytes: GiB / 2 - 64 }],
    ['zero timeouts where allowed', { sendQueue: { blockTimeoutMs: 0 }, delivery: { retainMs: 0 }, closeTimeoutMs: 0 }],
    ['join "key" with meshKey bytes', { join: 'key', meshKey: new Uint8Array(16) }],
    ['join "closed" without meshKey', { join: 'closed' }],
    ['wss:// listen with tls', { listen: 'wss://h:443', tls: { cert: 'C', key: 'K' } }],
    ['tls for dialing only', { tls: { ca: new Uint8Array([1]), rejectUnauthorized: false } }],
    ['identity as a PEM string', { identity: { privateKey: edPem } }],
    ['identity as a KeyObject', { identity: { privateKey: ed25519.privateKey } }],
    ['identity as a 32-byte seed (Buffer)', { identity: { privateKey: Buffer.alloc(32, 3) } }],
    ['identity as a key file', { identity: { keyFile: '/etc/mesh/key.pem' } }],
    ['an empty allow list (nobody)', { allow: [] }],
    ['logger: false', { logger: false }],
    ['a pino logger', { logger: pino({ level: 'silent' }) }],
    ['pino options', { logger: { level: 'warn' } }],
    ['a prom-client registry', { metrics: { registry: new Registry() } }],
    ['ringBytes not a power of two (rounded internally)', { ringBytes: 100_000 }],
  ])('%s', (_name, input) => {
    expect(() => resolveOptions(input)).not.toThrow()
  })

  it('keeps a tls.ca string as a one-element list and defaults rejectUnauthorized to true', () => {
    expect(resolveOptions({ tls: { ca: 'CA' } }).tls).toEqual({ ca: ['CA'], rejectUnauthorized: true })
  })
})

describe('resolveOptions: reporting', () => {
  it('reports every field problem, joined by "; ", first path in details.path', () => {
    const err = invalid({ hearbeat: {}, maxPeers: 0, heartbeat: { intervalMs: -5 } })
    expect(err.message).toBe([
      'options: unknown option "hearbeat" (did you mean "heartbeat"?)',
      'options.heartbeat.intervalMs must be a positive integer (got -5)',
      'options.maxPeers must be a positive integer (got 0)',
    ].join('; '))
    expect(err.details).toEqual({
      path: 'options.hearbeat',
      issues: [
        { path: 'options.hearbeat', message: 'options: unknown option "hearbeat" (did you mean "heartbeat"?)' },
        { path: 'options.heartbeat.intervalMs', message: 'options.heartbeat.intervalMs must be a positive integer (got -5)' },
        { path: 'options.maxPeers', message: 'options.maxPeers must be a positive integer (got 0)' },
      ],
    })
  })

  it('checks cross-field rules only once every field is valid', () => {
    const err = invalid({ join: 'key', maxPeers: 0 })
    expect(err.details?.issues).toHaveLength(1)
    expect(err.details?.path).toBe('options.maxPeers')
  })

  it('reports several cross-field problems together', () => {
    const err = invalid({ join: 'key', heartbeat: { missesUnhealthy: 9 } })
    expect(err.details?.issues).toHaveLength(2)
    expect(err.message).toMatch(/options\.join is "key".*; options\.heartbeat\.missesDead/)
  })

  it('suggests nothing when no known key is close', () => {
    expect(invalid({ zzzzzz: 1 }).message).toBe('options: unknown option "zzzzzz"')
  })

  it('never echoes secrets: meshKey, tls.key, credentials', () => {
    expect(invalid({ meshKey: 'hunter2' }).message).not.toContain('hunter2')
    expect(invalid({ tls: { key: ['TOPSECRET'] } }).message).not.toContain('TOPSECRET')
    expect(invalid({ listen: 'ws://user:TOPSECRET@h:1' }).message).not.toContain('TOPSECRET')
    expect(invalid({ identity: { privateKey: 'TOPSECRET' } }).message).not.toContain('TOPSECRET')
  })

  it('cuts long values in messages', () => {
    const err = invalid({ listen: `http://${'x'.repeat(500)}:1` })
    expect(err.message.length).toBeLessThan(200)
  })
})

describe('listen parsing', () => {
  it.each([
    ['ws://127.0.0.1:0', { url: 'ws://127.0.0.1:0', protocol: 'ws', host: '127.0.0.1', port: 0 }],
    ['ws://0.0.0.0:7000/', { url: 'ws://0.0.0.0:7000', protocol: 'ws', host: '0.0.0.0', port: 7000 }],
    ['WS://LocalHost:80', { url: 'ws://localhost:80', protocol: 'ws', host: 'localhost', port: 80 }],
    ['ws://[::1]:0', { url: 'ws://[::1]:0', protocol: 'ws', host: '::1', port: 0 }],
    ['ws://[0:0:0:0:0:0:0:1]:65535', { url: 'ws://[::1]:65535', protocol: 'ws', host: '::1', port: 65535 }],
    ['wss://mesh.example.com:443', { url: 'wss://mesh.example.com:443', protocol: 'wss', host: 'mesh.example.com', port: 443 }],
  ])('%s', (input, expected) => {
    expect(resolveOptions({ listen: input, tls: TLS }).listen).toEqual([expected])
  })

  it('parses its own normalised url back to the same address', () => {
    const host = fc.oneof(fc.domain(), fc.ipV4(), fc.ipV6().map((h) => `[${h}]`))
    fc.assert(fc.property(fc.constantFrom('ws', 'wss'), host, fc.integer({ min: 0, max: 65535 }), (scheme, h, port) => {
      const [a] = resolveOptions({ listen: `${scheme}://${h}:${port}`, tls: TLS }).listen
      expect(a?.port).toBe(port)
      expect(resolveOptions({ listen: a?.url, tls: TLS }).listen).toEqual([a])
    }))
  })

  it('false and [] mean dial-only', () => {
    expect(resolveOptions({ listen: false }).listen).toEqual([])
    expect(resolveOptions({ listen: [] }).listen).toEqual([])
  })

  it('keeps the order of several addresses', () => {
    expect(resolveOptions({ listen: ['ws://a:1', 'ws://b:1', 'ws://a:2'] }).listen.map((a) => a.url))
      .toEqual(['ws://a:1', 'ws://b:1', 'ws://a:2'])
  })
})

describe('bootstrap parsing', () => {
  it('accepts a string or an array, pinned or not', () => {
    expect(resolveOptions({ bootstrap: 'ws://10.0.0.5:7000' }).bootstrap).toEqual([{ url: 'ws://10.0.0.5:7000' }])
    const r = resolveOptions({ bootstrap: ['ws://10.0.0.5:7000', `${ID}@wss://Mesh.Example.com:443/`] })
    expect(r.bootstrap).toEqual([{ url: 'ws://10.0.0.5:7000' }, { url: 'wss://mesh.example.com:443', peerId: ID }])
    expect(r.bootstrap[0]).not.toHaveProperty('peerId')
  })

  it('parseDialAddress parses like bootstrap and names the given path', () => {
    expect(parseDialAddress(`${ID}@ws://[::1]:7000`, 'url')).toEqual({ url: 'ws://[::1]:7000', peerId: ID })
    expect(Object.isFrozen(parseDialAddress('ws://h:1', 'url'))).toBe(true)
    let err: unknown
    try { parseDialAddress('http://h:1', 'mesh.connect(url)') } catch (e) { err = e }
    expect(err).toBeInstanceOf(MeshError)
    expect(err).toMatchObject({
      code: 'INVALID_OPTIONS',
      message: 'mesh.connect(url) must be a ws:// or wss:// URL with a host and port (got "http://h:1")',
      details: { path: 'mesh.connect(url)' },
    })
    expect(() => parseDialAddress(42 as unknown as string, 'url')).toThrow(/^url must be .*\(got 42\)$/)
    expect(() => parseDialAddress('ws://h:0', 'url')).toThrow('port 0 cannot be dialed')
  })
})

describe('toWorkerConfig', () => {
  const r = resolveOptions({
    listen: ['ws://127.0.0.1:0'],
    bootstrap: [`${ID}@ws://10.0.0.5:7000`],
    dataDir: '/tmp/mesh',
    identity: { privateKey: ed25519.privateKey },
    allow: [ID2],
    meshKey: SECRET,
    tls: { cert: 'C', key: Buffer.from('K'), ca: 'A' },
    logger: pino({ level: 'silent' }),
    metrics: { registry: new Registry() },
  })

  /** True when v holds only plain objects, arrays, primitives and Uint8Arrays. */
  const plain = (v: unknown): boolean => {
    if (v === null || ['string', 'number', 'boolean'].includes(typeof v)) return true
    if (v instanceof Uint8Array) return Object.getPrototypeOf(v) === Uint8Array.prototype
    if (Array.isArray(v)) return v.every(plain)
    return typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype && Object.values(v).every(plain)
  }

  it('is plain data that survives structured cloning', () => {
    const w = toWorkerConfig(r)
    expect(plain(w)).toBe(true)
    expect(structuredClone(w)).toEqual(w)
  })

  it('drops logger, metrics and identity; keeps the rest', () => {
    const w = toWorkerConfig(r)
    expect(w).not.toHaveProperty('logger')
    expect(w).not.toHaveProperty('metrics')
    expect(w).not.toHaveProperty('identity')
    expect(w).toMatchObject({
      listen: r.listen, bootstrap: r.bootstrap, dataDir: '/tmp/mesh', allow: [ID2], join: 'key',
      heartbeat: r.heartbeat, reconnect: r.reconnect, sendQueue: r.sendQueue, maxMessageBytes: r.maxMessageBytes,
      maxPeers: r.maxPeers, delivery: r.delivery, routing: r.routing, threads: r.threads,
      handshakeTimeoutMs: r.handshakeTimeoutMs, closeTimeoutMs: r.closeTimeoutMs, ringBytes: r.ringBytes,
    })
    expect(w.tls).toEqual({ cert: 'C', key: new Uint8Array(Buffer.from('K')), ca: ['A'], rejectUnauthorized: true })
  })

  it('turns a string meshKey into its UTF-8 bytes', () => {
    expect(toWorkerConfig(r).meshKey).toEqual(new TextEncoder().encode(SECRET))
  })

  it('returns fresh copies, not the frozen resolved objects', () => {
    const w = toWorkerConfig(r)
    expect(w.heartbeat).not.toBe(r.heartbeat)
    expect(Object.isFrozen(w.listen)).toBe(false)
    expect(toWorkerConfig(resolveOptions())).not.toHaveProperty('meshKey')
  })
})

describe('MeshOptions type', () => {
  it('rejects both identity forms at compile time', () => {
    // @ts-expect-error exactly one of privateKey or keyFile
    const o: MeshOptions = { identity: { privateKey: 'x', keyFile: 'y' } }
    expect(o).toBeDefined()
  })
})
