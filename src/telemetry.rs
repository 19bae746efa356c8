//! Telemetry from the workers' tools to the host.
//!
//! A tool reports what it measured with `telemetry.emit(...)` or
//! `telemetry.span(...)` in Python. The worker keeps the events in a
//! bounded buffer that drops the oldest when full (so a tool never waits
//! on telemetry), and serves them on its telemetry stream (the
//! `StreamTelemetry` rpc on gRPC, a connection of event and control frames
//! on the socket transport). The pool opens that stream to each worker
//! process it starts, on a thread of its own per process, and hands each
//! event, in order, to the event hook
//! ([`HandleEvent::telemetry`](crate::events::HandleEvent::telemetry)) as a
//! [`TelemetryEvent`]. A recycled or restarted worker's new process gets a
//! fresh stream; events still buffered in a process that ends are lost.
//!
//! The host switches recording on and off and sets the sampling rate with
//! [`PoolBuilder::telemetry`](crate::PoolBuilder::telemetry),
//! [`PoolBuilder::telemetry_sampling_rate`](crate::PoolBuilder::telemetry_sampling_rate)
//! and [`Pool::set_telemetry`](crate::Pool::set_telemetry); they travel as the
//! stream's control messages. Events dropped by a full buffer are counted
//! in [`PoolStats::telemetry_dropped`](crate::PoolStats::telemetry_dropped).

use std::collections::HashMap;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use crate::error::Error;
use crate::protocol::messages::{
    telemetry_value, TelemetryControl, TelemetryEvent as WireEvent, TelemetrySamplingUpdate,
    TelemetryToggle,
};
use crate::transport::TelemetryFeed;

/// The event name by which a worker reports events its full buffer
/// dropped; its measurement `count` says how many.
pub const DROPPED_EVENT: &str = "snakepit.telemetry.dropped";

/// How long a control message may take to go out.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(5);

/// One value a tool measured.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Measurement {
    /// A Python `int` (or `bool`) that fits in 64 bits.
    Int(i64),
    /// A Python `float`.
    Float(f64),
    /// Anything else, as text.
    Text(String),
}

impl Measurement {
    /// The value as a number, when it is one.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Measurement::Int(i) => Some(*i as f64),
            Measurement::Float(f) => Some(*f),
            Measurement::Text(_) => None,
        }
    }
}

/// One telemetry event from a worker's tool, as the event hook receives it.
///
/// ```
/// use snakepit::events::HandleEvent;
/// use snakepit::telemetry::TelemetryEvent;
///
/// /// Prints how long each `model.predict` took, with its call's id.
/// #[derive(Debug)]
/// struct Durations;
///
/// impl HandleEvent for Durations {
///     fn telemetry(&self, e: &TelemetryEvent) {
///         if e.name == "model.predict.stop" {
///             let ns = e.measurements.get("duration_ns").and_then(|m| m.as_f64());
///             println!("{} on {}: {:?} ns ({:?})", e.name, e.worker, ns, e.correlation_id);
///         }
///     }
/// }
/// # let _ = Durations;
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TelemetryEvent {
    /// The dotted event name, e.g. `"model.predict.stop"`.
    pub name: String,
    /// What was measured.
    pub measurements: HashMap<String, Measurement>,
    /// Text the tool attached.
    pub metadata: HashMap<String, String>,
    /// The worker whose tool emitted it, e.g. `"worker-0"`.
    pub worker: String,
    /// The correlation id of the call it was emitted in (see
    /// [`CallOptions::correlation_id`](crate::CallOptions::correlation_id)),
    /// if any.
    pub correlation_id: Option<String>,
    /// When the tool emitted it (the worker's clock).
    pub timestamp: SystemTime,
}

impl TelemetryEvent {
    /// The event `wire` from `worker`.
    pub(crate) fn from_wire(worker: &str, wire: WireEvent) -> TelemetryEvent {
        let measurements = wire
            .measurements
            .into_iter()
            .map(|(k, v)| {
                let m = match v.value {
                    Some(telemetry_value::Value::IntValue(i)) => Measurement::Int(i),
                    Some(telemetry_value::Value::FloatValue(f)) => Measurement::Float(f),
                    Some(telemetry_value::Value::StringValue(s)) => Measurement::Text(s),
                    _ => Measurement::Text(String::new()),
                };
                (k, m)
            })
            .collect();
        let timestamp =
            UNIX_EPOCH + Duration::from_nanos(u64::try_from(wire.timestamp_ns).unwrap_or(0));
        TelemetryEvent {
            name: wire.event_parts.join("."),
            measurements,
            metadata: wire.metadata,
            worker: worker.to_owned(),
            correlation_id: Some(wire.correlation_id).filter(|id| !id.is_empty()),
            timestamp,
        }
    }
}

/// What the workers record: whether telemetry is on, and which share of
/// events is kept.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Settings {
    pub enabled: bool,
    pub sampling_rate: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            enabled: true,
            sampling_rate: 1.0,
        }
    }
}

