// Soak (not in CI): CLIENTS providers on DOCS documents edit for SECONDS, the server's RSS is
// sampled every 5 s, then every client leaves and the RSS is read again once the rooms have
// unloaded; twice. Prints baseline, and per wave peak and after-leaving RSS in MiB, and edits.
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
// Two waves: if the second leaves the server where the first did, what stays after leaving is
// the allocator keeping freed pages (glibc does), not a leak.
const waves = []
for (let wave = 0; wave < 2; wave++) {
  const all = []
  for (let i = 0; i < clients; i++) {
    all.push(hocuspocus(i % 2 ? 3 : 4, { url: server.url, name: `soak/${wave}/${i % docs}` }))
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
  waves.push({ edits, peak_mib: +peak.toFixed(1), after_leaving_mib: +rss().toFixed(1) })
}
console.log(JSON.stringify({ clients, seconds, docs, baseline_mib: +baseline.toFixed(1), waves }))
await server.stop()
server.cleanup()
process.exit(0)
