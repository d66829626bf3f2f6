use super::*;

fn event(tenant: &str, source: &str, uid: &str) -> NewEvent {
    NewEvent {
        tenant: tenant.into(),
        source: source.into(),
        uid: uid.into(),
        event_data: format!(r#"{{"version":"v1","UID":"{uid}","padding":"{}"}}"#, "x".repeat(900)),
    }
}

const A: &str = "com.nordcloudapp.com.autobackup";
const M: &str = "com.nordcloudapp.com.maestro";

/// Whether the spool still has schema 3's unique SQLite index on the idempotency key.
fn has_key_index(spool: &Spool) -> bool {
    let conn = spool.reader.lock().unwrap();
    conn.query_row("SELECT count(*) > 0 FROM sqlite_master WHERE name = 'events_by_key'", [], |r| r.get(0)).unwrap()
}

#[tokio::test]
async fn accepted_events_survive_a_reopen_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), 1 << 30).unwrap();
    let accepted = spool.append(vec![event("t1", A, "u1"), event("t1", A, "u2"), event("t2", M, "u1")]).await.unwrap();
    assert!(accepted.iter().all(|a| !a.duplicate && a.state == State::Pending));
    assert_eq!(accepted[0].entry_id.len(), 32);
    let ids: Vec<String> = accepted.iter().map(|a| a.entry_id.clone()).collect();
    drop(spool);

    let spool = Spool::open(dir.path(), 1 << 30).unwrap();
    let t1 = spool.pending("t1", 0, 10).unwrap();
    assert_eq!(
        t1.iter().map(|p| p.entry_id.clone()).collect::<Vec<_>>(),
        ids[..2].to_vec(),
        "ids are stored, not recomputed"
    );
    assert!(t1[0].event_data.contains("\"UID\":\"u1\""));
    assert_eq!(spool.pending("t1", t1[0].seq, 10).unwrap().len(), 1, "after a position");
    assert_eq!(spool.pending("t2", 0, 10).unwrap().len(), 1);
    spool.check().unwrap();
}

#[tokio::test]
async fn resubmission_is_a_no_op_that_returns_the_first_result() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), 1 << 30).unwrap();
    let first = spool.append(vec![event("t1", A, "u1")]).await.unwrap();
    let again = spool.append(vec![event("t1", A, "u1"), event("t2", A, "u1"), event("t1", M, "u1")]).await.unwrap();
    assert_eq!(again[0], Accepted { entry_id: first[0].entry_id.clone(), duplicate: true, state: State::Pending });
    assert!(!again[1].duplicate && !again[2].duplicate, "another tenant or source is another event");
    assert_ne!(again[1].entry_id, first[0].entry_id);
    assert_eq!(spool.counts().unwrap(), (3, 0, 0));

    let pending = spool.pending("t1", 0, 10).unwrap();
    spool.settle(vec![Outcome::Delivered { seq: pending[0].seq, event_id: "ev-1".into() }]).await.unwrap();
    let after = spool.append(vec![event("t1", A, "u1")]).await.unwrap();
    assert_eq!(after[0].state, State::Delivered, "a resubmission after delivery reports the delivery");
}

#[tokio::test]
async fn outcomes_are_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), 1 << 30).unwrap();
    spool.append(vec![event("t1", A, "ok"), event("t1", A, "bad"), event("t1", A, "later")]).await.unwrap();
    let p = spool.pending("t1", 0, 10).unwrap();
    spool
        .settle(vec![
            Outcome::Delivered { seq: p[0].seq, event_id: "4cb788f9-f541-4c33-bac1-8a1f0b477a3d".into() },
            Outcome::Dead { seq: p[1].seq, code: "InvalidRecipient".into(), message: "not the channel owner".into() },
            Outcome::Retry { seq: p[2].seq, code: "Throttling".into() },
        ])
        .await
        .unwrap();
    let ok = spool.status("t1", A, "ok").unwrap().unwrap();
    assert_eq!((ok.state, ok.event_id.as_deref()), (State::Delivered, Some("4cb788f9-f541-4c33-bac1-8a1f0b477a3d")));
    let bad = spool.status("t1", A, "bad").unwrap().unwrap();
    assert_eq!(
        (bad.state, bad.error_code.as_deref(), bad.error_message.as_deref()),
        (State::Dead, Some("InvalidRecipient"), Some("not the channel owner"))
    );
    let later = spool.status("t1", A, "later").unwrap().unwrap();
    assert_eq!((later.state, later.attempts, later.error_code.as_deref()), (State::Pending, 1, Some("Throttling")));
    assert_eq!(spool.pending("t1", 0, 10).unwrap().iter().map(|p| p.attempts).collect::<Vec<_>>(), vec![1]);
    assert_eq!(spool.counts().unwrap(), (1, 1, 1));
    assert!(spool.status("t1", A, "never").unwrap().is_none());
    let dead = spool.dead_letters("t1", 10).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].uid.as_str(), dead[0].code.as_str()), ("bad", "InvalidRecipient"));
    // A settled event is not settled again (a late duplicate outcome changes nothing).
    spool.settle(vec![Outcome::Dead { seq: p[0].seq, code: "X".into(), message: "late".into() }]).await.unwrap();
    assert_eq!(spool.status("t1", A, "ok").unwrap().unwrap().state, State::Delivered);
}

