//! Leased TCP ports: one allocator for every test crate, so tests running at the same time —
//! threads of one test binary, or test binaries of several crates run side by side — never hand
//! the same port to two servers.

use std::fs::File;
use std::net::TcpListener;
use std::sync::Mutex;

/// Leases held by this process (released when it exits).
static LEASES: Mutex<Vec<File>> = Mutex::new(Vec::new());

/// A TCP port on 127.0.0.1 for a server a test starts (Mosquitto takes its port from a
/// configuration file, so the test cannot hand it a bound socket).
///
/// Ports come from 20000–32767 minus the kernel's ephemeral range, so no `bind(port 0)`
/// anywhere on the host is given one; a port is leased with an exclusive lock on
/// `$TMPDIR/ward-test-ports/<port>` held until this process exits (other test processes skip
/// it, as do other tests in this one: a lock is per open file), and handed out only if it can be
/// bound right now.
pub fn lease_port() -> u16 {
    let dir = std::env::temp_dir().join("ward-test-ports");
    std::fs::create_dir_all(&dir).expect("port lease directory");
    let (eph_lo, eph_hi) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|p| p.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32768, 60999));
    let ports: Vec<u16> = (20000..32768)
        .filter(|p| !(eph_lo..=eph_hi).contains(p))
        .collect();
    assert!(
        !ports.is_empty(),
        "no port range outside the ephemeral range {eph_lo}-{eph_hi}"
    );
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as usize)
        .unwrap_or(0);
    let start = (std::process::id() as usize * 7919 + nanos) % ports.len();
    let mut leases = LEASES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for k in 0..ports.len() {
        let port = ports[(start + k) % ports.len()];
        let Ok(f) = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(port.to_string()))
        else {
            continue;
        };
        if f.try_lock().is_err() {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        leases.push(f);
        return port;
    }
    panic!("no free port in 20000-32767 outside the ephemeral range");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_are_distinct_bindable_and_outside_the_ephemeral_range() {
        let ports: Vec<u16> = (0..20).map(|_| lease_port()).collect();
        let distinct: std::collections::BTreeSet<_> = ports.iter().collect();
        assert_eq!(distinct.len(), ports.len(), "{ports:?}");
        for p in ports {
            assert!((20000..32768).contains(&p), "{p}");
            TcpListener::bind(("127.0.0.1", p)).unwrap();
        }
    }
}
