//! Half-open TCP SYN probing over raw sockets (v4 and v6), stateless on the send side.
//!
//! One receive task per raw socket turns packets into events; one matcher loop owns the
//! pending probes and their deadlines, sends (paced), retries, and decides. It wakes for
//! events and for deadlines alike: it never waits on a packet to notice a timeout.

use std::cmp::Reverse;
use std::collections::hash_map::RandomState;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Counters, EngineError, Method, Observation, Pacer, PortState, Settings, Target};
use crate::model::catalog::PROBE_SOURCE_PORTS;
use crate::net::{Family, kernel_drops, raw_icmp, raw_tcp, source_for};
use crate::packet::Cookie;
use crate::packet::icmp::{self, Unreachable};
use crate::packet::tcp::{self, TcpReply, build_syn};

pub const NO_REPLY: &str = "no reply";
/// Most packets sent in one turn of the loop, so events are read between batches.
const BATCH: usize = 256;

enum Event {
    Tcp(TcpReply, Instant),
    Icmp(Unreachable, Instant),
}

struct Pending {
    index: usize,
    local_ip: IpAddr,
    attempts: u32,
    sent_at: Instant,
}

pub async fn scan(
    targets: &[(usize, Target)],
    settings: &Settings,
    pacer: &Pacer,
    counters: &Counters,
) -> Result<Vec<(usize, Observation)>, EngineError> {
    let cookie = Cookie::new(RandomState::new());
    let (events, mut inbox) = mpsc::unbounded_channel();
    let mut sockets: HashMap<Family, Arc<UdpSocket>> = HashMap::new();
    let mut receivers = tokio::task::JoinSet::new();
    // A target we cannot route to is answered at once, as filtered, not an error for all.
    let mut sources: HashMap<IpAddr, Result<IpAddr, String>> = HashMap::new();
    for (_, target) in targets {
        let family = Family::of(target.addr);
        if let std::collections::hash_map::Entry::Vacant(slot) = sockets.entry(family) {
            let tcp_socket = Arc::new(raw_tcp(family)?);
            let icmp_socket = raw_icmp(family)?;
            receivers.spawn(receive_tcp(tcp_socket.clone(), family, events.clone()));
            receivers.spawn(receive_icmp(icmp_socket, family, events.clone()));
            slot.insert(tcp_socket);
        }
        if let std::collections::hash_map::Entry::Vacant(slot) = sources.entry(target.addr) {
            slot.insert(source_for(target.addr).map_err(|e| e.to_string()));
        }
    }
    drop(events);

    let remote_of = |t: &Target| SocketAddr::new(t.addr, t.port.unwrap_or(0));
    let mut pending: HashMap<SocketAddr, Pending> = HashMap::with_capacity(targets.len());
    let mut done: HashMap<usize, Observation> = HashMap::with_capacity(targets.len());
    // Every probe's remote end: a reply from one no longer pending is a duplicate or late,
    // anything else a stray. A set, so the hot path never scans.
    let known: HashSet<SocketAddr> = targets.iter().map(|(_, t)| remote_of(t)).collect();
    let mut queue: VecDeque<usize> = (0..targets.len()).collect();
    let mut deadlines: BinaryHeap<Reverse<(Instant, usize, u32)>> = BinaryHeap::new();
    let mut attempts = vec![0u32; targets.len()];
    let span = u32::from(PROBE_SOURCE_PORTS.last - PROBE_SOURCE_PORTS.first) + 1;

    while done.len() < targets.len() {
        // Events first: they may settle probes before we resend them.
        while let Ok(event) = inbox.try_recv() {
            settle(
                event,
                &cookie,
                &mut pending,
                &mut done,
                targets,
                &known,
                counters,
            );
        }
        let now = Instant::now();
        while let Some(Reverse((deadline, slot, attempt))) = deadlines.peek().copied() {
            if deadline > now {
                break;
            }
            deadlines.pop();
            let remote = remote_of(&targets[slot].1);
            if pending.get(&remote).is_some_and(|p| p.attempts == attempt) {
                if attempt <= settings.retries {
                    queue.push_back(slot);
                } else {
                    let p = pending.remove(&remote).expect("checked above");
                    let observation = Observation {
                        target: targets[slot].1,
                        state: PortState::Filtered,
                        rtt: None,
                        evidence: NO_REPLY.to_string(),
                        attempts: p.attempts,
                        method: Method::Syn,
                    };
                    done.insert(slot, observation);
                }
            }
        }
        let mut granted = pacer.take(queue.len().min(BATCH));
        while granted > 0 {
            let Some(slot) = queue.pop_front() else { break };
            let target = targets[slot].1;
            let remote = remote_of(&target);
            if done.contains_key(&slot) {
                continue;
            }
            granted -= 1;
            attempts[slot] += 1;
            let attempt = attempts[slot];
            // A fresh source port per attempt: a retry is a new 4-tuple, clear of any state
            // the first left on the target.
            let port_offset = (slot as u32)
                .wrapping_mul(2_654_435_761)
                .wrapping_add(attempt)
                % span;
            let local_ip = match &sources[&target.addr] {
                Ok(ip) => *ip,
                Err(error) => {
                    done.insert(slot, unsendable(target, attempt, error.clone()));
                    continue;
                }
            };
            let local = SocketAddr::new(local_ip, PROBE_SOURCE_PORTS.first + port_offset as u16);
            let syn = build_syn(local, remote, cookie.seq(local, remote));
            let socket = &sockets[&Family::of(target.addr)];
            // Port 0: IPv6 raw sockets refuse any port but 0 or their protocol.
            if let Err(error) = socket.send_to(&syn, SocketAddr::new(remote.ip(), 0)).await {
                done.insert(
                    slot,
                    unsendable(target, attempt, format!("send failed: {error}")),
                );
                continue;
            }
            Counters::add(&counters.sent, 1);
            let sent_at = Instant::now();
            pending.insert(
                remote,
                Pending {
                    index: slot,
                    local_ip,
                    attempts: attempt,
                    sent_at,
                },
            );
            deadlines.push(Reverse((sent_at + settings.timeout, slot, attempt)));
        }
        if done.len() == targets.len() {
            break;
        }
        let wake = if queue.is_empty() {
            deadlines.peek().map_or(now + settings.timeout, |d| d.0.0)
        } else {
            Instant::now() + pacer.next_in()
        };
        tokio::select! {
            Some(event) = inbox.recv() => settle(event, &cookie, &mut pending, &mut done, targets, &known, counters),
            () = tokio::time::sleep_until(wake) => {}
        }
    }
    for (family, socket) in &sockets {
        Counters::add(
            &counters.dropped,
            kernel_drops(socket, *family).unwrap_or(0),
        );
    }
    receivers.abort_all();
    let mut found: Vec<(usize, Observation)> = done
        .into_iter()
        .map(|(slot, o)| (targets[slot].0, o))
        .collect();
    found.sort_by_key(|(index, _)| *index);
    Ok(found)
}

