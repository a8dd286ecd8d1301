// PostgreSQL persistence against a real server (COLLAB_TEST_DATABASE_URL, set by scripts/test.sh):
// the seed's table written by Node loads unchanged, acknowledged edits survive kill -9, two
// replicas on one database never lose each other's edits, and a database outage loses nothing.
import assert from 'node:assert/strict'
import { after, afterEach, before, test } from 'node:test'
import { execSync } from 'node:child_process'

import pg from 'pg'

import { Server, Y, acknowledged, append, destroyAll, hocuspocus, checkKill9KeepsAcknowledgedEdits, synced, waitFor } from '../lib/harness.mjs'

const baseUrl = process.env.COLLAB_TEST_DATABASE_URL
if (!baseUrl) throw new Error('COLLAB_TEST_DATABASE_URL is not set: run the suite through scripts/test.sh')

// A database of our own, so the seed's table starts exactly as the Node server left it.
const database = `collab_compat_${process.pid}_${Date.now()}`
const url = (() => { const u = new URL(baseUrl); u.pathname = `/${database}`; return u.toString() })()
let admin
let db

before(async () => {
  admin = new pg.Client({ connectionString: baseUrl })
  await admin.connect()
  await admin.query(`CREATE DATABASE ${database}`)
  db = new pg.Client({ connectionString: url })
  await db.connect()
  // Exactly the seed's schema (shared/seeds/000: the Node server's Database extension).
  await db.query('CREATE TABLE documents (name TEXT PRIMARY KEY, content BYTEA, updated_at TIMESTAMPTZ DEFAULT NOW())')
})
afterEach(() => destroyAll())
after(async () => {
  await db?.end()
  await admin?.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`)
  await admin?.end()
})

const startServer = (extra = {}) => new Server({ env: { DATABASE_URL: url, ...extra } }).start()

/** The document as the Node server would load it: Y.applyUpdate(doc, row.content). */
async function nodeView (name) {
  const { rows } = await db.query('SELECT content FROM documents WHERE name = $1', [name])
  const doc = new Y.Doc()
  if (rows[0]?.content) Y.applyUpdate(doc, rows[0].content)
  return doc.getText('t').toString()
}

test('a row written by the Node server loads unchanged, and the row stays readable by Node', async () => {
  const seedDoc = new Y.Doc()
  seedDoc.getText('t').insert(0, 'written by node;')
  // What @hocuspocus/extension-database's store() upserts: Y.encodeStateAsUpdate(document).
  await db.query(
    'INSERT INTO documents (name, content) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET content = $2',
    ['seed/doc', Buffer.from(Y.encodeStateAsUpdate(seedDoc))])
  const server = await startServer()
  try {
    const client = hocuspocus(2, { url: server.url, name: 'seed/doc' })
    await synced(client)
    await waitFor(() => client.text.toString() === 'written by node;', 'the seed row content')
    append(client, 'edited by collab;')
    await acknowledged(client)
    destroyAll()
    await server.stop() // unloading folds the log into documents.content
    assert.equal(await nodeView('seed/doc'), 'written by node;edited by collab;')
  } finally {
    await server.stop()
    server.cleanup()
  }
})

test('every acknowledged edit survives kill -9 in the middle of a stream of edits', async () => {
  const server = await startServer()
  try {
    await checkKill9KeepsAcknowledgedEdits(server, 'pg/kill9', 3, 4)
  } finally {
    await server.stop()
    server.cleanup()
  }
})

test('two replicas on one database keep both sets of edits through compaction', async () => {
  // Compact after every row, so both replicas fold the log again and again.
  const a = await startServer({ COLLAB_SERVER_COMPACT_AFTER: '1' })
  const b = await startServer({ COLLAB_SERVER_COMPACT_AFTER: '1' })
  try {
    const onA = hocuspocus(4, { url: a.url, name: 'pg/replicas' })
    const onB = hocuspocus(2, { url: b.url, name: 'pg/replicas' })
    await synced(onA)
    await synced(onB)
    for (let i = 0; i < 20; i++) {
      append(onA, `<a${i}>`)
      append(onB, `<b${i}>`)
    }
    await acknowledged(onA)
    await acknowledged(onB)
    destroyAll()
    await a.stop()
    await b.stop()
    const text = await nodeView('pg/replicas')
    for (let i = 0; i < 20; i++) {
      assert.ok(text.includes(`<a${i}>`), `replica A's edit ${i} in ${text}`)
      assert.ok(text.includes(`<b${i}>`), `replica B's edit ${i} in ${text}`)
    }
    const { rows } = await db.query("SELECT count(*)::int AS n FROM document_updates WHERE name = 'pg/replicas'")
    assert.equal(rows[0].n, 0, 'every log row was folded into the snapshot')
  } finally {
    await a.stop()
    await b.stop()
    a.cleanup()
    b.cleanup()
  }
})

const outage = process.env.COLLAB_TEST_PG_STOP && process.env.COLLAB_TEST_PG_START
test('a database outage loses nothing, and edits are acknowledged once stored',
  { skip: !outage && 'needs the throwaway PostgreSQL of scripts/test.sh' }, async () => {
    const server = await startServer()
    try {
      const writer = hocuspocus(4, { url: server.url, name: 'pg/outage' })
      const watcher = hocuspocus(2, { url: server.url, name: 'pg/outage' })
      await synced(writer)
      await synced(watcher)
      append(writer, 'before;')
      await acknowledged(writer)

      await db.end()
      await admin.end()
      execSync(process.env.COLLAB_TEST_PG_STOP, { stdio: 'ignore' })
      await waitFor(async () => (await fetch(`${server.http}/ready`)).status === 503, '/ready to report 503')
      append(writer, 'during;')
      // Connected clients still see each other's edits, served from memory…
      await waitFor(() => watcher.text.toString() === 'before;during;', 'the edit to reach the watcher')
      // …but the edit is not acknowledged while it cannot be stored.
      assert.equal(writer.provider.hasUnsyncedChanges, true)

      execSync(process.env.COLLAB_TEST_PG_START, { stdio: 'ignore' })
      admin = new pg.Client({ connectionString: baseUrl })
      await admin.connect()
      db = new pg.Client({ connectionString: url })
      await db.connect()
      await acknowledged(writer, 'the edit acknowledged after the database came back')
      await waitFor(async () => (await fetch(`${server.http}/ready`)).status === 200, '/ready to recover')
      destroyAll()
      await server.kill9()
      await server.start()
      const reader = hocuspocus(3, { url: server.url, name: 'pg/outage' })
      await synced(reader)
      await waitFor(() => reader.text.toString() === 'before;during;', 'both edits after a crash')
    } finally {
      await server.stop()
      server.cleanup()
    }
  })