#[tokio::test]
async fn a_full_spool_refuses_new_events_and_keeps_the_accepted_ones() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), 1 << 30).unwrap();
    spool.append((0..50).map(|i| event("t1", A, &format!("u{i}"))).collect()).await.unwrap();
    drop(spool);
    // Reopened with a limit below what is already used.
    let spool = Spool::open(dir.path(), 64 * 1024).unwrap();
    let err = spool.append(vec![event("t1", A, "one-more")]).await.unwrap_err();
    assert!(matches!(err, SpoolError::Full { .. }), "{err}");
    assert!(err.to_string().starts_with("the spool is full ("), "{err}");
    assert_eq!(spool.counts().unwrap(), (50, 0, 0));
    assert!(spool.status("t1", A, "one-more").unwrap().is_none());
}

#[tokio::test]
async fn concurrent_appends_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), 1 << 30).unwrap();
    let before = spool.commits();
    let tasks: Vec<_> = (0..64)
        .map(|t| {
            let spool = spool.clone();
            tokio::spawn(async move {
                spool.append((0..20).map(|i| event("t1", A, &format!("{t}-{i}"))).collect()).await.unwrap()
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().len(), 20);
    }
    assert_eq!(spool.counts().unwrap().0, 64 * 20);
    // Group commit is evidenced by the benchmark's requests per commit, not here: a bound like
    // "commits <= appends" holds by construction and would prove nothing.
    assert!(spool.commits() > before);
}

#[test]
fn entry_ids_are_valid_distinct_and_ordered_by_time() {
    let ids: Vec<String> = (0..1000).map(|_| new_entry_id()).collect();
    assert!(ids.iter().all(|id| audit_event::entry::check_entry_id(id).is_ok() && id.len() == 32));
    let mut distinct = ids.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), ids.len());
    std::thread::sleep(std::time::Duration::from_millis(2));
    assert!(new_entry_id() > ids[999], "a later id sorts after earlier ones (index appends, not random inserts)");
}

#[tokio::test]
async fn dead_letters_can_be_replayed_with_their_ids() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), 1 << 30).unwrap();
    spool.append(vec![event("t1", A, "x"), event("t2", A, "y")]).await.unwrap();
    let (p1, p2) = (spool.pending("t1", 0, 1).unwrap()[0].clone(), spool.pending("t2", 0, 1).unwrap()[0].clone());
    spool
        .settle(vec![
            Outcome::Dead { seq: p1.seq, code: "InvalidData".into(), message: "m".into() },
            Outcome::Dead { seq: p2.seq, code: "InvalidData".into(), message: "m".into() },
        ])
        .await
        .unwrap();
    assert_eq!(spool.replay("t1").await.unwrap(), 1);
    let again = spool.pending("t1", 0, 10).unwrap();
    assert_eq!((again.len(), again[0].entry_id.clone()), (1, p1.entry_id));
    assert!(again[0].event_data.contains("\"UID\":\"x\""));
    assert_eq!(spool.dead_letters("t2", 10).unwrap().len(), 1, "other tenants are untouched");
}

