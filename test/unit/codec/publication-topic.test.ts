// publicationTopic: the topic of a publication from the start of its payload
// (the msgpack array [topic, value] publish() sends), for 'undelivered' reports.
// It must find the topic in any first chunk that holds it whole, and never
// throw or invent one for anything else.
import { describe, it, expect } from 'vitest'
import fc from 'fast-check'
import { Packr } from 'msgpackr'
import { publicationTopic, encodePayload } from '../../../src/codec/payload.js'

// The same packing publish() uses (encodePayload of [topic, value]).
const pack = (v: unknown): Uint8Array => encodePayload(v).bytes

describe('publicationTopic', () => {
  it('reads the topic of [topic, value] for every string length class (fixstr, str 8, str 16, str 32) and any value', () => {
    for (const topic of ['t', 'x'.repeat(31), 'y'.repeat(32), 'z'.repeat(255), 'w'.repeat(256), 'v'.repeat(65_535), 'u'.repeat(65_536), 'ünï/🙂']) {
      for (const value of [1, 'str', { a: [1, 2] }, new Map([[1, 2]]), new Uint8Array(70_000)]) {
        expect(publicationTopic(pack([topic, value]))).toBe(topic)
      }
    }
  })

  it('property: any cut that keeps the whole topic gives it; a shorter one gives undefined (a first chunk)', () => {
    fc.assert(fc.property(fc.string({ minLength: 1, maxLength: 300, unit: 'binary' }), fc.anything(), fc.nat(), (topic, value, cutSeed) => {
      const bytes = pack([topic, value])
      const whole = 1 + pack(topic).length // array header + the packed string
      const cut = cutSeed % (bytes.length + 1)
      const got = publicationTopic(bytes.subarray(0, cut))
      expect(got).toBe(cut >= whole ? topic : undefined)
    }))
  })

  it('property: arbitrary bytes never throw; what they yield is a string or undefined', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
      const got = publicationTopic(bytes)
      expect(got === undefined || typeof got === 'string').toBe(true)
    }))
    // Opening like a publication but not one: another array size, a non-string first element, a header cut short.
    const p = new Packr()
    expect(publicationTopic(p.pack(['a', 1, 2]))).toBeUndefined()
    expect(publicationTopic(p.pack([1, 'a']))).toBeUndefined()
    expect(publicationTopic(new Uint8Array([0x92, 0xda, 0x01]))).toBeUndefined()
    expect(publicationTopic(new Uint8Array([0x92, 0xdb, 0xff, 0xff, 0xff, 0xff, 0x61]))).toBeUndefined()
    expect(publicationTopic(new Uint8Array(0))).toBeUndefined()
  })

  it('reads from SharedArrayBuffer memory (send-queue records are)', () => {
    const bytes = pack(['orders', { id: 7 }])
    const shared = new Uint8Array(new SharedArrayBuffer(bytes.length + 8), 8)
    shared.set(bytes)
    expect(publicationTopic(shared)).toBe('orders')
  })
})
