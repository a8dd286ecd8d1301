// The editor collab-server serves at / in two real Chromium pages (Debian's chromium, driven by
// playwright-core): typing in one shows in the other, each sees the other's presence and
// cursor, the saved indicator turns saved, and the text survives a server restart. A screenshot
// of both pages goes to COLLAB_TEST_OUTPUT_DIR (default: tests/compat/output).
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { fileURLToPath } from 'node:url'

import { chromium } from 'playwright-core'

import { Server, waitFor } from '../lib/harness.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
const executablePath = process.env.COLLAB_TEST_CHROMIUM ?? '/usr/bin/chromium'
const missing = !fs.existsSync(executablePath) &&
  `no Chromium at ${executablePath}: install Debian's chromium package (scripts/test.sh does, as root) or set COLLAB_TEST_CHROMIUM`
const output = process.env.COLLAB_TEST_OUTPUT_DIR ?? path.resolve(here, '../output')

let browser
before(async () => {
  if (missing) return
  browser = await chromium.launch({ executablePath, args: ['--no-sandbox', '--disable-gpu'] })
})
after(async () => { await browser?.close() })

async function open (server, name, documentName, extra = '') {
  const page = await browser.newPage({ viewport: { width: 1200, height: 640 } })
  const errors = []
  page.on('pageerror', (error) => errors.push(error.message))
  await page.goto(`${server.http}/?doc=${encodeURIComponent(documentName)}&name=${encodeURIComponent(name)}${extra}`)
  await page.waitForSelector('.ProseMirror')
  await page.waitForFunction(() => document.querySelector('#connection').dataset.state === 'connected')
  page.errors = errors
  return page
}

// The document's text (not innerText, which includes the other cursors' name labels).
const text = (page) => page.evaluate(() => window.collab.view.state.doc.textContent)
const people = (page) => page.evaluate(() => [...document.querySelectorAll('#people li')].map((li) => li.textContent))
const saved = (page) => page.evaluate(() => document.querySelector('#saved').dataset.state)

test('two browsers edit one document through the editor the server serves', { skip: missing }, async () => {
  const server = await new Server().start()
  try {
    const documentName = `browser-${Date.now()}`
    const alice = await open(server, 'Alice', documentName)
    const bob = await open(server, 'Bob', documentName)

    await alice.click('.ProseMirror')
    await alice.keyboard.type('Hello from Alice. ')
    await waitFor(async () => (await text(bob)).includes('Hello from Alice.'), 'Bob sees what Alice typed')
    await bob.click('.ProseMirror')
    await bob.keyboard.press('End')
    await bob.keyboard.type('And Bob answers.')
    await waitFor(async () => (await text(alice)).includes('And Bob answers.'), 'Alice sees what Bob typed')

    await waitFor(async () => (await people(alice)).includes('Bob'), 'Alice sees Bob in the list of people')
    await waitFor(async () => (await people(bob)).includes('Alice'), 'Bob sees Alice in the list of people')
    // y-prosemirror draws the other's cursor with their name.
    await waitFor(async () => (await alice.locator('.ProseMirror-yjs-cursor', { hasText: 'Bob' }).count()) > 0, "Bob's cursor on Alice's page")
    await waitFor(async () => (await bob.locator('.ProseMirror-yjs-cursor', { hasText: 'Alice' }).count()) > 0, "Alice's cursor on Bob's page")

    await waitFor(async () => (await saved(alice)) === 'saved' && (await saved(bob)) === 'saved', 'both pages say saved')
    fs.mkdirSync(output, { recursive: true })
    await alice.screenshot({ path: path.join(output, 'editor-alice.png') })
    await bob.screenshot({ path: path.join(output, 'editor-bob.png') })
    assert.deepEqual([...alice.errors, ...bob.errors], [], 'no errors in the pages')

    const expected = await text(alice)
    await alice.close()
    await bob.close()
    await server.restart()
    const again = await open(server, 'Carol', documentName)
    await waitFor(async () => (await text(again)) === expected, 'the text after a restart')
    await again.close()
  } finally {
    await server.stop()
    server.cleanup()
  }
})

