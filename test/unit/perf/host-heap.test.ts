import { describe, it, expect } from 'vitest'
import { retainHostHeap, retainedObjects, hostHeapMbFromEnv } from '../../../perf/lib/host-heap.js'

describe('perf host heap (an application heap for perf children)', () => {
  it('keeps about the requested MB live, and replaces what it kept before', () => {
    const h = retainHostHeap(16)
    expect(h.usedAfterMb - h.usedBeforeMb).toBeGreaterThan(12)
    expect(h.usedAfterMb - h.usedBeforeMb).toBeLessThan(24)
    expect(retainedObjects()).toBe(16 * 1024 * 1024 / 64)
    const again = retainHostHeap(0)
    expect(again.requestedMb).toBe(0)
    expect(retainedObjects()).toBe(0)
  })

  it('reads PERF_HOST_HEAP_MB: unset or empty is 0, a bad value is an error naming it', () => {
    expect(hostHeapMbFromEnv({})).toBe(0)
    expect(hostHeapMbFromEnv({ PERF_HOST_HEAP_MB: '' })).toBe(0)
    expect(hostHeapMbFromEnv({ PERF_HOST_HEAP_MB: '64' })).toBe(64)
    expect(() => hostHeapMbFromEnv({ PERF_HOST_HEAP_MB: 'lots' })).toThrow(/PERF_HOST_HEAP_MB must be a non-negative number \(got "lots"\)/)
    expect(() => hostHeapMbFromEnv({ PERF_HOST_HEAP_MB: '-1' })).toThrow(/PERF_HOST_HEAP_MB/)
    expect(() => retainHostHeap(Number.NaN)).toThrow(RangeError)
  })
})
