//! The probe engine: real TCP SYN, UDP and ICMP packets, and what their answers mean
//! (DESIGN §3). Knows nothing of security groups.

mod connect;
mod echo;
mod pacer;
mod syn;
mod udp;

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use thiserror::Error;

pub use pacer::Pacer;

use crate::net::NetError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeProtocol {
    Tcp,
    Udp,
    Icmp,
}

/// One thing to probe: an address and, for TCP and UDP, a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    pub addr: IpAddr,
    pub protocol: ProbeProtocol,
    pub port: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum PortState {
    #[serde(rename = "open")]
    Open,
    #[serde(rename = "closed")]
    Closed,
    #[serde(rename = "filtered")]
    Filtered,
    #[serde(rename = "open|filtered")]
    OpenFiltered,
}

impl fmt::Display for PortState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PortState::Open => "open",
            PortState::Closed => "closed",
            PortState::Filtered => "filtered",
            PortState::OpenFiltered => "open|filtered",
        })
    }
}

impl PortState {
    /// Whether the probe reached the host: open and closed did, filtered did not, and
    /// open|filtered cannot say.
    pub fn reachable(self) -> Option<bool> {
        match self {
            PortState::Open | PortState::Closed => Some(true),
            PortState::Filtered => Some(false),
            PortState::OpenFiltered => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Half-open TCP over a raw socket.
    Syn,
    /// A full TCP connect(): no raw sockets.
    Connect,
    Udp,
    Icmp,
}

/// What the packets showed for one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub target: Target,
    pub state: PortState,
    pub rtt: Option<Duration>,
    /// What was seen: `syn-ack`, `rst`, `icmp 3/13 from 10.77.1.5`, `no reply`.
    pub evidence: String,
    pub attempts: u32,
    pub method: Method,
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// Packets per second, all protocols together.
    pub rate: u32,
    /// How long to wait for an answer to one attempt.
    pub timeout: Duration,
    /// Further attempts for a probe that got no answer.
    pub retries: u32,
    /// Use TCP connect() even when raw sockets are available.
    pub force_connect: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            rate: 10_000,
            timeout: Duration::from_secs(1),
            retries: 2,
            force_connect: false,
        }
    }
}

/// Counters a caller can watch while probes run (progress) and read after (drops, strays).
#[derive(Debug, Default)]
pub struct Counters {
    pub sent: AtomicU64,
    pub answered: AtomicU64,
    /// Replies to a probe already answered or given up.
    pub duplicates: AtomicU64,
    /// Replies whose cookie did not match: not ours, or forged.
    pub strays: AtomicU64,
    /// Packets the kernel dropped before we read them (receive buffer full).
    pub dropped: AtomicU64,
}

impl Counters {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Error)]
pub enum EngineError {
    #[error(transparent)]
    Net(#[from] NetError),
    #[error("ICMP echo: {0}")]
    Echo(String),
}

/// Something the caller should tell the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    /// No CAP_NET_RAW: TCP used connect().
    NoRawSockets,
    /// Raw probes drew no reply at all while connect() did: something on this host drops
    /// the replies to the probe source ports, so TCP was probed again with connect().
    RawRepliesDropped,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::NoRawSockets => f.write_str(
                "no CAP_NET_RAW: TCP is probed with connect() (method \"connect\": full handshakes, visible in the target's logs); \
run as root or `setcap cap_net_raw+ep` the binary for half-open SYN probes",
            ),
            Warning::RawRepliesDropped => f.write_str(
                "raw SYN probes drew no reply at all, but connect() did: a firewall on this host drops replies to source ports \
61001-65535; TCP was probed again with connect(). Allow inbound TCP to those ports for SYN probing",
            ),
        }
    }
}

#[derive(Debug)]
pub struct Report {
    /// One per target, in the order given.
    pub observations: Vec<Observation>,
    pub warnings: Vec<Warning>,
}

