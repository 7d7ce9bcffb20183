//! Slow and greedy clients against a real `portcall serve` with one HTTP
//! worker: a body trickled one byte a second, or a request head trickled
//! the same way, is cut off with 408 once `server.client_timeout_secs`
//! has passed, and meanwhile the one worker keeps answering everyone else;
//! `server.max_connections` bounds how many connections it serves at once.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::process::Child;

use crate::helpers::*;

const TIMEOUT_SECS: u64 = 2;

/// `portcall serve` with one HTTP worker, a 2 s client timeout and at most
/// `max_connections` connections.
async fn serve(dir: &std::path::Path, max_connections: usize) -> (Child, u16) {
    let db_url = format!("sqlite://{}", dir.join("slow.db").display());
    let config = write_config(dir, &db_url, false, false, "");
    let port = free_port();
    let child = portcall_command(&config)
        .arg("serve")
        .env("RUST_LOG", "warn")
        .env("PORTCALL__SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("PORTCALL__SERVER__WORKERS", "1")
        .env(
            "PORTCALL__SERVER__CLIENT_TIMEOUT_SECS",
            TIMEOUT_SECS.to_string(),
        )
        .env(
            "PORTCALL__SERVER__MAX_CONNECTIONS",
            max_connections.to_string(),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("portcall starts");
    wait_until_serving(port).await;
    (child, port)
}

/// A signed push's request head, declaring the whole body's length.
fn head(port: u16, delivery: &str, body: &[u8]) -> String {
    let mut head = format!(
        "POST /webhooks/github HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in github_headers(GITHUB_SECRET, "push", delivery, body) {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// Sends `first` at once, then `rest` one byte a second until the server
/// answers or closes; returns the status line's code (0 if it closed
/// without one) and how long that took.
async fn trickle(port: u16, first: &[u8], rest: &[u8]) -> (u16, Duration) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream.write_all(first).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let rest = rest.to_vec();
    let writer = tokio::spawn(async move {
        for byte in rest {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if write.write_all(&[byte]).await.is_err() {
                break;
            }
        }
        // Hold the connection open: the server must be the one to end it.
        tokio::time::sleep(Duration::from_secs(60)).await;
    });
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), read.read_to_end(&mut answer)).await;
    writer.abort();
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, started.elapsed())
}

fn assert_cut_off(what: &str, (status, took): (u16, Duration)) {
    assert_eq!(status, 408, "{what}: answered {status} after {took:?}");
    let limit = Duration::from_secs(TIMEOUT_SECS);
    assert!(
        took >= limit - Duration::from_millis(100) && took < limit * 3,
        "{what}: cut off after {took:?}, the timeout is {limit:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_body_or_head_is_cut_off_and_never_holds_the_worker() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, port) = serve(dir.path(), 25_000).await;
    let body = fixture("github/push.json");

    // Four bodies and four heads trickle in at once on the only worker...
    let mut slow = Vec::new();
    for i in 0..4 {
        let head = head(port, &format!("trickled-{i}"), &body);
        let (whole, body) = (head.clone(), body.clone());
        slow.push(tokio::spawn(async move {
            trickle(port, whole.as_bytes(), &body).await
        }));
        slow.push(tokio::spawn(async move {
            let (start, rest) = head.as_bytes().split_at(20);
            trickle(port, start, rest).await
        }));
    }
    // ...and everyone else is still answered at once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..20 {
        let started = Instant::now();
        assert_eq!(post_push(port, &format!("prompt-{i}")).await, 202);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }
    for (i, handle) in slow.into_iter().enumerate() {
        let what = if i % 2 == 0 {
            "a trickled body"
        } else {
            "a trickled head"
        };
        assert_cut_off(what, handle.await.unwrap());
    }

    // Only the prompt deliveries were stored.
    let settings =
        portcall::config::Settings::load(Some(&dir.path().join("portcall.toml"))).unwrap();
    let store = portcall::store::Db::connect(&settings.database)
        .await
        .unwrap();
    let rows = portcall::store::deliveries::all(&store).await.unwrap();
    assert_eq!(rows.len(), 20);
    assert!(rows.iter().all(|r| r.delivery_id.starts_with("prompt-")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_bounds_the_connections_served_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, port) = serve(dir.path(), 2).await;
    let body = fixture("github/push.json");

    // Two trickling clients take both connections...
    let mut slow = Vec::new();
    for i in 0..2 {
        let head = head(port, &format!("holding-{i}"), &body);
        let body = body.clone();
        slow.push(tokio::spawn(async move {
            trickle(port, head.as_bytes(), &body).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // ...so a third waits until the timeout frees one, then is served.
    let started = Instant::now();
    assert_eq!(post_push(port, "waited").await, 202);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(1),
        "served after {waited:?} although both connections were taken"
    );
    for handle in slow {
        assert_cut_off("a connection holder", handle.await.unwrap());
    }
}
