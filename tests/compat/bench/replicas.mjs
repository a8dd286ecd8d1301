// Benchmark (not a test): replicas relaying through one Redis (issue 15, goal 7), collab-server
// against Hocuspocus 4 with @hocuspocus/extension-redis, in one run.
//
// Fan-out: 1 writer on replica A at 20 updates/s for 10 s, 100 subscribers on replica B (across)
// or on A (same replica, the baseline); latency from the writer's change to each subscriber's
// observation, all real @hocuspocus/provider 4 clients in this process (so the figures include
// the clients' own work: compare peers and topologies with each other, not with the loadgen's).
// Throughput: the harness's loadgen (20 documents x 5 writers x 4 in flight, 10 s) against 1
// replica, then one loadgen per replica against 3 replicas at once, each on its own documents
// (the loadgen's writers cannot share documents across processes); every update is still
// published to Redis. Reported: updates/s, server and Redis CPU per update.
//
//   COLLAB_SERVER_BIN=… LOADGEN_BIN=… [COLLAB_BENCH_REDIS_URL=redis://127.0.0.1:6379] \
//     node bench/replicas.mjs [fanout|throughput]...   (prints one JSON line per measurement)
import { execFileSync, spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import { Server, freePort, hocuspocus, output, synced, waitFor } from '../lib/harness.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
const redisUrl = process.env.COLLAB_BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379'
const parts = process.argv.slice(2).length ? process.argv.slice(2) : ['fanout', 'throughput']
/** User + system CPU seconds of a process (USER_HZ is 100 on Linux). */
function cpuSeconds (pid) {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100
}
const redisPid = (() => {
  const port = new URL(redisUrl).port || '6379'
  try {
    return execFileSync('pgrep', ['-f', `redis-server.*:${port}`]).toString().trim().split('\n')[0] || null
  } catch { return null }
})()

/** Starts `count` replicas of `peer` sharing one Redis prefix; returns { url, pid, stop }. */
async function replicas (peer, count) {
  const prefix = `bench-replicas-${process.pid}-${Date.now()}`
  const started = []
  for (let i = 0; i < count; i++) {
    if (peer === 'collab') {
      const server = new Server({
        env: { REDIS_URL: redisUrl, COLLAB_SERVER_REDIS_PREFIX: prefix, COLLAB_SERVER_INSTANCE_ID: `r${i}`, LOG_LEVEL: 'warn' },
        args: ['--database-url', 'memory://', '--rate-messages-per-sec', '0', '--rate-bytes-per-sec', '0'],
      })
      await server.start()
      started.push({ url: server.url, pid: server.child.pid, stop: async () => { await server.stop(); server.cleanup() } })
    } else {
      const port = await freePort()
      const child = spawn(process.execPath, [path.join(here, 'hocuspocus-redis.mjs')], {
        env: { ...process.env, PORT: String(port), REDIS_URL: redisUrl, PREFIX: prefix, IDENTIFIER: `r${i}` },
        stdio: ['ignore', 'pipe', 'inherit'],
      })
      let out = ''
      child.stdout.on('data', (chunk) => { out += chunk })
      await waitFor(() => out.includes('listening'), `hocuspocus replica ${i}`)
      const exited = new Promise((resolve) => child.on('exit', resolve))
      started.push({ url: `ws://127.0.0.1:${port}`, pid: child.pid, stop: async () => { child.kill('SIGTERM'); await exited } })
    }
  }
  return started
}

const quantile = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]

async function fanout (peer, topology) {
  const [a, b] = await replicas(peer, 2)
  const name = `fanout-${topology}-${Date.now()}`
  const writer = hocuspocus(4, { url: a.url, name })
  await synced(writer)
  const latencies = []
  const subscribers = []
  for (let i = 0; i < 100; i++) {
    const client = hocuspocus(4, { url: (topology === 'across' ? b : a).url, name })
    const marks = client.doc.getMap('m')
    marks.observe((event) => {
      const now = performance.now()
      for (const key of event.keysChanged) latencies.push(now - marks.get(key))
    })
    subscribers.push(client)
  }
  await Promise.all(subscribers.map((client) => synced(client)))
  const cpu = [a, b].map((r) => cpuSeconds(r.pid))
  const sent = 200
  for (let seq = 0; seq < sent; seq++) {
    writer.doc.getMap('m').set(String(seq), performance.now())
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  await waitFor(() => latencies.length >= sent * subscribers.length, 'every delivery', 5000).catch(() => {})
  const serverCpu = [a, b].reduce((sum, r, i) => sum + cpuSeconds(r.pid) - cpu[i], 0)
  for (const client of [writer, ...subscribers]) client.provider.destroy()
  for (const r of [a, b]) await r.stop()
  latencies.sort((x, y) => x - y)
  return {
    bench: 'replicas-fanout', peer, topology, subscribers: subscribers.length, sent,
    delivered: latencies.length, lost: sent * subscribers.length - latencies.length,
    p50_ms: quantile(latencies, 0.5), p95_ms: quantile(latencies, 0.95), p99_ms: quantile(latencies, 0.99),
    server_cpu_s: serverCpu,
  }
}

async function loadgen (url, prefix) {
  const bin = process.env.LOADGEN_BIN
  if (!bin) throw new Error('set LOADGEN_BIN to the harness loadgen')
  const line = await output(bin, ['throughput', '--url', url, '--doc-prefix', prefix, '--docs', '20', '--writers', '5',
    '--window', '4', '--duration', '10'])
  return JSON.parse(line).results
}

async function throughput (peer, count) {
  const started = await replicas(peer, count)
  const before = started.map((r) => cpuSeconds(r.pid))
  const redisBefore = redisPid ? cpuSeconds(redisPid) : null
  const t0 = performance.now()
  const results = await Promise.all(started.map((r, i) => loadgen(r.url, `tp${i}x${Date.now()}`)))
  const elapsed = (performance.now() - t0) / 1000
  const serverCpu = started.reduce((sum, r, i) => sum + cpuSeconds(r.pid) - before[i], 0)
  const redisCpu = redisPid ? cpuSeconds(redisPid) - redisBefore : null
  for (const r of started) await r.stop()
  const updates = results.reduce((sum, r) => sum + r.total_acked, 0)
  const perSecond = results.reduce((sum, r) => sum + r.updates_per_s, 0)
  return {
    bench: 'replicas-throughput', peer, replicas: count, updates_per_s: Math.round(perSecond),
    lost_acks: results.reduce((sum, r) => sum + r.lost_acks, 0),
    server_cpu_s: serverCpu, server_us_per_update: 1e6 * serverCpu / updates,
    redis_cpu_s: redisCpu, redis_us_per_update: redisCpu === null ? null : 1e6 * redisCpu / updates,
    wall_s: elapsed,
  }
}

for (const part of parts) {
  for (const peer of ['collab', 'hocuspocus']) {
    if (part === 'fanout') {
      for (const topology of ['same', 'across']) console.log(JSON.stringify(await fanout(peer, topology)))
    } else if (part === 'throughput') {
      for (const count of [1, 3]) console.log(JSON.stringify(await throughput(peer, count)))
    } else {
      throw new Error(`unknown part ${part}: fanout or throughput`)
    }
  }
}
process.exit(0)
