//! [`PoolSet`]: several named pools started together, from a configuration
//! file or from builders.

use std::path::Path;

use crate::builder::PoolBuilder;
use crate::config::ConfigFile;
use crate::error::Error;
use crate::pool::Pool;

/// Named pools, started together; a call is routed by naming its pool.
///
/// A pool that fails to start does not stop the others: the set keeps its
/// error, [`pool`](PoolSet::pool) returns that error for it, and
/// [`failures`](PoolSet::failures) lists every such pool.
/// [`shutdown`](PoolSet::shutdown) stops every pool at once; otherwise each
/// pool stops when its last handle is dropped, as a [`Pool`] does.
///
/// ```no_run
/// use serde_json::json;
/// use snakepit::PoolSet;
///
/// let set = PoolSet::from_config_file("snakepit.toml")?;
/// for (name, error) in set.failures() {
///     eprintln!("pool {name} is not running: {error}");
/// }
/// let sum = set.pool("compute")?.execute_blocking("add", json!({"a": 1, "b": 2}))?;
/// # Ok::<(), snakepit::Error>(())
/// ```
#[derive(Debug)]
pub struct PoolSet {
    pools: Vec<(String, Result<Pool, Error>)>,
}

impl PoolSet {
    /// Reads the configuration file at `path` (see [`ConfigFile`]) and
    /// starts every pool in it, concurrently.
    ///
    /// Fails with [`Error::InvalidConfig`], before any process starts, when
    /// the file is not valid. Otherwise returns the set even if some pools
    /// failed to start (see [`failures`](PoolSet::failures)).
    pub fn from_config_file(path: impl AsRef<Path>) -> Result<PoolSet, Error> {
        Ok(PoolSet::from_config(&ConfigFile::load(path)?))
    }

    /// Starts every pool of a parsed configuration, concurrently.
    pub fn from_config(config: &ConfigFile) -> PoolSet {
        PoolSet::start(config.pools().iter().map(|p| (p.name(), p.builder())))
    }

    /// Starts one pool per `(name, builder)`, concurrently, and returns once
    /// each has started or failed. A later pool of the same name replaces an
    /// earlier one.
    ///
    /// ```no_run
    /// use snakepit::{Pool, PoolSet, Profile};
    ///
    /// let set = PoolSet::start([
    ///     ("compute", Pool::builder().adapter("snakepit_showcase.adapter.ShowcaseAdapter")),
    ///     (
    ///         "io",
    ///         Pool::builder()
    ///             .adapter("snakepit_showcase.adapter.ThreadedShowcaseAdapter")
    ///             .profile(Profile::Thread { threads: 8 }),
    ///     ),
    /// ]);
    /// assert!(set.failures().is_empty());
    /// ```
    pub fn start<N: Into<String>>(pools: impl IntoIterator<Item = (N, PoolBuilder)>) -> PoolSet {
        let mut wanted: Vec<(String, PoolBuilder)> = Vec::new();
        for (name, builder) in pools {
            let name = name.into();
            wanted.retain(|(n, _)| *n != name);
            let builder = builder.named_unless_set(&name);
            wanted.push((name, builder));
        }
        let pools = std::thread::scope(|scope| {
            let starts: Vec<_> = wanted
                .into_iter()
                .map(|(name, builder)| {
                    let handle = scope.spawn(move || builder.build());
                    (name, handle)
                })
                .collect();
            starts
                .into_iter()
                .map(|(name, handle)| {
                    let result = handle.join().unwrap_or_else(|_| {
                        Err(Error::PoolStart {
                            message: "the thread starting the pool panicked".into(),
                        })
                    });
                    match &result {
                        Ok(_) => log::info!("pool `{name}` started"),
                        Err(e) => log::error!("pool `{name}` failed to start: {e}"),
                    }
                    (name, result)
                })
                .collect()
        });
        PoolSet { pools }
    }

    /// The pool called `name`: its start-up error if it failed to start,
    /// [`Error::InvalidArgument`] naming the pools there are if there is none.
    ///
    /// ```
    /// use snakepit::{ErrorKind, PoolBuilder, PoolSet};
    ///
    /// let set = PoolSet::start(Vec::<(&str, PoolBuilder)>::new()); // no pools
    /// let err = set.pool("compute").unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    /// ```
    pub fn pool(&self, name: &str) -> Result<&Pool, Error> {
        match self.pools.iter().find(|(n, _)| n == name) {
            Some((_, Ok(pool))) => Ok(pool),
            Some((_, Err(e))) => Err(e.clone()),
            None => Err(Error::InvalidArgument {
                argument: "name",
                message: format!(
                    "no pool named {name:?}; the pools are: {}",
                    self.names().collect::<Vec<_>>().join(", ")
                ),
            }),
        }
    }

    /// The names of every pool, running or not, in order.
    ///
    /// ```
    /// use snakepit::{ErrorKind, Pool, PoolSet};
    ///
    /// // A pool whose options cannot work fails before any process starts,
    /// // without stopping the others (none here, so no Python is needed).
    /// let set = PoolSet::start([("broken", Pool::builder().adapter("NotAClassPath"))]);
    /// assert_eq!(set.names().collect::<Vec<_>>(), ["broken"]);
    /// let failures = set.failures();
    /// assert_eq!(failures.len(), 1);
    /// assert_eq!(failures[0].0, "broken");
    /// assert_eq!(failures[0].1.kind(), ErrorKind::InvalidConfig);
    /// ```
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.pools.iter().map(|(n, _)| n.as_str())
    }

    /// The pools that failed to start, with why (see
    /// [`names`](PoolSet::names) for an example).
    pub fn failures(&self) -> Vec<(&str, &Error)> {
        self.pools
            .iter()
            .filter_map(|(n, r)| r.as_ref().err().map(|e| (n.as_str(), e)))
            .collect()
    }

    /// Shuts every running pool down, concurrently, and blocks until all
    /// their workers are gone (see [`Pool::shutdown`]).
    pub fn shutdown(&self) {
        shutdown_all(self.running());
    }

    /// Installs a Ctrl-C (SIGINT) handler that shuts every running pool
    /// down, as [`shutdown`](PoolSet::shutdown) does, and then exits the
    /// program with status 130, so no worker outlives an interrupted
    /// program. A process has one such handler: a second call (for this
    /// set, another, or a [`Pool`]) fails with [`Error::SignalHandler`].
    ///
    /// ```no_run
    /// let set = snakepit::PoolSet::from_config_file("snakepit.toml")?;
    /// set.shutdown_on_ctrl_c()?;
    /// # Ok::<(), snakepit::Error>(())
    /// ```
    pub fn shutdown_on_ctrl_c(&self) -> Result<(), Error> {
        let pools: Vec<Pool> = self.running().cloned().collect();
        crate::interrupt::shutdown_on_ctrl_c("the pools", move || shutdown_all(&pools))
    }

    /// The pools that started.
    fn running(&self) -> impl Iterator<Item = &Pool> {
        self.pools.iter().filter_map(|(_, r)| r.as_ref().ok())
    }
}

/// Shuts `pools` down concurrently: each waits out its own grace period,
/// so the set takes as long as its slowest pool, not their sum.
fn shutdown_all<'a>(pools: impl IntoIterator<Item = &'a Pool>) {
    std::thread::scope(|scope| {
        for pool in pools {
            scope.spawn(|| pool.shutdown());
        }
    });
}
