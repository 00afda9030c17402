use std::path::PathBuf;

use thiserror::Error;

/// A source that could not be read, naming the file and the place in it.
#[derive(Debug, Error)]
pub enum SourceError {
    #[error("{file}: cannot read: {source}")]
    Io {
        file: PathBuf,
        source: std::io::Error,
    },
    /// A syntax error, or a field of a TOML file: `file:line:column`.
    #[error("{file}:{line}:{column}: {message}")]
    At {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// A field of a JSON export: `file: $.JSON.path`.
    #[error("{file}: {path}: {message}")]
    Field {
        file: PathBuf,
        path: String,
        message: String,
    },
}

/// Line and column (1-based) of a byte offset.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}
