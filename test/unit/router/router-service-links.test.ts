// RouterService tells every IO worker which worker owns each link (relaying
// between the IO workers of one node): pushed on claim (waited for, so a
// worker drops a routed actor before the peer's direct link elsewhere
// starts), on link up and release, and to a restarted worker.
import { describe, it, expect, afterEach } from 'vitest'
import type { LinkSnapshot } from '../../../src/actor/protocol.js'
import { RouterService } from '../../../src/router/router-service.js'
import { attachFakeIo, closeFakeIos, until } from '../../helpers/fake-io.js'

afterEach(closeFakeIos)

/** A fake IO worker recording the link lists it is given. */
async function attach (svc: RouterService, index: number, seen: LinkSnapshot[][]): Promise<void> {
  await attachFakeIo(svc, index, { setLinks: async (links) => { seen.push(links) } })
}

const owners = (l: LinkSnapshot[] | undefined): Array<[string, number, boolean]> => (l ?? []).map((x) => [x.peerId, x.worker, x.up])

describe('RouterService: link owners for the IO workers', () => {
  it('every worker has the claim before it resolves, then link up, release and a worker crash', async () => {
    const svc = new RouterService({ selfId: 'self', join: 'open' })
    const seen: LinkSnapshot[][][] = [[], []]
    await attach(svc, 0, seen[0]!)
    await attach(svc, 1, seen[1]!)
    expect(await svc.claim({ connKey: '1:1', worker: 1, peerId: 'p', dialerId: 'p' })).toEqual({ ok: true })
    // Awaited by claim: worker 0 knows p is being linked on worker 1 already.
    expect(owners(seen[0]!.at(-1))).toEqual([['p', 1, false]])
    await svc.linkUp('1:1')
    await until(() => owners(seen[0]!.at(-1))[0]?.[2] === true, 'worker 0 sees the link up')
    expect(owners(seen[1]!.at(-1))).toEqual([['p', 1, true]])
    await svc.claim({ connKey: '0:1', worker: 0, peerId: 'q', dialerId: 'q' })
    await svc.release('1:1')
    await until(() => owners(seen[0]!.at(-1)).length === 1, 'release reaches worker 0')
    expect(owners(seen[0]!.at(-1))).toEqual([['q', 0, false]])
    // Worker 0 crashes: its links go, worker 1 hears of it, the restarted worker 0 gets the list.
    await svc.releaseWorker(0)
    await until(() => owners(seen[1]!.at(-1)).length === 0, 'worker 1 sees worker 0\'s links gone')
    const fresh: LinkSnapshot[][] = []
    await attach(svc, 0, fresh)
    await until(() => fresh.length > 0, 'the restarted worker gets the list')
    expect(owners(fresh.at(-1))).toEqual([])
  })

  it('a node with one IO worker pushes nothing (it knows its own links)', async () => {
    const svc = new RouterService({ selfId: 'self', join: 'open' })
    const seen: LinkSnapshot[][] = []
    await attach(svc, 0, seen)
    await svc.claim({ connKey: '0:1', worker: 0, peerId: 'p', dialerId: 'p' })
    await svc.linkUp('0:1')
    await svc.release('0:1')
    expect(seen).toEqual([])
  })
})
