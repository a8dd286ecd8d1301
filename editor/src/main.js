// A small collaborative rich-text editor: ProseMirror bound to a Y.XmlFragment ("default",
// the field Tiptap uses) through y-prosemirror, synced by @hocuspocus/provider with the server
// that serves this page. It shows the connection state, whether every edit is saved (the
// provider's unsynced count, which the server's SyncStatus brings to zero once an edit is
// stored), and who else is here (awareness names, colours and cursors).
import 'prosemirror-view/style/prosemirror.css'
import 'prosemirror-menu/style/menu.css'
import 'prosemirror-example-setup/style/style.css'
import './style.css'

import { HocuspocusProvider } from '@hocuspocus/provider'
import { exampleSetup } from 'prosemirror-example-setup'
import { keymap } from 'prosemirror-keymap'
import { schema } from 'prosemirror-schema-basic'
import { EditorState } from 'prosemirror-state'
import { EditorView } from 'prosemirror-view'
import { redo, undo, yCursorPlugin, ySyncPlugin, yUndoPlugin } from 'y-prosemirror'
import * as Y from 'yjs'

const params = new URLSearchParams(location.search)
const documentName = params.get('doc') || 'welcome'
const colours = ['#e6194b', '#3cb44b', '#4363d8', '#f58231', '#911eb4', '#008080', '#9a6324', '#800000']
const animals = ['otter', 'heron', 'lynx', 'marten', 'ibis', 'gecko', 'bison', 'wren']
const pick = (list) => list[Math.floor(Math.random() * list.length)]
const user = { name: params.get('name') || `${pick(animals)} ${Math.floor(Math.random() * 100)}`, color: pick(colours) }

const documentInput = document.querySelector('#document')
documentInput.value = documentName
documentInput.addEventListener('change', () => {
  params.set('doc', documentInput.value.trim() || 'welcome')
  location.search = params.toString()
})

const ydoc = new Y.Doc()
const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}`
const provider = new HocuspocusProvider({
  url,
  name: documentName,
  document: ydoc,
  token: params.get('token') || undefined,
  onAuthenticationFailed: ({ reason }) => show('#connection', 'denied', `denied: ${reason}`),
})
provider.awareness.setLocalStateField('user', user)

function show (selector, state, text) {
  const element = document.querySelector(selector)
  element.dataset.state = state
  element.textContent = text
}

provider.on('status', ({ status }) => show('#connection', status, status))
provider.on('synced', () => updateSaved())
provider.on('unsyncedChanges', () => updateSaved())
function updateSaved () {
  const pending = provider.unsyncedChanges
  if (pending > 0) show('#saved', 'saving', `saving (${pending})`)
  else show('#saved', 'saved', 'saved')
}

function renderPeople () {
  const list = document.querySelector('#people')
  list.replaceChildren()
  const states = [...provider.awareness.getStates().entries()]
    .filter(([, state]) => state.user)
    .sort(([a], [b]) => (a === ydoc.clientID ? -1 : b === ydoc.clientID ? 1 : a - b))
  for (const [clientId, state] of states) {
    const item = document.createElement('li')
    item.style.setProperty('--colour', state.user.color)
    item.textContent = clientId === ydoc.clientID ? `${state.user.name} (you)` : state.user.name
    item.dataset.self = String(clientId === ydoc.clientID)
    list.append(item)
  }
}
provider.awareness.on('change', renderPeople)
renderPeople()

const fragment = ydoc.getXmlFragment('default')
const view = new EditorView(document.querySelector('#editor'), {
  state: EditorState.create({
    schema,
    plugins: [
      ySyncPlugin(fragment),
      yCursorPlugin(provider.awareness),
      yUndoPlugin(),
      keymap({ 'Mod-z': undo, 'Mod-y': redo, 'Mod-Shift-z': redo }),
      ...exampleSetup({ schema, history: false }),
    ],
  }),
})
view.focus()

// History: the document API's versions (list, save, preview read-only, restore). The API is
// behind its secret; the page takes it from `&api=` (the demo's convenience: it never leaves
// this page's requests to its own server).
const apiSecret = params.get('api')
const versionsPath = `/api/documents/${encodeURIComponent(documentName)}/versions`
const api = (path, init = {}) => fetch(path, {
  ...init,
  headers: { authorization: `Bearer ${apiSecret}`, ...(init.headers ?? {}) },
})
const status = (text) => { document.querySelector('#history-status').textContent = text }
let preview = null

async function listVersions () {
  if (!apiSecret) {
    status('Open this page with &api=SECRET (COLLAB_SERVER_API_SECRET) to see its history.')
    document.querySelector('#save-version button').disabled = true
    return
  }
  const response = await api(versionsPath)
  if (!response.ok) { status(`history: ${response.status} ${(await response.json()).error ?? ''}`); return }
  status('')
  const list = document.querySelector('#versions')
  list.replaceChildren()
  for (const version of (await response.json()).versions) {
    const item = document.createElement('li')
    item.dataset.id = version.id
    const label = document.createElement('span')
    label.className = 'label'
    label.textContent = version.label ?? `Version ${version.id}`
    const meta = document.createElement('span')
    meta.className = 'meta'
    meta.textContent = `${new Date(version.createdAt).toLocaleString()} · ${version.author}`
    const show = document.createElement('button')
    show.textContent = 'Preview'
    show.className = 'preview'
    show.addEventListener('click', () => previewVersion(version))
    const back = document.createElement('button')
    back.textContent = 'Restore'
    back.className = 'restore'
    back.addEventListener('click', () => restoreVersion(version))
    item.append(label, meta, show, back)
    list.append(item)
  }
}

async function previewVersion (version) {
  const response = await api(`${versionsPath}/${version.id}`)
  if (!response.ok) { status(`preview: ${response.status}`); return }
  const old = new Y.Doc()
  Y.applyUpdate(old, new Uint8Array(await response.arrayBuffer()))
  preview?.destroy()
  const host = document.querySelector('#preview-view')
  host.replaceChildren()
  preview = new EditorView(host, {
    state: EditorState.create({ schema, plugins: [ySyncPlugin(old.getXmlFragment('default'))] }),
    editable: () => false,
  })
  document.querySelector('#preview-title').textContent = version.label ?? `Version ${version.id}`
  document.querySelector('#preview').hidden = false
  document.querySelector('#preview-restore').onclick = () => restoreVersion(version)
}

async function restoreVersion (version) {
  const response = await api(`${versionsPath}/${version.id}/restore`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ author: user.name }),
  })
  if (!response.ok) { status(`restore: ${response.status} ${(await response.json()).error ?? ''}`); return }
  closePreview()
  await listVersions()
}

function closePreview () {
  preview?.destroy()
  preview = null
  document.querySelector('#preview').hidden = true
}
document.querySelector('#preview-close').addEventListener('click', closePreview)

document.querySelector('#save-version').addEventListener('submit', async (event) => {
  event.preventDefault()
  const input = document.querySelector('#version-label')
  const label = input.value.trim()
  const response = await api(versionsPath, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...(label ? { label } : {}), author: user.name }),
  })
  if (!response.ok) { status(`save: ${response.status} ${(await response.json()).error ?? ''}`); return }
  input.value = ''
  await listVersions()
})
listVersions()

// For tests and for the curious: the live objects.
window.collab = { provider, ydoc, view, listVersions }
