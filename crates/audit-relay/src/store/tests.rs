//! One behavioural suite for both engines: each case runs on SQLite and on PostgreSQL.
//!
//! PostgreSQL cases need `KLARITY_TEST_DATABASE_URL`, the URL of a server where the test may
//! create databases (`./scripts/test` starts a throwaway cluster and sets it); each case gets a
//! database of its own. Without it they fail: a skipped case would pass for nothing.

use std::{sync::Arc, time::Duration};

use super::{Lease, Storage, Store, postgres::PgSettings};
use crate::{
    SpoolError,
    registry::{DeliveryMode, Grant, Tenant, TokenCheck},
    spool::{NewEvent, Outcome, State},
};

/// A new, empty database on the test server; its URL.
pub(crate) async fn fresh_database() -> String {
    let admin = std::env::var("KLARITY_TEST_DATABASE_URL").expect(
        "KLARITY_TEST_DATABASE_URL must name a PostgreSQL server where tests may create databases \
         (postgres://user@host:port/postgres); ./scripts/test starts one",
    );
    let name = format!("klarity_test_{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
    let (client, connection) = tokio_postgres::connect(&admin, tokio_postgres::NoTls).await.expect("test server");
    tokio::spawn(connection);
    client.batch_execute(&format!("CREATE DATABASE {name}")).await.unwrap();
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(base, _)| base);
    format!("{base}/{name}")
}

fn settings(url: &str) -> PgSettings {
    PgSettings {
        url: url.to_owned(),
        pool_size: 4,
        connect_timeout: Duration::from_secs(5),
        lease: Duration::from_secs(15),
        max_bytes: 1 << 40,
        ca_file: None,
        statement_timeout: Duration::from_secs(15),
    }
}

/// The engines to run a case on, each holding what keeps it alive.
enum Engine {
    Sqlite,
    Postgres,
}

async fn open(engine: Engine) -> (Store, Option<tempfile::TempDir>) {
    match engine {
        Engine::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            (
                super::open(&super::Engine::Sqlite { dir: dir.path().into(), max_bytes: 1 << 30 }).await.unwrap(),
                Some(dir),
            )
        }
        Engine::Postgres => {
            let url = fresh_database().await;
            (super::open(&super::Engine::Postgres(settings(&url))).await.unwrap(), None)
        }
    }
}

/// Runs `case` on each engine, as one test per engine.
macro_rules! on_both {
    ($case:ident) => {
        mod $case {
            #[tokio::test]
            async fn on_sqlite() {
                let (store, _dir) = super::open(super::Engine::Sqlite).await;
                super::$case(store).await;
            }
            #[tokio::test]
            async fn on_postgres() {
                let (store, _dir) = super::open(super::Engine::Postgres).await;
                super::$case(store).await;
            }
        }
    };
}

const SOURCE: &str = "com.nordcloudapp.com.autobackup";

