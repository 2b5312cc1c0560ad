//! helm's output read the way the Kubernetes API server reads a manifest.
//!
//! helm, kubectl and the API server turn YAML into JSON with `sigs.k8s.io/yaml`, which is
//! go-yaml v2 underneath: YAML 1.1 scalar resolution, then a conversion to JSON. A YAML 1.2
//! reader (serde_yaml) disagrees with it on unquoted scalars: `0644` is the octal integer 420
//! there, `0x1A` is 26, `1_000` is 1000, and `yes`/`no`/`on`/`off`/`y`/`n` are booleans — so
//! an unquoted `yes` where Kubernetes wants a string is refused by the API server, while a
//! YAML 1.2 reader silently keeps the string. This module reproduces go-yaml v2's
//! `resolve()` for plain scalars and explicit core tags, and sigs.k8s.io/yaml's JSON
//! conversion (map keys become strings, NaN and infinities cannot be carried). Quoted and
//! block scalars are always strings, as in go-yaml.
//!
//! Deliberate differences, each on the strict side: a key repeated in one mapping is refused
//! (strict field validation, kubectl's default, refuses duplicate fields too), and a mapping
//! or null used as a key is refused (sigs.k8s.io/yaml cannot make a JSON key of it either).

use std::collections::{HashMap, HashSet};

use granit_parser::{Event, Parser, ScalarStyle, Span, Tag};
use serde_json::{Map, Number, Value};

/// Why a YAML stream cannot become the JSON documents the API server would see.
#[derive(Debug, thiserror::Error)]
pub enum Yaml11Error {
    #[error("not YAML: {0}")]
    Syntax(#[from] granit_parser::ScanError),
    #[error(
        "line {line}: `{text}` cannot be read as {wanted}: it is {found} to the API server's YAML reader"
    )]
    Tag {
        line: usize,
        text: String,
        wanted: String,
        found: &'static str,
    },
    #[error(
        "line {line}: `{text}` is not a finite number, and JSON (so the API server) cannot carry it"
    )]
    NonFinite { line: usize, text: String },
    #[error(
        "line {line}: key `{key}` appears twice in one mapping (the API server refuses duplicate fields)"
    )]
    DuplicateKey { line: usize, key: String },
    #[error(
        "line {line}: a {found} cannot be a mapping key: JSON object keys are strings, numbers or booleans"
    )]
    Key { line: usize, found: &'static str },
    #[error("line {line}: `<<` merges a mapping or a list of mappings, not a {found}")]
    Merge { line: usize, found: &'static str },
    #[error("line {line}: alias to an anchor this document does not define")]
    Alias { line: usize },
}

/// A plain scalar that YAML 1.1 reads differently from YAML 1.2, kept so a schema error at
/// that place can say why the value is not the string it looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    /// Where it sits, in serde_path_to_error's notation (`spec.containers[0].env[1].value`).
    pub path: String,
    /// As written.
    pub text: String,
    /// What it became: `a boolean`, `an integer`, ...
    pub became: &'static str,
}

/// One document as JSON, with the YAML 1.1 readings found in it.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub value: Value,
    pub readings: Vec<Reading>,
}

/// Every document of `stream` (empty ones as `null`), converted as sigs.k8s.io/yaml would.
pub fn documents(stream: &str) -> Result<Vec<Document>, Yaml11Error> {
    let mut b = Builder::default();
    for next in Parser::new_from_str(stream) {
        let (event, span) = next?;
        b.event(event, span)?;
    }
    Ok(b.docs)
}

/// What a scalar resolves to.
enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Str(String),
    /// The YAML 1.1 merge key `<<`.
    Merge,
}

impl Scalar {
    fn kind(&self) -> &'static str {
        match self {
            Scalar::Null => "null",
            Scalar::Bool(_) => "a boolean",
            Scalar::Int(_) | Scalar::Uint(_) => "an integer",
            Scalar::Float(_) => "a float",
            Scalar::Str(_) => "a string",
            Scalar::Merge => "the merge key",
        }
    }
}

