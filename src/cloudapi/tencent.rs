//! Tencent Cloud API 3.0, read-only: DescribeSecurityGroups and each group's
//! DescribeSecurityGroupPolicies, DescribeInstances, and the address and service templates
//! and template groups, every page (Offset/Limit), each request signed TC3-HMAC-SHA256.
//! Credentials: TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY (and
//! TENCENTCLOUD_SESSION_TOKEN for temporary keys), else tccli's ~/.tccli/default.credential,
//! else the CVM's role, from the metadata service.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::{
    ApiError, Budget, Credentials, PAGE, Try, absorb, home, http, paged, sign, with_backoff,
};
use crate::model::Inventory;
use crate::sources::{Format, Merged};

const API: &str = "tencent";

/// The CVM metadata service (`TENCENTCLOUD_METADATA_ENDPOINT` overrides it: tests, proxies).
const METADATA: &str = "http://metadata.tencentyun.com/latest/meta-data/";

/// The CVM role's temporary keys: the role's name, then its keys (TmpSecretId, TmpSecretKey,
/// Token), as Tencent's SDKs read them. `None` off a CVM or with no role bound.
fn role_credentials() -> Option<Credentials> {
    let base = std::env::var("TENCENTCLOUD_METADATA_ENDPOINT").unwrap_or_else(|_| METADATA.into());
    let get = |path: &str| {
        let url = format!(
            "{}/cam/security-credentials/{path}",
            base.trim_end_matches('/')
        );
        match http::exchange(
            http::Request::get(&url),
            http::METADATA_TIMEOUT,
            http::METADATA_LIMIT,
        ) {
            Ok((200, text)) => Some(text),
            _ => None,
        }
    };
    let role = get("")?.lines().next()?.trim().to_string();
    let keys: Value = serde_json::from_str(&get(&role)?).ok()?;
    Some(Credentials {
        id: keys["TmpSecretId"].as_str()?.to_string(),
        secret: keys["TmpSecretKey"].as_str()?.to_string(),
        token: keys["Token"].as_str().map(str::to_string),
    })
}

/// The environment's credentials, else tccli's default profile, else the CVM's role.
pub fn credentials() -> Result<Credentials, ApiError> {
    if let (Ok(secret_id), Ok(secret_key)) = (
        std::env::var("TENCENTCLOUD_SECRET_ID"),
        std::env::var("TENCENTCLOUD_SECRET_KEY"),
    ) {
        return Ok(Credentials {
            id: secret_id,
            secret: secret_key,
            token: std::env::var("TENCENTCLOUD_SESSION_TOKEN").ok(),
        });
    }
    let profile = home(".tccli/default.credential")
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| serde_json::from_str::<Value>(&t).ok());
    match profile {
        Some(p) if p["secretId"].is_string() && p["secretKey"].is_string() => Ok(Credentials {
            id: p["secretId"].as_str().unwrap_or_default().to_string(),
            secret: p["secretKey"].as_str().unwrap_or_default().to_string(),
            token: p["token"].as_str().map(str::to_string),
        }),
        _ => role_credentials().ok_or(ApiError::NoCredentials {
            api: API,
            hint: "set TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY, run `tccli configure`, or bind a role to the CVM",
        }),
    }
}

