//! The host's callback server: the side of `BridgeService` that workers
//! call (protocol.md), on a Unix socket in the pool's private directory.
//!
//! - `ExecuteElixirTool` runs a host tool, a user closure, on a small pool
//!   of threads of its own: a closure may block for as long as it likes
//!   (even on a nested `pool.execute_blocking`) without stalling gRPC's
//!   completion-queue thread, which serves every other callback.
//! - `Ping`, the session calls, `RegisterTools` and `GetExposedElixirTools`
//!   only take a short lock, so they answer inline.
//!
//! Replying from another thread is sound: `UnarySink` is `Send` (the call
//! it wraps is `Send`, and gRPC's core takes batches from any thread), and
//! `UnarySink::success` starts the send-status batch at once, before it
//! returns. But the future it returns must not be dropped early: it holds a
//! reference to the call, and in gRPC's core the last reference released
//! before the call has completed cancels it (`FilterStackCall::ExternalUnref`
//! in `call.cc`), so the client could see CANCELLED instead of the reply.
//! Hence: a handler answering inline spawns that future on its `RpcContext`
//! (it then runs on the completion-queue thread, as grpcio intends), and a
//! host tool thread blocks on it until the call is complete, which takes
//! no longer than writing the reply.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::Sender;
use grpcio::{
    ChannelBuilder, Environment, Metadata, RpcContext, RpcStatus, RpcStatusCode, Server,
    ServerBuilder, ServerCredentials, ServiceBuilder, UnarySink,
};
use parking_lot::Mutex;
use protobuf::well_known_types::timestamp::Timestamp;
use protobuf::{Message as _, MessageField};
use serde_json::Value;

use crate::block_on::block_on_timeout;
use crate::deadline::later;
use crate::host_tool::{HostArgs, HostOutput, HostTool};
use crate::pool_token::{self, PoolToken};
use crate::protocol::messages::{
    CleanupSessionRequest, CleanupSessionResponse, ExecuteElixirToolRequest,
    ExecuteElixirToolResponse, GetExposedElixirToolsResponse, GetSessionRequest,
    GetSessionResponse, HeartbeatRequest, HeartbeatResponse, InitializeSessionRequest,
    InitializeSessionResponse, PingRequest, PingResponse, RegisterToolsRequest,
    RegisterToolsResponse, ToolSpec,
};
use crate::protocol::{service, value};

/// The socket's file name inside the pool's private directory.
const SOCKET_NAME: &str = "host.sock";

/// A tool a worker announced with `RegisterTools` (every worker does so at
/// start-up, the crate's own and Snakepit's worker scripts). See
/// [`Pool::registered_tools`](crate::Pool::registered_tools).
///
/// ```
/// use snakepit::Pool;
///
/// /// The streaming tools, as `worker: name`.
/// fn streaming_tools(pool: &Pool) -> Vec<String> {
///     pool.registered_tools()
///         .into_iter()
///         .filter(|tool| tool.supports_streaming)
///         .map(|tool| format!("{}: {}", tool.worker, tool.name))
///         .collect()
/// }
/// # let _ = streaming_tools;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RegisteredTool {
    /// The `worker_id` the worker sent (with our launcher, the pool's
    /// worker name, e.g. `"worker-0"`).
    pub worker: String,
    /// The tool's name.
    pub name: String,
    /// The tool's description.
    pub description: String,
    /// Whether the worker says the tool streams.
    pub supports_streaming: bool,
}

/// A session a worker opened on the host with `InitializeSession`
/// (Snakepit's worker script does so before each call) and has not cleaned
/// up. See [`Pool::host_sessions`](crate::Pool::host_sessions).
///
/// ```
/// use std::time::{Duration, SystemTime};
///
/// use snakepit::{HostSession, Pool};
///
/// /// Sessions opened over an hour ago and never cleaned up: a worker
/// /// script that leaks them.
/// fn stale_sessions(pool: &Pool) -> Vec<HostSession> {
///     let hour_ago = SystemTime::now() - Duration::from_secs(3600);
///     pool.host_sessions()
///         .into_iter()
///         .filter(|session| session.created_at < hour_ago)
///         .collect()
/// }
/// # let _ = stale_sessions;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HostSession {
    /// The session id.
    pub id: String,
    /// When the host first saw it.
    pub created_at: SystemTime,
    /// The metadata of the first `InitializeSession`.
    pub metadata: HashMap<String, String>,
}

