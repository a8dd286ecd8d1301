// The document API (/api/documents) against real providers and the real y-prosemirror: reads
// give what y-prosemirror computes, writes reach open editors as ordinary edits and are stored
// before the 200, errors are JSON with the right status.
import assert from 'node:assert/strict'
import { afterEach, test } from 'node:test'

import { Schema } from 'prosemirror-model'
import { prosemirrorToYXmlFragment, yXmlFragmentToProsemirrorJSON } from 'y-prosemirror'

import { Server, Y, acknowledged, append, destroyAll, hocuspocus, synced, waitFor } from '../lib/harness.mjs'

afterEach(() => destroyAll())

const SECRET = 'api-secret-for-tests'
const ROTATED = 'the-next-secret'
const apiEnv = { COLLAB_SERVER_API_SECRET: `${SECRET},${ROTATED}`, COLLAB_SERVER_API_MAX_BODY_BYTES: '65536' }

/** A Tiptap-shaped schema (StarterKit's names): headings, lists, marks with and without attrs. */
const schema = new Schema({
  nodes: {
    doc: { content: 'block+' },
    paragraph: { group: 'block', content: 'inline*' },
    heading: { group: 'block', content: 'inline*', attrs: { level: { default: 1 } } },
    bulletList: { group: 'block', content: 'listItem+' },
    listItem: { content: 'paragraph block*' },
    codeBlock: { group: 'block', content: 'text*', marks: '', attrs: { language: { default: null } } },
    text: { group: 'inline' },
    hardBreak: { group: 'inline', inline: true },
  },
  marks: {
    bold: {},
    italic: {},
    link: { attrs: { href: {}, target: { default: '_blank' } } },
  },
})

function tiptapDocument () {
  const { nodes: n, marks: m } = schema
  return n.doc.create(null, [
    n.heading.create({ level: 2 }, schema.text('Meeting notes')),
    n.paragraph.create(null, [
      schema.text('plain, '),
      schema.text('bold', [m.bold.create()]),
      schema.text(' and both', [m.bold.create(), m.italic.create()]),
      schema.text(', a link', [m.link.create({ href: 'https://example.com' })]),
      n.hardBreak.create(),
      schema.text('after a break'),
    ]),
    n.bulletList.create(null, [
      n.listItem.create(null, n.paragraph.create(null, schema.text('first'))),
      n.listItem.create(null, [
        n.paragraph.create(null, schema.text('second')),
        n.bulletList.create(null, n.listItem.create(null, n.paragraph.create(null, schema.text('nested')))),
      ]),
    ]),
    n.codeBlock.create({ language: 'js' }, schema.text('let x = 1')),
    n.paragraph.create(),
  ])
}

function api (server, path, { method = 'GET', body, secret = SECRET, headers = {} } = {}) {
  const auth = secret === null ? {} : { Authorization: `Bearer ${secret}` }
  return fetch(`${server.http}/api${path}`, { method, body, headers: { ...auth, ...headers } })
}

async function json (server, name) {
  const response = await api(server, `/documents/${encodeURIComponent(name)}?format=json`)
  assert.equal(response.status, 200, await response.clone().text())
  return response.json()
}

/** A binary update appending `text` to Y.Text `t`, made by a Yjs document of its own. */
function textUpdate (text) {
  const doc = new Y.Doc()
  doc.getText('t').insert(0, text)
  return Y.encodeStateAsUpdate(doc)
}

