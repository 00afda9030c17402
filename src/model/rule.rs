//! A security-group rule and the pieces it is made of.

use std::fmt;
use std::sync::Arc;

use ipnet::IpNet;
use serde::Serialize;

/// Which way a flow crosses the layer, seen from the instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    pub fn reverse(self) -> Self {
        match self {
            Direction::Inbound => Direction::Outbound,
            Direction::Outbound => Direction::Inbound,
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "inbound" | "in" | "ingress" => Some(Direction::Inbound),
            "outbound" | "out" | "egress" => Some(Direction::Outbound),
            _ => None,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Accept,
    Drop,
}

impl Action {
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "accept" | "allow" => Some(Action::Accept),
            "drop" | "deny" | "reject" => Some(Action::Drop),
            _ => None,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Accept => "accept",
            Action::Drop => "drop",
        })
    }
}

pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_ICMPV6: u8 = 58;
pub const IPPROTO_DCCP: u8 = 33;
pub const IPPROTO_SCTP: u8 = 132;
pub const IPPROTO_UDPLITE: u8 = 136;

/// The protocol a rule matches. `All` is every IP protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    All,
    Tcp,
    Udp,
    Icmp,
    Icmpv6,
    Other(u8),
}

impl Protocol {
    /// Reads the spellings the clouds use: names in any case, IANA numbers, and `-1`/`all`/`any`.
    pub fn parse(text: &str) -> Option<Self> {
        let lower = text.trim().to_ascii_lowercase();
        Some(match lower.as_str() {
            "all" | "any" | "-1" | "*" => Protocol::All,
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            "icmp" => Protocol::Icmp,
            "icmpv6" | "icmp6" | "ipv6-icmp" => Protocol::Icmpv6,
            "gre" => Protocol::Other(47),
            "esp" => Protocol::Other(50),
            "ah" => Protocol::Other(51),
            "ipip" | "ipencap" => Protocol::Other(4),
            "vrrp" => Protocol::Other(112),
            "dccp" => Protocol::Other(IPPROTO_DCCP),
            "sctp" => Protocol::Other(IPPROTO_SCTP),
            "udplite" => Protocol::Other(IPPROTO_UDPLITE),
            number => Protocol::from_number(number.parse().ok()?),
        })
    }

    pub fn from_number(number: u8) -> Self {
        match number {
            IPPROTO_TCP => Protocol::Tcp,
            IPPROTO_UDP => Protocol::Udp,
            IPPROTO_ICMP => Protocol::Icmp,
            IPPROTO_ICMPV6 => Protocol::Icmpv6,
            other => Protocol::Other(other),
        }
    }

    /// The IP protocol number, or `None` for `All`.
    pub fn number(self) -> Option<u8> {
        match self {
            Protocol::All => None,
            Protocol::Tcp => Some(IPPROTO_TCP),
            Protocol::Udp => Some(IPPROTO_UDP),
            Protocol::Icmp => Some(IPPROTO_ICMP),
            Protocol::Icmpv6 => Some(IPPROTO_ICMPV6),
            Protocol::Other(n) => Some(n),
        }
    }

    pub fn matches(self, number: u8) -> bool {
        self.number().is_none_or(|n| n == number)
    }

    /// Whether the protocol has ports (a rule on any other ignores its port field): TCP and
    /// UDP, and the transports Neutron also filters by port (DCCP, SCTP, UDP-Lite).
    pub fn has_ports(self) -> bool {
        matches!(
            self,
            Protocol::Tcp
                | Protocol::Udp
                | Protocol::Other(IPPROTO_DCCP | IPPROTO_SCTP | IPPROTO_UDPLITE)
        )
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Protocol::All => f.write_str("all"),
            Protocol::Tcp => f.write_str("tcp"),
            Protocol::Udp => f.write_str("udp"),
            Protocol::Icmp => f.write_str("icmp"),
            Protocol::Icmpv6 => f.write_str("icmpv6"),
            Protocol::Other(n) => write!(f, "{n}"),
        }
    }
}

