import { describe, expect, it } from 'vitest'
import { WorkerLogger } from '../../../src/observability/worker-logger.js'
import type { LogRecord } from '../../../src/actor/protocol.js'

async function nextTurn (): Promise<void> { await new Promise((resolve) => setImmediate(resolve)) }

describe('WorkerLogger', () => {
  it('batches one event-loop turn of records, with the bindings of each child, filtered by level', async () => {
    const batches: LogRecord[][] = []
    const log = new WorkerLogger((b) => { batches.push(b) }, 'info', { component: 'io0' })
    const child = log.child({ conn: 7 })
    log.debug({ event: 'x' }, 'not at info')
    log.info({ event: 'a', peer: 'p1' }, 'one')
    child.warn({ event: 'b' }, 'two')
    expect(batches).toEqual([])
    await nextTurn()
    expect(batches).toEqual([[
      { level: 'info', obj: { component: 'io0', event: 'a', peer: 'p1' }, msg: 'one' },
      { level: 'warn', obj: { component: 'io0', conn: 7, event: 'b' }, msg: 'two' },
    ]])
    expect(log.isEnabled('debug')).toBe(false)
    expect(child.isEnabled('warn')).toBe(true)
  })

  it('a log storm keeps 1000 records per turn and reports how many it dropped', async () => {
    const batches: LogRecord[][] = []
    const log = new WorkerLogger((b) => { batches.push(b) }, 'debug', { component: 'io0' })
    for (let i = 0; i < 1500; i++) log.debug({ event: 'storm', i }, 'x')
    await nextTurn()
    const [b] = batches
    expect(b).toHaveLength(1001)
    expect(b?.at(-1)).toMatchObject({ level: 'warn', obj: { component: 'io0', event: 'log:dropped', dropped: 500 } })
    log.info({ event: 'after' }, 'y')
    await nextTurn()
    expect(batches[1]).toEqual([{ level: 'info', obj: { component: 'io0', event: 'after' }, msg: 'y' }])
  })

  it('silent sends nothing; a failing sink (host gone) does not throw', async () => {
    const silent = new WorkerLogger(() => { throw new Error('must not be called') }, 'silent')
    silent.error({ event: 'x' }, 'y')
    const gone = new WorkerLogger(() => { throw new Error('port closed') }, 'debug')
    gone.error({ event: 'x' }, 'y')
    await nextTurn()
  })
})
