//! The load generators of `lvs-bench`. Call them on a thread inside the client namespace
//! (`lab.client().try_run(|| ...)`): the worker threads they spawn inherit it.
//!
//! - [`conn_rate`]: closed loop, `workers × per_worker` connections in flight, each a fresh
//!   TCP connection with one short `GET` and `Connection: close`, read to EOF.
//! - [`keepalive_rate`]: closed loop, `workers × per_worker` keep-alive connections, one
//!   request in flight on each.
//! - [`latency`]: open loop at a fixed rate; each request is a fresh connection timed from
//!   its *scheduled* start (so a stall is not hidden by the generator waiting for it) to the
//!   end of the response.
//! - [`udp_trial`] and [`UdpSinks`]: paced datagrams from the client, counted by sinks in
//!   the real servers' namespaces.
//!
//! Every generator takes its source and target in either family (IPv4 or IPv6, both the
//! same family); nothing here depends on the family but the socket it opens.
//!
//! Invariants: every loop ends by its deadline (each network operation has its own timeout
//! shorter than the phase, [`OP_TIMEOUT`]) or when [`super::interrupted`] turns true; every
//! peer reply is parsed without panicking (a bad reply counts as an error); the number of
//! tasks, connections and latency samples is bounded by the arguments.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::interrupted;
use crate::error::{Context, LabError, Result};
use crate::host::Host;

/// Limit of every connect, read and write of the TCP generators.
pub const OP_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest response head the keep-alive parser accepts.
const MAX_HEAD: usize = 16 * 1024;
/// Most latency requests in flight; beyond it a scheduled request is counted as an error.
const MAX_LATENCY_IN_FLIGHT: usize = 2_000;
/// UDP payload: 18 bytes, so the frame is 64 bytes on the wire with the FCS
/// (14 Ethernet + 20 IPv4 + 8 UDP + 18 + 4); over IPv6 the same datagram is an 84-byte frame
/// (the IPv6 header is 40 bytes, so no IPv6 UDP frame is shorter than 66 bytes).
pub const UDP_PAYLOAD: usize = 18;
/// Ethernet frame size (FCS included) of one [`UDP_PAYLOAD`] datagram over IPv6.
pub const UDP_FRAME6: usize = 14 + 40 + 8 + UDP_PAYLOAD + 4;

/// Completed operations and errors of one closed-loop run.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Throughput {
    /// Requests answered with a complete `200` response.
    pub ok: u64,
    /// Failed operations (connect, timeout, reset, bad response).
    pub errors: u64,
    /// Wall time of the run.
    pub secs: f64,
}

impl Throughput {
    /// Completed requests per second.
    pub fn rate(&self) -> f64 {
        if self.secs > 0.0 {
            self.ok as f64 / self.secs
        } else {
            0.0
        }
    }
}

#[derive(Debug, Default)]
struct Tally {
    ok: AtomicU64,
    errors: AtomicU64,
}

fn request(target: SocketAddr, keep_alive: bool) -> Vec<u8> {
    format!(
        "GET / HTTP/1.1\r\nHost: {target}\r\nUser-Agent: lvs-bench\r\nConnection: {}\r\n\r\n",
        if keep_alive { "keep-alive" } else { "close" }
    )
    .into_bytes()
}

