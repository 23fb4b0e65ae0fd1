//! A real Mosquitto broker per test: its own configuration in the test's temporary directory, a
//! listener on a leased loopback port, its log in a file — never a system service, never a port
//! another test uses. Start, kill, restart on the same port, reload; every start returns only
//! once it listens on every port it was given.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use crate::ports::lease_port;
use crate::process::{address_in_use, log_since, Proc};
use crate::tools::find_binary;
use crate::wait::wait_until;

/// How long a broker may take to listen, or to log an awaited line.
const PATIENCE: Duration = Duration::from_secs(20);

/// A Mosquitto process (or a stopped one that [`Mosquitto::restart`] brings back); killed on drop.
#[derive(Debug)]
pub struct Mosquitto {
    /// The plain listener's port on 127.0.0.1.
    pub port: u16,
    other_ports: Vec<u16>,
    conf: PathBuf,
    log: PathBuf,
    proc: Option<Proc>,
}

impl Mosquitto {
    /// Writes `dir/mosquitto.conf` — `global` lines, then `listener <port> 127.0.0.1`, then
    /// `listeners` (that listener's own settings under `per_listener_settings`, more listener
    /// sections whose ports are `other_ports`) — starts mosquitto on it with its log in
    /// `dir/mosquitto.log`, and returns once it listens on every port. Panics if it
    /// cannot start, naming the log (a port taken by something outside the lease scheme
    /// included: see [`Mosquitto::try_start`]).
    pub fn start(
        dir: &Path,
        port: u16,
        global: &str,
        listeners: &str,
        other_ports: &[u16],
    ) -> Mosquitto {
        Mosquitto::try_start(dir, port, global, listeners, other_ports)
            .unwrap_or_else(|| panic!("port {port} taken: mosquitto cannot start on it"))
    }

    /// [`Mosquitto::start`], but `None` if mosquitto exited because a port was taken.
    pub fn try_start(
        dir: &Path,
        port: u16,
        global: &str,
        listeners: &str,
        other_ports: &[u16],
    ) -> Option<Mosquitto> {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let conf = dir.join("mosquitto.conf");
        // `user root`: when the tests run as root, stay root (the `mosquitto` user could not
        // read or write the private temporary directory); ignored otherwise. The log goes to
        // stderr, which is the log file.
        let text = format!(
            "user root\nlog_dest stderr\n{global}\nlistener {port} 127.0.0.1\n{listeners}\n"
        );
        std::fs::write(&conf, text).unwrap_or_else(|e| panic!("{}: {e}", conf.display()));
        let mut m = Mosquitto {
            port,
            other_ports: other_ports.to_vec(),
            conf,
            log: dir.join("mosquitto.log"),
            proc: None,
        };
        m.launch().then_some(m)
    }

    /// A broker configured as [`Mosquitto::start`] with no other listener, on a leased port
    /// (another one if the port turns out taken by something outside the lease scheme).
    pub fn start_leased(dir: &Path, global: &str) -> Mosquitto {
        for _ in 0..5 {
            if let Some(m) = Mosquitto::try_start(dir, lease_port(), global, "", &[]) {
                return m;
            }
        }
        panic!("mosquitto found no free port in 5 tries")
    }

    /// `mqtt://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// Starts the stopped broker again, same configuration and ports (its log appended); panics
    /// if it is still running or cannot listen.
    pub fn restart(&mut self) {
        assert!(self.proc.is_none(), "mosquitto is still running");
        assert!(
            self.launch(),
            "mosquitto cannot listen on {} again:\n{}",
            self.port,
            self.log_text()
        );
    }

    /// Runs mosquitto and waits until it listens on every port (it, not another process that
    /// holds the port); false if it exited because a port was taken.
    fn launch(&mut self) -> bool {
        let mut cmd = Command::new(find_binary("mosquitto"));
        cmd.arg("-c").arg(&self.conf);
        let mut p = Proc::spawn(&mut cmd, &self.log);
        let (log, from) = (self.log.clone(), p.log_from);
        for port in std::iter::once(self.port).chain(self.other_ports.iter().copied()) {
            let listening = wait_until(
                &format!("mosquitto to listen on {port}"),
                PATIENCE,
                || {
                    if p.listens_on(port) {
                        return Some(true);
                    }
                    let st = p.exited()?;
                    let log = p.run_log();
                    assert!(address_in_use(&log), "mosquitto exited ({st}):\n{log}");
                    Some(false)
                },
                || log_since(&log, from),
            );
            if !listening {
                return false;
            }
        }
        self.proc = Some(p);
        true
    }

