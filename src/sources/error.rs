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