#[derive(Debug, Clone)]
pub struct Client {
    pub credentials: Credentials,
    pub region: String,
    /// Instead of `https://{service}.tencentcloudapi.com`: every request to this base URL.
    pub endpoint: Option<String>,
    /// Unix seconds now (a test fixes it).
    pub clock: fn() -> u64,
    /// The longest one request may take.
    pub timeout: std::time::Duration,
    /// What the fetch may spend, requests and wall time included.
    pub budget: Budget,
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Client {
    /// One action's `Response`, retried with backoff while the API says it is throttled.
    pub fn call(
        &self,
        service: &str,
        version: &str,
        action: &str,
        body: &Value,
    ) -> Result<Value, ApiError> {
        let host = format!("{service}.tencentcloudapi.com");
        let url = self
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("https://{host}/"));
        let payload = body.to_string();
        with_backoff(API, action, &self.budget, || {
            let timestamp = (self.clock)();
            let authorization = sign::tc3_authorization(
                &self.credentials.id,
                &self.credentials.secret,
                service,
                &host,
                &payload,
                timestamp,
            );
            let mut headers = vec![
                ("Authorization", authorization),
                (
                    "Content-Type",
                    "application/json; charset=utf-8".to_string(),
                ),
                ("Host", host.clone()),
                ("X-TC-Action", action.to_string()),
                ("X-TC-Version", version.to_string()),
                ("X-TC-Timestamp", timestamp.to_string()),
                ("X-TC-Region", self.region.clone()),
            ];
            if let Some(token) = &self.credentials.token {
                headers.push(("X-TC-Token", token.clone()));
            }
            let transport = |message: String| ApiError::Transport {
                api: API,
                action: action.to_string(),
                message,
            };
            let request = http::Request {
                method: "POST",
                url: &url,
                headers: &headers,
                body: Some(&payload),
            };
            let (_, text) = self.budget.exchange(API, action, request, self.timeout)?;
            let reply: Value =
                serde_json::from_str(&text).map_err(|e| transport(format!("not JSON ({e})")))?;
            let response = reply["Response"].clone();
            let Some(error) = response.get("Error") else {
                return Ok(Try::Done(response));
            };
            let code = error["Code"].as_str().unwrap_or("").to_string();
            if code.starts_with("RequestLimitExceeded") {
                return Ok(Try::Busy);
            }
            Err(ApiError::Refused {
                api: API,
                action: action.to_string(),
                code,
                message: error["Message"].as_str().unwrap_or("").to_string(),
            })
        })
    }

    /// Every page of a list action: the items of `key`, in order.
    pub fn pages(
        &self,
        service: &str,
        version: &str,
        action: &str,
        key: &str,
    ) -> Result<Vec<Value>, ApiError> {
        paged(API, action, &self.budget, |offset| {
            let body = json!({"Offset": offset, "Limit": PAGE});
            let response = self.call(service, version, action, &body)?;
            let page = response[key].as_array().cloned().unwrap_or_default();
            Ok((page, response["TotalCount"].as_u64()))
        })
    }

    /// The account's groups with their policies, instances and templates.
    pub fn fetch(&self) -> Result<Inventory, ApiError> {
        let mut merged = Merged::default();
        let groups = self.pages(
            "vpc",
            "2017-03-12",
            "DescribeSecurityGroups",
            "SecurityGroupSet",
        )?;
        for group in &groups {
            let Some(id) = group["SecurityGroupId"].as_str() else {
                continue;
            };
            let response = self.call(
                "vpc",
                "2017-03-12",
                "DescribeSecurityGroupPolicies",
                &json!({"SecurityGroupId": id}),
            )?;
            // A group's rules count as items as its listing's entries do: an API that
            // answers each group with a million rules is bounded too.
            let policies = &response["SecurityGroupPolicySet"];
            let rules = ["Ingress", "Egress"]
                .iter()
                .map(|way| policies[way].as_array().map_or(0, Vec::len))
                .sum();
            self.budget
                .items(API, "DescribeSecurityGroupPolicies", rules)?;
            absorb(
                &mut merged,
                Format::Tencent,
                &format!("api:tencent DescribeSecurityGroupPolicies {id}"),
                &response.to_string(),
                Some(id),
            )?;
        }
        let instances = self.pages("cvm", "2017-03-12", "DescribeInstances", "InstanceSet")?;
        absorb(
            &mut merged,
            Format::Tencent,
            "api:tencent DescribeInstances",
            &json!({"InstanceSet": instances}).to_string(),
            None,
        )?;
        for (action, key) in [
            ("DescribeAddressTemplates", "AddressTemplateSet"),
            ("DescribeAddressTemplateGroups", "AddressTemplateGroupSet"),
            ("DescribeServiceTemplates", "ServiceTemplateSet"),
            ("DescribeServiceTemplateGroups", "ServiceTemplateGroupSet"),
        ] {
            let items = self.pages("vpc", "2017-03-12", action, key)?;
            if !items.is_empty() {
                absorb(
                    &mut merged,
                    Format::Tencent,
                    &format!("api:tencent {action}"),
                    &json!({key: items}).to_string(),
                    None,
                )?;
            }
        }
        Ok(merged.inventory)
    }
}
