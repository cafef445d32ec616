//! Connections kept between uses, so a read does not pay for a new connection:
//! the small pool both stores share.

use std::sync::Mutex;

/// Up to `max` idle connections; more are closed when given back.
pub(crate) struct Idle<C> {
    conns: Mutex<Vec<C>>,
    max: usize,
}

impl<C> Idle<C> {
    /// A pool holding `conns` to start with.
    pub(crate) fn new(conns: Vec<C>, max: usize) -> Self {
        Idle {
            conns: Mutex::new(conns),
            max,
        }
    }

    /// An idle connection, or a new one from `connect`.
    pub(crate) fn take<E>(&self, connect: impl FnOnce() -> Result<C, E>) -> Result<C, E> {
        let pooled = self.conns.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match pooled {
            Some(conn) => Ok(conn),
            None => connect(),
        }
    }

    /// Keeps `conn` for the next use, unless enough are kept already.
    pub(crate) fn give_back(&self, conn: C) {
        let mut idle = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.max {
            idle.push(conn);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_at_most_max_and_hands_back_the_last_kept_first() {
        let idle = Idle::new(vec![1], 2);
        assert_eq!(idle.take(|| Ok::<_, ()>(9)), Ok(1));
        assert_eq!(idle.take(|| Ok::<_, ()>(9)), Ok(9), "empty: a new one");
        for conn in [2, 3, 4] {
            idle.give_back(conn);
        }
        assert_eq!(idle.take(|| Err("none")), Ok(3));
        assert_eq!(idle.take(|| Err("none")), Ok(2));
        assert_eq!(idle.take(|| Err("none")), Err("none"), "4 was closed");
    }
}