#[tokio::test]
async fn a_version_1_spool_is_migrated_with_its_pending_payloads() {
    let dir = tempfile::tempdir().unwrap();
    {
        let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
        conn.execute_batch(
            "CREATE TABLE events (seq INTEGER PRIMARY KEY, tenant TEXT NOT NULL, source TEXT NOT NULL,
                 uid TEXT NOT NULL, entry_id TEXT NOT NULL, event_data BLOB, size INTEGER NOT NULL,
                 accepted_ms INTEGER NOT NULL, state INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0,
                 event_id TEXT, error_code TEXT, error_message TEXT, settled_ms INTEGER);
             CREATE UNIQUE INDEX events_by_key ON events (tenant, source, uid);
             CREATE INDEX events_by_tenant_state ON events (tenant, state, seq);",
        )
        .unwrap();
        let data = lz4_flex::block::compress_prepend_size(br#"{"UID":"old"}"#);
        conn.execute(
            "INSERT INTO events (tenant, source, uid, entry_id, event_data, size, accepted_ms) VALUES ('t1', ?1, 'old', 'e1', ?2, 13, 1)",
            params![A, data],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO events (tenant, source, uid, entry_id, event_data, size, accepted_ms, state, event_id) VALUES ('t1', ?1, 'done', 'e2', NULL, 13, 1, 1, 'ev')",
            params![A],
        )
        .unwrap();
    }
    let spool = Spool::open(dir.path(), 1 << 30).unwrap();
    let pending = spool.pending("t1", 0, 10).unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!((pending[0].entry_id.as_str(), pending[0].event_data.as_str()), ("e1", r#"{"UID":"old"}"#));
    assert_eq!(spool.status("t1", A, "done").unwrap().unwrap().event_id.as_deref(), Some("ev"));
    assert_eq!(spool.depth().get("t1"), Some(&1));
    spool.settle(vec![Outcome::Delivered { seq: pending[0].seq, event_id: "ev1".into() }]).await.unwrap();
    assert!(spool.pending("t1", 0, 10).unwrap().is_empty());
    let payloads: i64 =
        spool.reader.lock().unwrap().query_row("SELECT count(*) FROM payloads", [], |r| r.get(0)).unwrap();
    assert_eq!(payloads, 0, "a delivered event's payload is gone");
    assert!(!has_key_index(&spool), "the unique index on the key is dropped");
    assert!(spool.append(vec![event("t1", A, "old")]).await.unwrap()[0].duplicate, "migrated keys are known");
    drop(spool);
    let spool = Spool::open(dir.path(), 1 << 30).unwrap();
    assert_eq!(spool.counts().unwrap(), (0, 2, 0), "opening a migrated spool again changes nothing");
}

#[tokio::test]
async fn delivered_events_are_forgotten_after_their_retention_and_nothing_else_is() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), 1 << 30).unwrap();
    spool
        .append(vec![event("t1", A, "old-delivered"), event("t1", A, "old-dead"), event("t1", A, "old-pending")])
        .await
        .unwrap();
    let p = spool.pending("t1", 0, 10).unwrap();
    spool
        .settle(vec![
            Outcome::Delivered { seq: p[0].seq, event_id: "ev".into() },
            Outcome::Dead { seq: p[1].seq, code: "InvalidData".into(), message: "no".into() },
        ])
        .await
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    let cutoff = now_ms();
    std::thread::sleep(std::time::Duration::from_millis(5));
    spool.append(vec![event("t1", A, "new-delivered")]).await.unwrap();
    let newer = spool.pending("t1", p[2].seq, 10).unwrap();
    spool.settle(vec![Outcome::Delivered { seq: newer[0].seq, event_id: "ev2".into() }]).await.unwrap();

    assert_eq!(spool.forget(0, 100).await.unwrap(), 0, "nothing is older than the epoch");
    assert_eq!(spool.forget(cutoff, 100).await.unwrap(), 1, "only the old delivered event");
    assert!(spool.status("t1", A, "old-delivered").unwrap().is_none());
    for kept in ["old-dead", "old-pending", "new-delivered"] {
        assert!(spool.status("t1", A, kept).unwrap().is_some(), "{kept} is kept");
    }
    assert_eq!(spool.forget(cutoff, 100).await.unwrap(), 0, "forgetting twice forgets nothing more");
    // Forgotten, a resubmission is new again: the window of idempotency has passed.
    assert!(!spool.append(vec![event("t1", A, "old-delivered")]).await.unwrap()[0].duplicate);
}

