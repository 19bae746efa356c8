//! The configuration file: one or more named pools and their options, in
//! TOML, for running pools without writing Rust for every option.
//!
//! ```toml
//! # Options every pool gets unless it sets them itself.
//! [defaults]
//! python_path = ["python/"]          # relative to this file
//! call_timeout = "30s"
//!
//! [pools.compute]
//! adapter = "my_pkg.adapters.MathAdapter"
//! workers = 8
//! profile = "process"
//! max_requests = 1000
//! env = { CUDA_VISIBLE_DEVICES = "{worker_index}" }
//!
//! [pools.io]
//! adapter = "my_pkg.adapters.FetchAdapter"
//! workers = 2
//! profile = "thread"
//! threads = 16
//! ```
//!
//! Every key is a [`PoolBuilder`] option of the same name. The keys, what
//! each takes and its default are in the option table of the README
//! (section "Configuration"), which is generated from the one table the
//! reader itself works from, so the two cannot drift apart. Optional limits
//! (`max_requests`, `max_lifetime`, `max_memory`, `health_check_interval`)
//! are switched off with `0` or `"off"`. Each pool is
//! [named](PoolBuilder::name) after its table, so its worker ids read
//! `compute/worker-0`. The whole file is checked before any process starts,
//! and an error names the key, the value and what is allowed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::{Table, Value};

use crate::builder::PoolBuilder;
use crate::error::Error;
use crate::options::Profile;
use crate::slots::MAX_CAPACITY;

mod table;

pub(crate) use table::describe_options;
use table::OPTIONS;

/// The most workers one pool may have (as [`PoolBuilder::workers`] allows).
const MAX_WORKERS: i64 = 4096;

const DURATION: &str = "a duration such as \"500ms\", \"30s\", \"5m\" or \"1h\"";
const SIZE: &str = "a size in bytes: an integer, or a string such as \"512MiB\" or \"2GB\"";

/// A parsed and checked configuration file: its pools, in file order.
///
/// ```no_run
/// use snakepit::config::ConfigFile;
///
/// let config = ConfigFile::load("snakepit.toml")?;
/// for pool in config.pools() {
///     println!("{}: {} x {}", pool.name(), pool.workers(), pool.adapter());
/// }
/// # Ok::<(), snakepit::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ConfigFile {
    path: PathBuf,
    pools: Vec<PoolConfig>,
}

/// One `[pools.NAME]` table of a [`ConfigFile`], merged with `[defaults]`.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    name: String,
    builder: PoolBuilder,
}

impl PoolConfig {
    /// The pool's name (`NAME` in `[pools.NAME]`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The adapter class.
    pub fn adapter(&self) -> &str {
        &self.builder.settings().adapter
    }

    /// The number of workers.
    pub fn workers(&self) -> usize {
        self.builder.settings().workers
    }

    /// The worker profile.
    pub fn profile(&self) -> Profile {
        self.builder.settings().profile
    }

    /// Every option of the configuration file with its effective value for
    /// this pool (the pool's own, else `[defaults]`, else the default), in
    /// the order of the README's option table, written the way the file
    /// writes it where it can be (`"30s"`, `"128MiB"`, `"off"`).
    ///
    /// ```
    /// use snakepit::config::ConfigFile;
    ///
    /// let config = ConfigFile::parse(
    ///     "[pools.compute]\nadapter = \"pkg.mod.A\"\nmax_memory = \"1GiB\"\n",
    ///     "snakepit.toml".as_ref(),
    /// )?;
    /// let options = config.pool("compute")?.options();
    /// assert!(options.contains(&("max_memory", "\"1GiB\"".to_string())));
    /// assert!(options.contains(&("max_requests", "\"off\"".to_string())));
    /// # Ok::<(), snakepit::Error>(())
    /// ```
    pub fn options(&self) -> Vec<(&'static str, String)> {
        describe_options(&self.builder)
    }

    /// A builder with every option of this pool set, to adjust before
    /// [`build`](PoolBuilder::build) (e.g. to add an event handler).
    pub fn builder(&self) -> PoolBuilder {
        self.builder.clone()
    }
}

