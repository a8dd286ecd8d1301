//! What versions cost (issue 23; figures in docs/benchmarks.md). Not a test: it prints figures.
//!
//! ```sh
//! cargo run --release -p collab-server --example versions_cost -- sqlite://target/versions.db
//! cargo run --release -p collab-server --example versions_cost -- postgres://postgres@127.0.0.1:5432/postgres
//! ```
//!
//! Runs the server in this process on that store, writes a document of about 1 MB through the
//! document API (`--mb`), then times `POST .../versions` end to end (`--rounds` of them: the
//! room's durable state, encoded, stored) and `GET .../versions?limit=1000` over 1,000 versions
//! of a small document.

use std::time::{Duration, Instant};

use collab_server::config::Config;
use tokio_util::sync::CancellationToken;
use yrs::{Doc, ReadTxn, StateVector, Text, Transact};

const SECRET: &str = "versions-cost";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(index).copied().unwrap_or_default()
}

fn summary(mut samples: Vec<Duration>) -> String {
    samples.sort();
    format!(
        "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} runs)",
        percentile(&samples, 0.5).as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3,
        samples.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        samples.len()
    )
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args.next().ok_or_else(|| {
        anyhow::anyhow!("usage: versions_cost <database-url> [--mb N] [--rounds N]")
    })?;
    let (mut mb, mut rounds) = (1usize, 50usize);
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
    let config = Config::from_args([
        "collab-server",
        "--database-url",
        &url,
        "--api-secret",
        SECRET,
        "--api-rate-per-sec",
        "0",
        "--versions-keep",
        "0",
    ])?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(collab_server::run(config, listener, shutdown.clone()));
    let client = reqwest::Client::new();
    let api = format!("http://{address}/api/documents");
    for _ in 0..200 {
        if client
            .get(format!("http://{address}/health"))
            .send()
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    // A document of about `mb` MB, as 1 KB paragraphs of text.
    let run = std::process::id();
    let large = format!("versions-cost-large-{run}");
    let doc = Doc::new();
    let text = doc.get_or_insert_text("t");
    let paragraph = "lorem ipsum dolor sit amet ".repeat(38);
    for _ in 0..mb * 1024 {
        let mut txn = doc.transact_mut();
        let len = text.len(&txn);
        text.insert(&mut txn, len, &paragraph);
    }
    let state = doc
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    let response = client
        .post(format!("{api}/{large}/updates"))
        .bearer_auth(SECRET)
        .body(state.clone())
        .send()
        .await?;
    anyhow::ensure!(
        response.status().is_success(),
        "seed: {}",
        response.status()
    );

    let mut made = Vec::new();
    let mut size = 0;
    for _ in 0..rounds {
        let started = Instant::now();
        let response = client
            .post(format!("{api}/{large}/versions"))
            .bearer_auth(SECRET)
            .send()
            .await?;
        made.push(started.elapsed());
        anyhow::ensure!(response.status().as_u16() == 201, "{}", response.status());
        size = response.json::<serde_json::Value>().await?["size"]
            .as_u64()
            .unwrap_or_default();
    }
    println!(
        "make a version of a {:.2} MB document: {}",
        size as f64 / 1e6,
        summary(made)
    );

    let small = format!("versions-cost-small-{run}");
    let response = client
        .put(format!("{api}/{small}?format=json"))
        .bearer_auth(SECRET)
        .json(&serde_json::json!({"t": "a small document"}))
        .send()
        .await?;
    anyhow::ensure!(response.status().is_success(), "{}", response.status());
    for _ in 0..1000 {
        let response = client
            .post(format!("{api}/{small}/versions"))
            .bearer_auth(SECRET)
            .send()
            .await?;
        anyhow::ensure!(response.status().as_u16() == 201, "{}", response.status());
    }
    let mut listed = Vec::new();
    for _ in 0..rounds {
        let started = Instant::now();
        let body: serde_json::Value = client
            .get(format!("{api}/{small}/versions?limit=1000"))
            .bearer_auth(SECRET)
            .send()
            .await?
            .json()
            .await?;
        listed.push(started.elapsed());
        anyhow::ensure!(body["versions"].as_array().map(Vec::len) == Some(1000));
    }
    println!("list 1,000 versions: {}", summary(listed));

    for name in [&large, &small] {
        client
            .delete(format!("{api}/{name}"))
            .bearer_auth(SECRET)
            .send()
            .await?;
    }
    shutdown.cancel();
    let _ = server.await;
    Ok(())
}
