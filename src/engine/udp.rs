//! UDP probing over connected sockets: a reply means open, the queued ICMP error says closed
//! (port unreachable) or filtered (any other unreachable), silence means open|filtered.
//!
//! Linux sends at most 6 ICMP errors at once to one peer, then one per `icmp_ratelimit`
//! (1 s by default): probes to one target are paced to that budget, or closed ports would go
//! silent and read as open|filtered.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures_util::future::join_all;
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::{Counters, EngineError, Method, Observation, Pacer, PortState, Settings, Target};
use crate::net::{IcmpReport, read_error, udp_probe};

/// A Linux target's ICMP error budget toward one peer: a burst, then one per interval.
const ICMP_BURST: u32 = 6;
const ICMP_INTERVAL: Duration = Duration::from_millis(1000);

pub async fn scan(
    targets: &[(usize, Target)],
    settings: &Settings,
    pacer: &Pacer,
    counters: &Counters,
) -> Result<Vec<(usize, Observation)>, EngineError> {
    let mut by_host: Vec<(IpAddr, Vec<(usize, Target)>)> = Vec::new();
    for (index, target) in targets {
        match by_host.iter_mut().find(|(addr, _)| *addr == target.addr) {
            Some((_, list)) => list.push((*index, *target)),
            None => by_host.push((target.addr, vec![(*index, *target)])),
        }
    }
    let hosts = by_host
        .into_iter()
        .map(|(_, list)| host(list, settings, pacer, counters));
    let mut found = Vec::new();
    for result in join_all(hosts).await {
        found.extend(result?);
    }
    Ok(found)
}

/// One target host: rounds of probes, each within the host's ICMP budget, until every port
/// is decided or out of attempts.
async fn host(
    ports: Vec<(usize, Target)>,
    settings: &Settings,
    pacer: &Pacer,
    counters: &Counters,
) -> Result<Vec<(usize, Observation)>, EngineError> {
    let mut sockets = Vec::with_capacity(ports.len());
    let mut results: Vec<Option<Observation>> = vec![None; ports.len()];
    for (i, (_, target)) in ports.iter().enumerate() {
        let remote = SocketAddr::new(target.addr, target.port.unwrap_or(0));
        match udp_probe(remote) {
            Ok(socket) => sockets.push(Some(socket)),
            // No route from here: answered at once, as filtered, not an error for all.
            Err(error) => {
                sockets.push(None);
                results[i] = Some(Observation {
                    target: *target,
                    state: PortState::Filtered,
                    rtt: None,
                    evidence: error.to_string(),
                    attempts: 0,
                    method: Method::Udp,
                });
            }
        }
    }
    let mut attempts = vec![0u32; ports.len()];
    let mut budget = ICMP_BURST;
    let mut refilled = Instant::now();
    loop {
        let open: Vec<usize> = (0..ports.len())
            .filter(|i| results[*i].is_none() && attempts[*i] <= settings.retries)
            .collect();
        if open.is_empty() {
            break;
        }
        let refill = (Instant::now().duration_since(refilled).as_millis()
            / ICMP_INTERVAL.as_millis()) as u32;
        if refill > 0 {
            budget = (budget + refill).min(ICMP_BURST);
            refilled = Instant::now();
        }
        if budget == 0 {
            tokio::time::sleep_until(refilled + ICMP_INTERVAL).await;
            continue;
        }
        let round: Vec<usize> = open.into_iter().take(budget as usize).collect();
        budget -= round.len() as u32;
        let mut answers = Vec::with_capacity(round.len());
        for i in &round {
            pacer.one().await;
            attempts[*i] += 1;
            Counters::add(&counters.sent, 1);
            let socket = sockets[*i]
                .as_ref()
                .expect("ports without a socket are decided already");
            answers.push(once(socket, settings.timeout));
        }
        for (i, answer) in round.iter().zip(join_all(answers).await) {
            let Some((answer, rtt)) = answer else {
                continue;
            };
            Counters::add(&counters.answered, 1);
            let (state, evidence) = match answer {
                Answer::Data => (PortState::Open, "udp reply".to_string()),
                Answer::Icmp(report) if report.kind.is_port_unreachable() => {
                    (PortState::Closed, from(&report))
                }
                Answer::Icmp(report) => (PortState::Filtered, from(&report)),
            };
            results[*i] = Some(Observation {
                target: ports[*i].1,
                state,
                rtt: Some(rtt),
                evidence,
                attempts: attempts[*i],
                method: Method::Udp,
            });
        }
    }
    Ok(ports
        .iter()
        .enumerate()
        .map(|(i, (index, target))| {
            let observation = results[i].take().unwrap_or_else(|| Observation {
                target: *target,
                state: PortState::OpenFiltered,
                rtt: None,
                evidence: "no reply".to_string(),
                attempts: attempts[i],
                method: Method::Udp,
            });
            (*index, observation)
        })
        .collect())
}

fn from(report: &IcmpReport) -> String {
    match report.offender {
        Some(addr) => format!("{} from {addr}", report.kind.label()),
        None => report.kind.label(),
    }
}

enum Answer {
    Data,
    Icmp(IcmpReport),
}

/// Sends one datagram and waits for a reply or a queued ICMP error.
async fn once(socket: &UdpSocket, timeout: Duration) -> Option<(Answer, Duration)> {
    let sent = Instant::now();
    socket.send(&[]).await.ok()?;
    let wait = async {
        let mut buf = [0u8; 1500];
        loop {
            let ready = socket
                .ready(Interest::READABLE | Interest::ERROR)
                .await
                .ok()?;
            if let Ok(Some(report)) = read_error(socket) {
                return Some(Answer::Icmp(report));
            }
            if ready.is_readable() {
                match socket.try_recv(&mut buf) {
                    Ok(_) => return Some(Answer::Data),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    // The pending error was reported through recv: the queue holds its details.
                    Err(_) => {
                        if let Ok(Some(report)) = read_error(socket) {
                            return Some(Answer::Icmp(report));
                        }
                    }
                }
            }
        }
    };
    let answer = tokio::time::timeout(timeout, wait).await.ok().flatten()?;
    Some((answer, Instant::now().duration_since(sent)))
}