test('the history panel: one page saves, previews and restores a version, the other sees it', { skip: missing }, async () => {
  const secret = 'browser-history-secret'
  const server = await new Server({ env: { COLLAB_SERVER_API_SECRET: secret } }).start()
  try {
    const documentName = `history-${Date.now()}`
    const alice = await open(server, 'Alice', documentName, `&api=${secret}`)
    const bob = await open(server, 'Bob', documentName, `&api=${secret}`)
    await alice.click('.ProseMirror')
    await alice.keyboard.type('First draft.')
    await waitFor(async () => (await saved(alice)) === 'saved', 'the draft is saved')

    await alice.fill('#version-label', 'draft')
    await alice.click('#save-version button')
    await waitFor(async () => (await alice.locator('#versions li .label', { hasText: 'draft' }).count()) === 1, 'the version is listed')
    await alice.keyboard.press('End')
    await alice.click('.ProseMirror')
    await alice.keyboard.press('End')
    await alice.keyboard.type(' Second thoughts.')
    await waitFor(async () => (await text(bob)).includes('Second thoughts.'), 'Bob sees the later edit')

    // Bob lists the history too (versions are the server's, not the page's).
    await bob.evaluate(() => window.collab.listVersions())
    await waitFor(async () => (await bob.locator('#versions li .label', { hasText: 'draft' }).count()) === 1, 'Bob sees the version')

    // Preview: read-only, the old text; the live document is untouched.
    await alice.locator('#versions li', { hasText: 'draft' }).locator('button.preview').click()
    await waitFor(async () => (await alice.locator('#preview-view').textContent()) === 'First draft.', 'the preview shows the version')
    assert.equal(await alice.locator('#preview-view .ProseMirror').getAttribute('contenteditable'), 'false', 'the preview is read-only')
    assert.match(await text(alice), /Second thoughts\./, 'previewing changes nothing')

    await alice.click('#preview-restore')
    await waitFor(async () => (await text(bob)) === 'First draft.', 'Bob sees the restore at once')
    await waitFor(async () => (await text(alice)) === 'First draft.', 'and Alice')
    await waitFor(async () => (await alice.locator('#versions li .label', { hasText: 'Before restoring' }).count()) === 1, 'the state before is kept as a version')
    await waitFor(async () => (await saved(alice)) === 'saved' && (await saved(bob)) === 'saved', 'both pages say saved')
    fs.mkdirSync(output, { recursive: true })
    await alice.screenshot({ path: path.join(output, 'editor-history.png') })
    assert.deepEqual([...alice.errors, ...bob.errors], [], 'no errors in the pages')
    await alice.close()
    await bob.close()
  } finally {
    await server.stop()
    server.cleanup()
  }
})

test('the editor is off when authentication is configured, and with COLLAB_SERVER_DEMO=false', async () => {
  for (const env of [{ JWT_SECRET: 'secret' }, { COLLAB_SERVER_DEMO: 'false' }]) {
    const server = await new Server({ env }).start()
    try {
      const page = await fetch(`${server.http}/`)
      assert.equal(page.status, 200)
      assert.doesNotMatch(await page.text(), /<html/, `no editor with ${JSON.stringify(env)}`)
      assert.equal((await fetch(`${server.http}/editor.js`)).status, 404)
    } finally {
      await server.stop()
      server.cleanup()
    }
  }
  const server = await new Server({ env: { JWT_SECRET: 'secret', COLLAB_SERVER_DEMO: 'true' } }).start()
  try {
    const page = await fetch(`${server.http}/`)
    assert.match(await page.text(), /<html/, 'asked for, it is served with authentication too')
    assert.match((await fetch(`${server.http}/editor.js`)).headers.get('content-type'), /javascript/)
  } finally {
    await server.stop()
    server.cleanup()
  }
})