#[tokio::test]
async fn forgetting_works_in_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), 1 << 30).unwrap();
    spool.append((0..25).map(|i| event("t1", A, &format!("u{i}"))).collect()).await.unwrap();
    let p = spool.pending("t1", 0, 100).unwrap();
    spool
        .settle(p.iter().map(|e| Outcome::Delivered { seq: e.seq, event_id: "ev".into() }).collect::<Vec<_>>())
        .await
        .unwrap();
    let later = now_ms() + 1;
    assert_eq!(spool.forget(later, 10).await.unwrap(), 10);
    assert_eq!(spool.forget(later, 10).await.unwrap(), 10);
    assert_eq!(spool.forget(later, 10).await.unwrap(), 5);
    assert_eq!(spool.counts().unwrap(), (0, 0, 0));
}

#[tokio::test]
async fn a_key_twice_in_one_call_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), 1 << 30).unwrap();
    let accepted = spool.append(vec![event("t1", A, "u1"), event("t1", A, "u1")]).await.unwrap();
    assert!(!accepted[0].duplicate && accepted[1].duplicate);
    assert_eq!(accepted[0].entry_id, accepted[1].entry_id);
    assert_eq!(spool.counts().unwrap(), (1, 0, 0));
}

#[tokio::test]
async fn keys_are_recognized_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), 1 << 30).unwrap();
    let first = spool.append(vec![event("t1", A, "u1"), event("t1", A, "u2")]).await.unwrap();
    drop(spool);
    let spool = Spool::open(dir.path(), 1 << 30).unwrap();
    let again = spool.append(vec![event("t1", A, "u2"), event("t1", A, "u3")]).await.unwrap();
    assert_eq!(again[0], Accepted { entry_id: first[1].entry_id.clone(), duplicate: true, state: State::Pending });
    assert!(!again[1].duplicate);
    assert_eq!(spool.counts().unwrap(), (3, 0, 0));
    assert!(!has_key_index(&spool), "no SQLite index holds the key");
}

/// Every key gets one fingerprint, so every lookup but the first meets a candidate that is another
/// event: idempotency must rest on the rows, not on the fingerprints.
#[tokio::test]
async fn idempotency_holds_when_every_fingerprint_collides() {
    let dir = tempfile::tempdir().unwrap();
    let open = || Spool::open_with(dir.path(), 1 << 30, Fingerprint::Constant, LogSettings::default()).unwrap();
    let spool = open();
    let first = spool.append(vec![event("t1", A, "a"), event("t1", A, "b"), event("t1", A, "c")]).await.unwrap();
    assert!(first.iter().all(|a| !a.duplicate), "a shared fingerprint does not make a duplicate");
    let again = spool.append(vec![event("t1", A, "b"), event("t1", A, "d"), event("t1", A, "d")]).await.unwrap();
    assert_eq!(again[0].entry_id, first[1].entry_id);
    assert_eq!((again[0].duplicate, again[1].duplicate, again[2].duplicate), (true, false, true));
    for (uid, accepted) in [("a", &first[0]), ("b", &first[1]), ("c", &first[2]), ("d", &again[1])] {
        assert_eq!(spool.status("t1", A, uid).unwrap().unwrap().entry_id, accepted.entry_id, "status of {uid}");
    }
    assert!(spool.status("t1", A, "e").unwrap().is_none());

    // Forgetting the fingerprint's first holder leaves the others findable.
    let p = spool.pending("t1", 0, 10).unwrap();
    spool.settle(vec![Outcome::Delivered { seq: p[0].seq, event_id: "ev".into() }]).await.unwrap();
    assert_eq!(spool.forget(now_ms() + 1, 10).await.unwrap(), 1);
    assert!(spool.status("t1", A, "a").unwrap().is_none());
    assert!(spool.append(vec![event("t1", A, "b")]).await.unwrap()[0].duplicate);
    drop(spool);

    let spool = open();
    let after = spool.append(vec![event("t1", A, "c"), event("t1", A, "d"), event("t1", A, "a")]).await.unwrap();
    assert_eq!((after[0].duplicate, after[1].duplicate, after[2].duplicate), (true, true, false));
    assert_eq!(spool.counts().unwrap(), (4, 0, 0));
}

