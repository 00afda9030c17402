//! TCP connect(): the probe without raw sockets. Refused is closed, established is open,
//! silence and unreachable errors are filtered.

use std::io::ErrorKind;
use std::net::SocketAddr;

use futures_util::future::join_all;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::{Attempt, Counters, Method, Observation, Pacer, PortState, Settings, Target, attempt};

/// Connections in flight at once: far below the default fd limit of 1024.
const IN_FLIGHT: usize = 256;

pub async fn scan(
    targets: &[(usize, Target)],
    settings: &Settings,
    pacer: &Pacer,
    counters: &Counters,
) -> Vec<(usize, Observation)> {
    let slots = Semaphore::new(IN_FLIGHT);
    let probes = targets.iter().map(|(index, target)| {
        let slots = &slots;
        async move {
            let _slot = slots
                .acquire()
                .await
                .expect("the semaphore is never closed");
            let observation = attempt(
                *target,
                Method::Connect,
                settings,
                pacer,
                counters,
                |_| async {
                    match once(*target, settings).await {
                        Some((PortState::Filtered, evidence, rtt)) => {
                            Attempt::Tentative(PortState::Filtered, rtt, evidence)
                        }
                        Some((state, evidence, rtt)) => Attempt::Decided(state, rtt, evidence),
                        None => Attempt::Silent(None),
                    }
                },
            )
            .await;
            (*index, observation)
        }
    });
    join_all(probes).await
}

async fn once(
    target: Target,
    settings: &Settings,
) -> Option<(PortState, String, std::time::Duration)> {
    let start = Instant::now();
    let remote = SocketAddr::new(target.addr, target.port.unwrap_or(0));
    let result = tokio::time::timeout(settings.timeout, TcpStream::connect(remote))
        .await
        .ok()?;
    let rtt = Instant::now().duration_since(start);
    match result {
        Ok(_) => Some((PortState::Open, "connected".to_string(), rtt)),
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
            Some((PortState::Closed, "refused".to_string(), rtt))
        }
        Err(e) => Some((PortState::Filtered, e.to_string(), rtt)),
    }
}

/// Whether connect() gets any answer (established or refused) from a few of the targets:
/// the check that raw silence is our host's doing, not the network's.
pub async fn answers_any(targets: &[(usize, Target)], settings: &Settings) -> bool {
    let sample = targets.iter().take(8).map(|(_, t)| once(*t, settings));
    join_all(sample)
        .await
        .into_iter()
        .flatten()
        .any(|(state, _, _)| state != PortState::Filtered)
}
