//! The database failing under a running portcall: PostgreSQL refusing
//! every connection for ten seconds under load, and a SQLite database on a
//! full filesystem. Every answer is either a 2xx for a committed delivery
//! or a 503; nothing is lost; it recovers by itself.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portcall::store::deliveries::Status;

use crate::helpers::*;

const PING: &[u8] = br#"{"zen":"Keep it logically awesome.","hook_id":1}"#;

/// One webhook answer seen by the load: which delivery, when, what status.
#[derive(Debug, Clone)]
struct Sent {
    delivery: String,
    started: Instant,
    finished: Instant,
    status: u16,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_seconds_of_postgres_outage_under_load_answer_503_and_lose_nothing() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let app = Arc::new(TestApp::spawn(db).await);
    let sent = Arc::new(Mutex::new(Vec::<Sent>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));

    // Eight senders post distinct deliveries back to back.
    let mut senders = Vec::new();
    for s in 0..8 {
        let (app, sent, stop) = (app.clone(), sent.clone(), stop.clone());
        senders.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let delivery = format!("load-{s}-{n}");
                let started = Instant::now();
                let status = app
                    .post_github("ping", &delivery, PING)
                    .await
                    .status()
                    .as_u16();
                sent.lock().unwrap().push(Sent {
                    delivery,
                    started,
                    finished: Instant::now(),
                    status,
                });
                n += 1;
            }
        }));
    }

    tokio::time::sleep(Duration::from_secs(2)).await;
    // The outage: no new connection, every open one cut.
    let down = Instant::now();
    app.db.refuse_connections().await;
    let mut readiness = Vec::new();
    while down.elapsed() < Duration::from_secs(10) {
        let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
        readiness.push(ready.status().as_u16());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    app.db.allow_connections().await;
    let up = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for sender in senders {
        sender.await.unwrap();
    }

    let sent = sent.lock().unwrap().clone();
    let window: Vec<&Sent> = sent
        .iter()
        .filter(|s| s.started > down + Duration::from_millis(200) && s.finished < up)
        .collect();
    assert!(
        window.len() >= 8,
        "only {} requests inside the outage",
        window.len()
    );
    assert!(
        window.iter().all(|s| s.status == 503),
        "a 2xx during the outage: {:?}",
        window.iter().find(|s| s.status != 503)
    );
    assert!(
        readiness.iter().skip(1).all(|s| *s == 503),
        "/readyz during the outage: {readiness:?}"
    );
    assert!(
        sent.iter().all(|s| [202, 503].contains(&s.status)),
        "{:?}",
        sent.iter().find(|s| ![202, 503].contains(&s.status))
    );
    let after: Vec<&Sent> = sent
        .iter()
        .filter(|s| s.started > up + Duration::from_secs(1))
        .collect();
    assert!(
        !after.is_empty() && after.iter().all(|s| s.status == 202),
        "no recovery by itself"
    );

    // The senders retry what was refused, as GitHub's redelivery would.
    let refused: Vec<&str> = sent
        .iter()
        .filter(|s| s.status == 503)
        .map(|s| s.delivery.as_str())
        .collect();
    for delivery in &refused {
        let status = app
            .post_github("ping", delivery, PING)
            .await
            .status()
            .as_u16();
        // 200 if that 503 came after a commit it could not confirm.
        assert!([200, 202].contains(&status), "{delivery}: {status}");
    }
    let rows = app.wait_until_processed().await;
    let stored: BTreeSet<&str> = rows.iter().map(|r| r.delivery_id.as_str()).collect();
    let sent_ids: BTreeSet<&str> = sent.iter().map(|s| s.delivery.as_str()).collect();
    assert_eq!(rows.len(), stored.len(), "a delivery stored twice");
    assert_eq!(stored, sent_ids, "every delivery stored once");
    assert!(
        rows.iter().all(|r| r.status == Status::Processed),
        "every delivery processed"
    );
    eprintln!(
        "postgres outage: {} requests, {} answered 503, {} inside the 10 s window",
        sent.len(),
        refused.len(),
        window.len()
    );
    match Arc::try_unwrap(app) {
        Ok(app) => app.finish().await,
        Err(_) => panic!("a sender still holds the app"),
    }
}

/// A small tmpfs mounted on a fresh directory, unmounted when dropped.
struct SmallFs {
    dir: Option<tempfile::TempDir>,
    path: std::path::PathBuf,
}

impl SmallFs {
    /// `None` (with a note) where this process may not mount.
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!(
                "note: cannot mount a tmpfs here (needs root): the full-disk test is SKIPPED"
            );
            return None;
        }
        let path = dir.path().to_owned();
        Some(Self {
            dir: Some(dir),
            path,
        })
    }

    /// Fills what is left with one file; returns its path.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write as _;
        let filler = self.path.join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 64 * 1024];
        while file.write_all(&block).is_ok() {}
        while file.write_all(&block[..512]).is_ok() {}
        filler
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
        drop(self.dir.take());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_under_sqlite_answers_503_and_nothing_is_half_written() {
    let Some(fs) = SmallFs::mount("16m") else {
        return;
    };
    // The app owns the directory through its TestDb; `fs` unmounts it last.
    let dir = tempfile::Builder::new().tempdir_in(&fs.path).unwrap();
    let app = TestApp::spawn_with(
        TestDb::sqlite_in(dir),
        Spawn {
            worker: false,
            ..Spawn::default()
        },
    )
    .await;
    let body = {
        let mut body = b"{\"zen\":\"".to_vec();
        body.extend((0..60_000).map(|i| b'a' + (i % 26) as u8));
        body.extend_from_slice(b"\"}");
        body
    };
    assert_eq!(
        app.post_github("ping", "before-full", &body).await.status(),
        202
    );

    let filler = fs.fill();
    let mut answers = Vec::new();
    for i in 0..50 {
        let delivery = format!("while-full-{i}");
        let response = app.post_github("ping", &delivery, &body).await;
        let status = response.status().as_u16();
        if status == 503 {
            let error: serde_json::Value = response.json().await.unwrap();
            assert_eq!(error["error"]["code"], "unavailable");
        }
        answers.push((delivery, status));
        if status == 503 {
            break;
        }
    }
    assert!(
        answers.iter().all(|(_, s)| [202, 503].contains(s)),
        "{answers:?}"
    );
    assert_eq!(
        answers.last().unwrap().1,
        503,
        "a full disk never refused a delivery: {answers:?}"
    );

    // Room again: what was accepted is there whole, what was refused is not,
    // and the sender's retry is accepted.
    std::fs::remove_file(filler).unwrap();
    let stored: BTreeSet<String> = app
        .deliveries()
        .await
        .into_iter()
        .map(|d| d.delivery_id)
        .collect();
    for (delivery, status) in &answers {
        assert_eq!(
            stored.contains(delivery),
            *status == 202,
            "{delivery}: {status}"
        );
        if *status == 202 {
            assert_eq!(app.received_body("github", delivery).await, body);
        }
    }
    let (refused, _) = answers.last().unwrap();
    assert_eq!(app.post_github("ping", refused, &body).await.status(), 202);
    app.finish().await;
    drop(fs);
}