/// go-yaml v2's `resolve_map`: the exact spellings it looks up (not every case mix).
fn lookup(text: &str) -> Option<Scalar> {
    Some(match text {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            Scalar::Bool(true)
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            Scalar::Bool(false)
        }
        "" | "~" | "null" | "Null" | "NULL" => Scalar::Null,
        ".nan" | ".NaN" | ".NAN" => Scalar::Float(f64::NAN),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => Scalar::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => Scalar::Float(f64::NEG_INFINITY),
        "<<" => Scalar::Merge,
        _ => return None,
    })
}

/// go-yaml v2's `resolve()` for an untagged plain scalar.
fn resolve_plain(text: &str) -> Scalar {
    // The first byte hints at what the scalar may be; anything else is a string at once.
    let hint = match text.as_bytes().first() {
        None => b'N',
        Some(b'+' | b'-') => b'S',
        Some(b'0'..=b'9') => b'D',
        Some(b'y' | b'Y' | b'n' | b'N' | b't' | b'T' | b'f' | b'F' | b'o' | b'O' | b'~') => b'M',
        Some(b'.') => b'.',
        Some(b'<') => b'<',
        Some(_) => return Scalar::Str(text.to_string()),
    };
    if let Some(s) = lookup(text) {
        return s;
    }
    match hint {
        b'.' => match text.parse::<f64>() {
            Ok(f) if f.is_finite() => Scalar::Float(f),
            _ => Scalar::Str(text.to_string()),
        },
        b'D' | b'S' => {
            // Timestamps would be tried first, but go-yaml hands them to an `interface{}`
            // as the original string, which is what falling through gives too.
            let plain: String = text.chars().filter(|c| *c != '_').collect();
            if let Some(i) = go_parse_int(&plain) {
                Scalar::Int(i)
            } else if let Some(u) = go_parse_uint(&plain) {
                Scalar::Uint(u)
            } else if yaml_style_float(&plain) {
                // Go's ParseFloat reports overflow as an error: such a scalar stays a string.
                match plain.parse::<f64>() {
                    Ok(f) if f.is_finite() => Scalar::Float(f),
                    _ => Scalar::Str(text.to_string()),
                }
            } else {
                Scalar::Str(text.to_string())
            }
        }
        _ => Scalar::Str(text.to_string()),
    }
}

/// Go's `strconv.ParseUint(s, 0, 64)`: `0x`/`0o`/`0b` prefixes, a leading `0` meaning octal.
fn go_parse_uint(s: &str) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let bytes = s.as_bytes();
    let (radix, digits) = if bytes[0] == b'0' {
        match bytes.get(1).map(u8::to_ascii_lowercase) {
            Some(b'b') if s.len() >= 3 => (2, &s[2..]),
            Some(b'o') if s.len() >= 3 => (8, &s[2..]),
            Some(b'x') if s.len() >= 3 => (16, &s[2..]),
            _ => (8, &s[1..]),
        }
    } else {
        (10, s)
    };
    if digits.is_empty() {
        // Only "0" gets here with nothing left, and Go reads it as 0.
        return Some(0);
    }
    // from_str_radix would accept a sign here; Go does not after the prefix.
    if !digits.bytes().all(|b| (b as char).is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// Go's `strconv.ParseInt(s, 0, 64)`: an optional sign, then `ParseUint`'s syntax.
fn go_parse_int(s: &str) -> Option<i64> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    let u = go_parse_uint(body)?;
    if neg {
        if u <= 1u64 << 63 {
            Some((u as i64).wrapping_neg())
        } else {
            None
        }
    } else {
        i64::try_from(u).ok()
    }
}

