// The seed's Node Hocuspocus server (seed section 4: src/index.ts, extensions/redis.ts and
// extensions/database.ts), as the ECS service ran it before collab-server: @hocuspocus/server 2.x
// with extension-redis and extension-database on `documents(name, content, updated_at)`, the
// same queries. For tests/compat/test/migration.test.mjs, which runs it beside collab-server.
//
// Differences from the seed, none of which touches storage or the relay: no Cognito extension
// (tokens are not what the migration window is about), a plain redis:// URL instead of TLS,
// `DATABASE_URL` instead of the DATABASE_HOST/USER/PASSWORD parts, and `REDIS_PREFIX` (default
// `hocuspocus`, extension-redis' own default) so a test can use a channel prefix of its own.
import { Server } from '@hocuspocus/server'
import { Database } from '@hocuspocus/extension-database'
import { Redis } from '@hocuspocus/extension-redis'
import IORedis from 'ioredis'
import pg from 'pg'

const PORT = parseInt(process.env.PORT || '1234', 10)
const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL })

const server = Server.configure({
  port: PORT,
  address: '127.0.0.1',
  quiet: true,
  extensions: [
    new Redis({
      redis: new IORedis(process.env.REDIS_URL, { maxRetriesPerRequest: 3 }),
      prefix: process.env.REDIS_PREFIX || 'hocuspocus',
    }),
    new Database({
      fetch: async ({ documentName }) => {
        const result = await pool.query('SELECT content FROM documents WHERE name = $1', [documentName])
        return result.rows[0]?.content || null
      },
      store: async ({ documentName, state }) => {
        await pool.query(
          `INSERT INTO documents (name, content, updated_at)
           VALUES ($1, $2, NOW())
           ON CONFLICT (name) DO UPDATE SET content = $2, updated_at = NOW()`,
          [documentName, state]
        )
      },
    }),
  ],
})

await server.listen()
console.log(`seed Hocuspocus listening on ${PORT}`)

const stop = async () => {
  await server.destroy() // stores every loaded document, as on an ECS SIGTERM
  await pool.end()
  process.exit(0)
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
