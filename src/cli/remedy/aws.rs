//! AWS: `aws ec2 authorize-security-group-*` for groups, `create-network-acl-entry` for network ACLs.

use super::Wanted;
use crate::model::Protocol;

/// Security groups and network ACLs both take an ICMP type and code.
pub(super) const NAMES_ICMP_TYPES: bool = true;

pub(super) fn group_command(w: &Wanted) -> String {
    let verb = if w.inbound {
        "authorize-security-group-ingress"
    } else {
        "authorize-security-group-egress"
    };
    let proto = if w.protocol == Protocol::All {
        "-1".to_string()
    } else {
        w.protocol.to_string()
    };
    let (from, to) = match w.range {
        Some(r) => (i32::from(r.first), i32::from(r.last)),
        // For ICMP, FromPort is the type and ToPort the code.
        None => (
            w.icmp_type.map_or(-1, i32::from),
            w.icmp_code.map_or(-1, i32::from),
        ),
    };
    let peer = w.peer;
    let cidrs = if w.v6 {
        format!("Ipv6Ranges=[{{CidrIpv6={peer}}}]")
    } else {
        format!("IpRanges=[{{CidrIp={peer}}}]")
    };
    format!(
        "aws ec2 {verb} --group-id {} --ip-permissions 'IpProtocol={proto},FromPort={from},ToPort={to},{cidrs}'",
        w.group
    )
}

pub(super) fn nacl_command(w: &Wanted) -> String {
    let dir = if w.inbound { "--ingress" } else { "--egress" };
    let proto = w.protocol.number().map_or("-1".into(), |n| n.to_string());
    let ports = match (w.range, w.icmp_type) {
        (Some(r), _) => format!(" --port-range From={},To={}", r.first, r.last),
        (None, Some(t)) => format!(
            " --icmp-type-code Type={t},Code={}",
            w.icmp_code.map_or(-1, i32::from)
        ),
        (None, None) => String::new(),
    };
    let cidr = if w.v6 {
        "--ipv6-cidr-block"
    } else {
        "--cidr-block"
    };
    format!(
        "aws ec2 create-network-acl-entry --network-acl-id {} {dir} --rule-number {} --protocol {proto}{ports} {cidr} {} --rule-action allow",
        w.group, w.priority, w.peer
    )
}