test('a Tiptap document written through y-prosemirror reads back as y-prosemirror computes it', async () => {
  const server = await new Server({ env: apiEnv }).start()
  try {
    const writer = hocuspocus(4, { url: server.url, name: 'api/tiptap' })
    await synced(writer)
    const fragment = writer.doc.getXmlFragment('default')
    prosemirrorToYXmlFragment(tiptapDocument(), fragment)
    writer.doc.getMap('meta').set('title', 'Notes')
    await acknowledged(writer)

    // As JSON (y-prosemirror's mark attrs are null-prototype objects).
    const expected = JSON.parse(JSON.stringify(yXmlFragmentToProsemirrorJSON(fragment)))
    const live = await json(server, 'api/tiptap')
    assert.deepEqual(live.default, expected, 'the live document (loaded) reads as y-prosemirror computes it')
    assert.deepEqual(live.meta, { title: 'Notes' })

    destroyAll()
    await server.restart()
    const stored = await json(server, 'api/tiptap')
    assert.deepEqual(stored.default, expected, 'the stored document (not loaded) reads the same')

    const text = await api(server, '/documents/api%2Ftiptap?format=text&root=default')
    assert.equal(text.status, 200)
    assert.match(await text.text(), /^Meeting notes\nplain, bold and both, a linkafter a break\nfirst\nsecond\nnested\nlet x = 1\n/)

    const binary = await api(server, '/documents/api%2Ftiptap')
    assert.equal(binary.headers.get('content-type'), 'application/octet-stream')
    const copy = new Y.Doc()
    Y.applyUpdate(copy, new Uint8Array(await binary.arrayBuffer()))
    assert.deepEqual(JSON.parse(JSON.stringify(yXmlFragmentToProsemirrorJSON(copy.getXmlFragment('default')))), expected)

    const accept = await api(server, '/documents/api%2Ftiptap', { headers: { Accept: 'application/json' } })
    assert.deepEqual((await accept.json()).default, expected, 'Accept: application/json gives JSON')
  } finally {
    await server.stop()
    server.cleanup()
  }
})

test('a PUT reaches two open providers as an ordinary edit and survives a restart', async () => {
  const server = await new Server({ env: apiEnv }).start()
  try {
    const editors = [2, 4].map((version) => hocuspocus(version, { url: server.url, name: 'api/put' }))
    const closes = [0, 0]
    editors.forEach((editor, i) => editor.provider.on('close', () => { closes[i] += 1 }))
    await Promise.all(editors.map((editor) => synced(editor)))
    prosemirrorToYXmlFragment(tiptapDocument(), editors[0].doc.getXmlFragment('default'))
    await acknowledged(editors[0])
    await waitFor(() => editors[1].doc.getXmlFragment('default').length === 5, 'the second editor sees the document')
    const before = JSON.parse(JSON.stringify(yXmlFragmentToProsemirrorJSON(editors[1].doc.getXmlFragment('default'))))

    const changed = structuredClone(before)
    changed.content[4] = { type: 'paragraph', content: [{ type: 'text', text: 'written by the backend', marks: [{ type: 'bold', attrs: {} }] }] }
    const response = await api(server, '/documents/api%2Fput?format=json', {
      method: 'PUT',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ default: changed, title: 'Set over HTTP' }),
    })
    assert.equal(response.status, 200, await response.clone().text())
    assert.deepEqual(await response.json(), { name: 'api/put', stored: true })

    for (const editor of editors) {
      await waitFor(() => {
        const now = yXmlFragmentToProsemirrorJSON(editor.doc.getXmlFragment('default'))
        return JSON.stringify(now) === JSON.stringify(changed)
      }, `provider ${editor.version} sees the PUT`)
      assert.equal(editor.doc.getText('title').toString(), 'Set over HTTP')
    }
    assert.deepEqual(closes, [0, 0], 'no provider reconnected')

    // Appending a node is one more ordinary edit.
    const appended = await api(server, '/documents/api%2Fput?format=json&mode=append', {
      method: 'PUT',
      body: JSON.stringify({ default: [{ type: 'paragraph', content: [{ type: 'text', text: 'appended' }] }] }),
    })
    assert.equal(appended.status, 200, await appended.clone().text())
    await waitFor(() => editors[0].doc.getXmlFragment('default').length === 6, 'the appended paragraph')

    destroyAll()
    await server.kill9()
    await server.start()
    const read = await json(server, 'api/put')
    assert.deepEqual(read.default.content.slice(0, 5), changed.content)
    assert.equal(read.default.content[5].content[0].text, 'appended')
    assert.equal(read.title, 'Set over HTTP')
  } finally {
    await server.stop()
    server.cleanup()
  }
})

