// Soak (not in CI): CLIENTS providers on DOCS documents edit for SECONDS, the server's RSS is
// sampled every 5 s, then every client leaves and the RSS is read again once the rooms have
// unloaded. Prints baseline, peak and after, in MiB, and acknowledged edits.
//   node soak.mjs [CLIENTS=2000] [SECONDS=300] [DOCS=200]
import fs from 'node:fs'

import { Server, append, destroyAll, hocuspocus, synced, waitFor } from './lib/harness.mjs'

const [clients = 2000, seconds = 300, docs = 200] = process.argv.slice(2).map(Number)
const server = new Server({ args: ['--database-url', 'memory://'], env: { LOG_LEVEL: 'warn' } })
await server.start()
const rss = () => Number(fs.readFileSync(`/proc/${server.child.pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)[1]) / 1024
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
await sleep(500)
const baseline = rss()
const all = []
for (let i = 0; i < clients; i++) {
  all.push(hocuspocus(i % 2 ? 3 : 4, { url: server.url, name: `soak/${i % docs}` }))
  if (i % 100 === 99) await waitFor(() => all.every((c) => c.synced), 'clients to sync', 60000)
}
await waitFor(() => all.every((c) => c.synced), 'clients to sync', 60000)
const samples = []
const sampler = setInterval(() => samples.push(rss()), 5000)
let edits = 0
const editor = setInterval(() => {
  // Each client edits about every 2 s.
  for (let k = 0; k < clients / 20; k++) { append(all[Math.floor(Math.random() * clients)], 'x'); edits++ }
}, 100)
await sleep(seconds * 1000)
clearInterval(editor)
await waitFor(() => all.every((c) => !c.provider.hasUnsyncedChanges), 'every edit acknowledged', 60000)
clearInterval(sampler)
const peak = Math.max(...samples, rss())
destroyAll()
await sleep(5000)
const after = rss()
console.log(JSON.stringify({ clients, seconds, docs, edits, rss_mib: { baseline: +baseline.toFixed(1), peak: +peak.toFixed(1), after_leaving: +after.toFixed(1) } }))
await server.stop()
server.cleanup()
process.exit(0)
