/**
 * Machine facts, the JSON lines in perf/results/, and Markdown rendering.
 *
 * @module
 */
import { execFileSync } from 'node:child_process'
import { appendFileSync, mkdirSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export interface Machine { node: string; cpu: string; cores: number; memGiB: number; commit: string; platform: string }

export function machine (): Machine {
  return {
    node: process.version,
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memGiB: Math.round(totalmem() / 2 ** 30 * 10) / 10,
    commit: commit(),
    platform: `${process.platform}-${process.arch}`,
  }
}

/** `git rev-parse --short HEAD`, with `-dirty` when the work tree has changes; 'unknown' without git. */
export function commit (): string {
  try {
    const opts = { encoding: 'utf8' as const, stdio: ['ignore', 'pipe', 'ignore'] as Array<'ignore' | 'pipe'>, cwd: repoRoot() }
    const sha = execFileSync('git', ['rev-parse', '--short', 'HEAD'], opts).trim()
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], opts).trim() !== ''
    return dirty ? `${sha}-dirty` : sha
  } catch {
    return 'unknown'
  }
}

/** The repository root, whether this runs as dist/perf/lib/*.js or perf/lib/*.ts. */
export function repoRoot (): string {
  const here = dirname(fileURLToPath(import.meta.url))
  const perfDir = dirname(here)
  return perfDir.endsWith(join('dist', 'perf')) ? join(perfDir, '..', '..') : join(perfDir, '..')
}

export function appendJsonl (dir: string, scenario: string, records: readonly object[]): string {
  mkdirSync(dir, { recursive: true })
  const file = join(dir, `${scenario}.jsonl`)
  appendFileSync(file, records.map((r) => JSON.stringify(r) + '\n').join(''))
  return file
}

/** A GitHub-flavoured Markdown table; first column left-aligned, the rest right-aligned. */
export function markdownTable (head: readonly string[], rows: readonly (readonly string[])[]): string {
  const esc = (s: string): string => s.replace(/\|/g, '\\|')
  const widths = head.map((h, i) => Math.max(h.length, 3, ...rows.map((r) => esc(r[i] ?? '').length)))
  const line = (cells: readonly string[]): string =>
    '| ' + head.map((_h, i) => {
      const v = esc(cells[i] ?? '')
      return i === 0 ? v.padEnd(widths[i]!) : v.padStart(widths[i]!)
    }).join(' | ') + ' |'
  const rule = '|' + widths.map((w, i) => i === 0 ? ` ${'-'.repeat(w)} ` : ` ${'-'.repeat(w - 1)}: `).join('|') + '|'
  return [line(head), rule, ...rows.map(line)].join('\n')
}
