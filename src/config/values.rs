//! Reading values as the configuration file writes them (durations,
//! sizes, paths, tables), and the wording of its error messages.

use std::path::PathBuf;
use std::time::Duration;

use toml::Value;

use super::{Reader, Written, DURATION, OPTIONS, SIZE};
use crate::deadline::check_duration;
use crate::error::Error;

impl Reader<'_> {
    pub(super) fn bad(
        &self,
        option: &'static str,
        path: &str,
        value: &Value,
        allowed: &str,
    ) -> Error {
        Error::InvalidConfig {
            option,
            message: format!("{}: {path} = {}: {allowed}", self.origin, show(value)),
        }
    }

    /// The error for a value its option cannot take.
    pub(super) fn invalid(&self, w: &Written, allowed: &str) -> Error {
        self.bad(w.key, w.path, w.value, allowed)
    }

    pub(super) fn unknown(
        &self,
        option: &'static str,
        path: &str,
        value: &Value,
        allowed: &[&str],
    ) -> Error {
        let key = path.rsplit('.').next().unwrap_or(path);
        let hint = allowed
            .iter()
            .map(|k| (edit_distance(key, k), *k))
            .filter(|(d, k)| *d <= 2.max(k.len() / 4))
            .min()
            .map(|(_, k)| format!(" (did you mean `{k}`?)"))
            .unwrap_or_default();
        Error::InvalidConfig {
            option,
            message: format!(
                "{}: {path} = {}: unknown key{hint}; allowed keys: {}",
                self.origin,
                show(value),
                allowed.join(", ")
            ),
        }
    }

    /// A string; an empty one only if `empty_ok`.
    pub(super) fn string(&self, w: &Written, empty_ok: bool) -> Result<String, Error> {
        match w.value {
            Value::String(s) if empty_ok || !s.is_empty() => Ok(s.clone()),
            _ => Err(self.invalid(w, &format!("expected {}", allowed(w.key)))),
        }
    }

    pub(super) fn boolean(&self, w: &Written) -> Result<bool, Error> {
        (w.value)
            .as_bool()
            .ok_or_else(|| self.invalid(w, "expected true or false"))
    }

    pub(super) fn int(&self, w: &Written, min: i64, max: i64) -> Result<i64, Error> {
        let expected = || match (min, max) {
            (min, i64::MAX) => format!("expected an integer, {min} or more"),
            (min, max) => format!("expected an integer from {min} to {max}"),
        };
        match w.value.as_integer() {
            Some(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(self.invalid(w, &expected())),
        }
    }

    /// A share: a number (integer or float) from 0 to 1.
    pub(super) fn share(&self, w: &Written) -> Result<f64, Error> {
        let n = match w.value {
            Value::Float(f) => Some(*f),
            Value::Integer(i) => Some(*i as f64),
            _ => None,
        };
        n.filter(|n| (0.0..=1.0).contains(n))
            .ok_or_else(|| self.invalid(w, "expected a number from 0 to 1"))
    }

    pub(super) fn duration(&self, w: &Written) -> Result<Duration, Error> {
        let d = (w.value)
            .as_str()
            .and_then(parse_duration)
            .ok_or_else(|| self.invalid(w, &format!("expected {DURATION}")))?;
        check_duration(d).map_err(|message| self.invalid(w, &message))?;
        Ok(d)
    }

    pub(super) fn size(&self, w: &Written, max: u64) -> Result<u64, Error> {
        let bytes = match w.value {
            Value::Integer(n) => u64::try_from(*n).ok(),
            Value::String(s) => parse_size(s),
            _ => None,
        };
        match bytes {
            Some(n) if n >= 1 && n <= max => Ok(n),
            _ => Err(self.invalid(w, &format!("expected {SIZE}, from 1 byte to {max} bytes"))),
        }
    }

    /// An optional limit: `0` or `"off"` (or `false`) switches it off;
    /// anything else is read by `read`, whose message then also says how
    /// to switch the limit off.
    pub(super) fn off_or<T>(
        &self,
        w: &Written,
        read: impl FnOnce(&Written) -> Result<T, Error>,
    ) -> Result<Option<T>, Error> {
        match w.value {
            Value::Integer(0) | Value::Boolean(false) => Ok(None),
            Value::String(s) if s == "off" => Ok(None),
            _ => read(w).map(Some).map_err(|e| match e {
                Error::InvalidConfig { option, message } => Error::InvalidConfig {
                    option,
                    message: format!("{message}; or 0 or \"off\" to switch it off"),
                },
                other => other,
            }),
        }
    }

    pub(super) fn backoff(&self, w: &Written) -> Result<(Duration, Duration), Error> {
        self.pair(w, ("min", "100ms"), ("max", "10s"))
    }

    /// A table of exactly two durations, e.g. `{ min = "100ms", max = "10s" }`
    /// (each key with the example its error message shows).
    fn pair(
        &self,
        w: &Written,
        first: (&str, &str),
        second: (&str, &str),
    ) -> Result<(Duration, Duration), Error> {
        let expected = format!(
            "expected {{ {} = \"{}\", {} = \"{}\" }} (both durations)",
            first.0, first.1, second.0, second.1
        );
        let Value::Table(t) = w.value else {
            return Err(self.invalid(w, &expected));
        };
        if t.len() != 2 {
            return Err(self.invalid(w, &expected));
        }
        let read = |k: &str| {
            t.get(k)
                .and_then(Value::as_str)
                .and_then(parse_duration)
                .ok_or_else(|| self.invalid(w, &expected))
                .and_then(|d| {
                    check_duration(d).map_err(|message| self.invalid(w, &message))?;
                    Ok(d)
                })
        };
        Ok((read(first.0)?, read(second.0)?))
    }

    /// A path as written, relative to the file's directory.
    pub(super) fn file_path(&self, w: &Written) -> Result<PathBuf, Error> {
        Ok(self.base_dir.join(self.string(w, false)?))
    }

    /// An interpreter: a bare command is looked up on PATH by the worker
    /// launch; anything with a slash is a path, relative to the file.
    pub(super) fn python(&self, w: &Written) -> Result<PathBuf, Error> {
        let s = self.string(w, false)?;
        Ok(if s.contains('/') {
            self.base_dir.join(s)
        } else {
            PathBuf::from(s)
        })
    }

    pub(super) fn dirs(&self, w: &Written) -> Result<Vec<PathBuf>, Error> {
        let bad = || self.invalid(w, "expected a directory or a list of directories");
        let items: Vec<&Value> = match w.value {
            Value::String(_) => vec![w.value],
            Value::Array(items) => items.iter().collect(),
            _ => return Err(bad()),
        };
        items
            .into_iter()
            .map(|item| match item.as_str() {
                Some(dir) if !dir.is_empty() => Ok(self.base_dir.join(dir)),
                _ => Err(bad()),
            })
            .collect()
    }

    pub(super) fn env(&self, w: &Written) -> Result<Vec<(String, String)>, Error> {
        let Value::Table(vars) = w.value else {
            return Err(self.invalid(
                w,
                "expected a table of variables: env = { NAME = \"value\" }",
            ));
        };
        let mut env = Vec::with_capacity(vars.len());
        for (var, val) in vars {
            let var_path = format!("{}.{var}", w.path);
            if var.is_empty() || var.contains('=') || var.contains('\0') {
                return Err(self.bad("env", &var_path, val, "not a valid variable name"));
            }
            let text = match val {
                Value::String(s) => s.clone(),
                Value::Integer(n) => n.to_string(),
                Value::Boolean(b) => b.to_string(),
                Value::Float(f) => f.to_string(),
                _ => {
                    return Err(self.bad(
                        "env",
                        &var_path,
                        val,
                        "expected a string, a number or a boolean",
                    ))
                }
            };
            if let Some(placeholder) = unknown_placeholder(&text) {
                return Err(self.bad(
                    "env",
                    &var_path,
                    val,
                    &format!(
                        "unknown placeholder {{{placeholder}}}; \
                         allowed: {{worker_index}}, {{worker_id}}"
                    ),
                ));
            }
            env.push((var.clone(), text));
        }
        Ok(env)
    }
}