impl ConfigFile {
    /// Reads and checks the file at `path`. Fails with
    /// [`Error::InvalidConfig`] when it cannot be read, is not TOML, or has
    /// a key or value that cannot work; no process is started either way.
    pub fn load(path: impl AsRef<Path>) -> Result<ConfigFile, Error> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::InvalidConfig {
            option: "config file",
            message: format!("cannot read {}: {e}", path.display()),
        })?;
        ConfigFile::parse(&text, path)
    }

    /// Checks `text` as if read from `path` (which need not exist): errors
    /// name `path`, and relative paths in it are relative to its directory.
    ///
    /// The file has a `[pools.NAME]` table per pool and an optional
    /// `[defaults]` table whose keys every pool gets unless it sets them
    /// (the `env` tables are merged, variable by variable). The keys are the
    /// [`PoolBuilder`] options; the README's option table lists each with
    /// the values it takes and its default.
    ///
    /// ```
    /// use snakepit::config::ConfigFile;
    ///
    /// let config = ConfigFile::parse(
    ///     r#"
    ///     [pools.compute]
    ///     adapter = "snakepit_showcase.adapter.ShowcaseAdapter"
    ///     workers = 0
    ///     "#,
    ///     "snakepit.toml".as_ref(),
    /// );
    /// let message = config.unwrap_err().to_string();
    /// assert!(message.contains("pools.compute.workers = 0"), "{message}");
    /// assert!(message.contains("from 1 to 4096"), "{message}");
    /// ```
    pub fn parse(text: &str, path: &Path) -> Result<ConfigFile, Error> {
        let origin = path.display().to_string();
        let table: Table = text
            .parse()
            .map_err(|e: toml::de::Error| Error::InvalidConfig {
                option: "config file",
                message: format!("{origin} is not valid TOML: {}", e.to_string().trim_end()),
            })?;
        let reader = Reader {
            origin: &origin,
            base_dir: path.parent().unwrap_or(Path::new("")),
        };
        let pools = reader.file(&table)?;
        Ok(ConfigFile {
            path: path.to_owned(),
            pools,
        })
    }

    /// The file it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The pools, in file order.
    pub fn pools(&self) -> &[PoolConfig] {
        &self.pools
    }

    /// The pool called `name`; [`Error::InvalidConfig`] naming the pools
    /// there are when there is none.
    pub fn pool(&self, name: &str) -> Result<&PoolConfig, Error> {
        self.pools
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| Error::InvalidConfig {
                option: "pool",
                message: format!(
                    "{} has no pool named {name:?}; its pools are: {}",
                    self.path.display(),
                    self.pools
                        .iter()
                        .map(|p| p.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
    }
}

/// Reads the TOML tables, knowing where they came from for its messages.
struct Reader<'a> {
    origin: &'a str,
    base_dir: &'a Path,
}

/// One option as written: its key, its value and the dotted path it was
/// written at (`pools.NAME.key` or `defaults.key`).
struct Entry<'t> {
    key: &'t str,
    value: &'t Value,
    path: String,
}

/// A value being read for one option of the table: the table's key (for
/// the error's `option`), and where and what was written.
struct Written<'w> {
    key: &'static str,
    path: &'w str,
    value: &'w Value,
}

/// A pool's options as read so far: the builder, and what can only be
/// applied once every key of the pool is read (the profile needs its
/// `threads`; `env` merges `[defaults]` with the pool's own table).
#[derive(Default)]
struct Draft {
    builder: PoolBuilder,
    env: Vec<(String, String)>,
    profile: Option<(bool, String)>,
    threads: Option<(usize, String)>,
    has_adapter: bool,
}

impl Draft {
    /// Applies `value` with one of the builder's setters.
    fn set<T>(
        &mut self,
        setter: impl FnOnce(PoolBuilder, T) -> PoolBuilder,
        value: T,
    ) -> Result<(), Error> {
        self.builder = setter(std::mem::take(&mut self.builder), value);
        Ok(())
    }
}

