//! The gRPC transport: the Snakepit wire contract over a grpcio channel.
//!
//! Streaming calls are polled on the lane's own thread with a waker that
//! unparks it, so no executor runs here and a cancel is seen promptly.

use std::ops::ControlFlow;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread;
use std::time::Duration;

use futures_core::Stream as _;
use futures_sink::Sink as _;
use grpcio::{
    CallOption, Channel, ChannelBuilder, Client, ClientDuplexReceiver, ClientDuplexSender,
    ConnectivityState, Environment, Metadata, MetadataBuilder, RpcStatusCode, WriteFlags,
};
use parking_lot::Mutex;

use super::credentials::{Auth, TokenFile};
use super::{Buffers, Connect, FeedNext, PingInfo, TelemetryFeed, Transport, TransportError};
use crate::block_on::{block_on_timeout, thread_waker};
use crate::call::CORRELATION_HEADER;
use crate::deadline::MAX_DURATION;
use crate::pool_token::{self, PoolToken};
use crate::protocol::messages::{
    CleanupSessionRequest, ExecuteToolRequest, ExecuteToolResponse, InitializeSessionRequest,
    InitializeSessionResponse, PingRequest, TelemetryControl, TelemetryEvent, ToolChunk,
};
use crate::protocol::service;
use crate::stream::{StreamControl, CANCEL_POLL};

/// Connects to workers over gRPC, on the pool's completion-queue threads.
pub(crate) struct GrpcConnector {
    env: Arc<Environment>,
    max_message_bytes: usize,
    /// What every call presents.
    auth: Auth,
    /// Remote workers only: TLS and keepalive.
    remote: Option<RemoteChannel>,
}

/// How channels to remote workers differ from local ones.
struct RemoteChannel {
    #[cfg(feature = "tls")]
    tls: Option<crate::remote::Tls>,
    keepalive: Duration,
    keepalive_timeout: Duration,
}

impl GrpcConnector {
    /// A connector to the pool's own workers, whose channels carry messages
    /// up to `max_message_bytes`, present `token` with every call and run
    /// on `env` ([`environment`]).
    pub fn new(
        max_message_bytes: usize,
        token: &PoolToken,
        env: Arc<Environment>,
    ) -> Result<Self, String> {
        MetadataBuilder::with_capacity(1)
            .add_str(pool_token::HEADER, token.as_str())
            .map_err(|e| format!("cannot put the pool token in call metadata: {e}"))?;
        Ok(GrpcConnector {
            env,
            max_message_bytes,
            auth: Auth::PoolToken(Arc::from(token.as_str())),
            remote: None,
        })
    }

    /// A connector to remote workers: TLS when `remote` has it, its bearer
    /// token, and keepalive pings that notice a stopped endpoint.
    pub fn remote(
        max_message_bytes: usize,
        remote: &crate::remote::Remote,
    ) -> Result<Self, String> {
        // A token file is read as printable ASCII, which metadata carries.
        let auth = match &remote.token_file {
            Some(path) => Auth::Bearer(Arc::new(TokenFile::open(path)?)),
            None => Auth::None,
        };
        Ok(GrpcConnector {
            env: environment(),
            max_message_bytes,
            auth,
            remote: Some(RemoteChannel {
                #[cfg(feature = "tls")]
                tls: remote.tls.clone(),
                keepalive: remote.keepalive,
                keepalive_timeout: remote.keepalive_timeout,
            }),
        })
    }
}

/// The completion-queue thread of one pool: its channels to the workers
/// and, for a local pool, its host callback server share it.
///
/// One thread, not one per core: gRPC's C core polls every completion
/// queue's connections together, so each extra thread waiting on a queue
/// takes part in the I/O of all the others and hands completions across.
/// In this crate's bench (`overhead`, table 1b), a pool with two client
/// threads and a callback server thread of its own spent about a third
/// more host CPU per `ping` (219 µs) than with this one shared thread
/// (156 µs).
pub(crate) fn environment() -> Arc<Environment> {
    Arc::new(
        grpcio::EnvBuilder::new()
            .cq_count(1)
            .name_prefix("snakepit-grpc")
            .build(),
    )
}

