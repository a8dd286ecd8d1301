// Real clients against collab-server: convergence, multiplexing, awareness, large documents,
// persistence. Every wait is bounded; nothing here measures time.
import assert from 'node:assert/strict'
import { after, afterEach, before, test } from 'node:test'

import {
  Server, Y, acknowledged, append, destroyAll, hocuspocus, socket, synced, waitFor, ywebsocket,
} from '../lib/harness.mjs'

let server
before(async () => { server = await new Server().start() })
afterEach(() => destroyAll())
after(async () => { await server.stop(); server.cleanup() })

test('providers 2.x, 3.x, 4.x and y-websocket converge on one document', async () => {
  const name = 'mixed-versions'
  const clients = [
    hocuspocus(2, { url: server.url, name }),
    hocuspocus(3, { url: server.url, name }),
    hocuspocus(4, { url: server.url, name }),
    ywebsocket({ url: server.url, room: name }),
  ]
  for (const client of clients) await synced(client)
  clients.forEach((client, i) => append(client, `[${client.version ?? 'yws'}:${i}]`))
  const expected = ['[2:0]', '[3:1]', '[4:2]', '[yws:3]']
  await waitFor(() => clients.every((c) => expected.every((e) => c.text.toString().includes(e))),
    'every client to see every edit')
  const texts = clients.map((c) => c.text.toString())
  assert.ok(texts.every((t) => t === texts[0]), `identical content: ${JSON.stringify(texts)}`)
  for (const client of clients.slice(0, 3)) await acknowledged(client, `provider ${client.version} acknowledged`)
})

for (const version of [2, 4]) {
  test(`one ${version}.x socket carries several documents`, async () => {
    const shared = socket(version, server.url)
    const names = ['multi-a', 'multi-b', 'multi-c'].map((n) => `${n}-v${version}`)
    const providers = names.map((name) => hocuspocus(version, { name, websocketProvider: shared, token: 'x' }))
    for (const p of providers) await synced(p)
    providers.forEach((p, i) => append(p, `doc-${i}`))
    for (const p of providers) await acknowledged(p)
    // A separate reader of each document sees only that document's edit.
    for (const [i, name] of names.entries()) {
      const reader = hocuspocus(4, { url: server.url, name })
      await synced(reader)
      await waitFor(() => reader.text.toString() === `doc-${i}`, `${name} content`)
    }
  })
}

test('awareness appears, and disappears when a client leaves or its socket dies', async () => {
  const name = 'awareness'
  const watcher = hocuspocus(4, { url: server.url, name })
  const leaver = hocuspocus(2, { url: server.url, name })
  const dier = ywebsocket({ url: server.url, room: name })
  for (const c of [watcher, leaver, dier]) await synced(c)
  leaver.awareness.setLocalStateField('user', { name: 'leaver' })
  dier.awareness.setLocalStateField('user', { name: 'dier' })
  const names = () => [...watcher.awareness.getStates().values()].map((s) => s.user?.name).filter(Boolean).sort()
  await waitFor(() => names().join() === 'dier,leaver', 'both remote states')

  leaver.destroy()
  await waitFor(() => names().join() === 'dier', 'the destroyed provider\'s state to go')
  // The socket dies without a goodbye.
  dier.provider.ws.terminate()
  dier.provider.shouldConnect = false
  await waitFor(() => names().length === 0, 'the dead socket\'s state to go')
})

test('a late joiner sees earlier edits', async () => {
  const name = 'late-joiner'
  const writer = hocuspocus(3, { url: server.url, name })
  await synced(writer)
  append(writer, 'written before you came')
  await acknowledged(writer)
  writer.destroy()
  const joiner = hocuspocus(4, { url: server.url, name })
  await synced(joiner)
  await waitFor(() => joiner.text.toString() === 'written before you came', 'the earlier edit')
})

test('a 1 MB document syncs to a fresh client', async () => {
  const name = 'big-document'
  const writer = hocuspocus(4, { url: server.url, name })
  await synced(writer)
  const chunk = 'x'.repeat(1024)
  writer.doc.transact(() => { for (let i = 0; i < 1024; i++) append(writer, chunk) })
  await acknowledged(writer, 'the 1 MB update acknowledged')
  const reader = hocuspocus(2, { url: server.url, name })
  await synced(reader)
  await waitFor(() => reader.text.length === 1024 * 1024, 'the whole megabyte')
  assert.equal(reader.text.toString(), writer.text.toString())
})

test('y-websocket and Hocuspocus clients exchange edits', async () => {
  const name = 'rooms/shared'
  const yws = ywebsocket({ url: server.url, room: name })
  const hp = hocuspocus(4, { url: server.url, name })
  await synced(yws)
  await synced(hp)
  append(yws, 'from y-websocket;')
  await waitFor(() => hp.text.toString().includes('from y-websocket;'), 'the y-websocket edit at the provider')
  append(hp, 'from hocuspocus;')
  await waitFor(() => yws.text.toString().includes('from hocuspocus;'), 'the provider edit at y-websocket')
})

test('health and metrics', async () => {
  const health = await fetch(`${server.http}/health`)
  assert.equal(health.status, 200)
  assert.deepEqual(await health.json(), { status: 'healthy' })
  assert.equal((await fetch(`${server.http}/ready`)).status, 200)
  const metrics = await (await fetch(`${server.http}/metrics`)).text()
  assert.match(metrics, /^collab_server_connections /m)
  assert.match(metrics, /^collab_server_messages_total\{direction="in",type="sync_update"\} [1-9]/m)
})
