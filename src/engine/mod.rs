//! The probe engine: real TCP SYN, UDP and ICMP packets, and what their answers mean
//! (ARCHITECTURE.md, "What packets tell us"). Knows nothing of security groups.
//!
//! `matcher` is the state machine every protocol shares (no I/O); `syn`, `udp` and `echo`
//! hold what each protocol adds; `network` is the seam to the sockets in `crate::net`;
//! `rtt` the adaptive timeouts; `pacer` the one rate every probe obeys; `connect` the
//! fallback without raw sockets.

mod connect;
mod echo;
pub mod matcher;
mod pacer;
mod rtt;
mod syn;
#[cfg(test)]
mod tests;
mod udp;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use thiserror::Error;

pub use pacer::Pacer;

use crate::model::PortState;
use crate::net::{Family, Kind, NetError, Network, Sockets};
use crate::packet::icmp::IcmpKind;

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

impl Target {
    pub fn tcp(addr: IpAddr, port: u16) -> Self {
        Target {
            addr,
            protocol: ProbeProtocol::Tcp,
            port: Some(port),
        }
    }

    pub fn udp(addr: IpAddr, port: u16) -> Self {
        Target {
            addr,
            protocol: ProbeProtocol::Udp,
            port: Some(port),
        }
    }

    pub fn icmp(addr: IpAddr) -> Self {
        Target {
            addr,
            protocol: ProbeProtocol::Icmp,
            port: None,
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

/// What was seen, as the reason for a state. Rendered as text only at the output edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evidence {
    SynAck,
    Rst,
    UdpReply,
    EchoReply,
    /// An ICMP error, and who sent it where known.
    Icmp {
        kind: IcmpKind,
        from: Option<IpAddr>,
    },
    NoReply,
    /// The probe never left this host (no route, say).
    Unsendable(io::ErrorKind),
    /// connect() completed.
    Connected,
    /// connect() was refused: a RST.
    Refused,
    /// connect() failed otherwise.
    ConnectFailed(io::ErrorKind),
    /// The run's hard deadline passed before an answer or the last timeout.
    RunDeadline,
    /// Never sent: no socket could send it (see `Warning::NoEcho`).
    Unprobed,
}

impl fmt::Display for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Evidence::SynAck => f.write_str("syn-ack"),
            Evidence::Rst => f.write_str("rst"),
            Evidence::UdpReply => f.write_str("udp reply"),
            Evidence::EchoReply => f.write_str("echo reply"),
            Evidence::Icmp {
                kind,
                from: Some(from),
            } => write!(f, "{} from {from}", kind.label()),
            Evidence::Icmp { kind, from: None } => f.write_str(&kind.label()),
            Evidence::NoReply => f.write_str("no reply"),
            Evidence::Unsendable(kind) => write!(f, "not sent: {kind}"),
            Evidence::Connected => f.write_str("connected"),
            Evidence::Refused => f.write_str("refused"),
            Evidence::ConnectFailed(kind) => write!(f, "connect failed: {kind}"),
            Evidence::RunDeadline => f.write_str("no reply before the run's deadline"),
            Evidence::Unprobed => f.write_str("not probed: no ICMP socket"),
        }
    }
}

impl Serialize for Evidence {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// What the packets showed for one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub target: Target,
    pub state: PortState,
    pub rtt: Option<Duration>,
    pub evidence: Evidence,
    /// The deciding reply's IP TTL or hop limit as received (`None` for connect() probes,
    /// echoes and ICMP errors to UDP): the instance's own replies share one, a box answering
    /// for it shows another.
    pub ttl: Option<u8>,
    pub attempts: u32,
    pub method: Method,
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// Packets per second, all protocols together.
    pub rate: u32,
    /// The longest wait for an answer to one attempt, and the wait before any answer has
    /// been seen; after that each host's wait adapts to its round-trip time.
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
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
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
}

