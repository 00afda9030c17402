//! Shared output pieces: plain tables and the JSON form of a rule.

use comfy_table::{ContentArrangement, Table, presets};

use crate::model::Rule;

/// A borderless table, as kubectl prints them.
pub fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.iter().copied());
    table
}

/// A rule in one line: `sg-web #2 drop tcp:22 from 0.0.0.0/0 "ssh"`; a rule of the egress
/// list (`list` outbound) names its peer with "to".
pub fn describe_rule(rule: &Rule, list: crate::model::Direction) -> String {
    let toward = match list {
        crate::model::Direction::Inbound => "from",
        crate::model::Direction::Outbound => "to",
    };
    let mut text = format!(
        "{} #{} {} {} {toward} {}",
        short_id(&rule.origin.group),
        rule.origin.index,
        rule.action,
        rule.service,
        rule.peer
    );
    if rule.local != crate::model::Peer::All {
        text.push_str(&format!(" at {}", rule.local));
    }
    if let Some(id) = &rule.origin.id {
        text.push_str(&format!(" [{id}]"));
    }
    if let Some(description) = &rule.origin.description {
        text.push_str(&format!(" {description:?}"));
    }
    text
}

/// An ARM resource id (`/subscriptions/.../networkSecurityGroups/nsg-web`) by its name, as a
/// table has room for; other ids as they are.
pub fn short_id(id: &str) -> &str {
    if id.starts_with("/subscriptions/") {
        id.rsplit('/').next().unwrap_or(id)
    } else {
        id
    }
}
