//! The local launcher: Python worker processes that are children of the
//! host. How one is launched, how its readiness and its death are
//! observed, and how it is stopped.
//!
//! Each process is the leader of its own process group, so signals sent to
//! the group reach whatever the tools started. It is asked to receive
//! SIGTERM when the host thread that started it dies (parent-death signal),
//! and it watches its stdin: the host holds the only write end, so EOF
//! means the host is gone, however it died.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::{ExitWatch, Launcher, OnExit, OnWithdraw, Process, Target};
use crate::deadline::later;
use crate::error::Exit;
use crate::pool_token::{self, PoolToken};

/// Lines of stderr kept for error reports.
const STDERR_TAIL_LINES: usize = 60;

/// Bytes of stderr kept for error reports, whatever the line count: a
/// worker writing huge lines must not grow the host.
const STDERR_TAIL_BYTES: usize = 64 * 1024;

/// The longest line of worker output logged or kept; the rest of a longer
/// line is dropped as it is read, and the line ends with
/// `... [cut N bytes]`.
const MAX_LINE_BYTES: usize = 8 * 1024;

/// How often start-up looks for the ready file.
const READY_POLL: Duration = Duration::from_millis(2);

/// Starts the pool's workers as local Python children, each listening on a
/// Unix socket in the pool's private directory.
#[derive(Debug)]
pub(crate) struct LocalLauncher {
    pub spec: LaunchSpec,
    pub socket_dir: PathBuf,
}

impl Launcher for LocalLauncher {
    fn launch(
        &self,
        target: Target<'_>,
        on_exit: OnExit,
        _on_withdraw: OnWithdraw,
    ) -> Result<Arc<dyn Process>, String> {
        let socket = self
            .socket_dir
            .join(format!("w{}-{}.sock", target.slot, target.generation));
        let process = PythonProcess::launch(&self.spec, target, &socket, on_exit)
            .map_err(|f| describe(&self.spec, f))?;
        Ok(Arc::new(process))
    }
}

/// Everything needed to launch a worker process.
#[derive(Debug, Clone)]
pub(crate) struct LaunchSpec {
    pub python: PathBuf,
    pub files_dir: PathBuf,
    pub python_path: Vec<PathBuf>,
    pub adapter: String,
    pub threads: Option<usize>,
    pub env: Vec<(String, String)>,
    pub max_message_bytes: usize,
    pub adapter_per_worker: bool,
    /// The host's callback server (`unix:PATH`), passed as
    /// `--elixir-address` when it runs.
    pub elixir_address: Option<String>,
    /// A Snakepit-contract worker script to run instead of our launcher.
    pub worker_script: Option<PathBuf>,
    /// The pool's secret, given to every worker (see `pool_token`).
    pub token: PoolToken,
    /// Serve the socket transport's frames (`--transport socket`) instead
    /// of gRPC; our own worker only.
    pub socket_transport: bool,
}

/// The last lines a process wrote to stderr, and whether it closed it.
#[derive(Debug, Default)]
pub(crate) struct StderrTail {
    lines: Mutex<(VecDeque<String>, bool)>,
    closed: Condvar,
}

impl StderrTail {
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().0.iter().cloned().collect()
    }

    /// Waits up to `timeout` for EOF, so a report holds the last words of a
    /// process that just died.
    pub fn wait_closed(&self, timeout: Duration) {
        let deadline = later(Instant::now(), timeout);
        let mut guard = self.lines.lock();
        while !guard.1 {
            if self.closed.wait_until(&mut guard, deadline).timed_out() {
                break;
            }
        }
    }

    fn push(&self, line: String) {
        let mut guard = self.lines.lock();
        guard.0.push_back(line);
        // At most 60 lines: summing them is cheaper than keeping a count.
        while guard.0.len() > STDERR_TAIL_LINES
            || (guard.0.len() > 1
                && guard.0.iter().map(String::len).sum::<usize>() > STDERR_TAIL_BYTES)
        {
            guard.0.pop_front();
        }
    }

    fn close(&self) {
        self.lines.lock().1 = true;
        self.closed.notify_all();
    }
}

/// A running (or just ended) worker process.
#[derive(Debug)]
pub(crate) struct PythonProcess {
    pid: u32,
    pub exit: Arc<ExitWatch>,
    pub stderr: Arc<StderrTail>,
    ready_file: PathBuf,
    socket: PathBuf,
    spec_python: PathBuf,
    adapter: String,
    /// What `finish` releases: the stdin pipe (held open for the life of
    /// the process: its EOF tells the worker that the host is gone) and the
    /// reader and reaper threads.
    held: Mutex<Held>,
}