/// A commit that fails (here a trigger injects the fault) acknowledges nothing and leaves no key
/// behind: the same events sent again are stored, once.
#[tokio::test]
async fn a_failed_commit_leaves_no_key_behind() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), 1 << 30).unwrap();
    spool.append(vec![event("t1", A, "before")]).await.unwrap();
    let fault = Connection::open(dir.path().join(DB_FILE)).unwrap();
    fault
        .execute_batch(
            "CREATE TRIGGER poison AFTER INSERT ON events WHEN NEW.uid = 'poison'
             BEGIN SELECT RAISE(ABORT, 'injected fault'); END;",
        )
        .unwrap();
    let batch = || vec![event("t1", A, "ok"), event("t1", A, "poison")];
    assert!(spool.append(batch()).await.is_err());
    assert_eq!(spool.keys.lock().unwrap().len(), 1, "only the committed key");
    fault.execute_batch("DROP TRIGGER poison").unwrap();
    let accepted = spool.append(batch()).await.unwrap();
    assert!(accepted.iter().all(|a| !a.duplicate));
    assert_eq!(spool.counts().unwrap(), (3, 0, 0));
    assert_eq!(spool.keys.lock().unwrap().len(), 3);
}

/// The payload log's segments (first seqs) in the spool directory.
fn log_segments(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir.join(LOG_DIR)).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    names
}

#[tokio::test]
async fn log_segments_go_once_no_pending_event_needs_them_and_dead_letters_keep_their_payloads() {
    let dir = tempfile::tempdir().unwrap();
    // Every commit closes its segment; every commit looks for segments to delete.
    let settings = LogSettings { segment_bytes: 1, sweep_every: std::time::Duration::ZERO, ..LogSettings::default() };
    let spool = Spool::open_with(dir.path(), 1 << 30, Fingerprint::Constant, settings).unwrap();
    for uid in ["u1", "u2", "u3"] {
        spool.append(vec![event("t1", A, uid)]).await.unwrap();
    }
    spool.append(vec![event("t2", M, "u4")]).await.unwrap();
    assert_eq!(log_segments(dir.path()).len(), 4);
    let p = spool.pending("t1", 0, 10).unwrap();

    spool.settle(vec![Outcome::Delivered { seq: p[0].seq, event_id: "ev1".into() }]).await.unwrap();
    assert_eq!(log_segments(dir.path()).len(), 3, "u1's segment went once it was delivered");
    // A dead letter's payload moves into the database: its segment goes too.
    spool.settle(vec![Outcome::Dead { seq: p[1].seq, code: "InvalidData".into(), message: "m".into() }]).await.unwrap();
    assert_eq!(log_segments(dir.path()).len(), 2);
    // t2's pending event keeps its own segment, and every later one, while t1's are delivered.
    spool.settle(vec![Outcome::Delivered { seq: p[2].seq, event_id: "ev3".into() }]).await.unwrap();
    assert_eq!(log_segments(dir.path()).len(), 1);
    assert!(spool.pending("t2", 0, 10).unwrap()[0].event_data.contains("\"UID\":\"u4\""));

    // Replayed, the dead letter is sent with its payload, read from the database.
    assert_eq!(spool.replay("t1").await.unwrap(), 1);
    let replayed = spool.pending("t1", 0, 10).unwrap();
    assert_eq!(replayed.len(), 1);
    assert_eq!(replayed[0].event_data, p[1].event_data);

    // Reopened, the spool reads what is left and goes on after it.
    drop(spool);
    let spool = Spool::open_with(dir.path(), 1 << 30, Fingerprint::Constant, LogSettings::default()).unwrap();
    assert_eq!(spool.pending("t1", 0, 10).unwrap()[0].event_data, p[1].event_data);
    assert!(spool.pending("t2", 0, 10).unwrap()[0].event_data.contains("\"UID\":\"u4\""));
    spool.append(vec![event("t1", A, "u5")]).await.unwrap();
    let after = spool.pending("t1", 0, 10).unwrap();
    assert_eq!(after.len(), 2);
    assert!(after[1].event_data.contains("\"UID\":\"u5\""));
}

