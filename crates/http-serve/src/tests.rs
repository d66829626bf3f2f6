//! Each bound against a real client on loopback, with short limits.

use std::time::Duration;

use axum::{http::StatusCode, routing::post};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::oneshot,
    time::Instant,
};

use super::*;

const LIMITS: Limits = Limits {
    header_read_timeout: Duration::from_millis(300),
    request_timeout: Duration::from_millis(600),
    idle_timeout: Duration::from_millis(900),
    max_connections: 2,
    max_connections_per_peer: 2,
    pressure_header_read_timeout: Duration::from_millis(300),
};

/// Deadlines long enough that no connection of a test is closed by one, however slow the machine.
const PATIENT: Limits = Limits {
    header_read_timeout: Duration::from_secs(10),
    request_timeout: Duration::from_secs(10),
    idle_timeout: Duration::from_secs(20),
    max_connections: 2,
    max_connections_per_peer: 2,
    pressure_header_read_timeout: Duration::from_secs(10),
};

/// How many `/long` and `/hold` handlers have begun (each route serves one test; the server is at
/// work on a request from then on).
static LONG_STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static HOLD_STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Waits until `counter` has counted `n` more handlers than `before`.
async fn begun(counter: &std::sync::atomic::AtomicUsize, before: usize, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while counter.load(std::sync::atomic::Ordering::SeqCst) < before + n {
        assert!(Instant::now() < deadline, "the server never began the requests");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// An answer larger than loopback's socket buffers.
const BIG: usize = 64 << 20;

struct Server {
    addr: std::net::SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<io::Result<()>>,
}

async fn start() -> Server {
    start_with(LIMITS).await
}

async fn start_with(limits: Limits) -> Server {
    let router = Router::new()
        .route("/echo", post(echo_length))
        .route("/big", post(|| async { vec![b'x'; BIG] }))
        .route(
            "/slow",
            post(|| async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                "done"
            }),
        )
        .route(
            "/long",
            post(|| async {
                LONG_STARTED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(1500)).await;
                "done"
            }),
        )
        .route(
            "/hold",
            post(|| async {
                HOLD_STARTED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(1500)).await;
                "done"
            }),
        )
        .route(
            "/read-then-work",
            post(|headers: HeaderMap, body: Body| async move {
                let length = echo_length(headers, body).await;
                // Longer than the request timeout, shorter than the idle one.
                tokio::time::sleep(LIMITS.request_timeout + Duration::from_millis(150)).await;
                length
            }),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, router, limits, async move {
        let _ = stopped.await;
    }));
    Server { addr, stop: Some(stop), task }
}

/// The body's length, or the status a server answers [`read_body`]'s error with.
async fn echo_length(headers: HeaderMap, body: Body) -> (StatusCode, String) {
    match read_body(&headers, body, 1 << 20).await {
        Ok(bytes) => (StatusCode::OK, bytes.len().to_string()),
        Err(err @ BodyError::TimedOut(_)) => (StatusCode::REQUEST_TIMEOUT, format!("RequestTimeout: {err}")),
        Err(err @ BodyError::TooLarge { .. }) => (StatusCode::PAYLOAD_TOO_LARGE, err.to_string()),
        Err(err) => (StatusCode::BAD_REQUEST, err.to_string()),
    }
}