/// Run `workers` OS threads, each with a current-thread runtime driving `per_worker` copies
/// of `task`, until `duration` has passed.
fn closed_loop<F, Fut>(workers: usize, per_worker: usize, duration: Duration, task: F) -> Throughput
where
    F: Fn(Instant, Arc<Tally>) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let deadline = started + duration;
    let handles: Vec<JoinHandle<()>> = (0..workers.max(1))
        .filter_map(|i| {
            let task = task.clone();
            let tally = Arc::clone(&tally);
            thread::Builder::new()
                .name(format!("bench-load-{i}"))
                .spawn(move || {
                    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    else {
                        tally.errors.fetch_add(1, Ordering::Relaxed);
                        return;
                    };
                    let local = tokio::task::LocalSet::new();
                    local.block_on(&rt, async move {
                        let tasks: Vec<_> = (0..per_worker.max(1))
                            .map(|_| tokio::task::spawn_local(task(deadline, Arc::clone(&tally))))
                            .collect();
                        for t in tasks {
                            let _ = t.await;
                        }
                    });
                })
                .ok()
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
    Throughput {
        ok: tally.ok.load(Ordering::Relaxed),
        errors: tally.errors.load(Ordering::Relaxed),
        secs: started.elapsed().as_secs_f64(),
    }
}

/// Connect from `src` (an address of the client, of `target`'s family; port chosen by the
/// kernel) to `target`.
async fn connect(src: IpAddr, target: SocketAddr) -> io::Result<TcpStream> {
    let sock = if target.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    sock.bind(SocketAddr::new(src, 0))?;
    let stream = sock.connect(target).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

fn running(deadline: Instant) -> bool {
    Instant::now() < deadline && !interrupted()
}

/// One `GET` on a fresh connection with `Connection: close`, read to EOF. Whether the
/// response is a `200`.
async fn one_shot(
    src: IpAddr,
    target: SocketAddr,
    req: &[u8],
    buf: &mut Vec<u8>,
) -> io::Result<bool> {
    let run = async {
        let mut stream = connect(src, target).await?;
        stream.write_all(req).await?;
        buf.clear();
        stream.read_to_end(buf).await?;
        Ok::<bool, io::Error>(buf.starts_with(b"HTTP/1.1 200") || buf.starts_with(b"HTTP/1.0 200"))
    };
    match tokio::time::timeout(OP_TIMEOUT, run).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::from(io::ErrorKind::TimedOut)),
    }
}

/// New connections per second: see the module doc.
pub fn conn_rate(
    src: impl Into<IpAddr>,
    target: impl Into<SocketAddr>,
    workers: usize,
    per_worker: usize,
    duration: Duration,
) -> Throughput {
    let (src, target) = (src.into(), target.into());
    let req: Arc<[u8]> = request(target, false).into();
    closed_loop(workers, per_worker, duration, move |deadline, tally| {
        let req = Arc::clone(&req);
        async move {
            let mut buf = Vec::with_capacity(1024);
            while running(deadline) {
                match one_shot(src, target, &req, &mut buf).await {
                    Ok(true) => {
                        tally.ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(false) | Err(_) => {
                        tally.errors.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
        }
    })
}

/// Where a complete response ends in `buf`, if it is complete: the head up to `\r\n\r\n`
/// plus `Content-Length` bytes. `Err` for a head that is too long or malformed.
fn response_end(buf: &[u8]) -> std::result::Result<Option<(usize, bool)>, &'static str> {
    let Some(head_len) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if buf.len() > MAX_HEAD {
            Err("response head too long")
        } else {
            Ok(None)
        };
    };
    let head = std::str::from_utf8(&buf[..head_len]).map_err(|_| "head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    let ok = status.starts_with("HTTP/1.1 200") || status.starts_with("HTTP/1.0 200");
    let mut length = None;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("content-length") {
                length = Some(
                    value
                        .trim()
                        .parse::<usize>()
                        .map_err(|_| "bad content-length")?,
                );
            }
        }
    }
    let length = length.ok_or("no content-length on a keep-alive response")?;
    let end = head_len + 4 + length;
    Ok((buf.len() >= end).then_some((end, ok)))
}

/// Keep-alive requests per second: see the module doc.
pub fn keepalive_rate(
    src: impl Into<IpAddr>,
    target: impl Into<SocketAddr>,
    workers: usize,
    per_worker: usize,
    duration: Duration,
) -> Throughput {
    let (src, target) = (src.into(), target.into());
    let req: Arc<[u8]> = request(target, true).into();
    closed_loop(workers, per_worker, duration, move |deadline, tally| {
        let req = Arc::clone(&req);
        async move {
            let mut buf = Vec::with_capacity(4096);
            let mut chunk = vec![0u8; 4096];
            while running(deadline) {
                let connected = tokio::time::timeout(OP_TIMEOUT, connect(src, target)).await;
                let Ok(Ok(mut stream)) = connected else {
                    tally.errors.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                };
                buf.clear();
                // Requests on this connection until it fails or the phase ends.
                'conn: while running(deadline) {
                    if !matches!(
                        tokio::time::timeout(OP_TIMEOUT, stream.write_all(&req)).await,
                        Ok(Ok(()))
                    ) {
                        tally.errors.fetch_add(1, Ordering::Relaxed);
                        break 'conn;
                    }
                    loop {
                        match response_end(&buf) {
                            Ok(Some((end, ok))) => {
                                buf.drain(..end);
                                let counter = if ok { &tally.ok } else { &tally.errors };
                                counter.fetch_add(1, Ordering::Relaxed);
                                break;
                            }
                            Ok(None) => {}
                            Err(_) => {
                                tally.errors.fetch_add(1, Ordering::Relaxed);
                                break 'conn;
                            }
                        }
                        match tokio::time::timeout(OP_TIMEOUT, stream.read(&mut chunk)).await {
                            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                            // EOF (the server ended keep-alive), error or timeout.
                            _ => {
                                tally.errors.fetch_add(1, Ordering::Relaxed);
                                break 'conn;
                            }
                        }
                    }
                }
            }
        }
    })
}