/// An inclusive range of ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    pub fn new(first: u16, last: u16) -> Option<Self> {
        (first <= last).then_some(PortRange { first, last })
    }

    pub fn single(port: u16) -> Self {
        PortRange {
            first: port,
            last: port,
        }
    }

    pub fn contains(self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }

    /// A range as clouds write it in their APIs, where 0 is a port (AWS FromPort, Azure
    /// `0-65535`, Neutron): port 0 carries no flow, so a range from it starts at 1. `None`
    /// for a range that ends before it starts, or holds port 0 alone.
    pub fn from_wire(first: u16, last: u16) -> Option<Self> {
        if first > last {
            return None;
        }
        PortRange::new(first.max(1), last)
    }

    /// How many ports of `self` lie in `other`.
    pub fn overlap(self, other: PortRange) -> usize {
        let (first, last) = (self.first.max(other.first), self.last.min(other.last));
        if first > last {
            0
        } else {
            usize::from(last - first) + 1
        }
    }

    /// The one port grammar, for rules and port specs alike: `22` or `8000-8100`, ports
    /// 1-65535, the first no higher than the last.
    pub fn parse(text: &str) -> Option<Self> {
        let (first, last) = match text.split_once('-') {
            Some((a, b)) => (a.trim().parse().ok()?, b.trim().parse().ok()?),
            None => {
                let port = text.trim().parse().ok()?;
                (port, port)
            }
        };
        PortRange::new(first, last).filter(|r| r.first >= 1)
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// The ports a rule matches: all of them, or a list of ranges.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Ports {
    All,
    Ranges(Vec<PortRange>),
}

impl Ports {
    /// Parses `ALL`, `22`, `22,80`, `8000-9000`, and lists of those (see `PortRange::parse`);
    /// empty means all, and so does `0-65535`, as several clouds spell it.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if text.is_empty() || text.eq_ignore_ascii_case("all") || text == "-1" {
            return Some(Ports::All);
        }
        let mut ranges = Vec::new();
        for part in text.split(',') {
            let part = part.trim();
            if part == "0-65535" {
                return Some(Ports::All);
            }
            ranges.push(PortRange::parse(part)?);
        }
        Some(Ports::from_ranges(ranges))
    }

    /// `0-65535` and `1-65535` are how several clouds spell "all ports".
    pub fn from_ranges(ranges: Vec<PortRange>) -> Self {
        if ranges.iter().any(|r| r.first <= 1 && r.last == u16::MAX) {
            Ports::All
        } else {
            Ports::Ranges(ranges)
        }
    }

    pub fn contains(&self, port: u16) -> bool {
        match self {
            Ports::All => true,
            Ports::Ranges(ranges) => ranges.iter().any(|r| r.contains(port)),
        }
    }

    pub fn ranges(&self) -> Vec<PortRange> {
        match self {
            Ports::All => vec![PortRange {
                first: 1,
                last: u16::MAX,
            }],
            Ports::Ranges(ranges) => ranges.clone(),
        }
    }
}

impl fmt::Display for Ports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ports::All => f.write_str("all"),
            Ports::Ranges(ranges) => {
                let parts: Vec<String> = ranges.iter().map(ToString::to_string).collect();
                f.write_str(&parts.join(","))
            }
        }
    }
}

/// ICMP type and code a rule matches; `None` is any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct IcmpMatch {
    pub icmp_type: Option<u8>,
    pub code: Option<u8>,
}

impl IcmpMatch {
    pub fn matches(self, icmp_type: u8, code: u8) -> bool {
        self.icmp_type.is_none_or(|t| t == icmp_type) && self.code.is_none_or(|c| c == code)
    }
}

/// What a rule matches at layer 4: a protocol with ports (or ICMP type/code), a named
/// service template whose content lives elsewhere in the exports, or nothing known: the
/// export held the rule but sgprobe could not read it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Service {
    Ports {
        protocol: Protocol,
        ports: Ports,
        icmp: IcmpMatch,
        /// The source port of the packet that opens the flow (the client's): Alibaba's
        /// quintuple rules, Azure's source port ranges. `All` elsewhere.
        source_ports: Ports,
    },
    Template(String),
    Unreadable(Unreadable),
}

/// A part of an export sgprobe could not read: where, and why. A rule standing for it may
/// match any packet, so only flows whose verdict depends on it become `unknown`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Unreadable {
    /// The JSON path (or TOML key) of the field that failed.
    pub field: String,
    pub reason: String,
}

impl Service {
    pub fn ports(protocol: Protocol, ports: Ports) -> Self {
        Service::Ports {
            protocol,
            ports,
            icmp: IcmpMatch::default(),
            source_ports: Ports::All,
        }
    }

