//! Configs an agent must refuse, each kept as a file (as blackbox_exporter keeps its
//! `testdata/invalid-*.yml`), with the error it must give on its first line: file, line,
//! column and key. And files that are not files, or too large, refused before reading.

use std::path::{Path, PathBuf};

use sgprobe::config::Config;
use sgprobe::sources::Reading;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid")
}

#[test]
fn every_invalid_config_is_refused_with_the_error_its_file_names() {
    let mut seen = 0;
    for entry in std::fs::read_dir(fixtures()).expect("fixtures") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read");
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{}: no `# expect:` line", path.display()));
        let error = Config::load(&path, Reading::KeepGoing)
            .and_then(Config::runnable)
            .err()
            .unwrap_or_else(|| panic!("{} was accepted", path.display()))
            .to_string();
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .to_string();
        assert!(
            error.contains(&name),
            "{name}: the error names the file: {error}"
        );
        assert!(
            error.contains(expect),
            "{name}: wanted {expect:?}, got {error:?}"
        );
        seen += 1;
    }
    assert!(seen >= 12, "only {seen} fixtures");
}

#[test]
fn a_fifo_a_folder_and_an_oversized_file_are_refused_without_reading() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fifo = dir.path().join("sgprobe.toml");
    nix::unistd::mkfifo(
        &fifo,
        nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR,
    )
    .expect("mkfifo");
    // Opening a FIFO for reading would block until a writer came: the check comes first.
    let error = Config::load(&fifo, Reading::KeepGoing)
        .and_then(Config::runnable)
        .expect_err("a FIFO")
        .to_string();
    assert!(error.contains("not a regular file"), "{error}");
    let error = Config::load(dir.path(), Reading::KeepGoing)
        .and_then(Config::runnable)
        .expect_err("a folder")
        .to_string();
    assert!(error.contains("not a regular file"), "{error}");
    let big = dir.path().join("big.toml");
    let file = std::fs::File::create(&big).expect("create");
    file.set_len(sgprobe::sources::MAX_FILE_BYTES + 1)
        .expect("a sparse file");
    let error = Config::load(&big, Reading::KeepGoing)
        .and_then(Config::runnable)
        .expect_err("too large")
        .to_string();
    assert!(error.contains("more than the 268435456"), "{error}");
}