test('a posted update is stored before its 200: kill -9 right after it loses nothing', async () => {
  const server = await new Server({ env: apiEnv }).start()
  try {
    const reader = hocuspocus(3, { url: server.url, name: 'api/post' })
    await synced(reader)
    for (const word of ['one ', 'two ', 'three']) {
      const doc = new Y.Doc()
      Y.applyUpdate(doc, Y.encodeStateAsUpdate(reader.doc))
      const before = Y.encodeStateVector(doc)
      doc.getText('t').insert(doc.getText('t').length, word)
      const response = await api(server, '/documents/api%2Fpost/updates', {
        method: 'POST',
        headers: { 'Content-Type': 'application/octet-stream' },
        body: Y.encodeStateAsUpdate(doc, before),
      })
      assert.equal(response.status, 200, await response.clone().text())
      await waitFor(() => reader.text.toString().endsWith(word), `the open provider sees "${word}"`)
    }
    await server.kill9()
    destroyAll()
    await server.start()
    const read = await json(server, 'api/post')
    assert.equal(read.t, 'one two three')
  } finally {
    await server.stop()
    server.cleanup()
  }
})

test('401, 400, 404 and 413 come as JSON and leave documents untouched', async () => {
  const server = await new Server({ env: apiEnv }).start()
  try {
    const ok = await api(server, '/documents/api%2Ferrors/updates', { method: 'POST', body: textUpdate('kept') })
    assert.equal(ok.status, 200)
    const rotated = await api(server, '/documents/api%2Ferrors', { secret: ROTATED })
    assert.equal(rotated.status, 200, 'the second secret works too (rotation)')

    for (const secret of [null, 'wrong', `${SECRET}x`, '']) {
      const response = await api(server, '/documents/api%2Ferrors', { secret })
      assert.equal(response.status, 401, `secret ${secret}`)
      assert.deepEqual(await response.json(), { error: 'unauthorized' })
    }
    const unknownRoute = await api(server, '/nothing-here', { secret: 'wrong' })
    assert.equal(unknownRoute.status, 401, 'without the secret nothing is said, not even 404')

    const bad = [
      ['/documents/api%2Ferrors/updates', { method: 'POST', body: new Uint8Array([1, 2, 3, 200]) }, /malformed update/],
      ['/documents/api%2Ferrors/updates', { method: 'POST', body: new Uint8Array() }, /must be a Yjs update/],
      ['/documents/api%2Ferrors?format=json', { method: 'PUT', body: '{not json' }, /not JSON/],
      ['/documents/api%2Ferrors?format=json', { method: 'PUT', body: '[1]' }, /object of root names/],
      ['/documents/api%2Ferrors?format=json', { method: 'PUT', body: JSON.stringify({ t: { type: 'doc', content: [] } }) }, /root t is a Y.Text/],
      ['/documents/api%2Ferrors?format=json', { method: 'PUT', body: JSON.stringify({ d: { type: 'doc', content: [{ type: 'p', content: [{ type: 'text' }] }] } }) }, /d.content\[0\].content\[0\].text: expected a string/],
      ['/documents/api%2Ferrors?format=xml', { method: 'GET' }, /format/],
      ['/documents?limit=0', { method: 'GET' }, /limit/],
      ['/documents?cursor=zz', { method: 'GET' }, /cursor/],
    ]
    for (const [path, init, message] of bad) {
      const response = await api(server, path, init)
      assert.equal(response.status, 400, `${init.method} ${path}`)
      assert.match((await response.json()).error, message)
    }
    const tooLarge = await api(server, '/documents/api%2Ferrors/updates', { method: 'POST', body: new Uint8Array(70000) })
    assert.equal(tooLarge.status, 413)
    assert.ok((await tooLarge.json()).error)

    const missing = await api(server, '/documents/api%2Fnever-written?format=json')
    assert.equal(missing.status, 404)
    assert.match((await missing.json()).error, /never written/)
    const missingDelete = await api(server, '/documents/api%2Fnever-written', { method: 'DELETE' })
    assert.equal(missingDelete.status, 404)
    const noRoute = await api(server, '/documents/a/b/c')
    assert.equal(noRoute.status, 404)

    assert.deepEqual(await json(server, 'api/errors'), { t: 'kept' }, 'the document is untouched')

    const metrics = await (await fetch(`${server.http}/metrics`)).text()
    assert.match(metrics, /collab_server_api_requests_total\{route="apply",status="400"\} 2/)
    assert.match(metrics, /collab_server_api_requests_total\{route="other",status="401"\} 1/)
  } finally {
    await server.stop()
    server.cleanup()
  }
})