/// go-yaml v2's `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn yaml_style_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            digits(&mut i);
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// go-yaml v2's `resolve(tag, text)` for a scalar with an explicit tag: core tags must fit
/// what the text resolves to; any other tag leaves the text a string.
fn resolve_tagged(tag: &Tag, text: &str, line: usize) -> Result<Scalar, Yaml11Error> {
    let name = tag.suffix_in_namespace("tag:yaml.org,2002:");
    let wanted = match name.as_deref() {
        Some(n @ ("null" | "bool" | "int" | "float")) => n.to_string(),
        Some("binary") => {
            use base64::Engine;
            let clean: String = text.split_whitespace().collect();
            return match base64::engine::general_purpose::STANDARD.decode(clean) {
                Ok(bytes) => Ok(Scalar::Str(String::from_utf8_lossy(&bytes).into_owned())),
                Err(_) => Err(Yaml11Error::Tag {
                    line,
                    text: text.to_string(),
                    wanted: "!!binary".into(),
                    found: "not base64",
                }),
            };
        }
        Some("merge") => return Ok(Scalar::Merge),
        // `!!str`, `!!timestamp` (kept as text for an interface{}), custom and non-specific tags.
        _ => return Ok(Scalar::Str(text.to_string())),
    };
    let got = resolve_plain(text);
    let fits = matches!(
        (wanted.as_str(), &got),
        ("null", Scalar::Null)
            | ("bool", Scalar::Bool(_))
            | ("int", Scalar::Int(_) | Scalar::Uint(_))
            | ("float", Scalar::Float(_))
    );
    match (wanted.as_str(), got) {
        (_, got) if fits => Ok(got),
        ("float", Scalar::Int(i)) => Ok(Scalar::Float(i as f64)),
        ("float", Scalar::Uint(u)) => Ok(Scalar::Float(u as f64)),
        (_, got) => Err(Yaml11Error::Tag {
            line,
            text: text.to_string(),
            wanted: format!("!!{wanted}"),
            found: got.kind(),
        }),
    }
}

/// A JSON number the way Go's encoding/json writes a float64: whole numbers without a
/// fraction, so `1e3` reaches an integer field as 1000.
fn float_number(f: f64, text: &str, line: usize) -> Result<Value, Yaml11Error> {
    if !f.is_finite() {
        return Err(Yaml11Error::NonFinite {
            line,
            text: text.to_string(),
        });
    }
    if f.fract() == 0.0 && f.abs() < 9.2e18 {
        return Ok(Value::from(f as i64));
    }
    Ok(Number::from_f64(f).map_or(Value::Null, Value::Number))
}

enum Frame {
    Seq {
        items: Vec<Value>,
        anchor: usize,
    },
    Map {
        map: Map<String, Value>,
        key: Option<Key>,
        explicit: HashSet<String>,
        anchor: usize,
    },
}

enum Key {
    Name(String),
    Merge,
}

#[derive(Default)]
struct Builder {
    docs: Vec<Document>,
    frames: Vec<Frame>,
    root: Option<Value>,
    anchors: HashMap<usize, Value>,
    readings: Vec<Reading>,
}

