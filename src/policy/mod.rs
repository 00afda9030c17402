//! Policy: evaluation, lint and remedies. Pure: no I/O.

mod evaluate;
pub mod lint;
mod regions;
mod remedy;

pub use evaluate::{
    Considered, Decider, Layer, LinkError, Predicted, Reach, TraceStep, Verdict, evaluate, layers,
    reach,
};
pub use remedy::{Remedy, remedy};