fn event(tenant: &str, uid: &str) -> NewEvent {
    NewEvent {
        tenant: tenant.into(),
        source: SOURCE.into(),
        uid: uid.into(),
        event_data: format!(r#"{{"UID":"{uid}","eventSource":"{SOURCE}"}}"#),
    }
}

fn tenant(id: &str) -> Tenant {
    Tenant {
        id: id.into(),
        channel_arn: "arn:aws:cloudtrail:eu-west-1:123456789012:channel/c1".into(),
        destination: Default::default(),
        delivery: DeliveryMode::AssumeRole {
            role_arn: "arn:aws:iam::123456789012:role/klarity".into(),
            external_id: Some("ext".into()),
            proxy_role_arn: None,
        },
        applications: vec![SOURCE.into()],
        paused: None,
        held: false,
        saved_queries: Vec::new(),
    }
}

async fn lease(store: &dyn Storage, tenant: &str) -> Lease {
    store.acquire(tenant).await.unwrap().expect("a free lease")
}

on_both!(appended_events_are_pending_in_order_and_a_resubmission_returns_the_first_result);
async fn appended_events_are_pending_in_order_and_a_resubmission_returns_the_first_result(store: Store) {
    let first = store.append(vec![event("t1", "a"), event("t1", "b"), event("t2", "a")]).await.unwrap();
    assert!(first.iter().all(|a| !a.duplicate && a.state == State::Pending), "{first:?}");
    // Again, with a new one and a repeat inside the same call.
    let again = store.append(vec![event("t1", "b"), event("t1", "c"), event("t1", "c")]).await.unwrap();
    assert_eq!(again[0].entry_id, first[1].entry_id);
    assert!(again[0].duplicate);
    assert!(!again[1].duplicate);
    assert_eq!((again[2].duplicate, &again[2].entry_id), (true, &again[1].entry_id));
    let pending = store.pending("t1", 0, 10).await.unwrap();
    let ids: Vec<&str> = pending.iter().map(|p| p.entry_id.as_str()).collect();
    assert_eq!(ids, [first[0].entry_id.as_str(), &first[1].entry_id, &again[1].entry_id]);
    assert!(pending.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(pending[0].event_data, event("t1", "a").event_data);
    assert_eq!(store.pending("t1", pending[0].seq, 1).await.unwrap()[0].seq, pending[1].seq);
    assert_eq!(store.pending_through("t1", pending[1].seq).await.unwrap(), 2);
    assert_eq!(store.depth().await.unwrap().get("t1"), Some(&3));
    assert_eq!(store.counts().await.unwrap(), (4, 0, 0));
    assert!(store.oldest_pending_ms("t1").await.unwrap().is_some());
    assert_eq!(store.oldest_pending_ms("t9").await.unwrap(), None);
    let status = store.status("t1", SOURCE, "b").await.unwrap().unwrap();
    assert_eq!((status.entry_id, status.state), (first[1].entry_id.clone(), State::Pending));
    assert_eq!(store.status("t2", SOURCE, "b").await.unwrap(), None, "keys are per tenant");
    store.check().await.unwrap();
}

on_both!(outcomes_settle_deliver_dead_letter_and_retry_and_dead_letters_replay);
async fn outcomes_settle_deliver_dead_letter_and_retry_and_dead_letters_replay(store: Store) {
    store.put_tenant(&tenant("t1")).await.unwrap();
    let accepted = store.append(vec![event("t1", "a"), event("t1", "b"), event("t1", "c")]).await.unwrap();
    let seqs: Vec<i64> = store.pending("t1", 0, 10).await.unwrap().iter().map(|p| p.seq).collect();
    let lease = lease(store.as_ref(), "t1").await;
    store
        .settle(
            &lease,
            vec![
                Outcome::Delivered { seq: seqs[0], event_id: "ev-1".into() },
                Outcome::Dead { seq: seqs[1], code: "InvalidData".into(), message: "refused".into() },
                Outcome::Retry { seq: seqs[2], code: "ThrottlingException".into() },
            ]
            .into(),
        )
        .await
        .unwrap();
    let delivered = store.status("t1", SOURCE, "a").await.unwrap().unwrap();
    assert_eq!((delivered.state, delivered.event_id.as_deref()), (State::Delivered, Some("ev-1")));
    let dead = store.status("t1", SOURCE, "b").await.unwrap().unwrap();
    assert_eq!((dead.state, dead.error_code.as_deref(), dead.attempts), (State::Dead, Some("InvalidData"), 1));
    let retried = store.status("t1", SOURCE, "c").await.unwrap().unwrap();
    assert_eq!((retried.state, retried.attempts), (State::Pending, 1));
    assert_eq!(store.pending("t1", 0, 10).await.unwrap().len(), 1);
    assert_eq!(store.counts().await.unwrap(), (1, 1, 1));
    // A resubmission of a delivered event stores nothing and says it was delivered.
    let again = store.append(vec![event("t1", "a")]).await.unwrap();
    assert_eq!((again[0].duplicate, again[0].state), (true, State::Delivered));
    // Settling again changes nothing: an outcome applies to a pending event only.
    store.settle(&lease, vec![Outcome::Delivered { seq: seqs[1], event_id: "ev-x".into() }].into()).await.unwrap();
    assert_eq!(store.status("t1", SOURCE, "b").await.unwrap().unwrap().state, State::Dead);

    let letters = store.dead_letters("t1", 10).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(
        (letters[0].uid.as_str(), letters[0].code.as_str(), letters[0].message.as_str()),
        ("b", "InvalidData", "refused")
    );
    assert_eq!(store.replay("t1").await.unwrap(), 1);
    let pending = store.pending("t1", 0, 10).await.unwrap();
    let replayed = pending.iter().find(|p| p.seq == seqs[1]).expect("the dead letter is pending again");
    assert_eq!(replayed.entry_id, accepted[1].entry_id, "a replayed event keeps its id");
    assert_eq!(replayed.event_data, event("t1", "b").event_data);
    assert!(store.dead_letters("t1", 10).await.unwrap().is_empty());
}

on_both!(events_assigned_to_an_object_stay_pending_with_it_and_a_replay_forgets_it);
async fn events_assigned_to_an_object_stay_pending_with_it_and_a_replay_forgets_it(store: Store) {
    store.put_tenant(&tenant("t1")).await.unwrap();
    store.append(vec![event("t1", "a"), event("t1", "b"), event("t1", "c")]).await.unwrap();
    let seqs: Vec<i64> = store.pending("t1", 0, 10).await.unwrap().iter().map(|p| p.seq).collect();
    let lease = lease(store.as_ref(), "t1").await;
    let assign = |seq: i64| Outcome::Assigned { seq, object: "k/1-2.json.gz".into() };
    store.settle(&lease, vec![assign(seqs[0]), assign(seqs[1])].into()).await.unwrap();
    let objects: Vec<Option<String>> =
        store.pending("t1", 0, 10).await.unwrap().into_iter().map(|p| p.object).collect();
    assert_eq!(objects, [Some("k/1-2.json.gz".to_owned()), Some("k/1-2.json.gz".to_owned()), None]);
    // Still pending, with no event id to show.
    let status = store.status("t1", SOURCE, "a").await.unwrap().unwrap();
    assert_eq!((status.state, status.event_id), (State::Pending, None));
    store
        .settle(
            &lease,
            vec![
                Outcome::Delivered { seq: seqs[0], event_id: "k/1-2.json.gz".into() },
                Outcome::Dead { seq: seqs[1], code: "EncodingFailed".into(), message: "no".into() },
            ]
            .into(),
        )
        .await
        .unwrap();
    let status = store.status("t1", SOURCE, "a").await.unwrap().unwrap();
    assert_eq!((status.state, status.event_id.as_deref()), (State::Delivered, Some("k/1-2.json.gz")));
    // A replayed dead letter belongs to no object any more: it goes into a new one.
    assert_eq!(store.replay("t1").await.unwrap(), 1);
    let objects: Vec<(i64, Option<String>)> =
        store.pending("t1", 0, 10).await.unwrap().into_iter().map(|p| (p.seq, p.object)).collect();
    assert_eq!(objects, [(seqs[1], None), (seqs[2], None)]);
}

on_both!(chosen_dead_letters_are_replayed_and_the_others_stay);
async fn chosen_dead_letters_are_replayed_and_the_others_stay(store: Store) {
    store.put_tenant(&tenant("t1")).await.unwrap();
    store.append(vec![event("t1", "a"), event("t1", "b"), event("t1", "c")]).await.unwrap();
    let seqs: Vec<i64> = store.pending("t1", 0, 10).await.unwrap().iter().map(|p| p.seq).collect();
    let lease = lease(store.as_ref(), "t1").await;
    let dead = |seq: i64| Outcome::Dead { seq, code: "X".into(), message: "no".into() };
    store.settle(&lease, seqs.iter().map(|s| dead(*s)).collect::<Vec<_>>().into()).await.unwrap();
    assert_eq!(store.replay_only("t1", vec!["a".into(), "c".into(), "ghost".into()]).await.unwrap(), 2);
    let pending: Vec<i64> = store.pending("t1", 0, 10).await.unwrap().iter().map(|p| p.seq).collect();
    assert_eq!(pending, [seqs[0], seqs[2]]);
    let left: Vec<String> = store.dead_letters("t1", 10).await.unwrap().into_iter().map(|d| d.uid).collect();
    assert_eq!(left, ["b"]);
    assert_eq!(store.replay_only("t2", vec!["b".into()]).await.unwrap(), 0, "another tenant's letters stay");
}

on_both!(delivered_events_are_forgotten_after_their_retention_and_nothing_else_is);
async fn delivered_events_are_forgotten_after_their_retention_and_nothing_else_is(store: Store) {
    store.put_tenant(&tenant("t1")).await.unwrap();
    store.append(vec![event("t1", "a"), event("t1", "b"), event("t1", "c")]).await.unwrap();
    let seqs: Vec<i64> = store.pending("t1", 0, 10).await.unwrap().iter().map(|p| p.seq).collect();
    let lease = lease(store.as_ref(), "t1").await;
    let outcomes = vec![
        Outcome::Delivered { seq: seqs[0], event_id: "ev-1".into() },
        Outcome::Dead { seq: seqs[1], code: "InvalidData".into(), message: "no".into() },
    ];
    store.settle(&lease, outcomes.into()).await.unwrap();
    let future = audit_event::EventTime::now().unix_millis() + 60_000;
    assert_eq!(store.forget(0, 100).await.unwrap(), 0, "nothing is that old");
    assert_eq!(store.forget(future, 100).await.unwrap(), 1, "only the delivered one goes");
    assert_eq!(store.status("t1", SOURCE, "a").await.unwrap(), None);
    assert_eq!(store.counts().await.unwrap(), (1, 0, 1));
    // Its key is forgotten too: the UID is accepted as new.
    assert!(!store.append(vec![event("t1", "a")]).await.unwrap()[0].duplicate);
}

on_both!(tenants_are_kept_changed_atomically_held_resumed_and_removed);
async fn tenants_are_kept_changed_atomically_held_resumed_and_removed(store: Store) {
    store.put_tenant(&tenant("b")).await.unwrap();
    store.put_tenant(&tenant("a")).await.unwrap();
    let ids: Vec<String> = store.tenants().await.unwrap().into_iter().map(|t| t.id).collect();
    assert_eq!(ids, ["a", "b"]);
    assert_eq!(store.tenant("a").await.unwrap(), Some(tenant("a")));
    assert_eq!(store.tenant("zz").await.unwrap(), None);
    let held = super::hold(store.as_ref(), "a", "maintenance").await.unwrap().unwrap();
    assert_eq!((held.paused.as_deref(), held.held), (Some("maintenance"), true));
    assert_eq!(store.tenant("a").await.unwrap().unwrap().paused.as_deref(), Some("maintenance"));
    // Concurrent changes are not lost: each one applies to the tenant as stored.
    let changes = (0..20).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .update_tenant("b", &|t| {
                    t.applications.push(format!("app{i}"));
                    true
                })
                .await
                .unwrap()
        })
    });
    for change in changes {
        change.await.unwrap();
    }
    assert_eq!(store.tenant("b").await.unwrap().unwrap().applications.len(), 21);
    let resumed = super::resume(store.as_ref(), "a").await.unwrap().unwrap();
    assert_eq!((resumed.paused, resumed.held), (None, false));
    assert_eq!(store.update_tenant("zz", &|_| true).await.unwrap(), None);
    assert!(store.remove_tenant("a").await.unwrap());
    assert!(!store.remove_tenant("a").await.unwrap());
    assert_eq!(store.tenant("a").await.unwrap(), None);
}