/// Latency distribution of an open-loop run.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Latency {
    /// Requests scheduled per second.
    pub rate: u32,
    /// Completed requests.
    pub ok: u64,
    /// Failed or never started (too many in flight) requests.
    pub errors: u64,
    /// Median, microseconds.
    pub p50_us: f64,
    /// 99th percentile, microseconds.
    pub p99_us: f64,
    /// Largest, microseconds.
    pub max_us: f64,
}

/// Nearest-rank percentile `p` (0..=100) of sorted `v`.
fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64
}

/// Fixed-rate latency: see the module doc.
pub fn latency(
    src: impl Into<IpAddr>,
    target: impl Into<SocketAddr>,
    rate: u32,
    duration: Duration,
) -> Result<Latency> {
    let (src, target) = (src.into(), target.into());
    let req: Arc<[u8]> = request(target, false).into();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ctx("building the latency runtime")?;
    let samples = Arc::new(Mutex::new(Vec::<u64>::new()));
    let errors = Arc::new(AtomicU64::new(0));
    let in_flight = Arc::new(AtomicU64::new(0));
    let period = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, {
        let samples = Arc::clone(&samples);
        let errors = Arc::clone(&errors);
        async move {
            let start = tokio::time::Instant::now();
            let deadline = start + duration;
            let mut tasks = Vec::new();
            let mut i: u32 = 0;
            loop {
                let scheduled = start + period * i;
                if scheduled >= deadline || interrupted() {
                    break;
                }
                tokio::time::sleep_until(scheduled).await;
                i = i.saturating_add(1);
                if in_flight.load(Ordering::Relaxed) as usize >= MAX_LATENCY_IN_FLIGHT {
                    errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                in_flight.fetch_add(1, Ordering::Relaxed);
                let (req, samples, errors, in_flight) = (
                    Arc::clone(&req),
                    Arc::clone(&samples),
                    Arc::clone(&errors),
                    Arc::clone(&in_flight),
                );
                tasks.push(tokio::task::spawn_local(async move {
                    let mut buf = Vec::with_capacity(1024);
                    match one_shot(src, target, &req, &mut buf).await {
                        Ok(true) => {
                            let us = scheduled.elapsed().as_micros();
                            samples
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .push(u64::try_from(us).unwrap_or(u64::MAX));
                        }
                        _ => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    in_flight.fetch_sub(1, Ordering::Relaxed);
                }));
                // Reap finished tasks now and then so the list stays short.
                if tasks.len() >= 4096 {
                    tasks.retain(|t: &tokio::task::JoinHandle<()>| !t.is_finished());
                }
            }
            for t in tasks {
                let _ = t.await;
            }
        }
    });
    let mut v = std::mem::take(&mut *samples.lock().unwrap_or_else(PoisonError::into_inner));
    v.sort_unstable();
    Ok(Latency {
        rate,
        ok: v.len() as u64,
        errors: errors.load(Ordering::Relaxed),
        p50_us: percentile(&v, 50.0),
        p99_us: percentile(&v, 99.0),
        max_us: v.last().copied().unwrap_or(0) as f64,
    })
}

/// UDP sinks: one thread per real server, inside its namespace, counting every datagram
/// that reaches `0.0.0.0:PORT` there (or `[::]:PORT`, both families, with
/// [`UdpSinks::start_dual`]); no reply. Stopped and joined on drop.
#[derive(Debug)]
pub struct UdpSinks {
    stop: Arc<AtomicBool>,
    received: Arc<AtomicU64>,
    threads: Vec<JoinHandle<Result<()>>>,
    hosts: Vec<Host>,
}

impl UdpSinks {
    /// Bind an IPv4 sink on `port` in every host of `hosts` and wait until all are bound.
    pub fn start(hosts: &[Host], port: u16) -> Result<Self> {
        Self::start_on(hosts, IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)
    }

    /// As [`UdpSinks::start`], but bound to `[::]:PORT` with `IPV6_V6ONLY` off, so IPv4 and
    /// IPv6 datagrams are both counted (the hosts need IPv6: [`crate::LabSpec::ipv6`]).
    pub fn start_dual(hosts: &[Host], port: u16) -> Result<Self> {
        Self::start_on(hosts, IpAddr::V6(Ipv6Addr::UNSPECIFIED), port)
    }

    fn start_on(hosts: &[Host], any: IpAddr, port: u16) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new(AtomicU64::new(0));
        let mut sinks = Self {
            stop: Arc::clone(&stop),
            received: Arc::clone(&received),
            threads: Vec::new(),
            hosts: hosts.to_vec(),
        };
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<()>>();
        for host in hosts {
            let (host, stop, received, ready) = (
                host.clone(),
                Arc::clone(&stop),
                Arc::clone(&received),
                ready_tx.clone(),
            );
            let handle = thread::Builder::new()
                .name(format!("bench-sink-{}", host.name()))
                .spawn(move || {
                    host.try_run(move || {
                        let bound = bind_sink(any, port);
                        let sock = match bound {
                            Ok(s) => {
                                let _ = ready.send(Ok(()));
                                s
                            }
                            Err(e) => {
                                let text = e.to_string();
                                let _ = ready.send(Err(e));
                                return Err(LabError::Invalid(text));
                            }
                        };
                        let mut bufs = vec![[0u8; 2048]; 64];
                        while !stop.load(Ordering::Relaxed) {
                            match crate::sys::recv_many(&sock, &mut bufs) {
                                Ok(n) => {
                                    received.fetch_add(n as u64, Ordering::Relaxed);
                                }
                                Err(e)
                                    if matches!(
                                        e.kind(),
                                        io::ErrorKind::WouldBlock
                                            | io::ErrorKind::TimedOut
                                            | io::ErrorKind::Interrupted
                                    ) => {}
                                Err(e) => return Err(e).ctx("udp sink recv"),
                            }
                        }
                        Ok(())
                    })?
                })
                .ctx("spawning a udp sink thread")?;
            sinks.threads.push(handle);
        }
        drop(ready_tx);
        for _ in hosts {
            match ready_rx.recv_timeout(Duration::from_secs(5)) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    return Err(LabError::Timeout {
                        what: "udp sinks to bind".into(),
                        after: Duration::from_secs(5),
                        logs: String::new(),
                    });
                }
            }
        }
        Ok(sinks)
    }

    /// Datagrams received by all sinks so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// UDP datagrams the real servers' kernels dropped for a full receive buffer so far
    /// (`RcvbufErrors` of each namespace's `/proc/net/snmp`; 0 where unreadable): loss at
    /// the sinks themselves rather than on the path.
    pub fn socket_drops(&self) -> u64 {
        self.hosts
            .iter()
            .filter_map(|h| {
                h.try_run(|| std::fs::read_to_string("/proc/thread-self/net/snmp"))
                    .ok()?
                    .ok()
            })
            .filter_map(|text| udp_rcvbuf_errors(&text))
            .sum()
    }
}

