//! The jobs a dispatcher holds, and until when it knows it holds them.
//!
//! A claimed job may wait for its installation's turn, or for a slow
//! provider, longer than a lease. Unrenewed, its lease would expire while
//! it waits and the job be claimed again (by another replica, or by this
//! dispatcher once a permit frees) and posted twice. So the dispatcher
//! renews the leases of every job in hand every third of a lease, and a job
//! whose lease could not be renewed gives up before it posts: it belongs to
//! whoever claims it next.

use std::collections::HashMap;
use std::sync::Mutex;

/// Job ids in hand, each with the time (ms since the epoch) its lease is
/// known to run to.
#[derive(Debug, Default)]
pub struct Leases {
    held: Mutex<HashMap<i64, i64>>,
}

impl Leases {
    /// A job claimed with a lease until `until_ms`.
    pub fn hold(&self, id: i64, until_ms: i64) {
        self.map().insert(id, until_ms);
    }

    /// A job whose outcome was recorded (or could not be): no longer
    /// renewed, so an unrecorded one is claimed again once its lease ends.
    pub fn release(&self, id: i64) {
        self.map().remove(&id);
    }

    /// The ids to renew.
    pub fn ids(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self.map().keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// The outcome of renewing `asked` until `until_ms`: the ids in `kept`
    /// run to `until_ms`; the others asked for and still in hand are lost.
    /// Returns how many were lost.
    pub fn renewed(&self, asked: &[i64], kept: &[i64], until_ms: i64) -> usize {
        let mut map = self.map();
        let mut lost = 0;
        for id in asked {
            if let Some(until) = map.get_mut(id) {
                if kept.contains(id) {
                    *until = until_ms;
                } else {
                    *until = i64::MIN;
                    lost += 1;
                }
            }
        }
        lost
    }

    /// Whether the lease on `id` still runs past `now_ms`.
    pub fn holds(&self, id: i64, now_ms: i64) -> bool {
        self.map().get(&id).is_some_and(|until| *until > now_ms)
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<i64, i64>> {
        self.held
            .lock()
            .expect("never poisoned: no code panics while holding it")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_holds_until_its_time_and_renewal_moves_it() {
        let leases = Leases::default();
        leases.hold(7, 1_000);
        assert!(leases.holds(7, 999));
        assert!(!leases.holds(7, 1_000));
        assert_eq!(leases.renewed(&[7], &[7], 5_000), 0);
        assert!(leases.holds(7, 4_999));
    }

    #[test]
    fn a_lease_not_renewed_is_lost_at_once() {
        let leases = Leases::default();
        leases.hold(1, 10_000);
        leases.hold(2, 10_000);
        assert_eq!(leases.renewed(&[1, 2], &[2], 20_000), 1);
        assert!(!leases.holds(1, 0), "lost before its old time ran out");
        assert!(leases.holds(2, 19_999));
    }

    #[test]
    fn a_job_released_while_renewing_is_not_counted_lost() {
        let leases = Leases::default();
        leases.hold(1, 10_000);
        let asked = leases.ids();
        leases.release(1);
        assert_eq!(leases.renewed(&asked, &[], 20_000), 0);
        assert!(leases.ids().is_empty());
        assert!(!leases.holds(1, 0));
    }
}
