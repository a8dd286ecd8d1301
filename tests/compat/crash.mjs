// Crash rounds: several clients on several documents edit a collab-server with a small
// COLLAB_SERVER_COMPACT_AFTER while providers come and go (rooms unload and reload), the server
// is killed with SIGKILL at a random moment and restarted, and every edit the server had
// acknowledged is looked for. Prints acknowledged edits lost per rounds run; exits 1 on any.
//
//   node crash.mjs ROUNDS [sqlite|postgres|replicas ...]
//
// postgres needs COLLAB_TEST_DATABASE_URL; replicas needs it and COLLAB_TEST_REDIS_URL (two
// replicas on one database and one Redis: one is killed, its clients' edits are read back
// from the other). A mode whose service is missing is skipped with a message.
import { Server, destroyAll, hocuspocus, synced, waitFor } from './lib/harness.mjs'

// A provider destroyed while its socket is still connecting makes `ws` emit an error nobody
// listens to; that is this script's churn, not a server fault.
process.on('uncaughtException', (error) => {
  if (/closed before the connection was established/.test(error.message)) return
  console.error(error)
  process.exit(2)
})

const rounds = Number.parseInt(process.argv[2] ?? '3', 10)
const modes = process.argv.slice(3).length ? process.argv.slice(3) : ['sqlite', 'postgres', 'replicas']
const database = process.env.COLLAB_TEST_DATABASE_URL
const redis = process.env.COLLAB_TEST_REDIS_URL
const DOCUMENTS = 3
const CLIENTS_PER_DOCUMENT = 2

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const random = (lo, hi) => lo + Math.floor(Math.random() * (hi - lo))

/**
 * A 2.x/3.x provider (one Update and one SyncStatus per edit) counting its acknowledgements.
 * The first SyncStatus answers the handshake's Step2 (sent before any edit), not an edit.
 */
function writer (url, name, tag) {
  const client = hocuspocus(random(2, 4), { url, name })
  client.sent = 0
  client.decrements = 0
  Object.defineProperty(client, 'acked', { get: () => Math.max(0, client.decrements - 1) })
  client.tag = tag
  const provider = client.provider
  const decrement = provider.decrementUnsyncedChanges.bind(provider)
  provider.decrementUnsyncedChanges = () => { client.decrements++; decrement() }
  return client
}

async function round (mode, index) {
  const prefix = `crash-${process.pid}-${mode}-${index}`
  const env = (id) => {
    const e = { COLLAB_SERVER_COMPACT_AFTER: '5' }
    if (mode !== 'sqlite') e.DATABASE_URL = database
    if (mode === 'replicas') Object.assign(e, { REDIS_URL: redis, COLLAB_SERVER_REDIS_PREFIX: prefix, COLLAB_SERVER_INSTANCE_ID: id })
    return e
  }
  const victim = await new Server({ env: env('victim') }).start()
  const survivor = mode === 'replicas' ? await new Server({ env: env('survivor') }).start() : null
  const names = Array.from({ length: DOCUMENTS }, (_, d) => `${prefix}/doc-${d}`)
  // Every acknowledged edit, by document: `<tag:n>` for n < acked at the kill.
  const acked = new Map(names.map((n) => [n, []]))
  const live = []
  let serial = 0
  const spawn = (name) => {
    const client = writer(victim.url, name, `w${serial++}`)
    live.push({ name, client })
    return client
  }
  for (const name of names) for (let c = 0; c < CLIENTS_PER_DOCUMENT; c++) spawn(name)
  for (const { client } of live) await synced(client, 'writer sync')
  const retire = (entry) => {
    acked.get(entry.name).push({ tag: entry.client.tag, count: entry.client.acked })
    entry.client.destroy()
  }
  const timer = setInterval(() => {
    for (const { client } of live) {
      if (client.synced) client.text.insert(client.text.length, `<${client.tag}:${client.sent++}>`)
    }
  }, 2)
  // Providers leave and arrive (a room unloads when its last one leaves), then the kill.
  const deadline = Date.now() + random(300, 1500)
  while (Date.now() < deadline) {
    await sleep(random(20, 120))
    const at = random(0, live.length)
    const [entry] = live.splice(at, 1)
    retire(entry)
    if (Math.random() < 0.5) await sleep(random(0, 600)) // sometimes long enough to unload
    spawn(entry.name)
  }
  await victim.kill9()
  clearInterval(timer)
  await sleep(200) // acknowledgements already in the sockets' buffers
  for (const entry of live.splice(0)) retire(entry)
  destroyAll()
  let reader = survivor
  if (!reader) reader = await victim.start()
  let lost = 0
  for (const name of names) {
    const check = hocuspocus(4, { url: reader.url, name })
    await synced(check, 'reader sync')
    const text = check.text.toString()
    for (const { tag, count } of acked.get(name)) {
      for (let n = 0; n < count; n++) if (!text.includes(`<${tag}:${n}>`)) lost++
    }
    check.destroy()
  }
  const total = [...acked.values()].flat().reduce((sum, { count }) => sum + count, 0)
  destroyAll()
  for (const server of [victim, survivor]) {
    if (!server) continue
    await server.stop()
    server.cleanup()
  }
  return { lost, total }
}

let failed = false
for (const mode of modes) {
  if (mode !== 'sqlite' && !database) { console.log(`${mode}: skipped (COLLAB_TEST_DATABASE_URL is not set)`); continue }
  if (mode === 'replicas' && !redis) { console.log(`${mode}: skipped (COLLAB_TEST_REDIS_URL is not set)`); continue }
  let lost = 0
  let total = 0
  for (let i = 0; i < rounds; i++) {
    const outcome = await round(mode, i)
    lost += outcome.lost
    total += outcome.total
    if (outcome.lost) console.log(`${mode}: round ${i}: ${outcome.lost} of ${outcome.total} acknowledged edits lost`)
  }
  console.log(`${mode}: ${lost} acknowledged edits lost of ${total} in ${rounds} rounds`)
  if (lost) failed = true
}
await waitFor(() => true, 'nothing')
process.exit(failed ? 1 : 0)
