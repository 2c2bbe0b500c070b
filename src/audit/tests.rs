use super::*;
use crate::auth::ManualClock;

const T0: u64 = 1_700_000_000_123;

fn mk_log(path: &Path) -> AuditLog {
    let config = AuditConfig {
        output: Some(path.to_owned()),
        queue_capacity: 64,
        key_file: None,
    };
    AuditLog::open(&config, Arc::new(ManualClock::new(T0)))
        .unwrap()
        .unwrap()
}

fn mk_request(log: &AuditLog, id: &str) {
    let record = log.request(id, &Method::POST, "/v1/chat/completions", None);
    record.set_key("alice");
    record.set_route("claude-3-haiku", "anthropic.claude-3-haiku-20240307-v1:0", false);
    record.responded(200, None);
    record.set_outcome(
        StreamOutcome::Ok,
        Some(Usage {
            input_tokens: 5,
            output_tokens: 7,
            cache_read_tokens: 2,
            cache_write_tokens: 0,
        }),
    );
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn times_are_rfc3339_utc_with_milliseconds() {
    let mut out = Vec::new();
    write_time(&mut out, 0);
    assert_eq!(out, b"\"1970-01-01T00:00:00.000Z\"");
    out.clear();
    write_time(&mut out, T0);
    assert_eq!(out, b"\"2023-11-14T22:13:20.123Z\"");
    out.clear();
    write_time(&mut out, 951_782_400_000); // leap day
    assert_eq!(out, b"\"2000-02-29T00:00:00.000Z\"");
}

#[tokio::test]
async fn records_are_chained_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let log = mk_log(&path);
    mk_request(&log, "r1");
    log.auth_event(&AuthEvent {
        event: "session_opened",
        request_id: "r2",
        key: Some("alice"),
        client: Some("127.0.0.1:5000".parse().unwrap()),
    });
    mk_request(&log, "r3");
    log.flush().await;
    let lines = lines(&path);
    assert_eq!(lines.len(), 4, "{lines:#?}");
    let request: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(request["type"], "request");
    assert_eq!(request["time"], "2023-11-14T22:13:20.123Z");
    assert_eq!(request["key"], "alice");
    assert_eq!(request["model"], "claude-3-haiku");
    assert_eq!(request["prompt_tokens"], 7);
    assert_eq!(request["completion_tokens"], 7);
    assert_eq!(request["cached_tokens"], 2);
    assert_eq!(request["status"], 200);
    assert_eq!(request["outcome"], "ok");
    let event: serde_json::Value = serde_json::from_str(&lines[2]).unwrap();
    assert_eq!(event["event"], "session_opened");
    assert_eq!(event["client"], "127.0.0.1:5000");
    let verified = verify_file(&path, Some(GENESIS), &LineHasher::unkeyed()).unwrap();
    assert_eq!(verified.lines, 4);
    assert_eq!(
        verified.head,
        serde_json::from_str::<serde_json::Value>(&lines[3]).unwrap()["hash"]
    );
}

#[tokio::test]
async fn edits_and_deletions_are_found_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let log = mk_log(&path);
    for i in 0..4 {
        mk_request(&log, &format!("r{i}"));
    }
    log.flush().await;
    let original = lines(&path);
    let check = |lines: &[String]| {
        verify(
            io::Cursor::new(lines.join("\n") + "\n"),
            None,
            &LineHasher::unkeyed(),
        )
    };

    let mut edited = original.clone();
    edited[2] = edited[2].replace("\"status\":200", "\"status\":201");
    assert_eq!(check(&edited).unwrap_err().line, 3);

    let mut deleted = original.clone();
    deleted.remove(2);
    let err = check(&deleted).unwrap_err();
    assert_eq!(err.line, 3);
    assert!(err.reason.contains("chain broken"), "{err}");

    let headless = original[1..].to_vec();
    assert_eq!(check(&headless).unwrap_err().line, 1);

    let mut swapped = original.clone();
    swapped.swap(2, 3);
    assert_eq!(check(&swapped).unwrap_err().line, 3);

    check(&original).unwrap();
}

