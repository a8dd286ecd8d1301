// The ECS migration window (docs/ecs.md): during the rolling deployment from the Node service,
// the seed's own Node server (tests/compat/seed-fleet: @hocuspocus/server 2.15.3 with
// extension-redis and extension-database on `documents`) and collab-server run side by side on
// one PostgreSQL database and one Redis, as Node tasks and collab-server tasks do. Real
// @hocuspocus/provider clients on either side.
//
// What it shows: edits cross both ways through Redis; both sides write the same `documents`
// row; a Node task (a rollback) reads what collab-server stored on SIGTERM; and the one thing
// that does not hold: after a kill -9, edits collab-server acknowledged sit in its update log
// (`document_updates`), which the Node server never reads, until a collab-server task loads the
// document again.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { after, afterEach, before, test } from 'node:test'

import pg from 'pg'

import { Server, Y, acknowledged, append, destroyAll, freePort, hocuspocus, synced, waitFor } from '../lib/harness.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
const fleet = path.resolve(here, '../seed-fleet')
const baseUrl = process.env.COLLAB_TEST_DATABASE_URL
const redis = process.env.COLLAB_TEST_REDIS_URL
if (!baseUrl) throw new Error('COLLAB_TEST_DATABASE_URL is not set: run the suite through scripts/test.sh')
if (!redis) throw new Error('COLLAB_TEST_REDIS_URL is not set: run the suite through scripts/test.sh')

const installed = fs.existsSync(path.join(fleet, 'node_modules', '@hocuspocus', 'extension-redis'))
const skip = !installed &&
  'tests/compat/seed-fleet/node_modules is missing: run `npm ci` in tests/compat/seed-fleet (scripts/test.sh does)'

/** The seed's Node Hocuspocus server as a child process. */
class SeedServer {
  constructor (env) {
    this.env = env
    this.output = ''
  }

  get url () { return `ws://127.0.0.1:${this.port}` }

  async start () {
    this.port ??= await freePort()
    const child = spawn(process.execPath, [path.join(fleet, 'server.mjs')], {
      cwd: fleet,
      env: { ...process.env, PORT: String(this.port), ...this.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    this.child = child
    this.exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))
    const collect = (chunk) => { this.output += chunk.toString() }
    child.stdout.on('data', collect)
    child.stderr.on('data', collect)
    await waitFor(async () => {
      if (child.exitCode !== null) throw new Error(`seed server exited early (${child.exitCode}):\n${this.output}`)
      try { return (await fetch(`http://127.0.0.1:${this.port}/`)).status === 200 } catch { return false }
    }, `the seed server on port ${this.port}`, 30000)
    return this
  }

  /** SIGTERM: Hocuspocus stores every loaded document, then exits. */
  async stop () {
    if (!this.child || this.child.exitCode !== null) return this.exited
    this.child.kill('SIGTERM')
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 20000)
    const status = await this.exited
    clearTimeout(timer)
    return status
  }
}

const database = `collab_migration_${process.pid}`
const url = (() => { const u = new URL(baseUrl); u.pathname = `/${database}`; return u.toString() })()
const prefix = `collab-migration-${process.pid}-${Date.now()}`
let admin
let db

before(async () => {
  if (skip) return
  admin = new pg.Client({ connectionString: baseUrl })
  await admin.connect()
  await admin.query(`CREATE DATABASE ${database}`)
  db = new pg.Client({ connectionString: url })
  await db.connect()
  // The seed's table, as its Terraform-era database has it.
  await db.query('CREATE TABLE documents (name TEXT PRIMARY KEY, content BYTEA, updated_at TIMESTAMPTZ DEFAULT NOW())')
})

