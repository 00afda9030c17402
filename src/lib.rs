//! sgprobe: checks that cloud security groups do what they say.

pub mod cause;
pub mod cli;
pub mod cloudapi;
pub mod config;
pub mod daemon;
pub mod drift;
pub mod engine;
pub mod failpoint;
pub mod lab;
pub mod model;
pub mod net;
pub mod packet;
pub mod plan;
pub mod policy;
pub mod shard;
pub mod sources;
