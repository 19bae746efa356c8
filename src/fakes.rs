//! Fakes of the two seams, for unit tests of the dispatcher and the worker
//! lifecycle without Python: a launcher whose "processes" are structs a
//! test can crash, starve of health or fatten, and a transport that answers
//! calls from a closure (which may block until the test releases it).

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;
use serde_json::Value;

use crate::error::Exit;
use crate::events::{ExitReason, HandleEvent, WorkerExited};
use crate::launcher::{ExitWatch, Launcher, OnExit, OnWithdraw, Process, Target};
use crate::protocol::messages::{
    ExecuteToolRequest, ExecuteToolResponse, InitializeSessionResponse, ToolChunk,
};
use crate::protocol::value;
use crate::stream::StreamControl;
use crate::transport::{Buffers, Connect, PingInfo, Transport, TransportError};

/// A fake worker process: it ends when told to (or killed), reports the
/// memory and health it is given, and has no pid, like a remote endpoint.
pub(crate) struct FakeProcess {
    pub slot: usize,
    pub generation: u32,
    /// Counted over the launcher's life: 1 for the first process.
    pub launch: usize,
    pub launched_at: Instant,
    ready: Result<String, String>,
    exit: ExitWatch,
    on_exit: Mutex<Option<OnExit>>,
    /// What `resident_bytes` reports.
    pub rss: Mutex<Option<u64>>,
    /// Whether it answers pings.
    pub healthy: AtomicBool,
    /// Whether reading its memory panics: a panic injected into the
    /// worker's own thread, which reads it.
    pub panic_on_memory_reading: AtomicBool,
}

impl FakeProcess {
    /// Ends the process with `exit`, as a crash or a kill would.
    pub fn end(&self, exit: Exit) {
        if !self.exit.set(exit) {
            return;
        }
        if let Some(on_exit) = self.on_exit.lock().take() {
            on_exit(exit);
        }
    }

    /// Ends it as a process that exited with `code`.
    pub fn crash(&self, code: i32) {
        self.end(Exit {
            code: Some(code),
            signal: None,
        });
    }
}

impl Process for FakeProcess {
    fn wait_ready(
        &self,
        _timeout: Duration,
        _abandon: &dyn Fn() -> bool,
    ) -> Result<String, String> {
        self.ready.clone()
    }

    fn exit_status(&self) -> Option<Exit> {
        self.exit.get()
    }

    fn wait_exit(&self, timeout: Duration) -> Option<Exit> {
        self.exit.wait_timeout(timeout)
    }

    fn kill(&self) {
        self.end(Exit {
            code: None,
            signal: Some(libc::SIGKILL),
        });
    }

    fn terminate(&self, _grace: Duration) {
        self.end(Exit {
            code: None,
            signal: Some(libc::SIGTERM),
        });
    }

    fn resident_bytes(&self) -> Option<u64> {
        if self.panic_on_memory_reading.load(SeqCst) {
            panic!("injected: reading the memory of a fake process panics");
        }
        *self.rss.lock()
    }

    fn pid(&self) -> Option<u32> {
        None
    }

    fn identity(&self) -> String {
        format!("fake {}/{}", self.slot, self.generation)
    }

    fn stderr_tail(&self, _settle: Duration) -> Vec<String> {
        vec![format!(
            "fake process {} of slot {}",
            self.generation, self.slot
        )]
    }
}

/// How a fake start goes wrong.
#[derive(Debug)]
pub(crate) enum StartFault {
    /// The worker reports this failure (an import error, say) and exits.
    Fails(String),
    /// Something outside kills the process with SIGKILL before it is ready.
    Killed,
}

impl From<&str> for StartFault {
    fn from(message: &str) -> Self {
        StartFault::Fails(message.to_owned())
    }
}

/// Decides whether the `n`th launch (counting from 1) becomes ready: `Err`
/// is how its start fails.
pub(crate) type StartPlan = dyn Fn(usize) -> Result<(), StartFault> + Send + Sync;

/// Launches [`FakeProcess`]es and tells the test about each one.
pub(crate) struct FakeLauncher {
    plan: Box<StartPlan>,
    launches: Mutex<usize>,
    rss: Option<u64>,
    processes: Arc<Mutex<HashMap<String, Arc<FakeProcess>>>>,
    launched: Sender<Arc<FakeProcess>>,
}

impl Launcher for FakeLauncher {
    fn launch(
        &self,
        target: Target<'_>,
        on_exit: OnExit,
        _on_withdraw: OnWithdraw,
    ) -> Result<Arc<dyn Process>, String> {
        let launch = {
            let mut n = self.launches.lock();
            *n += 1;
            *n
        };
        let address = format!("fake:{}/{}", target.slot, target.generation);
        let fault = (self.plan)(launch).err();
        let ready = match &fault {
            None => Ok(address.clone()),
            Some(StartFault::Fails(message)) => Err(message.clone()),
            Some(StartFault::Killed) => Err("the worker ended before it was ready".into()),
        };
        let process = Arc::new(FakeProcess {
            slot: target.slot,
            generation: target.generation,
            launch,
            launched_at: Instant::now(),
            ready,
            exit: ExitWatch::default(),
            on_exit: Mutex::new(Some(on_exit)),
            rss: Mutex::new(self.rss),
            healthy: AtomicBool::new(true),
            panic_on_memory_reading: AtomicBool::new(false),
        });
        if matches!(fault, Some(StartFault::Killed)) {
            process.kill();
        }
        self.processes.lock().insert(address, process.clone());
        let _ = self.launched.send(process.clone());
        Ok(process)
    }
}

