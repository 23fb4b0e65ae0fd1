//! Child processes a test starts (a collector, an agent, a broker): stdout and stderr appended to
//! a log file the test reads and scans, killed when the test ends however it ends, and waited for
//! with a timeout that reports the log.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::wait::{wait_until, POLL};

/// How long a process may take to exit after SIGTERM, or to start listening.
const PATIENCE: Duration = Duration::from_secs(30);

/// A child process with its log; SIGKILLed and reaped on drop, so a failing test leaves no
/// process behind.
#[derive(Debug)]
pub struct Proc {
    /// The process.
    pub child: Child,
    /// The file its stdout and stderr go to.
    pub log: PathBuf,
    /// Where this run's part of `log` starts: a restarted process appends to the same file.
    pub log_from: u64,
}

impl Proc {
    /// Takes charge of `child`, whose output goes to `log` from its start.
    pub fn new(child: Child, log: &Path) -> Proc {
        Proc {
            child,
            log: log.to_path_buf(),
            log_from: 0,
        }
    }

    /// Spawns `cmd` with no stdin and its stdout and stderr appended to `log` (created if
    /// missing); [`Proc::run_log`] is what this run wrote.
    pub fn spawn(cmd: &mut Command, log: &Path) -> Proc {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("opening {}: {e}", log.display()));
        let from = file.metadata().map(|m| m.len()).unwrap_or(0);
        let out = file
            .try_clone()
            .unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", cmd.get_program()));
        Proc {
            child,
            log: log.to_path_buf(),
            log_from: from,
        }
    }

    /// The whole log file (every run).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// This run's part of the log.
    pub fn run_log(&self) -> String {
        log_since(&self.log, self.log_from)
    }

    /// The exit status if the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGKILL and reap: no goodbye to anyone (a crash, a power cut).
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends `signal` (a name `kill` knows: `TERM`, `HUP`, …).
    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -{signal} {} failed", self.child.id());
    }

    /// SIGTERM, then waits (30 s at most, else panics with the log) for the exit status.
    pub fn sigterm(&mut self) -> ExitStatus {
        self.signal("TERM");
        self.wait_exit(PATIENCE)
    }

    /// Waits for the process to exit by itself; panics after `timeout` with the log.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let log = self.log.clone();
        wait_until(
            "the process to exit",
            timeout,
            || self.child.try_wait().ok().flatten(),
            || std::fs::read_to_string(&log).unwrap_or_default(),
        )
    }

    /// Waits until this run's log satisfies `ready` and returns it; panics with the log if the
    /// process exits first (noting a port that was taken) or after `timeout`. `what` names
    /// what is awaited.
    pub fn wait_log(
        &mut self,
        what: &str,
        timeout: Duration,
        ready: impl Fn(&str) -> bool,
    ) -> String {
        let start = Instant::now();
        loop {
            let text = self.run_log();
            if ready(&text) {
                return text;
            }
            if let Some(st) = self.exited() {
                let text = self.run_log();
                panic!(
                    "waiting for {what}: the process exited ({st}){}:\n{text}",
                    if address_in_use(&text) {
                        " (a port it was given was taken)"
                    } else {
                        ""
                    }
                );
            }
            assert!(
                start.elapsed() < timeout,
                "timed out after {timeout:?} waiting for {what}:\n{text}"
            );
            std::thread::sleep(POLL);
        }
    }

    /// Does this process listen on TCP `port` (see [`listens_on`])?
    pub fn listens_on(&self, port: u16) -> bool {
        listens_on(self.child.id(), port)
    }

    /// Waits until this process listens on `port` — this one, not whatever else may hold the
    /// port — panics (with the log) if it exits first or after 30 s. `what` names the process
    /// in the message.
    pub fn wait_port(&mut self, port: u16, what: &str) {
        let log = self.log.clone();
        wait_until(
            &format!("{what} to listen on {port}"),
            PATIENCE,
            || {
                if let Some(st) = self.exited() {
                    panic!(
                        "{what} exited ({st}):\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
                listens_on(self.child.id(), port).then_some(())
            },
            || std::fs::read_to_string(&log).unwrap_or_default(),
        );
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Does process `pid` hold a socket listening on TCP `port` (IPv4 or IPv6)? Read from `/proc`:
/// the inodes of the listening sockets in `/proc/net/tcp` and `tcp6`, matched against the
/// process's open files. A connection test alone cannot tell a server that listens from one that
/// is about to die because something else holds its port.
pub fn listens_on(pid: u32, port: u16) -> bool {
    let mut sockets = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state), Some(inode)) = (f.get(1), f.get(3), f.get(9)) else {
                continue;
            };
            let local_port = local
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            // 0A: TCP_LISTEN.
            if *state == "0A" && local_port == Some(port) {
                sockets.push(format!("socket:[{inode}]"));
            }
        }
    }
    if sockets.is_empty() {
        return false;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.filter_map(Result::ok)
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .any(|target| sockets.iter().any(|s| target.as_os_str() == s.as_str()))
}

