import { createMesh, type Mesh } from '../index.js'

export interface DemoOptions {
  nodes: number
  durationMs: number
  /** Messages each node sends to each peer per tick (10 ticks/s). */
  rate: number
  out: NodeJS.WriteStream
}

const short = (id: string): string => id.slice(0, 8)

/**
 * A local mesh on 127.0.0.1: `nodes` nodes linked in a ring plus chords,
 * sending traffic to each other, with a live view of peers, states and rates.
 */
export async function runDemo (o: DemoOptions): Promise<void> {
  const w = (s: string): void => { o.out.write(s) }
  const meshes: Mesh[] = []
  for (let i = 0; i < o.nodes; i++) meshes.push(await createMesh({ listen: 'ws://127.0.0.1:0', logger: false }))
  w(`meshwork demo: ${o.nodes} nodes on 127.0.0.1\n`)
  for (const m of meshes) w(`  node ${short(m.id)}  ${m.addresses.join(' ')}\n`)
  // Ring, plus a chord from every even node across the ring.
  const links: Array<[number, number]> = []
  for (let i = 0; i < o.nodes; i++) links.push([i, (i + 1) % o.nodes])
  for (let i = 0; i < o.nodes; i += 2) if (o.nodes > 3) links.push([i, (i + Math.floor(o.nodes / 2)) % o.nodes])
  await Promise.all(links.map(async ([a, b]) => await (meshes[a] as Mesh).connect((meshes[b] as Mesh).addresses[0] as string)))

  const received = new Map<Mesh, number>()
  const sent = new Map<Mesh, number>()
  const bytes = new Map<Mesh, number>()
  for (const m of meshes) {
    received.set(m, 0); sent.set(m, 0); bytes.set(m, 0)
    m.on('message', (msg) => {
      received.set(m, (received.get(m) ?? 0) + 1)
      bytes.set(m, (bytes.get(m) ?? 0) + ((msg.payload as { body?: Uint8Array }).body?.length ?? 0))
    })
  }

  let stop = false
  const traffic = (async () => {
    let n = 0
    while (!stop) {
      for (const m of meshes) {
        for (const p of m.peers()) {
          if (p.state !== 'healthy') continue
          for (let k = 0; k < o.rate; k++) {
            void m.send(p.id, { n: n++, at: Date.now(), body: new Uint8Array(256) }, { lane: k % 10 === 0 ? 'priority' : 'bulk' }).then(() => { sent.set(m, (sent.get(m) ?? 0) + 1) }, () => {})
          }
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  })()

  const tty = o.out.isTTY === true
  const started = Date.now()
  let last = { t: started, rx: new Map(received), tx: new Map(sent) }
  while (Date.now() - started < o.durationMs) {
    await new Promise((resolve) => setTimeout(resolve, 1000))
    const now = Date.now()
    const dt = (now - last.t) / 1000
    const lines: string[] = []
    lines.push(`t=${((now - started) / 1000).toFixed(0)}s   node      addr                   peers (state, dir)                                  tx msg/s   rx msg/s`)
    for (const m of meshes) {
      const peers = m.peers().map((p) => `${short(p.id)}:${p.state === 'healthy' ? 'ok' : p.state}/${p.direction === 'outbound' ? 'out' : 'in'}`).join(' ')
      const tx = ((sent.get(m) ?? 0) - (last.tx.get(m) ?? 0)) / dt
      const rx = ((received.get(m) ?? 0) - (last.rx.get(m) ?? 0)) / dt
      lines.push(`        ${short(m.id)}  ${(m.addresses[0] ?? '').padEnd(22)} ${peers.padEnd(52)} ${tx.toFixed(0).padStart(8)} ${rx.toFixed(0).padStart(10)}`)
    }
    const total = [...received.values()].reduce((a, b) => a + b, 0)
    lines.push(`        total delivered: ${total}`)
    if (tty) w(`\x1b[${lines.length}F\x1b[J`.repeat(now - started > 1100 ? 1 : 0))
    w(lines.join('\n') + '\n')
    last = { t: now, rx: new Map(received), tx: new Map(sent) }
  }
  stop = true
  await traffic
  w('closing all nodes gracefully…\n')
  await Promise.all(meshes.map(async (m) => { await m.close() }))
  const total = [...received.values()].reduce((a, b) => a + b, 0)
  const queued = [...sent.values()].reduce((a, b) => a + b, 0)
  w(`done: ${queued} messages sent, ${total} delivered between ${o.nodes} nodes${queued === total ? ' — none lost' : ''}.\n`)
}
