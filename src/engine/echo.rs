//! ICMP echo with surge-ping: raw sockets when permitted, else unprivileged ICMP sockets.

use std::time::Duration;

use futures_util::future::join_all;
use pnet_packet::icmp::IcmpTypes;
use pnet_packet::icmpv6::Icmpv6Types;
use surge_ping::{Client, Config, ICMP, IcmpPacket, PingIdentifier, PingSequence, SurgeError};

use super::{
    Attempt, Counters, EngineError, Method, Observation, Pacer, PortState, Settings, Target,
    attempt,
};

pub async fn scan(
    targets: &[(usize, Target)],
    settings: &Settings,
    pacer: &Pacer,
    counters: &Counters,
) -> Result<Vec<(usize, Observation)>, EngineError> {
    if targets.is_empty() {
        return Ok(Vec::new());
    }
    let client = |kind| {
        Client::new(
            &Config::builder()
                .kind(kind)
                .sock_type_hint(socket2::Type::RAW)
                .build(),
        )
        .map_err(|e| EngineError::Echo(format!("cannot open an ICMP socket: {e}")))
    };
    let v4 = if targets.iter().any(|(_, t)| t.addr.is_ipv4()) {
        Some(client(ICMP::V4)?)
    } else {
        None
    };
    let v6 = if targets.iter().any(|(_, t)| t.addr.is_ipv6()) {
        Some(client(ICMP::V6)?)
    } else {
        None
    };
    let probes = targets.iter().enumerate().map(|(n, (index, target))| {
        let client = if target.addr.is_ipv6() {
            v6.as_ref()
        } else {
            v4.as_ref()
        }
        .expect("opened for every family present");
        async move {
            // Identifiers tell our echoes apart from other pingers' (and from each other's).
            let mut pinger = client
                .pinger(
                    target.addr,
                    PingIdentifier((std::process::id() as u16) ^ (n as u16)),
                )
                .await;
            pinger.timeout(settings.timeout);
            let pinger = &tokio::sync::Mutex::new(pinger);
            let observation = attempt(
                *target,
                Method::Icmp,
                settings,
                pacer,
                counters,
                |n| async move {
                    match pinger
                        .lock()
                        .await
                        .ping(PingSequence(n as u16), &[0; 16])
                        .await
                    {
                        // surge-ping also returns the errors that quote our echo request.
                        Ok((reply, rtt)) => match error_label(&reply) {
                            None => {
                                Attempt::Decided(PortState::Open, rtt, "echo reply".to_string())
                            }
                            Some(error) => Attempt::Decided(PortState::Filtered, rtt, error),
                        },
                        Err(SurgeError::Timeout { .. }) => Attempt::Silent(None),
                        Err(e) => {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            Attempt::Silent(Some(format!("no reply ({e})")))
                        }
                    }
                },
            )
            .await;
            (*index, observation)
        }
    });
    Ok(join_all(probes).await)
}

/// `None` for an echo reply; otherwise the error, as `icmp 3/13 from 10.77.1.7`.
fn error_label(reply: &IcmpPacket) -> Option<String> {
    match reply {
        IcmpPacket::V4(p) if p.get_icmp_type() == IcmpTypes::EchoReply => None,
        IcmpPacket::V4(p) => Some(format!(
            "icmp {}/{} from {}",
            p.get_icmp_type().0,
            p.get_icmp_code().0,
            p.get_source()
        )),
        IcmpPacket::V6(p) if p.get_icmpv6_type() == Icmpv6Types::EchoReply => None,
        IcmpPacket::V6(p) => Some(format!(
            "icmpv6 {}/{}",
            p.get_icmpv6_type().0,
            p.get_icmpv6_code().0
        )),
    }
}