/// What the handlers share: the host tools, the pool they may call back
/// into, and what workers told the host.
pub(crate) struct HostState {
    tools: Vec<HostTool>,
    sessions: Mutex<HashMap<String, HostSession>>,
    registered: Mutex<BTreeMap<String, Vec<RegisteredTool>>>,
    stopping: AtomicBool,
    /// Where `ExecuteElixirTool` queues its calls for the host tool
    /// threads. The only sender: taking it out ends the threads once the
    /// queue is empty.
    jobs: Mutex<Option<Sender<Job>>>,
    /// The token callers must present; `None` for a pool that runs a
    /// Snakepit worker script, which cannot.
    token: Option<PoolToken>,
    /// The largest message the server sends or takes.
    max_message_bytes: usize,
}

impl HostState {
    /// Whether a call with these request headers may be served.
    fn admits(&self, headers: &Metadata) -> bool {
        match &self.token {
            None => true,
            Some(token) => headers
                .iter()
                .any(|(key, value)| key == pool_token::HEADER && token.matches(value)),
        }
    }

    /// Every tool workers registered, ordered by worker, then as sent.
    pub fn registered_tools(&self) -> Vec<RegisteredTool> {
        self.registered.lock().values().flatten().cloned().collect()
    }

    /// The open sessions, oldest first.
    pub fn sessions(&self) -> Vec<HostSession> {
        let mut sessions: Vec<HostSession> = self.sessions.lock().values().cloned().collect();
        sessions.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        sessions
    }

    fn tool_specs(&self) -> Vec<ToolSpec> {
        self.tools
            .iter()
            .map(|tool| ToolSpec {
                name: tool.name.clone(),
                description: tool.description.clone(),
                ..Default::default()
            })
            .collect()
    }

    fn ping(&self, req: PingRequest) -> PingResponse {
        PingResponse {
            message: format!("pong: {}", req.message),
            server_time: MessageField::some(Timestamp::now()),
            ..Default::default()
        }
    }

    fn initialize_session(&self, req: InitializeSessionRequest) -> InitializeSessionResponse {
        if !req.session_id.is_empty() {
            self.sessions
                .lock()
                .entry(req.session_id.clone())
                .or_insert_with(|| HostSession {
                    id: req.session_id,
                    created_at: SystemTime::now(),
                    metadata: req.metadata,
                });
        }
        InitializeSessionResponse {
            success: true,
            available_tools: self
                .tool_specs()
                .into_iter()
                .map(|spec| (spec.name.clone(), spec))
                .collect(),
            ..Default::default()
        }
    }

    fn cleanup_session(&self, req: CleanupSessionRequest) -> CleanupSessionResponse {
        let removed = self.sessions.lock().remove(&req.session_id).is_some();
        CleanupSessionResponse {
            success: true,
            resources_cleaned: i32::from(removed),
            ..Default::default()
        }
    }

    fn get_session(&self, req: GetSessionRequest) -> Result<GetSessionResponse, RpcStatus> {
        let sessions = self.sessions.lock();
        let session = sessions.get(&req.session_id).ok_or_else(|| {
            RpcStatus::with_message(
                RpcStatusCode::NOT_FOUND,
                format!("session {:?} not found", req.session_id),
            )
        })?;
        Ok(GetSessionResponse {
            session_id: session.id.clone(),
            metadata: session.metadata.clone(),
            created_at: MessageField::some(Timestamp::from(session.created_at)),
            tool_count: i32::try_from(self.tools.len()).unwrap_or(i32::MAX),
            ..Default::default()
        })
    }

    fn heartbeat(&self, req: HeartbeatRequest) -> HeartbeatResponse {
        HeartbeatResponse {
            server_time: MessageField::some(Timestamp::now()),
            session_valid: self.sessions.lock().contains_key(&req.session_id),
            ..Default::default()
        }
    }

