// Data survives restarts of the server on its embedded SQLite store.
import assert from 'node:assert/strict'
import { afterEach, test } from 'node:test'

import { Server, acknowledged, append, destroyAll, hocuspocus, synced, waitFor } from '../lib/harness.mjs'

afterEach(() => destroyAll())

test('documents survive a graceful restart (SIGTERM)', async () => {
  const server = await new Server().start()
  try {
    const writer = hocuspocus(2, { url: server.url, name: 'restart/graceful' })
    await synced(writer)
    append(writer, 'kept across restarts')
    await acknowledged(writer)
    destroyAll()
    const status = await server.stop()
    assert.equal(status.code, 0, `clean exit, got ${JSON.stringify(status)}\n${server.output}`)
    await server.start()
    const reader = hocuspocus(4, { url: server.url, name: 'restart/graceful' })
    await synced(reader)
    await waitFor(() => reader.text.toString() === 'kept across restarts', 'the stored text')
  } finally {
    await server.stop()
    server.cleanup()
  }
})

test('every acknowledged edit survives kill -9', async () => {
  const server = await new Server().start()
  try {
    const writer = hocuspocus(4, { url: server.url, name: 'restart/kill9' })
    await synced(writer)
    for (let i = 0; i < 50; i++) append(writer, `<${i}>`)
    // Acknowledged = the provider has no unsynced changes left: the server said they are stored.
    await acknowledged(writer)
    const expected = writer.text.toString()
    await server.kill9()
    destroyAll()
    await server.start()
    const reader = hocuspocus(3, { url: server.url, name: 'restart/kill9' })
    await synced(reader)
    await waitFor(() => reader.text.toString() === expected, `all 50 acknowledged edits (got ${reader.text.toString().length} chars)`)
  } finally {
    await server.stop()
    server.cleanup()
  }
})
