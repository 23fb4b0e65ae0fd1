//! Shared by the collector's end-to-end tests: real processes (ward-collector, ward-agent,
//! mosquitto), free ports, and the CLI's JSON output.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn collector_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ward-collector"))
}

/// The agent binary of this workspace. `cargo test --workspace` builds it (the agent has
/// integration tests); alone, `cargo test -p ward-collector` builds it here.
pub fn agent_bin() -> PathBuf {
    let p = collector_bin().with_file_name("ward-agent");
    if !p.exists() {
        let st = Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "ward-agent", "--bin", "ward-agent"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("running cargo build for ward-agent");
        assert!(st.success(), "cargo build -p ward-agent failed");
    }
    assert!(p.exists(), "{} missing", p.display());
    p
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

pub fn find_binary(name: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("{name} is not installed: these tests need a real {name} (apt-get install -y mosquitto); scripts/test.sh installs it")
}

pub fn wait_port(port: u16, what: &str, child: &mut Child, log: &Path) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(st)) = child.try_wait() {
            panic!(
                "{what} exited ({st}):\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{what} does not listen on {port}:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A child process killed on drop.
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn sigterm(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let start = Instant::now();
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no exit after SIGTERM:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real mosquitto with persistence in `dir`, unlimited queues for offline persistent
/// sessions (the collector's), on a free port.
pub fn mosquitto(dir: &Path) -> (Proc, u16) {
    std::fs::create_dir_all(dir).unwrap();
    let port = free_port();
    let conf = dir.join("mosquitto.conf");
    let log = dir.join("mosquitto.log");
    std::fs::write(
        &conf,
        format!(
            "user root\npersistence true\npersistence_location {}/\nautosave_interval 1\n\
             max_queued_messages 0\nmax_inflight_messages 0\nmessage_size_limit 0\n\
             log_dest stderr\nlog_type error\nlog_type warning\n\
             listener {port} 127.0.0.1\nallow_anonymous true\n",
            dir.display()
        ),
    )
    .unwrap();
    let logf = std::fs::File::create(&log).unwrap();
    let mut child = Command::new(find_binary("mosquitto"))
        .arg("-c")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(logf.try_clone().unwrap())
        .stderr(logf)
        .spawn()
        .expect("starting mosquitto");
    wait_port(port, "mosquitto", &mut child, &log);
    (Proc { child, log }, port)
}

/// Starts `ward-collector serve` with `args` (after the global `--db`).
pub fn serve(db: &Path, args: &[&str], log: &Path, wait_for_port: Option<u16>) -> Proc {
    let logf = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    // Tests run in parallel: never the default API port.
    let http = format!("127.0.0.1:{}", free_port());
    let mut args: Vec<&str> = args.to_vec();
    if !args.iter().any(|a| *a == "--http" || *a == "--no-http") {
        args.extend(["--http", http.as_str()]);
    }
    let mut child = Command::new(collector_bin())
        .arg("--db")
        .arg(db)
        .arg("serve")
        .args(&args)
        .env("WARD_COLLECTOR_LOG", "info")
        .stdin(Stdio::null())
        .stdout(logf.try_clone().unwrap())
        .stderr(logf)
        .spawn()
        .expect("starting ward-collector");
    if let Some(p) = wait_for_port {
        wait_port(p, "ward-collector", &mut child, log);
    } else {
        // External broker: wait for the subscription to be in place.
        let start = Instant::now();
        while !std::fs::read_to_string(log)
            .unwrap_or_default()
            .contains("collector running")
        {
            if let Ok(Some(st)) = child.try_wait() {
                panic!(
                    "ward-collector exited ({st}):\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "collector not running"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    Proc {
        child,
        log: log.to_path_buf(),
    }
}

/// Runs a collector command and parses its JSON output; panics with stderr on failure.
pub fn cli_json(db: &Path, args: &[&str]) -> serde_json::Value {
    let out = cli(db, args);
    assert!(
        out.status.success(),
        "ward-collector {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "ward-collector {args:?}: not JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

pub fn cli(db: &Path, args: &[&str]) -> std::process::Output {
    Command::new(collector_bin())
        .arg("--db")
        .arg(db)
        .args(args)
        .env("WARD_COLLECTOR_LOG", "warn")
        .output()
        .expect("running ward-collector")
}

/// Polls `check` until true (30 s), then returns; panics with `what` otherwise.
pub fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl must be installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// CA, server certificate (localhost, 127.0.0.1) and client certificates, EC P-256: `client`
/// (common name `agent-tls`, an agent id), `client2` (`agent-other`) and `reader`
/// (`noc-reader`, configured as an alert reader where a test needs one).
pub fn make_pki(dir: &Path) {
    std::fs::write(
        dir.join("ca.cnf"),
        "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = ward test CA\n\
         [v3_ca]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n\
         subjectKeyIdentifier = hash\n",
    )
    .unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut args = vec!["req", "-x509", "-config", "ca.cnf", "-extensions", "v3_ca"];
    args.extend(ec);
    args.extend(["-keyout", "ca.key", "-out", "ca.pem", "-days", "2"]);
    openssl(dir, &args);
    for (name, cn, eku, san) in [
        (
            "server",
            "localhost",
            "serverAuth",
            "subjectAltName = DNS:localhost,IP:127.0.0.1\n",
        ),
        ("client", "agent-tls", "clientAuth", ""),
        ("client2", "agent-other", "clientAuth", ""),
        ("reader", "noc-reader", "clientAuth", ""),
    ] {
        std::fs::write(
            dir.join(format!("{name}.cnf")),
            format!("[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = {cn}\n"),
        )
        .unwrap();
        std::fs::write(
            dir.join(format!("{name}.ext")),
            format!(
                "basicConstraints = CA:FALSE\nkeyUsage = critical,digitalSignature\n\
                 extendedKeyUsage = {eku}\n{san}"
            ),
        )
        .unwrap();
        let (cnf, key, csr, pem, ext) = (
            format!("{name}.cnf"),
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
            format!("{name}.ext"),
        );
        let mut args = vec!["req", "-new", "-config", &cnf];
        args.extend(ec);
        args.extend(["-keyout", &key, "-out", &csr]);
        openssl(dir, &args);
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                &ext,
            ],
        );
    }
}

/// The `publish-observations` load generator (ward-tests), built on first use.
pub fn publisher() -> PathBuf {
    let p = collector_bin().with_file_name("publish-observations");
    if !p.exists() {
        let st = Command::new(env!("CARGO"))
            .args([
                "build",
                "-q",
                "-p",
                "ward-tests",
                "--bin",
                "publish-observations",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("running cargo build");
        assert!(st.success());
    }
    p
}