/// Checks a sampling rate: a share, 0 to 1.
pub(crate) fn check_sampling_rate(rate: f64) -> Result<(), Error> {
    if (0.0..=1.0).contains(&rate) {
        Ok(())
    } else {
        Err(Error::InvalidArgument {
            argument: "sampling_rate",
            message: format!("a sampling rate is a share from 0 to 1, got {rate}"),
        })
    }
}

/// The pool's telemetry: its settings and each slot's live stream.
pub(crate) struct Hub {
    state: Mutex<HubState>,
    /// The threads reading the streams, joined at shutdown.
    pumps: Mutex<Vec<thread::JoinHandle<()>>>,
}

struct HubState {
    settings: Settings,
    feeds: Vec<Option<Arc<dyn TelemetryFeed>>>,
}

impl Hub {
    /// A hub for `workers` slots, with these settings.
    pub fn new(workers: usize, settings: Settings) -> Hub {
        Hub {
            state: Mutex::new(HubState {
                settings,
                feeds: (0..workers).map(|_| None).collect(),
            }),
            pumps: Mutex::new(Vec::new()),
        }
    }

    /// Keeps the thread reading a stream, to join at [`close`](Self::close).
    pub fn add_pump(&self, pump: thread::JoinHandle<()>) {
        let mut pumps = self.pumps.lock();
        pumps.retain(|p| !p.is_finished());
        pumps.push(pump);
    }

    /// At shutdown, once the workers are gone: ends every stream and waits
    /// for their threads, so no hook runs after the pool has shut down.
    pub fn close(&self) {
        let feeds: Vec<_> = self
            .state
            .lock()
            .feeds
            .iter_mut()
            .flat_map(Option::take)
            .collect();
        for feed in feeds {
            feed.cancel();
        }
        let pumps = std::mem::take(&mut *self.pumps.lock());
        let me = thread::current().id();
        for pump in pumps {
            // A hook that shut the pool down runs on a pump: not joined.
            if pump.thread().id() != me {
                let _ = pump.join();
            }
        }
    }

    /// Sets what every worker records, now and when started later.
    pub fn set(&self, settings: Settings) {
        let feeds: Vec<_> = {
            let mut state = self.state.lock();
            state.settings = settings;
            state.feeds.iter().flatten().cloned().collect()
        };
        for feed in feeds {
            send_settings(&*feed, settings);
        }
    }

    /// Makes `feed` slot `slot`'s stream (replacing its last process's)
    /// and sends it the settings.
    pub fn attach(&self, slot: usize, feed: Arc<dyn TelemetryFeed>) {
        let mut state = self.state.lock();
        send_settings(&*feed, state.settings);
        state.feeds[slot] = Some(feed);
    }

    /// Forgets slot `slot`'s stream if it is still `feed`.
    pub fn detach(&self, slot: usize, feed: &Arc<dyn TelemetryFeed>) {
        let mut state = self.state.lock();
        if state.feeds[slot]
            .as_ref()
            .is_some_and(|f| Arc::ptr_eq(f, feed))
        {
            state.feeds[slot] = None;
        }
    }
}

fn send_settings(feed: &dyn TelemetryFeed, settings: Settings) {
    let mut toggle = TelemetryControl::new();
    toggle.set_toggle(TelemetryToggle {
        enabled: settings.enabled,
        ..Default::default()
    });
    let mut sampling = TelemetryControl::new();
    sampling.set_sampling(TelemetrySamplingUpdate {
        sampling_rate: settings.sampling_rate,
        ..Default::default()
    });
    for control in [toggle, sampling] {
        if let Err(e) = feed.send(control, CONTROL_TIMEOUT) {
            log::debug!(target: "snakepit::telemetry", "a telemetry control did not go out: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sampling_rate_outside_zero_to_one_is_refused() {
        assert!(check_sampling_rate(0.0).is_ok());
        assert!(check_sampling_rate(1.0).is_ok());
        for bad in [-0.1, 1.5, f64::NAN] {
            let err = check_sampling_rate(bad).unwrap_err();
            assert!(matches!(
                err,
                Error::InvalidArgument {
                    argument: "sampling_rate",
                    ..
                }
            ));
        }
    }

    #[test]
    fn a_wire_event_becomes_a_typed_event_of_its_worker() {
        let mut wire = WireEvent::new();
        wire.event_parts = vec!["model".into(), "predict".into(), "stop".into()];
        let mut v = crate::protocol::messages::TelemetryValue::new();
        v.value = Some(telemetry_value::Value::IntValue(42));
        wire.measurements.insert("duration_ns".into(), v);
        wire.timestamp_ns = 1_000_000_000;
        wire.correlation_id = "abc".into();
        let e = TelemetryEvent::from_wire("worker-3", wire);
        assert_eq!(e.name, "model.predict.stop");
        assert_eq!(e.measurements["duration_ns"], Measurement::Int(42));
        assert_eq!(e.worker, "worker-3");
        assert_eq!(e.correlation_id.as_deref(), Some("abc"));
        assert_eq!(e.timestamp, UNIX_EPOCH + Duration::from_secs(1));
        let none = TelemetryEvent::from_wire("w", WireEvent::new());
        assert_eq!(none.correlation_id, None);
    }
}