impl Reader<'_> {
    /// A `remote` table: where the pool's remote workers are and how to
    /// reach them (see [`Remote`](crate::Remote)).
    pub(super) fn remote(&self, w: &Written) -> Result<crate::Remote, Error> {
        const KEYS: [&str; 9] = [
            "dns",
            "endpoints",
            "max_endpoints",
            "resolve_every",
            "tls",
            "token_file",
            "insecure_plaintext",
            "keepalive",
            "max_calls_per_endpoint",
        ];
        let fields = self.subtable(
            w,
            &KEYS,
            "expected a table, e.g. remote = { dns = \"workers.ns.svc.cluster.local:50051\" }",
        )?;
        let field = |key: &str| fields.get(key);
        let mut remote =
            match (field("dns"), field("endpoints")) {
                (Some(dns), None) => crate::Remote::dns(self.string(&dns, false)?),
                (None, Some(list)) => {
                    let bad = || self.invalid(&list, "expected a list of \"host:port\" strings");
                    let Value::Array(items) = list.value else {
                        return Err(bad());
                    };
                    let addresses = items
                        .iter()
                        .map(|item| item.as_str().map(str::to_owned).ok_or_else(bad))
                        .collect::<Result<Vec<_>, _>>()?;
                    crate::Remote::endpoints(addresses)
                }
                _ => return Err(self.invalid(
                    w,
                    "needs exactly one of dns = \"name:port\" and endpoints = [\"host:port\", ...]",
                )),
            };
        if let Some(n) = field("max_endpoints") {
            remote = remote.max_endpoints(self.int(&n, 1, 4096)? as usize);
        }
        if let Some(n) = field("max_calls_per_endpoint") {
            remote = remote.max_calls_per_endpoint(self.int(&n, 1, 1024)? as usize);
        }
        if let Some(d) = field("resolve_every") {
            remote = remote.resolve_every(self.duration(&d)?);
        }
        if let Some(path) = field("token_file") {
            remote = remote.token_file(self.file_path(&path)?);
        }
        if let Some(b) = field("insecure_plaintext") {
            if self.boolean(&b)? {
                remote = remote.insecure_plaintext();
            }
        }
        if let Some(k) = field("keepalive") {
            let (interval, timeout) = self.pair(&k, ("interval", "2s"), ("timeout", "3s"))?;
            remote = remote.keepalive(interval, timeout);
        }
        if let Some(tls) = field("tls") {
            remote = remote.tls(self.tls(&tls)?);
        }
        Ok(remote)
    }

    /// A `tls` table of a `remote` table.
    fn tls(&self, w: &Written) -> Result<crate::Tls, Error> {
        const KEYS: [&str; 4] = ["ca_file", "cert_file", "key_file", "authority"];
        let expected = "expected { ca_file = \"ca.crt\" } with, optionally, cert_file and \
                        key_file (together) and authority";
        let fields = self.subtable(w, &KEYS, expected)?;
        let at = |key: &str| fields.get(key).map(|f| self.file_path(&f)).transpose();
        let Some(ca) = at("ca_file")? else {
            return Err(self.invalid(w, expected));
        };
        let mut tls = crate::Tls::ca_file(ca)?;
        match (at("cert_file")?, at("key_file")?) {
            (Some(cert), Some(key)) => tls = tls.identity_files(cert, key)?,
            (None, None) => {}
            _ => return Err(self.invalid(w, expected)),
        }
        if let Some(authority) = fields.get("authority") {
            tls = tls.authority(self.string(&authority, false)?);
        }
        Ok(tls)
    }

    /// A table option's own keys, each as a value of the option it belongs
    /// to (`remote`), written at `PATH.key`; a key not in `keys` is an
    /// error with a "did you mean" hint, and anything but a table is
    /// `expected`.
    fn subtable<'w>(
        &self,
        w: &Written<'w>,
        keys: &[&str],
        expected: &str,
    ) -> Result<Fields<'w>, Error> {
        let Value::Table(t) = w.value else {
            return Err(self.invalid(w, expected));
        };
        let mut fields = Vec::with_capacity(t.len());
        for (key, value) in t {
            let path = format!("{}.{key}", w.path);
            if !keys.contains(&key.as_str()) {
                return Err(self.unknown(w.key, &path, value, keys));
            }
            fields.push((key.as_str(), path, value));
        }
        Ok(Fields(fields))
    }
}

