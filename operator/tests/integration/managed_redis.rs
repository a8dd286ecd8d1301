//! The managed Redis as built, run by a real `redis-server`: it starts from the config file
//! the operator puts in its Secret, demands the password, accepts it, and the password is not
//! on its command line (`/proc/<pid>/cmdline`, which every user on the node can read).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One RESP command, one reply line.
fn ask(stream: &mut TcpStream, reader: &mut BufReader<TcpStream>, args: &[&str]) -> String {
    let mut command = format!("*{}\r\n", args.len());
    for arg in args {
        command.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    stream.write_all(command.as_bytes()).unwrap();
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    line.trim_end().to_owned()
}

#[test]
fn redis_runs_from_the_built_config_file_and_requires_the_password() {
    let Ok(status) = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
    else {
        panic!(
            "redis-server is not installed: this test runs the managed Redis configuration in a real Redis (Debian: apt-get install redis-server)"
        );
    };
    assert!(status.success());

    let case = &common::CASES[0];
    let built = common::built(case);
    let redis = built
        .redis
        .as_ref()
        .expect("the kind example has a managed Redis");
    let data = redis.secret.data.as_ref().unwrap();
    let config = String::from_utf8(data["redis.conf"].0.clone()).unwrap();
    let password = String::from_utf8(data["password"].0.clone()).unwrap();
    assert!(config.contains(&password));
    let container = &redis
        .deployment
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0];
    let command = container.command.clone().unwrap_or_default();
    let args = container.args.clone().unwrap_or_default();
    for part in command.iter().chain(&args) {
        assert!(
            !part.contains(&password),
            "the password is on the command line: {part}"
        );
    }
    assert!(
        container.env.is_none(),
        "the password is not in the environment either"
    );

    let dir = std::env::temp_dir().join(format!("collab-managed-redis-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("redis.conf");
    std::fs::write(&file, &config).unwrap();
    let port = free_port();
    // The built command with the path of the file here; the port and directory are the
    // test's (the pod's are fixed), given after the file as redis-server allows.
    assert_eq!(command, ["redis-server", "/etc/redis/redis.conf"]);
    let child = Command::new("redis-server")
        .arg(&file)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--dir"])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server(child);

    // A hang guard, not a timing assertion.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut stream = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(stream) => break stream,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(error) => panic!("redis-server did not listen on {port}: {error}"),
        }
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    assert!(ask(&mut stream, &mut reader, &["PING"]).starts_with("-NOAUTH"));
    assert!(ask(&mut stream, &mut reader, &["AUTH", "not-the-password"]).starts_with("-WRONGPASS"));
    assert_eq!(ask(&mut stream, &mut reader, &["AUTH", &password]), "+OK");
    assert_eq!(ask(&mut stream, &mut reader, &["PING"]), "+PONG");
    // Nothing is persisted: snapshots are off.
    assert_eq!(
        ask(&mut stream, &mut reader, &["CONFIG", "GET", "save"]),
        "*2"
    );
    let mut reply = Vec::new();
    for _ in 0..4 {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        reply.push(line.trim_end().to_owned());
    }
    assert_eq!(reply, ["$4", "save", "$0", ""]);

    let cmdline = std::fs::read(format!("/proc/{}/cmdline", server.0.id())).unwrap();
    assert!(
        !String::from_utf8_lossy(&cmdline).contains(&password),
        "the password is visible in /proc/<pid>/cmdline"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
