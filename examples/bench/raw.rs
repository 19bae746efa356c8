//! The raw limit: the same Python worker script the pool runs, started by
//! hand, called with a bare blocking grpcio client. No dispatcher, no lanes,
//! no JSON: one `ExecuteTool` message out, one back.
//!
//! The messages are the crate's own generated code, compiled into the bench
//! (the crate keeps them private) by `tests/common/wire.rs`, which the tests
//! that speak the wire share.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use grpcio::{CallOption, ChannelBuilder, Client, EnvBuilder, Environment};
use protobuf::well_known_types::any::Any;

#[path = "../../tests/common/wire.rs"]
mod wire;

use wire::messages::{ExecuteToolRequest, ExecuteToolResponse};
use wire::EXECUTE_TOOL;

/// The largest message either side takes (the pool's default).
const MAX_MESSAGE: i32 = 128 << 20;

/// One worker process, ready for clients.
pub struct RawWorker {
    address: String,
    _process: Process,
}

/// A bare blocking client with its own gRPC environment (completion-queue
/// threads), as a program without the pool would have.
pub struct RawClient {
    client: Client,
}

/// A started worker process. Dropping it kills its process group and
/// removes its files, also when a panic unwinds.
struct Process {
    child: Child,
    dir: PathBuf,
}

impl RawWorker {
    /// Starts `python/grpc_server.py` with the showcase adapter on a Unix
    /// socket and waits for its ready file.
    pub fn start(python: &Path) -> Result<RawWorker, String> {
        Self::start_with(python, &[])
    }

    /// [`start`](RawWorker::start) with more flags, e.g. `--transport socket`.
    pub fn start_with(python: &Path, extra: &[&str]) -> Result<RawWorker, String> {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = private_dir()?;
        let socket = dir.join("raw.sock");
        let ready = dir.join("raw.ready");
        let host = std::process::id() as libc::pid_t;
        let mut cmd = Command::new(python);
        cmd.arg(repo.join("python/grpc_server.py"))
            .args(["--adapter", "snakepit_showcase.adapter.ShowcaseAdapter"])
            .arg("--socket")
            .arg(&socket)
            .arg("--max-message-bytes")
            .arg(MAX_MESSAGE.to_string())
            .args(extra)
            .env("PYTHONPATH", repo.join("python"))
            .env("SNAKEPIT_READY_FILE", &ready)
            .env("SNAKEPIT_LOG_LEVEL", "WARNING")
            // The worker exits when this pipe closes, i.e. when we die.
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .process_group(0);
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::getppid() != host {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
        // From here on, Drop cleans up whatever happens.
        let mut process = Process { child, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        let address = loop {
            if let Ok(text) = std::fs::read_to_string(&ready) {
                break text.trim().to_owned();
            }
            if let Ok(Some(status)) = process.child.try_wait() {
                return Err(format!("the raw worker exited during start-up: {status}"));
            }
            if Instant::now() > deadline {
                return Err("the raw worker was not ready within 30 s".into());
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        Ok(RawWorker {
            address,
            _process: process,
        })
    }

    /// A new client on a new environment. The pool's environment is made
    /// the same way (`EnvBuilder::new()`: one completion queue per CPU).
    pub fn connect(&self) -> RawClient {
        self.connect_on(new_env())
    }

    /// A new client on `env`, which several clients may share, as the
    /// pool's workers share one.
    pub fn connect_on(&self, env: Arc<Environment>) -> RawClient {
        let channel = ChannelBuilder::new(env)
            .max_send_message_len(MAX_MESSAGE)
            .max_receive_message_len(MAX_MESSAGE)
            .connect(&self.address);
        RawClient {
            client: Client::new(channel),
        }
    }
}

/// A bare blocking client of the socket transport: one Unix stream
/// connection, frames written and read by hand (see proto/socket-framing.md),
/// no pool.
pub struct RawSocketClient {
    stream: std::os::unix::net::UnixStream,
    next_id: u32,
}

impl RawWorker {
    /// A connection to a worker started with `--transport socket`.
    pub fn connect_socket(&self) -> RawSocketClient {
        let path = self.address.strip_prefix("unix:").expect("a unix: address");
        RawSocketClient {
            stream: std::os::unix::net::UnixStream::connect(path).expect("connecting"),
            next_id: 0,
        }
    }
}

impl RawSocketClient {
    /// One `Execute` frame and its `Result` frame (no binary segments);
    /// panics unless the tool succeeded.
    pub fn execute(&mut self, req: &ExecuteToolRequest) -> ExecuteToolResponse {
        use protobuf::Message;
        use std::io::{Read, Write};
        self.next_id += 1;
        let body = req.write_to_bytes().expect("encoding");
        let mut frame = Vec::with_capacity(16 + body.len());
        frame.extend_from_slice(b"SP");
        frame.extend_from_slice(&[3, 0]); // Execute, no flags
        frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
        frame.extend_from_slice(&self.next_id.to_le_bytes());
        frame.extend_from_slice(&0u32.to_le_bytes());
        frame.extend_from_slice(&body);
        self.stream.write_all(&frame).expect("writing");
        let mut header = [0u8; 16];
        self.stream.read_exact(&mut header).expect("reading");
        assert_eq!((&header[..2], header[2]), (&b"SP"[..], 4), "a Result frame");
        let len = u32::from_le_bytes(header[4..8].try_into().unwrap()) as usize;
        assert_eq!(&header[12..16], &[0, 0, 0, 0], "no segments");
        let mut body = vec![0u8; len];
        self.stream.read_exact(&mut body).expect("reading");
        let resp = ExecuteToolResponse::parse_from_bytes(&body).expect("decoding");
        assert!(resp.success, "raw call failed: {}", resp.error_message);
        resp
    }
}

impl RawClient {
    /// One blocking `ExecuteTool` call; panics unless the tool succeeded.
    pub fn execute(&self, req: &ExecuteToolRequest) -> ExecuteToolResponse {
        let opt = CallOption::default().timeout(Duration::from_secs(60));
        let resp = self
            .client
            .unary_call(&EXECUTE_TOOL, req, opt)
            .expect("raw ExecuteTool call");
        assert!(resp.success, "raw call failed: {}", resp.error_message);
        resp
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // SAFETY: plain syscall on the group we created.
        unsafe {
            libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL);
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A gRPC environment like the pool's.
pub fn new_env() -> Arc<Environment> {
    Arc::new(EnvBuilder::new().name_prefix("bench-raw").build())
}

/// A request for `tool` with no arguments.
pub fn request(tool: &str) -> ExecuteToolRequest {
    let mut req = ExecuteToolRequest::new();
    req.tool_name = tool.to_owned();
    req
}

/// A request for `tool` with keyword arguments given as JSON text, wrapped
/// the way the pool sends them.
pub fn request_with(tool: &str, arguments: &[(&str, &str)]) -> ExecuteToolRequest {
    let mut req = request(tool);
    for (name, json) in arguments {
        let mut any = Any::new();
        any.type_url = "type.googleapis.com/google.protobuf.StringValue".into();
        any.value = json.as_bytes().to_vec();
        req.parameters.insert(name.to_string(), any);
    }
    req
}

/// A fresh directory only this user can enter, for the socket.
fn private_dir() -> Result<PathBuf, String> {
    use std::os::unix::fs::DirBuilderExt;
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("snakepit-bench-{}-{n}", std::process::id()));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}