/// What `log` holds from byte `from` on (lossy UTF-8; empty if it cannot be read).
pub(crate) fn log_since(log: &Path, from: u64) -> String {
    let b = std::fs::read(log).unwrap_or_default();
    String::from_utf8_lossy(b.get(from as usize..).unwrap_or_default()).into_owned()
}

/// Does a server's log say it failed because its port was taken (by something outside the lease
/// scheme)? Then the caller retries on another port.
pub fn address_in_use(log: &str) -> bool {
    let l = log.to_ascii_lowercase();
    l.contains("address already in use") || l.contains("address in use")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        c
    }

    #[test]
    fn logs_are_captured_and_appended_per_run() {
        let dir = crate::temp_dir();
        let log = dir.path().join("p.log");
        let mut first = Proc::spawn(&mut sh("echo first; echo err >&2"), &log);
        assert!(first.wait_exit(Duration::from_secs(10)).success());
        assert_eq!(first.run_log(), "first\nerr\n");
        let mut second = Proc::spawn(&mut sh("echo second; exit 3"), &log);
        assert_eq!(second.wait_exit(Duration::from_secs(10)).code(), Some(3));
        assert_eq!(second.run_log(), "second\n");
        assert_eq!(second.log_text(), "first\nerr\nsecond\n");
    }

    #[test]
    fn wait_log_returns_the_run_log_once_ready() {
        let dir = crate::temp_dir();
        let log = dir.path().join("w.log");
        let mut p = Proc::spawn(
            &mut sh("echo starting; sleep 0.2; echo ready; exec sleep 60"),
            &log,
        );
        let text = p.wait_log("ready", Duration::from_secs(10), |t| t.contains("ready"));
        assert_eq!(text, "starting\nready\n");
        let mut q = Proc::spawn(&mut sh("echo bind: Address in use; exit 1"), &log);
        let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            q.wait_log("ready", Duration::from_secs(10), |t| t.contains("ready"))
        }))
        .unwrap_err();
        let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(
            msg.contains("exited") && msg.contains("a port it was given was taken"),
            "{msg}"
        );
    }

    #[test]
    fn sigterm_and_kill9_end_a_process() {
        let dir = crate::temp_dir();
        let mut p = Proc::spawn(&mut sh("exec sleep 60"), &dir.path().join("a.log"));
        assert!(p.exited().is_none());
        let st = p.sigterm();
        assert!(!st.success());
        let mut p = Proc::spawn(&mut sh("exec sleep 60"), &dir.path().join("b.log"));
        p.kill9();
        assert!(p.exited().is_some());
    }

    #[test]
    fn listens_on_tells_whose_socket_it_is() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert!(listens_on(std::process::id(), port));
        let dir = crate::temp_dir();
        let p = Proc::spawn(&mut sh("exec sleep 60"), &dir.path().join("d.log"));
        assert!(!p.listens_on(port));
        drop(l);
        assert!(!listens_on(std::process::id(), port));
    }

    #[test]
    fn wait_port_reports_an_early_exit_with_the_log() {
        let dir = crate::temp_dir();
        let mut p = Proc::spawn(
            &mut sh("echo cannot bind: Address already in use; exit 1"),
            &dir.path().join("c.log"),
        );
        let port = crate::lease_port();
        let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            p.wait_port(port, "the server")
        }))
        .unwrap_err();
        let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(msg.contains("the server exited"), "{msg}");
        assert!(address_in_use(&msg), "{msg}");
    }
}
