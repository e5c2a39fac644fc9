//! Shared helpers of the worker tests: pools with expired leases, a target
//! web server and local proxies (HTTP, slow HTTP, HTTP with credentials,
//! SOCKS5) started on free ports.
#![allow(dead_code, missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use pharox_core::{AcquireRequest, PoolId, ProxyPool, Storage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A pool of `proxies` proxies with `max_concurrency` each.
pub async fn seed<S: Storage>(store: &S, pool: &PoolId, proxies: usize, max_concurrency: u32) {
    store
        .upsert_pool(&ProxyPool::new(pool.clone()))
        .await
        .unwrap();
    for i in 0..u16::try_from(proxies).expect("at most 65,535 proxies") {
        let p = pharox_core::testkit::proxy(pool, &format!("p{i:05}"), i)
            .with_max_concurrency(max_concurrency);
        store.upsert_proxy(&p).await.unwrap();
    }
}

/// Takes `n` leases of `ttl` with `tasks` concurrent acquirers and never
/// releases them (a crashed client); returns once all are granted.
pub async fn abandon_leases<S: Storage + Clone>(
    store: &S,
    pool: &PoolId,
    n: usize,
    ttl: Duration,
    tasks: usize,
) {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..tasks {
        let (store, pool, next) = (store.clone(), pool.clone(), next.clone());
        set.spawn(async move {
            let req = AcquireRequest::new(pool)
                .consumer("crashed")
                .duration(TimeDelta::from_std(ttl).unwrap());
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < n {
                store.acquire(&req).await.unwrap().expect("a free slot");
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
}

/// A free TCP port on 127.0.0.1 (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Reads a request head (up to the blank line); returns it and any bytes after it.
async fn read_head(s: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Some((String::from_utf8_lossy(&buf).into_owned(), rest));
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
    }
}

async fn serve(
    listener: TcpListener,
    handler: impl Fn(TcpStream) -> futures_util::future::BoxFuture<'static, ()> + Send + 'static,
) {
    loop {
        let Ok((s, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(handler(s));
    }
}

/// A web server answering every request with `200 ok`.
pub async fn target() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(serve(l, |mut s| {
        Box::pin(async move {
            if read_head(&mut s).await.is_some() {
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    )
                    .await;
            }
        })
    }));
    addr
}

/// How a test HTTP proxy behaves.
#[derive(Clone, Default)]
pub struct HttpProxy {
    /// Wait this long before forwarding.
    pub delay: Duration,
    /// The `Proxy-Authorization` value required, if any (else 407).
    pub require: Option<String>,
}

impl HttpProxy {
    /// Starts the proxy on a free port of 127.0.0.1; handles absolute-form
    /// requests and CONNECT.
    pub async fn start(self) -> SocketAddr {
        self.serve_on(TcpListener::bind("127.0.0.1:0").await.unwrap())
    }

    /// Starts the proxy on `l`.
    pub fn serve_on(self, l: TcpListener) -> SocketAddr {
        let addr = l.local_addr().unwrap();
        let me = Arc::new(self);
        tokio::spawn(serve(l, move |s| {
            let me = me.clone();
            Box::pin(async move { me.handle(s).await })
        }));
        addr
    }

    async fn handle(&self, mut s: TcpStream) {
        let Some((head, rest)) = read_head(&mut s).await else {
            return;
        };
        let mut lines = head.split("\r\n");
        let first = lines.next().unwrap_or_default().to_owned();
        let headers: Vec<&str> = lines.filter(|l| !l.is_empty()).collect();
        if let Some(want) = &self.require {
            let ok = headers.iter().any(|h| {
                h.split_once(':').is_some_and(|(k, v)| {
                    k.trim().eq_ignore_ascii_case("proxy-authorization") && v.trim() == want
                })
            });
            if !ok {
                let _ = s
                    .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"t\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .await;
                return;
            }
        }
        tokio::time::sleep(self.delay).await;
        let mut parts = first.split_whitespace();
        let (method, uri) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        if method == "CONNECT" {
            let Ok(mut up) = TcpStream::connect(uri).await else {
                return;
            };
            let _ = s
                .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                .await;
            let _ = tokio::io::copy_bidirectional(&mut s, &mut up).await;
            return;
        }
        let Some(after_scheme) = uri.strip_prefix("http://") else {
            return;
        };
        let (host, path) = match after_scheme.find('/') {
            Some(i) => (&after_scheme[..i], &after_scheme[i..]),
            None => (after_scheme, "/"),
        };
        let Ok(mut up) = TcpStream::connect(host).await else {
            let _ = s
                .write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                .await;
            return;
        };
        let mut req = format!("{method} {path} HTTP/1.1\r\n");
        for h in headers {
            if !h.to_ascii_lowercase().starts_with("proxy-") {
                req.push_str(h);
                req.push_str("\r\n");
            }
        }
        req.push_str("\r\n");
        if up.write_all(req.as_bytes()).await.is_err() || up.write_all(&rest).await.is_err() {
            return;
        }
        let _ = tokio::io::copy_bidirectional(&mut s, &mut up).await;
    }
}

/// A SOCKS5 proxy without authentication (IPv4, domain and IPv6 targets)
/// on a free port of 127.0.0.1.
pub async fn socks5() -> SocketAddr {
    socks5_on(TcpListener::bind("127.0.0.1:0").await.unwrap())
}

/// The SOCKS5 proxy of [`socks5`] on `l`.
pub fn socks5_on(l: TcpListener) -> SocketAddr {
    let addr = l.local_addr().unwrap();
    tokio::spawn(serve(l, |mut s| {
        Box::pin(async move {
            let _ = socks5_session(&mut s).await;
        })
    }));
    addr
}

async fn socks5_session(s: &mut TcpStream) -> std::io::Result<()> {
    let mut hello = [0u8; 2];
    s.read_exact(&mut hello).await?;
    let mut methods = vec![0u8; hello[1] as usize];
    s.read_exact(&mut methods).await?;
    if hello[0] != 5 || !methods.contains(&0) {
        s.write_all(&[5, 0xff]).await?;
        return Ok(());
    }
    s.write_all(&[5, 0]).await?;
    let mut req = [0u8; 4];
    s.read_exact(&mut req).await?;
    let host = match req[3] {
        1 => {
            let mut a = [0u8; 4];
            s.read_exact(&mut a).await?;
            std::net::Ipv4Addr::from(a).to_string()
        }
        3 => {
            let mut len = [0u8; 1];
            s.read_exact(&mut len).await?;
            let mut name = vec![0u8; len[0] as usize];
            s.read_exact(&mut name).await?;
            String::from_utf8_lossy(&name).into_owned()
        }
        _ => {
            let mut a = [0u8; 16];
            s.read_exact(&mut a).await?;
            format!("[{}]", std::net::Ipv6Addr::from(a))
        }
    };
    let mut port = [0u8; 2];
    s.read_exact(&mut port).await?;
    let port = u16::from_be_bytes(port);
    let mut up = match TcpStream::connect(format!("{host}:{port}")).await {
        Ok(up) => up,
        Err(_) => {
            s.write_all(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
            return Ok(());
        }
    };
    s.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
    tokio::io::copy_bidirectional(s, &mut up).await?;
    Ok(())
}
