//! Driving grpcio's futures from a plain OS thread, with no executor: the
//! thread polls, parks, and is unparked by the completion-queue thread when
//! there is progress. Lanes read streaming replies this way; host-tool
//! threads wait for their replies to go out.

use crate::deadline::later;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

/// Wakes a parked thread.
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// A waker that unparks the current thread.
pub(crate) fn thread_waker() -> Waker {
    Waker::from(Arc::new(Unpark(thread::current())))
}

/// Polls `future` on this thread until it is ready, or `None` after
/// `timeout`.
pub(crate) fn block_on_timeout<F: Future>(future: F, timeout: Duration) -> Option<F::Output> {
    let deadline = later(Instant::now(), timeout);
    let waker = thread_waker();
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return Some(output);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        // A spurious wake-up only polls once more.
        thread::park_timeout(left);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ready once another thread has set the flag and woken the poller.
    struct Flag(
        Arc<std::sync::atomic::AtomicBool>,
        Arc<parking_lot::Mutex<Option<Waker>>>,
    );

    impl Future for Flag {
        type Output = ();
        fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            *self.1.lock() = Some(cx.waker().clone());
            if self.0.load(std::sync::atomic::Ordering::SeqCst) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }
    }

    #[test]
    fn a_wake_from_another_thread_completes_the_wait_and_a_silent_future_times_out() {
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let waker = Arc::new(parking_lot::Mutex::new(None::<Waker>));
        let (d, w) = (done.clone(), waker.clone());
        let setter = thread::spawn(move || {
            while w.lock().is_none() {
                thread::yield_now();
            }
            d.store(true, std::sync::atomic::Ordering::SeqCst);
            w.lock().take().unwrap().wake();
        });
        assert_eq!(
            block_on_timeout(Flag(done, waker), Duration::from_secs(30)),
            Some(())
        );
        setter.join().unwrap();

        let never = Flag(Arc::default(), Arc::default());
        assert_eq!(block_on_timeout(never, Duration::from_millis(20)), None);
    }
}
