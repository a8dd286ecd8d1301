// Captures the frames real clients send, for the Rust golden-frame test
// (server/tests/golden/*.json). Run from tests/compat after `npm ci`:
//   node capture-golden.mjs
// A bare `ws` server records every binary frame and answers just enough for the provider to
// proceed (Authenticated after Auth; an empty Step2 after Step1).
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import { WebSocketServer } from 'ws'

import { Y, freePort, hocuspocus, destroyAll, ywebsocket, waitFor } from './lib/harness.mjs'

const out = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../server/tests/golden')
fs.mkdirSync(out, { recursive: true })

const varString = (s) => { const b = Buffer.from(s); return Buffer.concat([Buffer.from([b.length]), b]) }

async function capture (kind, connect) {
  const port = await freePort()
  const wss = new WebSocketServer({ port, host: '127.0.0.1' })
  const frames = []
  wss.on('connection', (ws) => {
    ws.on('message', (data) => {
      const bytes = Buffer.from(data)
      frames.push(bytes)
      if (kind === 'hocuspocus') {
        const nameLength = bytes[0]
        const address = bytes.subarray(0, 1 + nameLength)
        const type = bytes[1 + nameLength]
        if (type === 2) ws.send(Buffer.concat([address, Buffer.from([2, 2]), varString('read-write')]))
        if (type === 0 && bytes[2 + nameLength] === 0) {
          ws.send(Buffer.concat([address, Buffer.from([0, 0, 1, 0])]))
          ws.send(Buffer.concat([address, Buffer.from([0, 1, 2, 0, 0])]))
        }
      } else if (bytes[0] === 0 && bytes[1] === 0) {
        ws.send(Buffer.from([0, 1, 2, 0, 0]))
      }
    })
  })
  const client = connect(`ws://127.0.0.1:${port}`)
  await waitFor(() => client.synced, `${kind} client to sync against the capture server`)
  client.awareness.setLocalStateField('user', { name: 'golden' })
  client.text.insert(0, 'abc')
  // Until the edit itself (a Sync Update frame) has arrived.
  const isUpdate = (f) => kind === 'hocuspocus'
    ? f[1 + f[0]] === 0 && f[2 + f[0]] === 2
    : f[0] === 0 && f[1] === 2
  await waitFor(() => frames.some(isUpdate), 'the edit frame')
  await new Promise((resolve) => setTimeout(resolve, 200))
  destroyAll()
  wss.close()
  return frames.map((f) => ({ hex: f.toString('hex') }))
}

for (const version of [2, 3, 4]) {
  const frames = await capture('hocuspocus', (url) =>
    hocuspocus(version, { url, name: 'doc1', token: 'good', doc: new Y.Doc() }))
  fs.writeFileSync(path.join(out, `provider-${version}.json`), JSON.stringify(frames, null, 1) + '\n')
  console.log(`provider ${version}.x: ${frames.length} frames`)
}
const frames = await capture('yws', (url) => ywebsocket({ url, room: 'doc1' }))
fs.writeFileSync(path.join(out, 'ywebsocket.json'), JSON.stringify(frames, null, 1) + '\n')
console.log(`y-websocket: ${frames.length} frames`)
process.exit(0)
