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

// For tests and for the curious: the live objects.
window.collab = { provider, ydoc, view }
