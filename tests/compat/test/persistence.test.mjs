// Data survives restarts of the server on its embedded SQLite store.
import assert from 'node:assert/strict'
import { afterEach, test } from 'node:test'

import { Server, acknowledged, append, destroyAll, hocuspocus, checkKill9KeepsAcknowledgedEdits, synced, waitFor } from '../lib/harness.mjs'

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

test('every acknowledged edit survives kill -9 in the middle of a stream of edits', async () => {
  const server = await new Server().start()
  try {
    await checkKill9KeepsAcknowledgedEdits(server, 'restart/kill9', 2, 3)
  } finally {
    await server.stop()
    server.cleanup()
  }
})
