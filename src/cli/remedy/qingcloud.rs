//! QingCloud: `qingcloud iaas add-security-group-rules`.

use super::Wanted;
use serde_json::json;

/// `val1`/`val2` carry the ICMP type and code.
pub(super) const NAMES_ICMP_TYPES: bool = true;

pub(super) fn command(w: &Wanted) -> String {
    let mut entry = json!({
        "protocol": w.protocol.to_string(),
        "priority": w.priority,
        "action": "accept",
        "direction": if w.inbound { 0 } else { 1 },
        "val3": w.peer.to_string(),
    });
    if let Some(range) = w.range {
        entry["val1"] = json!(range.first.to_string());
        entry["val2"] = json!(range.last.to_string());
    }
    if let Some(t) = w.icmp_type {
        entry["val1"] = json!(t.to_string());
        entry["val2"] = json!(w.icmp_code.map(|c| c.to_string()).unwrap_or_default());
    }
    format!(
        "qingcloud iaas add-security-group-rules -s {} -r '{}'",
        w.group,
        json!([entry])
    )
}