impl Builder {
    fn event(&mut self, event: Event<'_>, span: Span) -> Result<(), Yaml11Error> {
        let line = span.start.line();
        match event {
            Event::DocumentStart(..) => {
                self.anchors.clear();
                self.root = None;
                self.readings.clear();
            }
            Event::DocumentEnd => {
                let value = self.root.take().unwrap_or(Value::Null);
                self.docs.push(Document {
                    value,
                    readings: std::mem::take(&mut self.readings),
                });
            }
            Event::Scalar(text, style, anchor, tag) => {
                let scalar = match (&tag, style) {
                    (Some(tag), _) => resolve_tagged(tag, &text, line)?,
                    (None, ScalarStyle::Plain) => resolve_plain(&text),
                    (None, _) => Scalar::Str(text.to_string()),
                };
                let value = match scalar {
                    Scalar::Merge if self.awaiting_key() => {
                        self.set_key(Key::Merge);
                        return Ok(());
                    }
                    Scalar::Merge => Value::String(text.to_string()),
                    Scalar::Null => Value::Null,
                    Scalar::Bool(b) => Value::Bool(b),
                    Scalar::Int(i) => Value::from(i),
                    Scalar::Uint(u) => Value::from(u),
                    Scalar::Float(f) => float_number(f, &text, line)?,
                    Scalar::Str(s) => Value::String(s),
                };
                if tag.is_none() && style == ScalarStyle::Plain && !self.awaiting_key() {
                    self.note_reading(&text, &value);
                }
                self.node(value, anchor, line)?;
            }
            Event::SequenceStart(_, anchor, _) => self.frames.push(Frame::Seq {
                items: Vec::new(),
                anchor,
            }),
            Event::MappingStart(_, anchor, _) => self.frames.push(Frame::Map {
                map: Map::new(),
                key: None,
                explicit: HashSet::new(),
                anchor,
            }),
            Event::SequenceEnd => {
                if let Some(Frame::Seq { items, anchor }) = self.frames.pop() {
                    self.node(Value::Array(items), anchor, line)?;
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map { map, anchor, .. }) = self.frames.pop() {
                    self.node(Value::Object(map), anchor, line)?;
                }
            }
            Event::Alias(id) => {
                let value = self
                    .anchors
                    .get(&id)
                    .cloned()
                    .ok_or(Yaml11Error::Alias { line })?;
                self.node(value, 0, line)?;
            }
            // Stream bounds, comments and anchor metadata carry no data.
            #[allow(unreachable_patterns)]
            _ => {}
        }
        Ok(())
    }

    fn awaiting_key(&self) -> bool {
        matches!(self.frames.last(), Some(Frame::Map { key: None, .. }))
    }

    fn set_key(&mut self, k: Key) {
        if let Some(Frame::Map { key, .. }) = self.frames.last_mut() {
            *key = Some(k);
        }
    }

    /// Where the next value lands, in serde_path_to_error's notation.
    fn path(&self) -> String {
        let mut out = String::new();
        for f in &self.frames {
            match f {
                Frame::Seq { items, .. } => out.push_str(&format!("[{}]", items.len())),
                Frame::Map {
                    key: Some(Key::Name(k)),
                    ..
                } => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                Frame::Map { .. } => {}
            }
        }
        out
    }

    /// Remembers a plain scalar whose YAML 1.1 reading differs from the text it looks like.
    fn note_reading(&mut self, text: &str, value: &Value) {
        let became = match value {
            Value::Bool(_) if !matches!(text.to_ascii_lowercase().as_str(), "true" | "false") => {
                "a boolean"
            }
            Value::Number(n) if n.is_i64() || n.is_u64() => {
                let digits = text.strip_prefix('-').unwrap_or(text);
                let plain_decimal = digits.bytes().all(|b| b.is_ascii_digit())
                    && (digits == "0" || !digits.starts_with('0'));
                if plain_decimal {
                    return;
                }
                "an integer"
            }
            _ => return,
        };
        let path = self.path();
        self.readings.push(Reading {
            path,
            text: text.to_string(),
            became,
        });
    }

    /// A finished node: recorded under its anchor, then placed in its parent.
    fn node(&mut self, value: Value, anchor: usize, line: usize) -> Result<(), Yaml11Error> {
        if anchor != 0 {
            self.anchors.insert(anchor, value.clone());
        }
        match self.frames.last_mut() {
            None => self.root = Some(value),
            Some(Frame::Seq { items, .. }) => items.push(value),
            Some(Frame::Map {
                map, key, explicit, ..
            }) => match key.take() {
                None => *key = Some(Key::Name(key_string(value, line)?)),
                Some(Key::Name(k)) => {
                    if !explicit.insert(k.clone()) {
                        return Err(Yaml11Error::DuplicateKey { line, key: k });
                    }
                    map.insert(k, value);
                }
                Some(Key::Merge) => merge(map, value, line)?,
            },
        }
        Ok(())
    }
}

