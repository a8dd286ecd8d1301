// Benchmark (not a test): does loading a large document stall fan-out on small ones?
// A writer on a small document edits every 10 ms; a subscriber on another socket records how
// long each edit takes to arrive (the writer's send time travels in the edit). Meanwhile a
// third client opens a large document that is not loaded (loading folds it, and its first sync
// encodes the whole state). Prints fan-out p50/p99/max before and during that load, and the
// load's duration. With the fold in spawn_blocking and the full-state encoding under
// block_in_place, the small document's fan-out must not wait for the large one.
//   COLLAB_SERVER_BIN=target/release/collab-server node bench/heavy-load.mjs [MB]
import { spawn } from 'node:child_process'
import fs from 'node:fs'

import { Server, destroyAll, hocuspocus, synced, waitFor } from '../lib/harness.mjs'

const megabytes = Number.parseInt(process.argv[2] ?? '50', 10)
const server = new Server({ args: ['--max-message-bytes', String(256 << 20)], env: { LOG_LEVEL: 'warn' } })
await server.start()

// The large document: `megabytes` MB of text in one update, stored, then unloaded.
{
  const big = hocuspocus(3, { url: server.url, name: 'large' })
  await synced(big)
  const chunk = 'x'.repeat(1 << 20)
  big.doc.transact(() => { for (let i = 0; i < megabytes; i++) big.text.insert(big.text.length, chunk) })
  await waitFor(() => !big.provider.hasUnsyncedChanges, 'the large document stored', 300000)
  big.destroy()
  await new Promise((resolve) => setTimeout(resolve, 1500)) // the room lingers 500 ms, then unloads
}

const writer = hocuspocus(3, { url: server.url, name: 'small' })
const reader = hocuspocus(3, { url: server.url, name: 'small' })
await synced(writer)
await synced(reader)
const samples = []
const map = reader.doc.getMap('bench')
map.observe(() => {
  const sent = map.get('sent')
  if (typeof sent === 'number') samples.push({ at: Date.now(), delay: performance.timeOrigin + performance.now() - sent })
})
const wmap = writer.doc.getMap('bench')
const timer = setInterval(() => wmap.set('sent', performance.timeOrigin + performance.now()), 10)
const quantiles = (list) => {
  const d = list.map((s) => s.delay).sort((a, b) => a - b)
  const q = (p) => d[Math.min(d.length - 1, Math.floor(p * d.length))]
  return { n: d.length, p50: q(0.5)?.toFixed(2), p99: q(0.99)?.toFixed(2), max: d.at(-1)?.toFixed(2) }
}
await new Promise((resolve) => setTimeout(resolve, 2000))
const baselineEnd = Date.now()
const started = Date.now()
// In another process: applying the large state would block this one's event loop.
await new Promise((resolve, reject) => {
  const child = spawn(process.execPath, [new URL('./open-document.mjs', import.meta.url).pathname, server.url, 'large'],
    { stdio: ['ignore', 'pipe', 'inherit'] })
  child.on('exit', (code) => code === 0 ? resolve() : reject(new Error(`opener exited ${code}`)))
})
const loaded = Date.now()
await new Promise((resolve) => setTimeout(resolve, 300))
clearInterval(timer)
const baseline = quantiles(samples.filter((s) => s.at < baselineEnd))
const during = quantiles(samples.filter((s) => s.at >= started && s.at <= loaded + 100))
const rss = fs.readFileSync(`/proc/${server.child.pid}/status`, 'utf8').match(/VmHWM:\s+(\d+)/)[1]
console.log(JSON.stringify({ megabytes, load_ms: loaded - started, fanout_before_ms: baseline, fanout_during_load_ms: during, server_peak_rss_mb: Math.round(rss / 1024) }))
destroyAll()
await server.stop()
server.cleanup()