/// A probe that could not leave this host: the network is unreachable from here.
fn unsendable(target: Target, attempts: u32, evidence: String) -> Observation {
    Observation {
        target,
        state: PortState::Filtered,
        rtt: None,
        evidence,
        attempts,
        method: Method::Syn,
    }
}

/// Matches a reply to its pending probe by the cookie, and decides the probe.
fn settle(
    event: Event,
    cookie: &Cookie<RandomState>,
    pending: &mut HashMap<SocketAddr, Pending>,
    done: &mut HashMap<usize, Observation>,
    targets: &[(usize, Target)],
    known: &HashSet<SocketAddr>,
    counters: &Counters,
) {
    let (remote, local_port, proof, at, state, evidence) = match event {
        Event::Tcp(reply, at) => {
            let state = if reply.syn && reply.ack_flag {
                PortState::Open
            } else if reply.rst {
                PortState::Closed
            } else {
                return;
            };
            let evidence = if state == PortState::Open {
                "syn-ack"
            } else {
                "rst"
            };
            (
                reply.remote,
                reply.local_port,
                Proof::Ack(reply.ack, reply.rst),
                at,
                state,
                evidence.to_string(),
            )
        }
        Event::Icmp(error, at) => {
            if error.quoted.protocol != 6 || !error.kind.filters_tcp() {
                return;
            }
            let remote = SocketAddr::new(error.quoted.dst, error.quoted.dst_port);
            let evidence = format!("{} from {}", error.kind.label(), error.from);
            (
                remote,
                error.quoted.src_port,
                Proof::Seq(error.quoted.word),
                at,
                PortState::Filtered,
                evidence,
            )
        }
    };
    let Some(probe) = pending.get(&remote) else {
        let ours = known.contains(&remote);
        Counters::add(
            if ours {
                &counters.duplicates
            } else {
                &counters.strays
            },
            1,
        );
        return;
    };
    let local = SocketAddr::new(probe.local_ip, local_port);
    let genuine = match proof {
        Proof::Ack(ack, rst) => cookie.answers(local, remote, ack, rst),
        Proof::Seq(seq) => seq == cookie.seq(local, remote),
    };
    if !genuine {
        Counters::add(&counters.strays, 1);
        return;
    }
    let probe = pending.remove(&remote).expect("found above");
    Counters::add(&counters.answered, 1);
    let rtt = at.checked_duration_since(probe.sent_at);
    done.insert(
        probe.index,
        Observation {
            target: targets[probe.index].1,
            state,
            rtt,
            evidence,
            attempts: probe.attempts,
            method: Method::Syn,
        },
    );
}

enum Proof {
    /// A reply's acknowledgement number, and whether it is a RST.
    Ack(u32, bool),
    /// The sequence number an ICMP error quotes.
    Seq(u32),
}

async fn receive_tcp(socket: Arc<UdpSocket>, family: Family, events: mpsc::UnboundedSender<Event>) {
    let mut buf = vec![0u8; 4096];
    while let Ok((n, from)) = socket.recv_from(&mut buf).await {
        let reply = match family {
            Family::V4 => tcp::parse_v4(&buf[..n]),
            Family::V6 => tcp::parse_v6(&buf[..n], from.ip()),
        };
        if let Some(reply) = reply
            && events.send(Event::Tcp(reply, Instant::now())).is_err()
        {
            return;
        }
    }
}

async fn receive_icmp(socket: UdpSocket, family: Family, events: mpsc::UnboundedSender<Event>) {
    let mut buf = vec![0u8; 4096];
    while let Ok((n, from)) = socket.recv_from(&mut buf).await {
        let error = match family {
            Family::V4 => icmp::parse_v4(&buf[..n]),
            Family::V6 => icmp::parse_v6(&buf[..n], from.ip()),
        };
        if let Some(error) = error
            && events.send(Event::Icmp(error, Instant::now())).is_err()
        {
            return;
        }
    }
}
