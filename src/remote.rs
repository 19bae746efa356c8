//! Remote workers: [`Remote`] says where a pool finds Python workers that
//! run on other machines (started by Kubernetes, say, with
//! `snakepit-worker serve`), and [`Tls`] how it proves who it is to them.
//!
//! A remote pool has one slot per endpoint, up to
//! [`max_endpoints`](Remote::max_endpoints). The pool finds the endpoints
//! itself: a resolver thread asks DNS (or the list or closure given) every
//! [`resolve_every`](Remote::resolve_every), and at once after an endpoint
//! fails. A new address takes a free slot; an address that vanished drains
//! (its calls in flight finish, then the slot is free). Each endpoint's
//! capacity is what its worker reports: 1 for the process profile, its
//! thread count for the thread profile.
//!
//! The README's "Running workers on Kubernetes" section walks through a
//! deployment, and its "Remote workers: what fails how" section gives the
//! failure semantics.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;

/// Where the endpoints come from.
#[derive(Clone)]
pub(crate) enum Source {
    /// A DNS name and port, resolved to every address it has (a headless
    /// Kubernetes Service gives one per ready pod).
    Dns(String),
    /// A fixed list of `host:port` addresses.
    Endpoints(Vec<String>),
    /// A closure that returns the current `host:port` addresses.
    Discover(Arc<DiscoverFn>),
}

/// The closure behind [`Remote::discover`].
pub(crate) type DiscoverFn = dyn Fn() -> Result<Vec<String>, String> + Send + Sync;

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Dns(name) => f.debug_tuple("Dns").field(name).finish(),
            Source::Endpoints(list) => f.debug_tuple("Endpoints").field(list).finish(),
            Source::Discover(_) => f.write_str("Discover(..)"),
        }
    }
}

/// Where a pool's remote workers are and how to reach them; given to
/// [`PoolBuilder::remote`](crate::PoolBuilder::remote).
///
/// ```no_run
/// use snakepit::{Pool, Remote, Tls};
/// use std::time::Duration;
///
/// let pool = Pool::builder()
///     .adapter("my_models.Model")
///     .remote(
///         Remote::dns("model-workers.ml.svc.cluster.local:50051")
///             .max_endpoints(32)
///             .resolve_every(Duration::from_secs(10))
///             .tls(Tls::ca_file("/etc/snakepit/ca.crt")?
///                 .identity_files("/etc/snakepit/tls.crt", "/etc/snakepit/tls.key")?
///                 .authority("model-workers.ml.svc"))
///             .token_file("/var/run/secrets/snakepit/token"),
///     )
///     .build()?;
/// let answer = pool.execute_blocking("predict", serde_json::json!({"x": [1, 2]}))?;
/// # Ok::<(), snakepit::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Remote {
    pub(crate) source: Source,
    pub(crate) max_endpoints: usize,
    pub(crate) resolve_every: Duration,
    pub(crate) tls: Option<Tls>,
    pub(crate) token_file: Option<PathBuf>,
    pub(crate) insecure_plaintext: bool,
    pub(crate) keepalive: Duration,
    pub(crate) keepalive_timeout: Duration,
    pub(crate) max_calls_per_endpoint: usize,
}

/// Default for [`Remote::max_endpoints`].
pub const DEFAULT_MAX_ENDPOINTS: usize = 16;

impl Remote {
    fn new(source: Source) -> Remote {
        Remote {
            source,
            max_endpoints: DEFAULT_MAX_ENDPOINTS,
            resolve_every: Duration::from_secs(10),
            tls: None,
            token_file: None,
            insecure_plaintext: false,
            keepalive: Duration::from_secs(2),
            keepalive_timeout: Duration::from_secs(3),
            max_calls_per_endpoint: 64,
        }
    }

    /// The workers behind a DNS name, as `name:port`: every address the
    /// name resolves to is one endpoint. A headless Kubernetes Service
    /// (`clusterIP: None`) resolves to its ready pods.
    ///
    /// When DNS fails, the pool keeps the endpoints it last found.
    pub fn dns(name_and_port: impl Into<String>) -> Remote {
        Remote::new(Source::Dns(name_and_port.into()))
    }

