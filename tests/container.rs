//! The container image builds with the distribution's buildah from the repository's
//! Containerfile, and the binary inside runs: the image is mounted and the binary run in a
//! chroot of it (this machine cannot run containers), on the example config.

mod common;

use std::path::Path;
use std::process::Command;

#[test]
fn the_image_builds_and_its_binary_runs() {
    if !nix::unistd::geteuid().is_root() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "the image test needs root, and CI=true"
        );
        eprintln!("SKIPPED: building and mounting an image needs root");
        return;
    }
    if !common::tool("buildah") {
        return;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Our own image store, removed with the test: nothing of the machine's is touched.
    let store = tempfile::tempdir().expect("temp dir");
    let args = format!(
        "--root {0}/root --runroot {0}/run --storage-driver vfs",
        store.path().display()
    );
    let buildah = |extra: &[&str]| {
        let out = Command::new("buildah")
            .args(args.split(' '))
            .args(extra)
            .output()
            .expect("buildah runs");
        assert!(
            out.status.success(),
            "buildah {extra:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("UTF-8")
            .trim()
            .to_string()
    };
    let tag = "localhost/sgprobe:test";
    let built = Command::new(repo.join("deploy/container/build.sh"))
        .arg(tag)
        .env("SGPROBE_BINARY", env!("CARGO_BIN_EXE_sgprobe"))
        .env("SGPROBE_BUILDER", "buildah")
        .env("BUILDER_ARGS", &args)
        .output()
        .expect("build.sh runs");
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let image: serde_json::Value =
        serde_json::from_str(&buildah(&["inspect", "--type", "image", tag])).expect("JSON");
    assert_eq!(
        image["OCIv1"]["config"]["Entrypoint"],
        serde_json::json!(["/usr/bin/sgprobe"]),
        "{image}"
    );

    let container = buildah(&["from", tag]);
    let root = buildah(&["mount", &container]);
    let root = Path::new(&root);
    let files: Vec<String> = walk(root);
    assert!(
        files
            .iter()
            .all(|f| !f.starts_with("bin/sh") && !f.starts_with("usr/bin/apt")),
        "a minimal image: {files:?}"
    );
    // The example config and its exports, where the manifests mount them.
    let etc = root.join("etc/sgprobe");
    std::fs::create_dir_all(etc.join("exports")).expect("mkdir");
    std::fs::copy(
        repo.join("deploy/example/sgprobe.toml"),
        etc.join("sgprobe.toml"),
    )
    .expect("copy");
    for entry in std::fs::read_dir(repo.join("deploy/example/exports")).expect("exports") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), etc.join("exports").join(entry.file_name())).expect("copy");
    }
    let run = |args: &[&str]| {
        Command::new("chroot")
            .arg(root)
            .arg("/usr/bin/sgprobe")
            .args(args)
            .output()
            .expect("chroot runs")
    };
    let version = run(&["--version"]);
    assert!(version.status.success());
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("sgprobe "));
    let eval = run(&["eval", "--config", "/etc/sgprobe/sgprobe.toml", "--json"]);
    assert!(
        eval.status.success(),
        "{}",
        String::from_utf8_lossy(&eval.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&eval.stdout).expect("JSON");
    assert!(rows.as_array().is_some_and(|r| !r.is_empty()));
    buildah(&["umount", &container]);
    buildah(&["rm", &container]);
    buildah(&["rmi", "--all", "--force"]);
}

/// Every file under `root`, relative to it.
fn walk(root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(relative) = path.strip_prefix(root) {
                files.push(relative.display().to_string());
            }
        }
    }
    files
}