/// `RcvbufErrors` of the `Udp:` lines of `/proc/net/snmp` (a header line, then values).
fn udp_rcvbuf_errors(snmp: &str) -> Option<u64> {
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (names, values) = (udp.next()?, udp.next()?);
    let at = names.split_whitespace().position(|n| n == "RcvbufErrors")?;
    values.split_whitespace().nth(at)?.parse().ok()
}

/// Bind a sink on `any:port` (`any` an unspecified address; IPv6 is made dual-stack).
fn bind_sink(any: IpAddr, port: u16) -> Result<UdpSocket> {
    let sock = UdpSocket::bind(SocketAddr::new(any, port))
        .with_ctx(|| format!("binding the udp sink on port {port}"))?;
    // `[::]` takes IPv4 too unless the namespace's net.ipv6.bindv6only is set (it is off in
    // a new namespace; checked rather than assumed, as IPv4 datagrams would go uncounted).
    if any.is_ipv6() {
        let v6only =
            std::fs::read_to_string("/proc/sys/net/ipv6/bindv6only").is_ok_and(|v| v.trim() != "0");
        if v6only {
            return Err(LabError::Invalid(
                "udp sink: [::] is IPv6-only here (net.ipv6.bindv6only=1)".into(),
            ));
        }
    }
    // A large receive buffer, so the sink's own socket is not the bottleneck (root may
    // exceed rmem_max with SO_RCVBUFFORCE); best effort.
    let _ = nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::RcvBufForce, &(8 << 20));
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .ctx("udp sink timeout")?;
    Ok(sock)
}