on_both!(tokens_are_stored_hashed_checked_revoked_and_expire);
async fn tokens_are_stored_hashed_checked_revoked_and_expire(store: Store) {
    let grant = Grant { name: "backup".into(), source: SOURCE.into(), tenants: vec!["*".into()] };
    let (token, record) = store.issue(&grant, None).await.unwrap();
    assert!(token.starts_with("kat_") && record.id.starts_with("tok_"));
    assert_eq!(store.check_token(&token).await.unwrap(), TokenCheck::Valid(grant.clone()));
    assert_eq!(store.check_token("kat_nothing").await.unwrap(), TokenCheck::Unknown);
    let listed = store.tokens().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].last_used_ms.is_some(), "a check records the last use");
    assert!(!format!("{listed:?}").contains(&token[12..]), "only a hint of the token is kept");
    let revoked = store.revoke_token(&record.id).await.unwrap().unwrap();
    let at = revoked.revoked_ms.unwrap();
    assert_eq!(store.check_token(&token).await.unwrap(), TokenCheck::Revoked(at));
    let again = store.revoke_token(&record.id).await.unwrap().unwrap();
    assert_eq!(again.revoked_ms, Some(at), "revoking twice keeps the first time");
    assert_eq!(store.revoke_token("tok_nothing").await.unwrap(), None);
    let (expired, _) = store.issue(&grant, Some(1_000)).await.unwrap();
    assert_eq!(store.check_token(&expired).await.unwrap(), TokenCheck::Expired(1_000));
}