    /// A fixed set of `host:port` endpoints (each host resolved by DNS).
    pub fn endpoints<I, S>(addresses: I) -> Remote
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Remote::new(Source::Endpoints(
            addresses.into_iter().map(Into::into).collect(),
        ))
    }

    /// Endpoints from a closure of yours (a service registry, a file),
    /// called on every resolve: it returns the current `host:port`
    /// addresses, or an error message (then the last good set is kept).
    pub fn discover<F>(discover: F) -> Remote
    where
        F: Fn() -> Result<Vec<String>, String> + Send + Sync + 'static,
    {
        Remote::new(Source::Discover(Arc::new(discover)))
    }

    /// The most endpoints the pool uses at once: the length of its slot
    /// array. Addresses beyond it are left out (sorted order decides which;
    /// a warning says so). 1 to 4096. Default: 16.
    pub fn max_endpoints(mut self, n: usize) -> Remote {
        self.max_endpoints = n;
        self
    }

    /// How often the endpoints are resolved again. Endpoints are also
    /// resolved at once after one fails. Default: 10 s.
    pub fn resolve_every(mut self, interval: Duration) -> Remote {
        self.resolve_every = interval;
        self
    }

    /// Talk TLS to the workers (needs the cargo feature `tls`; without it
    /// [`build`](crate::PoolBuilder::build) refuses the pool, naming the
    /// feature).
    pub fn tls(mut self, tls: Tls) -> Remote {
        self.tls = Some(tls);
        self
    }

    /// Send the token in this file with every call (`authorization: Bearer
    /// <token>` metadata), as the workers' `--token-file` expects. The file
    /// is read at build and again whenever it changes (a rotated Kubernetes
    /// Secret); surrounding whitespace is not part of the token. Refused
    /// over plaintext unless [`insecure_plaintext`](Remote::insecure_plaintext)
    /// is set.
    pub fn token_file(mut self, path: impl Into<PathBuf>) -> Remote {
        self.token_file = Some(path.into());
        self
    }

    /// Allow a token without TLS: anyone on the network path can read it.
    /// For a trusted network or a test only.
    pub fn insecure_plaintext(mut self) -> Remote {
        self.insecure_plaintext = true;
        self
    }

    /// How often an idle connection is checked with an HTTP/2 ping, and
    /// how long an answer may take: a stopped or cut-off endpoint is
    /// noticed within `interval + timeout` and handled as a dead one (its
    /// calls fail with [`Error::WorkerCrashed`]). Default: 2 s and 3 s.
    pub fn keepalive(mut self, interval: Duration, timeout: Duration) -> Remote {
        self.keepalive = interval;
        self.keepalive_timeout = timeout;
        self
    }

    /// The most calls sent to one endpoint at once, whatever capacity it
    /// reports (each is a lane thread on the host). 1 to 1024. Default: 64.
    pub fn max_calls_per_endpoint(mut self, n: usize) -> Remote {
        self.max_calls_per_endpoint = n;
        self
    }

    /// Checks the options that do not depend on the rest of the pool.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        let invalid = |message: String| {
            Err(Error::InvalidConfig {
                option: "remote",
                message,
            })
        };
        if self.max_endpoints == 0 || self.max_endpoints > 4096 {
            return invalid(format!(
                "max_endpoints must be 1 to 4096, got {}",
                self.max_endpoints
            ));
        }
        if self.max_calls_per_endpoint == 0 || self.max_calls_per_endpoint > 1024 {
            return invalid(format!(
                "max_calls_per_endpoint must be 1 to 1024, got {}",
                self.max_calls_per_endpoint
            ));
        }
        for (name, d) in [
            ("resolve_every", self.resolve_every),
            ("keepalive interval", self.keepalive),
            ("keepalive timeout", self.keepalive_timeout),
        ] {
            if d < Duration::from_millis(10) || d > Duration::from_secs(24 * 3600) {
                return invalid(format!("{name} must be 10 ms to 24 h, got {d:?}"));
            }
        }
        match &self.source {
            Source::Dns(name) if !has_port(name) => {
                return invalid(format!(
                    "Remote::dns expects \"name:port\", e.g. \
                     \"model-workers.ml.svc.cluster.local:50051\", got {name:?}"
                ))
            }
            Source::Endpoints(list) => {
                if let Some(bad) = list.iter().find(|a| !has_port(a)) {
                    return invalid(format!(
                        "Remote::endpoints expects \"host:port\" addresses, got {bad:?}"
                    ));
                }
            }
            _ => {}
        }
        if self.tls.is_some() && !cfg!(feature = "tls") {
            return invalid(
                "TLS needs the cargo feature `tls` (snakepit = { features = [\"tls\"] }), \
                 which this build does not have"
                    .into(),
            );
        }
        if self.token_file.is_some() && self.tls.is_none() && !self.insecure_plaintext {
            return invalid(
                "a token over plaintext can be read by anyone on the network path: \
                 add .tls(..), or .insecure_plaintext() for a trusted network"
                    .into(),
            );
        }
        if let Some(path) = &self.token_file {
            read_token(path).map_err(|message| Error::InvalidConfig {
                option: "remote",
                message,
            })?;
        }
        Ok(())
    }
}

/// The token in `path`, without surrounding whitespace.
pub(crate) fn read_token(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the token file {}: {e}", path.display()))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(format!("the token file {} is empty", path.display()));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "the token in {} must be printable ASCII without spaces",
            path.display()
        ));
    }
    Ok(token.to_owned())
}

/// Whether `address` ends in `:port`.
fn has_port(address: &str) -> bool {
    address
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
}

