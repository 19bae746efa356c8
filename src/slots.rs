//! The fixed slot array: one slot per worker, each a single atomic word.
//!
//! A slot packs three numbers into one `AtomicU64` so that every transition
//! is one compare-and-swap and no reader ever sees them out of step:
//!
//! ```text
//!  63            32 31        16 15         0
//! [   generation   |  capacity  |    load    ]
//! ```
//!
//! - `capacity`: calls the worker may run at once (1 for the process
//!   profile, N for the thread profile), 0 while starting, draining or dead.
//! - `load`: calls in flight.
//! - `generation`: bumped whenever the slot's process is retired, so that a
//!   late completion from the old process never frees capacity on the new.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

/// The largest capacity a slot can hold.
pub(crate) const MAX_CAPACITY: usize = u16::MAX as usize;

/// A ticket for one acquired unit of a slot's capacity. Releasing it with
/// [`Slots::release`] is the holder's duty, on every path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ticket {
    pub slot: usize,
    pub generation: u32,
}

/// A consistent reading of one slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SlotState {
    pub generation: u32,
    pub capacity: u16,
    pub load: u16,
}

impl SlotState {
    fn unpack(word: u64) -> Self {
        SlotState {
            generation: (word >> 32) as u32,
            capacity: (word >> 16) as u16,
            load: word as u16,
        }
    }

    fn pack(self) -> u64 {
        (u64::from(self.generation) << 32) | (u64::from(self.capacity) << 16) | u64::from(self.load)
    }
}

/// The array of slots, sized once when the pool starts.
#[derive(Debug)]
pub(crate) struct Slots {
    slots: Box<[AtomicU64]>,
}

