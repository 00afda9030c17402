//! TCP connect(): the probe without raw sockets. Refused is closed, established is open,
//! silence and unreachable errors are filtered.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::future::join_all;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::{Counters, Evidence, Method, Observation, Pacer, Settings, Target};
use crate::model::PortState;

/// Connections in flight at once: far below the default fd limit of 1024.
const IN_FLIGHT: usize = 256;

pub async fn scan(
    targets: &[Target],
    settings: &Settings,
    pacer: &Pacer,
    counters: &Counters,
) -> Vec<Observation> {
    let slots = Semaphore::new(IN_FLIGHT);
    let probes = targets.iter().map(|target| {
        let slots = &slots;
        async move {
            let _slot = slots
                .acquire()
                .await
                .expect("the semaphore is never closed");
            probe(*target, settings, pacer, counters).await
        }
    });
    join_all(probes).await
}

/// Up to `1 + retries` connects, until one is established or refused. An unreachable error
/// on the way may be transient: it is kept, and tried again.
async fn probe(
    target: Target,
    settings: &Settings,
    pacer: &Pacer,
    counters: &Counters,
) -> Observation {
    let mut observation = Observation {
        target,
        state: PortState::Filtered,
        rtt: None,
        evidence: Evidence::NoReply,
        ttl: None,
        attempts: 0,
        method: Method::Connect,
    };
    while observation.attempts <= settings.retries {
        pacer.one().await;
        observation.attempts += 1;
        Counters::add(&counters.sent, 1);
        let Some((state, evidence, rtt)) = once(target, settings.timeout).await else {
            continue;
        };
        Counters::add(&counters.answered, 1);
        (observation.state, observation.evidence, observation.rtt) = (state, evidence, Some(rtt));
        if state != PortState::Filtered {
            break;
        }
    }
    observation
}

async fn once(target: Target, timeout: Duration) -> Option<(PortState, Evidence, Duration)> {
    let start = Instant::now();
    let remote = SocketAddr::new(target.addr, target.port.unwrap_or(0));
    let result = tokio::time::timeout(timeout, TcpStream::connect(remote))
        .await
        .ok()?;
    let rtt = Instant::now().duration_since(start);
    match result {
        Ok(_) => Some((PortState::Open, Evidence::Connected, rtt)),
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
            Some((PortState::Closed, Evidence::Refused, rtt))
        }
        Err(e) => Some((PortState::Filtered, Evidence::ConnectFailed(e.kind()), rtt)),
    }
}

/// Whether connect() gets any answer (established or refused) from a few of the targets:
/// the check that raw silence is our host's doing, not the network's.
pub async fn answers_any(targets: &[Target], settings: &Settings) -> bool {
    let sample = targets.iter().take(8).map(|t| once(*t, settings.timeout));
    join_all(sample)
        .await
        .into_iter()
        .flatten()
        .any(|(state, _, _)| state != PortState::Filtered)
}
