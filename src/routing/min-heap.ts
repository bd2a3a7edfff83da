/**
 * A binary min-heap of (key, node) pairs on typed arrays, for the path
 * searches. Lazy deletion: a search pushes a node again when its key drops
 * and skips stale entries when it pops them (cheaper than decrease-key in
 * practice, and no position index to keep).
 *
 * Ties on the key are broken by the smaller node index, so the pop order —
 * and so every path built from it — is a function of the graph alone.
 *
 * @module
 */
export class MinHeap {
  #keys: Float64Array
  #nodes: Int32Array
  #size = 0

  /** @param capacity - initial slots; the heap grows by doubling when full. */
  constructor (capacity = 64) {
    const c = Math.max(4, capacity)
    this.#keys = new Float64Array(c)
    this.#nodes = new Int32Array(c)
  }

  get size (): number { return this.#size }

  clear (): void { this.#size = 0 }

  /** Key of the top entry (Infinity when empty). */
  peekKey (): number { return this.#size === 0 ? Infinity : this.#keys[0]! }

  push (key: number, node: number): void {
    if (this.#size === this.#keys.length) this.#grow()
    const keys = this.#keys
    const nodes = this.#nodes
    let i = this.#size++
    while (i > 0) {
      const p = (i - 1) >> 1
      const pk = keys[p]!
      if (pk < key || (pk === key && nodes[p]! <= node)) break
      keys[i] = pk
      nodes[i] = nodes[p]!
      i = p
    }
    keys[i] = key
    nodes[i] = node
  }

  /** Remove the top entry and return its node; the key is in {@link lastKey}. Call only when size > 0. */
  pop (): number {
    const keys = this.#keys
    const nodes = this.#nodes
    const top = nodes[0]!
    this.lastKey = keys[0]!
    const n = --this.#size
    if (n > 0) {
      const key = keys[n]!
      const node = nodes[n]!
      let i = 0
      while (true) {
        let c = 2 * i + 1
        if (c >= n) break
        const r = c + 1
        if (r < n && (keys[r]! < keys[c]! || (keys[r]! === keys[c]! && nodes[r]! < nodes[c]!))) c = r
        const ck = keys[c]!
        if (key < ck || (key === ck && node <= nodes[c]!)) break
        keys[i] = ck
        nodes[i] = nodes[c]!
        i = c
      }
      keys[i] = key
      nodes[i] = node
    }
    return top
  }

  /** Key of the entry the last {@link pop} returned. */
  lastKey = 0

  #grow (): void {
    const keys = new Float64Array(this.#keys.length * 2)
    keys.set(this.#keys)
    const nodes = new Int32Array(this.#nodes.length * 2)
    nodes.set(this.#nodes)
    this.#keys = keys
    this.#nodes = nodes
  }
}