impl Drop for UdpSinks {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// One paced UDP run.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct UdpTrial {
    /// Rate asked for, datagrams per second.
    pub offered: f64,
    /// Datagrams the client's socket accepted.
    pub sent: u64,
    /// Sends that failed (e.g. `ENOBUFS`).
    pub send_errors: u64,
    /// Datagrams counted by the sinks.
    pub received: u64,
    /// Datagrams the sinks' own sockets dropped (receive buffer full); included in the loss.
    pub sink_drops: u64,
    /// Achieved sending rate, datagrams per second.
    pub sent_rate: f64,
}

impl UdpTrial {
    /// Lost fraction of what was sent (0 when nothing was sent).
    pub fn loss(&self) -> f64 {
        if self.sent == 0 {
            return 0.0;
        }
        1.0 - (self.received.min(self.sent) as f64 / self.sent as f64)
    }

    /// Whether the sender could not keep up with the offered rate (below 97 % of it).
    pub fn sender_limited(&self) -> bool {
        self.sent_rate < self.offered * 0.97
    }
}

/// Send `UDP_PAYLOAD`-byte datagrams to `target` at `rate` per second in total for
/// `duration` from `senders` threads, each with a fresh socket (a new flow per sender and
/// trial) paced in 1 ms slots; then wait `settle` and count what `sinks` received. Call
/// inside the client namespace.
pub fn udp_trial(
    src: impl Into<IpAddr>,
    target: impl Into<SocketAddr>,
    rate: f64,
    senders: usize,
    duration: Duration,
    settle: Duration,
    sinks: &UdpSinks,
) -> Result<UdpTrial> {
    let (src, target) = (src.into(), target.into());
    let senders = senders.max(1);
    let socks = (0..senders)
        .map(|_| {
            let sock = UdpSocket::bind(SocketAddr::new(src, 0)).ctx("udp bind")?;
            sock.connect(target).ctx("udp connect")?;
            Ok(sock)
        })
        .collect::<Result<Vec<_>>>()?;
    let before = sinks.received();
    let drops_before = sinks.socket_drops();
    let started = Instant::now();
    let each = rate / senders as f64;
    let counts: Vec<(u64, u64)> = thread::scope(|scope| {
        let handles: Vec<_> = socks
            .iter()
            .map(|sock| scope.spawn(move || paced_send(sock, each, started, duration)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or((0, 0)))
            .collect()
    });
    let secs = started.elapsed().as_secs_f64();
    thread::sleep(settle);
    let sent = counts.iter().map(|c| c.0).sum::<u64>();
    Ok(UdpTrial {
        offered: rate,
        sent,
        send_errors: counts.iter().map(|c| c.1).sum(),
        received: sinks.received().saturating_sub(before),
        sink_drops: sinks.socket_drops().saturating_sub(drops_before),
        sent_rate: sent as f64 / secs.max(1e-3),
    })
}

/// Send at `rate` per second until `duration` after `started`; (sent, failed sends).
fn paced_send(sock: &UdpSocket, rate: f64, started: Instant, duration: Duration) -> (u64, u64) {
    let payload = [0x5au8; UDP_PAYLOAD];
    let (mut sent, mut send_errors) = (0u64, 0u64);
    // At most one 1 ms slot's worth per pass, so the deadline is checked often.
    let burst = ((rate / 1000.0) as u64).max(1);
    loop {
        let elapsed = started.elapsed();
        if elapsed >= duration || interrupted() {
            return (sent, send_errors);
        }
        let due = (rate * elapsed.as_secs_f64()) as u64;
        let mut n = 0;
        while sent + send_errors < due && n < burst {
            // Batches of up to 64 per system call (sendmmsg), so the generator offers far
            // more than one datagram per syscall would allow.
            let want = (due - sent - send_errors).min(burst - n).min(64) as usize;
            match crate::sys::send_copies(sock, &payload, want) {
                Ok(k) if k > 0 => sent += k as u64,
                // Nothing taken (full buffer) or an error: one failed send, as before.
                Ok(_) | Err(_) => send_errors += 1,
            }
            n += want as u64;
        }
        if sent + send_errors >= due {
            thread::sleep(Duration::from_micros(200));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalive_response_framing() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nX: y\r\n\r\nrs1\nHTTP/1.1";
        assert_eq!(response_end(r), Ok(Some((48, true))));
        assert_eq!(
            response_end(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nrs"),
            Ok(None)
        );
        assert_eq!(response_end(b"HTTP/1.1 200 OK\r\nContent-"), Ok(None));
        assert_eq!(
            response_end(b"HTTP/1.1 503 No\r\ncontent-length: 0\r\n\r\n"),
            Ok(Some((38, false)))
        );
        assert!(response_end(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n").is_err());
        assert!(response_end(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
        assert!(response_end(&vec![b'a'; MAX_HEAD + 1]).is_err());
    }

    #[test]
    fn snmp_rcvbuf_errors() {
        let snmp = "Ip: Forwarding DefaultTTL\nIp: 1 64\nUdp: InDatagrams NoPorts InErrors \
                    OutDatagrams RcvbufErrors SndbufErrors\nUdp: 544 18 3 564 7 0\n";
        assert_eq!(udp_rcvbuf_errors(snmp), Some(7));
        assert_eq!(udp_rcvbuf_errors("Udp: InDatagrams\n"), None);
    }

    #[test]
    fn percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&[7], 99.0), 7.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }

    #[test]
    fn trial_loss() {
        let t = UdpTrial {
            offered: 1000.0,
            sent: 1000,
            send_errors: 0,
            received: 999,
            sink_drops: 0,
            sent_rate: 990.0,
        };
        assert!((t.loss() - 0.001).abs() < 1e-9);
        assert!(!t.sender_limited());
        assert!(UdpTrial::default().loss() == 0.0);
    }
}