/// Reads until the server closes the connection (or `within` passes: then `None`).
async fn read_to_close(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(String::from_utf8_lossy(&out).into_owned()),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads one answer of known small size (up to its body `expect`).
async fn read_answer(stream: &mut TcpStream, expect: &str, within: Duration) -> Option<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + within;
    while !String::from_utf8_lossy(&out).ends_with(expect) {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => out.extend_from_slice(&buf[..n]),
            _ => return None,
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

fn echo(body: &str) -> String {
    format!("POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n{body}", body.len())
}

#[tokio::test]
async fn a_request_head_sent_a_byte_at_a_time_is_cut_off() {
    let server = start().await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let started = Instant::now();
    let head = b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n";
    // Slow-loris: a byte every 50 ms, never finishing the head.
    let mut closed = false;
    for byte in head.iter().cycle().take(200) {
        if stream.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        if started.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    if !closed {
        assert!(read_to_close(&mut stream, Duration::from_secs(2)).await.is_some(), "the connection stayed open");
    }
    assert!(started.elapsed() < Duration::from_secs(3), "cut after {:?}", started.elapsed());
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed() {
    let server = start().await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let started = Instant::now();
    assert!(read_to_close(&mut stream, Duration::from_secs(3)).await.is_some(), "the connection stayed open");
    assert!(started.elapsed() >= LIMITS.header_read_timeout);
}

#[tokio::test]
async fn a_dribbled_body_gets_408_within_the_request_timeout() {
    let server = start().await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n").await.unwrap();
    let started = Instant::now();
    let writer = tokio::spawn(async move {
        for _ in 0..40 {
            if stream.write_all(b"x").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stream
    });
    let mut stream = writer.await.unwrap();
    let answer = read_to_close(&mut stream, Duration::from_secs(3)).await.expect("an answer and a close");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("RequestTimeout"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn a_handler_working_past_the_request_timeout_after_reading_its_body_is_answered() {
    let server = start().await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(b"POST /read-then-work HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabc").await.unwrap();
    let answer = read_answer(&mut stream, "\r\n\r\n3", Duration::from_secs(3)).await.expect("the answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn a_keep_alive_connection_in_use_stays_open_and_closes_once_silent() {
    let server = start().await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    // Requests less than the head's deadline apart keep it open past every deadline.
    for _ in 0..12 {
        stream.write_all(echo("hello").as_bytes()).await.unwrap();
        let answer = read_answer(&mut stream, "\r\n\r\n5", Duration::from_secs(2)).await.expect("an answer");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Silent after an answer, it waits for a next head as for a first one (hyper's rule), no longer.
    let started = Instant::now();
    assert!(read_to_close(&mut stream, Duration::from_secs(3)).await.is_some(), "the idle connection stayed open");
    assert!(started.elapsed() < LIMITS.idle_timeout, "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_client_that_stops_reading_its_answer_is_dropped() {
    let server = start().await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(b"POST /big HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n").await.unwrap();
    // The server fills the socket buffers and waits; after the idle timeout it gives up.
    tokio::time::sleep(LIMITS.idle_timeout + Duration::from_millis(600)).await;
    let mut total = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match tokio::time::timeout(Duration::from_secs(3), stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => total += n,
            Err(_) => panic!("the connection stayed open after {total} bytes"),
        }
    }
    assert!(total < BIG, "the whole answer arrived ({total} bytes): nothing was cut");
}

#[tokio::test]
async fn connections_beyond_the_bound_wait_while_every_one_is_at_work() {
    let server = start_with(Limits { max_connections_per_peer: 8, ..PATIENT }).await;
    let mut held = Vec::new();
    let before = LONG_STARTED.load(std::sync::atomic::Ordering::SeqCst);
    for _ in 0..PATIENT.max_connections {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream.write_all(b"POST /long HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n").await.unwrap();
        held.push(stream);
    }
    begun(&LONG_STARTED, before, PATIENT.max_connections).await;
    let mut third = TcpStream::connect(server.addr).await.unwrap();
    third.write_all(echo("abc").as_bytes()).await.unwrap();
    assert!(
        read_answer(&mut third, "\r\n\r\n3", Duration::from_millis(200)).await.is_none(),
        "served beyond the bound while both connections were at work"
    );
    for stream in &mut held {
        let answer = read_answer(stream, "done", Duration::from_secs(5)).await.expect("a request at work is finished");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    let answer = read_answer(&mut third, "\r\n\r\n3", Duration::from_secs(5)).await.expect("served once one was idle");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// Idle connections (a keep-alive one between requests, one that never sent a head) hold no
/// slot against a client with a request: the longest-idle one is closed to make room.
#[tokio::test]
async fn idle_connections_make_room_for_a_new_one() {
    let server = start_with(Limits { max_connections_per_peer: 8, ..PATIENT }).await;
    let mut kept_alive = TcpStream::connect(server.addr).await.unwrap();
    kept_alive.write_all(echo("a").as_bytes()).await.unwrap();
    read_answer(&mut kept_alive, "\r\n\r\n1", Duration::from_secs(2)).await.expect("an answer");
    // A second, younger keep-alive connection.
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    silent.write_all(echo("b").as_bytes()).await.unwrap();
    read_answer(&mut silent, "\r\n\r\n1", Duration::from_secs(2)).await.expect("an answer");
    let started = Instant::now();
    let mut third = TcpStream::connect(server.addr).await.unwrap();
    third.write_all(echo("abc").as_bytes()).await.unwrap();
    let answer = read_answer(&mut third, "\r\n\r\n3", Duration::from_secs(2)).await.expect("served at once");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(2));
    // The older keep-alive connection had waited longest (since its answer): it went, the younger stays.
    assert!(read_to_close(&mut kept_alive, Duration::from_secs(2)).await.is_some(), "the longest-idle one was closed");
    assert!(read_to_close(&mut silent, Duration::from_millis(300)).await.is_none(), "the other stays open");
}

/// One peer address holds at most its bound: past it, its new connection replaces its own
/// longest-idle one, or is refused when all of its connections are at work.
#[tokio::test]
async fn one_peer_holds_at_most_its_bound_of_connections() {
    let server = start_with(Limits { max_connections: 8, ..PATIENT }).await;
    let mut first = TcpStream::connect(server.addr).await.unwrap();
    let _second = TcpStream::connect(server.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut third = TcpStream::connect(server.addr).await.unwrap();
    third.write_all(echo("abc").as_bytes()).await.unwrap();
    read_answer(&mut third, "\r\n\r\n3", Duration::from_secs(2)).await.expect("served in place of an idle one");
    assert!(read_to_close(&mut first, Duration::from_secs(2)).await.is_some(), "its longest-idle one was closed");

    // Both of the peer's connections at work: a third is closed unserved.
    let mut busy = Vec::new();
    let before = HOLD_STARTED.load(std::sync::atomic::Ordering::SeqCst);
    for _ in 0..2 {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream.write_all(b"POST /hold HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n").await.unwrap();
        busy.push(stream);
    }
    begun(&HOLD_STARTED, before, 2).await;
    let mut refused = TcpStream::connect(server.addr).await.unwrap();
    let _ = refused.write_all(echo("x").as_bytes()).await;
    let answer = read_to_close(&mut refused, Duration::from_secs(2)).await.expect("closed");
    assert!(answer.is_empty(), "{answer}");
    for stream in &mut busy {
        read_answer(stream, "done", Duration::from_secs(5)).await.expect("the peer's requests at work finish");
    }
}

/// With three quarters of the slots taken, a new connection has the short head deadline.
#[tokio::test]
async fn under_pressure_a_head_must_come_sooner() {
    let limits = Limits {
        max_connections: 4,
        max_connections_per_peer: 4,
        pressure_header_read_timeout: Duration::from_millis(200),
        ..PATIENT
    };
    let server = start_with(limits).await;
    // Three connections, surely accepted before the fourth (each was answered once).
    let mut early = Vec::new();
    for _ in 0..3 {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream.write_all(echo("a").as_bytes()).await.unwrap();
        read_answer(&mut stream, "\r\n\r\n1", Duration::from_secs(2)).await.expect("an answer");
        early.push(stream);
    }
    let mut late = TcpStream::connect(server.addr).await.unwrap();
    let started = Instant::now();
    assert!(read_to_close(&mut late, Duration::from_secs(2)).await.is_some(), "the late silent one was closed");
    assert!(started.elapsed() < Duration::from_secs(2));
    for stream in &mut early {
        assert!(
            read_to_close(stream, Duration::from_millis(100)).await.is_none(),
            "the early ones keep the long deadline"
        );
    }
}

#[tokio::test]
async fn shutdown_lets_a_request_under_way_finish() {
    let mut server = start().await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(b"POST /slow HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let _ = server.stop.take().unwrap().send(());
    let answer = read_answer(&mut stream, "done", Duration::from_secs(2)).await.expect("the answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    tokio::time::timeout(Duration::from_secs(2), server.task).await.expect("serve returned").unwrap().unwrap();
    assert!(TcpStream::connect(server.addr).await.is_err(), "still accepting after shutdown");
}

#[test]
fn settings_are_checked() {
    assert_eq!(HttpConfig::default().check(), Ok(()));
    let bad = HttpConfig { idle_timeout_secs: 30, ..HttpConfig::default() };
    assert!(bad.check().unwrap_err().contains("http.idle_timeout_secs"));
    let bad = HttpConfig { max_connections: 0, ..HttpConfig::default() };
    assert!(bad.check().unwrap_err().contains("http.max_connections"));
    let bad = HttpConfig { pressure_header_read_timeout_secs: 0, ..HttpConfig::default() };
    assert!(bad.check().unwrap_err().contains("http.pressure_header_read_timeout_secs"));
    let short = HttpConfig { header_read_timeout_secs: 2, ..HttpConfig::default() };
    assert_eq!(short.limits().pressure_header_read_timeout, Duration::from_secs(2), "never past the usual deadline");
    assert_eq!(Limits::default().request_timeout, Duration::from_secs(60));
}
