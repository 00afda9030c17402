//! The native API clients against a local HTTP server that checks every request's signature
//! (recomputed with the secret it knows) and serves the clouds' documented response shapes
//! page by page: a first, middle and last page, a throttling reply that must be retried,
//! and an error that must be reported. The signers themselves are checked against the
//! clouds' worked examples (src/cloudapi/sign.rs).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use sgprobe::cloudapi::{Budget, Credentials, Limits, qingcloud, sign, tencent};

const SECRET: &str = "test-secret-key";
const CLOCK: u64 = 1_700_000_000;
/// The token a role's temporary keys come with (a JWT, as QingCloud's are).
const ROLE_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzdHMifQ.c2lnbmF0dXJl-_";

fn clock() -> u64 {
    CLOCK
}

struct Request {
    method: String,
    target: String,
    headers: BTreeMap<String, String>,
    body: String,
}

/// Serves requests on 127.0.0.1 with `answer` until the test ends; returns the base URL
/// and every request seen.
fn serve(
    answer: impl Fn(&Request) -> (u16, String) + Send + 'static,
) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() || line.is_empty() {
                continue;
            }
            let mut parts = line.split_whitespace();
            let (method, target) = (
                parts.next().unwrap_or("").to_string(),
                parts.next().unwrap_or("").to_string(),
            );
            let mut headers = BTreeMap::new();
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).is_err() || header.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = header.split_once(':') {
                    headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                }
            }
            let length: usize = headers
                .get("content-length")
                .and_then(|l| l.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let request = Request {
                method,
                target,
                headers,
                body: String::from_utf8_lossy(&body).into_owned(),
            };
            let (status, reply) = answer(&request);
            let header = |name: &str| request.headers.get(name).cloned().unwrap_or_default();
            log.lock().expect("log").push(format!(
                "{} {} {} token={} {}",
                request.method,
                request.target,
                header("x-tc-action"),
                header("x-tc-token"),
                request.body
            ));
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                reply.len()
            );
        }
    });
    (base, seen)
}

/// A Tencent reply: `Response` with the fields given, or with an error.
fn tencent_reply(fields: Value) -> String {
    json!({"Response": fields}).to_string()
}

/// Tencent's server side: the signature checked, then pages of `items` two at a time.
fn tencent_server(throttle_first: bool) -> (String, Arc<Mutex<Vec<String>>>) {
    let throttled = Mutex::new(!throttle_first);
    serve(move |request| {
        let host = request.headers.get("host").cloned().unwrap_or_default();
        let service = host.split('.').next().unwrap_or("").to_string();
        let timestamp: u64 = request.headers["x-tc-timestamp"]
            .parse()
            .expect("timestamp");
        let expected = sign::tc3_authorization(
            "AKIDTEST",
            SECRET,
            &service,
            &host,
            &request.body,
            timestamp,
        );
        if request.headers.get("authorization") != Some(&expected) {
            return (
                200,
                tencent_reply(
                    json!({"Error": {"Code": "AuthFailure.SignatureFailure", "Message": "The provided credentials could not be validated."}, "RequestId": "r"}),
                ),
            );
        }
        let action = request.headers["x-tc-action"].clone();
        if action == "DescribeSecurityGroups" && !*throttled.lock().expect("lock") {
            *throttled.lock().expect("lock") = true;
            return (
                200,
                tencent_reply(
                    json!({"Error": {"Code": "RequestLimitExceeded", "Message": "Your current request times equals to `21` in a second, which exceeds the frequency limit `20` for a second. Please reduce the frequency of calls."}, "RequestId": "r"}),
                ),
            );
        }
        let body: Value = serde_json::from_str(&request.body).expect("JSON body");
        let offset = body["Offset"].as_u64().unwrap_or(0) as usize;
        let page = |key: &str, items: Vec<Value>| {
            let total = items.len();
            let chunk: Vec<Value> = items.into_iter().skip(offset).take(2).collect();
            tencent_reply(json!({key: chunk, "TotalCount": total, "RequestId": "r"}))
        };
        let reply = match action.as_str() {
            "DescribeSecurityGroups" => page(
                "SecurityGroupSet",
                (0..5).map(|g| json!({"SecurityGroupId": format!("sg-{g}"), "SecurityGroupName": format!("g{g}")})).collect(),
            ),
            "DescribeSecurityGroupPolicies" => {
                let id = body["SecurityGroupId"].as_str().unwrap_or("");
                tencent_reply(json!({"SecurityGroupPolicySet": {"Version": "1", "Ingress": [
                    {"PolicyIndex": 0, "Protocol": "TCP", "Port": "22", "CidrBlock": "10.0.0.0/8", "Action": "ACCEPT", "PolicyDescription": id}
                ], "Egress": []}, "RequestId": "r"}))
            }
            "DescribeInstances" => page(
                "InstanceSet",
                (0..3).map(|i| json!({"InstanceId": format!("ins-{i}"), "InstanceName": format!("cvm-{i}"), "PrivateIpAddresses": [format!("10.1.0.{i}")], "SecurityGroupIds": [format!("sg-{i}")]})).collect(),
            ),
            _ => page("Nothing", Vec::new()),
        };
        (200, reply)
    })
}

