//! A remedy in the cloud's own terms: the CLI command that adds the rule. Builds text, runs
//! nothing. One module per cloud.

mod alibaba;
mod aws;
mod azure;
mod openstack;
mod qingcloud;
mod tencent;

use ipnet::IpNet;

use crate::model::{Cloud, Direction, Peer, PortRange, Ports, Protocol, Service};
use crate::policy::Remedy;

/// The rule a remedy adds, in the terms every cloud's command is built from.
struct Wanted<'a> {
    group: &'a str,
    inbound: bool,
    protocol: Protocol,
    /// The first port range, for protocols with ports.
    range: Option<PortRange>,
    icmp_type: Option<u8>,
    icmp_code: Option<u8>,
    peer: IpNet,
    v6: bool,
    description: String,
    /// Where the rule goes, for clouds that order by position.
    index: usize,
    priority: i64,
}

/// The cloud CLI command that adds the remedy's rule.
pub fn command(remedy: &Remedy) -> String {
    let rule = &remedy.rule;
    let (
        Service::Ports {
            protocol,
            ports,
            icmp,
            ..
        },
        Peer::Cidr(peer),
    ) = (&rule.service, &rule.peer)
    else {
        return String::new();
    };
    let range = match ports {
        Ports::Ranges(ranges) if protocol.has_ports() => ranges.first().copied(),
        _ => None,
    };
    let wanted = Wanted {
        group: &remedy.group,
        inbound: remedy.direction == Direction::Inbound,
        protocol: *protocol,
        range,
        icmp_type: icmp.icmp_type,
        icmp_code: icmp.code,
        peer: *peer,
        v6: matches!(peer, IpNet::V6(_)),
        description: rule.origin.description.clone().unwrap_or_default(),
        index: rule.origin.index,
        priority: rule.priority.unwrap_or(1),
    };
    let (command, names_icmp_types) = match remedy.cloud {
        Cloud::Tencent => (tencent::command(&wanted), tencent::NAMES_ICMP_TYPES),
        Cloud::QingCloud => (qingcloud::command(&wanted), qingcloud::NAMES_ICMP_TYPES),
        Cloud::OpenStack => (openstack::command(&wanted), openstack::NAMES_ICMP_TYPES),
        Cloud::Aws => (aws::group_command(&wanted), aws::NAMES_ICMP_TYPES),
        Cloud::AwsNacl => (aws::nacl_command(&wanted), aws::NAMES_ICMP_TYPES),
        Cloud::Azure => (azure::command(&wanted), azure::NAMES_ICMP_TYPES),
        Cloud::Alibaba => (alibaba::command(&wanted), alibaba::NAMES_ICMP_TYPES),
    };
    if wanted.icmp_type.is_some() && !names_icmp_types {
        format!(
            "{command}  # opens every ICMP type: {} rules do not name one",
            remedy.cloud
        )
    } else {
        command
    }
}