/// The keys of a table option, read by [`Reader::subtable`].
struct Fields<'w>(Vec<(&'w str, String, &'w Value)>);

impl Fields<'_> {
    /// The value written under `key`, if any, as its option's value.
    fn get(&self, key: &str) -> Option<Written<'_>> {
        self.0
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|(_, path, value)| Written {
                key: "remote",
                path,
                value,
            })
    }
}

/// What a key takes, from [`OPTIONS`].
pub(super) fn allowed(key: &str) -> &'static str {
    OPTIONS
        .iter()
        .find(|o| o.key == key)
        .map_or("a valid value", |o| o.value)
}

/// The first `{name}` in `text` that looks like a placeholder (letters,
/// digits and '_' between braces) but is not one the worker launch fills
/// in. Other braces, as in JSON text, are left alone.
fn unknown_placeholder(text: &str) -> Option<&str> {
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        rest = &rest[open + 1..];
        let Some(close) = rest.find('}') else { break };
        let name = &rest[..close];
        let is_word =
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if is_word && name != "worker_index" && name != "worker_id" {
            return Some(name);
        }
    }
    None
}

/// Reads a duration as the configuration file writes it: a non-negative
/// number and a unit, `ms`, `s`, `m` (or `min`) or `h`.
///
/// ```
/// use snakepit::config::parse_duration;
/// use std::time::Duration;
///
/// assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
/// assert_eq!(parse_duration("1.5m"), Some(Duration::from_secs(90)));
/// assert_eq!(parse_duration("30"), None); // the unit is required
/// ```
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let seconds = match unit.trim() {
        "ms" => number / 1000.0,
        "s" => number,
        "m" | "min" => number * 60.0,
        "h" => number * 3600.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(seconds).ok()
}

/// `"512MiB"`, `"2GB"`, `"100kB"`, `"4096"`: bytes, with an optional
/// decimal (kB, MB, GB) or binary (KiB, MiB, GiB) unit.
pub(super) fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "mb" => 1000 * 1000,
        "gb" => 1000 * 1000 * 1000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(factor)
}

/// A value as it would be written in the file, for messages.
pub(super) fn show(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        Value::Integer(n) => n.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Boolean(b) => b.to_string(),
        Value::Datetime(d) => d.to_string(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(show).collect::<Vec<_>>().join(", ")
        ),
        Value::Table(t) => format!(
            "{{ {} }}",
            t.iter()
                .map(|(k, v)| format!("{k} = {}", show(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Levenshtein distance, for "did you mean" hints.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (diagonal + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn durations_and_sizes() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("30"), None);
        assert_eq!(parse_duration("-1s"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_size("512MiB"), Some(512 << 20));
        assert_eq!(parse_size("2GB"), Some(2_000_000_000));
        assert_eq!(parse_size("100kB"), Some(100_000));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("1.5GB"), None);
        assert_eq!(parse_size("99999999999GiB"), None);
    }
}