/// Two relays on one PostgreSQL database.
async fn two_relays(lease: Duration) -> (Store, Store, tokio_postgres::Client) {
    let url = fresh_database().await;
    let open =
        || async { Arc::new(super::postgres::PgStore::open(&PgSettings { lease, ..settings(&url) }).await.unwrap()) };
    let (a, b) = tokio::join!(open(), open());
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    (a, b, client)
}

/// The passing of a lease's time, injected: the database's clock is not ours to pause.
async fn run_out(db: &tokio_postgres::Client, tenant: &str) {
    db.execute("UPDATE leases SET expires_at = now() - interval '2 seconds' WHERE tenant = $1", &[&tenant])
        .await
        .unwrap();
}

#[tokio::test]
async fn postgres_a_lease_is_held_by_one_relay_settling_is_fenced_and_a_takeover_says_so() {
    let (a, b, db) = two_relays(Duration::from_secs(15)).await;
    a.put_tenant(&tenant("t1")).await.unwrap();
    b.append(vec![event("t1", "a"), event("t1", "b")]).await.unwrap();
    let seqs: Vec<i64> = a.pending("t1", 0, 10).await.unwrap().iter().map(|p| p.seq).collect();
    // Each relay is counted from its first call (delivery's scan, every second).
    assert_eq!((a.relays().await.unwrap(), b.relays().await.unwrap(), a.relays().await.unwrap()), (1, 2, 2));

    let first = a.acquire("t1").await.unwrap().expect("free");
    assert_eq!((first.epoch, first.takeover), (1, None));
    assert_eq!(b.acquire("t1").await.unwrap(), None, "held by a");
    let both = vec!["t1".to_owned(), "t2".to_owned()];
    assert_eq!(b.leasable(both.clone()).await.unwrap(), ["t2"], "t1 is held; t2 was never leased");
    assert!(a.renew(&first).await.unwrap());

    // a's lease runs out (a hung, or lost its database) and b takes the tenant over.
    run_out(&db, "t1").await;
    let second = b.acquire("t1").await.unwrap().expect("ran out");
    assert_eq!(second.epoch, 2);
    let since = second.takeover.expect("a did not release it");
    assert!(since >= Duration::from_secs(2) && since < Duration::from_secs(60), "{since:?}");
    // a cannot record outcomes over b's, nor renew.
    let late = a.settle(&first, vec![Outcome::Delivered { seq: seqs[0], event_id: "from-a".into() }].into()).await;
    assert!(matches!(late, Err(SpoolError::LeaseLost(ref t)) if t == "t1"), "{late:?}");
    assert_eq!(a.status("t1", SOURCE, "a").await.unwrap().unwrap().state, State::Pending);
    assert!(!a.renew(&first).await.unwrap());
    b.settle(&second, vec![Outcome::Delivered { seq: seqs[0], event_id: "from-b".into() }].into()).await.unwrap();
    assert_eq!(a.status("t1", SOURCE, "a").await.unwrap().unwrap().event_id.as_deref(), Some("from-b"));

    // Released cleanly, the next holder has nothing to look up.
    b.release(&second).await.unwrap();
    assert_eq!(a.leasable(both).await.unwrap(), ["t1", "t2"], "released");
    let third = a.acquire("t1").await.unwrap().expect("released");
    assert_eq!((third.epoch, third.takeover), (3, None));
    assert!(matches!(
        b.settle(&second, vec![Outcome::Delivered { seq: seqs[1], event_id: "x".into() }].into()).await,
        Err(SpoolError::LeaseLost(_))
    ));
    a.stopped_cleanly().await.unwrap();
    assert_eq!(b.relays().await.unwrap(), 1, "a stopped");
}