after(async () => {
  await db?.end()
  await admin?.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`)
  await admin?.end()
})

afterEach(() => destroyAll())

const seed = () => new SeedServer({ DATABASE_URL: url, REDIS_URL: redis, REDIS_PREFIX: prefix }).start()
const collab = (id) => new Server({
  env: { DATABASE_URL: url, REDIS_URL: redis, COLLAB_SERVER_REDIS_PREFIX: prefix, COLLAB_SERVER_INSTANCE_ID: id },
}).start()

async function stopAll (...servers) {
  for (const server of servers) {
    await server?.stop()
    server?.cleanup?.()
  }
}

/** The text of the `documents` row (what a Node task's fetch returns), or null. */
async function storedText (name) {
  const { rows } = await db.query('SELECT content FROM documents WHERE name = $1', [name])
  if (!rows[0]?.content) return null
  const doc = new Y.Doc()
  Y.applyUpdate(doc, rows[0].content)
  return doc.getText('t').toString()
}

async function logRows (name) {
  const { rows } = await db.query('SELECT count(*)::int AS n FROM document_updates WHERE name = $1', [name])
  return rows[0].n
}

test('edits cross between a Node task and a collab-server task through Redis, both ways', { skip }, async () => {
  const node = await seed()
  const rust = await collab('migration-a')
  try {
    const onNode = hocuspocus(2, { url: node.url, name: 'migration/live' })
    const onRust = hocuspocus(2, { url: rust.url, name: 'migration/live' })
    const onRust4 = hocuspocus(4, { url: rust.url, name: 'migration/live' })
    await synced(onNode)
    await synced(onRust)
    await synced(onRust4)
    append(onNode, 'node1;')
    await waitFor(() => onRust.text.toString() === 'node1;' && onRust4.text.toString() === 'node1;',
      'the Node task\'s edit on collab-server')
    append(onRust, 'rust1;')
    await waitFor(() => onNode.text.toString() === 'node1;rust1;', 'collab-server\'s edit on the Node task')
    append(onRust4, 'rust4;')
    append(onNode, 'node2;')
    const same = () => onNode.text.toString() === onRust.text.toString() && onRust.text.toString() === onRust4.text.toString()
    await waitFor(() => same() && onNode.text.toString().length === 'node1;rust1;rust4;node2;'.length,
      'all three clients to converge')
    onNode.awareness.setLocalStateField('user', { name: 'on-node' })
    await waitFor(() => [...onRust.awareness.getStates().values()].some((s) => s.user?.name === 'on-node'),
      'the Node client\'s awareness on collab-server')
    onRust4.awareness.setLocalStateField('user', { name: 'on-collab' })
    await waitFor(() => [...onNode.awareness.getStates().values()].some((s) => s.user?.name === 'on-collab'),
      'the collab-server client\'s awareness on the Node task')
    await acknowledged(onRust)
    const text = onNode.text.toString()

    // Both sides store the one document in the one row: the Node task its whole state
    // (debounced, and when the document unloads), collab-server its update log, folded into
    // documents.content when the task stops (SIGTERM, as ECS stops it at the end of the window).
    destroyAll()
    await waitFor(async () => (await storedText('migration/live')) === text, 'the Node task to store every edit')
    await node.stop()
    assert.ok(await logRows('migration/live') > 0, 'collab-server logged its clients\' edits')
    await rust.stop()
    assert.equal(await logRows('migration/live'), 0, 'collab-server folded its log into the row on SIGTERM')
    assert.equal(await storedText('migration/live'), text)
  } finally {
    await stopAll(node, rust)
  }
})

test('a document written by one side alone is the other side\'s to read', { skip }, async () => {
  const node = await seed()
  const rust = await collab('migration-b')
  try {
    // Written on the Node task only (collab-server never loaded it): collab-server reads the row.
    const writer = hocuspocus(2, { url: node.url, name: 'migration/from-node' })
    await synced(writer)
    append(writer, 'stored by node;')
    destroyAll()
    await waitFor(async () => (await storedText('migration/from-node')) === 'stored by node;', 'the Node store')
    const reader = hocuspocus(4, { url: rust.url, name: 'migration/from-node' })
    await synced(reader)
    assert.equal(reader.text.toString(), 'stored by node;')
    append(reader, 'and by collab;')
    await acknowledged(reader)
    destroyAll()
    await waitFor(async () => (await storedText('migration/from-node')) === 'stored by node;and by collab;',
      'collab-server\'s fold into the Node row')
  } finally {
    await stopAll(node, rust)
  }
})

test('rollback: a Node task reads what collab-server stored before SIGTERM', { skip }, async () => {
  const rust = await collab('migration-c')
  let node
  try {
    const writer = hocuspocus(4, { url: rust.url, name: 'migration/rollback' })
    await synced(writer)
    for (let i = 0; i < 20; i++) append(writer, `<${i}>`)
    await acknowledged(writer)
    const text = writer.text.toString()
    // ECS stops the collab-server task (the rollback deployment): SIGTERM with the client still on.
    await rust.stop()
    assert.equal(await logRows('migration/rollback'), 0, 'shutdown folds the log into documents.content')
    assert.equal(await storedText('migration/rollback'), text)
    destroyAll()
    node = await seed()
    const reader = hocuspocus(2, { url: node.url, name: 'migration/rollback' })
    await synced(reader)
    assert.equal(reader.text.toString(), text)
  } finally {
    await stopAll(node, rust)
  }
})

test('after a kill -9, acknowledged edits wait in collab-server\'s log until a collab-server task loads the document', { skip }, async () => {
  let rust = await collab('migration-d')
  let node
  try {
    const writer = hocuspocus(4, { url: rust.url, name: 'migration/killed' })
    await synced(writer)
    append(writer, 'acknowledged;')
    await acknowledged(writer)
    await rust.kill9()
    destroyAll()
    assert.ok(await logRows('migration/killed') > 0, 'the edit is durable, in document_updates')
    // What does NOT hold: the Node server reads only documents.content, so it misses the edit.
    node = await seed()
    const onNode = hocuspocus(2, { url: node.url, name: 'migration/killed' })
    await synced(onNode)
    assert.equal(onNode.text.toString(), '')
    // A collab-server task that loads the document (snapshot + log) publishes it over Redis:
    // the Node task gets the edit, and the room's unload folds it into the row.
    rust.cleanup()
    rust = await collab('migration-d2')
    const onRust = hocuspocus(2, { url: rust.url, name: 'migration/killed' })
    await synced(onRust)
    assert.equal(onRust.text.toString(), 'acknowledged;')
    await waitFor(() => onNode.text.toString() === 'acknowledged;', 'the logged edit on the Node task, through Redis')
    destroyAll()
    await rust.stop()
    assert.equal(await logRows('migration/killed'), 0, 'the SIGTERM folds the log')
    await waitFor(async () => (await storedText('migration/killed')) === 'acknowledged;', 'the row to hold the edit')
  } finally {
    await stopAll(node, rust)
  }
})
