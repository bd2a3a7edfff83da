// perf/lib/measure.ts scheduler counters: run-queue wait between two samples.
import { describe, it, expect } from 'vitest'
import { schedStats, schedWaitBetween } from '../../../perf/lib/measure.js'

describe('perf scheduler helpers', () => {
  it('sums run-queue wait over threads alive in both samples and finds the most-delayed one', () => {
    const a = { 1: [100, 10], 2: [50, 5], 3: [7, 7] } as const
    const b = { 1: [150, 40], 2: [60, 6], 4: [999, 999] } as const // 3 ended, 4 is new: neither counts
    expect(schedWaitBetween(a, b)).toEqual({ waitMs: 31, maxThreadWaitMs: 30, runMs: 60 })
    expect(schedWaitBetween(a, a)).toEqual({ waitMs: 0, maxThreadWaitMs: 0, runMs: 0 })
  })

  it.runIf(process.platform === 'linux')('reads this process\'s threads from /proc, counters that only grow', () => {
    const a = schedStats()
    let x = 0
    for (let i = 0; i < 2e6; i++) x += i % 7 // some CPU time for this thread
    const b = schedStats()
    expect(x).toBeGreaterThan(0)
    expect(a).toBeDefined()
    expect(Object.keys(a!)).toContain(String(process.pid)) // the main thread's tid is the pid
    const d = schedWaitBetween(a!, b!)
    expect(d.runMs).toBeGreaterThan(0)
    expect(d.waitMs).toBeGreaterThanOrEqual(0)
  })
})
