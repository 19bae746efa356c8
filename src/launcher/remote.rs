//! The remote launcher: endpoints that someone else runs (Kubernetes, say)
//! and that the pool only finds and connects to.
//!
//! The slots of a remote pool are bound to endpoint addresses by the
//! resolver thread ([`super::resolver`]), through the table in
//! [`Endpoints`]. A slot's worker thread "launches" by waiting until its
//! slot has an address; the process it gets back has no pid, exit status,
//! memory reading or stderr. Its end is what the host sees of it: a broken
//! connection ([`Process::connection_lost`]), a failed health check, or
//! its address vanishing from DNS (then it is withdrawn: its calls in
//! flight finish, it gets no new ones).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use parking_lot::{Condvar, Mutex};

use super::{ExitWatch, Launcher, OnExit, OnWithdraw, Process, Target};
use crate::error::Exit;

/// How long an endpoint that said it is stopping is not bound again while
/// it is still listed (Kubernetes lists a terminating pod for a while).
const STOPPING_COOL_OFF: Duration = Duration::from_secs(60);

/// Which endpoint each slot serves: written by the resolver, read by the
/// slots' worker threads.
pub(crate) struct Endpoints {
    table: Mutex<Table>,
    changed: Condvar,
    /// Asks the resolver to resolve now.
    poke: Sender<()>,
}

struct Table {
    slots: Vec<Entry>,
    /// Endpoints that said they are stopping, and until when they are not
    /// bound again.
    cooling: HashMap<String, Instant>,
    /// Endpoints found beyond the slot array at the last resolve.
    left_out: usize,
    closed: bool,
}

#[derive(Default)]
struct Entry {
    /// The endpoint bound to the slot.
    address: Option<String>,
    /// The slot's current connection to it, to withdraw when it vanishes.
    process: Option<Weak<RemoteProcess>>,
}

impl Endpoints {
    /// A table of `slots` unbound slots, and the receiver of its requests
    /// to resolve now.
    pub fn new(slots: usize) -> (Arc<Endpoints>, Receiver<()>) {
        let (poke, poked) = crossbeam_channel::bounded(1);
        let endpoints = Endpoints {
            table: Mutex::new(Table {
                slots: (0..slots).map(|_| Entry::default()).collect(),
                cooling: HashMap::new(),
                left_out: 0,
                closed: false,
            }),
            changed: Condvar::new(),
            poke,
        };
        (Arc::new(endpoints), poked)
    }

    /// Asks the resolver to resolve now (at most one request waits).
    pub fn poke(&self) {
        let _ = self.poke.try_send(());
    }

    /// Stops handing out endpoints: a worker thread waiting for one gives
    /// up.
    pub fn close(&self) {
        self.table.lock().closed = true;
        self.changed.notify_all();
    }

    /// Whether `slot` has an endpoint.
    pub fn is_bound(&self, slot: usize) -> bool {
        self.table.lock().slots[slot].address.is_some()
    }

    /// The endpoint bound to each slot.
    #[cfg(test)]
    pub fn bound(&self) -> Vec<Option<String>> {
        self.table
            .lock()
            .slots
            .iter()
            .map(|e| e.address.clone())
            .collect()
    }

    /// Makes the slots match a fresh resolution: endpoints no longer found
    /// are withdrawn and their slots freed; endpoints new to the table take
    /// free slots, in sorted order, as far as there are slots. Returns the
    /// slots newly bound.
    pub fn apply(&self, found: &[String]) -> Vec<usize> {
        let found: BTreeSet<&str> = found.iter().map(String::as_str).collect();
        let mut withdrawn = Vec::new();
        let mut newly = Vec::new();
        {
            let mut t = self.table.lock();
            let now = Instant::now();
            t.cooling
                .retain(|address, until| *until > now && found.contains(address.as_str()));
            for entry in &mut t.slots {
                let gone = entry.address.as_deref().is_some_and(|a| !found.contains(a));
                if gone {
                    let address = entry.address.take().unwrap_or_default();
                    log::info!("endpoint {address} is no longer listed; draining it");
                    if let Some(process) = entry.process.take().and_then(|p| p.upgrade()) {
                        withdrawn.push(process);
                    }
                }
            }
            let bound: BTreeSet<String> =
                t.slots.iter().filter_map(|e| e.address.clone()).collect();
            let mut left_out = 0;
            for address in found {
                if bound.contains(address) || t.cooling.contains_key(address) {
                    continue;
                }
                match t.slots.iter().position(|e| e.address.is_none()) {
                    Some(slot) => {
                        log::info!("endpoint {address} found; it serves slot {slot}");
                        t.slots[slot].address = Some(address.to_owned());
                        newly.push(slot);
                    }
                    None => left_out += 1,
                }
            }
            if left_out != t.left_out && left_out > 0 {
                log::warn!(
                    "{left_out} endpoint(s) left out: all {} slots are taken \
                     (raise Remote::max_endpoints)",
                    t.slots.len()
                );
            }
            t.left_out = left_out;
        }
        self.changed.notify_all();
        // Outside the lock: withdrawing tells the worker threads.
        for process in withdrawn {
            (process.on_withdraw)();
        }
        newly
    }

