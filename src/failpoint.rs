//! Faults a lab test plants in a running agent, named in `SGPROBE_FAILPOINT` (comma
//! separated): a cycle task that panics (`cycle-panic`), a reload that never ends
//! (`reload-stall`). Only with the `failpoints` feature, which the test command turns on and no
//! shipped build has: without it nothing reads the variable.

/// Whether the fault `name` is planted.
pub fn planted(name: &str) -> bool {
    cfg!(feature = "failpoints")
        && std::env::var("SGPROBE_FAILPOINT").is_ok_and(|v| v.split(',').any(|p| p == name))
}