    /// SIGKILL: no goodbye to anyone (sessions persisted so far survive, the rest is lost).
    pub fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill9();
        }
    }

    /// SIGTERM and wait for the exit (mosquitto saves its persistence file on the way out).
    pub fn sigterm(&mut self) -> ExitStatus {
        let mut p = self.proc.take().expect("mosquitto is not running");
        p.sigterm()
    }

    /// SIGHUP: mosquitto reloads its password and ACL files.
    pub fn reload(&mut self) {
        self.running().signal("HUP");
    }

    fn running(&mut self) -> &mut Proc {
        self.proc.as_mut().expect("mosquitto is not running")
    }

    /// Everything mosquitto logged, every run.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log holds `needle`; panics with the log after 20 s.
    pub fn wait_log(&self, needle: &str) {
        wait_until(
            &format!("mosquitto to log {needle:?}"),
            PATIENCE,
            || self.log_text().contains(needle).then_some(()),
            || self.log_text(),
        );
    }
}

/// Writes a mosquitto password file holding `(user, password)` pairs (`mosquitto_passwd -b`),
/// replacing `path` atomically: a broker reloading it never reads half a file.
pub fn write_passwd(path: &Path, users: &[(&str, &str)]) {
    let tmp = path.with_extension("new");
    let _ = std::fs::remove_file(&tmp);
    std::fs::write(&tmp, "").unwrap_or_else(|e| panic!("{}: {e}", tmp.display()));
    for (user, pass) in users {
        let out = Command::new(find_binary("mosquitto_passwd"))
            .arg("-b")
            .arg(&tmp)
            .args([user, pass])
            .output()
            .unwrap_or_else(|e| panic!("cannot run mosquitto_passwd: {e}"));
        assert!(out.status.success(), "mosquitto_passwd: {out:?}");
    }
    std::fs::rename(&tmp, path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wait::port_open;

    /// Logs every connection, so the tests can wait on them.
    const VERBOSE: &str = "allow_anonymous true\nlog_type all";

    #[test]
    fn starts_kills_and_restarts_on_the_same_port() {
        let tmp = crate::temp_dir();
        let mut m = Mosquitto::start_leased(tmp.path(), VERBOSE);
        assert!(port_open(m.port));
        assert_eq!(m.url(), format!("mqtt://127.0.0.1:{}", m.port));
        m.kill();
        assert!(!port_open(m.port), "a SIGKILLed process holds no socket");
        m.restart();
        assert!(port_open(m.port));
        assert!(m.sigterm().success());
        assert!(!port_open(m.port));
        m.restart();
        m.wait_log("Opening ipv4 listen socket on port");
    }

    #[test]
    fn a_taken_port_is_reported_not_waited_on() {
        let tmp = crate::temp_dir();
        let first = Mosquitto::start_leased(&tmp.path().join("a"), VERBOSE);
        let second = Mosquitto::try_start(&tmp.path().join("b"), first.port, VERBOSE, "", &[]);
        assert!(second.is_none());
    }

    #[test]
    fn password_files_are_written_and_reloaded() {
        let tmp = crate::temp_dir();
        let passwd = tmp.path().join("passwd");
        write_passwd(&passwd, &[("a", "pa")]);
        let global = format!(
            "allow_anonymous false\npassword_file {}\nlog_type all",
            passwd.display()
        );
        let mut m = Mosquitto::start(&tmp.path().join("b"), lease_port(), &global, "", &[]);
        write_passwd(&passwd, &[("a", "pa"), ("b", "pb")]);
        let users: Vec<String> = std::fs::read_to_string(&passwd)
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once(':').map(|(u, _)| u.to_string()))
            .collect();
        assert_eq!(users, ["a", "b"]);
        m.reload();
        m.wait_log("Reloading config");
    }
}
