//! Liberal reading of cloud JSON exports: absent, `null` and `""` mean unset, numbers and
//! numeric strings are interchangeable, unknown keys are ignored. Every error names the JSON
//! path and what was expected.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::SourceError;

/// A parsed export.
#[derive(Debug)]
pub struct Doc {
    file: PathBuf,
    value: Value,
}

impl Doc {
    pub fn parse(file: &Path, text: &str) -> Result<Doc, SourceError> {
        let value = serde_json::from_str(text).map_err(|e| SourceError::At {
            file: file.to_path_buf(),
            line: e.line(),
            column: e.column(),
            message: format!("not valid JSON: {e}"),
        })?;
        Ok(Doc {
            file: file.to_path_buf(),
            value,
        })
    }

    /// The document's payload: the raw API response's `Response` (Tencent) unwrapped.
    pub fn root(&self) -> Node<'_> {
        let root = Node::new(&self.file, "$".to_string(), Some(&self.value));
        if root.has("Response") {
            root.get("Response")
        } else {
            root
        }
    }
}

/// A place in a JSON document (possibly absent) and its path, for errors.
#[derive(Debug, Clone)]
pub struct Node<'a> {
    file: &'a Path,
    path: String,
    value: Option<&'a Value>,
}

impl<'a> Node<'a> {
    fn new(file: &'a Path, path: String, value: Option<&'a Value>) -> Self {
        Node { file, path, value }
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn file(&self) -> &'a Path {
        self.file
    }

    pub fn has(&self, key: &str) -> bool {
        !self.get(key).is_unset()
    }

    pub fn get(&self, key: &str) -> Node<'a> {
        Node::new(
            self.file,
            format!("{}.{key}", self.path),
            self.value
                .and_then(|v| v.as_object())
                .and_then(|o| o.get(key)),
        )
    }

    pub fn is_unset(&self) -> bool {
        match self.value {
            None | Some(Value::Null) => true,
            Some(Value::String(s)) => s.trim().is_empty(),
            _ => false,
        }
    }

    pub fn error(&self, expected: &str) -> SourceError {
        let found = match self.value {
            None => "nothing".to_string(),
            Some(Value::Null) => "null".to_string(),
            Some(Value::Bool(b)) => format!("{b}"),
            Some(Value::Number(n)) => format!("{n}"),
            Some(Value::String(s)) => format!("{s:?}"),
            Some(Value::Array(_)) => "an array".to_string(),
            Some(Value::Object(_)) => "an object".to_string(),
        };
        SourceError::Field {
            file: self.file.to_path_buf(),
            path: self.path.clone(),
            message: format!("expected {expected}, found {found}"),
        }
    }

    /// A string (or number, or boolean, as text); `None` when unset.
    pub fn text(&self) -> Result<Option<String>, SourceError> {
        if self.is_unset() {
            return Ok(None);
        }
        match self.value {
            Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            _ => Err(self.error("a string")),
        }
    }

    pub fn required_text(&self) -> Result<String, SourceError> {
        self.text()?.ok_or_else(|| self.error("a string"))
    }

    /// An integer (or numeric string); `None` when unset.
    pub fn int(&self) -> Result<Option<i64>, SourceError> {
        match self.text()? {
            None => Ok(None),
            Some(text) => text.parse().map(Some).map_err(|_| self.error("an integer")),
        }
    }

    /// Text read with `parse`; `expected` says what a good value looks like.
    pub fn parsed<T>(
        &self,
        expected: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Option<T>, SourceError> {
        match self.text()? {
            None => Ok(None),
            Some(text) => parse(&text).map(Some).ok_or_else(|| self.error(expected)),
        }
    }

    pub fn required<T>(
        &self,
        expected: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<T, SourceError> {
        self.parsed(expected, parse)?
            .ok_or_else(|| self.error(expected))
    }

    /// An IP address; `None` when unset.
    pub fn address(&self) -> Result<Option<std::net::IpAddr>, SourceError> {
        self.parsed("an IP address", |t| t.parse().ok())
    }

    /// The items of an array (empty when unset).
    pub fn items(&self) -> Result<Vec<Node<'a>>, SourceError> {
        if self.is_unset() {
            return Ok(Vec::new());
        }
        match self.value {
            Some(Value::Array(items)) => Ok(items
                .iter()
                .enumerate()
                .map(|(i, v)| Node::new(self.file, format!("{}[{i}]", self.path), Some(v)))
                .collect()),
            _ => Err(self.error("an array")),
        }
    }

    /// The strings of an array of strings.
    pub fn texts(&self) -> Result<Vec<String>, SourceError> {
        let mut out = Vec::new();
        for item in self.items()? {
            out.extend(item.text()?);
        }
        Ok(out)
    }

    /// `file: $.path`, for naming where something was defined.
    pub fn place(&self) -> String {
        format!("{}: {}", self.file.display(), self.path)
    }
}
