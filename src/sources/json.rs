//! Liberal reading of cloud JSON exports: absent, `null` and `""` mean unset, numbers and
//! numeric strings are interchangeable, unknown keys are ignored. Every error names the JSON
//! path and what was expected.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use serde_json::value::RawValue;

use super::SourceError;

/// A parsed export. The text is checked whole once, but read lazily: objects from the top
/// down, and each array's elements only when it is iterated. `elements` parses one element at
/// a time and drops it after use, so a 50 MB export never becomes a tree of a few hundred MB;
/// `items` parses an array's elements once, for readers that need them side by side.
#[derive(Debug)]
pub struct Doc<'t> {
    file: PathBuf,
    root: Lazy<'t>,
}

#[derive(Debug)]
enum Lazy<'t> {
    Object(BTreeMap<String, Lazy<'t>>),
    Array {
        raw: Vec<&'t RawValue>,
        parsed: OnceCell<Vec<Value>>,
    },
    Value(Value),
}

impl<'t> Lazy<'t> {
    /// `raw` is valid JSON (the whole text was checked): objects are opened, arrays kept raw.
    fn read(raw: &'t RawValue) -> serde_json::Result<Lazy<'t>> {
        Ok(match raw.get().trim_start().as_bytes().first() {
            Some(b'{') => {
                let fields: BTreeMap<String, &'t RawValue> = serde_json::from_str(raw.get())?;
                let mut object = BTreeMap::new();
                for (key, value) in fields {
                    object.insert(key, Lazy::read(value)?);
                }
                Lazy::Object(object)
            }
            Some(b'[') => Lazy::Array {
                raw: serde_json::from_str(raw.get())?,
                parsed: OnceCell::new(),
            },
            _ => Lazy::Value(serde_json::from_str(raw.get())?),
        })
    }

    fn slot(&self) -> Slot<'_> {
        match self {
            Lazy::Object(object) => Slot::Object(object),
            Lazy::Array { raw, parsed } => Slot::Array(raw, parsed),
            Lazy::Value(value) => Slot::Value(value),
        }
    }
}

/// An element of a raw array, parsed; the text was checked whole, so it parses.
fn element(raw: &RawValue) -> Value {
    serde_json::from_str(raw.get()).unwrap_or(Value::Null)
}

impl<'t> Doc<'t> {
    pub fn parse(file: &Path, text: &'t str) -> Result<Doc<'t>, SourceError> {
        let invalid = |e: serde_json::Error| SourceError::At {
            file: file.to_path_buf(),
            line: e.line(),
            column: e.column(),
            message: format!("not valid JSON: {e}"),
        };
        let raw: &RawValue = serde_json::from_str(text).map_err(invalid)?;
        Ok(Doc {
            file: file.to_path_buf(),
            root: Lazy::read(raw).map_err(invalid)?,
        })
    }

    /// The document's payload: the raw API response's `Response` (Tencent) unwrapped.
    pub fn root(&self) -> Node<'_> {
        let root = Node::new(&self.file, "$".to_string(), Some(self.root.slot()));
        if root.has("Response") {
            root.get("Response")
        } else {
            root
        }
    }
}

/// What a node points at: a parsed value, or a part of the document not parsed yet.
#[derive(Debug, Clone, Copy)]
enum Slot<'a> {
    Value(&'a Value),
    Object(&'a BTreeMap<String, Lazy<'a>>),
    Array(&'a [&'a RawValue], &'a OnceCell<Vec<Value>>),
}

/// A place in a JSON document (possibly absent) and its path, for errors.
#[derive(Debug, Clone)]
pub struct Node<'a> {
    file: &'a Path,
    path: String,
    value: Option<Slot<'a>>,
}

/// One element of an array, parsed for as long as it is used (or borrowed, if its array was
/// parsed already).
#[derive(Debug)]
pub struct Element<'a> {
    file: &'a Path,
    path: String,
    value: Cow<'a, Value>,
}

impl Element<'_> {
    pub fn node(&self) -> Node<'_> {
        Node::new(self.file, self.path.clone(), Some(Slot::Value(&self.value)))
    }
}

impl<'a> Node<'a> {
    fn new(file: &'a Path, path: String, value: Option<Slot<'a>>) -> Self {
        Node { file, path, value }
    }

