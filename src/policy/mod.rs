//! Policy: evaluation, lint and remedies. Pure: no I/O.

mod evaluate;
mod regions;

pub use evaluate::{
    Considered, Decider, Layer, LinkError, Predicted, TraceStep, Verdict, evaluate, layers,
};