#[tokio::test]
async fn restart_and_rotation_continue_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let log = mk_log(&path);
    mk_request(&log, "a");
    log.flush().await;
    drop(log);
    // A second process appends to the same file.
    let log = mk_log(&path);
    mk_request(&log, "b");
    log.flush().await;
    let before = verify_file(&path, Some(GENESIS), &LineHasher::unkeyed()).unwrap();
    assert_eq!(before.lines, 4);

    // logrotate moves the file away, then SIGHUP reopens.
    let rotated = dir.path().join("audit.log.1");
    std::fs::rename(&path, &rotated).unwrap();
    log.reopen().await.unwrap();
    mk_request(&log, "c");
    log.flush().await;
    let after = verify_file(&path, Some(&before.head), &LineHasher::unkeyed()).unwrap();
    assert_eq!(after.lines, 2);
    assert_eq!(after.starts_after, before.head);
    assert!(verify_file(&path, Some(GENESIS), &LineHasher::unkeyed()).is_err());
}

#[tokio::test]
async fn a_full_queue_drops_and_counts_instead_of_waiting() {
    let (tx, _rx) = mpsc::channel(1);
    let log = AuditLog {
        tx,
        counters: Arc::default(),
        clock: Arc::new(ManualClock::new(T0)),
    };
    for i in 0..3 {
        mk_request(&log, &format!("r{i}"));
    }
    assert_eq!(log.dropped(), 2);
}

#[tokio::test]
async fn drops_are_recorded_on_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let log = mk_log(&path);
    log.counters.dropped.fetch_add(3, Ordering::Relaxed);
    mk_request(&log, "r");
    log.flush().await;
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\"type\":\"audit_dropped\""), "{text}");
    assert!(text.contains("\"dropped\":3"), "{text}");
    verify_file(&path, None, &LineHasher::unkeyed()).unwrap();
}

#[test]
fn long_paths_are_cut() {
    assert_eq!(truncate("ééé", 2), "éé");
    assert_eq!(truncate("ab", 5), "ab");
}

/// Rewrites every line's `prev` and `hash` with plain SHA-256 from GENESIS: what someone who
/// can edit the log but not read its key can do after changing a line.
fn rechain_unkeyed(lines: &[String]) -> Vec<String> {
    let plain = LineHasher::unkeyed();
    let mut prev = GENESIS.to_owned();
    lines
        .iter()
        .map(|line| {
            let (body, _) = split_line(line.as_bytes()).unwrap();
            let mut body = body[..body.len() - (64 + PREV_KEY.len() + 1)].to_vec();
            body.extend_from_slice(PREV_KEY);
            body.extend_from_slice(prev.as_bytes());
            body.push(b'"');
            let hash = plain.hash(&body);
            body.extend_from_slice(HASH_KEY);
            body.extend_from_slice(hash.as_bytes());
            body.extend_from_slice(b"\"}");
            prev = hash;
            String::from_utf8(body).unwrap()
        })
        .collect()
}

#[tokio::test]
async fn a_keyed_log_verifies_only_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let key_file = dir.path().join("audit.key");
    std::fs::write(&key_file, "0123456789abcdef0123456789abcdef0123456789abcdef\n").unwrap();
    let config = AuditConfig {
        output: Some(path.clone()),
        queue_capacity: 64,
        key_file: Some(key_file.clone()),
    };
    let log = AuditLog::open(&config, Arc::new(ManualClock::new(T0)))
        .unwrap()
        .unwrap();
    for i in 0..3 {
        mk_request(&log, &format!("r{i}"));
    }
    log.flush().await;
    let original = lines(&path);
    assert!(
        original[0].contains(",\"mac\":\"hmac-sha256\""),
        "{}",
        original[0]
    );
    let key = LineHasher::from_key_file(&key_file).unwrap();
    let check = |lines: &[String], hasher: &LineHasher| {
        verify(io::Cursor::new(lines.join("\n") + "\n"), None, hasher)
    };
    assert_eq!(check(&original, &key).unwrap().lines, 4);

    let err = check(&original, &LineHasher::unkeyed()).unwrap_err();
    assert_eq!(err.line, 1);
    assert!(err.reason.contains("give its key"), "{err}");
    let other = LineHasher::keyed(b"another key of thirty-two bytes or more").unwrap();
    assert_eq!(check(&original, &other).unwrap_err().line, 1);

    // An edited line, the whole file then rechained with SHA-256: a valid unkeyed chain, and
    // refused with the key from its first line on.
    let mut edited = original.clone();
    edited[2] = edited[2].replace("\"status\":200", "\"status\":201");
    let forged = rechain_unkeyed(&edited);
    assert_eq!(check(&forged, &LineHasher::unkeyed()).unwrap().lines, 4);
    assert_eq!(check(&forged, &key).unwrap_err().line, 1);

    assert!(LineHasher::keyed(b"too short").is_err());
}
