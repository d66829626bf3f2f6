//! A network link with a round-trip time, for the bench: a TCP proxy that holds every chunk for
//! half the round trip in each direction before passing it on, keeping order and not limiting
//! bandwidth (a chunk read is queued with its due time at once; the writer sends each when due).
//! Calls through it take at least the round trip, as they do from a data centre to AWS.

use std::{net::SocketAddr, time::Duration};

use bytes::Bytes;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::mpsc,
    time::Instant,
};
use tokio_util::sync::CancellationToken;

/// Chunks in flight per direction of a connection (what one round trip may hold).
const IN_FLIGHT: usize = 4096;

/// Starts a link to `target` with round-trip time `rtt`; its address. It runs until `stop`.
pub(crate) async fn start(target: SocketAddr, rtt: Duration, stop: CancellationToken) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let one_way = rtt / 2;
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                () = stop.cancelled() => return,
                accepted = listener.accept() => accepted,
            };
            let Ok((client, _)) = accepted else { continue };
            let stop = stop.clone();
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(target).await else { return };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::select! {
                    () = stop.cancelled() => {}
                    _ = async {
                        tokio::join!(
                            pipe(client_read, server_write, one_way),
                            pipe(server_read, client_write, one_way)
                        )
                    } => {}
                }
            });
        }
    });
    Ok(addr)
}

/// Copies `from` to `to`, each chunk `delay` after it was read.
async fn pipe(
    mut from: impl tokio::io::AsyncRead + Unpin,
    mut to: impl tokio::io::AsyncWrite + Unpin + Send + 'static,
    delay: Duration,
) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Bytes)>(IN_FLIGHT);
    let writer = tokio::spawn(async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    });
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if tx.send((Instant::now() + delay, Bytes::copy_from_slice(&buf[..n]))).await.is_err() {
                    break;
                }
            }
        }
    }
    drop(tx);
    let _ = writer.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    // Real time, as a lower bound only (the link holds each chunk at least its delay, so this cannot
    // fail by the machine being slow); paused time would need tokio's test-util in every crate's
    // test build.
    #[tokio::test]
    async fn a_round_trip_through_the_link_takes_its_rtt_and_keeps_the_bytes() {
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = echo.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = echo.accept().await.unwrap();
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let n = socket.read(&mut buf).await.unwrap();
                if n == 0 {
                    return;
                }
                socket.write_all(&buf[..n]).await.unwrap();
            }
        });
        let stop = CancellationToken::new();
        let link = start(target, Duration::from_millis(40), stop.clone()).await.unwrap();
        let mut client = TcpStream::connect(link).await.unwrap();
        let started = Instant::now();
        let message: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        client.write_all(&message).await.unwrap();
        let mut back = vec![0u8; message.len()];
        client.read_exact(&mut back).await.unwrap();
        assert_eq!(back, message, "every byte, in order");
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(40), "a round trip takes the RTT: {took:?}");
        stop.cancel();
    }
}