#[tokio::test]
async fn postgres_one_acceptance_per_key_across_relays_even_at_once() {
    let (a, b, _db) = two_relays(Duration::from_secs(15)).await;
    let uids: Vec<String> = (0..200).map(|i| format!("uid-{i}")).collect();
    let batch = |store: Store, uids: Vec<String>| {
        tokio::spawn(async move {
            let events = uids.iter().map(|u| event("t1", u)).collect();
            store.append(events).await.unwrap()
        })
    };
    let mut reversed = uids.clone();
    reversed.reverse();
    let (x, y) = tokio::join!(batch(a.clone(), uids.clone()), batch(b.clone(), reversed));
    let (x, mut y) = (x.unwrap(), y.unwrap());
    y.reverse();
    for (i, (x, y)) in x.iter().zip(&y).enumerate() {
        assert_eq!(x.entry_id, y.entry_id, "uid-{i} has one acceptance");
        assert!(x.duplicate != y.duplicate, "uid-{i}: exactly one relay stored it: {x:?} {y:?}");
    }
    assert_eq!(a.counts().await.unwrap(), (200, 0, 0));
}

#[tokio::test]
async fn postgres_relays_starting_together_migrate_once() {
    let url = fresh_database().await;
    let opens = (0..4).map(|_| {
        let url = url.clone();
        tokio::spawn(async move { super::postgres::PgStore::open(&settings(&url)).await.map(|_| ()) })
    });
    for open in opens {
        open.await.unwrap().unwrap();
    }
    let store = super::postgres::PgStore::open(&settings(&url)).await.unwrap();
    assert_eq!(store.migrate().await.unwrap(), 1, "already at version 1");
}