    fn register_tools(&self, req: RegisterToolsRequest) -> RegisterToolsResponse {
        let worker = if req.worker_id.is_empty() {
            req.session_id
        } else {
            req.worker_id
        };
        let tools: Vec<RegisteredTool> = req
            .tools
            .into_iter()
            .map(|t| RegisteredTool {
                worker: worker.clone(),
                name: t.name,
                description: t.description,
                supports_streaming: t.supports_streaming,
            })
            .collect();
        let tool_ids = tools
            .iter()
            .map(|t| (t.name.clone(), format!("{worker}:{}", t.name)))
            .collect();
        log::debug!("{worker} registered {} tools with the host", tools.len());
        // A restarted worker registers again: its latest list replaces the
        // previous one.
        self.registered.lock().insert(worker, tools);
        RegisterToolsResponse {
            success: true,
            tool_ids,
            ..Default::default()
        }
    }

    /// Runs a host tool call.
    fn execute(&self, req: ExecuteElixirToolRequest) -> ExecuteElixirToolResponse {
        let started = Instant::now();
        // A tool that takes the pool holds it only while it runs (see
        // `Pool::start`), so the handle is gone before the reply goes out.
        let name = req.tool_name.clone();
        let outcome = self.run_tool(req);
        let mut resp = ExecuteElixirToolResponse::new();
        match outcome {
            Ok(HostOutput::Json(result)) => {
                resp.success = true;
                resp.result = MessageField::some(value::encode_result(&result));
            }
            Ok(HostOutput::Bytes(bytes)) => {
                resp.success = true;
                // As our worker marks bytes results: `null` of kind
                // `binary` beside them, so empty bytes stay bytes.
                let mut kind = protobuf::well_known_types::any::Any::new();
                kind.type_url = value::BINARY_RESULT_TYPE_URL.into();
                kind.value = b"null".to_vec();
                resp.result = MessageField::some(kind);
                resp.binary_result = bytes;
            }
            Err(message) => resp.error_message = message,
        }
        resp.execution_time_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        // Over the limit, gRPC would fail the call with a bare
        // RESOURCE_EXHAUSTED; the tool's caller gets a message instead.
        let size = resp.compute_size();
        if size > self.max_message_bytes as u64 {
            let mut refused = ExecuteElixirToolResponse::new();
            refused.error_message = format!(
                "host tool `{name}` returned {size} bytes, over the pool's message limit of {} \
                 bytes (max_message_bytes)",
                self.max_message_bytes
            );
            return refused;
        }
        resp
    }

    fn run_tool(&self, mut req: ExecuteElixirToolRequest) -> Result<HostOutput, String> {
        if self.stopping.load(SeqCst) {
            return Err("the host is shutting down".into());
        }
        let Some(tool) = self.tools.iter().find(|t| t.name == req.tool_name) else {
            if self.tools.is_empty() {
                return Err(format!(
                    "no host tool named `{}`: the host has no host tools \
                     (register them with PoolBuilder::host_tool)",
                    req.tool_name
                ));
            }
            let names: Vec<&str> = self.tools.iter().map(|t| t.name.as_str()).collect();
            return Err(format!(
                "no host tool named `{}`; the host has: {}",
                req.tool_name,
                names.join(", ")
            ));
        };
        let mut args = serde_json::Map::new();
        for (name, any) in &req.parameters {
            let value = value::decode_parameter(any)
                .map_err(|e| format!("host tool `{}`: argument `{name}`: {e}", tool.name))?;
            args.insert(name.clone(), value);
        }
        let binary = std::mem::take(&mut req.binary_parameters)
            .into_iter()
            .collect();
        tool.run(HostArgs {
            json: Value::Object(args),
            binary,
        })
    }
}

/// A host tool call waiting for a thread.
type Job = Box<dyn FnOnce() + Send>;

/// The running callback server and the threads that run host tools.
pub(crate) struct HostServer {
    /// What workers are given as `--elixir-address`.
    pub address: String,
    pub state: Arc<HostState>,
    socket: PathBuf,
    server: Option<Server>,
    threads: Vec<JoinHandle<()>>,
}

