//! Issue 20's fault-injection checker: three replicas on one PostgreSQL and one Redis
//! (`COLLAB_TEST_DATABASE_URL`, `COLLAB_TEST_REDIS_URL`), each reaching Redis through a proxy
//! that can hold its traffic (so messages of different publishers arrive out of order, late,
//! after deletions), while clients edit, the API posts updates and deletes documents, sessions
//! come and go (rooms unload and load again), compactions run (one every few rows) and replicas
//! restart: gracefully (SIGTERM) or killed (SIGKILL). Each replica is the real binary in its own
//! process. A seeded generator picks the operations; they run one after another, so
//! "acknowledged before" and "deleted after" are well defined.
//!
//! At the end, with every proxy released, it checks:
//! * every acknowledged edit is present unless a DELETE of its document was acknowledged after it;
//! * nothing sent before an acknowledged DELETE is present after it (deleted content never comes
//!   back: not through the relay, not from a log row, not from a compaction);
//! * the replicas converge, and a fresh replica reads the same from the store;
//! * every document answers (no room is stuck).
//!
//! The seed fixes the operations, not the interleaving of network and tasks: a failing seed
//! replays the same operations (`COLLAB_CHECKER_SEED=<seed>`), which is how the regression seeds
//! below are kept. Long runs: `scripts/checker.sh` (figures in docs/reliability.md).

mod support;

use std::collections::HashMap;
use std::time::Duration;

use collab_server::protocol::{Auth, Message};
use support::proxy::{Proxy, redis_through, upstream};
use support::*;
use yrs::Doc;
use yrs::sync::SyncMessage;

const SECRET: &str = "checker-secret";
const REPLICAS: usize = 3;
const DOCUMENTS: usize = 3;
/// Seeds that once failed; run on every test run. 4 (a posted update back after a DELETE), 5
/// and 6 (an acknowledged edit lost) failed against the code before generations (`08b4de4`).
const REGRESSION_SEEDS: &[u64] = &[4, 5, 6];
/// How long one client operation may take before it counts as not acknowledged.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

/// xorshift64*: enough to pick operations, and the same everywhere.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[derive(Debug, Clone, Copy)]
enum Operation {
    Edit { replica: usize, document: usize },
    Post { replica: usize, document: usize },
    Delete { replica: usize, document: usize },
    Leave { replica: usize, document: usize },
    Hold { replica: usize },
    Release { replica: usize },
    Restart { replica: usize },
    Kill { replica: usize },
    Pause,
}

fn operations(seed: u64, count: usize) -> Vec<Operation> {
    let mut rng = Rng::new(seed);
    (0..count)
        .map(|_| {
            let replica = rng.below(REPLICAS);
            let document = rng.below(DOCUMENTS);
            match rng.below(100) {
                0..40 => Operation::Edit { replica, document },
                40..55 => Operation::Post { replica, document },
                55..63 => Operation::Delete { replica, document },
                63..71 => Operation::Leave { replica, document },
                71..81 => Operation::Hold { replica },
                81..91 => Operation::Release { replica },
                91..93 => Operation::Restart { replica },
                93..95 => Operation::Kill { replica },
                _ => Operation::Pause,
            }
        })
        .collect()
}

/// A token's fate, as the checker saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Acknowledged,
    Unknown,
}

/// Something written into a document: `<token>` text, at operation `at`.
#[derive(Debug)]
struct Written {
    document: usize,
    token: String,
    at: usize,
    fate: Fate,
}

impl Written {
    fn new(document: usize, token: String, at: usize, acknowledged: bool) -> Self {
        let fate = if acknowledged {
            Fate::Acknowledged
        } else {
            Fate::Unknown
        };
        Self {
            document,
            token,
            at,
            fate,
        }
    }
}

/// A client session on one replica and one document: its own Yjs document, dropped whenever the
/// session ends (a client whose document was deleted starts over, as a provider that reloads).
struct Session {
    client: Client,
    doc: Doc,
}