    fn value(&self) -> Option<&'a Value> {
        match self.value {
            Some(Slot::Value(value)) => Some(value),
            _ => None,
        }
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
        let child = match self.value {
            Some(Slot::Value(value)) => value.as_object().and_then(|o| o.get(key)).map(Slot::Value),
            Some(Slot::Object(object)) => object.get(key).map(Lazy::slot),
            _ => None,
        };
        Node::new(self.file, format!("{}.{key}", self.path), child)
    }

    pub fn is_unset(&self) -> bool {
        match self.value {
            None | Some(Slot::Value(Value::Null)) => true,
            Some(Slot::Value(Value::String(s))) => s.trim().is_empty(),
            _ => false,
        }
    }

    pub fn error(&self, expected: &str) -> SourceError {
        let found = match self.value {
            Some(Slot::Object(_)) => "an object".to_string(),
            Some(Slot::Array(..)) => "an array".to_string(),
            _ => match self.value() {
                None => "nothing".to_string(),
                Some(Value::Null) => "null".to_string(),
                Some(Value::Bool(b)) => format!("{b}"),
                Some(Value::Number(n)) => format!("{n}"),
                Some(Value::String(s)) => format!("{s:?}"),
                Some(Value::Array(_)) => "an array".to_string(),
                Some(Value::Object(_)) => "an object".to_string(),
            },
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
        match self.value() {
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

    /// The items of an array (empty when unset), side by side.
    pub fn items(&self) -> Result<Vec<Node<'a>>, SourceError> {
        if self.is_unset() {
            return Ok(Vec::new());
        }
        let values: &'a [Value] = match self.value {
            Some(Slot::Value(Value::Array(items))) => items,
            Some(Slot::Array(raw, parsed)) => {
                parsed.get_or_init(|| raw.iter().map(|r| element(r)).collect())
            }
            _ => return Err(self.error("an array")),
        };
        Ok(values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                Node::new(
                    self.file,
                    format!("{}[{i}]", self.path),
                    Some(Slot::Value(v)),
                )
            })
            .collect())
    }

    /// The elements of an array (none when unset), one at a time: an array not parsed yet
    /// is parsed element by element, each dropped once the next is asked for.
    pub fn elements(&self) -> Result<Box<dyn Iterator<Item = Element<'a>> + 'a>, SourceError> {
        if self.is_unset() {
            return Ok(Box::new(std::iter::empty()));
        }
        let (file, path) = (self.file, self.path.clone());
        let at = move |i: usize| format!("{path}[{i}]");
        match self.value {
            Some(Slot::Value(Value::Array(items))) => {
                Ok(Box::new(items.iter().enumerate().map(move |(i, v)| {
                    Element {
                        file,
                        path: at(i),
                        value: Cow::Borrowed(v),
                    }
                })))
            }
            Some(Slot::Array(raw, _)) => Ok(Box::new(raw.iter().enumerate().map(move |(i, r)| {
                Element {
                    file,
                    path: at(i),
                    value: Cow::Owned(element(r)),
                }
            }))),
            _ => Err(self.error("an array")),
        }
    }

    pub fn is_array(&self) -> bool {
        matches!(
            self.value,
            Some(Slot::Array(..)) | Some(Slot::Value(Value::Array(_)))
        )
    }

    /// The strings of an array of strings.
    pub fn texts(&self) -> Result<Vec<String>, SourceError> {
        let mut out = Vec::new();
        for item in self.items()? {
            out.extend(item.text()?);
        }
        Ok(out)
    }

    /// An array of key/value objects (the clouds' tags) as pairs, in order: an item
    /// without a key is skipped, one without a value gets an empty one.
    pub fn pairs(&self, key: &str, value: &str) -> Result<Vec<(String, String)>, SourceError> {
        let mut out = Vec::new();
        for item in self.items()? {
            if let Some(k) = item.get(key).text()? {
                out.push((k, item.get(value).text()?.unwrap_or_default()));
            }
        }
        Ok(out)
    }

    /// `file: $.path`, for naming where something was defined.
    pub fn place(&self) -> String {
        format!("{}: {}", self.file.display(), self.path)
    }
}
