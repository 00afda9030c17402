//! Tencent Cloud: `tccli vpc CreateSecurityGroupPolicies`.

use super::Wanted;
use serde_json::json;

/// Tencent rules name a protocol, not an ICMP type.
pub(super) const NAMES_ICMP_TYPES: bool = false;

pub(super) fn command(w: &Wanted) -> String {
    let mut policy = json!({
        "PolicyIndex": w.index,
        "Protocol": w.protocol.to_string().to_uppercase().replace("ICMPV6", "ICMPv6"),
        "Port": w.range.map_or("ALL".to_string(), |r| r.to_string()),
        "Action": "ACCEPT",
        "PolicyDescription": w.description,
    });
    policy[if w.v6 { "Ipv6CidrBlock" } else { "CidrBlock" }] = json!(w.peer.to_string());
    let set = json!({ if w.inbound { "Ingress" } else { "Egress" }: [policy] });
    format!(
        "tccli vpc CreateSecurityGroupPolicies --SecurityGroupId {} --SecurityGroupPolicySet '{set}'",
        w.group
    )
}