/// TLS to remote workers: the certificate authority that signed their
/// certificates, optionally a client identity for mutual TLS, and the name
/// their certificates carry.
///
/// ```no_run
/// use snakepit::Tls;
///
/// let tls = Tls::ca_file("ca.crt")?
///     .identity_files("client.crt", "client.key")?
///     .authority("model-workers.ml.svc");
/// # Ok::<(), snakepit::Error>(())
/// ```
#[derive(Clone)]
pub struct Tls {
    pub(crate) ca: Vec<u8>,
    pub(crate) identity: Option<(Vec<u8>, Vec<u8>)>,
    pub(crate) authority: Option<String>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("ca", &format_args!("{} bytes", self.ca.len()))
            .field("identity", &self.identity.is_some())
            .field("authority", &self.authority)
            .finish()
    }
}

impl Tls {
    /// Trust the certificate authority in this PEM file (and only it).
    /// Fails with [`Error::InvalidConfig`] when the file cannot be read or
    /// holds no PEM certificate.
    pub fn ca_file(path: impl AsRef<Path>) -> Result<Tls, Error> {
        let ca = read_pem(path.as_ref(), "CERTIFICATE")?;
        Ok(Tls::ca_pem(ca))
    }

    /// Trust the certificate authority in these PEM bytes.
    pub fn ca_pem(pem: impl Into<Vec<u8>>) -> Tls {
        Tls {
            ca: pem.into(),
            identity: None,
            authority: None,
        }
    }

    /// Present this client certificate and key (PEM files) to the workers,
    /// for workers started with `--tls-client-ca` (mutual TLS).
    pub fn identity_files(
        self,
        certificate: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Tls, Error> {
        let cert = read_pem(certificate.as_ref(), "CERTIFICATE")?;
        let key = read_pem(key.as_ref(), "PRIVATE KEY")?;
        Ok(self.identity_pem(cert, key))
    }

    /// Present this client certificate and key (PEM bytes).
    pub fn identity_pem(mut self, certificate: impl Into<Vec<u8>>, key: impl Into<Vec<u8>>) -> Tls {
        self.identity = Some((certificate.into(), key.into()));
        self
    }

    /// The name the workers' certificates carry, checked instead of the
    /// address dialled (which, for pods found by DNS, is an IP address no
    /// certificate names). Default: the host part of the address.
    pub fn authority(mut self, name: impl Into<String>) -> Tls {
        self.authority = Some(name.into());
        self
    }
}

/// Reads a PEM file that must hold a block whose label ends in `label`.
fn read_pem(path: &Path, label: &str) -> Result<Vec<u8>, Error> {
    let invalid = |message: String| Error::InvalidConfig {
        option: "remote",
        message,
    };
    let bytes =
        std::fs::read(path).map_err(|e| invalid(format!("cannot read {}: {e}", path.display())))?;
    let text = String::from_utf8_lossy(&bytes);
    let found = text.lines().any(|line| {
        line.starts_with("-----BEGIN ") && line.trim_end().ends_with(&format!("{label}-----"))
    });
    if !found {
        return Err(invalid(format!(
            "{} holds no PEM {label} block",
            path.display()
        )));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_without_a_port_are_refused() {
        for remote in [Remote::dns("workers.svc"), Remote::endpoints(["10.0.0.1"])] {
            let err = remote.validate().unwrap_err();
            assert!(
                matches!(&err, Error::InvalidConfig { option: "remote", message } if message.contains("port")),
                "{err}"
            );
        }
        Remote::dns("workers.svc:50051").validate().unwrap();
        Remote::endpoints(["[::1]:50051", "10.0.0.1:1"])
            .validate()
            .unwrap();
    }

    #[test]
    fn a_token_over_plaintext_needs_the_explicit_option() {
        let dir = std::env::temp_dir().join(format!("snakepit-remote-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let token = dir.join("token");
        std::fs::write(&token, "s3cret\n").unwrap();
        let remote = Remote::endpoints(["127.0.0.1:1"]).token_file(&token);
        let err = remote.clone().validate().unwrap_err();
        assert!(err.to_string().contains("insecure_plaintext"), "{err}");
        remote.insecure_plaintext().validate().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_or_empty_token_file_is_refused_at_build() {
        let missing = Remote::endpoints(["127.0.0.1:1"])
            .token_file("/nonexistent/snakepit/token")
            .insecure_plaintext();
        assert!(missing
            .validate()
            .unwrap_err()
            .to_string()
            .contains("/nonexistent/snakepit/token"));
    }

    #[test]
    fn pem_files_are_checked_for_their_block() {
        let dir = std::env::temp_dir().join(format!("snakepit-pem-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let not_pem = dir.join("ca.crt");
        std::fs::write(&not_pem, "hello").unwrap();
        let err = Tls::ca_file(&not_pem).unwrap_err();
        assert!(err.to_string().contains("no PEM CERTIFICATE"), "{err}");
        let err = Tls::ca_file(dir.join("absent.crt")).unwrap_err();
        assert!(err.to_string().contains("cannot read"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tls_without_the_feature_names_the_feature() {
        let remote = Remote::endpoints(["127.0.0.1:1"]).tls(Tls::ca_pem("x"));
        let checked = remote.validate();
        if cfg!(feature = "tls") {
            checked.unwrap();
        } else {
            assert!(checked.unwrap_err().to_string().contains("`tls`"));
        }
    }
}
