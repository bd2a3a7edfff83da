import { wrap, expose, type Remote } from 'comlink'
import type { MessagePort } from 'node:worker_threads'
import type { ClaimResult, IoPeerControl, LinkClaim, LinkSnapshot, RouterApi } from '../actor/protocol.js'
import { nodeEndpoint } from '../actor/endpoint.js'
import { LinkRegistry } from './link-registry.js'

/**
 * The routing actor's worker-side service. For now it owns the direct-link
 * table and the duplicate-connection rule; membership and link-state routing
 * grow here (issues 3 and 5).
 */
export class RouterService implements RouterApi {
  readonly #links = new LinkRegistry()
  readonly #workers = new Map<number, Remote<IoPeerControl>>()
  readonly #selfId: string
  readonly #join: 'open' | 'key' | 'closed'
  /** Peers that were members (linked) at some point, plus the allow list: who may come back under join 'closed'. */
  readonly #known: Set<string>

  constructor (o: { selfId: string; join: 'open' | 'key' | 'closed'; allow?: readonly string[] | undefined }) {
    this.#selfId = o.selfId
    this.#join = o.join
    this.#known = new Set(o.allow ?? [])
  }

  async attachWorker (index: number, port: MessagePort, apiPort?: MessagePort): Promise<void> {
    this.#workers.set(index, wrap<IoPeerControl>(nodeEndpoint(port)))
    if (apiPort !== undefined) this.serve(apiPort)
  }

  /** Expose this service on another port (one per IO worker). */
  serve (port: MessagePort): void {
    expose(this, nodeEndpoint(port))
  }

  async claim (c: LinkClaim): Promise<ClaimResult> {
    // Join policy 'closed': no new members — only peers already known may connect in.
    if (this.#join === 'closed' && c.dialerId !== this.#selfId && !this.#known.has(c.peerId)) {
      return { ok: false, code: 'unauthorized', reason: `join policy is 'closed': ${c.peerId} is not a member of this mesh` }
    }
    const r = this.#links.claim({ connKey: c.connKey, worker: c.worker, peerId: c.peerId, dialerId: c.dialerId })
    if (!r.ok) return { ok: false, code: 'duplicate', reason: r.reason }
    // The loser must stop consuming the peer's outbound ring before the winner starts (SPSC).
    await Promise.all(r.drop.map(async (d) => {
      const w = this.#workers.get(d.worker)
      if (w === undefined) return
      try { await w.dropConnection(d.connKey, 'duplicate') } catch { /* worker gone */ }
    }))
    return { ok: true }
  }

  async linkUp (connKey: string): Promise<void> {
    const e = this.#links.linkUp(connKey)
    if (e !== undefined) this.#known.add(e.peerId)
  }
  async release (connKey: string): Promise<void> { this.#links.release(connKey) }
  async releaseWorker (index: number): Promise<void> { this.#links.releaseWorker(index) }

  async links (): Promise<LinkSnapshot[]> {
    return this.#links.entries().map((e) => ({ peerId: e.peerId, worker: e.worker, connKey: e.connKey, dialerId: e.dialerId, up: e.up }))
  }
}
