// Benchmark (not a test): time from an update to its acknowledgement (SyncStatus, sent once the
// update is durable) with PostgreSQL storage, under the harness's throughput scenario
// (20 documents x 5 writers, 4 updates in flight each). The server measures it
// (collab_server_ack_duration_seconds); p50/p99 are read from that histogram as Prometheus'
// histogram_quantile does. Server pinned to CPU 1, loadgen to CPU 0.
//   COLLAB_BENCH_DATABASE_URL=postgres://… COLLAB_SERVER_BIN=… LOADGEN_BIN=… node bench/pg-ack.mjs
import pg from 'pg'

import { Server, output } from '../lib/harness.mjs'

const baseUrl = process.env.COLLAB_BENCH_DATABASE_URL
const loadgen = process.env.LOADGEN_BIN
if (!baseUrl || !loadgen) throw new Error('set COLLAB_BENCH_DATABASE_URL and LOADGEN_BIN')
const database = `collab_bench_ack_${process.pid}`
const url = (() => { const u = new URL(baseUrl); u.pathname = `/${database}`; return u.toString() })()
const admin = new pg.Client({ connectionString: baseUrl })
await admin.connect()
await admin.query(`CREATE DATABASE ${database}`)
const settings = Object.fromEntries((await admin.query(
  "SELECT name, setting FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'wal_sync_method', 'server_version')")).rows
  .map((r) => [r.name, r.setting]))

const server = new Server({ env: { DATABASE_URL: url, LOG_LEVEL: 'warn' } })
await server.start()
// Pinned like run-bench.sh: the server on CPU 1 (all its threads), the loadgen on CPU 0.
await output('taskset', ['-apc', '1', String(server.child.pid)])
const line = await output('taskset', ['-c', '0', loadgen, 'throughput', '--proto', 'hocuspocus', '--url', server.url,
  '--server-pid', String(server.child.pid), '--label', 'collab-postgres', '--docs', '20', '--writers', '5',
  '--window', '4', '--duration', '15'])
const metrics = await (await fetch(`${server.http}/metrics`)).text()
await server.stop()
server.cleanup()
await admin.query(`DROP DATABASE ${database} WITH (FORCE)`)
await admin.end()

// histogram_quantile over collab_server_ack_duration_seconds_bucket.
const buckets = [...metrics.matchAll(/^collab_server_ack_duration_seconds_bucket\{le="([^"]+)"\} (\d+)/gm)]
  .map(([, le, count]) => [le === '+Inf' ? Infinity : Number(le), Number(count)])
const total = buckets.at(-1)[1]
const quantile = (q) => {
  const rank = q * total
  let previous = [0, 0]
  for (const [le, count] of buckets) {
    if (count >= rank) {
      if (le === Infinity) return previous[0]
      return previous[0] + (le - previous[0]) * (rank - previous[1]) / Math.max(1, count - previous[1])
    }
    previous = [le, count]
  }
  return NaN
}
const result = JSON.parse(line.trim().split('\n').at(-1))
console.log(JSON.stringify({
  label: 'collab-postgres-ack',
  postgres: settings,
  updates_per_s: result.results.updates_per_s,
  server_cpu_pct: result.results.cpu.server_cpu_pct,
  acknowledged: total,
  ack_ms_p50: +(quantile(0.5) * 1000).toFixed(3),
  ack_ms_p99: +(quantile(0.99) * 1000).toFixed(3),
  echo_ms_p50: result.results.echo_latency_ms.p50,
  echo_ms_p99: result.results.echo_latency_ms.p99,
}))
process.exit(0)
