//! QingCloud IaaS API, read-only: DescribeSecurityGroups and each group's
//! DescribeSecurityGroupRules, DescribeInstances, DescribeSecurityGroupIPSets, every page
//! (offset/limit), each request signed (HmacSHA256). Credentials: QY_ACCESS_KEY_ID and
//! QY_SECRET_ACCESS_KEY, else the qingcloud CLI's ~/.qingcloud/config.yaml, else the
//! instance's IAM role, from the metadata service.

use serde_json::{Value, json};

use super::{
    ApiError, Budget, Credentials, PAGE, Try, absorb, home, http, paged, sign, with_backoff,
};
use crate::model::Inventory;
use crate::sources::{Format, Merged};

const API: &str = "qingcloud";

/// Where an instance with an IAM role gets its temporary keys, as QingCloud's "signature"
/// page (IAM identity signing, step 1) and its SDKs read them (`QY_METADATA_ENDPOINT`
/// overrides the host: tests, proxies).
const METADATA: &str = "http://169.254.169.254";

/// The instance role's temporary keys: `access_key`, `secret_key` and the `id_token` that
/// goes with every request. The service answers with the object JSON-encoded once more (a
/// string holding the JSON), as the documented example shows; a plain object is read too.
/// `None` off QingCloud or with no role bound (404).
fn role_credentials() -> Option<Credentials> {
    let base = std::env::var("QY_METADATA_ENDPOINT").unwrap_or_else(|_| METADATA.into());
    let url = format!(
        "{}/latest/meta-data/security-credentials",
        base.trim_end_matches('/')
    );
    let accept = [("Accept", "application/json".to_string())];
    let request = http::Request {
        headers: &accept,
        ..http::Request::get(&url)
    };
    let (200, text) = http::exchange(request, http::METADATA_TIMEOUT, http::METADATA_LIMIT).ok()?
    else {
        return None;
    };
    let mut keys: Value = serde_json::from_str(&text).ok()?;
    if let Value::String(inner) = &keys {
        keys = serde_json::from_str(inner).ok()?;
    }
    Some(Credentials {
        id: keys["access_key"].as_str()?.to_string(),
        secret: keys["secret_key"].as_str()?.to_string(),
        token: Some(keys["id_token"].as_str()?.to_string()),
    })
}

/// The environment's credentials, else the CLI's config file (`qy_access_key_id: '...'`
/// lines), else the instance's role.
pub fn credentials() -> Result<Credentials, ApiError> {
    if let (Ok(access_key_id), Ok(secret_access_key)) = (
        std::env::var("QY_ACCESS_KEY_ID"),
        std::env::var("QY_SECRET_ACCESS_KEY"),
    ) {
        return Ok(Credentials {
            id: access_key_id,
            secret: secret_access_key,
            token: None,
        });
    }
    let text = home(".qingcloud/config.yaml")
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
    let value = |key: &str| {
        text.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            (k.trim() == key).then(|| v.trim().trim_matches(['\'', '"']).to_string())
        })
    };
    match (value("qy_access_key_id"), value("qy_secret_access_key")) {
        (Some(id), Some(secret)) => Ok(Credentials {
            id,
            secret,
            token: None,
        }),
        _ => role_credentials().ok_or(ApiError::NoCredentials {
            api: API,
            hint: "set QY_ACCESS_KEY_ID and QY_SECRET_ACCESS_KEY, write ~/.qingcloud/config.yaml, or bind an IAM role to the instance",
        }),
    }
}

#[derive(Debug, Clone)]
pub struct Client {
    pub credentials: Credentials,
    /// The zone, as QingCloud calls a region: `pek3a`, `sh1a`, ...
    pub zone: String,
    /// Instead of `https://api.qingcloud.com`.
    pub endpoint: Option<String>,
    pub clock: fn() -> u64,
    /// The longest one request may take.
    pub timeout: std::time::Duration,
    /// What the fetch may spend, requests and wall time included.
    pub budget: Budget,
}

