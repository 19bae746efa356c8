//! The resolver thread of a remote pool: finds the endpoints on a timer,
//! and at once when asked (after an endpoint failed), and binds them to
//! slots through [`Endpoints`]. When a resolve fails the last good set is
//! kept.

use std::net::ToSocketAddrs;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::remote::Endpoints;
use crate::remote::Source;

/// The shortest time between two resolves asked for by failures, so a
/// flapping endpoint cannot keep DNS busy.
const MIN_RESOLVE_GAP: Duration = Duration::from_millis(200);

/// Finds the endpoints `source` names now, as sorted `ip:port` addresses
/// (a fixed list keeps its names). Fails with a message for the log.
pub(crate) fn resolve(source: &Source) -> Result<Vec<String>, String> {
    let mut found = match source {
        Source::Dns(name) => {
            let addresses = name
                .to_socket_addrs()
                .map_err(|e| format!("cannot resolve {name}: {e}"))?;
            addresses.map(|a| a.to_string()).collect()
        }
        Source::Endpoints(list) => list.clone(),
        Source::Discover(discover) => discover()?,
    };
    found.sort();
    found.dedup();
    Ok(found)
}

/// The running resolver thread.
pub(crate) struct Resolver {
    /// Dropped to stop the thread.
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
    endpoints: Arc<Endpoints>,
}

impl Resolver {
    /// Starts resolving `source` every `every` into `endpoints`; `poked`
    /// asks for a resolve now. The first resolve is the caller's: this
    /// thread's first comes after `every`, or when poked.
    pub fn start(
        source: Source,
        every: Duration,
        endpoints: Arc<Endpoints>,
        poked: Receiver<()>,
    ) -> Resolver {
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let table = endpoints.clone();
        let thread = thread::Builder::new()
            .name("snakepit-resolver".into())
            .spawn(move || run(&source, every, &table, &poked, &stopped))
            .expect("spawning the resolver thread");
        Resolver {
            stop: Some(stop),
            thread: Some(thread),
            endpoints,
        }
    }

    /// Stops the thread and closes the table, so that slots waiting for an
    /// endpoint give up.
    pub fn stop(&mut self) {
        self.endpoints.close();
        self.stop = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(
    source: &Source,
    every: Duration,
    endpoints: &Endpoints,
    poked: &Receiver<()>,
    stopped: &Receiver<()>,
) {
    let mut last_error: Option<String> = None;
    loop {
        // The first resolve is the pool's start's, which needs its answer
        // at once: this thread's come after.
        crossbeam_channel::select! {
            recv(stopped) -> _ => return,
            recv(poked) -> _ => {
                // Asked for by a failure: give the next few a moment to
                // arrive, so they share one resolve.
                match stopped.recv_timeout(MIN_RESOLVE_GAP) {
                    Err(RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
            }
            default(every) => {}
        }
        match resolve(source) {
            Ok(found) => {
                if last_error.take().is_some() {
                    log::info!("endpoints resolve again: {found:?}");
                }
                endpoints.apply(&found);
            }
            Err(message) => {
                // Said once per change, not every interval.
                if last_error.as_deref() != Some(message.as_str()) {
                    log::warn!("{message}; keeping the last endpoints found");
                }
                last_error = Some(message);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;

    #[test]
    fn localhost_resolves_to_loopback_addresses() {
        let found = resolve(&Source::Dns("localhost:50051".into())).unwrap();
        assert!(!found.is_empty());
        assert!(
            found.iter().all(|a| a.ends_with(":50051")
                && (a.starts_with("127.") || a.starts_with("[::1]"))),
            "{found:?}"
        );
    }

    #[test]
    fn an_unresolvable_name_is_an_error() {
        let err = resolve(&Source::Dns("no-such-host.invalid:1".into())).unwrap_err();
        assert!(err.contains("no-such-host.invalid"), "{err}");
    }

    #[test]
    fn a_failing_source_keeps_the_last_good_set_and_a_poke_resolves_at_once() {
        let answer: Arc<Mutex<Result<Vec<String>, String>>> =
            Arc::new(Mutex::new(Ok(vec!["a:1".to_string()])));
        let source_answer = answer.clone();
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = calls.clone();
        let source = Source::Discover(Arc::new(move || {
            let answer = source_answer.lock().clone();
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            answer
        }));
        let (endpoints, poked) = Endpoints::new(2);
        // An hour between timed resolves: only pokes resolve again here.
        let mut resolver =
            Resolver::start(source, Duration::from_secs(3600), endpoints.clone(), poked);
        let wait_for = |n: usize| {
            while calls.load(std::sync::atomic::Ordering::SeqCst) < n {
                thread::sleep(Duration::from_millis(5));
            }
        };
        endpoints.poke();
        wait_for(1);
        *answer.lock() = Err("registry down".into());
        endpoints.poke();
        wait_for(2);
        *answer.lock() = Ok(vec!["b:1".to_string()]);
        endpoints.poke();
        wait_for(3);
        resolver.stop();
        // The failed resolve kept a:1; the last one replaced it with b:1,
        // which took the slot a:1 freed.
        assert_eq!(endpoints.bound(), vec![Some("b:1".to_string()), None]);
    }
}