    /// Waits until `slot` has an endpoint and records `make`'s process as
    /// its connection. Fails once the table is closed.
    fn bind(
        &self,
        slot: usize,
        make: impl FnOnce(String) -> Arc<RemoteProcess>,
    ) -> Result<Arc<RemoteProcess>, String> {
        let mut t = self.table.lock();
        loop {
            if t.closed {
                return Err("the pool is shutting down".into());
            }
            if let Some(address) = t.slots[slot].address.clone() {
                let process = make(address);
                t.slots[slot].process = Some(Arc::downgrade(&process));
                return Ok(process);
            }
            self.changed.wait(&mut t);
        }
    }

    /// The endpoint of `slot` said it is stopping: free the slot, and do
    /// not bind that endpoint again while it cools off.
    fn release_stopping(&self, slot: usize, address: &str) {
        {
            let mut t = self.table.lock();
            if t.slots[slot].address.as_deref() == Some(address) {
                t.slots[slot].address = None;
                t.slots[slot].process = None;
            }
            t.cooling
                .insert(address.to_owned(), Instant::now() + STOPPING_COOL_OFF);
        }
        self.changed.notify_all();
        self.poke();
    }
}

/// Hands each slot's worker the endpoint bound to its slot.
pub(crate) struct RemoteLauncher {
    pub endpoints: Arc<Endpoints>,
}

impl Launcher for RemoteLauncher {
    fn launch(
        &self,
        target: Target<'_>,
        on_exit: OnExit,
        on_withdraw: OnWithdraw,
    ) -> Result<Arc<dyn Process>, String> {
        let endpoints = Arc::downgrade(&self.endpoints);
        let process = self.endpoints.bind(target.slot, move |address| {
            Arc::new(RemoteProcess {
                slot: target.slot,
                address,
                endpoints,
                exit: ExitWatch::default(),
                on_exit: Mutex::new(Some(on_exit)),
                on_withdraw,
            })
        })?;
        Ok(process)
    }

    fn is_bound(&self, slot: usize) -> bool {
        self.endpoints.is_bound(slot)
    }
}

/// One connection's worth of a remote endpoint: what the worker thread
/// supervises in place of a child process.
pub(crate) struct RemoteProcess {
    slot: usize,
    address: String,
    endpoints: Weak<Endpoints>,
    exit: ExitWatch,
    on_exit: Mutex<Option<OnExit>>,
    on_withdraw: OnWithdraw,
}

impl RemoteProcess {
    /// Records the end (once) and tells the worker thread.
    fn end(&self) {
        let exit = Exit {
            code: None,
            signal: None,
        };
        if self.exit.set(exit) {
            if let Some(on_exit) = self.on_exit.lock().take() {
                on_exit(exit);
            }
        }
    }
}

impl Process for RemoteProcess {
    fn wait_ready(
        &self,
        _timeout: Duration,
        _abandon: &dyn Fn() -> bool,
    ) -> Result<String, String> {
        // Ready is the worker's first ping over the connection.
        Ok(self.address.clone())
    }

    fn exit_status(&self) -> Option<Exit> {
        self.exit.get()
    }

    fn wait_exit(&self, timeout: Duration) -> Option<Exit> {
        self.exit.wait_timeout(timeout)
    }

    /// The host cannot kill a remote worker: it drops the connection.
    fn kill(&self) {
        self.end();
    }

    fn terminate(&self, _grace: Duration) {
        self.end();
    }

    fn resident_bytes(&self) -> Option<u64> {
        None
    }

    fn pid(&self) -> Option<u32> {
        None
    }

    fn identity(&self) -> String {
        format!("endpoint {}", self.address)
    }

    fn stderr_tail(&self, _settle: Duration) -> Vec<String> {
        Vec::new()
    }