#[derive(Debug)]
struct Held {
    stdin: Option<ChildStdin>,
    threads: Vec<JoinHandle<()>>,
}

/// Why a process did not become ready.
#[derive(Debug)]
pub(crate) enum StartFailure {
    /// The interpreter could not be executed at all.
    Spawn(std::io::Error),
    /// The process ended during start-up.
    Exited(Exit, Vec<String>),
    /// It did not report ready in time.
    TimedOut(Duration, Vec<String>),
    /// The pool began to shut down first.
    Abandoned,
}

impl PythonProcess {
    /// Starts the worker for `worker_id` (slot `index`), listening on
    /// `socket`. `on_exit` runs on the reaper thread once the process has
    /// ended.
    pub fn launch(
        spec: &LaunchSpec,
        target: Target<'_>,
        socket: &Path,
        on_exit: impl FnOnce(Exit) + Send + 'static,
    ) -> Result<PythonProcess, StartFailure> {
        let worker_id = target.worker;
        let ready_file = socket.with_extension("ready");
        let _ = std::fs::remove_file(socket);
        let _ = std::fs::remove_file(&ready_file);

        // A worker script brings its own packages: ours would shadow them.
        let ours = spec.worker_script.is_none().then(|| spec.files_dir.clone());
        let dirs = ours.into_iter().chain(spec.python_path.iter().cloned());
        let python_path = python_path(dirs).map_err(|e| {
            StartFailure::Spawn(std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
        })?;

        let mut cmd = Command::new(&spec.python);
        cmd.arg("-u");
        match &spec.worker_script {
            None => {
                cmd.arg(spec.files_dir.join("grpc_server.py"))
                    .arg("--adapter")
                    .arg(&spec.adapter)
                    .arg("--socket")
                    .arg(socket)
                    .arg("--worker-id")
                    .arg(worker_id)
                    .arg("--max-message-bytes")
                    .arg(spec.max_message_bytes.to_string());
                if spec.adapter_per_worker {
                    cmd.arg("--adapter-per-worker");
                }
                if spec.socket_transport {
                    cmd.arg("--transport").arg("socket");
                }
            }
            // Only the flags of the Snakepit contract; it reports a TCP
            // port in the ready file.
            Some(script) => {
                cmd.arg(script)
                    .arg("--adapter")
                    .arg(&spec.adapter)
                    .arg("--port")
                    .arg("0");
            }
        }
        if let Some(address) = &spec.elixir_address {
            cmd.arg("--elixir-address").arg(address);
        }
        if let Some(threads) = spec.threads {
            cmd.arg("--max-workers").arg(threads.to_string());
        }
        cmd.env("PYTHONPATH", python_path)
            .env("PYTHONUNBUFFERED", "1")
            .env("SNAKEPIT_READY_FILE", &ready_file)
            .env("SNAKEPIT_WORKER_ID", worker_id)
            .envs(worker_env(spec, target.slot, worker_id))
            // After the user's variables: the pool's own token wins.
            .env(pool_token::ENV_VAR, spec.token.as_str())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let host = std::process::id() as libc::pid_t;
        // SAFETY: between fork and exec only async-signal-safe calls are
        // made (prctl, getppid, _exit), and nothing is allocated.
        unsafe {
            cmd.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                // The host may have died before prctl took effect.
                if libc::getppid() != host {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(StartFailure::Spawn)?;
        let pid = child.id();

        let exit = Arc::new(ExitWatch::default());
        let stderr = Arc::new(StderrTail::default());
        let mut threads = Vec::with_capacity(3);
        let stdin = child.stdin.take();
        if let Some(err) = child.stderr.take() {
            threads.push(forward_lines(err, worker_id, Some(stderr.clone())));
        }
        if let Some(out) = child.stdout.take() {
            threads.push(forward_lines(out, worker_id, None));
        }
        threads.push(reap(child, worker_id, exit.clone(), on_exit));

        Ok(PythonProcess {
            pid,
            exit,
            stderr,
            ready_file,
            socket: socket.to_owned(),
            spec_python: spec.python.clone(),
            adapter: spec.adapter.clone(),
            held: Mutex::new(Held { stdin, threads }),
        })
    }

    /// Waits until the worker reports the address it listens on, it dies,
    /// or `timeout` passes.
    fn wait_ready_raw(
        &self,
        timeout: Duration,
        abandon: &dyn Fn() -> bool,
    ) -> Result<String, StartFailure> {
        let deadline = later(Instant::now(), timeout);
        loop {
            if abandon() {
                return Err(StartFailure::Abandoned);
            }
            if let Ok(address) = std::fs::read_to_string(&self.ready_file) {
                let address = address.trim();
                return Ok(if address.starts_with("unix:") {
                    address.to_owned()
                } else {
                    format!("127.0.0.1:{address}")
                });
            }
            if let Some(exit) = self.exit.get() {
                self.stderr.wait_closed(Duration::from_secs(2));
                return Err(StartFailure::Exited(exit, self.stderr.lines()));
            }
            if Instant::now() >= deadline {
                return Err(StartFailure::TimedOut(timeout, self.stderr.lines()));
            }
            std::thread::sleep(READY_POLL);
        }
    }

    /// Stops the process group: SIGTERM, up to `grace` to exit, then
    /// SIGKILL. Returns once the process is reaped.
    fn terminate_group(&self, grace: Duration) {
        if self.exit.get().is_none() {
            signal_group(self.pid, libc::SIGTERM);
            if self.exit.wait_timeout(grace).is_none() {
                signal_group(self.pid, libc::SIGKILL);
                self.exit.wait_timeout(Duration::from_secs(10));
            }
        }
        self.finish();
    }

    /// Kills the group at once and reaps.
    fn kill_group(&self) {
        if self.exit.get().is_none() {
            signal_group(self.pid, libc::SIGKILL);
            self.exit.wait_timeout(Duration::from_secs(10));
        }
        self.finish();
    }

    /// After the leader has ended: make sure nothing it started lives on in
    /// its group, close our end of its stdin, join the reader threads and
    /// remove its files.
    fn finish(&self) {
        signal_group(self.pid, libc::SIGKILL);
        let mut held = self.held.lock();
        held.stdin.take();
        for t in held.threads.drain(..) {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.socket);
        let _ = std::fs::remove_file(&self.ready_file);
    }
}

impl Drop for PythonProcess {
    fn drop(&mut self) {
        if !self.held.get_mut().threads.is_empty() {
            self.kill_group();
        }
    }
}

impl Process for PythonProcess {
    fn wait_ready(&self, timeout: Duration, abandon: &dyn Fn() -> bool) -> Result<String, String> {
        self.wait_ready_raw(timeout, abandon)
            .map_err(|f| describe_for(&self.spec_python, &self.adapter, f))
    }

    fn exit_status(&self) -> Option<Exit> {
        self.exit.get()
    }

    fn wait_exit(&self, timeout: Duration) -> Option<Exit> {
        self.exit.wait_timeout(timeout)
    }

    fn kill(&self) {
        self.kill_group();
    }

    fn terminate(&self, grace: Duration) {
        self.terminate_group(grace);
    }

    fn resident_bytes(&self) -> Option<u64> {
        resident_bytes(self.pid)
    }

    fn pid(&self) -> Option<u32> {
        Some(self.pid)
    }

    fn identity(&self) -> String {
        format!("pid {}", self.pid)
    }

    fn stderr_tail(&self, settle: Duration) -> Vec<String> {
        self.stderr.wait_closed(settle);
        self.stderr.lines()
    }
}

/// The resident memory of process `pid` in bytes, from
/// `/proc/<pid>/status` (`VmRSS`): the worker's own memory, not the host's.
pub(crate) fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The `PYTHONPATH` for a Python the pool starts: `dirs` first, then the
/// host's own `PYTHONPATH`. Workers and `snakepit doctor` both use it.
pub(crate) fn python_path(
    dirs: impl IntoIterator<Item = PathBuf>,
) -> Result<std::ffi::OsString, std::env::JoinPathsError> {
    let mut all: Vec<PathBuf> = dirs.into_iter().collect();
    if let Some(existing) = std::env::var_os("PYTHONPATH") {
        all.extend(std::env::split_paths(&existing));
    }
    std::env::join_paths(all)
}

/// A configured environment value for one worker: `{worker_index}` becomes
/// its slot index and `{worker_id}` its name.
pub(crate) fn fill_worker_placeholders(value: &str, index: usize, worker_id: &str) -> String {
    value
        .replace("{worker_index}", &index.to_string())
        .replace("{worker_id}", worker_id)
}

/// Words for a start-up failure that tell the user what to do.
fn describe(spec: &LaunchSpec, failure: StartFailure) -> String {
    describe_for(&spec.python, &spec.adapter, failure)
}

fn describe_for(python: &Path, adapter: &str, failure: StartFailure) -> String {
    match failure {
        StartFailure::Spawn(e) if e.kind() == std::io::ErrorKind::NotFound => format!(
            "cannot run the Python interpreter `{}`: {e}. Install Python 3 or point the pool \
             at one with PoolBuilder::python(..) or SNAKEPIT_PYTHON",
            python.display()
        ),
        StartFailure::Spawn(e) => format!(
            "cannot run the Python interpreter `{}`: {e}",
            python.display()
        ),
        StartFailure::Exited(exit, stderr) => format!(
            "the Python process {exit} during start-up (adapter `{adapter}`):\n{}",
            stderr.join("\n")
        ),
        StartFailure::Abandoned => "the pool shut down during start-up".into(),
        StartFailure::TimedOut(timeout, stderr) => format!(
            "not ready after {timeout:?} (raise startup_timeout if the adapter is slow to \
             import); stderr so far:\n{}",
            stderr.join("\n")
        ),
    }
}

/// Variables that size the thread pools of OpenMP and the BLAS libraries.
/// Each defaults to one thread per call the process may run, so a pool of
/// N workers does not start N x cores threads.
const THREAD_COUNT_VARS: [&str; 3] = ["OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"];

/// The variables the pool sets for this worker: the configured ones with
/// `{worker_index}` and `{worker_id}` filled in, then a thread-count default
/// for each of [`THREAD_COUNT_VARS`] that neither they nor the host's
/// environment set.
fn worker_env(spec: &LaunchSpec, index: usize, worker_id: &str) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = spec
        .env
        .iter()
        .map(|(key, value)| {
            let value = fill_worker_placeholders(value, index, worker_id);
            (key.clone(), value)
        })
        .collect();
    let threads = spec.threads.unwrap_or(1).to_string();
    for var in THREAD_COUNT_VARS {
        if !env.iter().any(|(key, _)| key == var) && std::env::var_os(var).is_none() {
            env.push((var.to_owned(), threads.clone()));
        }
    }
    env
}

fn signal_group(pid: u32, signal: libc::c_int) {
    // SAFETY: plain syscall; an already empty group gives ESRCH, ignored.
    unsafe {
        libc::kill(-(pid as libc::pid_t), signal);
    }
}

/// Logs each line a worker writes, tagged with the worker, and keeps the
/// last ones when `tail` is given.
fn forward_lines(
    stream: impl Read + Send + 'static,
    worker_id: &str,
    tail: Option<Arc<StderrTail>>,
) -> JoinHandle<()> {
    let worker_id = worker_id.to_owned();
    thread::Builder::new()
        .name(format!("snakepit-{worker_id}-log"))
        .spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut buf = Vec::with_capacity(MAX_LINE_BYTES);
            while let Some(line) = read_capped_line(&mut reader, &mut buf) {
                log::info!(target: "snakepit::worker", "[{worker_id}] {line}");
                if let Some(tail) = &tail {
                    tail.push(line);
                }
            }
            if let Some(tail) = &tail {
                tail.close();
            }
        })
        .expect("spawning a log thread")
}