impl Connect for GrpcConnector {
    fn connect(&self, address: &str) -> Result<Arc<dyn Transport>, String> {
        let max = i32::try_from(self.max_message_bytes).unwrap_or(i32::MAX);
        let mut builder = ChannelBuilder::new(self.env.clone())
            .max_send_message_len(max)
            .max_receive_message_len(max);
        if let Some(remote) = &self.remote {
            builder = builder
                .keepalive_time(remote.keepalive)
                .keepalive_timeout(remote.keepalive_timeout)
                .keepalive_permit_without_calls(true)
                .http2_max_pings_without_data(0)
                // Our own reconnection (the worker's backoff) decides
                // when to try again, not gRPC's.
                .initial_reconnect_backoff(Duration::from_millis(100))
                .max_reconnect_backoff(Duration::from_secs(1));
            #[cfg(feature = "tls")]
            if let Some(tls) = &remote.tls {
                if let Some(authority) = &tls.authority {
                    builder = builder.override_ssl_target(authority.clone());
                }
                builder = builder.set_credentials(super::credentials::channel_credentials(tls));
            }
        }
        let channel = builder.connect(address);
        Ok(Arc::new(GrpcTransport {
            client: Client::new(channel.clone()),
            remote: self.remote.is_some().then_some(channel),
            auth: self.auth.clone(),
        }))
    }
}

/// One gRPC channel to one worker process.
pub(crate) struct GrpcTransport {
    client: Client,
    /// The channel of a remote worker, whose state tells whether a failed
    /// call could have gone out.
    remote: Option<Channel>,
    auth: Auth,
}

impl GrpcTransport {
    /// The headers of one call: the pool's token and, when given, the
    /// call's correlation id.
    fn headers(&self, correlation_id: Option<&str>) -> Metadata {
        let mut headers = MetadataBuilder::with_capacity(2);
        self.auth.add_to(&mut headers);
        if let Some(id) = correlation_id {
            // Checked by the pool to be printable ASCII; were it refused,
            // the id still travels in the request's metadata.
            let _ = headers.add_str(CORRELATION_HEADER, id);
        }
        headers.build()
    }

    /// The options of one call: its deadline and its [`headers`](Self::headers).
    fn options(&self, timeout: Duration, correlation_id: Option<&str>) -> CallOption {
        CallOption::default()
            .timeout(grpc_timeout(timeout))
            .headers(self.headers(correlation_id))
    }

    /// Whether a call may have reached the worker: false when the channel
    /// to a remote worker was not connected as the call went out (its
    /// failure then means the connection could not be made again).
    fn connected(&self) -> bool {
        self.remote.as_ref().is_none_or(|channel| {
            channel.check_connectivity_state(false) == ConnectivityState::GRPC_CHANNEL_READY
        })
    }

    /// A tool call's failure, in transport terms.
    fn call_failure(&self, e: grpcio::Error, was_connected: bool) -> TransportError {
        match from_grpc(e) {
            TransportError::Failed { code, message } if code == "UNAVAILABLE" && !was_connected => {
                TransportError::NotConnected(message)
            }
            other => other,
        }
    }

    /// The options of a tool call: the correlation id is in the request's
    /// metadata.
    fn call_options(&self, req: &ExecuteToolRequest, timeout: Duration) -> CallOption {
        let id = req.metadata.get(CORRELATION_HEADER).map(String::as_str);
        self.options(timeout, id)
    }
}

impl Transport for GrpcTransport {
    fn execute(
        &self,
        req: &mut ExecuteToolRequest,
        timeout: Duration,
        _buffers: Buffers,
    ) -> Result<ExecuteToolResponse, TransportError> {
        let req = &*req;
        let opt = self.call_options(req, timeout);
        let connected = self.connected();
        self.client
            .unary_call(&service::EXECUTE_TOOL, req, opt)
            .map_err(|e| self.call_failure(e, connected))
    }

