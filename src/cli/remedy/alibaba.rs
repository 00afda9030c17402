//! Alibaba Cloud: `aliyun ecs AuthorizeSecurityGroup(Egress)`.

use super::Wanted;

/// Alibaba rules name a protocol, not an ICMP type.
pub(super) const NAMES_ICMP_TYPES: bool = false;

pub(super) fn command(w: &Wanted) -> String {
    let verb = if w.inbound {
        "AuthorizeSecurityGroup"
    } else {
        "AuthorizeSecurityGroupEgress"
    };
    let ports = w
        .range
        .map_or("-1/-1".to_string(), |r| format!("{}/{}", r.first, r.last));
    let cidr = match (w.inbound, w.v6) {
        (true, false) => "--SourceCidrIp",
        (true, true) => "--Ipv6SourceCidrIp",
        (false, false) => "--DestCidrIp",
        (false, true) => "--Ipv6DestCidrIp",
    };
    format!(
        "aliyun ecs {verb} --SecurityGroupId {} --IpProtocol {} --PortRange {ports} {cidr} {} --Policy accept --Priority {}",
        w.group, w.protocol, w.peer, w.priority
    )
}