#[tokio::test]
async fn postgres_an_unreachable_database_is_unavailable_not_a_failure() {
    // A port nothing listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("postgres://klarity@127.0.0.1:{port}/klarity");
    let opened =
        super::postgres::PgStore::open(&PgSettings { connect_timeout: Duration::from_secs(2), ..settings(&url) }).await;
    assert!(matches!(opened, Err(SpoolError::Unavailable(_))), "{:?}", opened.err());
}

#[tokio::test]
async fn postgres_the_events_table_is_bounded() {
    let url = fresh_database().await;
    let store = super::postgres::PgStore::open(&PgSettings { max_bytes: 1 << 20, ..settings(&url) }).await.unwrap();
    let big = |i: usize| NewEvent { event_data: "x".repeat(40_000), ..event("t1", &format!("u{i}")) };
    // Appends count against the bound as they go; the table is measured again at most once a second.
    let mut refused = None;
    for i in 0..40 {
        if let Err(err) = store.append(vec![big(i)]).await {
            refused = Some((i, err));
            break;
        }
    }
    let (taken, err) = refused.expect("refused before 40 × 40 kB");
    assert!(matches!(err, SpoolError::Full { limit: 1048576, .. }), "{err:?}");
    assert!((10..=26).contains(&taken), "refused after {taken} events");
    assert_eq!(store.counts().await.unwrap().0, taken as u64, "nothing of the refused call was stored");
}
