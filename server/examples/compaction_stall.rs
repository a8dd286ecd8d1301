//! How long another document's durable write waits while a large document compacts (issue 20,
//! goal 3; figures in docs/benchmarks.md). Not a test: it prints figures.
//!
//! ```sh
//! cargo run --release -p collab-server --example compaction_stall -- sqlite://target/stall.db
//! cargo run --release -p collab-server --example compaction_stall -- postgres://postgres@127.0.0.1:5432/postgres
//! ```
//!
//! It seeds a document of about 40 MB (`--mb`) as 2 KB text inserts, then runs compactions of
//! it (each folds the whole snapshot again after one new row) while a second document's
//! appends go on one after another, as a room's writer sends them, and reports their latency.

use std::sync::Arc;
use std::time::{Duration, Instant};

use collab_server::storage::{DocumentStore, PostgresStore, SqliteStore};
use yrs::{Doc, ReadTxn, Text, Transact};

/// An insert at the start of the text: cheap to make however long the text is (the seed of a
/// 40 MB document in seconds), and an ordinary item to fold.
fn text_update(doc: &Doc, insert: &str) -> Vec<u8> {
    let text = doc.get_or_insert_text("t");
    let before = doc.transact().state_vector();
    text.insert(&mut doc.transact_mut(), 0, insert);
    doc.transact().encode_state_as_update_v1(&before)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args.next().ok_or_else(|| {
        anyhow::anyhow!("usage: compaction_stall <database-url> [--mb N] [--rounds N]")
    })?;
    let (mut mb, mut rounds) = (40usize, 3usize);
    while let Some(flag) = args.next() {
        let value: usize = args
            .next()
            .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))?
            .parse()?;
        match flag.as_str() {
            "--mb" => mb = value,
            "--rounds" => rounds = value,
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    let store: Arc<dyn DocumentStore> = if let Some(path) = url.strip_prefix("sqlite://") {
        Arc::new(SqliteStore::open(std::path::Path::new(path)).await?)
    } else {
        Arc::new(PostgresStore::open(&url).await?)
    };
    let large = format!("stall/large-{}", std::process::id());
    let other = format!("stall/other-{}", std::process::id());
    let writer = Doc::new();
    let piece = "x".repeat(2048);
    let updates = mb * 1024 / 2;
    let mut batch = Vec::with_capacity(500);
    for i in 0..updates {
        batch.push(text_update(&writer, &piece));
        if batch.len() == 500 || i + 1 == updates {
            store.append(&large, 0, &batch).await?;
            batch.clear();
        }
    }
    let started = Instant::now();
    store.compact(&large).await?;
    println!(
        "{}: seeded {updates} updates ({mb} MB), first compaction {} ms",
        store.backend(),
        started.elapsed().as_millis()
    );
    let typist = Doc::new();
    let mut latencies = Vec::new();
    let mut compactions = Vec::new();
    for _ in 0..rounds {
        store
            .append(&large, 0, &[text_update(&writer, "y")])
            .await?;
        let compaction = {
            let (store, large) = (store.clone(), large.clone());
            tokio::spawn(async move {
                let started = Instant::now();
                store.compact(&large).await.map(|()| started.elapsed())
            })
        };
        while !compaction.is_finished() {
            let update = text_update(&typist, "z");
            let started = Instant::now();
            store.append(&other, 0, &[update]).await?;
            latencies.push(started.elapsed());
        }
        compactions.push(compaction.await??);
    }
    latencies.sort();
    compactions.sort();
    println!(
        "{}: {rounds} compactions of {mb} MB, median {} ms; meanwhile {} writes of another document: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        store.backend(),
        percentile(&compactions, 0.5).as_millis(),
        latencies.len(),
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
    store.delete(&large).await?;
    store.delete(&other).await?;
    Ok(())
}