test('listing pages through documents by prefix; DELETE ends the sessions and forgets the document', async () => {
  const server = await new Server({ env: apiEnv }).start()
  try {
    for (const name of ['list/c', 'list/a', 'list/b', 'other/x']) {
      const response = await api(server, `/documents/${encodeURIComponent(name)}/updates`, { method: 'POST', body: textUpdate(name) })
      assert.equal(response.status, 200)
    }
    const first = await (await api(server, '/documents?prefix=list%2F&limit=2')).json()
    assert.deepEqual(first.documents.map((d) => d.name), ['list/a', 'list/b'])
    assert.ok(first.documents.every((d) => d.size > 0 && typeof d.updatedAt === 'string'), JSON.stringify(first))
    assert.ok(first.nextCursor)
    const second = await (await api(server, `/documents?prefix=list%2F&limit=2&cursor=${first.nextCursor}`)).json()
    assert.deepEqual(second.documents.map((d) => d.name), ['list/c'])
    assert.equal(second.nextCursor, null)

    const editor = hocuspocus(2, { url: server.url, name: 'list/a' })
    await synced(editor)
    append(editor, ' edited')
    await acknowledged(editor)
    const deleted = await api(server, '/documents/list%2Fa', { method: 'DELETE' })
    assert.equal(deleted.status, 200, await deleted.clone().text())
    assert.deepEqual(await deleted.json(), { name: 'list/a', deleted: true })
    await waitFor(() => editor.denied, 'the open provider is told the document is gone')
    assert.match(editor.denied, /deleted/)
    assert.equal((await api(server, '/documents/list%2Fa?format=json')).status, 404)
    const after = await (await api(server, '/documents?prefix=list%2F')).json()
    assert.deepEqual(after.documents.map((d) => d.name), ['list/b', 'list/c'])
  } finally {
    await server.stop()
    server.cleanup()
  }
})

const database = process.env.COLLAB_TEST_DATABASE_URL
const redis = process.env.COLLAB_TEST_REDIS_URL

test('across replicas: reads of a document open on another replica, a PUT and a DELETE relayed', { skip: !(database && redis) && 'needs COLLAB_TEST_DATABASE_URL and COLLAB_TEST_REDIS_URL (scripts/test.sh sets both)' }, async () => {
  const prefix = `collab-api-${process.pid}-${Date.now()}`
  const env = (id) => ({ ...apiEnv, DATABASE_URL: database, REDIS_URL: redis, COLLAB_SERVER_REDIS_PREFIX: prefix, COLLAB_SERVER_INSTANCE_ID: id })
  const a = await new Server({ env: env('api-a') }).start()
  const b = await new Server({ env: env('api-b') }).start()
  const name = `${prefix}/doc`
  const path = `/documents/${encodeURIComponent(name)}`
  try {
    const onA = hocuspocus(4, { url: a.url, name })
    await synced(onA)
    append(onA, 'written on A')
    await acknowledged(onA)
    // B has not loaded the document: it reads what A stored.
    assert.equal((await json(b, name)).t, 'written on A')

    const put = await api(b, `${path}?format=json`, { method: 'PUT', body: JSON.stringify({ t: 'written on A, then on B' }) })
    assert.equal(put.status, 200, await put.clone().text())
    await waitFor(() => onA.text.toString() === 'written on A, then on B', 'the PUT on B reaches the provider on A')

    const deleted = await api(b, path, { method: 'DELETE' })
    assert.equal(deleted.status, 200, await deleted.clone().text())
    await waitFor(() => onA.denied, 'the provider on A is told the document was deleted')
    destroyAll()
    await waitFor(async () => (await api(a, `${path}?format=json`)).status === 404, 'A forgets the document too')
    assert.equal((await api(b, `${path}?format=json`)).status, 404)
  } finally {
    for (const server of [a, b]) {
      await server.stop()
      server.cleanup()
    }
  }
})