fn tencent_client(base: &str, secret: &str) -> tencent::Client {
    tencent::Client {
        credentials: Credentials {
            id: "AKIDTEST".into(),
            secret: secret.into(),
            token: None,
        },
        region: "ap-guangzhou".into(),
        endpoint: Some(format!("{base}/")),
        clock,
        timeout: std::time::Duration::from_secs(10),
        budget: Budget::new(std::time::Duration::from_secs(60)),
    }
}

#[test]
fn tencent_reads_every_page_retries_throttling_and_signs_each_request() {
    let (base, seen) = tencent_server(true);
    let inv = tencent_client(&base, SECRET).fetch().expect("fetches");
    assert_eq!(inv.groups.len(), 5, "3 pages of groups (2, 2, 1)");
    assert_eq!(inv.instances.len(), 3, "2 pages of instances");
    assert_eq!(
        inv.groups["sg-4"].ingress[0].origin.description.as_deref(),
        Some("sg-4")
    );
    let seen = seen.lock().expect("log");
    let offsets: Vec<&String> = seen
        .iter()
        .filter(|r| r.contains("\"Offset\"") && r.contains("POST"))
        .collect();
    assert!(
        offsets.iter().any(|r| r.contains("\"Offset\":4")),
        "the last page asked for: {seen:?}"
    );
    // The throttled first call, then its retry: the same first page asked for twice.
    let first_page =
        |r: &&String| r.contains("DescribeSecurityGroups ") && r.contains("\"Offset\":0");
    assert_eq!(
        seen.iter().take(2).filter(first_page).count(),
        2,
        "{seen:?}"
    );
}

#[test]
fn tencent_errors_are_reported_with_the_apis_code() {
    let (base, _) = tencent_server(false);
    let error = tencent_client(&base, "a-wrong-key")
        .fetch()
        .expect_err("the server rejects the signature")
        .to_string();
    assert!(error.contains("AuthFailure.SignatureFailure"), "{error}");
    assert!(
        !error.contains("a-wrong-key"),
        "the secret stays secret: {error}"
    );
}

