/**
 * Small statistics and formatting helpers shared by the scenarios.
 *
 * @module
 */
import * as hdr from 'hdr-histogram-js'

export function median (xs: readonly number[]): number {
  if (xs.length === 0) return NaN
  const s = [...xs].sort((a, b) => a - b)
  const mid = s.length >> 1
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

/** Nearest-rank quantile (q in 0..1): the smallest sample with at least q of the samples at or below it. */
export function quantile (xs: readonly number[], q: number): number {
  if (xs.length === 0) return NaN
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!
}

export function max (xs: readonly number[]): number {
  return xs.length === 0 ? NaN : Math.max(...xs)
}

export function round (v: number, digits = 0): number {
  if (!Number.isFinite(v)) return v
  const k = 10 ** digits
  return Math.round(v * k) / k
}

/** candidate / baseline, 3 decimals; null when either is missing. */
export function ratio (candidate: number, baseline: number): number | null {
  if (!Number.isFinite(candidate) || !Number.isFinite(baseline) || baseline === 0) return null
  return round(candidate / baseline, 3)
}

export interface LatencySummary { n: number; p50_us: number; p90_us: number; p99_us: number; p999_us: number; max_us: number; mean_us: number }

/** Record ns samples in an hdr histogram (1 ns .. 100 s, 3 significant digits) and summarise in µs. */
export function latencySummary (samplesNs: readonly number[]): LatencySummary {
  const h = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 100e9, numberOfSignificantValueDigits: 3 })
  for (const s of samplesNs) h.recordValue(Math.max(1, Math.round(s)))
  const us = (ns: number): number => round(ns / 1000, 1)
  const out = {
    n: h.totalCount,
    p50_us: us(h.getValueAtPercentile(50)),
    p90_us: us(h.getValueAtPercentile(90)),
    p99_us: us(h.getValueAtPercentile(99)),
    p999_us: us(h.getValueAtPercentile(99.9)),
    max_us: us(h.maxValue),
    mean_us: us(h.mean),
  }
  h.destroy()
  return out
}

/** 1234567 → "1,234,567". */
export function int (v: number): string {
  return Number.isFinite(v) ? Math.round(v).toLocaleString('en-US') : '–'
}

export function fixed (v: number | null | undefined, digits = 1): string {
  return v === null || v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(digits)
}

export function ratioCell (r: number | null): string {
  return r === null ? '–' : r.toFixed(2)
}

export const KiB = 1024
export const MiB = 1024 * 1024

/** 64 → "64 B", 1024 → "1 KiB", 65536 → "64 KiB". */
export function sizeName (bytes: number): string {
  if (bytes >= MiB && bytes % MiB === 0) return `${bytes / MiB} MiB`
  if (bytes >= KiB && bytes % KiB === 0) return `${bytes / KiB} KiB`
  return `${bytes} B`
}
