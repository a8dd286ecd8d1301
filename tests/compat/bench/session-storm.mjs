// Reconnect storm of 4.x providers with `sessionAwareness` (issue 22, goal 2): each provider
// addresses the document as `name\0sessionId`, so no two sessions share an address. One
// provider writes a document of about 1 MB, then CLIENTS fresh providers open it at once.
// Prints one JSON line: the server's peak RSS growth (VmHWM reset before the storm), its CPU
// seconds, and the time from the storm's start until each provider was synced.
//
//   node bench/session-storm.mjs URL SERVER_PID [CLIENTS=200] [BYTES=1000000]
import { readFileSync, writeFileSync } from 'node:fs'
import * as provider4 from 'provider4'

import { hocuspocus, synced, acknowledged, destroyAll } from '../lib/harness.mjs'

const [url, pidArg, clientsArg = '200', bytesArg = '1000000'] = process.argv.slice(2)
const pid = Number(pidArg)
const clients = Number(clientsArg)
const bytes = Number(bytesArg)
if (!url || !pid) {
  console.error('usage: node bench/session-storm.mjs URL SERVER_PID [CLIENTS] [BYTES]')
  process.exit(2)
}

const statusKb = (key) => {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith(`${key}:`))
  return Number(line.split(/\s+/)[1])
}
const cpuTicks = () => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return Number(fields[11]) + Number(fields[12])
}

const name = `session-storm-${Date.now()}`
const writer = hocuspocus(4, { url, name })
await synced(writer, 'the writer')
// Many small inserts: a document with history, as a long editing session leaves it.
const chunk = 'lorem ipsum dolor sit amet '.repeat(40)
for (let written = 0; written < bytes; written += chunk.length) {
  writer.text.insert(writer.text.length, chunk)
}
await acknowledged(writer, 'the writer\'s document stored')
writer.destroy()
await new Promise((resolve) => setTimeout(resolve, 1000))

writeFileSync(`/proc/${pid}/clear_refs`, '5')
const rssBefore = statusKb('VmRSS')
const cpuBefore = cpuTicks()
const started = performance.now()
const { HocuspocusProvider, HocuspocusProviderWebsocket } = provider4
const times = []
await Promise.all(Array.from({ length: clients }, () => new Promise((resolve, reject) => {
  const websocketProvider = new HocuspocusProviderWebsocket({ url, WebSocketPolyfill: WebSocket, quiet: true })
  const provider = new HocuspocusProvider({
    name,
    websocketProvider,
    sessionAwareness: true,
    onSynced: () => {
      times.push(performance.now() - started)
      resolve()
    },
  })
  provider.attach?.()
  setTimeout(() => reject(new Error('a provider did not sync within 60 s')), 60_000).unref()
})))
const all = performance.now() - started
await new Promise((resolve) => setTimeout(resolve, 500))
const hwm = statusKb('VmHWM')
const cpu = (cpuTicks() - cpuBefore) / 100
times.sort((a, b) => a - b)
const pct = (p) => Math.round(times[Math.min(times.length - 1, Math.floor(p * times.length))])
console.log(JSON.stringify({
  clients,
  peak_growth_mb: Math.round((hwm - rssBefore) / 102.4) / 10,
  rss_before_mb: Math.round(rssBefore / 102.4) / 10,
  cpu_s: cpu,
  synced_p50_ms: pct(0.5),
  synced_p99_ms: pct(0.99),
  all_synced_ms: Math.round(all),
}))
destroyAll()
process.exit(0)