    /// ICMP (or ICMPv6) of a type and code; `None` is any.
    pub fn icmp(protocol: Protocol, icmp_type: Option<u8>, code: Option<u8>) -> Self {
        Service::Ports {
            protocol,
            ports: Ports::All,
            icmp: IcmpMatch { icmp_type, code },
            source_ports: Ports::All,
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Service::Ports {
                protocol,
                ports,
                icmp,
                source_ports,
            } => {
                write!(f, "{protocol}")?;
                if protocol.has_ports() {
                    write!(f, ":{ports}")?;
                }
                if *source_ports != Ports::All {
                    write!(f, " from port {source_ports}")?;
                }
                if let Some(t) = icmp.icmp_type {
                    write!(f, " type {t}")?;
                }
                if let Some(c) = icmp.code {
                    write!(f, " code {c}")?;
                }
                Ok(())
            }
            Service::Template(id) => write!(f, "service {id}"),
            Service::Unreadable(_) => f.write_str("unreadable"),
        }
    }
}

/// The other end of the flow a rule admits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Peer {
    /// Any address of either family.
    All,
    Cidr(IpNet),
    /// Members of a security group (the private addresses of the instances bound to it).
    Group(String),
    /// The public addresses of a group's members (Alibaba's classic-network `internet` NIC).
    GroupPublic(String),
    /// A named address set: address template or group, IP set, prefix list.
    AddressSet(String),
}

impl Peer {
    /// Reads the native spelling: `all`, a CIDR or address, `group:ID`, `set:ID`.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("all") {
            return Some(Peer::All);
        }
        if let Some(id) = text.strip_prefix("group:") {
            return (!id.is_empty()).then(|| Peer::Group(id.to_string()));
        }
        if let Some(id) = text.strip_prefix("public:") {
            return (!id.is_empty()).then(|| Peer::GroupPublic(id.to_string()));
        }
        if let Some(id) = text.strip_prefix("set:") {
            return (!id.is_empty()).then(|| Peer::AddressSet(id.to_string()));
        }
        parse_net(text).map(Peer::Cidr)
    }
}

/// A CIDR, or a bare address as a host route; host bits are cleared as clouds do.
pub fn parse_net(text: &str) -> Option<IpNet> {
    let text = text.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        return Some(net.trunc());
    }
    text.parse::<std::net::IpAddr>().ok().map(IpNet::from)
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::All => f.write_str("all"),
            Peer::Cidr(net) => write!(f, "{net}"),
            Peer::Group(id) => write!(f, "group:{id}"),
            Peer::GroupPublic(id) => write!(f, "public:{id}"),
            Peer::AddressSet(id) => write!(f, "set:{id}"),
        }
    }
}

/// Where a rule came from, to name it in explanations.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Origin {
    /// The id of the group (layer object) holding the rule, shared by its rules (see
    /// `SecurityGroup::compact`).
    pub group: Arc<str>,
    /// Position in its group's list for its direction, as the export orders it.
    pub index: usize,
    /// The cloud's own rule id, where it has one.
    pub id: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rule {
    pub action: Action,
    pub service: Service,
    pub peer: Peer,
    /// The instance's own addresses the rule applies to: Azure's destination prefix on an
    /// inbound rule (source on an outbound one); `all` for the clouds whose rules name only
    /// the peer.
    pub local: Peer,
    /// Priority where the cloud orders by it (lower first); `None` elsewhere.
    pub priority: Option<i64>,
    pub origin: Origin,
}

impl Rule {
    /// The same rule, wherever its export listed it.
    pub fn same_as(&self, other: &Rule) -> bool {
        let Origin {
            group,
            index: _,
            id,
            description,
        } = &self.origin;
        self.action == other.action
            && self.service == other.service
            && self.peer == other.peer
            && self.local == other.local
            && self.priority == other.priority
            && (group, id, description)
                == (
                    &other.origin.group,
                    &other.origin.id,
                    &other.origin.description,
                )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::parse_port_spec;

    #[test]
    fn rules_and_port_specs_share_one_port_grammar() {
        for (text, rule, spec) in [
            ("22", true, true),
            ("8000-8100", true, true),
            ("0", false, false),
            ("0-22", false, false),
            ("100-90", false, false),
            ("70000", false, false),
            ("80~90", false, false),
            ("80/90", false, false),
        ] {
            assert_eq!(Ports::parse(text).is_some(), rule, "rule ports {text}");
            assert_eq!(
                parse_port_spec(&format!("tcp:{text}")).is_ok(),
                spec,
                "port spec tcp:{text}"
            );
        }
        // How clouds spell every port, in rules only.
        assert_eq!(Ports::parse("0-65535"), Some(Ports::All));
        assert_eq!(Ports::parse("1-65535"), Some(Ports::All));
        assert_eq!(Ports::parse("ALL"), Some(Ports::All));
    }
}
