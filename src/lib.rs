//! sgprobe: checks that cloud security groups do what they say.

pub mod cli;
pub mod config;
pub mod model;
pub mod policy;
pub mod sources;
