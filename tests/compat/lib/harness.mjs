// Test harness: starts the collab-server binary, makes tokens, and creates real clients
// (@hocuspocus/provider 2.x, 3.x, 4.x and y-websocket's WebsocketProvider).
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import WebSocket from 'ws'
import * as Y from 'yjs'
import * as provider2 from 'provider2'
import * as provider3 from 'provider3'
import * as provider4 from 'provider4'
import { WebsocketProvider } from 'y-websocket'

export { Y }

// Node 20 has no global WebSocket; provider 2.x ignores WebSocketPolyfill when given a `url`.
globalThis.WebSocket ??= WebSocket

const here = path.dirname(fileURLToPath(import.meta.url))
const providers = { 2: provider2, 3: provider3, 4: provider4 }

export function serverBinary () {
  const bin = process.env.COLLAB_SERVER_BIN ?? path.resolve(here, '../../../target/debug/collab-server')
  if (!fs.existsSync(bin)) {
    throw new Error(`collab-server binary not found at ${bin}: build it (cargo build) or set COLLAB_SERVER_BIN`)
  }
  return bin
}

export async function freePort () {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

/** Runs `command` to completion and resolves with its standard output (rejects unless it exits 0). */
export function output (command, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.on('data', (chunk) => { out += chunk })
    child.on('exit', (code) => code === 0 ? resolve(out) : reject(new Error(`${command} exited ${code}`)))
  })
}

/** Polls `predicate` until it is truthy; fails with `what` after `ms`. */
export async function waitFor (predicate, what, ms = 15000) {
  const deadline = Date.now() + ms
  for (;;) {
    const value = await predicate()
    if (value) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}

/** A collab-server child process on a free port with its own data directory. */
export class Server {
  constructor ({ env = {}, args = [] } = {}) {
    this.env = env
    this.args = args
    this.dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'collab-compat-'))
    this.output = ''
    this.child = null
  }

  get url () { return `ws://127.0.0.1:${this.port}` }
  get http () { return `http://127.0.0.1:${this.port}` }

  async start () {
    this.port ??= await freePort()
    const child = spawn(serverBinary(), [
      '--host', '127.0.0.1', '--port', String(this.port), '--data-dir', this.dataDir, ...this.args,
    ], { env: { ...process.env, LOG_LEVEL: 'info', ...this.env }, stdio: ['ignore', 'pipe', 'pipe'] })
    this.child = child
    this.exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))
    const collect = (chunk) => { this.output += chunk.toString() }
    child.stdout.on('data', collect)
    child.stderr.on('data', collect)
    await waitFor(async () => {
      if (child.exitCode !== null) throw new Error(`server exited early (${child.exitCode}):\n${this.output}`)
      try {
        const response = await fetch(`${this.http}/health`)
        return response.status === 200 && (await response.json()).status === 'healthy'
      } catch { return false }
    }, `server health on port ${this.port}`, 30000)
    return this
  }

  /** SIGTERM: graceful shutdown; resolves with the exit status. */
  async stop () {
    if (!this.child || this.child.exitCode !== null) return this.exited
    this.child.kill('SIGTERM')
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 20000)
    const status = await this.exited
    clearTimeout(timer)
    return status
  }

  async kill9 () {
    if (!this.child || this.child.exitCode !== null) return this.exited
    this.child.kill('SIGKILL')
    return this.exited
  }

  async restart () {
    await this.stop()
    return this.start()
  }

  cleanup () {
    fs.rmSync(this.dataDir, { recursive: true, force: true })
  }
}

function base64url (value) {
  return Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')
}

/** An HS256 JWT. `exp` defaults to one hour from now. */
export function token (secret, claims = {}) {
  const body = { sub: 'compat', exp: Math.floor(Date.now() / 1000) + 3600, ...claims }
  const unsigned = `${base64url({ alg: 'HS256', typ: 'JWT' })}.${base64url(body)}`
  const signature = crypto.createHmac('sha256', secret).update(unsigned).digest('base64url')
  return `${unsigned}.${signature}`
}

/** Everything created through these helpers, destroyed by `destroyAll()`. */
const created = []

export function destroyAll () {
  while (created.length) {
    const item = created.pop()
    try { item.destroy() } catch {}
  }
}

/** A shared socket of provider version `version` (2, 3 or 4). */
export function socket (version, url) {
  const { HocuspocusProviderWebsocket } = providers[version]
  const ws = new HocuspocusProviderWebsocket({ url, WebSocketPolyfill: WebSocket, quiet: true })
  created.push(ws)
  return ws
}