    /// A broken connection is the end of a remote endpoint, as far as the
    /// host can tell; so is a call the endpoint cancelled (the host cancels
    /// none that it then reports: a server that stops cancels the calls it
    /// holds). The resolver looks again at once.
    fn connection_lost(&self, code: &str) -> Option<Exit> {
        if !matches!(code, "UNAVAILABLE" | "CANCELLED" | "CLIENT") {
            return None;
        }
        self.end();
        if let Some(endpoints) = self.endpoints.upgrade() {
            endpoints.poke();
        }
        self.exit.get()
    }

    fn stopping(&self) {
        if let Some(endpoints) = self.endpoints.upgrade() {
            endpoints.release_stopping(self.slot, &self.address);
        }
        (self.on_withdraw)();
    }

    fn endpoint(&self) -> Option<&str> {
        Some(&self.address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn new_endpoints_take_free_slots_and_vanished_ones_free_theirs() {
        let (endpoints, _poked) = Endpoints::new(2);
        assert_eq!(endpoints.apply(&strings(&["b:1", "a:1"])), vec![0, 1]);
        assert_eq!(
            endpoints.bound(),
            vec![Some("a:1".to_string()), Some("b:1".to_string())]
        );
        // One more than the slots: left out until a slot frees.
        assert!(endpoints.apply(&strings(&["a:1", "b:1", "c:1"])).is_empty());
        assert_eq!(endpoints.apply(&strings(&["b:1", "c:1"])), vec![0]);
        assert_eq!(
            endpoints.bound(),
            vec![Some("c:1".to_string()), Some("b:1".to_string())]
        );
    }

    #[test]
    fn a_vanished_endpoint_is_withdrawn_and_a_stopping_one_cools_off() {
        let (endpoints, _poked) = Endpoints::new(1);
        endpoints.apply(&strings(&["a:1"]));
        let withdrawn = Arc::new(AtomicUsize::new(0));
        let seen = withdrawn.clone();
        let launcher = RemoteLauncher {
            endpoints: endpoints.clone(),
        };
        let target = Target {
            worker: "worker-0",
            slot: 0,
            generation: 1,
        };
        let process = launcher
            .launch(
                target,
                Box::new(|_| {}),
                Box::new(move || {
                    seen.fetch_add(1, SeqCst);
                }),
            )
            .unwrap();
        assert_eq!(process.endpoint(), Some("a:1"));
        endpoints.apply(&[]);
        assert_eq!(withdrawn.load(SeqCst), 1);
        assert_eq!(endpoints.bound(), vec![None]);

        endpoints.apply(&strings(&["a:1"]));
        let process = launcher
            .launch(target, Box::new(|_| {}), Box::new(|| {}))
            .unwrap();
        process.stopping();
        assert_eq!(endpoints.bound(), vec![None]);
        // Still listed, but stopping: not bound again while it cools off.
        assert!(endpoints.apply(&strings(&["a:1"])).is_empty());
    }

    #[test]
    fn a_lost_connection_ends_the_process_once() {
        let (endpoints, poked) = Endpoints::new(1);
        endpoints.apply(&strings(&["a:1"]));
        let ends = Arc::new(AtomicUsize::new(0));
        let seen = ends.clone();
        let process = RemoteLauncher {
            endpoints: endpoints.clone(),
        }
        .launch(
            Target {
                worker: "worker-0",
                slot: 0,
                generation: 1,
            },
            Box::new(move |_| {
                seen.fetch_add(1, SeqCst);
            }),
            Box::new(|| {}),
        )
        .unwrap();
        assert_eq!(process.connection_lost("INTERNAL"), None);
        assert_eq!(process.connection_lost("DEADLINE_EXCEEDED"), None);
        assert!(process.connection_lost("UNAVAILABLE").is_some());
        process.kill();
        assert_eq!(ends.load(SeqCst), 1);
        assert!(
            poked.try_recv().is_ok(),
            "a lost endpoint asks for a resolve"
        );
    }

    #[test]
    fn a_waiting_launch_gives_up_when_the_table_closes() {
        let (endpoints, _poked) = Endpoints::new(1);
        let launcher = RemoteLauncher {
            endpoints: endpoints.clone(),
        };
        let waiter = std::thread::spawn(move || {
            launcher
                .launch(
                    Target {
                        worker: "worker-0",
                        slot: 0,
                        generation: 1,
                    },
                    Box::new(|_| {}),
                    Box::new(|| {}),
                )
                .map(|_| ())
        });
        endpoints.close();
        assert!(waiter.join().unwrap().is_err());
    }
}