/// How a fake worker answers a call: given the tool and the process it
/// runs on, a value (a list is streamed item by item) or a failure.
pub(crate) type Answer = dyn Fn(&str, &FakeProcess) -> Result<Value, TransportError> + Send + Sync;

/// Connects to [`FakeProcess`]es by the address their launcher gave.
pub(crate) struct FakeConnector {
    processes: Arc<Mutex<HashMap<String, Arc<FakeProcess>>>>,
    answer: Arc<Answer>,
}

impl Connect for FakeConnector {
    fn connect(&self, address: &str) -> Result<Arc<dyn Transport>, String> {
        let process = self
            .processes
            .lock()
            .get(address)
            .cloned()
            .ok_or_else(|| format!("no fake process at {address}"))?;
        Ok(Arc::new(FakeTransport {
            process,
            answer: self.answer.clone(),
        }))
    }
}

struct FakeTransport {
    process: Arc<FakeProcess>,
    answer: Arc<Answer>,
}

impl FakeTransport {
    fn alive(&self) -> Result<(), TransportError> {
        match self.process.exit_status() {
            None => Ok(()),
            Some(exit) => Err(TransportError::Failed {
                code: "UNAVAILABLE".into(),
                message: format!("the process {exit}"),
            }),
        }
    }
}

impl Transport for FakeTransport {
    fn execute(
        &self,
        req: &mut ExecuteToolRequest,
        _timeout: Duration,
        _buffers: Buffers,
    ) -> Result<ExecuteToolResponse, TransportError> {
        self.alive()?;
        let result = (self.answer)(&req.tool_name, &self.process)?;
        let mut resp = ExecuteToolResponse::new();
        resp.success = true;
        resp.result = protobuf::MessageField::some(value::encode_result(&result));
        Ok(resp)
    }

    fn execute_stream(
        &self,
        req: &ExecuteToolRequest,
        _timeout: Duration,
        control: &StreamControl,
        on_chunk: &mut dyn FnMut(ToolChunk) -> ControlFlow<()>,
    ) -> Result<(), TransportError> {
        self.alive()?;
        let items = match (self.answer)(&req.tool_name, &self.process)? {
            Value::Array(items) => items,
            other => vec![other],
        };
        for item in items {
            if control.is_cancelled() {
                break;
            }
            let chunk = ToolChunk {
                data: serde_json::to_vec(&item).unwrap(),
                ..Default::default()
            };
            if on_chunk(chunk).is_break() {
                break;
            }
        }
        Ok(())
    }

    fn cleanup_session(&self, _session: &str, _timeout: Duration) -> Result<(), TransportError> {
        self.alive()
    }

    fn describe(&self, _timeout: Duration) -> Result<InitializeSessionResponse, TransportError> {
        self.alive()?;
        Ok(InitializeSessionResponse {
            success: true,
            ..Default::default()
        })
    }

    fn ping(
        &self,
        _from: &str,
        _timeout: Duration,
        _wait: bool,
    ) -> Result<PingInfo, TransportError> {
        self.alive()?;
        if self.process.healthy.load(SeqCst) {
            Ok(PingInfo::default())
        } else {
            Err(TransportError::DeadlineExceeded)
        }
    }
}

/// Both fakes, sharing their processes, and where the test learns of each
/// launch.
pub(crate) fn seams(
    plan: impl Fn(usize) -> Result<(), StartFault> + Send + Sync + 'static,
    rss: Option<u64>,
    answer: impl Fn(&str, &FakeProcess) -> Result<Value, TransportError> + Send + Sync + 'static,
) -> (FakeLauncher, FakeConnector, Receiver<Arc<FakeProcess>>) {
    let processes = Arc::new(Mutex::new(HashMap::new()));
    let (launched_tx, launched) = crossbeam_channel::unbounded();
    let launcher = FakeLauncher {
        plan: Box::new(plan),
        launches: Mutex::new(0),
        rss,
        processes: processes.clone(),
        launched: launched_tx,
    };
    let connector = FakeConnector {
        processes,
        answer: Arc::new(answer),
    };
    (launcher, connector, launched)
}

/// An event hook that forwards why each process ended.
#[derive(Debug)]
pub(crate) struct Exits(pub Sender<ExitReason>);

impl HandleEvent for Exits {
    fn worker_exited(&self, event: &WorkerExited) {
        let _ = self.0.send(event.reason.clone());
    }
}
