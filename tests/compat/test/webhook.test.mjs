// Webhooks against a receiver that checks every signature with @hocuspocus/extension-webhook's
// own createSignature: each event once, a `create` answer seeds the document, a `connect`
// answer is the session's context in later events, and a provider's change arrives (debounced,
// after it is stored) with the document as JSON.
import assert from 'node:assert/strict'
import http from 'node:http'
import { afterEach, test } from 'node:test'

import { Webhook } from '@hocuspocus/extension-webhook'

import { Server, acknowledged, append, destroyAll, freePort, hocuspocus, synced, waitFor } from '../lib/harness.mjs'

afterEach(() => destroyAll())

const SECRET = 'webhook-secret'
const seed = { type: 'doc', content: [{ type: 'paragraph', content: [{ type: 'text', text: 'from the template' }] }] }

/** A receiver: records events, answers connect with a context and create with a template. */
async function receiver ({ failConnect = false } = {}) {
  const verifier = new Webhook({ url: 'http://unused', secret: SECRET })
  const events = []
  const badSignatures = []
  const server = http.createServer((request, response) => {
    let body = ''
    request.on('data', (chunk) => { body += chunk })
    request.on('end', () => {
      const signature = request.headers['x-hocuspocus-signature-256']
      if (signature !== verifier.createSignature(body)) badSignatures.push(body)
      const { event, payload } = JSON.parse(body)
      events.push({ event, payload })
      const answer = (status, value) => {
        response.writeHead(status, { 'Content-Type': 'application/json' })
        response.end(value === undefined ? '' : JSON.stringify(value))
      }
      if (event === 'connect') return failConnect ? answer(403, { error: 'no' }) : answer(200, { user: 'alice', tenant: payload.requestParameters.tenant })
      if (event === 'create') return answer(200, { default: seed })
      answer(200)
    })
  })
  const port = await freePort()
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve))
  return { url: `http://127.0.0.1:${port}/hook`, events, badSignatures, close: () => new Promise((resolve) => server.close(resolve)) }
}

const of = (events, kind) => events.filter((e) => e.event === kind)

test('every event once, signed as the extension signs; create seeds, connect gives the context, change carries the document', async () => {
  const hook = await receiver()
  const server = await new Server({
    env: {
      COLLAB_SERVER_WEBHOOK_URL: hook.url,
      COLLAB_SERVER_WEBHOOK_SECRET: SECRET,
      COLLAB_SERVER_WEBHOOK_EVENTS: 'change,connect,disconnect,create',
      COLLAB_SERVER_API_SECRET: 'hooks-api',
    },
  }).start()
  try {
    const editor = hocuspocus(4, { url: `${server.url}?tenant=t1`, name: 'hooks/doc' })
    await synced(editor)
    await waitFor(() => editor.doc.getXmlFragment('default').toString().includes('from the template'), 'the seeded template')

    append(editor, 'typed by a person')
    await acknowledged(editor)
    await waitFor(() => of(hook.events, 'change').length >= 1, 'the change webhook', 20000)
    editor.destroy()
    await waitFor(() => of(hook.events, 'disconnect').length >= 1, 'the disconnect webhook', 20000)
    // Nothing more arrives for these events (a second change would come within its 2 s window).
    await new Promise((resolve) => setTimeout(resolve, 3000))

    assert.deepEqual(hook.badSignatures, [], 'every signature verifies')
    for (const kind of ['create', 'connect', 'change', 'disconnect']) {
      assert.equal(of(hook.events, kind).length, 1, `one ${kind}: ${JSON.stringify(hook.events.map((e) => e.event))}`)
    }
    const connect = of(hook.events, 'connect')[0].payload
    assert.equal(connect.documentName, 'hooks/doc')
    assert.equal(connect.requestParameters.tenant, 't1')
    assert.ok(connect.requestHeaders['sec-websocket-key'], 'the upgrade request headers')

    const change = of(hook.events, 'change')[0].payload
    assert.equal(change.documentName, 'hooks/doc')
    assert.equal(change.document.t, 'typed by a person')
    assert.deepEqual(change.document.default, seed, 'the seeded fragment, as ProseMirror JSON')
    assert.deepEqual(change.context, { user: 'alice', tenant: 't1' }, 'the connect answer is the context')

    const disconnect = of(hook.events, 'disconnect')[0].payload
    assert.deepEqual(disconnect.context, { user: 'alice', tenant: 't1' })

    const metrics = await (await fetch(`${server.http}/metrics`)).text()
    assert.match(metrics, /collab_server_webhook_deliveries_total\{event="change",outcome="sent"\} 1/)

    // Deleting the (unloaded) document through the API is no `create` (issue 24, item 9), and
    // a second DELETE says the document may have been deleted, not only "never written".
    await new Promise((resolve) => setTimeout(resolve, 1000))
    const del = () => fetch(`${server.http}/api/documents/hooks%2Fdoc`, { method: 'DELETE', headers: { authorization: 'Bearer hooks-api' } })
    assert.equal((await del()).status, 200)
    await new Promise((resolve) => setTimeout(resolve, 1000))
    assert.equal(of(hook.events, 'create').length, 1, `no create for a DELETE: ${JSON.stringify(hook.events.map((e) => e.event))}`)
    const again = await del()
    assert.equal(again.status, 404)
    assert.match((await again.json()).error, /deleted/)
  } finally {
    await server.stop()
    server.cleanup()
    await hook.close()
  }
})

test('a failing connect webhook denies the document; an unreachable receiver never blocks editing', async () => {
  const hook = await receiver({ failConnect: true })
  const server = await new Server({
    env: { COLLAB_SERVER_WEBHOOK_URL: hook.url, COLLAB_SERVER_WEBHOOK_SECRET: SECRET, COLLAB_SERVER_WEBHOOK_EVENTS: 'connect' },
  }).start()
  try {
    const denied = hocuspocus(2, { url: server.url, name: 'hooks/denied' })
    await waitFor(() => denied.denied, 'the denial')
    assert.match(denied.denied, /connect webhook/)
  } finally {
    await server.stop()
    server.cleanup()
    await hook.close()
  }

  // Nothing listens on this port: deliveries fail (and are counted); edits are stored anyway.
  const nowhere = `http://127.0.0.1:${await freePort()}/hook`
  const second = await new Server({ env: { COLLAB_SERVER_WEBHOOK_URL: nowhere, COLLAB_SERVER_WEBHOOK_EVENTS: 'change,disconnect' } }).start()
  try {
    const editor = hocuspocus(3, { url: second.url, name: 'hooks/unreachable' })
    await synced(editor)
    for (let i = 0; i < 20; i++) append(editor, `${i} `)
    await acknowledged(editor)
    const reader = hocuspocus(4, { url: second.url, name: 'hooks/unreachable' })
    await synced(reader)
    await waitFor(() => reader.text.toString() === editor.text.toString(), 'the edits, while webhooks fail')
  } finally {
    await second.stop()
    second.cleanup()
  }
})
