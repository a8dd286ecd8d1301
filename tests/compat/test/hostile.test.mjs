// Hostile clients against the collab-server binary while real providers (2.x, 4.x and
// y-websocket) keep editing the same documents: every attack limits or closes only the
// offender. Memory figures are read from the server's /proc status and printed for
// docs/security.md; the assertions only bound them generously (nothing here measures time).
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { after, afterEach, before, test } from 'node:test'

import WebSocket from 'ws'

import {
  Server, acknowledged, append, destroyAll, hocuspocus, synced, waitFor, ywebsocket,
} from '../lib/harness.mjs'

let server
before(async () => {
  server = await new Server({
    args: ['--database-url', 'memory://', '--outbound-queue-bytes', '2097152', '--send-timeout-secs', '3',
      '--max-document-bytes', '3000000'],
  }).start()
})
afterEach(() => destroyAll())
after(async () => { await server.stop(); server.cleanup() })

function status (field) {
  const text = fs.readFileSync(`/proc/${server.child.pid}/status`, 'utf8')
  const line = text.split('\n').find((l) => l.startsWith(`${field}:`))
  return Number.parseInt(line.split(/\s+/)[1], 10) // kB
}

function varUint (n) {
  const out = []
  while (n > 0x7f) { out.push(0x80 | (n & 0x7f)); n = Math.floor(n / 128) }
  out.push(n)
  return out
}
function varString (s) {
  const bytes = [...Buffer.from(s)]
  return [...varUint(bytes.length), ...bytes]
}
const frame = (...parts) => Buffer.from(parts.flat())

async function raw (path = '') {
  const ws = new WebSocket(`${server.url}/${path}`)
  ws.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })))
  ws.on('error', () => {})
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
  return ws
}

/** Honest providers on `name` that keep editing until `stop()`; `check()` asserts they converged. */
async function honest (name) {
  const clients = [hocuspocus(2, { url: server.url, name }), hocuspocus(4, { url: server.url, name }),
    ywebsocket({ url: server.url, room: name })]
  for (const c of clients) await synced(c)
  let n = 0
  const timer = setInterval(() => clients.forEach((c, i) => append(c, `(${i}.${n++})`)), 20)
  return {
    clients,
    async check () {
      clearInterval(timer)
      for (const c of clients.slice(0, 2)) await acknowledged(c, `provider ${c.version} acknowledged`)
      await waitFor(() => clients.every((c) => c.text.toString() === clients[0].text.toString()),
        'the honest clients to converge')
      assert.ok(clients[0].text.length > 0)
    },
  }
}

test('amplification frames cost no memory while providers edit', async () => {
  const editors = await honest('amplified')
  const before = status('VmHWM')
  const attacks = [
    frame(varString('amplified'), 0, 0, 5, 0x80, 0x80, 0x80, 0x80, 0x02), // Step1, 2^29 SV entries
    frame(varString('amplified'), 1, 5, 0x80, 0x80, 0x80, 0x80, 0x02), // awareness, 2^29 clients
    frame(varString('amplified'), 0, 1, 5, 0x80, 0x80, 0x80, 0x80, 0x02), // Step2, 2^29 clients
  ]
  for (let i = 0; i < 300; i++) {
    const ws = await raw()
    ws.send(attacks[i % attacks.length])
    const { code } = await ws.closed
    assert.equal(code, 1007)
  }
  const growthMiB = (status('VmHWM') - before) / 1024
  console.log(`# server peak RSS growth after 300 amplification frames: ${growthMiB.toFixed(1)} MiB`)
  assert.ok(growthMiB < 64, `peak RSS grew by ${growthMiB} MiB`)
  await editors.check()
})

test('a client that asks for a large document and never reads is dropped', async () => {
  const name = 'never-read'
  const writer = hocuspocus(4, { url: server.url, name })
  await synced(writer)
  append(writer, 'x'.repeat(1_000_000))
  await acknowledged(writer)
  const editors = await honest(name)
  const rssBefore = status('VmRSS')
  const greedy = await raw()
  greedy._socket.pause() // never read a byte
  const step1 = frame(varString(name), 0, 0, 1, 0)
  let peak = 0
  for (let i = 0; i < 3000 && greedy.readyState === WebSocket.OPEN; i++) {
    greedy.send(step1)
    if (i % 100 === 0) peak = Math.max(peak, status('VmRSS'))
  }
  await waitFor(async () => {
    peak = Math.max(peak, status('VmRSS'))
    const metrics = await (await fetch(`${server.http}/metrics`)).text()
    return /collab_server_fanout_queue_drops_total [1-9]/.test(metrics)
  }, 'the greedy socket to be dropped', 30000)
  const growthMiB = (peak - rssBefore) / 1024
  console.log(`# server RSS growth under a never-reading client (3,000 Step1 for a 1 MB document): ${growthMiB.toFixed(1)} MiB`)
  assert.ok(growthMiB < 128, `RSS grew by ${growthMiB} MiB`)
  greedy.terminate()
  await editors.check()
})

test("a raw socket cannot remove or overwrite a provider's presence", async () => {
  const name = 'presence-hijack'
  const victim = hocuspocus(4, { url: server.url, name })
  const watcher = hocuspocus(2, { url: server.url, name })
  for (const c of [victim, watcher]) await synced(c)
  victim.awareness.setLocalStateField('user', { name: 'ada' })
  const seen = () => watcher.awareness.getStates().get(victim.doc.clientID)?.user?.name
  await waitFor(() => seen() === 'ada', 'the victim presence')
  const attacker = await raw()
  const id = victim.doc.clientID
  const entry = (clock, json) => [...varUint(id), ...varUint(clock), ...varString(json)]
  const awarenessFrame = (...entries) => {
    const payload = [...varUint(entries.length), ...entries.flat()]
    return frame(varString(name), 1, varUint(payload.length), payload)
  }
  attacker.send(frame(varString(name), 2, 0, varString('')))
  attacker.send(awarenessFrame(entry(1000, '{"user":{"name":"mallory"}}')))
  attacker.send(awarenessFrame(entry(1001, 'null')))
  // A marker from the attacker's own id: once the watcher has it, the earlier frames were handled.
  const own = [...varUint(424242), ...varUint(1), ...varString('{"user":{"name":"marker"}}')]
  attacker.send(awarenessFrame(own))
  await waitFor(() => watcher.awareness.getStates().get(424242)?.user?.name === 'marker', 'the marker')
  assert.equal(seen(), 'ada')
  attacker.terminate()
})

test('an update past the document limit is refused for that document; the socket lives on', async () => {
  const big = hocuspocus(4, { url: server.url, name: 'too-big' })
  const small = hocuspocus(4, { url: server.url, name: 'small-neighbour', websocketProvider: undefined })
  for (const c of [big, small]) await synced(c)
  append(big, 'y'.repeat(4_000_000))
  await waitFor(() => big.denied, 'the refusal')
  assert.match(big.denied, /exceed/)
  append(small, 'fine')
  await acknowledged(small)
})
