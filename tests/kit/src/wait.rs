//! Waiting on state, never on time: a test polls the condition it needs (a port that accepts, a
//! log line, a file) and fails with a diagnosis when it does not come, instead of sleeping a
//! guessed amount that is too short on a loaded CI machine and too long everywhere else.

use std::net::TcpStream;
use std::time::{Duration, Instant};

/// How often the waits poll: short enough not to slow a test down, long enough not to spin.
pub(crate) const POLL: Duration = Duration::from_millis(20);

/// Polls `check` until it returns `Some`, and returns that value; panics after `timeout` naming
/// `what` and adding `diag()` (a log, the state seen), so a failure says what was missing.
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Option<T>,
    diag: impl Fn() -> String,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}: {}",
            diag()
        );
        std::thread::sleep(POLL);
    }
}

/// Polls `check` until it is true; panics after `timeout` naming `what`.
pub fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    wait_until(what, timeout, || check().then_some(()), String::new);
}

/// Does something accept TCP connections on `127.0.0.1:port` now?
pub fn port_open(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_the_first_value_found() {
        let mut n = 0;
        let v = wait_until(
            "three calls",
            Duration::from_secs(5),
            || {
                n += 1;
                (n == 3).then_some(n * 10)
            },
            String::new,
        );
        assert_eq!(v, 30);
    }

    #[test]
    #[should_panic(expected = "waiting for a thing that never happens: state 7")]
    fn times_out_with_the_diagnosis() {
        wait_until(
            "a thing that never happens",
            Duration::from_millis(60),
            || None::<()>,
            || "state 7".to_string(),
        );
    }

    #[test]
    fn port_open_follows_a_listener() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert!(port_open(port));
        drop(l);
        wait_for("the port to close", Duration::from_secs(5), || {
            !port_open(port)
        });
    }
}
