//! Flows: what is checked, and the port-spec language (`tcp:22,80,udp:53,icmp`) that names them.

use std::fmt;
use std::net::IpAddr;

use serde::Serialize;
use thiserror::Error;

use super::rule::{Direction, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, PortRange};

/// The protocol of a checked flow. `Icmp` is an echo request, ICMPv6 on an IPv6 address; `All`
/// is "all traffic", the console's outbound check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FlowProtocol {
    Tcp,
    Udp,
    Icmp,
    All,
}

impl FlowProtocol {
    /// The IP protocol number on the wire for an address of this family.
    pub fn number(self, address: IpAddr) -> Option<u8> {
        match self {
            FlowProtocol::Tcp => Some(IPPROTO_TCP),
            FlowProtocol::Udp => Some(IPPROTO_UDP),
            FlowProtocol::Icmp if address.is_ipv6() => Some(IPPROTO_ICMPV6),
            FlowProtocol::Icmp => Some(IPPROTO_ICMP),
            FlowProtocol::All => None,
        }
    }

    /// The lower-case name used in JSON and metrics labels.
    pub fn label(self, address: IpAddr) -> &'static str {
        match self {
            FlowProtocol::Tcp => "tcp",
            FlowProtocol::Udp => "udp",
            FlowProtocol::Icmp if address.is_ipv6() => "icmpv6",
            FlowProtocol::Icmp => "icmp",
            FlowProtocol::All => "all",
        }
    }

    pub fn has_port(self) -> bool {
        matches!(self, FlowProtocol::Tcp | FlowProtocol::Udp)
    }
}

/// One entry of a port spec: a protocol and, for TCP/UDP, a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowSpec {
    pub protocol: FlowProtocol,
    pub port: Option<u16>,
}

impl fmt::Display for FlowSpec {
    /// The console's spelling: `TCP:22`, `ICMP`, `ALL`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.protocol {
            FlowProtocol::Tcp => "TCP",
            FlowProtocol::Udp => "UDP",
            FlowProtocol::Icmp => "ICMP",
            FlowProtocol::All => "ALL",
        };
        match self.port {
            Some(port) => write!(f, "{name}:{port}"),
            None => f.write_str(name),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("bad port spec {spec:?} at {token:?}: {reason}")]
pub struct PortSpecError {
    pub spec: String,
    pub token: String,
    pub reason: &'static str,
}

/// Parses `tcp:22`, `tcp:20-21`, `tcp:22,80,443,udp:53,icmp`: a bare number or range takes the
/// last protocol named (TCP before any is named, as nmap's `-p` does). Duplicates are removed
/// and the order is kept.
pub fn parse_port_spec(spec: &str) -> Result<Vec<FlowSpec>, PortSpecError> {
    let mut specs: Vec<FlowSpec> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut protocol = FlowProtocol::Tcp;
    for token in spec.split(',').map(str::trim) {
        let error = |reason| PortSpecError {
            spec: spec.to_string(),
            token: token.to_string(),
            reason,
        };
        let (name, ports) = match token.split_once(':') {
            Some((name, ports)) => (Some(name), Some(ports)),
            None if token.starts_with(|c: char| c.is_ascii_digit()) => (None, Some(token)),
            None => (Some(token), None),
        };
        if let Some(name) = name {
            protocol = match name.to_ascii_lowercase().as_str() {
                "tcp" => FlowProtocol::Tcp,
                "udp" => FlowProtocol::Udp,
                "icmp" | "icmpv6" | "ping" => FlowProtocol::Icmp,
                "all" => FlowProtocol::All,
                "" => return Err(error("empty entry")),
                _ => return Err(error("unknown protocol (tcp, udp, icmp, all)")),
            };
        }
        let new: Vec<FlowSpec> = match (protocol.has_port(), ports) {
            (true, Some(ports)) => port_range(ports)
                .ok_or_else(|| error("ports are a number 1-65535 or a range like 20-21"))?
                .map(|port| FlowSpec {
                    protocol,
                    port: Some(port),
                })
                .collect(),
            (true, None) => return Err(error("tcp and udp need a port, as tcp:22")),
            (false, Some(_)) => return Err(error("icmp and all take no port")),
            (false, None) => vec![FlowSpec {
                protocol,
                port: None,
            }],
        };
        specs.extend(new.into_iter().filter(|flow| seen.insert(*flow)));
    }
    Ok(specs)
}

fn port_range(text: &str) -> Option<std::ops::RangeInclusive<u16>> {
    PortRange::parse(text).map(|r| r.first..=r.last)
}

/// The other end of a flow: one address, or every address of the instance address's family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FlowPeer {
    All,
    Addr(IpAddr),
}

impl FlowPeer {
    pub fn parse(text: &str) -> Option<Self> {
        if text.eq_ignore_ascii_case("all") {
            Some(FlowPeer::All)
        } else {
            text.trim().parse().ok().map(FlowPeer::Addr)
        }
    }
}

impl fmt::Display for FlowPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlowPeer::All => f.write_str("all"),
            FlowPeer::Addr(addr) => write!(f, "{addr}"),
        }
    }
}

impl Serialize for FlowPeer {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A flow to check: one direction, protocol and port at one instance address, with a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Flow {
    pub address: IpAddr,
    pub direction: Direction,
    pub spec: FlowSpec,
    pub peer: FlowPeer,
    /// The peer's own port (a client's source port) where a stateless layer's verdict on
    /// the reply depends on it; `None`: any port sgprobe's probes send from.
    pub peer_port: Option<u16>,
}

impl Flow {
    pub fn protocol_label(&self) -> &'static str {
        self.spec.protocol.label(self.address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(port: u16) -> FlowSpec {
        FlowSpec {
            protocol: FlowProtocol::Tcp,
            port: Some(port),
        }
    }

    #[test]
    fn bare_numbers_take_the_last_protocol_named() {
        let specs = parse_port_spec("tcp:22,80,udp:53,54,icmp").expect("valid");
        let udp = |port| FlowSpec {
            protocol: FlowProtocol::Udp,
            port: Some(port),
        };
        let icmp = FlowSpec {
            protocol: FlowProtocol::Icmp,
            port: None,
        };
        assert_eq!(specs, vec![tcp(22), tcp(80), udp(53), udp(54), icmp]);
    }

    #[test]
    fn ranges_expand_and_duplicates_go() {
        let specs = parse_port_spec("tcp:20-21,21,22").expect("valid");
        assert_eq!(specs, vec![tcp(20), tcp(21), tcp(22)]);
    }

    #[test]
    fn bare_numbers_before_any_protocol_are_tcp() {
        assert_eq!(parse_port_spec("443").expect("valid"), vec![tcp(443)]);
    }

    #[test]
    fn mistakes_are_named() {
        for (spec, token) in [
            ("tcp:0", "tcp:0"),
            ("tcp:70000", "tcp:70000"),
            ("tcp:30-20", "tcp:30-20"),
            ("sctp:1", "sctp:1"),
            ("tcp", "tcp"),
            ("icmp:8", "icmp:8"),
            ("tcp:22,,80", ""),
        ] {
            let err = parse_port_spec(spec).expect_err(spec);
            assert_eq!(err.token, token, "{spec}");
        }
    }
}
