//! The container image: built twice from one source tree by the distribution's buildah, the
//! two digests equal; then mounted and its binary run in a chroot (this machine cannot run
//! containers): `eval` on the default config, and a TLS request to a local HTTPS API whose CA
//! the image's bundle trusts.
//!
//! `./test.sh` builds the two images from source (release) into `SGPROBE_IMAGE_STORE`; run
//! alone, the test builds them itself from the binary cargo built for it.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The image store: the test command's, or one of the test's own.
struct Store {
    args: Vec<String>,
    _own: Option<tempfile::TempDir>,
}

impl Store {
    fn buildah(&self, extra: &[&str]) -> String {
        let out = Command::new("buildah")
            .args(&self.args)
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
    }
}

fn store_args(root: &Path) -> Vec<String> {
    vec![
        "--root".into(),
        format!("{}/root", root.display()),
        "--runroot".into(),
        format!("{}/run", root.display()),
        "--storage-driver".into(),
        "vfs".into(),
    ]
}

/// The two images, `localhost/sgprobe:first` and `:second`.
fn images(repo: &Path) -> Store {
    if let Ok(given) = std::env::var("SGPROBE_IMAGE_STORE") {
        return Store {
            args: store_args(Path::new(&given)),
            _own: None,
        };
    }
    let own = tempfile::tempdir().expect("temp dir");
    let args = store_args(own.path());
    for build in ["first", "second"] {
        let built = Command::new(repo.join("deploy/container/build.sh"))
            .arg(format!("localhost/sgprobe:{build}"))
            .env("SGPROBE_BINARY", env!("CARGO_BIN_EXE_sgprobe"))
            .env("SGPROBE_BUILDER", "buildah")
            .env("BUILDER_ARGS", args.join(" "))
            .output()
            .expect("build.sh runs");
        assert!(
            built.status.success(),
            "{}",
            String::from_utf8_lossy(&built.stderr)
        );
    }
    Store {
        args,
        _own: Some(own),
    }
}

#[test]
fn the_image_builds_the_same_twice_and_its_binary_runs_and_trusts_its_ca_bundle() {
    if !nix::unistd::geteuid().is_root() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "the image test needs root, and CI=true"
        );
        eprintln!("SKIPPED: building and mounting an image needs root");
        return;
    }
    if !common::tool("buildah") || !common::tool("openssl") {
        return;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let store = images(repo);
    let id = |tag: &str| {
        store.buildah(&[
            "inspect",
            "--type",
            "image",
            "--format",
            "{{.FromImageID}}",
            tag,
        ])
    };
    let (first, second) = (
        id("localhost/sgprobe:first"),
        id("localhost/sgprobe:second"),
    );
    eprintln!("image digests: sha256:{first} and sha256:{second}");
    assert_eq!(first, second, "two builds of one source tree");

    let image: serde_json::Value = serde_json::from_str(&store.buildah(&[
        "inspect",
        "--type",
        "image",
        "localhost/sgprobe:first",
    ]))
    .expect("JSON");
    let config = &image["OCIv1"]["config"];
    assert_eq!(
        config["Entrypoint"],
        serde_json::json!(["/usr/bin/sgprobe"]),
        "{image}"
    );
    assert_eq!(config["User"], "65534:65534", "not root");
    assert!(config["ExposedPorts"]["9477/tcp"].is_object(), "{config}");
    for label in [
        "org.opencontainers.image.version",
        "org.opencontainers.image.revision",
        "org.opencontainers.image.licenses",
    ] {
        assert!(config["Labels"][label].is_string(), "{label}: {config}");
    }

    let container = store.buildah(&["from", "localhost/sgprobe:first"]);
    let root = PathBuf::from(store.buildah(&["mount", &container]));
    let files = walk(&root);
    assert!(
        files
            .iter()
            .all(|f| !f.starts_with("bin/sh") && !f.starts_with("usr/bin/apt")),
        "a minimal image: {files:?}"
    );
    let shipped = std::fs::read(root.join("usr/bin/sgprobe")).expect("the binary");
    assert!(
        !shipped.windows(7).any(|w| w == b".symtab"),
        "the binary is stripped"
    );
    // Found before the environment is cleared: the run gets only `env`.
    let chroot = which("chroot");
    let run = |args: &[&str], env: &[(&str, &str)]| {
        Command::new(&chroot)
            .arg(&root)
            .arg("/usr/bin/sgprobe")
            .args(args)
            .env_clear()
            .envs(env.iter().copied())
            .output()
            .expect("chroot runs")
    };
    let version = run(&["--version"], &[]);
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("sgprobe "));
    let default = std::fs::read_to_string(root.join("etc/sgprobe/sgprobe.toml")).expect("read");
    assert!(
        default.contains("metrics_listen = \":9477\""),
        "the default config listens where EXPOSE says: {default}"
    );
    // The default config runs as it is.
    let eval = run(
        &["eval", "--config", "/etc/sgprobe/sgprobe.toml", "--json"],
        &[],
    );
    assert!(
        eval.status.success(),
        "{}",
        String::from_utf8_lossy(&eval.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&eval.stdout).expect("JSON");
    assert!(rows.as_array().is_some_and(|r| !r.is_empty()));

    if cfg!(feature = "aws-api") {
        tls_through_the_image_bundle(&root, &run);
    }
    store.buildah(&["umount", &container]);
    store.buildah(&["rm", &container]);
}