/// sigs.k8s.io/yaml's map keys: strings as they are, booleans and numbers as their text.
fn key_string(key: Value, line: usize) -> Result<String, Yaml11Error> {
    match key {
        Value::String(s) => Ok(s),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Null => Err(Yaml11Error::Key {
            line,
            found: "null",
        }),
        Value::Array(_) => Err(Yaml11Error::Key {
            line,
            found: "sequence",
        }),
        Value::Object(_) => Err(Yaml11Error::Key {
            line,
            found: "mapping",
        }),
    }
}

/// go-yaml v2's merge: the merged mapping's keys are set in place (a later explicit key
/// overrides them); of a list of mappings, the earlier ones win.
fn merge(into: &mut Map<String, Value>, value: Value, line: usize) -> Result<(), Yaml11Error> {
    let sources = match value {
        Value::Object(m) => vec![m],
        Value::Array(items) => items
            .into_iter()
            .rev()
            .map(|i| match i {
                Value::Object(m) => Ok(m),
                other => Err(Yaml11Error::Merge {
                    line,
                    found: json_kind(&other),
                }),
            })
            .collect::<Result<_, _>>()?,
        other => {
            return Err(Yaml11Error::Merge {
                line,
                found: json_kind(&other),
            });
        }
    };
    for m in sources {
        into.extend(m);
    }
    Ok(())
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "sequence",
        Value::Object(_) => "mapping",
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;
    use serde_json::json;

    use super::*;

    fn one(yaml: &str) -> Value {
        let docs = documents(yaml).unwrap_or_else(|e| panic!("{yaml:?}: {e}"));
        assert_eq!(docs.len(), 1, "{yaml:?}");
        docs.into_iter().next().expect("one document").value
    }

    #[rstest]
    #[case::octal_with_leading_zero("0644", json!(420))]
    #[case::octal_with_0o("0o17", json!(15))]
    #[case::hex("0x1A", json!(26))]
    #[case::negative_hex("-0x1A", json!(-26))]
    #[case::binary("0b101", json!(5))]
    #[case::underscores("1_000", json!(1000))]
    #[case::plus_sign("+12", json!(12))]
    #[case::zero("0", json!(0))]
    #[case::beyond_i64_is_unsigned("18446744073709551615", json!(18446744073709551615u64))]
    #[case::leading_zero_with_8_is_a_float("08", json!(8))]
    #[case::exponent_float_is_whole("1e3", json!(1000))]
    #[case::fraction("1.5", json!(1.5))]
    #[case::leading_dot(".5", json!(0.5))]
    #[case::yes("yes", json!(true))]
    #[case::title_case_no("No", json!(false))]
    #[case::upper_on("ON", json!(true))]
    #[case::off("off", json!(false))]
    #[case::single_y("y", json!(true))]
    #[case::single_upper_n("N", json!(false))]
    #[case::true_("true", json!(true))]
    #[case::tilde_null("~", json!(null))]
    #[case::mixed_case_is_a_string("yEs", json!("yEs"))]
    #[case::bad_octal_digit_is_a_string("0x1G", json!("0x1G"))]
    #[case::sign_then_word_is_a_string("-x", json!("-x"))]
    #[case::version_is_a_string("1.5.0", json!("1.5.0"))]
    #[case::date_stays_a_string("2024-01-02", json!("2024-01-02"))]
    #[case::overflowing_float_stays_a_string("1e999", json!("1e999"))]
    #[case::word("chroma", json!("chroma"))]
    fn plain_scalars_resolve_as_go_yaml_v2(#[case] text: &str, #[case] want: Value) {
        assert_eq!(one(&format!("v: {text}\n"))["v"], want, "{text}");
    }

    #[rstest]
    #[case::single_quoted_octal("'0644'")]
    #[case::double_quoted_yes("\"yes\"")]
    #[case::literal_block_on("|-\n  on")]
    #[case::str_tag_on_octal("!!str 0644")]
    #[case::non_specific_tag("! yes")]
    fn quoted_block_and_str_tagged_scalars_stay_strings(#[case] text: &str) {
        assert!(one(&format!("v: {text}\n"))["v"].is_string(), "{text}");
    }

    #[rstest]
    #[case::int_tag_on_quoted("!!int \"0644\"", json!(420))]
    #[case::bool_tag_on_quoted("!!bool 'yes'", json!(true))]
    #[case::float_tag_on_int("!!float 3", json!(3))]
    fn core_tags_resolve_the_text(#[case] text: &str, #[case] want: Value) {
        assert_eq!(one(&format!("v: {text}\n"))["v"], want, "{text}");
    }

    #[test]
    fn core_tag_that_does_not_fit_names_the_text_and_the_tag() {
        let err = documents("v: !!int yes\n")
            .expect_err("yes is not an int")
            .to_string();
        assert!(
            err.contains("`yes`") && err.contains("!!int") && err.contains("a boolean"),
            "{err}"
        );
    }

    #[test]
    fn keys_become_strings_as_sigs_k8s_io_yaml_makes_them() {
        // `y` as a key is the boolean true to YAML 1.1, so its JSON key is "true".
        assert_eq!(
            one("on: 1\n0644: 2\n'yes': 3\nn: 4\n"),
            json!({"true": 1, "420": 2, "yes": 3, "false": 4})
        );
    }

    #[rstest]
    #[case::nan("v: .nan\n", "not a finite number")]
    #[case::infinity("v: -.inf\n", "not a finite number")]
    #[case::duplicate_key("a: 1\na: 2\n", "key `a` appears twice")]
    #[case::null_key("? ~\n: 1\n", "a null cannot be a mapping key")]
    #[case::merge_of_a_scalar("<<: 1\n", "`<<` merges a mapping")]
    #[case::not_yaml("a: [1\n", "not YAML")]
    fn refusals_say_why(#[case] yaml: &str, #[case] want: &str) {
        let err = documents(yaml).expect_err("refused").to_string();
        assert!(err.contains(want), "{yaml:?}: {err}");
    }

    #[test]
    fn refusals_name_the_line() {
        let err = documents("a: 1\nb:\n  c: .inf\n")
            .expect_err("refused")
            .to_string();
        assert!(err.starts_with("line 3:"), "{err}");
    }

    #[test]
    fn aliases_and_merge_keys_resolve() {
        let v = one("base: &b {a: 1, b: 2}\nuse:\n  <<: *b\n  b: 3\nlist: [*b]\n");
        assert_eq!(v["use"], json!({"a": 1, "b": 3}));
        assert_eq!(v["list"], json!([{"a": 1, "b": 2}]));
    }

    #[test]
    fn earlier_mappings_of_a_merge_list_win() {
        let v = one("a: &a {k: 1}\nb: &b {k: 2, j: 2}\nc:\n  <<: [*a, *b]\n");
        assert_eq!(v["c"], json!({"k": 1, "j": 2}));
    }

    #[test]
    fn every_document_is_kept_empty_ones_as_null() {
        let docs = documents("---\na: 1\n---\n---\nb: 2\n").expect("parses");
        let values: Vec<Value> = docs.into_iter().map(|d| d.value).collect();
        assert_eq!(values, [json!({"a": 1}), json!(null), json!({"b": 2})]);
    }

    #[test]
    fn readings_point_at_yaml_1_1_only_scalars() {
        let docs = documents(
            "spec:\n  env:\n  - name: A\n    value: yes\n  mode: 0644\n  port: 8000\n  on: true\n",
        )
        .expect("parses");
        let got: Vec<(String, String)> = docs[0]
            .readings
            .iter()
            .map(|r| (r.path.clone(), r.text.clone()))
            .collect();
        assert_eq!(
            got,
            [
                ("spec.env[0].value".to_string(), "yes".to_string()),
                ("spec.mode".to_string(), "0644".to_string())
            ]
        );
    }
}
