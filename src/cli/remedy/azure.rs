//! Azure: `az network nsg rule create`.

use super::Wanted;
use crate::model::Protocol;

/// NSG rules name a protocol, not an ICMP type.
pub(super) const NAMES_ICMP_TYPES: bool = false;

pub(super) fn command(w: &Wanted) -> String {
    // An NSG's id: /subscriptions/S/resourceGroups/RG/providers/.../networkSecurityGroups/NAME
    let parts: Vec<&str> = w.group.split('/').collect();
    let after = |key: &str| {
        parts
            .iter()
            .position(|p| p.eq_ignore_ascii_case(key))
            .and_then(|i| parts.get(i + 1))
            .copied()
    };
    let name = after("networkSecurityGroups").unwrap_or(w.group);
    let resource_group = after("resourceGroups").unwrap_or("<resource-group>");
    let proto = match w.protocol {
        Protocol::All => "*".to_string(),
        Protocol::Icmpv6 => "Icmp".to_string(),
        other => {
            let name = other.to_string();
            name[..1].to_uppercase() + &name[1..]
        }
    };
    let ports = w.range.map_or("*".to_string(), |r| r.to_string());
    let (address, direction) = if w.inbound {
        ("--source-address-prefixes", "Inbound")
    } else {
        ("--destination-address-prefixes", "Outbound")
    };
    let priority = w.priority;
    format!(
        "az network nsg rule create --resource-group {resource_group} --nsg-name {name} --name sgprobe-{priority} --priority {priority} --direction {direction} --access Allow --protocol {proto} --destination-port-ranges {ports} {address} {}",
        w.peer
    )
}