#[tokio::test]
async fn delivery_reads_recent_texts_from_memory_within_its_bound_and_the_rest_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let texts: Vec<NewEvent> = ["u1", "u2", "u3"].iter().map(|uid| event("t1", A, uid)).collect();
    let each = texts[0].event_data.len();
    assert!(texts.iter().all(|e| e.event_data.len() == each));
    // Room for two of the three texts.
    let settings = LogSettings { recent_bytes: 2 * (each + 64), ..LogSettings::default() };
    let spool = Spool::open_with(dir.path(), 1 << 30, Fingerprint::Constant, settings).unwrap();
    spool.append(texts.clone()).await.unwrap();
    assert_eq!(spool.recent.lock().unwrap().len(), 2);

    // With the log out of reach, the two kept texts are still read; the third is not.
    let away = dir.path().join("away");
    std::fs::rename(dir.path().join(LOG_DIR), &away).unwrap();
    let first = spool.pending("t1", 0, 2).unwrap();
    assert_eq!(
        first.iter().map(|p| p.event_data.as_str()).collect::<Vec<_>>(),
        [&texts[0].event_data, &texts[1].event_data]
    );
    assert!(spool.pending("t1", first[1].seq, 10).is_err(), "the third text is only in the log");
    std::fs::rename(&away, dir.path().join(LOG_DIR)).unwrap();
    let all = spool.pending("t1", 0, 10).unwrap();
    assert_eq!(
        all.iter().map(|p| &p.event_data).collect::<Vec<_>>(),
        texts.iter().map(|e| &e.event_data).collect::<Vec<_>>()
    );

    // Delivered and dead-lettered events' texts are let go of; a retried one's is kept.
    spool
        .settle(vec![
            Outcome::Delivered { seq: all[0].seq, event_id: "ev1".into() },
            Outcome::Retry { seq: all[1].seq, code: "ThrottlingException".into() },
        ])
        .await
        .unwrap();
    assert_eq!(spool.recent.lock().unwrap().len(), 1);
    spool
        .settle(vec![Outcome::Dead { seq: all[1].seq, code: "InvalidData".into(), message: "m".into() }])
        .await
        .unwrap();
    {
        let recent = spool.recent.lock().unwrap();
        assert_eq!((recent.len(), recent.bytes()), (0, 0));
    }
    // The room is there again for the next events.
    spool.append(vec![event("t1", A, "u4")]).await.unwrap();
    assert_eq!(spool.recent.lock().unwrap().len(), 1);
}

/// A spool that filled up and then drained takes events again, also after a reopen: what it counts
/// is what pending events hold, not the log segment that was being written when they went.
#[tokio::test]
async fn a_drained_spool_takes_events_again_also_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let limit = 32 << 20;
    let spool = Spool::open(dir.path(), limit).unwrap();
    let padded = |i: usize| NewEvent {
        event_data: format!("{{\"UID\":\"u{i}\",\"padding\":\"{}\"}}", "x".repeat(4000)),
        ..event("t1", A, &format!("u{i}"))
    };
    let mut accepted = 0;
    loop {
        match spool.append((accepted..accepted + 100).map(padded).collect()).await {
            Ok(_) => accepted += 100,
            Err(SpoolError::Full { .. }) => break,
            Err(err) => panic!("{err}"),
        }
        assert!(accepted < 20_000, "never full");
    }
    assert!(accepted > 4000, "refused early, after {accepted} events");
    // Everything is delivered.
    loop {
        let pending = spool.pending("t1", 0, 1000).unwrap();
        if pending.is_empty() {
            break;
        }
        let outcomes = pending
            .iter()
            .map(|p| Outcome::Delivered { seq: p.seq, event_id: format!("ev-{}", p.seq) })
            .collect::<Vec<_>>();
        spool.settle(outcomes).await.unwrap();
    }
    assert_eq!(spool.counts().unwrap().0, 0);
    spool.append(vec![event("t1", A, "after-drain")]).await.expect("a drained spool takes events");
    drop(spool);
    let spool = Spool::open(dir.path(), limit).unwrap();
    spool.append(vec![event("t1", A, "after-reopen")]).await.expect("and after a reopen");
    assert_eq!(spool.counts().unwrap().0, 2);
}
