// Idle loaded documents (issue 22, goal 5): DOCS small documents held open by 4.x providers
// multiplexed over SOCKETS sockets (a Hocuspocus socket carries many documents), each with one
// short edit, then left idle. Prints one JSON line: the server's RSS before and after, and per
// document.
//
//   node bench/idle-documents.mjs URL SERVER_PID [DOCS=100000] [SOCKETS=500]
//
// The server needs --max-documents-per-connection of at least DOCS / SOCKETS.
import { readFileSync } from 'node:fs'
import * as Y from 'yjs'
import * as provider4 from 'provider4'
import WebSocket from 'ws'

const [url, pidArg, docsArg = '100000', socketsArg = '500'] = process.argv.slice(2)
const pid = Number(pidArg)
const docs = Number(docsArg)
const sockets = Number(socketsArg)
if (!url || !pid) {
  console.error('usage: node bench/idle-documents.mjs URL SERVER_PID [DOCS] [SOCKETS]')
  process.exit(2)
}
const rssKb = () => Number(readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)[1])
const { HocuspocusProvider, HocuspocusProviderWebsocket } = provider4

const before = rssKb()
const started = performance.now()
const prefix = `idle-${Date.now()}`
const websockets = Array.from({ length: sockets }, () =>
  new HocuspocusProviderWebsocket({ url, WebSocketPolyfill: WebSocket, quiet: true }))
let synced = 0
const batch = 2000
for (let first = 0; first < docs; first += batch) {
  const opened = []
  for (let i = first; i < Math.min(docs, first + batch); i++) {
    const doc = new Y.Doc()
    opened.push(new Promise((resolve, reject) => {
      const provider = new HocuspocusProvider({
        name: `${prefix}-${i}`,
        document: doc,
        websocketProvider: websockets[i % sockets],
        onSynced: () => {
          doc.getText('t').insert(0, `document ${i}`)
          synced++
          resolve()
        },
        onAuthenticationFailed: ({ reason }) => reject(new Error(`denied: ${reason}`)),
      })
      provider.attach?.()
    }))
  }
  await Promise.all(opened)
}
const took = (performance.now() - started) / 1000
// Let the edits be stored and the rooms settle into idleness.
await new Promise((resolve) => setTimeout(resolve, 5000))
const after = rssKb()
console.log(JSON.stringify({
  docs,
  sockets,
  synced,
  open_s: Math.round(took * 10) / 10,
  rss_before_mb: Math.round(before / 102.4) / 10,
  rss_after_mb: Math.round(after / 102.4) / 10,
  // The sockets' share is small (SOCKETS of them); reported per document all the same.
  rss_per_document_kb: Math.round((after - before) / docs * 100) / 100,
}))
process.exit(0)
