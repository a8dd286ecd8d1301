// Token checks per document with HS256 (JWT_SECRET).
import assert from 'node:assert/strict'
import { after, afterEach, before, test } from 'node:test'

import {
  Server, acknowledged, append, destroyAll, hocuspocus, socket, synced, token, waitFor, ywebsocket,
} from '../lib/harness.mjs'

const secret = 'compat-secret'
let server
before(async () => { server = await new Server({ env: { JWT_SECRET: secret } }).start() })
afterEach(() => destroyAll())
after(async () => { await server.stop(); server.cleanup() })

const denied = (client) => waitFor(() => client.denied, `provider ${client.version} to be denied`)

test('a valid token syncs read-write, for every provider version', async () => {
  for (const version of [2, 3, 4]) {
    const client = hocuspocus(version, { url: server.url, name: `auth/valid-${version}`, token: token(secret) })
    await synced(client)
    assert.equal(client.denied, null)
    append(client, 'ok')
    await acknowledged(client)
  }
})

test('wrong signature, expired token and missing token are denied', async () => {
  const wrong = hocuspocus(4, { url: server.url, name: 'auth/wrong', token: token('not-the-secret') })
  await denied(wrong)
  assert.match(wrong.denied, /invalid token/)
  const expired = hocuspocus(4, {
    url: server.url, name: 'auth/expired', token: token(secret, { exp: Math.floor(Date.now() / 1000) - 600 }),
  })
  await denied(expired)
  assert.match(expired.denied, /expired/)
  const none = hocuspocus(3, { url: server.url, name: 'auth/none' })
  await denied(none)
  assert.equal(wrong.synced || expired.synced || none.synced, false)
})

test('the docs claim limits which documents a token opens', async () => {
  const teamToken = token(secret, { docs: ['team/*'] })
  const allowed = hocuspocus(4, { url: server.url, name: 'team/roadmap/q3', token: teamToken })
  await synced(allowed)
  const refused = hocuspocus(4, { url: server.url, name: 'other/roadmap', token: teamToken })
  await denied(refused)
  assert.match(refused.denied, /does not grant/)
})

test('a readonly token reads but its edits reach nobody and are not stored', async () => {
  const name = 'auth/readonly'
  const writer = hocuspocus(4, { url: server.url, name, token: token(secret) })
  await synced(writer)
  append(writer, 'original')
  await acknowledged(writer)

  const reader = hocuspocus(4, { url: server.url, name, token: token(secret, { readonly: true }) })
  await synced(reader)
  assert.equal(reader.authenticated, 'readonly')
  await waitFor(() => reader.text.toString() === 'original', 'the reader to see the content')
  append(reader, ' VANDALISED')
  // A later writer edit arrives everywhere; the read-only edit never does.
  append(writer, '!')
  await acknowledged(writer)
  const fresh = hocuspocus(2, { url: server.url, name, token: token(secret) })
  await synced(fresh)
  await waitFor(() => fresh.text.toString() === 'original!', 'the fresh client content')
  assert.equal(writer.text.toString(), 'original!')
})

test('a denied document does not disturb another on the same socket', async () => {
  const shared = socket(4, server.url)
  const limited = token(secret, { docs: ['ok/*'] })
  const bad = hocuspocus(4, { name: 'secret/doc', websocketProvider: shared, token: limited })
  const good = hocuspocus(4, { name: 'ok/doc', websocketProvider: shared, token: limited })
  await denied(bad)
  await synced(good)
  append(good, 'still flowing')
  await acknowledged(good)
  const other = hocuspocus(4, { url: server.url, name: 'ok/doc', token: token(secret) })
  await synced(other)
  await waitFor(() => other.text.toString() === 'still flowing', 'the edit on the good document')
})

test('y-websocket clients authenticate with the token query parameter', async () => {
  const good = ywebsocket({ url: server.url, room: 'auth/yws', token: token(secret) })
  await synced(good)
  const bad = ywebsocket({ url: server.url, room: 'auth/yws', token: token('wrong') })
  let closed = false
  bad.provider.on('connection-close', () => { closed = true })
  await waitFor(() => closed, 'the bad y-websocket client to be closed')
  assert.equal(bad.synced, false)
  bad.provider.shouldConnect = false
})