impl Slots {
    /// `n` slots, all closed (capacity 0).
    pub fn new(n: usize) -> Self {
        Slots {
            slots: (0..n).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub fn state(&self, slot: usize) -> SlotState {
        SlotState::unpack(self.slots[slot].load(SeqCst))
    }

    /// Takes one unit of capacity from the least-loaded open slot, or `None`
    /// when every slot is full or closed.
    pub fn acquire(&self) -> Option<Ticket> {
        loop {
            let mut best: Option<(usize, u64, u32)> = None;
            for (i, slot) in self.slots.iter().enumerate() {
                let word = slot.load(SeqCst);
                let s = SlotState::unpack(word);
                if s.load >= s.capacity {
                    continue;
                }
                // Least free-fraction first is the same as least load for equal
                // capacities; compare load / capacity without dividing.
                let better = match best {
                    None => true,
                    Some((_, w, _)) => {
                        let b = SlotState::unpack(w);
                        u32::from(s.load) * u32::from(b.capacity)
                            < u32::from(b.load) * u32::from(s.capacity)
                    }
                };
                if better {
                    best = Some((i, word, s.generation));
                    if s.load == 0 {
                        break;
                    }
                }
            }
            let (i, word, generation) = best?;
            let mut s = SlotState::unpack(word);
            s.load += 1;
            if self.slots[i]
                .compare_exchange(word, s.pack(), SeqCst, SeqCst)
                .is_ok()
            {
                return Some(Ticket {
                    slot: i,
                    generation,
                });
            }
            // Someone else moved that slot first: scan again.
        }
    }

    /// Takes one unit of capacity from slot `slot` only, if it still runs
    /// `generation` and has room.
    pub fn acquire_slot(&self, slot: usize, generation: u32) -> Option<Ticket> {
        self.update(slot, |s| {
            (s.generation == generation && s.load < s.capacity).then(|| SlotState {
                load: s.load + 1,
                ..s
            })
        })
        .map(|_| Ticket { slot, generation })
    }

    /// Gives back one unit taken by `ticket`. A ticket of a retired
    /// generation changes nothing. Returns true when capacity was freed.
    pub fn release(&self, ticket: Ticket) -> bool {
        self.update(ticket.slot, |s| {
            (s.generation == ticket.generation && s.load > 0).then(|| SlotState {
                load: s.load - 1,
                ..s
            })
        })
        .is_some()
    }

    /// Puts a new process of `generation` in the slot, taking `capacity`
    /// calls, with no load. Only the worker's own thread calls this, with a
    /// generation no earlier ticket carries.
    pub fn install(&self, slot: usize, generation: u32, capacity: u16) {
        self.slots[slot].store(
            SlotState {
                generation,
                capacity,
                load: 0,
            }
            .pack(),
            SeqCst,
        );
    }

    /// Takes one unit of capacity away for good from the process of
    /// `generation` (a thread of it is stuck in a call that timed out), so
    /// that no call is placed on a thread that cannot run it. The load is
    /// kept; the next generation is installed with full capacity. Returns
    /// the capacity left, or `None` when the slot runs another generation.
    pub fn shrink(&self, slot: usize, generation: u32) -> Option<u16> {
        self.update(slot, |s| {
            (s.generation == generation).then(|| SlotState {
                capacity: s.capacity.saturating_sub(1),
                ..s
            })
        })
        .map(|s| s.capacity)
    }

    /// Stops new calls on the slot while those in flight finish (capacity
    /// 0, load kept).
    pub fn drain(&self, slot: usize) {
        self.update(slot, |s| Some(SlotState { capacity: 0, ..s }));
    }

    /// Drains the slot only if it still runs `generation`: a lane closing
    /// its own process must not close a replacement already in place.
    pub fn drain_generation(&self, slot: usize, generation: u32) {
        self.update(slot, |s| {
            (s.generation == generation).then_some(SlotState { capacity: 0, ..s })
        });
    }

    /// Retires the slot's process: capacity and load to 0, generation + 1.
    /// Returns the new generation, which the next process uses.
    pub fn retire(&self, slot: usize) -> u32 {
        let new = self
            .update(slot, |s| {
                Some(SlotState {
                    generation: s.generation.wrapping_add(1),
                    capacity: 0,
                    load: 0,
                })
            })
            .expect("retire always applies");
        new.generation
    }

    /// Retires the slot only if it still runs `generation`: for a lane that
    /// has seen that process die, ahead of the worker's own thread.
    pub fn retire_generation(&self, slot: usize, generation: u32) -> bool {
        self.update(slot, |s| {
            (s.generation == generation).then(|| SlotState {
                generation: s.generation.wrapping_add(1),
                capacity: 0,
                load: 0,
            })
        })
        .is_some()
    }

    fn update(&self, slot: usize, f: impl Fn(SlotState) -> Option<SlotState>) -> Option<SlotState> {
        let cell = &self.slots[slot];
        let mut word = cell.load(SeqCst);
        loop {
            let next = f(SlotState::unpack(word))?;
            match cell.compare_exchange_weak(word, next.pack(), SeqCst, SeqCst) {
                Ok(_) => return Some(next),
                Err(current) => word = current,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn acquire_picks_the_least_loaded_open_slot() {
        let slots = Slots::new(3);
        assert_eq!(slots.acquire(), None, "closed slots take nothing");
        let g0 = slots.retire(0);
        let g1 = slots.retire(1);
        slots.install(0, g0, 2);
        slots.install(1, g1, 2);
        let a = slots.acquire().unwrap();
        let b = slots.acquire().unwrap();
        assert_ne!(a.slot, b.slot, "second call goes to the idle slot");
        slots.acquire().unwrap();
        slots.acquire().unwrap();
        assert_eq!(slots.acquire(), None, "all capacity taken");
        assert!(slots.release(a));
        assert_eq!(slots.acquire().map(|t| t.slot), Some(a.slot));
    }

    #[test]
    fn a_late_release_never_frees_capacity_of_a_new_generation() {
        let slots = Slots::new(1);
        let g = slots.retire(0);
        slots.install(0, g, 1);
        let old = slots.acquire().unwrap();
        let g2 = slots.retire(0);
        slots.install(0, g2, 1);
        let fresh = slots.acquire().unwrap();
        assert!(!slots.release(old), "old ticket is ignored");
        assert_eq!(slots.state(0).load, 1, "the new call still counts");
        assert!(slots.release(fresh));
        assert_eq!(slots.state(0).load, 0);
    }

    #[test]
    fn a_lane_retires_only_the_generation_it_saw_die() {
        let slots = Slots::new(1);
        let g = slots.retire(0);
        slots.install(0, g, 1);
        assert!(slots.retire_generation(0, g));
        assert_eq!(slots.acquire(), None, "a dead process takes no calls");
        slots.install(0, g + 1, 1);
        assert!(
            !slots.retire_generation(0, g),
            "the new process is left alone"
        );
        assert!(slots.acquire().is_some());
    }

    #[test]
    fn draining_an_old_generation_leaves_its_replacement_open() {
        let slots = Slots::new(1);
        let old = slots.retire(0);
        slots.install(0, old + 1, 2);
        slots.drain_generation(0, old);
        assert!(
            slots.acquire().is_some(),
            "the replacement still takes calls"
        );
        slots.drain_generation(0, old + 1);
        assert_eq!(slots.acquire(), None);
    }

    #[test]
    fn a_stuck_thread_shrinks_only_its_own_generation() {
        let slots = Slots::new(1);
        let g = slots.retire(0);
        slots.install(0, g, 2);
        let t = slots.acquire().unwrap();
        assert_eq!(slots.shrink(0, g), Some(1));
        assert!(slots.release(t));
        let held = slots.acquire().unwrap();
        assert_eq!(slots.acquire(), None, "the stuck thread takes no call");
        assert_eq!(slots.shrink(0, g), Some(0));
        assert_eq!(slots.shrink(0, g), Some(0), "saturates at zero");
        assert_eq!(slots.shrink(0, g + 1), None, "another generation");
        assert!(slots.release(held));
        slots.install(0, g + 1, 2);
        assert_eq!(slots.state(0).capacity, 2, "a new process starts whole");
    }

    #[test]
    fn drain_keeps_load_and_stops_new_calls() {
        let slots = Slots::new(1);
        let g = slots.retire(0);
        slots.install(0, g, 4);
        let t = slots.acquire().unwrap();
        slots.drain(0);
        assert_eq!(slots.acquire(), None);
        assert_eq!(slots.state(0).load, 1);
        slots.release(t);
        assert_eq!(slots.state(0).load, 0);
    }

    #[test]
    fn concurrent_acquire_never_exceeds_capacity() {
        let slots = Arc::new(Slots::new(4));
        for i in 0..4 {
            let g = slots.retire(i);
            slots.install(i, g, 3);
        }
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let slots = slots.clone();
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        if let Some(t) = slots.acquire() {
                            let s = slots.state(t.slot);
                            assert!(s.load <= s.capacity);
                            assert!(slots.release(t));
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        for i in 0..4 {
            assert_eq!(slots.state(i).load, 0, "no load leaked on slot {i}");
        }
    }
}
