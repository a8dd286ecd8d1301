// Helper of heavy-load.mjs: opens one document in its own process (so applying a large state
// does not block the measuring process's event loop), prints "synced", and exits.
//   node bench/open-document.mjs URL NAME
import { hocuspocus, synced } from '../lib/harness.mjs'

const [url, name] = process.argv.slice(2)
const client = hocuspocus(3, { url, name })
await synced(client, name)
console.log('synced')
process.exit(0)