/// Something the caller should tell the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    /// No CAP_NET_RAW: TCP used connect().
    NoRawSockets,
    /// Raw probes drew no reply at all while connect() did: something on this host drops
    /// the replies to the probe source ports, so TCP was probed again with connect().
    RawRepliesDropped,
    /// Neither a raw nor an unprivileged ICMP socket: echo flows were not probed (unknown).
    NoEcho,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::NoRawSockets => f.write_str(
                "no CAP_NET_RAW: TCP is probed with connect() (method \"connect\": full handshakes, visible in the target's logs); \
run as root or `setcap cap_net_raw+ep` the binary for half-open SYN probes",
            ),
            Warning::NoEcho => f.write_str(
                "no ICMP socket: echo flows are not probed and read unknown; grant CAP_NET_RAW, or let the agent's group send \
unprivileged echoes (sysctl net.ipv4.ping_group_range, a pod's securityContext.sysctls)",
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

/// Probes every target and reports what the packets showed, one observation per target in
/// the order given. `pacer` is the caller's: one pacer shared by every run makes its rate a
/// ceiling for all of them.
pub async fn probe(
    settings: &Settings,
    pacer: &Pacer,
    targets: &[Target],
    counters: Arc<Counters>,
) -> Result<Report, EngineError> {
    let mut warnings = Vec::new();
    // ICMP with no socket to send it: those targets are not probed, and say so; the rest go on.
    let all = targets;
    let echo_denied: Vec<Family> = [Family::V4, Family::V6]
        .into_iter()
        .filter(|f| {
            all.iter()
                .any(|t| t.protocol == ProbeProtocol::Icmp && Family::of(t.addr) == *f)
                && !crate::net::can_echo(*f)
        })
        .collect();
    let unprobed =
        |t: &Target| t.protocol == ProbeProtocol::Icmp && echo_denied.contains(&Family::of(t.addr));
    if !echo_denied.is_empty() {
        warnings.push(Warning::NoEcho);
    }
    let probed: Vec<Target> = all.iter().copied().filter(|t| !unprobed(t)).collect();
    let targets = &probed[..];
    let has_tcp = targets.iter().any(|t| t.protocol == ProbeProtocol::Tcp);
    let raw = !settings.force_connect && crate::net::has_raw_sockets();
    if !raw && !settings.force_connect && has_tcp {
        warnings.push(Warning::NoRawSockets);
    }
    // Without raw sockets TCP goes through connect(); the rest through the sockets.
    let by_connect = |t: &Target| t.protocol == ProbeProtocol::Tcp && !raw;
    let needs = targets.iter().filter(|t| !by_connect(t)).map(|t| {
        let kind = match t.protocol {
            ProbeProtocol::Tcp => Kind::Syn,
            ProbeProtocol::Udp => Kind::Udp,
            ProbeProtocol::Icmp => Kind::Echo,
        };
        (kind, Family::of(t.addr))
    });
    let mut sockets = Sockets::open(needs, settings.timeout)?;
    let mut observations = if raw {
        probe_over(&mut sockets, settings, pacer, targets, counters.clone()).await
    } else {
        let (connect, packets): (Vec<Target>, Vec<Target>) =
            unique(targets).into_iter().partition(|t| by_connect(t));
        let (packets, connected) = tokio::join!(
            probe_over(&mut sockets, settings, pacer, &packets, counters.clone()),
            connect::scan(&connect, settings, pacer, &counters)
        );
        merge(targets, packets.into_iter().chain(connected))
    };
    Counters::add(&counters.dropped, sockets.kernel_drops());
    drop(sockets);

    // Raw probes that drew no reply at all while connect() gets answers: something on this
    // host drops the replies to our probe ports. Probe TCP again with connect().
    let syn: Vec<Target> = unique(targets)
        .into_iter()
        .filter(|t| t.protocol == ProbeProtocol::Tcp)
        .collect();
    let all_silent = observations
        .iter()
        .filter(|o| o.method == Method::Syn)
        .all(|o| o.evidence == Evidence::NoReply);
    if raw && !syn.is_empty() && all_silent && connect::answers_any(&syn, settings).await {
        warnings.push(Warning::RawRepliesDropped);
        let connected = connect::scan(&syn, settings, pacer, &counters).await;
        let others = observations.into_iter().filter(|o| o.method != Method::Syn);
        observations = merge(targets, others.chain(connected));
    }
    if !echo_denied.is_empty() {
        let skipped = unique(all)
            .into_iter()
            .filter(unprobed)
            .map(|target| Observation {
                target,
                state: PortState::Unknown,
                rtt: None,
                evidence: Evidence::Unprobed,
                ttl: None,
                attempts: 0,
                method: Method::Icmp,
            });
        observations = merge(all, observations.into_iter().chain(skipped));
    }
    Ok(Report {
        observations,
        warnings,
    })
}

/// One observation per target, in the order given, from observations of each target once.
fn merge(targets: &[Target], found: impl Iterator<Item = Observation>) -> Vec<Observation> {
    let by_target: HashMap<Target, Observation> = found.map(|o| (o.target, o)).collect();
    targets.iter().map(|t| by_target[t].clone()).collect()
}

/// Probes `targets` over `network`: each distinct target once, each requester answered, in
/// the order given, by the run's deadline at the latest.
pub async fn probe_over<N: Network>(
    network: &mut N,
    settings: &Settings,
    pacer: &Pacer,
    targets: &[Target],
    counters: Arc<Counters>,
) -> Vec<Observation> {
    let mut slots: HashMap<Target, usize> = HashMap::with_capacity(targets.len());
    for target in targets {
        let next = slots.len();
        slots.entry(*target).or_insert(next);
    }
    // The usual case, every target distinct, is probed as given: copies of 100,000 targets
    // and their order were a cycle's peak memory.
    if slots.len() == targets.len() {
        return matcher::drive(network, targets, slots, settings, pacer, counters).await;
    }
    let order: Vec<usize> = targets.iter().map(|t| slots[t]).collect();
    let mut distinct = vec![targets[0]; slots.len()];
    for (target, slot) in &slots {
        distinct[*slot] = *target;
    }
    let found = matcher::drive(network, &distinct, slots, settings, pacer, counters).await;
    order.into_iter().map(|slot| found[slot].clone()).collect()
}

/// Each target once, in the order first given.
fn unique(targets: &[Target]) -> Vec<Target> {
    let mut seen = HashSet::with_capacity(targets.len());
    targets
        .iter()
        .copied()
        .filter(|t| seen.insert(*t))
        .collect()
}
