// Short-lived tokens (a token function issuing 2-second JWTs, as an app refreshing Cognito
// tokens does) against unmodified providers of every version, for longer than the tokens live.
// By default the server checks a token when a document is opened, as Hocuspocus does, and the
// session outlives it. With COLLAB_SERVER_TOKEN_EXPIRY=refresh the server asks for a fresh token
// at expiry and, once one checks, asks for anything typed meanwhile. Either way no edit typed
// is lost and every one is acknowledged.
import assert from 'node:assert/strict'
import { after, afterEach, before, test } from 'node:test'

import {
  Server, acknowledged, append, destroyAll, hocuspocus, synced, token, waitFor,
} from '../lib/harness.mjs'

const secret = 'expiry-secret'
const EDITS = 12
let server
let refreshing
before(async () => {
  // A keepalive of 1 s makes the server look at expiries every second.
  server = await new Server({ env: { JWT_SECRET: secret, COLLAB_SERVER_KEEPALIVE_SECS: '1' } }).start()
  refreshing = await new Server({
    env: { JWT_SECRET: secret, COLLAB_SERVER_KEEPALIVE_SECS: '1', COLLAB_SERVER_TOKEN_EXPIRY: 'refresh' },
  }).start()
})
afterEach(() => destroyAll())
after(async () => {
  for (const s of [server, refreshing]) { await s.stop(); s.cleanup() }
})

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** A provider whose token function issues tokens that expire 2 s after they are issued. */
function shortLived (version, url, name) {
  let issued = 0
  const client = hocuspocus(version, {
    url,
    name,
    token: () => {
      issued += 1
      return token(secret, { exp: Math.floor(Date.now() / 1000) + 2 })
    },
  })
  client.issued = () => issued
  return client
}

/** Edits `<0>` … `<EDITS-1>`, one a second (past the 2 s tokens and the server's 5 s leeway). */
async function typeSlowly (clients) {
  for (let i = 0; i < EDITS; i++) {
    for (const client of clients) append(client, `<${i}>`)
    await sleep(1000)
  }
}

async function everyEditArrives (url, clients) {
  for (const client of clients) {
    await acknowledged(client, `every edit of provider ${client.version} acknowledged`)
    const reader = hocuspocus(4, { url, name: client.provider.configuration.name, token: token(secret) })
    await synced(reader)
    const expected = Array.from({ length: EDITS }, (_, i) => `<${i}>`).join('')
    await waitFor(() => reader.text.toString() === expected,
      `a new reader to see provider ${client.version}'s ${EDITS} edits (has ${reader.text.toString()})`)
    assert.equal(client.denied, null, `provider ${client.version} was denied: ${client.denied}`)
  }
}

test('default: tokens are checked at open and an open editor keeps saving past their expiry (2.x, 3.x, 4.x)', async () => {
  const clients = [2, 3, 4].map((version) => shortLived(version, server.url, `expiry/open-${version}`))
  await Promise.all(clients.map((client) => synced(client)))
  await typeSlowly(clients)
  await everyEditArrives(server.url, clients)
})

test('refresh: the server asks for a fresh token at expiry; 3.x and 4.x providers answer on the same socket and lose nothing', async () => {
  const clients = [3, 4].map((version) => shortLived(version, refreshing.url, `expiry/refresh-${version}`))
  await Promise.all(clients.map((client) => synced(client)))
  await typeSlowly(clients)
  await everyEditArrives(refreshing.url, clients)
  for (const client of clients) {
    assert.ok(client.issued() >= 2, `provider ${client.version} was asked for a fresh token (${client.issued()} issued)`)
  }
})

test('refresh: a 2.x provider, which ignores token requests, is denied at expiry; what it typed stays in its document', async () => {
  const client = shortLived(2, refreshing.url, 'expiry/refresh-2')
  await synced(client)
  append(client, 'before')
  await acknowledged(client)
  await waitFor(() => client.denied !== null, 'the 2.x session to be denied after its token request went unanswered', 20000)
  assert.match(client.denied, /expired/)
  assert.equal(client.text.toString(), 'before')
})