impl HostServer {
    /// Binds `unix:<socket_dir>/host.sock` and starts serving, with
    /// `threads` threads for host tools (none when there are no host tools:
    /// an `ExecuteElixirTool` then fails at once, answered inline).
    pub fn start(
        tools: Vec<HostTool>,
        threads: usize,
        socket_dir: &Path,
        max_message_bytes: usize,
        token: Option<PoolToken>,
        env: Arc<Environment>,
    ) -> Result<HostServer, String> {
        let threads = if tools.is_empty() { 0 } else { threads };
        let (jobs_tx, jobs_rx) = crossbeam_channel::unbounded::<Job>();
        let state = Arc::new(HostState {
            tools,
            sessions: Mutex::new(HashMap::new()),
            registered: Mutex::new(BTreeMap::new()),
            stopping: AtomicBool::new(false),
            jobs: Mutex::new(Some(jobs_tx)),
            token,
            max_message_bytes,
        });
        let threads = (0..threads)
            .map(|n| {
                let jobs = jobs_rx.clone();
                thread::Builder::new()
                    .name(format!("snakepit-host-tool-{n}"))
                    .spawn(move || {
                        for job in jobs {
                            // Host tools catch their own panics; this is for
                            // a failure in gRPC's reply path, so the thread
                            // lives on either way.
                            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).is_err()
                            {
                                log::error!("a host tool reply panicked");
                            }
                        }
                    })
                    .map_err(|e| format!("cannot spawn a host tool thread: {e}"))
            })
            .collect::<Result<Vec<_>, String>>()?;