impl Client {
    /// One action's reply, retried with backoff while the API is busy (ret_code 5xxx, or
    /// HTTP 429/503).
    pub fn call(&self, action: &str, params: &[(&str, String)]) -> Result<Value, ApiError> {
        let base = self
            .endpoint
            .as_deref()
            .unwrap_or("https://api.qingcloud.com")
            .trim_end_matches('/');
        // A role's temporary keys sign the same way, but the request goes to `/iam/`, says
        // signature version 2 and carries the role's token (the signature page, IAM
        // identity signing, step 3).
        let (path, version) = match self.credentials.token {
            Some(_) => ("/iam/", "2"),
            None => ("/iaas/", "1"),
        };
        with_backoff(API, action, &self.budget, || {
            let mut all: Vec<(String, String)> = vec![
                ("action".into(), action.into()),
                ("zone".into(), self.zone.clone()),
                ("access_key_id".into(), self.credentials.id.clone()),
                ("signature_method".into(), "HmacSHA256".into()),
                ("signature_version".into(), version.into()),
                ("version".into(), "1".into()),
                ("time_stamp".into(), sign::utc_time((self.clock)())),
            ];
            if let Some(token) = &self.credentials.token {
                all.push(("token".into(), token.clone()));
            }
            all.extend(params.iter().map(|(k, v)| (k.to_string(), v.clone())));
            let query = sign::qingcloud_query(&self.credentials.secret, path, &all);
            let transport = |message: String| ApiError::Transport {
                api: API,
                action: action.to_string(),
                message,
            };
            let url = format!("{base}{path}?{query}");
            let (status, text) =
                self.budget
                    .exchange(API, action, http::Request::get(&url), self.timeout)?;
            let busy = |code: i64| (5000..6000).contains(&code) || status == 429 || status == 503;
            let reply: Value = match serde_json::from_str(&text) {
                Ok(reply) => reply,
                Err(_) if busy(0) => Value::Null,
                Err(e) => return Err(transport(format!("not JSON ({e})"))),
            };
            let code = reply["ret_code"]
                .as_i64()
                .unwrap_or(if busy(0) { 5000 } else { 0 });
            if code == 0 {
                return Ok(Try::Done(reply));
            }
            if busy(code) {
                return Ok(Try::Busy);
            }
            Err(ApiError::Refused {
                api: API,
                action: action.to_string(),
                code: code.to_string(),
                message: reply["message"].as_str().unwrap_or("").to_string(),
            })
        })
    }

    /// Every page of a list action: the items of `key`, in order.
    pub fn pages(
        &self,
        action: &str,
        key: &str,
        params: &[(&str, String)],
    ) -> Result<Vec<Value>, ApiError> {
        paged(API, action, &self.budget, |offset| {
            let mut all = params.to_vec();
            all.push(("offset", offset.to_string()));
            all.push(("limit", PAGE.to_string()));
            let reply = self.call(action, &all)?;
            let page = reply[key].as_array().cloned().unwrap_or_default();
            Ok((page, reply["total_count"].as_u64()))
        })
    }

    /// The zone's groups with their rules, instances and IP sets.
    pub fn fetch(&self) -> Result<Inventory, ApiError> {
        let mut merged = Merged::default();
        let groups = self.pages("DescribeSecurityGroups", "security_group_set", &[])?;
        absorb(
            &mut merged,
            Format::QingCloud,
            "api:qingcloud DescribeSecurityGroups",
            &json!({"security_group_set": groups}).to_string(),
            None,
        )?;
        for group in &groups {
            let Some(id) = group["security_group_id"].as_str() else {
                continue;
            };
            let rules = self.pages(
                "DescribeSecurityGroupRules",
                "security_group_rule_set",
                &[("security_group", id.to_string())],
            )?;
            absorb(
                &mut merged,
                Format::QingCloud,
                &format!("api:qingcloud DescribeSecurityGroupRules {id}"),
                &json!({"security_group_rule_set": rules}).to_string(),
                Some(id),
            )?;
        }
        let instances = self.pages(
            "DescribeInstances",
            "instance_set",
            &[("verbose", "1".into())],
        )?;
        absorb(
            &mut merged,
            Format::QingCloud,
            "api:qingcloud DescribeInstances",
            &json!({"instance_set": instances}).to_string(),
            None,
        )?;
        let sets = self.pages(
            "DescribeSecurityGroupIPSets",
            "security_group_ipset_set",
            &[],
        )?;
        absorb(
            &mut merged,
            Format::QingCloud,
            "api:qingcloud DescribeSecurityGroupIPSets",
            &json!({"security_group_ipset_set": sets}).to_string(),
            None,
        )?;
        Ok(merged.inventory)
    }
}
