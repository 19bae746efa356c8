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

use toml::{Table, Value};

use crate::builder::PoolBuilder;
use crate::error::Error;
use crate::options::Profile;
use crate::slots::MAX_CAPACITY;

mod table;
mod values;

pub(crate) use table::describe_options;
use table::OPTIONS;
pub use values::parse_duration;
use values::{allowed, show};

/// The most workers one pool may have (as [`PoolBuilder::workers`] allows).
const MAX_WORKERS: i64 = 4096;

/// What a duration option takes; the bound is [`crate::MAX_DURATION`].
const DURATION: &str =
    "a duration such as \"500ms\", \"30s\", \"5m\" or \"1h\", at most 100 years (\"876600h\")";
const SIZE: &str = "a size in bytes: an integer, or a string such as \"512MiB\" or \"2GB\"";

/// A parsed and checked configuration file: its pools, in file order.
///
/// ```
/// use snakepit::config::ConfigFile;
///
/// let path = std::env::temp_dir().join(format!("snakepit-doc-{}.toml", std::process::id()));
/// std::fs::write(
///     &path,
///     r#"
///     [pools.compute]
///     adapter = "my_pkg.adapters.MathAdapter"
///     workers = 8
///
///     [pools.io]
///     adapter = "my_pkg.adapters.FetchAdapter"
///     "#,
/// )?;
/// let config = ConfigFile::load(&path)?; // reads and checks; starts nothing
/// for pool in config.pools() {
///     println!("{}: {} x {}", pool.name(), pool.workers(), pool.adapter());
/// }
/// assert_eq!(config.pools().len(), 2);
/// assert_eq!(config.path(), path);
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct ConfigFile {
    path: PathBuf,
    pools: Vec<PoolConfig>,
}

/// One `[pools.NAME]` table of a [`ConfigFile`], merged with `[defaults]`.
///
/// ```
/// use snakepit::config::ConfigFile;
/// use snakepit::Profile;
///
/// let config = ConfigFile::parse(
///     r#"
///     [defaults]
///     workers = 4
///
///     [pools.io]
///     adapter = "my_pkg.adapters.FetchAdapter"
///     profile = "thread"
///     threads = 16
///     "#,
///     "snakepit.toml".as_ref(),
/// )?;
/// let io = config.pool("io")?;
/// assert_eq!(io.name(), "io");
/// assert_eq!(io.adapter(), "my_pkg.adapters.FetchAdapter");
/// assert_eq!(io.workers(), 4); // from [defaults]
/// assert_eq!(io.profile(), Profile::Thread { threads: 16 });
///
/// // Options a file cannot hold are added to its builder before `build()`.
/// let builder = io.builder().event_handler(snakepit::events::NopEvents);
/// # let _ = builder;
/// # Ok::<(), snakepit::Error>(())
/// ```
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
    ///
    /// ```
    /// use snakepit::config::ConfigFile;
    /// use snakepit::ErrorKind;
    ///
    /// let config = ConfigFile::parse(
    ///     "[pools.compute]\nadapter = \"pkg.mod.A\"\n",
    ///     "snakepit.toml".as_ref(),
    /// )?;
    /// assert_eq!(config.pool("compute")?.name(), "compute");
    /// let err = config.pool("gpu").unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    /// assert!(err.to_string().contains("compute"), "{err}");
    /// # Ok::<(), snakepit::Error>(())
    /// ```
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
            (Some((false, _)), None) => builder.profile(Profile::Process),
            // Left at its default, so that a remote pool (which has no
            // profile of its own) is not refused for setting one.
            (None, None) => builder,
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
    fn a_remote_table_is_read_into_the_pools_builder() {
        let config = parse(
            r#"
            [pools.models]
            adapter = "pkg.mod.Model"
            call_timeout = "20s"
            [pools.models.remote]
            endpoints = ["10.0.0.5:50051", "10.0.0.6:50051"]
            max_endpoints = 8
            resolve_every = "5s"
            keepalive = { interval = "1s", timeout = "2s" }
            max_calls_per_endpoint = 4
            "#,
        )
        .unwrap();
        let builder = config.pool("models").unwrap().builder();
        let remote = builder.settings().remote.as_ref().expect("a remote pool");
        match &remote.source {
            crate::remote::Source::Endpoints(list) => {
                assert_eq!(list, &["10.0.0.5:50051", "10.0.0.6:50051"])
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(remote.max_endpoints, 8);
        assert_eq!(remote.resolve_every, Duration::from_secs(5));
        assert_eq!(remote.keepalive, Duration::from_secs(1));
        assert_eq!(remote.keepalive_timeout, Duration::from_secs(2));
        assert_eq!(remote.max_calls_per_endpoint, 4);
        // Nothing about local processes was set by reading the file, so the
        // pool is not refused for it.
        builder.validate().unwrap();

        let pool = |body: &str| format!("[pools.p]\nadapter = \"pkg.mod.A\"\n{body}\n");
        let m = error(
            &pool("remote = { dns = \"w.svc:1\", max_endpoint = 3 }"),
            "remote",
        );
        assert!(m.contains("did you mean `max_endpoints`"), "{m}");
        let m = error(&pool("remote = { max_endpoints = 3 }"), "remote");
        assert!(m.contains("exactly one of dns"), "{m}");
        let m = error(
            &pool("remote = { dns = \"w.svc:1\", tls = { cert_file = \"c\" } }"),
            "remote",
        );
        assert!(m.contains("ca_file"), "{m}");
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
    fn a_duration_past_one_hundred_years_is_a_clear_error_not_a_hang() {
        let pool = |body: &str| format!("[pools.p]\nadapter = \"pkg.mod.A\"\n{body}\n");
        for key in [
            "startup_timeout",
            "call_timeout",
            "queue_timeout",
            "shutdown_grace",
            "max_lifetime",
            "health_check_interval",
            "memory_check_interval",
        ] {
            for value in ["\"3000000000000000h\"", "\"876600.001h\""] {
                let m = error(&pool(&format!("{key} = {value}")), key);
                assert!(m.contains("must be at most 3155760000 seconds"), "{m}");
            }
            assert!(
                parse(&pool(&format!("{key} = \"876600h\""))).is_ok(),
                "{key}"
            );
        }
        let m = error(
            &pool("restart_backoff = { min = \"1s\", max = \"3000000000000000h\" }"),
            "restart_backoff",
        );
        assert!(m.contains("must be at most"), "{m}");
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
}