impl Session {
    async fn open(url: &str, name: &str) -> Option<Self> {
        let mut client = Client::try_connect(url).await?;
        let doc = Doc::new();
        let opened = tokio::time::timeout(OPERATION_TIMEOUT, async {
            client
                .try_send(
                    name,
                    Message::Auth(Auth::Token {
                        token: String::new(),
                        provider_version: Some("4.8.0".into()),
                    }),
                )
                .await;
            let sv = yrs::ReadTxn::state_vector(&yrs::Transact::transact(&doc));
            client
                .try_send(name, Message::Sync(SyncMessage::SyncStep1(sv)))
                .await;
            let (mut step2, mut synced) = (false, false);
            while !(step2 && synced) {
                match next_message(&mut client, name).await? {
                    Message::Auth(Auth::PermissionDenied { .. }) => return None,
                    Message::Sync(SyncMessage::SyncStep1(remote)) => {
                        let diff =
                            yrs::ReadTxn::encode_diff_v1(&yrs::Transact::transact(&doc), &remote);
                        client
                            .try_send(name, Message::Sync(SyncMessage::SyncStep2(diff)))
                            .await;
                    }
                    Message::Sync(SyncMessage::SyncStep2(update) | SyncMessage::Update(update)) => {
                        apply(&doc, &update);
                        step2 = true;
                    }
                    Message::SyncStatus(true) => synced = true,
                    _ => {}
                }
            }
            Some(())
        })
        .await;
        match opened {
            Ok(Some(())) => Some(Self { client, doc }),
            _ => None,
        }
    }

    /// Appends `token`; `true` once the server acknowledged it as stored.
    async fn edit(&mut self, name: &str, token: &str) -> bool {
        let update = insert(&self.doc, token);
        if !self
            .client
            .try_send(name, Message::Sync(SyncMessage::Update(update)))
            .await
        {
            return false;
        }
        let acknowledged = tokio::time::timeout(OPERATION_TIMEOUT, async {
            loop {
                match next_message(&mut self.client, name).await? {
                    Message::SyncStatus(true) => return Some(true),
                    Message::SyncStatus(false) | Message::Auth(Auth::PermissionDenied { .. }) => {
                        return Some(false);
                    }
                    Message::Sync(SyncMessage::SyncStep2(update) | SyncMessage::Update(update)) => {
                        apply(&self.doc, &update)
                    }
                    _ => {}
                }
            }
        })
        .await;
        matches!(acknowledged, Ok(Some(true)))
    }
}

