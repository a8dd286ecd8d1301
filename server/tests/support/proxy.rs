//! A TCP proxy in front of Redis whose client-to-server direction a test can hold, as a Redis
//! reconnect, a backlog or a busy pipeline would: what the client writes meanwhile waits, in
//! order, and flows when released.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A TCP proxy whose client-to-server direction can be held: what the client writes meanwhile
/// waits, in order, and flows when released.
pub struct Proxy {
    pub addr: SocketAddr,
    held: Arc<watch::Sender<bool>>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Self {
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

    pub fn hold(&self, held: bool) {
        self.held.send_replace(held);
    }
}

pub fn redis_through(redis: &str, proxy: SocketAddr) -> String {
    let mut url = reqwest::Url::parse(redis).expect("redis url");
    url.set_host(Some(&proxy.ip().to_string())).expect("host");
    url.set_port(Some(proxy.port())).expect("port");
    url.to_string()
}

pub fn upstream(redis: &str) -> SocketAddr {
    let url = reqwest::Url::parse(redis).expect("redis url");
    let host = url.host_str().unwrap_or("127.0.0.1");
    let port = url.port().unwrap_or(6379);
    std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
        .expect("resolve redis")
        .next()
        .expect("an address")
}

/// Runs one Redis command on a connection of its own (authenticating as the URL says) and
/// returns the first reply line, e.g. `:1` or `-NOPERM ...`.
pub async fn redis_command(redis: &str, parts: &[&[u8]]) -> String {
    redis_reply(redis, parts, false).await
}

/// A counter of Redis' `INFO stats` (`total_reads_processed`, ...).
pub async fn redis_stat(redis: &str, field: &str) -> u64 {
    let info = redis_reply(redis, &[b"INFO", b"stats"], true).await;
    info.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in INFO stats: {info}"))
}

async fn redis_reply(redis: &str, parts: &[&[u8]], whole: bool) -> String {
    let mut stream = TcpStream::connect(upstream(redis)).await.expect("redis");
    let url = reqwest::Url::parse(redis).expect("redis url");
    let encode = |parts: &[&[u8]]| {
        let mut command = format!("*{}\r\n", parts.len()).into_bytes();
        for part in parts {
            command.extend_from_slice(format!("${}\r\n", part.len()).as_bytes());
            command.extend_from_slice(part);
            command.extend_from_slice(b"\r\n");
        }
        command
    };
    let mut reader = tokio::io::BufReader::new(&mut stream);
    if let Some(password) = url.password() {
        let user = if url.username().is_empty() {
            "default"
        } else {
            url.username()
        };
        reader
            .get_mut()
            .write_all(&encode(&[b"AUTH", user.as_bytes(), password.as_bytes()]))
            .await
            .expect("auth");
        let mut line = String::new();
        tokio::io::AsyncBufReadExt::read_line(&mut reader, &mut line)
            .await
            .expect("auth reply");
    }
    reader
        .get_mut()
        .write_all(&encode(parts))
        .await
        .expect("command");
    let mut line = String::new();
    tokio::io::AsyncBufReadExt::read_line(&mut reader, &mut line)
        .await
        .expect("reply");
    let length = line
        .strip_prefix('$')
        .and_then(|n| n.trim().parse::<usize>().ok());
    if let (true, Some(length)) = (whole, length) {
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body).await.expect("bulk reply");
        return String::from_utf8_lossy(&body).into_owned();
    }
    line.trim_end().to_owned()
}
