//! What a probe showed of a port, in nmap's words: the observation the evaluator's verdict
//! is compared with (`drift`).

use std::fmt;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum PortState {
    #[serde(rename = "open")]
    Open,
    #[serde(rename = "closed")]
    Closed,
    #[serde(rename = "filtered")]
    Filtered,
    #[serde(rename = "open|filtered")]
    OpenFiltered,
    /// Not probed: this host gave the prober no socket to send it (the engine says why).
    #[serde(rename = "unknown")]
    Unknown,
}

impl fmt::Display for PortState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PortState::Open => "open",
            PortState::Closed => "closed",
            PortState::Filtered => "filtered",
            PortState::OpenFiltered => "open|filtered",
            PortState::Unknown => "unknown",
        })
    }
}

impl PortState {
    /// Whether the probe reached the host: open and closed did, filtered did not, and
    /// open|filtered cannot say.
    pub fn reachable(self) -> Option<bool> {
        match self {
            PortState::Open | PortState::Closed => Some(true),
            PortState::Filtered => Some(false),
            PortState::OpenFiltered | PortState::Unknown => None,
        }
    }
}
