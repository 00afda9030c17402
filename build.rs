//! `sgprobe --version`: the package version, the commit it was built from and the optional
//! features built in, so a bug report says exactly what ran.

use std::process::Command;

fn main() {
    // A source tree without git (a crate download, an image's build context) says so.
    let commit = std::env::var("SGPROBE_COMMIT").ok().or_else(|| {
        Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    });
    let features: Vec<&str> = [("aws-api", "CARGO_FEATURE_AWS_API")]
        .into_iter()
        .filter(|(_, var)| std::env::var_os(var).is_some())
        .map(|(name, _)| name)
        .collect();
    println!(
        "cargo:rustc-env=SGPROBE_VERSION={} (commit {}, features: {})",
        std::env::var("CARGO_PKG_VERSION").unwrap_or_default(),
        commit.as_deref().unwrap_or("unknown"),
        if features.is_empty() {
            "none".to_string()
        } else {
            features.join(", ")
        }
    );
    println!("cargo:rerun-if-env-changed=SGPROBE_COMMIT");
    // Only what exists: a path that does not makes cargo run this at every build.
    for git in [".git/HEAD", ".git/refs/heads", ".git/packed-refs"] {
        if std::path::Path::new(git).exists() {
            println!("cargo:rerun-if-changed={git}");
        }
    }
}
