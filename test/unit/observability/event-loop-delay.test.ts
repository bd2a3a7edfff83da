import { describe, expect, it } from 'vitest'
import { performance } from 'node:perf_hooks'
import { HostLoopDelay } from '../../../src/observability/event-loop-delay.js'

/** Block this thread: the stall is what the monitor must report. */
function stall (ms: number): void {
  const t0 = performance.now()
  while (performance.now() - t0 < ms) { /* busy */ }
}

/** A turn of the loop through its timers phase. */
async function turn (): Promise<void> {
  await new Promise<void>((resolve) => { setTimeout(resolve, 1) })
}

describe('HostLoopDelay', () => {
  it('the first read starts the monitor and returns an empty window', async () => {
    const d = new HostLoopDelay()
    expect(await d.read()).toEqual({ quantiles: [0, 0, 0, 0], max: 0, samples: 0 })
    d.close()
  })

  it('a stall right after a read (the interval reset() forgets) is in the next window', async () => {
    const d = new HostLoopDelay()
    await d.read()
    stall(100)
    const w = await d.read()
    expect(w.max).toBeGreaterThanOrEqual(0.08)
    expect(w.samples).toBeGreaterThanOrEqual(1)
    d.close()
  })

  it('a stall just before a read is in that window; the next window no longer has it', async () => {
    const d = new HostLoopDelay()
    await d.read()
    for (let i = 0; i < 5; i++) await turn()
    stall(100)
    const w = await d.read()
    expect(w.max).toBeGreaterThanOrEqual(0.08)
    expect(w.max).toBeLessThan(5)
    expect(w.quantiles[0]).toBeLessThanOrEqual(w.quantiles[2] as number)
    expect(w.quantiles[2]).toBeLessThanOrEqual(w.max)
    const next = await d.read()
    expect(next.max).toBeLessThan(0.08)
    d.close()
  })

  it('concurrent reads share one window; close() is idempotent and later reads are empty', async () => {
    const d = new HostLoopDelay()
    await d.read()
    stall(50)
    const [x, y] = await Promise.all([d.read(), d.read()])
    expect(x).toBe(y)
    d.close()
    d.close()
    expect((await d.read()).samples).toBe(0)
  })
})