/// What one attempt of a probe drew.
pub(crate) enum Attempt {
    /// An answer that decides the probe.
    Decided(PortState, std::time::Duration, String),
    /// An answer worth trying again (an unreachable error on the way may be transient).
    Tentative(PortState, std::time::Duration, String),
    /// Nothing, optionally with why.
    Silent(Option<String>),
}

/// Tries a probe up to `1 + retries` times, each paced and counted, until an answer decides.
/// Unanswered, it is filtered.
pub(crate) async fn attempt<F, Fut>(
    target: Target,
    method: Method,
    settings: &Settings,
    pacer: &Pacer,
    counters: &Counters,
    mut once: F,
) -> Observation
where
    F: FnMut(u32) -> Fut,
    Fut: std::future::Future<Output = Attempt>,
{
    let mut attempts = 0;
    let (mut state, mut rtt, mut evidence) = (PortState::Filtered, None, "no reply".to_string());
    while attempts <= settings.retries {
        pacer.one().await;
        attempts += 1;
        Counters::add(&counters.sent, 1);
        match once(attempts).await {
            Attempt::Decided(s, r, e) => {
                Counters::add(&counters.answered, 1);
                (state, rtt, evidence) = (s, Some(r), e);
                break;
            }
            Attempt::Tentative(s, r, e) => {
                Counters::add(&counters.answered, 1);
                (state, rtt, evidence) = (s, Some(r), e);
            }
            Attempt::Silent(why) => {
                if let Some(why) = why {
                    evidence = why;
                }
            }
        }
    }
    Observation {
        target,
        state,
        rtt,
        evidence,
        attempts,
        method,
    }
}

/// Probes every target and reports what the packets showed.
pub async fn probe(
    settings: &Settings,
    targets: &[Target],
    counters: Arc<Counters>,
) -> Result<Report, EngineError> {
    let pacer = Arc::new(Pacer::new(settings.rate));
    let mut warnings = Vec::new();
    let pick = |protocol| -> Vec<(usize, Target)> {
        targets
            .iter()
            .copied()
            .enumerate()
            .filter(|(_, t)| t.protocol == protocol)
            .collect()
    };
    let (tcp, udp, icmp) = (
        pick(ProbeProtocol::Tcp),
        pick(ProbeProtocol::Udp),
        pick(ProbeProtocol::Icmp),
    );

    let raw = !settings.force_connect && crate::net::has_raw_sockets();
    if !raw && !settings.force_connect && !tcp.is_empty() {
        warnings.push(Warning::NoRawSockets);
    }
    let tcp_probe = async {
        if tcp.is_empty() {
            return Ok(Vec::new());
        }
        if !raw {
            return Ok(connect::scan(&tcp, settings, &pacer, &counters).await);
        }
        let found = syn::scan(&tcp, settings, &pacer, &counters).await?;
        let silent = found.iter().all(|(_, o)| o.evidence == syn::NO_REPLY);
        if silent && connect::answers_any(&tcp, settings).await {
            return Ok(connect::scan(&tcp, settings, &pacer, &counters).await);
        }
        Ok::<_, EngineError>(found)
    };
    let (tcp_found, udp_found, icmp_found) = tokio::join!(
        tcp_probe,
        udp::scan(&udp, settings, &pacer, &counters),
        echo::scan(&icmp, settings, &pacer, &counters)
    );
    let tcp_found = tcp_found?;
    if raw && tcp_found.iter().any(|(_, o)| o.method == Method::Connect) {
        warnings.push(Warning::RawRepliesDropped);
    }
    let mut slots: Vec<Option<Observation>> = vec![None; targets.len()];
    for (index, observation) in tcp_found.into_iter().chain(udp_found?).chain(icmp_found?) {
        slots[index] = Some(observation);
    }
    let observations = slots
        .into_iter()
        .map(|o| o.expect("every target is probed by its protocol's scanner"))
        .collect();
    Ok(Report {
        observations,
        warnings,
    })
}
