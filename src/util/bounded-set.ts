/**
 * Add `value` to an insertion-ordered Set kept to at most `max` entries:
 * the oldest goes first. For small "already seen" memories (reported ids)
 * that must not grow with traffic.
 */
export function addBounded<T> (set: Set<T>, value: T, max: number): void {
  set.add(value)
  if (set.size > max) set.delete(set.values().next().value as T)
}
