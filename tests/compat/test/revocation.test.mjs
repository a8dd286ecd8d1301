// Live revocation (POST /api/revocations) against unmodified providers of every version: the
// revoked user's provider is told PermissionDenied (onAuthenticationFailed) at once; after a
// read-only revocation its edits are refused (it keeps unsynced changes), never acknowledged and
// never stored, while another user's provider on the same document carries on.
import assert from 'node:assert/strict'
import { after, afterEach, before, test } from 'node:test'

import {
  Server, acknowledged, append, destroyAll, hocuspocus, synced, token, waitFor,
} from '../lib/harness.mjs'

const secret = 'revocation-secret'
const API = 'revocation-api'
let server
before(async () => {
  server = await new Server({ env: { JWT_SECRET: secret, COLLAB_SERVER_API_SECRET: API } }).start()
})
afterEach(() => destroyAll())
after(async () => { await server.stop(); server.cleanup() })

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const issuedEarlier = () => Math.floor(Date.now() / 1000) - 60

async function revoke (body) {
  const response = await fetch(`${server.http}/api/revocations`, {
    method: 'POST',
    headers: { authorization: `Bearer ${API}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  assert.equal(response.status, 201, await response.text())
}

async function stored (name) {
  const response = await fetch(`${server.http}/api/documents/${encodeURIComponent(name)}?format=text&root=t`, {
    headers: { authorization: `Bearer ${API}` },
  })
  return response.status === 404 ? '' : await response.text()
}

for (const version of [2, 3, 4]) {
  test(`provider ${version}: a revoked session is denied at once`, async () => {
    const name = `revoked-end-${version}-${Date.now()}`
    const fired = hocuspocus(version, { url: server.url, name, token: token(secret, { sub: `fired-${version}`, iat: issuedEarlier() }) })
    const colleague = hocuspocus(version, { url: server.url, name, token: token(secret, { sub: `colleague-${version}` }) })
    await synced(fired)
    await synced(colleague)
    await revoke({ subject: `fired-${version}` })
    await waitFor(() => fired.denied !== null, 'the revoked provider is told')
    assert.match(fired.denied, /revoked/)
    append(colleague, 'carries on')
    await acknowledged(colleague, 'the colleague is still served')
    assert.equal(colleague.denied, null)
  })

  test(`provider ${version}: after a read-only revocation edits are refused, never acknowledged or stored`, async () => {
    const name = `revoked-ro-${version}-${Date.now()}`
    const viewer = hocuspocus(version, { url: server.url, name, token: token(secret, { sub: `viewer-${version}`, iat: issuedEarlier() }) })
    await synced(viewer)
    append(viewer, 'before;')
    await acknowledged(viewer, 'the edit before the revocation')
    await revoke({ subject: `viewer-${version}`, mode: 'read-only' })
    append(viewer, 'after;')
    // Given time, it is still not acknowledged, and the server never stored it.
    await sleep(1500)
    assert.equal(viewer.provider.hasUnsyncedChanges, true, 'the refused edit stays unsynced')
    assert.equal(viewer.denied, null, 'the session stays (read-only)')
    assert.equal(await stored(name), 'before;')
  })
}