impl Reader<'_> {
    fn file(&self, table: &Table) -> Result<Vec<PoolConfig>, Error> {
        for (key, value) in table {
            if key != "defaults" && key != "pools" {
                return Err(self.unknown("config file", key, value, &["defaults", "pools"]));
            }
        }
        let defaults = match table.get("defaults") {
            None => None,
            Some(Value::Table(t)) => Some(t),
            Some(other) => {
                return Err(self.bad(
                    "defaults",
                    "defaults",
                    other,
                    "expected a table: [defaults]",
                ))
            }
        };
        let pools = match table.get("pools") {
            Some(Value::Table(t)) if !t.is_empty() => t,
            Some(Value::Table(_)) | None => {
                return Err(Error::InvalidConfig {
                    option: "pools",
                    message: format!(
                        "{}: no pools: add a [pools.NAME] table with at least \
                         adapter = \"package.module.Class\"",
                        self.origin
                    ),
                })
            }
            Some(other) => {
                return Err(self.bad(
                    "pools",
                    "pools",
                    other,
                    "expected a table of pools: [pools.NAME]",
                ))
            }
        };
        let mut configs = Vec::with_capacity(pools.len());
        for (name, value) in pools {
            let path = format!("pools.{name}");
            let valid_name = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !valid_name {
                return Err(Error::InvalidConfig {
                    option: "pools",
                    message: format!(
                        "{}: pool name {name:?}: expected letters, digits, '_' and '-' only",
                        self.origin
                    ),
                });
            }
            let Value::Table(table) = value else {
                return Err(self.bad(
                    "pools",
                    &path,
                    value,
                    "expected a table of options: [pools.NAME]",
                ));
            };
            configs.push(self.pool(name, table, defaults)?);
        }
        Ok(configs)
    }

    /// One pool: `[defaults]` overlaid with its own table, each key read
    /// by its row of [`OPTIONS`], and checked as the builder would check it.
    fn pool(&self, name: &str, own: &Table, defaults: Option<&Table>) -> Result<PoolConfig, Error> {
        let mut entries: Vec<Entry> = Vec::new();
        for (key, value) in defaults.into_iter().flatten() {
            if !own.contains_key(key) || key == "env" {
                entries.push(Entry {
                    key,
                    value,
                    path: format!("defaults.{key}"),
                });
            }
        }
        for (key, value) in own {
            entries.push(Entry {
                key,
                value,
                path: format!("pools.{name}.{key}"),
            });
        }

        let mut draft = Draft {
            builder: PoolBuilder::new().name(name),
            ..Draft::default()
        };
        for Entry { key, value, path } in &entries {
            let Some(option) = OPTIONS.iter().find(|o| o.key == *key) else {
                let allowed: Vec<&str> = OPTIONS.iter().map(|o| o.key).collect();
                return Err(self.unknown("pools", path, value, &allowed));
            };
            let written = Written {
                key: option.key,
                path,
                value,
            };
            (option.read)(self, &written, &mut draft)?;
        }

        let Draft {
            mut builder,
            env,
            profile,
            threads,
            has_adapter,
        } = draft;
        if !has_adapter {
            return Err(Error::InvalidConfig {
                option: "adapter",
                message: format!(
                    "{}: pools.{name}.adapter is missing: every pool needs its adapter class, \
                     e.g. adapter = \"my_pkg.adapters.MyAdapter\"",
                    self.origin
                ),
            });
        }
        builder = match (profile, threads) {
            (Some((true, _)), Some((threads, _))) => builder.profile(Profile::Thread { threads }),
            (Some((true, path)), None) => {
                return Err(Error::InvalidConfig {
                    option: "threads",
                    message: format!(
                        "{}: {path} = \"thread\" needs threads = N (calls at once per \
                         process, 1 to {MAX_CAPACITY}) in pool `{name}`",
                        self.origin
                    ),
                })
            }
            (_, Some((threads, path))) => {
                return Err(Error::InvalidConfig {
                    option: "threads",
                    message: format!(
                        "{}: {path} = {threads}: threads applies only to profile = \"thread\"; \
                         set that in pool `{name}` or remove threads",
                        self.origin
                    ),
                })
            }
            (Some((false, _)), None) | (None, None) => builder.profile(Profile::Process),
        };
        for (var, val) in env {
            builder = builder.env(var, val);
        }

        // The builder's own rules (the adapter's form, min <= max, ...),
        // reported against the key as written.
        builder.validate().map_err(|e| match e {
            Error::InvalidConfig { option, message } => {
                let key = if option == "profile" {
                    "threads"
                } else {
                    option
                };
                let written = entries.iter().rev().find(|e| e.key == key);
                let message = match written {
                    Some(e) => {
                        format!("{}: {} = {}: {message}", self.origin, e.path, show(e.value))
                    }
                    None => format!("{}: pool `{name}`: {message}", self.origin),
                };
                Error::InvalidConfig { option, message }
            }
            other => other,
        })?;
        Ok(PoolConfig {
            name: name.to_owned(),
            builder,
        })
    }

    fn bad(&self, option: &'static str, path: &str, value: &Value, allowed: &str) -> Error {
        Error::InvalidConfig {
            option,
            message: format!("{}: {path} = {}: {allowed}", self.origin, show(value)),
        }
    }

    /// The error for a value its option cannot take.
    fn invalid(&self, w: &Written, allowed: &str) -> Error {
        self.bad(w.key, w.path, w.value, allowed)
    }

    fn unknown(&self, option: &'static str, path: &str, value: &Value, allowed: &[&str]) -> Error {
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
    fn string(&self, w: &Written, empty_ok: bool) -> Result<String, Error> {
        match w.value {
            Value::String(s) if empty_ok || !s.is_empty() => Ok(s.clone()),
            _ => Err(self.invalid(w, &format!("expected {}", allowed(w.key)))),
        }
    }

    fn boolean(&self, w: &Written) -> Result<bool, Error> {
        (w.value)
            .as_bool()
            .ok_or_else(|| self.invalid(w, "expected true or false"))
    }

    fn int(&self, w: &Written, min: i64, max: i64) -> Result<i64, Error> {
        let expected = || match (min, max) {
            (min, i64::MAX) => format!("expected an integer, {min} or more"),
            (min, max) => format!("expected an integer from {min} to {max}"),
        };
        match w.value.as_integer() {
            Some(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(self.invalid(w, &expected())),
        }
    }

    fn duration(&self, w: &Written) -> Result<Duration, Error> {
        (w.value)
            .as_str()
            .and_then(parse_duration)
            .ok_or_else(|| self.invalid(w, &format!("expected {DURATION}")))
    }

    fn size(&self, w: &Written, max: u64) -> Result<u64, Error> {
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
    fn off_or<T>(
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

    fn backoff(&self, w: &Written) -> Result<(Duration, Duration), Error> {
        let expected = "expected { min = \"100ms\", max = \"10s\" } (both durations)";
        let Value::Table(t) = w.value else {
            return Err(self.invalid(w, expected));
        };
        if t.len() != 2 {
            return Err(self.invalid(w, expected));
        }
        let read = |k: &str| {
            t.get(k)
                .and_then(Value::as_str)
                .and_then(parse_duration)
                .ok_or_else(|| self.invalid(w, expected))
        };
        Ok((read("min")?, read("max")?))
    }

    /// A path as written, relative to the file's directory.
    fn file_path(&self, w: &Written) -> Result<PathBuf, Error> {
        Ok(self.base_dir.join(self.string(w, false)?))
    }

    /// An interpreter: a bare command is looked up on PATH by the worker
    /// launch; anything with a slash is a path, relative to the file.
    fn python(&self, w: &Written) -> Result<PathBuf, Error> {
        let s = self.string(w, false)?;
        Ok(if s.contains('/') {
            self.base_dir.join(s)
        } else {
            PathBuf::from(s)
        })
    }

    fn dirs(&self, w: &Written) -> Result<Vec<PathBuf>, Error> {
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

    fn env(&self, w: &Written) -> Result<Vec<(String, String)>, Error> {
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

/// What a key takes, from [`OPTIONS`].
fn allowed(key: &str) -> &'static str {
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
fn parse_size(text: &str) -> Option<u64> {
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
fn show(value: &Value) -> String {
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

    fn parse(text: &str) -> Result<ConfigFile, Error> {
        ConfigFile::parse(text, Path::new("/etc/app/snakepit.toml"))
    }

    /// The error's message, checked to be an `InvalidConfig` for `option`.
    fn error(text: &str, option: &str) -> String {
        match parse(text) {
            Err(Error::InvalidConfig { option: o, message }) => {
                assert_eq!(o, option, "{message}");
                assert!(message.starts_with("/etc/app/snakepit.toml"), "{message}");
                message
            }
            other => panic!("expected InvalidConfig for {option}, got {other:?}"),
        }
    }

    #[test]
    fn every_option_is_read_into_the_pools_builder() {
        let config = parse(
            r#"
            [defaults]
            python_path = ["lib", "/opt/shared"]
            call_timeout = "30s"
            env = { SHARED = "yes", LEVEL = "defaults" }

            [pools.compute]
            adapter = "pkg.mod.Compute"
            python = "venv/bin/python"
            workers = 8
            profile = "process"
            env = { CUDA_VISIBLE_DEVICES = "{worker_index}", LEVEL = "pool", OMP_NUM_THREADS = 2 }
            startup_timeout = "1.5m"
            queue_size = 0
            queue_timeout = "250ms"
            kill_hung_workers = false
            shutdown_grace = "2s"
            max_message_bytes = "64MiB"
            restart_backoff = { min = "50ms", max = "5s" }
            max_requests = 1000
            max_requests_jitter = 50
            max_lifetime = "1h"
            max_lifetime_jitter = "5m"
            max_memory = "2GB"
            memory_check_interval = "1s"
            health_check_interval = "off"
            health_check_timeout = "3s"

            [pools.io]
            adapter = "pkg.mod.Fetch"
            python = "python3.12"
            profile = "thread"
            threads = 16
            call_timeout = "2s"
            "#,
        )
        .unwrap();
        let names: Vec<&str> = config.pools().iter().map(PoolConfig::name).collect();
        assert_eq!(names, ["compute", "io"], "file order is kept");

        let compute = config.pool("compute").unwrap().builder();
        let c = compute.settings();
        assert_eq!(c.adapter, "pkg.mod.Compute");
        assert_eq!(
            c.python.as_deref(),
            Some(Path::new("/etc/app/venv/bin/python"))
        );
        assert_eq!(
            c.python_path,
            [PathBuf::from("/etc/app/lib"), PathBuf::from("/opt/shared")]
        );
        assert_eq!(c.workers, 8);
        assert_eq!(c.profile, Profile::Process);
        let env: Vec<(&str, &str)> = c
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            env,
            [
                ("SHARED", "yes"),
                ("CUDA_VISIBLE_DEVICES", "{worker_index}"),
                ("LEVEL", "pool"),
                ("OMP_NUM_THREADS", "2"),
            ]
        );
        assert_eq!(c.startup_timeout, Duration::from_secs(90));
        assert_eq!(c.queue_size, 0);
        assert_eq!(c.queue_timeout, Duration::from_millis(250));
        assert_eq!(c.call_timeout, Duration::from_secs(30), "from [defaults]");
        assert!(!c.kill_hung_workers);
        assert_eq!(c.shutdown_grace, Duration::from_secs(2));
        assert_eq!(c.max_message_bytes, 64 << 20);
        assert_eq!(
            c.restart_backoff,
            (Duration::from_millis(50), Duration::from_secs(5))
        );
        assert_eq!(c.max_requests, Some(1000));
        assert_eq!(c.max_requests_jitter, 50);
        assert_eq!(c.max_lifetime, Some(Duration::from_secs(3600)));
        assert_eq!(c.max_lifetime_jitter, Duration::from_secs(300));
        assert_eq!(c.max_memory, Some(2_000_000_000));
        assert_eq!(c.memory_check_interval, Duration::from_secs(1));
        assert_eq!(c.health_check_interval, None);
        assert_eq!(c.health_check_timeout, Duration::from_secs(3));

        let io = config.pool("io").unwrap();
        assert_eq!(io.profile(), Profile::Thread { threads: 16 });
        let c = io.builder();
        let c = c.settings();
        assert_eq!(
            c.python.as_deref(),
            Some(Path::new("python3.12")),
            "a command stays a command"
        );
        assert_eq!(
            c.call_timeout,
            Duration::from_secs(2),
            "the pool's own value wins"
        );
        assert_eq!(
            c.env,
            [
                ("SHARED".into(), "yes".into()),
                ("LEVEL".into(), "defaults".into())
            ]
        );
    }

    #[test]
    fn errors_name_the_key_the_value_and_what_is_allowed() {
        let pool = |body: &str| format!("[pools.p]\nadapter = \"pkg.mod.A\"\n{body}\n");

        let m = error(&pool("workers = 0"), "workers");
        assert!(
            m.contains("pools.p.workers = 0: expected an integer from 1 to 4096"),
            "{m}"
        );

        let m = error(&pool("call_timeout = 30"), "call_timeout");
        assert!(
            m.contains("pools.p.call_timeout = 30: expected a duration such as \"500ms\""),
            "{m}"
        );

        let m = error(&pool("call_timeout = \"30 seconds\""), "call_timeout");
        assert!(m.contains("\"30 seconds\""), "{m}");

        let m = error(&pool("profile = \"threads\""), "profile");
        assert!(
            m.contains("pools.p.profile = \"threads\": expected \"process\" or \"thread\""),
            "{m}"
        );

        let m = error(&pool("wrokers = 4"), "pools");
        assert!(
            m.contains("pools.p.wrokers = 4: unknown key (did you mean `workers`?)"),
            "{m}"
        );
        assert!(m.contains("allowed keys: adapter, python,"), "{m}");

        let m = error(&pool("max_memory = \"2 potatoes\""), "max_memory");
        assert!(m.contains("expected a size in bytes"), "{m}");

        let m = error(&pool("max_message_bytes = \"4GiB\""), "max_message_bytes");
        assert!(m.contains("to 2147483647 bytes"), "{m}");

        let m = error(&pool("kill_hung_workers = \"yes\""), "kill_hung_workers");
        assert!(m.contains("= \"yes\": expected true or false"), "{m}");

        let m = error(&pool("env = { A = [1, 2] }"), "env");
        assert!(
            m.contains("pools.p.env.A = [1, 2]: expected a string"),
            "{m}"
        );

        let m = error(&pool("env = { GPU = \"{worker_idx}\" }"), "env");
        assert!(
            m.contains("unknown placeholder {worker_idx}; allowed: {worker_index}, {worker_id}"),
            "{m}"
        );

        let m = error(&pool("python_path = 3"), "python_path");
        assert!(
            m.contains("pools.p.python_path = 3: expected a directory"),
            "{m}"
        );

        let m = error(&pool("restart_backoff = \"1s\""), "restart_backoff");
        assert!(
            m.contains("expected { min = \"100ms\", max = \"10s\" }"),
            "{m}"
        );

        // The builder's own rules, reported against the key as written.
        let m = error(
            &pool("restart_backoff = { min = \"10s\", max = \"1s\" }"),
            "restart_backoff",
        );
        let expected =
            "pools.p.restart_backoff = { min = \"10s\", max = \"1s\" }: min must not exceed max";
        assert!(m.contains(expected), "{m}");
        let m = error(&pool("call_timeout = \"0s\""), "call_timeout");
        assert!(
            m.contains("pools.p.call_timeout = \"0s\": must be longer than zero"),
            "{m}"
        );
        let m = error("[pools.p]\nadapter = \"NoModule\"\n", "adapter");
        assert!(
            m.contains("pools.p.adapter = \"NoModule\": expected a Python class path"),
            "{m}"
        );
    }

    #[test]
    fn profile_and_threads_go_together() {
        let m = error(
            "[pools.p]\nadapter = \"m.A\"\nprofile = \"thread\"\n",
            "threads",
        );
        assert!(
            m.contains("pools.p.profile = \"thread\" needs threads = N"),
            "{m}"
        );
        let m = error("[pools.p]\nadapter = \"m.A\"\nthreads = 4\n", "threads");
        assert!(
            m.contains("pools.p.threads = 4: threads applies only to profile = \"thread\""),
            "{m}"
        );
        let m = error(
            "[pools.p]\nadapter = \"m.A\"\nprofile = \"thread\"\nthreads = 0\n",
            "threads",
        );
        assert!(m.contains("expected an integer from 1 to 65535"), "{m}");
    }

    #[test]
    fn the_shape_of_the_file_is_checked() {
        let m = error("[pools.p]\nworkers = 2\n", "adapter");
        assert!(m.contains("pools.p.adapter is missing"), "{m}");
        let m = error("[defaults]\nworkers = 2\n", "pools");
        assert!(m.contains("no pools: add a [pools.NAME] table"), "{m}");
        let m = error("[pool.p]\nadapter = \"m.A\"\n", "config file");
        assert!(
            m.contains("pool = { p = { adapter = \"m.A\" } }: unknown key (did you mean `pools`?)"),
            "{m}"
        );
        let m = error("[pools]\np = 3\n", "pools");
        assert!(
            m.contains("pools.p = 3: expected a table of options"),
            "{m}"
        );
        let m = error("[pools.\"a b\"]\nadapter = \"m.A\"\n", "pools");
        assert!(m.contains("pool name \"a b\""), "{m}");
        let m = error("[pools.p]\nadapter = \"m.A\"\nworkers = \n", "config file");
        assert!(
            m.contains("is not valid TOML") && m.contains("line 3"),
            "{m}"
        );
        let m = error(
            "[defaults]\nworkers = -1\n[pools.p]\nadapter = \"m.A\"\n",
            "workers",
        );
        assert!(
            m.contains("defaults.workers = -1"),
            "a default is reported where it is written: {m}"
        );
    }

    #[test]
    fn a_missing_file_and_an_unknown_pool_say_so() {
        let err = ConfigFile::load("/nonexistent/snakepit.toml").unwrap_err();
        assert!(
            err.to_string()
                .contains("cannot read /nonexistent/snakepit.toml"),
            "{err}"
        );
        let config = parse("[pools.a]\nadapter = \"m.A\"\n[pools.b]\nadapter = \"m.B\"\n").unwrap();
        let err = config.pool("c").unwrap_err().to_string();
        assert!(
            err.contains("no pool named \"c\"; its pools are: a, b"),
            "{err}"
        );
    }

    #[test]
    fn zero_or_off_switches_an_optional_limit_off_again() {
        let config = parse(
            r#"
            [defaults]
            max_requests = 1000
            max_lifetime = "1h"
            max_memory = "1GiB"
            health_check_interval = "10s"

            [pools.limited]
            adapter = "m.A"

            [pools.zero]
            adapter = "m.A"
            max_requests = 0
            max_lifetime = 0
            max_memory = 0
            health_check_interval = 0

            [pools.off]
            adapter = "m.A"
            max_requests = "off"
            max_lifetime = "off"
            max_memory = "off"
            health_check_interval = "off"
            "#,
        )
        .unwrap();
        let limited = config.pool("limited").unwrap().builder();
        let c = limited.settings();
        assert_eq!(c.max_requests, Some(1000));
        assert_eq!(c.max_lifetime, Some(Duration::from_secs(3600)));
        assert_eq!(c.max_memory, Some(1 << 30));
        assert_eq!(c.health_check_interval, Some(Duration::from_secs(10)));
        for name in ["zero", "off"] {
            let pool = config.pool(name).unwrap().builder();
            let c = pool.settings();
            let limits = (
                c.max_requests,
                c.max_lifetime,
                c.max_memory,
                c.health_check_interval,
            );
            assert_eq!(limits, (None, None, None, None), "pool {name}");
        }

        let pool = |body: &str| format!("[pools.p]\nadapter = \"pkg.mod.A\"\n{body}\n");
        let m = error(&pool("max_requests = -1"), "max_requests");
        assert!(
            m.contains("= -1: expected an integer, 1 or more; or 0 or \"off\" to switch it off"),
            "{m}"
        );
        let m = error(&pool("max_lifetime = \"never\""), "max_lifetime");
        assert!(m.contains("expected a duration such as"), "{m}");
        assert!(m.contains("or 0 or \"off\""), "{m}");
    }

    #[test]
    fn each_pool_is_named_after_its_table() {
        let config = parse("[pools.compute]\nadapter = \"m.A\"\n").unwrap();
        let builder = config.pool("compute").unwrap().builder();
        assert_eq!(builder.settings().name.as_deref(), Some("compute"));
        // An explicit name wins over the one a PoolSet entry would give.
        let renamed = builder.name("gpu").named_unless_set("compute");
        assert_eq!(renamed.settings().name.as_deref(), Some("gpu"));
        let unnamed = PoolBuilder::new().named_unless_set("io");
        assert_eq!(unnamed.settings().name.as_deref(), Some("io"));
        // `name` is not a key: the table's header names the pool.
        let m = error("[pools.p]\nadapter = \"m.A\"\nname = \"q\"\n", "pools");
        assert!(m.contains("pools.p.name = \"q\": unknown key"), "{m}");
    }

    #[test]
    fn durations_and_sizes() {
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
