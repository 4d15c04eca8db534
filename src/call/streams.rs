//! The streams of the clinic's events open in this process (`notifications`), counted per
//! account so that one account cannot hold every connection the process has, and in all, so
//! that the streams' reads (two a second each) cannot crowd out the requests'.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::domain::ids::UserId;
use crate::error::ApiError;

/// Streams one account may hold open at once, in one process: a screen per desk, not a
/// connection per browser tab left open.
pub const STREAMS_PER_ACCOUNT: usize = 4;
/// Streams one process holds open at once.
pub const STREAMS_PER_PROCESS: usize = 64;

/// The streams open in this process, per account, and the signal that ends them all when the
/// process stops (a stream would otherwise hold the stop for the whole shutdown timeout).
pub struct Streams {
    open: Arc<Mutex<HashMap<UserId, usize>>>,
    closing: watch::Sender<bool>,
}

impl Default for Streams {
    fn default() -> Self {
        Self {
            open: Arc::default(),
            closing: watch::channel(false).0,
        }
    }
}

/// A stream's place among its account's: given back when the stream ends.
pub struct Slot {
    open: Arc<Mutex<HashMap<UserId, usize>>>,
    user: UserId,
}

impl Streams {
    /// A place for one more stream of `user`'s: 429 when they hold their bound, 503 when the
    /// process holds its own or is stopping.
    pub fn take(&self, user: UserId) -> Result<Slot, ApiError> {
        if *self.closing.borrow() {
            return Err(ApiError::Unavailable);
        }
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.values().sum::<usize>() >= STREAMS_PER_PROCESS {
            return Err(ApiError::Busy { retry_after: 30 });
        }
        let count = open.entry(user).or_default();
        if *count >= STREAMS_PER_ACCOUNT {
            return Err(ApiError::TooManyRequests { retry_after: 30 });
        }
        *count += 1;
        Ok(Slot {
            open: Arc::clone(&self.open),
            user,
        })
    }

    /// Ends every stream: the process is stopping.
    pub fn close_all(&self) {
        self.closing.send_replace(true);
    }

    /// What a stream watches to end when the process stops.
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.user) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_holds_a_bounded_number_of_streams() {
        let streams = Streams::default();
        let user = UserId::numbered(1);
        let held: Vec<Slot> = (0..STREAMS_PER_ACCOUNT)
            .map(|_| streams.take(user).unwrap())
            .collect();
        assert!(streams.take(user).is_err(), "one more than the bound");
        assert!(streams.take(UserId::numbered(2)).is_ok(), "another account");
        drop(held);
        assert!(
            streams.take(user).is_ok(),
            "slots come back when streams end"
        );
    }

    #[test]
    fn a_process_holds_a_bounded_number_of_streams_and_none_once_stopping() {
        let streams = Streams::default();
        let held: Vec<Slot> = (0..STREAMS_PER_PROCESS as u128)
            .map(|n| streams.take(UserId::numbered(n)).unwrap())
            .collect();
        let refused = streams.take(UserId::numbered(1000));
        assert!(
            matches!(refused, Err(ApiError::Busy { .. })),
            "one more in all"
        );
        drop(held);
        assert!(streams.take(UserId::numbered(1000)).is_ok());
        streams.close_all();
        let refused = streams.take(UserId::numbered(1001));
        assert!(matches!(refused, Err(ApiError::Unavailable)), "stopping");
        assert!(*streams.closing().borrow(), "streams see the stop");
    }
}