/// Reads the next line (up to `\n` or EOF) keeping at most
/// [`MAX_LINE_BYTES`] of it in `buf`: the rest is read in the reader's own
/// buffer and dropped, so a line without end costs no memory. `None` at EOF
/// (or on a read error).
fn read_capped_line(reader: &mut impl BufRead, buf: &mut Vec<u8>) -> Option<String> {
    buf.clear();
    let mut cut = 0usize;
    let mut read_any = false;
    loop {
        let chunk = match reader.fill_buf() {
            Ok(chunk) => chunk,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        if chunk.is_empty() {
            break;
        }
        read_any = true;
        let (part, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(end) => (&chunk[..end], true),
            None => (chunk, false),
        };
        let keep = part.len().min(MAX_LINE_BYTES - buf.len());
        buf.extend_from_slice(&part[..keep]);
        cut += part.len() - keep;
        let used = part.len() + usize::from(done);
        reader.consume(used);
        if done {
            break;
        }
    }
    if !read_any {
        return None;
    }
    let mut line = String::from_utf8_lossy(buf).trim_end().to_owned();
    if cut > 0 {
        line.push_str(&format!(" ... [cut {cut} bytes]"));
    }
    Some(line)
}

/// Waits for the process to end, records how, and tells `on_exit`.
fn reap(
    mut child: Child,
    worker_id: &str,
    exit: Arc<ExitWatch>,
    on_exit: impl FnOnce(Exit) + Send + 'static,
) -> JoinHandle<()> {
    thread::Builder::new()
        .name(format!("snakepit-{worker_id}-reaper"))
        .spawn(move || {
            let status = loop {
                match child.wait() {
                    Ok(status) => break Exit::from(status),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => {
                        break Exit {
                            code: None,
                            signal: None,
                        }
                    }
                }
            };
            exit.set(status);
            on_exit(status);
        })
        .expect("spawning a reaper thread")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(threads: Option<usize>, env: &[(&str, &str)]) -> LaunchSpec {
        LaunchSpec {
            python: "python3".into(),
            files_dir: "/nonexistent".into(),
            python_path: Vec::new(),
            adapter: "m.A".into(),
            threads,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            max_message_bytes: 1 << 20,
            adapter_per_worker: false,
            elixir_address: None,
            worker_script: None,
            token: PoolToken::generate().unwrap(),
            socket_transport: false,
        }
    }

    fn get<'a>(env: &'a [(String, String)], key: &str) -> Option<&'a str> {
        env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// An endless stream of `x` up to `len` bytes, then `rest`: a worker
    /// printing a huge line, without the test holding it in memory.
    struct HugeLine {
        left: usize,
        rest: std::io::Cursor<&'static [u8]>,
    }

    impl Read for HugeLine {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            if self.left == 0 {
                return self.rest.read(out);
            }
            let n = out.len().min(self.left);
            out[..n].fill(b'x');
            self.left -= n;
            Ok(n)
        }
    }

    #[test]
    fn a_huge_line_is_cut_and_the_tail_stays_bounded() {
        const HUGE: usize = 200 << 20;
        let stream = HugeLine {
            left: HUGE,
            rest: std::io::Cursor::new(b"\nafter\n"),
        };
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        let line = read_capped_line(&mut reader, &mut buf).unwrap();
        let cut = HUGE - MAX_LINE_BYTES;
        assert!(
            line.ends_with(&format!("x ... [cut {cut} bytes]")),
            "{}",
            &line[line.len() - 40..]
        );
        assert!(line.len() < MAX_LINE_BYTES + 40);
        assert!(buf.capacity() <= 2 * MAX_LINE_BYTES, "{}", buf.capacity());
        assert_eq!(read_capped_line(&mut reader, &mut buf).unwrap(), "after");
        assert_eq!(read_capped_line(&mut reader, &mut buf), None);

        // The log thread: every kept line is cut, and the tail holds a
        // bounded number of bytes, the newest line last.
        let tail = Arc::new(StderrTail::default());
        let mut many = Vec::new();
        for _ in 0..100 {
            many.resize(many.len() + 50_000, b'y');
            many.push(b'\n');
        }
        many.extend_from_slice(b"last words");
        forward_lines(std::io::Cursor::new(many), "worker-0", Some(tail.clone()))
            .join()
            .unwrap();
        let kept = tail.lines();
        let bytes: usize = kept.iter().map(String::len).sum();
        assert!(bytes <= STDERR_TAIL_BYTES, "{bytes} bytes kept");
        assert_eq!(kept.last().unwrap(), "last words");
        assert!(kept[..kept.len() - 1]
            .iter()
            .all(|l| l.ends_with(&format!(" ... [cut {} bytes]", 50_000 - MAX_LINE_BYTES))));
    }

    #[test]
    fn resident_memory_is_read_from_proc() {
        let rss = resident_bytes(std::process::id()).unwrap();
        assert!(rss > 1 << 20, "{rss}");
        assert_eq!(resident_bytes(u32::MAX), None);
    }

    #[test]
    fn placeholders_become_the_workers_index_and_id() {
        let spec = spec(
            None,
            &[
                ("CUDA_VISIBLE_DEVICES", "{worker_index}"),
                ("LOG_NAME", "run-{worker_id}.log"),
                ("PLAIN", "{\"json\": 1}"),
            ],
        );
        let env = worker_env(&spec, 3, "pool/worker-3");
        assert_eq!(get(&env, "CUDA_VISIBLE_DEVICES"), Some("3"));
        assert_eq!(get(&env, "LOG_NAME"), Some("run-pool/worker-3.log"));
        assert_eq!(get(&env, "PLAIN"), Some("{\"json\": 1}"));
    }

    #[test]
    fn thread_counts_default_to_the_profile_unless_set() {
        // MKL_NUM_THREADS is set by the pool; the other two get the default
        // unless the test runner's environment happens to set them.
        let process = worker_env(&spec(None, &[("MKL_NUM_THREADS", "7")]), 0, "worker-0");
        assert_eq!(get(&process, "MKL_NUM_THREADS"), Some("7"));
        let thread = worker_env(&spec(Some(8), &[]), 0, "worker-0");
        for var in ["OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"] {
            if std::env::var_os(var).is_none() {
                assert_eq!(get(&process, var), Some("1"));
                assert_eq!(get(&thread, var), Some("8"));
            } else {
                assert_eq!(get(&process, var), None, "the host's {var} is inherited");
            }
        }
    }
}
