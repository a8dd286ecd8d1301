// Benchmark (not a test): PostgreSQL bytes written per small edit on a 1 MB document, ours vs a
// full-state store like the seed's Node server, measured as WAL bytes (pg_current_wal_lsn).
// Also the time from an edit to its acknowledgement (SyncStatus) with PostgreSQL storage.
//   COLLAB_BENCH_DATABASE_URL=postgres://… COLLAB_SERVER_BIN=… node bench/pg-writes.mjs [edits]
import crypto from 'node:crypto'

import pg from 'pg'

import { Server, Y, acknowledged, append, destroyAll, hocuspocus, synced, waitFor } from '../lib/harness.mjs'

const edits = parseInt(process.argv[2] ?? '200', 10)
const baseUrl = process.env.COLLAB_BENCH_DATABASE_URL
if (!baseUrl) throw new Error('set COLLAB_BENCH_DATABASE_URL')
const database = `collab_bench_${process.pid}`
const url = (() => { const u = new URL(baseUrl); u.pathname = `/${database}`; return u.toString() })()
const admin = new pg.Client({ connectionString: baseUrl })
await admin.connect()
await admin.query(`CREATE DATABASE ${database}`)
const db = new pg.Client({ connectionString: url })
await db.connect()
const lsn = async () => (await db.query('SELECT pg_current_wal_lsn() AS l')).rows[0].l
const walSince = async (from) => Number((await db.query('SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1) AS d', [from])).rows[0].d)
const percentile = (values, p) => { const s = [...values].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p / 100 * s.length))] }
// Incompressible text, so TOAST compression does not hide the full-state cost.
const megabyte = crypto.randomBytes(512 * 1024).toString('hex')

const server = await new Server({ env: { DATABASE_URL: url, LOG_LEVEL: 'warn' } }).start()
const client = hocuspocus(4, { url: server.url, name: 'bench/1mb' })
await synced(client)
append(client, megabyte)
await acknowledged(client)
// Let the room fold the log (compaction happens on unload): reconnect.
destroyAll()
await new Promise((resolve) => setTimeout(resolve, 1500))
const writer = hocuspocus(4, { url: server.url, name: 'bench/1mb' })
await synced(writer)
await waitFor(() => writer.text.length === megabyte.length, 'the 1 MB document')

const ackMs = []
let from = await lsn()
// Resolves when the provider's unsynced-changes counter returns to 0 (event, not polling).
const nextAck = () => new Promise((resolve) => {
  const handler = (n) => {
    if ((n?.number ?? n) === 0) { writer.provider.off('unsyncedChanges', handler); resolve() }
  }
  writer.provider.on('unsyncedChanges', handler)
})
for (let i = 0; i < edits; i++) {
  const started = performance.now()
  const acked = nextAck()
  append(writer, `<${i}>`)
  await acked
  ackMs.push(performance.now() - started)
}
const ours = (await walSince(from)) / edits
const state = Buffer.from(Y.encodeStateAsUpdate(writer.doc))
destroyAll()
await server.stop()

// The seed's store: upsert the whole state on every store.
await db.query('CREATE TABLE seed_documents (name TEXT PRIMARY KEY, content BYTEA, updated_at TIMESTAMPTZ)')
from = await lsn()
for (let i = 0; i < Math.min(edits, 50); i++) {
  await db.query('INSERT INTO seed_documents (name, content, updated_at) VALUES ($1, $2, now()) ON CONFLICT (name) DO UPDATE SET content = $2, updated_at = now()', ['bench/1mb', state])
}
const fullState = (await walSince(from)) / Math.min(edits, 50)
console.log(JSON.stringify({
  label: 'collab-postgres-writes',
  document_bytes: state.length,
  edits,
  wal_bytes_per_edit_ours: Math.round(ours),
  wal_bytes_per_store_full_state: Math.round(fullState),
  ack_ms_p50: +percentile(ackMs, 50).toFixed(2),
  ack_ms_p99: +percentile(ackMs, 99).toFixed(2),
}))
server.cleanup()
await db.end()
await admin.query(`DROP DATABASE ${database} WITH (FORCE)`)
await admin.end()
process.exit(0)