        let socket = socket_dir.join(SOCKET_NAME);
        let address = format!("unix:{}", socket.display());
        // The pool's own completion-queue thread (see
        // `transport::grpc::environment`): host tools run on threads of
        // their own, so a callback never holds it.
        let limit = i32::try_from(max_message_bytes).unwrap_or(i32::MAX);
        let args = ChannelBuilder::new(env.clone())
            .max_receive_message_len(limit)
            .max_send_message_len(limit)
            .build_args();
        let service = callback_service(&state);
        let mut server = ServerBuilder::new(env)
            .channel_args(args)
            .register_service(service)
            .build()
            .map_err(|e| format!("cannot create the host callback server: {e}"))?;
        server
            .add_listening_port(address.as_str(), ServerCredentials::insecure())
            .map_err(|e| format!("cannot listen on {address}: {e}"))?;
        server.start();
        log::debug!("host callback server listening on {address}");
        Ok(HostServer {
            address,
            state,
            socket,
            server: Some(server),
            threads,
        })
    }

    /// Stops serving: host tool calls still queued fail at once, calls
    /// running get up to `grace` to return, then the server shuts down.
    /// Called once the workers are gone, so no new call arrives.
    pub fn stop(&mut self, grace: Duration) {
        self.state.stopping.store(true, SeqCst);
        drop(self.state.jobs.lock().take());
        let deadline = later(Instant::now(), grace);
        let me = thread::current().id();
        // A host tool may shut the pool down (or drop its last handle) from
        // one of these threads: that one is not waited for.
        let on_own_thread = self.threads.iter().any(|t| t.thread().id() == me);
        let mut others: Vec<JoinHandle<()>> = self
            .threads
            .drain(..)
            .filter(|t| t.thread().id() != me)
            .collect();
        while others.iter().any(|t| !t.is_finished()) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(2));
        }
        let stuck = others.iter().filter(|t| !t.is_finished()).count();
        for t in others.drain(..).filter(|t| t.is_finished()) {
            let _ = t.join();
        }
        if let Some(server) = self.server.take() {
            if stuck == 0 && !on_own_thread {
                // Dropping shuts the server down, cancels what is left and
                // waits for that to complete.
                drop(server);
            } else {
                // A running call holds its sink, and the shutdown may wait
                // for it: let a thread of its own wait instead.
                if stuck > 0 {
                    log::warn!(
                        "{stuck} host tool(s) still running after {grace:?}; the callback \
                         server stops when they return"
                    );
                }
                let _ = thread::Builder::new()
                    .name("snakepit-host-stop".into())
                    .spawn(move || drop(server));
            }
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

impl Drop for HostServer {
    fn drop(&mut self) {
        if self.server.is_some() {
            self.stop(Duration::ZERO);
        }
    }
}

/// The unary handlers of the callback side of `BridgeService`, each behind
/// the pool's token.
fn callback_service(state: &Arc<HostState>) -> grpcio::Service {
    let builder = ServiceBuilder::new()
        .add_unary_handler(
            &service::PING,
            guarded(state, |s, ctx, req, sink| {
                answer(ctx, sink, Ok(s.ping(req)))
            }),
        )
        .add_unary_handler(
            &service::INITIALIZE_SESSION,
            guarded(state, |s, ctx, req, sink| {
                answer(ctx, sink, Ok(s.initialize_session(req)))
            }),
        )
        .add_unary_handler(
            &service::CLEANUP_SESSION,
            guarded(state, |s, ctx, req, sink| {
                answer(ctx, sink, Ok(s.cleanup_session(req)))
            }),
        )
        .add_unary_handler(
            &service::GET_SESSION,
            guarded(state, |s, ctx, req, sink| {
                answer(ctx, sink, s.get_session(req))
            }),
        )
        .add_unary_handler(
            &service::HEARTBEAT,
            guarded(state, |s, ctx, req, sink| {
                answer(ctx, sink, Ok(s.heartbeat(req)))
            }),
        )
        .add_unary_handler(
            &service::REGISTER_TOOLS,
            guarded(state, |s, ctx, req, sink| {
                answer(ctx, sink, Ok(s.register_tools(req)))
            }),
        )
        .add_unary_handler(
            &service::GET_EXPOSED_ELIXIR_TOOLS,
            guarded(state, |s, ctx, _req, sink| {
                let resp = GetExposedElixirToolsResponse {
                    tools: s.tool_specs(),
                    ..Default::default()
                };
                answer(ctx, sink, Ok(resp))
            }),
        );
    builder
        .add_unary_handler(
            &service::EXECUTE_ELIXIR_TOOL,
            guarded(state, |s, ctx, req: ExecuteElixirToolRequest, sink| {
                if s.tools.is_empty() {
                    // No host tool threads: the answer is an error, at once.
                    answer(ctx, sink, Ok(s.execute(req)));
                    return;
                }
                let jobs = s.jobs.lock();
                let Some(jobs) = jobs.as_ref() else {
                    let status = RpcStatus::with_message(
                        RpcStatusCode::UNAVAILABLE,
                        "the host is shutting down".into(),
                    );
                    answer(ctx, sink, Err(status));
                    return;
                };
                let state = s.clone();
                // The threads outlive the sender, so this cannot fail; if it
                // did, dropping the job and its sink would cancel the call.
                let _ = jobs.send(Box::new(move || {
                    answer_from_thread(sink, state.execute(req))
                }));
            }),
        )
        .build()
}

/// `handler`, run only for callers that present the pool's token; others
/// get `UNAUTHENTICATED` before their request is looked at.
fn guarded<Req, Resp: Send + 'static>(
    state: &Arc<HostState>,
    handler: impl Fn(&Arc<HostState>, &RpcContext<'_>, Req, UnarySink<Resp>) + Send + Clone + 'static,
) -> impl FnMut(RpcContext<'_>, Req, UnarySink<Resp>) + Send + Clone + 'static {
    let state = state.clone();
    move |ctx, req, sink| {
        if state.admits(ctx.request_headers()) {
            handler(&state, &ctx, req, sink);
        } else {
            let status = RpcStatus::with_message(
                RpcStatusCode::UNAUTHENTICATED,
                "the host's callback server serves only the pool's own workers".into(),
            );
            answer(&ctx, sink, Err(status));
        }
    }
}

/// Answers from a handler, on the completion-queue thread: the reply's
/// future runs there until the call is complete (see the module
/// documentation for why it must not be dropped).
fn answer<T: Send + 'static>(
    ctx: &RpcContext<'_>,
    sink: UnarySink<T>,
    result: Result<T, RpcStatus>,
) {
    let sent = match result {
        Ok(resp) => sink.success(resp),
        Err(status) => sink.fail(status),
    };
    ctx.spawn(async move {
        // An error only means the worker went away first.
        let _ = sent.await;
    });
}

/// Answers from a host tool thread, blocking until the call is complete.
fn answer_from_thread<T>(sink: UnarySink<T>, resp: T) {
    if block_on_timeout(sink.success(resp), REPLY_TIMEOUT).is_none() {
        log::warn!("a host tool reply was not delivered within {REPLY_TIMEOUT:?}");
    }
}

/// How long a host tool thread waits for a reply to go out; it takes as
/// long as writing it to the socket, so this only bounds a broken peer.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::messages::ToolRegistration;
    use serde_json::json;

    fn state(tools: Vec<HostTool>) -> HostState {
        HostState {
            tools,
            sessions: Mutex::new(HashMap::new()),
            registered: Mutex::new(BTreeMap::new()),
            stopping: AtomicBool::new(false),
            jobs: Mutex::new(None),
            token: None,
            max_message_bytes: 1 << 20,
        }
    }

    fn request(tool: &str, args: Value) -> ExecuteElixirToolRequest {
        let mut req = ExecuteElixirToolRequest::new();
        req.tool_name = tool.into();
        for (k, v) in args.as_object().unwrap() {
            req.parameters.insert(k.clone(), value::encode_value(v));
        }
        req
    }

    #[test]
    fn a_tool_call_answers_with_its_result_or_its_error() {
        let host = state(vec![HostTool::plain(
            "concat".into(),
            "Joins a and b".into(),
            |args| match (args["a"].as_str(), args["b"].as_str()) {
                (Some(a), Some(b)) => Ok(json!(format!("{a}{b}"))),
                _ => Err("a and b must be strings".into()),
            },
        )]);
        let ok = host.execute(request("concat", json!({"a": "snake", "b": "pit"})));
        assert!(ok.success);
        assert_eq!(ok.result.type_url, "type.googleapis.com/snakepit.string");
        assert_eq!(ok.result.value, b"\"snakepit\"");

        let failed = host.execute(request("concat", json!({"a": 1})));
        assert!(!failed.success);
        assert_eq!(failed.error_message, "a and b must be strings");

        let unknown = host.execute(request("nope", json!({})));
        assert_eq!(
            unknown.error_message,
            "no host tool named `nope`; the host has: concat"
        );

        host.stopping.store(true, SeqCst);
        let late = host.execute(request("concat", json!({"a": "x", "b": "y"})));
        assert_eq!(late.error_message, "the host is shutting down");
    }

    #[test]
    fn sessions_and_registrations_are_remembered() {
        let host = state(vec![HostTool::plain("t".into(), "d".into(), Ok)]);
        let mut init = InitializeSessionRequest::new();
        init.session_id = "s1".into();
        init.metadata.insert("k".into(), "v".into());
        let resp = host.initialize_session(init.clone());
        assert!(resp.success);
        assert_eq!(resp.available_tools["t"].description, "d");
        host.initialize_session(init);
        assert_eq!(host.sessions().len(), 1);

        let mut get = GetSessionRequest::new();
        get.session_id = "s1".into();
        let got = host.get_session(get.clone()).unwrap();
        assert_eq!(got.metadata["k"], "v");
        assert_eq!(got.tool_count, 1);
        let mut beat = HeartbeatRequest::new();
        beat.session_id = "s1".into();
        assert!(host.heartbeat(beat.clone()).session_valid);

        let mut cleanup = CleanupSessionRequest::new();
        cleanup.session_id = "s1".into();
        assert_eq!(host.cleanup_session(cleanup).resources_cleaned, 1);
        assert!(!host.heartbeat(beat).session_valid);
        assert_eq!(
            host.get_session(get).unwrap_err().code(),
            RpcStatusCode::NOT_FOUND
        );

        let mut register = RegisterToolsRequest::new();
        register.worker_id = "worker-0".into();
        register.tools.push(ToolRegistration {
            name: "add".into(),
            description: "Adds".into(),
            ..Default::default()
        });
        let resp = host.register_tools(register.clone());
        assert!(resp.success);
        assert_eq!(resp.tool_ids["add"], "worker-0:add");
        host.register_tools(register);
        assert_eq!(
            host.registered_tools(),
            vec![RegisteredTool {
                worker: "worker-0".into(),
                name: "add".into(),
                description: "Adds".into(),
                supports_streaming: false,
            }]
        );
    }
}
