use std::path::PathBuf;

use thiserror::Error;

/// A source that could not be read, naming the file and the place in it.
#[derive(Debug, Error)]
pub enum SourceError {
    #[error("{file}: cannot read: {error}")]
    Io {
        file: PathBuf,
        error: std::io::Error,
    },
    #[error("{file}: not text: save it as UTF-8 (UTF-16 with a byte-order mark is read too)")]
    NotText { file: PathBuf },
    #[error("{file}: not a regular file: a config or export is read only from a file")]
    NotAFile { file: PathBuf },
    #[error("{file}: {size} bytes, more than the {cap} a config or export may have")]
    TooLarge { file: PathBuf, size: u64, cap: u64 },
    /// A syntax error, or a field of a TOML file: `file:line:column`.
    #[error("{file}:{line}:{column}: {message}")]
    At {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// An API source whose fetch failed, with the client's error as it gave it.
    #[error("source {source_name:?}: {file}: {error}")]
    Api {
        file: PathBuf,
        source_name: String,
        error: Box<crate::cloudapi::ApiError>,
    },
    /// A command source that failed to give an export.
    #[error("source {source_name:?}: {file}: {message}")]
    Command {
        file: PathBuf,
        source_name: String,
        message: String,
    },
    /// Two exports of one group hold different rules at the same position.
    #[error(
        "{second}: security group {group:?}, {direction} rule {position}, differs from the one in {first}: two exports of one group disagree (is one page stale?)"
    )]
    Conflict {
        group: String,
        direction: crate::model::Direction,
        position: String,
        first: PathBuf,
        second: PathBuf,
    },
    /// An instance named by a name several instances bear.
    #[error("{file}: instance {ambiguous}")]
    AmbiguousInstance {
        file: PathBuf,
        ambiguous: crate::model::AmbiguousName,
    },
    /// A rule or group that did not read, where the rest of the export did.
    #[error(
        "{file}: {field}: {reason} (in group {group:?}; the rest of the export reads: --keep-going loads it, and the flows that depend on this part are unknown)"
    )]
    Unreadable {
        file: PathBuf,
        group: String,
        field: String,
        reason: String,
    },
    /// A field of a JSON export: `file: $.JSON.path`.
    #[error("{file}: {path}: {message}")]
    Field {
        file: PathBuf,
        path: String,
        message: String,
    },
}

impl SourceError {
    /// What kind of failure it is, in a word that stays the same whatever the message: the
    /// `reason` label of `sgprobe_source_failure` (README, "Sources").
    pub fn reason(&self) -> &'static str {
        match self {
            SourceError::Io { .. } => "io",
            SourceError::NotText { .. } => "not-text",
            SourceError::NotAFile { .. } => "not-a-file",
            SourceError::TooLarge { .. } => "too-large",
            SourceError::At { .. } | SourceError::Field { .. } | SourceError::Unreadable { .. } => {
                "malformed"
            }
            SourceError::Conflict { .. } => "conflict",
            SourceError::AmbiguousInstance { .. } => "ambiguous-instance",
            SourceError::Command { .. } => "command",
            SourceError::Api { error, .. } => error.reason(),
        }
    }

    /// The file the error is about.
    pub fn file(&self) -> &std::path::Path {
        match self {
            SourceError::Io { file, .. }
            | SourceError::NotText { file }
            | SourceError::NotAFile { file }
            | SourceError::TooLarge { file, .. }
            | SourceError::At { file, .. }
            | SourceError::Field { file, .. }
            | SourceError::Unreadable { file, .. }
            | SourceError::AmbiguousInstance { file, .. }
            | SourceError::Command { file, .. }
            | SourceError::Api { file, .. } => file,
            SourceError::Conflict { second, .. } => second,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloudapi::ApiError;

    fn api(error: ApiError) -> SourceError {
        SourceError::Api {
            file: "api:aws/eu-west-1".into(),
            source_name: "ec2".into(),
            error: Box::new(error),
        }
    }

    #[test]
    fn every_failure_has_a_reason_the_metric_help_names() {
        let file = PathBuf::from("sg.json");
        let action = || "DescribeSecurityGroups".to_string();
        let failures = [
            (
                SourceError::Io {
                    file: file.clone(),
                    error: std::io::ErrorKind::NotFound.into(),
                },
                "io",
            ),
            (SourceError::NotText { file: file.clone() }, "not-text"),
            (
                SourceError::At {
                    file: file.clone(),
                    line: 3,
                    column: 1,
                    message: "expected a value".into(),
                },
                "malformed",
            ),
            (
                SourceError::Command {
                    file: file.clone(),
                    source_name: "aws".into(),
                    message: "exit status 255".into(),
                },
                "command",
            ),
            (
                api(ApiError::NoCredentials {
                    api: "aws",
                    hint: "set AWS_ACCESS_KEY_ID",
                }),
                "no-credentials",
            ),
            (
                api(ApiError::Refused {
                    api: "aws",
                    action: action(),
                    code: "UnauthorizedOperation".into(),
                    message: "no".into(),
                }),
                "refused",
            ),
            (
                api(ApiError::Throttled {
                    api: "aws",
                    action: action(),
                    attempts: 5,
                }),
                "throttled",
            ),
            (
                api(ApiError::Bound {
                    api: "aws",
                    action: action(),
                    what: "past its 30 s timeout".into(),
                }),
                "timeout",
            ),
            // An API's answer that does not read is malformed like a file's.
            (
                api(ApiError::Source(SourceError::Field {
                    file: file.clone(),
                    path: "$.SecurityGroups".into(),
                    message: "not an array".into(),
                })),
                "malformed",
            ),
        ];
        let help = crate::daemon::metrics::SOURCE_FAILURE_HELP;
        for (error, reason) in failures {
            assert_eq!(error.reason(), reason, "{error}");
            assert!(help.contains(reason), "{reason} is not in the help: {help}");
        }
    }
}
