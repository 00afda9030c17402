//! Policy: evaluation, lint and remedies. Pure: no I/O.

mod evaluate;
mod link;
pub mod lint;
mod regions;
mod remedy;

pub use evaluate::{
    Considered, Decider, Predicted, Reach, TraceStep, Verdict, evaluate, layer_drops,
    layer_port_points, reach,
};
pub use link::{Layer, LinkError, layers};
pub use remedy::{Remedy, remedy};

/// A rule as reports name it: the JSON contract's `rule` (null for a layer's default).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RuleRef {
    pub group: String,
    pub index: usize,
    pub id: Option<String>,
    pub action: crate::model::Action,
    pub description: Option<String>,
}

impl From<&crate::model::Rule> for RuleRef {
    fn from(rule: &crate::model::Rule) -> Self {
        RuleRef {
            group: rule.origin.group.to_string(),
            index: rule.origin.index,
            id: rule.origin.id.clone(),
            action: rule.action,
            description: rule.origin.description.clone(),
        }
    }
}
