//! Issue 20: a DELETE is final. Two replicas on one PostgreSQL and one Redis
//! (`COLLAB_TEST_DATABASE_URL`, `COLLAB_TEST_REDIS_URL`, set by scripts/test.sh); replica A
//! reaches Redis through a proxy the test can hold, as a Redis reconnect or a backlog would.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;

use collab_server::protocol::Message;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use yrs::Doc;
use yrs::block::ClientID;
use yrs::sync::AwarenessUpdate;

const SECRET: &str = "generations-secret";

fn urls() -> Option<(String, String)> {
    let database = std::env::var("COLLAB_TEST_DATABASE_URL").ok();
    let redis = std::env::var("COLLAB_TEST_REDIS_URL").ok();
    if database.is_none() || redis.is_none() {
        eprintln!(
            "COLLAB_TEST_DATABASE_URL and COLLAB_TEST_REDIS_URL are needed; run the suite through scripts/test.sh"
        );
    }
    Some((database?, redis?))
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    )
}

/// A TCP proxy whose client-to-server direction can be held: what the client writes meanwhile
/// waits, in order, and flows when released.
struct Proxy {
    addr: SocketAddr,
    held: Arc<watch::Sender<bool>>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("addr");
        let held = Arc::new(watch::channel(false).0);
        let sender = held.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                });
                let mut gate = sender.subscribe();
                tokio::spawn(async move {
                    let mut buffer = vec![0u8; 64 * 1024];
                    loop {
                        let read = match client_read.read(&mut buffer).await {
                            Ok(0) | Err(_) => break,
                            Ok(read) => read,
                        };
                        if gate.wait_for(|held| !*held).await.is_err() {
                            break;
                        }
                        if server_write.write_all(&buffer[..read]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Self { addr, held }
    }

    fn hold(&self, held: bool) {
        self.held.send_replace(held);
    }
}

fn redis_through(redis: &str, proxy: SocketAddr) -> String {
    let mut url = reqwest::Url::parse(redis).expect("redis url");
    url.set_host(Some(&proxy.ip().to_string())).expect("host");
    url.set_port(Some(proxy.port())).expect("port");
    url.to_string()
}

fn upstream(redis: &str) -> SocketAddr {
    let url = reqwest::Url::parse(redis).expect("redis url");
    let host = url.host_str().unwrap_or("127.0.0.1");
    let port = url.port().unwrap_or(6379);
    std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
        .expect("resolve redis")
        .next()
        .expect("an address")
}

async fn replica(database: &str, redis: &str, prefix: &str, id: &str) -> TestServer {
    TestServer::start(&[
        "--database-url",
        database,
        "--redis-url",
        redis,
        "--redis-prefix",
        prefix,
        "--instance-id",
        id,
        "--api-secret",
        SECRET,
    ])
    .await
}

async fn read_text(server: &TestServer, name: &str) -> String {
    let response = reqwest::Client::new()
        .get(server.http(&format!("/api/documents/{name}?format=text&root=t")))
        .bearer_auth(SECRET)
        .send()
        .await
        .expect("get");
    if response.status() == 404 {
        return String::new();
    }
    response.text().await.expect("text")
}

/// Waits for an awareness state of `client` on `connection`: a sync point for relay traffic.
async fn until_awareness(connection: &mut Client, name: &str, client: u64) {
    connection
        .expect(name, |message| match message {
            Message::Awareness(update) => update
                .clients
                .contains_key(&ClientID::new(client))
                .then_some(()),
            _ => None,
        })
        .await;
}

fn awareness(client: u64, state: &str) -> Message {
    let mut clients = std::collections::HashMap::new();
    clients.insert(
        ClientID::new(client),
        yrs::sync::awareness::AwarenessUpdateEntry {
            clock: 1,
            json: Arc::from(state),
        },
    );
    Message::Awareness(AwarenessUpdate { clients })
}

/// Scenario 1 and 2 of the issue: an edit A acknowledged before a DELETE on B, whose relay
/// message reaches B only after it, is not applied to the new document; A, hearing of the
/// DELETE, does not delete anything itself (its late deletion could erase what B's clients
/// wrote after the DELETE).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_is_final_across_replicas() {
    let Some((database, redis)) = urls() else {
        return;
    };
    let proxy = Proxy::start(upstream(&redis)).await;
    let prefix = unique("collab-generations");
    let a = replica(
        &database,
        &redis_through(&redis, proxy.addr),
        &prefix,
        "gen-a",
    )
    .await;
    let b = replica(&database, &redis, &prefix, "gen-b").await;
    let name = unique("generations-delete");

    // Both replicas have the document open, and see each other's edits.
    let (on_a, on_b) = (Doc::new(), Doc::new());
    let mut client_a = Client::connect(&a.ws_url()).await;
    client_a.open(&name, "", &on_a).await;
    let mut client_b = Client::connect(&b.ws_url()).await;
    client_b.open(&name, "", &on_b).await;
    client_a.send(&name, awareness(7001, "{\"a\":1}")).await;
    until_awareness(&mut client_b, &name, 7001).await;

    // A's traffic to Redis is held; A acknowledges an edit (it is stored in PostgreSQL).
    proxy.hold(true);
    client_a
        .edit_acknowledged(&name, &on_a, "written on A")
        .await;

    // B deletes the document, then a client of B writes and is acknowledged.
    let response = reqwest::Client::new()
        .delete(b.http(&format!("/api/documents/{name}")))
        .bearer_auth(SECRET)
        .send()
        .await
        .expect("delete");
    assert_eq!(response.status(), 200);
    let fresh = Doc::new();
    let mut writer = Client::connect(&b.ws_url()).await;
    writer.open(&name, "", &fresh).await;
    assert_eq!(text(&fresh), "", "the deleted document starts empty");
    writer
        .edit_acknowledged(&name, &fresh, "after delete")
        .await;

    // A's traffic flows: its held update, then (in order, on the same connection) an awareness
    // state that tells us the update has reached B.
    proxy.hold(false);
    let mut watcher_a = Client::connect(&a.ws_url()).await;
    watcher_a.open(&name, "", &Doc::new()).await;
    watcher_a.send(&name, awareness(7002, "{\"a\":2}")).await;
    until_awareness(&mut writer, &name, 7002).await;

    assert_eq!(read_text(&b, &name).await, "after delete", "live on B");
    assert_eq!(read_text(&a, &name).await, "after delete", "live on A");
    let deletes_on_a = metric(
        &a,
        "collab_server_store_duration_seconds_count{operation=\"delete\"}",
    )
    .await;
    assert_eq!(
        deletes_on_a, 0.0,
        "only the replica that ran the DELETE deletes"
    );
    a.stop().await;
    b.stop().await;

    // After restarting: what is stored is what was acknowledged after the DELETE.
    let again = TestServer::start(&["--database-url", &database, "--api-secret", SECRET]).await;
    assert_eq!(read_text(&again, &name).await, "after delete", "stored");
    again.stop().await;
}