/// QingCloud's server side: the signature checked, then pages of 2.
fn qingcloud_server(busy_first: bool) -> (String, Arc<Mutex<Vec<String>>>) {
    let busy = Mutex::new(busy_first);
    serve(move |request| {
        let query = request.target.split_once('?').map_or("", |(_, q)| q);
        let mut params: Vec<(String, String)> = Vec::new();
        let mut signature = String::new();
        for pair in query.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decoded = percent_decode(v);
            if k == "signature" {
                signature = v.to_string();
            } else {
                params.push((k.to_string(), decoded));
            }
        }
        // Long-term keys sign for /iaas/; a role's temporary keys for /iam/, with signature
        // version 2 and the role's token.
        let path = request.target.split('?').next().unwrap_or("");
        let role = path == "/iam/";
        let has = |key: &str, value: &str| params.iter().any(|(k, v)| k == key && v == value);
        let shape = if role {
            has("signature_version", "2") && has("token", ROLE_TOKEN)
        } else {
            path == "/iaas/"
                && has("signature_version", "1")
                && !params.iter().any(|(k, _)| k == "token")
        };
        let expected = sign::qingcloud_query(SECRET, path, &params);
        if !shape || !expected.ends_with(&format!("&signature={signature}")) {
            return (
                200,
                json!({"ret_code": 1200, "message": "signature not matched"}).to_string(),
            );
        }
        if std::mem::replace(&mut *busy.lock().expect("lock"), false) {
            return (503, "busy".to_string());
        }
        let get = |key: &str| {
            params
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let offset: usize = get("offset").parse().unwrap_or(0);
        let page = |key: &str, items: Vec<Value>| {
            let total = items.len();
            let chunk: Vec<Value> = items.into_iter().skip(offset).take(2).collect();
            json!({"ret_code": 0, key: chunk, "total_count": total}).to_string()
        };
        let reply = match get("action").as_str() {
            "DescribeSecurityGroups" => page(
                "security_group_set",
                (0..3)
                    .map(|g| json!({"security_group_id": format!("sg-q{g}")}))
                    .collect(),
            ),
            "DescribeSecurityGroupRules" => {
                let group = get("security_group");
                page("security_group_rule_set", (0..3).map(|r| json!({"security_group_id": group, "security_group_rule_id": format!("sgr-{group}-{r}"), "priority": r, "direction": 0, "action": "accept", "protocol": "tcp", "val1": format!("{}", 8000 + r), "val3": ""})).collect())
            }
            "DescribeInstances" => page(
                "instance_set",
                vec![
                    json!({"instance_id": "i-q1", "vxnets": [{"private_ip": "172.16.0.5"}], "security_group": {"security_group_id": "sg-q0"}}),
                ],
            ),
            _ => page("security_group_ipset_set", Vec::new()),
        };
        (200, reply)
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() + 1 {
            if let Ok(b) = u8::from_str_radix(&text[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn qingcloud_reads_every_page_waits_out_a_busy_api_and_signs_each_request() {
    let (base, _) = qingcloud_server(true);
    let client = qingcloud::Client {
        credentials: Credentials {
            id: "QYTEST".into(),
            secret: SECRET.into(),
            token: None,
        },
        zone: "pek3a".into(),
        endpoint: Some(base),
        clock,
        timeout: std::time::Duration::from_secs(10),
        budget: Budget::new(std::time::Duration::from_secs(60)),
    };
    let inv = client.fetch().expect("fetches");
    assert_eq!(inv.groups.len(), 3);
    assert_eq!(inv.groups["sg-q2"].ingress.len(), 3, "two pages of rules");
    assert_eq!(inv.instances.len(), 1);

    let (base, _) = qingcloud_server(false);
    let wrong = qingcloud::Client {
        credentials: Credentials {
            id: "QYTEST".into(),
            secret: "wrong".into(),
            token: None,
        },
        zone: "pek3a".into(),
        endpoint: Some(base),
        clock,
        timeout: std::time::Duration::from_secs(10),
        budget: Budget::new(std::time::Duration::from_secs(60)),
    };
    let error = wrong.fetch().expect_err("refused").to_string();
    assert!(
        error.contains("1200") && error.contains("signature not matched"),
        "{error}"
    );
}

/// A config with one API source served from `base`.
fn api_config(dir: &std::path::Path, api: &str, region: &str, base: &str) -> std::path::PathBuf {
    let config = dir.join("sgprobe.toml");
    std::fs::write(
        &config,
        format!("[[source]]\nname = \"{api}-{region}\"\napi = \"{api}\"\nregion = \"{region}\"\nendpoint = \"{base}/\"\n"),
    )
    .expect("write");
    config
}

/// `sgprobe eval` of one port of one instance from a peer, as JSON.
fn eval_port(config: &std::path::Path, instance: &str, port: &str) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_sgprobe"));
    command.args(["eval", "-c"]).arg(config).args([
        "-i", instance, "--ports", port, "--peer", "10.9.9.9", "--json",
    ]);
    command
}

/// The verdict of a successful `eval_port`.
fn predicted(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    rows[0]["predicted"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn an_api_source_loads_through_the_config_with_credentials_from_the_environment() {
    let (base, seen) = tencent_server(false);
    let dir = tempfile::tempdir().expect("temp dir");
    let config = api_config(dir.path(), "tencent", "ap-guangzhou", &base);
    let out = eval_port(&config, "cvm-1", "tcp:22")
        .env("TENCENTCLOUD_SECRET_ID", "AKIDTEST")
        .env("TENCENTCLOUD_SECRET_KEY", SECRET)
        .output()
        .expect("runs");
    assert_eq!(predicted(&out), "open");
    // No keys anywhere, and no metadata service (a closed local port, never the real one).
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sgprobe"))
        .args(["eval", "-c"])
        .arg(&config)
        .env_remove("TENCENTCLOUD_SECRET_ID")
        .env("HOME", dir.path())
        .env("TENCENTCLOUD_METADATA_ENDPOINT", "http://127.0.0.1:1/")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("TENCENTCLOUD_SECRET_ID"));

    // On a CVM with a role: the metadata service's temporary keys, with their token.
    let (metadata, _) = serve(|request| {
        match request.target.as_str() {
        "/cam/security-credentials/" => (200, "sgprobe-reader".to_string()),
        "/cam/security-credentials/sgprobe-reader" => (
            200,
            json!({"TmpSecretId": "AKIDTEST", "TmpSecretKey": SECRET, "Token": "role-token", "ExpiredTime": 1_700_007_200, "Code": "Success"}).to_string(),
        ),
        _ => (404, String::new()),
    }
    });
    let out = eval_port(&config, "cvm-1", "tcp:22")
        .env_remove("TENCENTCLOUD_SECRET_ID")
        .env_remove("TENCENTCLOUD_SECRET_KEY")
        .env("HOME", dir.path())
        .env("TENCENTCLOUD_METADATA_ENDPOINT", format!("{metadata}/"))
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The role's temporary keys go with their token; long-term keys with none.
    let seen = seen.lock().expect("log");
    assert!(
        seen.iter().any(|r| r.contains("token=role-token")),
        "{seen:?}"
    );
    assert!(
        seen.first().is_some_and(|r| r.contains("token= ")),
        "{seen:?}"
    );
}

#[test]
fn qingcloud_uses_the_instance_roles_keys_from_the_metadata_service_when_nothing_else_is_set() {
    let (base, seen) = qingcloud_server(false);
    let dir = tempfile::tempdir().expect("temp dir");
    let config = api_config(dir.path(), "qingcloud", "pek3a", &base);
    let eval = |metadata: &str| {
        eval_port(&config, "i-q1", "tcp:8001")
            .env_remove("QY_ACCESS_KEY_ID")
            .env_remove("QY_SECRET_ACCESS_KEY")
            .env("HOME", dir.path())
            .env("QY_METADATA_ENDPOINT", metadata)
            .output()
            .expect("runs")
    };
    // No keys and no metadata service (a closed local port, never the real one).
    let out = eval("http://127.0.0.1:1");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("QY_ACCESS_KEY_ID") && stderr.contains("IAM role"),
        "{stderr}"
    );

    // The metadata service answers as the signature page's example shows: the keys' JSON
    // object, itself JSON-encoded as a string.
    let keys = json!({"jti": "j", "id_token": ROLE_TOKEN, "access_key": "QYROLEKEY", "secret_key": SECRET, "expiration": CLOCK + 3600}).to_string();
    let (metadata, asked) = serve(move |request| match request.target.as_str() {
        "/latest/meta-data/security-credentials"
            if request.headers.get("accept").map(String::as_str) == Some("application/json") =>
        {
            (200, Value::String(keys.clone()).to_string())
        }
        _ => (404, String::new()),
    });
    let out = eval(&metadata);
    assert_eq!(predicted(&out), "open");
    assert_eq!(asked.lock().expect("log").len(), 1, "one metadata request");
    let seen = seen.lock().expect("log");
    assert!(
        !seen.is_empty()
            && seen
                .iter()
                .all(|r| r.starts_with("GET /iam/?") && r.contains("access_key_id=QYROLEKEY")),
        "every request signed with the role's keys: {seen:?}"
    );
}

/// A Tencent API that signs nothing and answers `DescribeSecurityGroups` as `page` says (the
/// request's offset given), every other action with an empty list.
fn hostile_tencent(
    page: impl Fn(u64) -> Value + Send + 'static,
) -> (String, Arc<Mutex<Vec<String>>>) {
    serve(move |request| {
        let body: Value = serde_json::from_str(&request.body).unwrap_or(Value::Null);
        let offset = body["Offset"].as_u64().unwrap_or(0);
        let reply = match request.headers.get("x-tc-action").map(String::as_str) {
            Some("DescribeSecurityGroups") => page(offset),
            _ => json!({"InstanceSet": [], "TotalCount": 0, "RequestId": "r"}),
        };
        (200, tencent_reply(reply))
    })
}

fn groups_from(offset: u64, count: u64) -> Vec<Value> {
    (offset..offset + count)
        .map(|g| json!({"SecurityGroupId": format!("sg-{g}")}))
        .collect()
}

fn bounded_client(base: &str, limits: Limits) -> tencent::Client {
    tencent::Client {
        budget: Budget::with_limits(std::time::Duration::from_secs(20), limits),
        ..tencent_client(base, SECRET)
    }
}

#[test]
fn a_fetch_stops_at_its_bounds_when_the_api_lies_repeats_or_never_ends() {
    // A total that lies: always more to come, every page new.
    let (base, seen) = hostile_tencent(
        |offset| json!({"SecurityGroupSet": groups_from(offset, 100), "TotalCount": 1_000_000_000u64}),
    );
    let limits = Limits {
        items: 1_000,
        ..Limits::default()
    };
    let error = bounded_client(&base, limits)
        .fetch()
        .expect_err("bounded")
        .to_string();
    assert!(
        error.contains("more than 1000 items in one fetch"),
        "{error}"
    );
    assert!(
        seen.lock().expect("log").len() <= 11,
        "stopped at the bound, not at the lie"
    );

    // The same page whatever the offset.
    let (base, seen) =
        hostile_tencent(|_| json!({"SecurityGroupSet": groups_from(0, 100), "TotalCount": 500}));
    let error = tencent_client(&base, SECRET)
        .fetch()
        .expect_err("repeats")
        .to_string();
    assert!(error.contains("repeats the one before"), "{error}");
    assert_eq!(
        seen.lock().expect("log").len(),
        2,
        "noticed at the second page"
    );

    // Requests: a bound of its own.
    let (base, _) = hostile_tencent(
        |offset| json!({"SecurityGroupSet": groups_from(offset, 100), "TotalCount": 1_000_000}),
    );
    let limits = Limits {
        requests: 5,
        ..Limits::default()
    };
    let error = bounded_client(&base, limits)
        .fetch()
        .expect_err("bounded")
        .to_string();
    assert!(error.contains("more than 5 requests"), "{error}");
}

#[test]
fn an_account_of_a_million_groups_fails_the_fetch_at_the_default_bound() {
    let (base, seen) = hostile_tencent(|offset| {
        let count = 1_000_000u64.saturating_sub(offset).min(100);
        json!({"SecurityGroupSet": groups_from(offset, count), "TotalCount": 1_000_000})
    });
    let started = std::time::Instant::now();
    let error = tencent_client(&base, SECRET)
        .fetch()
        .expect_err("bounded")
        .to_string();
    let most = Limits::default().items;
    assert!(
        error.contains(&format!("more than {most} items")),
        "{error}"
    );
    let requests = seen.lock().expect("log").len();
    assert!(requests <= most / 100 + 1, "{requests} requests");
    eprintln!(
        "a million groups: stopped after {requests} requests in {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn a_reply_that_never_ends_or_is_too_long_fails_within_the_deadline() {
    // Headers, then a body that trickles and never completes.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopping = stop.clone();
    std::thread::spawn(move || {
        let Ok((mut stream, _)) = listener.accept() else {
            return;
        };
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n{\"Response\": {");
        // Bounded: at most 60 trickles, and it stops when the test ends.
        for _ in 0..60 {
            if stopping.load(std::sync::atomic::Ordering::Relaxed) {
                break;
            }
            let _ = stream.write_all(b" ");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    });
    let client = tencent::Client {
        timeout: std::time::Duration::from_secs(2),
        ..tencent_client(&base, SECRET)
    };
    let started = std::time::Instant::now();
    let error = client.fetch().expect_err("never ends").to_string();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "ended by the request's timeout: {error}"
    );

    // A body longer than a reply may be.
    let (base, _) = hostile_tencent(|_| json!({"Padding": "x".repeat(4096)}));
    let limits = Limits {
        reply_bytes: 1024,
        ..Limits::default()
    };
    let error = bounded_client(&base, limits)
        .fetch()
        .expect_err("too long")
        .to_string();
    assert!(error.contains("longer than 1024 bytes"), "{error}");
}

#[test]
fn no_redirect_is_followed_and_no_credential_leaves_in_an_error() {
    // The API redirects to another origin, which records whether the token came along.
    let (elsewhere, reached) = serve(|_| (200, tencent_reply(json!({}))));
    let location = format!("{elsewhere}/");
    let (base, _) = serve(move |_| (302, format!("moved to {location}")));
    let marker = Credentials {
        id: "MARKER-ID-1f3a".into(),
        secret: "MARKER-SECRET-9c2e".into(),
        token: Some("MARKER-TOKEN-77b0".into()),
    };
    let client = tencent::Client {
        credentials: marker.clone(),
        ..tencent_client(&base, SECRET)
    };
    let error = client.fetch().expect_err("redirected").to_string();
    assert!(
        error.contains("redirect (HTTP 302), which is not followed"),
        "{error}"
    );
    assert!(
        reached.lock().expect("log").is_empty(),
        "nothing went elsewhere"
    );

    // An API whose error message quotes the request, token and all; a QingCloud request
    // (keys in its signed URL) to a port nobody listens on.
    let (base, _) = serve(|request| {
        let quoted = format!("bad request {} {:?}", request.target, request.headers);
        (
            200,
            tencent_reply(json!({"Error": {"Code": "InvalidParameter", "Message": quoted}})),
        )
    });
    let quoting = tencent::Client {
        credentials: marker.clone(),
        ..tencent_client(&base, SECRET)
    };
    let closed = TcpListener::bind("127.0.0.1:0").expect("bind");
    let closed_base = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let unreachable = qingcloud::Client {
        credentials: marker.clone(),
        zone: "pek3a".into(),
        endpoint: Some(closed_base),
        clock,
        timeout: std::time::Duration::from_secs(2),
        budget: Budget::new(std::time::Duration::from_secs(10)),
    };
    for error in [
        quoting.fetch().expect_err("refused").redacted(&marker),
        unreachable
            .fetch()
            .expect_err("unreachable")
            .redacted(&marker),
    ] {
        let text = error.to_string();
        for secret in [
            "MARKER-ID-1f3a",
            "MARKER-SECRET-9c2e",
            "MARKER-TOKEN-77b0",
            "signature=",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
}

#[test]
fn an_api_that_quotes_the_request_leaks_no_credential_through_the_cli() {
    // Every failure the CLI can meet on an API source: a refusal quoting the request, a
    // port nobody listens on, a redirect; marker credentials for both clouds.
    let (quoting, _) = serve(|request| {
        let quoted = format!("bad request {} {:?}", request.target, request.headers);
        let body = json!({"Error": {"Code": "InvalidParameter", "Message": quoted}, "ret_code": 1100, "message": request.target.clone()});
        (200, tencent_reply(body))
    });
    let (redirecting, _) = serve(|_| (302, String::new()));
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let closed = format!("http://{}", listener.local_addr().expect("addr"));
    drop(listener);
    let dir = tempfile::tempdir().expect("temp dir");
    let markers = [
        ("TENCENTCLOUD_SECRET_ID", "MARKER-TC-ID-5d1"),
        ("TENCENTCLOUD_SECRET_KEY", "MARKER-TC-KEY-0a9"),
        ("TENCENTCLOUD_SESSION_TOKEN", "MARKER-TC-TOKEN-c42"),
        ("QY_ACCESS_KEY_ID", "MARKER-QY-ID-7e3"),
        ("QY_SECRET_ACCESS_KEY", "MARKER-QY-KEY-b88"),
    ];
    for (api, region) in [("tencent", "ap-guangzhou"), ("qingcloud", "pek3a")] {
        for base in [&quoting, &redirecting, &closed] {
            let config = api_config(dir.path(), api, region, base);
            let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_sgprobe"));
            command.args(["eval", "-c"]).arg(&config);
            for (key, value) in markers {
                command.env(key, value);
            }
            let out = command.output().expect("runs");
            assert_eq!(out.status.code(), Some(2), "{api} at {base}");
            let said = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            for (_, marker) in markers {
                assert!(!said.contains(marker), "{marker} in {said}");
            }
            assert!(!said.contains("signature="), "a signed URL in {said}");
        }
    }
}

#[test]
fn a_failing_command_source_shows_no_credential_from_its_command_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("sgprobe.toml");
    for argv in [
        r#"["sh", "-c", "exit 3", "sh", "--token", "MARKER-CMD-TOKEN-41"]"#,
        r#"["sh", "-c", "exit 3", "sh", "https://me:MARKER-CMD-PASS-42@example.com/"]"#,
        r#"["sh", "-c", "exit 3", "sh", "-H", "Authorization: Bearer MARKER-CMD-BEARER-43"]"#,
    ] {
        std::fs::write(
            &config,
            format!("[[source]]\nformat = \"aws\"\ncommand = {argv}\n"),
        )
        .expect("write");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sgprobe"))
            .args(["eval", "-c"])
            .arg(&config)
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), Some(2));
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains("exit"), "the failure is reported: {said}");
        assert!(!said.contains("MARKER"), "a credential in {said}");
    }
}

#[cfg(feature = "aws-api")]
#[test]
fn an_ec2_api_whose_pages_never_end_is_stopped_at_the_item_bound() {
    // Every DescribeSecurityGroups page holds 100 groups and names a page after it.
    let served = std::sync::atomic::AtomicUsize::new(0);
    let (base, seen) = serve(move |_| {
        let n = served.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let groups: String = (0..100)
            .map(|g| format!("<item><groupId>sg-{n}-{g}</groupId><groupName>g</groupName><ipPermissions/><ipPermissionsEgress/></item>"))
            .collect();
        (
            200,
            format!(
                "<DescribeSecurityGroupsResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>r</requestId><securityGroupInfo>{groups}</securityGroupInfo><nextToken>t{n}</nextToken></DescribeSecurityGroupsResponse>"
            ),
        )
    });
    let dir = tempfile::tempdir().expect("temp dir");
    let config = api_config(dir.path(), "aws", "us-east-1", &base);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sgprobe"))
        .args(["eval", "-c"])
        .arg(&config)
        .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .output()
        .expect("runs");
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    let most = Limits::default().items;
    assert!(said.contains(&format!("more than {most} items")), "{said}");
    let requests = seen.lock().expect("log").len();
    assert!(
        (most / 100..=most / 100 + 2).contains(&requests),
        "stopped at the bound: {requests} requests"
    );
}

#[test]
fn a_group_answered_with_endless_rules_is_stopped_at_the_item_bound() {
    // Two groups, each said to hold 600 rules: the groups fit the bound, their rules do not.
    let (base, _) = serve(|request| {
        let rule =
            json!({"Protocol": "TCP", "Port": "22", "CidrBlock": "10.0.0.0/8", "Action": "ACCEPT"});
        let reply = match request.headers.get("x-tc-action").map(String::as_str) {
            Some("DescribeSecurityGroups") => {
                json!({"SecurityGroupSet": groups_from(0, 2), "TotalCount": 2})
            }
            Some("DescribeSecurityGroupPolicies") => json!({"SecurityGroupPolicySet": {
                "Version": "1", "Ingress": vec![rule; 600], "Egress": []}}),
            _ => json!({"InstanceSet": [], "TotalCount": 0, "RequestId": "r"}),
        };
        (200, tencent_reply(reply))
    });
    let limits = Limits {
        items: 1_000,
        ..Limits::default()
    };
    let error = bounded_client(&base, limits)
        .fetch()
        .expect_err("bounded")
        .to_string();
    assert!(
        error.contains("DescribeSecurityGroupPolicies")
            && error.contains("more than 1000 items in one fetch"),
        "{error}"
    );
}

#[cfg(feature = "aws-api")]
#[test]
fn an_ec2_api_that_quotes_the_request_leaks_no_credential() {
    // The endpoint refuses, quoting every header it was sent (the signature and the session
    // token among them) in its error message.
    let (base, _) = serve(|request| {
        let quoted = format!("{:?}", request.headers).replace(['<', '>', '&'], " ");
        (
            400,
            format!(
                "<Response><Errors><Error><Code>InvalidParameterValue</Code><Message>bad request {quoted}</Message></Error></Errors><RequestID>r</RequestID></Response>"
            ),
        )
    });
    let dir = tempfile::tempdir().expect("temp dir");
    let config = api_config(dir.path(), "aws", "us-east-1", &base);
    let markers = [
        ("AWS_ACCESS_KEY_ID", "AKIAMARKERID0042"),
        ("AWS_SECRET_ACCESS_KEY", "MARKER-AWS-SECRET-d41"),
        ("AWS_SESSION_TOKEN", "MARKER-AWS-TOKEN-e52"),
    ];
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_sgprobe"));
    command
        .args(["eval", "-c"])
        .arg(&config)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
    for (key, value) in markers {
        command.env(key, value);
    }
    let out = command.output().expect("runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains("InvalidParameterValue"),
        "the refusal is reported: {said}"
    );
    for (_, marker) in markers {
        assert!(!said.contains(marker), "{marker} in {said}");
    }
}
