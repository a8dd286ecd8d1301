// Helper of replicas.mjs: one Hocuspocus 4 replica with @hocuspocus/extension-redis, documents
// in memory, any token accepted (as the shared harness's hocuspocus4 peer).
//   PORT=… REDIS_URL=redis://… PREFIX=… IDENTIFIER=… node bench/hocuspocus-redis.mjs
import { Redis } from '@hocuspocus/extension-redis'
import { Server } from '@hocuspocus/server'

const redis = new URL(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379')
const port = Number(process.env.PORT)
const server = new Server({
  port,
  address: '127.0.0.1',
  quiet: true,
  extensions: [new Redis({
    host: redis.hostname,
    port: Number(redis.port || 6379),
    prefix: process.env.PREFIX ?? 'hocuspocus',
    identifier: process.env.IDENTIFIER,
  })],
  async onAuthenticate () {
    return {}
  },
})
await server.listen()
console.log(`hocuspocus-redis listening on 127.0.0.1:${port}`)