/// Runs the image's binary in a chroot: its arguments, then its whole environment.
type InImage<'a> = dyn Fn(&[&str], &[(&str, &str)]) -> std::process::Output + 'a;

/// An EC2 API over HTTPS on 127.0.0.1 whose certificate a CA of the test's own signed: the
/// CA added to the image's bundle (as an operator adds a company CA), `api = "aws"` reads the
/// group through it.
fn tls_through_the_image_bundle(root: &Path, run: &InImage<'_>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let at = |name: &str| dir.path().join(name).display().to_string();
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=sgprobe test CA",
        "-keyout",
        &at("ca.key"),
        "-out",
        &at("ca.pem"),
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        &at("server.key"),
        "-out",
        &at("server.csr"),
    ]);
    std::fs::write(
        at("ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .expect("write");
    openssl(&[
        "x509",
        "-req",
        "-in",
        &at("server.csr"),
        "-CA",
        &at("ca.pem"),
        "-CAkey",
        &at("ca.key"),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &at("ext"),
        "-out",
        &at("server.pem"),
    ]);
    let bundle = root.join("etc/ssl/certs/ca-certificates.crt");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&bundle)
        .expect("the image's CA bundle");
    file.write_all(&std::fs::read(at("ca.pem")).expect("read"))
        .expect("append");

    // Every EC2 action answered with one group (DescribeSecurityGroups) or an empty list.
    let server = r#"
import http.server, ssl, sys, urllib.parse
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0))).decode()
        action = urllib.parse.parse_qs(body).get("Action", [""])[0]
        inner = {
            "DescribeSecurityGroups": "<securityGroupInfo><item><groupId>sg-tls</groupId><groupName>tls</groupName><ipPermissions><item><ipProtocol>tcp</ipProtocol><fromPort>443</fromPort><toPort>443</toPort><ipRanges><item><cidrIp>0.0.0.0/0</cidrIp></item></ipRanges></item></ipPermissions><ipPermissionsEgress/></item></securityGroupInfo>",
            "DescribeInstances": "<reservationSet/>",
            "DescribeNetworkAcls": "<networkAclSet/>",
            "DescribeSubnets": "<subnetSet/>",
        }.get(action, "")
        reply = f'<{action}Response xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r</requestId>{inner}</{action}Response>'.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), H)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(sys.argv[1], sys.argv[2])
server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;
    let mut child = Command::new("python3")
        .args(["-c", server, &at("server.pem"), &at("server.key")])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 serves");
    let mut port = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().expect("piped")),
        &mut port,
    )
    .expect("the port");
    let served = common::Started(vec![child]);
    let config = root.join("tmp/tls.toml");
    std::fs::write(
        &config,
        format!(
            "[[source]]\nname = \"aws\"\napi = \"aws\"\nregion = \"us-east-1\"\nendpoint = \"https://127.0.0.1:{}\"\n\n[[instance]]\nname = \"web\"\naddresses = [\"10.0.0.5\"]\nsecurity_groups = [\"sg-tls\"]\n",
            port.trim()
        ),
    )
    .expect("write");
    let out = run(
        &[
            "eval",
            "--config",
            "/tmp/tls.toml",
            "--ports",
            "tcp:443",
            "--json",
        ],
        &[
            ("AWS_ACCESS_KEY_ID", "AKIDTEST"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("AWS_CONFIG_FILE", "/nonexistent"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent"),
        ],
    );
    drop(served);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "TLS through the image's bundle: {said}"
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(rows[0]["rule"]["group"], "sg-tls", "{rows}");
    assert_eq!(rows[0]["predicted"], "open", "{rows}");
}

/// A program's path on this machine's PATH.
fn which(program: &str) -> PathBuf {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .expect("sh");
    PathBuf::from(String::from_utf8_lossy(&found.stdout).trim())
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