    fn execute_stream(
        &self,
        req: &ExecuteToolRequest,
        timeout: Duration,
        control: &StreamControl,
        on_chunk: &mut dyn FnMut(ToolChunk) -> ControlFlow<()>,
    ) -> Result<(), TransportError> {
        let opt = self.call_options(req, timeout);
        let connected = self.connected();
        let mut receiver = self
            .client
            .server_streaming(&service::EXECUTE_STREAMING_TOOL, req, opt)
            .map_err(|e| self.call_failure(e, connected))?;
        let mut first = true;
        control.attach(thread::current());
        let waker = thread_waker();
        let mut cx = Context::from_waker(&waker);
        loop {
            if control.is_cancelled() {
                receiver.cancel();
                return Ok(());
            }
            let chunk = match Pin::new(&mut receiver).poll_next(&mut cx) {
                Poll::Pending => {
                    // Woken by gRPC when a chunk arrives, or by a cancel.
                    thread::park_timeout(CANCEL_POLL);
                    continue;
                }
                Poll::Ready(None) => return Ok(()),
                // Before the first chunk the call may never have gone out.
                Poll::Ready(Some(Err(e))) if first => return Err(self.call_failure(e, connected)),
                Poll::Ready(Some(Err(e))) => return Err(from_grpc(e)),
                Poll::Ready(Some(Ok(chunk))) => chunk,
            };
            first = false;
            // A failure mid-stream comes as a final error chunk (asked for
            // with `snakepit.error_chunk`), since grpcio drops the chunks
            // sent ahead of an error status.
            if chunk.metadata.get("error").map(String::as_str) == Some("true") {
                let payload = String::from_utf8_lossy(&chunk.data).into_owned();
                return Err(TransportError::ToolFailed(payload));
            }
            let is_final = chunk.is_final;
            if !(is_final && chunk.data.is_empty()) && on_chunk(chunk).is_break() {
                receiver.cancel();
                return Ok(());
            }
            if is_final {
                return Ok(());
            }
        }
    }

    fn cleanup_session(&self, session: &str, timeout: Duration) -> Result<(), TransportError> {
        let req = CleanupSessionRequest {
            session_id: session.to_owned(),
            force: true,
            ..Default::default()
        };
        let opt = self.options(timeout, None);
        self.client
            .unary_call(&service::CLEANUP_SESSION, &req, opt)
            .map(|_| ())
            .map_err(from_grpc)
    }

    fn describe(&self, timeout: Duration) -> Result<InitializeSessionResponse, TransportError> {
        let opt = self.options(timeout, None);
        self.client
            .unary_call(
                &service::INITIALIZE_SESSION,
                &InitializeSessionRequest::new(),
                opt,
            )
            .map_err(from_grpc)
    }

    fn telemetry(&self) -> Result<Arc<dyn TelemetryFeed>, TransportError> {
        // No deadline: the stream lasts as long as the process.
        let opt = CallOption::default().headers(self.headers(None));
        let (sender, receiver) = self
            .client
            .duplex_streaming(&service::STREAM_TELEMETRY, opt)
            .map_err(from_grpc)?;
        Ok(Arc::new(GrpcTelemetry {
            sender: Mutex::new(sender),
            receiver: Mutex::new(receiver),
        }))
    }

    fn ping(
        &self,
        from: &str,
        timeout: Duration,
        wait_for_ready: bool,
    ) -> Result<PingInfo, TransportError> {
        let req = PingRequest {
            message: from.to_owned(),
            ..Default::default()
        };
        let opt = self.options(timeout, None).wait_for_ready(wait_for_ready);
        self.client
            .unary_call(&service::PING, &req, opt)
            .map(PingInfo::from)
            .map_err(from_grpc)
    }
}

/// A worker's telemetry stream over gRPC.
struct GrpcTelemetry {
    sender: Mutex<ClientDuplexSender<TelemetryControl>>,
    receiver: Mutex<ClientDuplexReceiver<TelemetryEvent>>,
}