/**
 * A HocuspocusProvider of `version` on document `name`. Events are recorded on the returned
 * object: `authenticated`, `denied` (reason), `synced`, `text` (Y.Text "t").
 */
export function hocuspocus (version, { url, name, token: tokenValue, websocketProvider, doc = new Y.Doc() }) {
  const { HocuspocusProvider } = providers[version]
  const state = { version, doc, text: doc.getText('t'), authenticated: null, denied: null, synced: false }
  const options = {
    name,
    document: doc,
    onAuthenticated: (data) => { state.authenticated = data?.scope ?? 'unknown' },
    onAuthenticationFailed: ({ reason }) => { state.denied = reason ?? 'denied' },
    onSynced: () => { state.synced = true },
  }
  if (tokenValue !== undefined) options.token = tokenValue
  if (websocketProvider) {
    options.websocketProvider = websocketProvider
  } else {
    options.url = url
    options.WebSocketPolyfill = WebSocket
  }
  const provider = new HocuspocusProvider(options)
  if (websocketProvider && typeof provider.attach === 'function') provider.attach()
  state.provider = provider
  state.awareness = provider.awareness
  state.destroy = () => provider.destroy()
  created.push(state)
  return state
}

/** A y-websocket client on room `room`. */
export function ywebsocket ({ url, room, token: tokenValue, doc = new Y.Doc() }) {
  const params = tokenValue === undefined ? {} : { token: tokenValue }
  const provider = new WebsocketProvider(url, room, doc, { WebSocketPolyfill: WebSocket, params, disableBc: true })
  const state = { doc, text: doc.getText('t'), synced: false, provider, awareness: provider.awareness }
  provider.on('sync', (synced) => { if (synced) state.synced = true })
  state.destroy = () => provider.destroy()
  created.push(state)
  return state
}

export async function synced (client, what = 'sync') {
  await waitFor(() => client.synced, `${what} (provider ${client.version ?? 'y-websocket'})`)
}

/** Waits until the provider reports no unsynced changes (every update acknowledged). */
export async function acknowledged (client, what = 'acknowledgement') {
  await waitFor(() => client.synced && !client.provider.hasUnsyncedChanges, what)
}

export function append (client, text) {
  client.text.insert(client.text.length, text)
}

/**
 * Streams edits `<0>`, `<1>`, … from `client` (a 2.x or 3.x provider: one Update and one
 * SyncStatus per edit, no batching) and SIGKILLs `server` in the middle of the stream, once
 * `minAcks` edits are acknowledged. Returns how many edits the server had acknowledged: each of
 * those must survive. The client is destroyed, so it cannot re-send anything on reconnect.
 */
export async function killMidStream (server, client, minAcks = 20) {
  const provider = client.provider
  let acks = 0
  const decrement = provider.decrementUnsyncedChanges.bind(provider)
  provider.decrementUnsyncedChanges = () => { acks++; decrement() }
  let sent = 0
  const timer = setInterval(() => append(client, `<${sent++}>`), 1)
  try {
    await waitFor(() => acks >= minAcks, `${minAcks} acknowledged edits`)
    await server.kill9()
  } finally {
    clearInterval(timer)
  }
  // Acknowledgements the server sent before it died may still sit in the client's socket buffer.
  await new Promise((resolve) => setTimeout(resolve, 200))
  const acked = acks
  client.destroy()
  return { acked, sent }
}

/** The first `count` edits of `killMidStream` that are missing from `text`. */
export function missingEdits (text, count) {
  const missing = []
  for (let i = 0; i < count; i++) if (!text.includes(`<${i}>`)) missing.push(i)
  return missing
}

/**
 * Streams edits into document `name` from a provider of `writerVersion`, SIGKILLs `server` in
 * the middle, restarts it and checks with a provider of `readerVersion` that every edit the
 * server had acknowledged is there.
 */
export async function checkKill9KeepsAcknowledgedEdits (server, name, writerVersion, readerVersion) {
  const writer = hocuspocus(writerVersion, { url: server.url, name })
  await synced(writer)
  await acknowledged(writer)
  const { acked, sent } = await killMidStream(server, writer)
  destroyAll()
  await server.start()
  const reader = hocuspocus(readerVersion, { url: server.url, name })
  await synced(reader)
  const text = reader.text.toString()
  assert.deepEqual(missingEdits(text, acked), [], `all ${acked} acknowledged of ${sent} sent edits in ${text}`)
}
