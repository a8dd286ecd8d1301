// The Redis relay between replicas (COLLAB_TEST_REDIS_URL, set by scripts/test.sh): real providers
// on two servers, each with its own SQLite store, so everything one replica's clients see of the
// other's came through Redis.
import assert from 'node:assert/strict'
import { execSync } from 'node:child_process'
import { afterEach, test } from 'node:test'

import { Server, acknowledged, append, destroyAll, hocuspocus, synced, waitFor, ywebsocket } from '../lib/harness.mjs'

const redis = process.env.COLLAB_TEST_REDIS_URL
if (!redis) throw new Error('COLLAB_TEST_REDIS_URL is not set: run the suite through scripts/test.sh')

afterEach(() => destroyAll())

/** Two replicas on one Redis, under a channel prefix of their own. */
async function replicas () {
  const prefix = `collab-compat-${process.pid}-${Date.now()}`
  const env = (id) => ({ REDIS_URL: redis, COLLAB_SERVER_REDIS_PREFIX: prefix, COLLAB_SERVER_INSTANCE_ID: id })
  const a = await new Server({ env: env('compat-a') }).start()
  const b = await new Server({ env: env('compat-b') }).start()
  const stop = async () => {
    for (const server of [a, b]) {
      await server.stop()
      server.cleanup()
    }
  }
  return { a, b, stop }
}

test('providers on two replicas converge live, and see each other\'s awareness', async () => {
  const { a, b, stop } = await replicas()
  try {
    const onA = hocuspocus(2, { url: a.url, name: 'relay/live' })
    await synced(onA)
    append(onA, 'a1;')
    await acknowledged(onA)
    const onB = hocuspocus(4, { url: b.url, name: 'relay/live' })
    const yws = ywebsocket({ url: b.url, room: 'relay/live' })
    await synced(onB)
    await synced(yws)
    await waitFor(() => onB.text.toString() === 'a1;', 'A\'s earlier edit on replica B')
    append(onB, 'b1;')
    await waitFor(() => onA.text.toString() === 'a1;b1;', 'B\'s edit on replica A')
    append(yws, 'y1;')
    await waitFor(() => onA.text.toString() === 'a1;b1;y1;', 'the y-websocket edit on replica A')
    onA.awareness.setLocalStateField('user', { name: 'on-a' })
    await waitFor(() => [...onB.awareness.getStates().values()].some((s) => s.user?.name === 'on-a'),
      'A\'s awareness state on B')
    // The client leaves replica A: its state disappears on B.
    onA.destroy()
    await waitFor(() => ![...onB.awareness.getStates().values()].some((s) => s.user?.name === 'on-a'),
      'A\'s awareness state removed on B')
  } finally {
    await stop()
  }
})

const outage = process.env.COLLAB_TEST_REDIS_STOP && process.env.COLLAB_TEST_REDIS_START
test('edits made while Redis is away reach the other replica once it is back',
  { skip: !outage && 'needs the throwaway Redis of scripts/test.sh' }, async () => {
    const { a, b, stop } = await replicas()
    try {
      const onA = hocuspocus(4, { url: a.url, name: 'relay/outage' })
      const onB = hocuspocus(3, { url: b.url, name: 'relay/outage' })
      await synced(onA)
      await synced(onB)
      append(onA, 'before;')
      await waitFor(() => onB.text.toString() === 'before;', 'the first edit on B')

      execSync(process.env.COLLAB_TEST_REDIS_STOP, { stdio: 'ignore' })
      await waitFor(async () => (await fetch(`${a.http}/ready`)).status === 503, 'A to report Redis unreachable')
      append(onA, 'a-during;')
      append(onB, 'b-during;')
      // Each replica still stores and acknowledges its own clients' edits.
      await acknowledged(onA)
      await acknowledged(onB)
      execSync(process.env.COLLAB_TEST_REDIS_START, { stdio: 'ignore' })
      const converged = (client) => ['before;', 'a-during;', 'b-during;'].every((part) => client.text.toString().includes(part))
      await waitFor(() => converged(onA) && converged(onB), 'both replicas to converge after Redis came back', 30000)
      assert.equal(onA.text.toString(), onB.text.toString())
      await waitFor(async () => (await fetch(`${a.http}/ready`)).status === 200, 'A ready again')
    } finally {
      await stop()
    }
  })