impl TelemetryFeed for GrpcTelemetry {
    fn next(&self, wait: Duration) -> FeedNext {
        let mut receiver = self.receiver.lock();
        let waker = thread_waker();
        let mut cx = Context::from_waker(&waker);
        let mut parked = false;
        loop {
            match Pin::new(&mut *receiver).poll_next(&mut cx) {
                Poll::Ready(Some(Ok(event))) => return FeedNext::Event(event),
                Poll::Ready(Some(Err(e))) => return FeedNext::Ended(from_grpc(e)),
                Poll::Ready(None) => {
                    return FeedNext::Ended(TransportError::Failed {
                        code: "OK".to_owned(),
                        message: "the worker ended the stream".to_owned(),
                    })
                }
                Poll::Pending if parked => return FeedNext::Idle,
                Poll::Pending => {
                    // Woken by gRPC when an event arrives; polled once more.
                    thread::park_timeout(wait);
                    parked = true;
                }
            }
        }
    }

    fn send(&self, control: TelemetryControl, timeout: Duration) -> Result<(), TransportError> {
        let mut sender = self.sender.lock();
        let mut item = Some((control, WriteFlags::default()));
        let sent = block_on_timeout(
            std::future::poll_fn(|cx| {
                let mut sink = Pin::new(&mut *sender);
                if item.is_some() {
                    match sink.as_mut().poll_ready(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Ready(Ok(())) => {}
                    }
                    if let Err(e) = sink.as_mut().start_send(item.take().expect("checked")) {
                        return Poll::Ready(Err(e));
                    }
                }
                sink.poll_flush(cx)
            }),
            timeout,
        );
        match sent {
            Some(result) => result.map_err(from_grpc),
            None => Err(TransportError::DeadlineExceeded),
        }
    }

    fn cancel(&self) {
        self.sender.lock().cancel();
        self.receiver.lock().cancel();
    }
}

/// A grpcio failure in transport terms.
fn from_grpc(e: grpcio::Error) -> TransportError {
    match e {
        grpcio::Error::RpcFailure(status) => match status.code() {
            RpcStatusCode::DEADLINE_EXCEEDED => TransportError::DeadlineExceeded,
            RpcStatusCode::RESOURCE_EXHAUSTED => TransportError::ResourceExhausted,
            // A remote worker told to stop: the call never ran there.
            RpcStatusCode::UNAVAILABLE if status.message().starts_with(DRAINING) => {
                TransportError::Draining(status.message().to_owned())
            }
            // A streaming tool that raised, from a worker that sends its
            // JSON error payload as the status message.
            RpcStatusCode::INTERNAL if status.message().starts_with('{') => {
                TransportError::ToolFailed(status.message().to_owned())
            }
            code => TransportError::Failed {
                code: status_name(code),
                message: status.message().to_owned(),
            },
        },
        other => TransportError::Failed {
            code: "CLIENT".to_owned(),
            message: other.to_string(),
        },
    }
}

/// A status code's name, e.g. `UNAVAILABLE` (grpcio writes its codes as
/// `14-UNAVAILABLE`).
fn status_name(code: RpcStatusCode) -> String {
    let text = format!("{code:?}");
    match text.split_once('-') {
        Some((number, name)) if number.bytes().all(|b| b.is_ascii_digit()) => name.to_owned(),
        _ => text,
    }
}

/// How a remote worker that was told to stop (SIGTERM) begins the status
/// message with which it refuses new calls.
pub(crate) const DRAINING: &str = "snakepit: draining";

/// grpcio turns a timeout into a deadline by casting its seconds to `i64`:
/// `Duration::MAX` would become a deadline in the past (an instant
/// `DEADLINE_EXCEEDED` and a killed worker). Capped, it stays in the future.
fn grpc_timeout(timeout: Duration) -> Duration {
    timeout.min(MAX_DURATION)
}