/// The next message for `name`, or `None` once the socket is closed.
async fn next_message(client: &mut Client, name: &str) -> Option<Message> {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message as WsMessage;
    loop {
        let frame = match client.ws.next().await? {
            Ok(WsMessage::Binary(bytes)) => bytes,
            Ok(WsMessage::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        };
        if let Ok(collab_server::protocol::Frame::Document { address, message }) =
            collab_server::protocol::decode_frame(&frame)
            && address == name
        {
            return Some(message);
        }
    }
}

/// One replica: the real binary in a process of its own, so that it can be killed.
struct Replica {
    child: tokio::process::Child,
    port: u16,
}

impl Replica {
    fn http(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: nothing is flushed, nothing is said.
    async fn kill(mut self) {
        let _ = self.child.kill().await;
    }

    /// SIGTERM, then waits for the graceful stop (every document stored).
    async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = tokio::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
        }
        if tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

struct Cluster {
    database: String,
    redis: String,
    prefix: String,
    proxies: Vec<Proxy>,
    replicas: Vec<Option<Replica>>,
}

impl Cluster {
    async fn start(database: &str, redis: &str, seed: u64) -> Self {
        let prefix = format!(
            "collab-checker-{seed}-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        );
        let mut cluster = Self {
            database: database.to_owned(),
            redis: redis.to_owned(),
            prefix,
            proxies: Vec::new(),
            replicas: Vec::new(),
        };
        for _ in 0..REPLICAS {
            cluster.proxies.push(Proxy::start(upstream(redis)).await);
        }
        for replica in 0..REPLICAS {
            let server = cluster.launch(replica).await;
            cluster.replicas.push(Some(server));
        }
        cluster
    }

    async fn launch(&self, replica: usize) -> Replica {
        let redis = redis_through(&self.redis, self.proxies[replica].addr);
        let port = closed_port();
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_collab-server"))
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--database-url", &self.database, "--redis-url", &redis])
            .args(["--redis-prefix", &self.prefix])
            .args(["--instance-id", &format!("checker-{replica}")])
            .args(["--api-secret", SECRET, "--api-rate-per-sec", "0"])
            .args(["--compact-after", "4", "--log-level", "warn"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("the collab-server binary starts");
        let replica = Replica { child, port };
        for _ in 0..400 {
            if reqwest::get(replica.http("/health"))
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return replica;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("replica did not become healthy");
    }

    fn server(&self, replica: usize) -> &Replica {
        self.replicas[replica].as_ref().expect("running")
    }

    /// Stops a replica (gracefully, or with SIGKILL) and starts it again.
    async fn restart(&mut self, replica: usize, kill: bool) {
        if let Some(server) = self.replicas[replica].take() {
            if kill {
                server.kill().await;
            } else {
                server.stop().await;
            }
        }
        let server = self.launch(replica).await;
        self.replicas[replica] = Some(server);
    }

    async fn stop(mut self) {
        for proxy in &self.proxies {
            proxy.hold(false);
        }
        for server in self.replicas.iter_mut().filter_map(Option::take) {
            server.stop().await;
        }
    }
}

/// What a replica reads of `name` through the API, within the operation timeout.
async fn read_text(server: &Replica, name: &str) -> Result<String, String> {
    read_text_at(
        &server.http(&format!("/api/documents/{name}?format=text&root=t")),
        name,
    )
    .await
}

async fn read_text_at(url: &str, name: &str) -> Result<String, String> {
    let response = tokio::time::timeout(
        OPERATION_TIMEOUT,
        reqwest::Client::new().get(url).bearer_auth(SECRET).send(),
    )
    .await
    .map_err(|_| format!("{name}: no answer within {OPERATION_TIMEOUT:?} (a stuck room?)"))?
    .map_err(|e| e.to_string())?;
    match response.status().as_u16() {
        200 => response.text().await.map_err(|e| e.to_string()),
        404 => Ok(String::new()),
        status => Err(format!("{name}: {status}")),
    }
}

/// What one seed did.
#[derive(Default)]
struct Tally {
    acknowledged: usize,
    unknown: usize,
    deletions: usize,
    restarts: usize,
    kills: usize,
}

/// Runs one seed; returns the violations found (empty: it held).
async fn run(database: &str, redis: &str, seed: u64, count: usize) -> (Vec<String>, Tally) {
    let mut tally = Tally::default();
    let mut cluster = Cluster::start(database, redis, seed).await;
    let names: Vec<String> = (0..DOCUMENTS)
        .map(|d| format!("{}-doc{d}", cluster.prefix))
        .collect();
    let mut sessions: HashMap<(usize, usize), Session> = HashMap::new();
    let mut written: Vec<Written> = Vec::new();
    // Per document: the operation index of the last acknowledged DELETE.
    let mut deleted_at: HashMap<usize, usize> = HashMap::new();
    let http = reqwest::Client::new();
    for (at, operation) in operations(seed, count).into_iter().enumerate() {
        match operation {
            Operation::Edit { replica, document } => {
                let name = &names[document];
                let token = format!("<e{at}>");
                let session = match sessions.entry((replica, document)) {
                    std::collections::hash_map::Entry::Occupied(open) => open.into_mut(),
                    std::collections::hash_map::Entry::Vacant(vacant) => {
                        match Session::open(&cluster.server(replica).ws_url(), name).await {
                            Some(session) => vacant.insert(session),
                            None => continue,
                        }
                    }
                };
                let acknowledged = session.edit(name, &token).await;
                if !acknowledged {
                    // Denied (deleted), closed or slow: this client starts over next time.
                    sessions.remove(&(replica, document));
                }
                written.push(Written::new(document, token, at, acknowledged));
            }
            Operation::Post { replica, document } => {
                let token = format!("<p{at}>");
                let update = insert(&Doc::new(), &token);
                let response = tokio::time::timeout(
                    OPERATION_TIMEOUT,
                    http.post(
                        cluster
                            .server(replica)
                            .http(&format!("/api/documents/{}/updates", names[document])),
                    )
                    .bearer_auth(SECRET)
                    .body(update)
                    .send(),
                )
                .await;
                let acknowledged =
                    matches!(&response, Ok(Ok(response)) if response.status().is_success());
                written.push(Written::new(document, token, at, acknowledged));
            }
            Operation::Delete { replica, document } => {
                let response = tokio::time::timeout(
                    Duration::from_secs(40),
                    http.delete(
                        cluster
                            .server(replica)
                            .http(&format!("/api/documents/{}", names[document])),
                    )
                    .bearer_auth(SECRET)
                    .send(),
                )
                .await;
                if matches!(&response, Ok(Ok(response)) if matches!(response.status().as_u16(), 200 | 404))
                {
                    deleted_at.insert(document, at);
                    tally.deletions += 1;
                }
                // Sessions of this document on that replica were ended by it.
                sessions.remove(&(replica, document));
            }
            Operation::Leave { replica, document } => {
                sessions.remove(&(replica, document));
            }
            Operation::Hold { replica } => cluster.proxies[replica].hold(true),
            Operation::Release { replica } => cluster.proxies[replica].hold(false),
            Operation::Restart { replica } | Operation::Kill { replica } => {
                sessions.retain(|(r, _), _| *r != replica);
                let kill = matches!(operation, Operation::Kill { .. });
                cluster.restart(replica, kill).await;
                tally.restarts += 1;
                tally.kills += usize::from(kill);
            }
            Operation::Pause => tokio::time::sleep(Duration::from_millis(600)).await,
        }
    }

    // Settle: every proxy flows; the replicas' relay catches up.
    for proxy in &cluster.proxies {
        proxy.hold(false);
    }
    sessions.clear();
    let mut violations = Vec::new();
    let mut finals: Vec<String> = Vec::new();
    for name in &names {
        let mut texts = Vec::new();
        let mut converged = false;
        for _ in 0..40 {
            texts.clear();
            for replica in 0..REPLICAS {
                match read_text(cluster.server(replica), name).await {
                    Ok(text) => texts.push(text),
                    Err(error) => violations.push(format!("replica {replica}: {error}")),
                }
            }
            if texts.len() == REPLICAS && texts.iter().all(|t| t == &texts[0]) {
                converged = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        if !converged {
            violations.push(format!("{name}: replicas did not converge: {texts:?}"));
        }
        finals.push(texts.first().cloned().unwrap_or_default());
    }
    let database = cluster.database.clone();
    cluster.stop().await;
    // What the store holds, read by a fresh replica.
    let fresh = TestServer::start(&["--database-url", &database, "--api-secret", SECRET]).await;
    for (document, name) in names.iter().enumerate() {
        let url = fresh.http(&format!("/api/documents/{name}?format=text&root=t"));
        let stored = match read_text_at(&url, name).await {
            Ok(text) => text,
            Err(error) => {
                violations.push(format!("after restart: {error}"));
                continue;
            }
        };
        if stored != finals[document] {
            violations.push(format!(
                "{name}: the store reads {stored:?}, the replicas read {:?}",
                finals[document]
            ));
        }
        let deletion = deleted_at.get(&document).copied();
        for item in written.iter().filter(|w| w.document == document) {
            let present = stored.contains(&item.token);
            let before_deletion = deletion.is_some_and(|d| item.at < d);
            if before_deletion && present {
                violations.push(format!(
                    "{name}: {} (operation {}) came back after the DELETE at operation {}",
                    item.token,
                    item.at,
                    deletion.unwrap_or_default()
                ));
            }
            if !before_deletion && item.fate == Fate::Acknowledged && !present {
                violations.push(format!(
                    "{name}: acknowledged {} (operation {}) is lost",
                    item.token, item.at
                ));
            }
        }
    }
    fresh.stop().await;
    for item in &written {
        match item.fate {
            Fate::Acknowledged => tally.acknowledged += 1,
            Fate::Unknown => tally.unknown += 1,
        }
    }
    (violations, tally)
}

/// The bounded run of the test command: the regression seeds and a few more, or the seeds of
/// `COLLAB_CHECKER_SEED` (one) / `COLLAB_CHECKER_SEEDS` (how many from 1) with
/// `COLLAB_CHECKER_OPERATIONS` each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_edits_survive_and_deletions_stay_deleted_under_faults() {
    let Some((database, redis)) = database_and_redis() else {
        return;
    };
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let count = env("COLLAB_CHECKER_OPERATIONS").unwrap_or(60) as usize;
    let seeds: Vec<u64> = match (env("COLLAB_CHECKER_SEED"), env("COLLAB_CHECKER_SEEDS")) {
        (Some(seed), _) => vec![seed],
        (None, Some(n)) => (1..=n).collect(),
        (None, None) => {
            let mut seeds = REGRESSION_SEEDS.to_vec();
            seeds.push(1);
            seeds
        }
    };
    let mut failures = Vec::new();
    let mut operations_run = 0;
    for seed in &seeds {
        let (violations, tally) = run(&database, &redis, *seed, count).await;
        operations_run += count;
        eprintln!(
            "checker: seed {seed}, {count} operations ({} writes acknowledged, {} not, {} deletions, {} restarts of which {} kills), {} violations",
            tally.acknowledged,
            tally.unknown,
            tally.deletions,
            tally.restarts,
            tally.kills,
            violations.len()
        );
        for violation in &violations {
            eprintln!("  seed {seed}: {violation}");
        }
        if !violations.is_empty() {
            failures.push(*seed);
        }
    }
    eprintln!(
        "checker: {} seeds, {operations_run} operations, {} failing seeds {failures:?}",
        seeds.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "failing seeds {failures:?}: replay with COLLAB_CHECKER_SEED=<seed>, and keep it in REGRESSION_SEEDS once fixed"
    );
}
