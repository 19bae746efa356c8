//! Remote workers on this machine: `snakepit-worker serve` processes on
//! `127.0.0.1:0`, and certificates made at test time with the `openssl`
//! command line. Every process carries the tag it is given (a test's
//! scope tag, so the scope kills any a test leaves behind, pass or fail).
//! Shared by the tests and the bench's `remote` scenario.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const SHOWCASE: &str = "snakepit_showcase.adapter.ShowcaseAdapter";
const THREADED_SHOWCASE: &str = "snakepit_showcase.adapter.ThreadedShowcaseAdapter";

/// The repository's `python` directory (the worker package).
pub fn python_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python")
}

/// Certificates for one test: a CA, a server certificate for
/// `model-workers.ml.svc`, `localhost` and `127.0.0.1`, a client
/// certificate, and a second CA that signed nothing of these.
pub struct Certs {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub other_ca: PathBuf,
}

/// The name in the server certificate that no address is.
pub const AUTHORITY: &str = "model-workers.ml.svc";

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running openssl (the tests need the openssl command)");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Certs {
    /// Makes the certificates in `dir`.
    pub fn generate(dir: &Path) -> Certs {
        let key = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        for (name, cn) in [("ca", "snakepit test CA"), ("other-ca", "another CA")] {
            let mut args = vec!["req", "-x509"];
            args.extend(key);
            let keyout = format!("{name}.key");
            let out = format!("{name}.crt");
            let subj = format!("/CN={cn}");
            args.extend([
                "-keyout", &keyout, "-out", &out, "-days", "2", "-subj", &subj,
            ]);
            openssl(dir, &args);
        }
        std::fs::write(
            dir.join("server.ext"),
            format!("subjectAltName=DNS:{AUTHORITY},DNS:localhost,IP:127.0.0.1\n"),
        )
        .unwrap();
        std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
        for (name, cn) in [("server", AUTHORITY), ("client", "snakepit-host")] {
            let mut args = vec!["req"];
            args.extend(key);
            let keyout = format!("{name}.key");
            let csr = format!("{name}.csr");
            let subj = format!("/CN={cn}");
            args.extend(["-keyout", &keyout, "-out", &csr, "-subj", &subj]);
            openssl(dir, &args);
            let crt = format!("{name}.crt");
            let ext = format!("{name}.ext");
            openssl(
                dir,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    "ca.crt",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-out",
                    &crt,
                    "-days",
                    "2",
                    "-extfile",
                    &ext,
                ],
            );
        }
        Certs {
            ca: dir.join("ca.crt"),
            server_cert: dir.join("server.crt"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.crt"),
            client_key: dir.join("client.key"),
            other_ca: dir.join("other-ca.crt"),
        }
    }
}

/// How to start one `serve` worker.
#[derive(Clone)]
pub struct Serve {
    /// `--threads N`; `None` for the process profile.
    pub threads: Option<usize>,
    /// Serve TLS with the server certificate; with `Some(true)`, also
    /// demand a client certificate signed by the CA.
    pub tls: Option<bool>,
    /// `--token-file`.
    pub token_file: Option<PathBuf>,
    /// `--grace` in seconds.
    pub grace: u64,
    /// The adapter, if not the showcase (threaded when `threads` is set).
    pub adapter: Option<String>,
    /// `--listen`, when not `127.0.0.1:0`.
    pub listen: Option<String>,
}

impl Default for Serve {
    fn default() -> Self {
        Serve {
            threads: None,
            tls: None,
            token_file: None,
            grace: 30,
            adapter: None,
            listen: None,
        }
    }
}

/// A running `serve` worker, killed on drop.
pub struct RemoteWorker {
    child: Child,
    /// Where it serves calls, `127.0.0.1:port`.
    pub address: String,
    /// Where it serves health checks.
    pub health: String,
    pub stderr_log: PathBuf,
}

impl RemoteWorker {
    /// Starts a worker tagged `tag` (its stderr goes to a file in `dir`)
    /// and waits for its ready line.
    pub fn start(tag: &str, dir: &Path, certs: Option<&Certs>, serve: &Serve) -> RemoteWorker {
        let adapter = serve.adapter.clone().unwrap_or_else(|| {
            if serve.threads.is_some() {
                THREADED_SHOWCASE.to_owned()
            } else {
                SHOWCASE.to_owned()
            }
        });
        let listen = serve.listen.clone().unwrap_or_else(|| "127.0.0.1:0".into());
        let mut cmd = Command::new("python3");
        cmd.args(["-m", "snakepit_bridge", "serve", "--adapter", &adapter])
            .args(["--listen", &listen, "--health-listen", "127.0.0.1:0"])
            .args(["--grace", &serve.grace.to_string()])
            .env("PYTHONPATH", python_dir())
            .env("SNAKEPIT_TEST_TAG", tag)
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .process_group(0);
        if let Some(n) = serve.threads {
            cmd.args(["--threads", &n.to_string()]);
        }
        match (serve.tls, certs) {
            (Some(mutual), Some(certs)) => {
                cmd.arg("--tls-cert")
                    .arg(&certs.server_cert)
                    .arg("--tls-key")
                    .arg(&certs.server_key);
                if mutual {
                    cmd.arg("--tls-client-ca").arg(&certs.ca);
                }
            }
            _ => {
                cmd.arg("--insecure-plaintext");
            }
        }
        if let Some(token) = &serve.token_file {
            cmd.arg("--token-file").arg(token);
        }
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let stderr_log = dir.join(format!(
            "serve-{}.log",
            N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        ));
        cmd.stderr(std::fs::File::create(&stderr_log).unwrap());
        let mut child = cmd
            .spawn()
            .expect("starting python3 -m snakepit_bridge serve");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let ready = loop {
            match lines.next() {
                Some(Ok(line)) if line.starts_with("SNAKEPIT_SERVE_READY") => break line,
                Some(Ok(_)) => continue,
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "the serve worker ended before it was ready: {}",
                        std::fs::read_to_string(&stderr_log).unwrap_or_default()
                    );
                }
            }
        };
        // Keep draining stdout so the worker never blocks on it.
        std::thread::spawn(move || for _ in lines {});
        let field = |name: &str| {
            ready
                .split_whitespace()
                .find_map(|f| f.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("no {name}= in {ready:?}"))
                .to_owned()
        };
        RemoteWorker {
            address: field("listen"),
            health: field("health"),
            child,
            stderr_log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` to the worker.
    pub fn signal(&self, signal: i32) {
        // SAFETY: a plain syscall on our own child.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, signal);
        }
    }

    /// Waits up to `limit` for the worker to exit; its exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<Option<i32>> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status.code());
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// What it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }
}

impl Drop for RemoteWorker {
    fn drop(&mut self) {
        // SAFETY: a plain syscall on our own child's process group.
        unsafe {
            libc::kill(-(self.child.id() as libc::pid_t), libc::SIGCONT);
            libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// Writes a token file in `dir`.
pub fn token_file(dir: &Path, name: &str, token: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("{token}\n")).unwrap();
    path
}
