//! JSON-lines output (`jsonl:PATH`, `jsonl:-`): every message, observation or status, as one
//! line. Consumers tell them apart by the `schema` field. Buffered; flushed by [`flush`] and on
//! shutdown (and, best effort, on drop).
//!
//! [`flush`]: JsonlOutput::flush

use std::fs::{OpenOptions, Permissions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use super::{JsonlTarget, OutputError, OutputStats};

type Sink = BufWriter<Box<dyn Write + Send>>;

/// Writes messages as JSON lines.
pub struct JsonlOutput {
    name: String,
    sink: Mutex<Option<Sink>>,
    published: AtomicU64,
    written: AtomicU64,
    flushed: AtomicU64,
}

impl std::fmt::Debug for JsonlOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonlOutput")
            .field("target", &self.name)
            .field("written", &self.written.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl JsonlOutput {
    /// Opens the target: standard output, or a file opened for appending (created if absent).
    pub fn open(target: &JsonlTarget) -> Result<JsonlOutput, OutputError> {
        let (name, w): (String, Box<dyn Write + Send>) = match target {
            JsonlTarget::Stdout => ("-".to_string(), Box::new(io::stdout())),
            JsonlTarget::File(p) => {
                let name = p.display().to_string();
                let io = |source| OutputError::Io {
                    target: name.clone(),
                    source,
                };
                // Observations: private whatever the umask.
                let f = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(super::spool::FILE_MODE)
                    .open(p)
                    .map_err(io)?;
                // A regular file left more open by an earlier run is narrowed (a FIFO or a
                // device such as /dev/stdout is not ours to change).
                let meta = f.metadata().map_err(io)?;
                let mode = meta.permissions().mode() & 0o7777;
                if meta.is_file() && mode & 0o077 != 0 {
                    match f.set_permissions(Permissions::from_mode(super::spool::FILE_MODE)) {
                        Ok(()) => tracing::warn!(
                            path = %name,
                            "JSON-lines output was accessible to other users (mode {mode:o}); \
                             set to 600"
                        ),
                        Err(e) => tracing::warn!(
                            path = %name,
                            error = %e,
                            "JSON-lines output is accessible to other users (mode {mode:o}) \
                             and could not be set to 600"
                        ),
                    }
                }
                (name, Box::new(f))
            }
        };
        Ok(Self::from_writer(name, w))
    }

    /// Writes to any writer (tests, pipes); `name` appears in errors.
    pub fn from_writer(name: impl Into<String>, w: Box<dyn Write + Send>) -> JsonlOutput {
        JsonlOutput {
            name: name.into(),
            sink: Mutex::new(Some(BufWriter::with_capacity(64 * 1024, w))),
            published: AtomicU64::new(0),
            written: AtomicU64::new(0),
            flushed: AtomicU64::new(0),
        }
    }

    /// Writes one observation message as a line; returns its line number (from 1).
    pub fn publish_devices(&self, payload: Vec<u8>) -> Result<u64, OutputError> {
        let n = self.write_line(payload)?;
        self.published.fetch_add(1, Ordering::Relaxed);
        Ok(n)
    }

    /// Writes one status message as a line.
    pub fn publish_status(&self, payload: Vec<u8>) -> Result<(), OutputError> {
        self.write_line(payload).map(|_| ())
    }

    /// Flushes buffered lines to the file or standard output.
    pub fn flush(&self) -> Result<(), OutputError> {
        let mut guard = self.sink.lock().unwrap_or_else(PoisonError::into_inner);
        let sink = guard.as_mut().ok_or(OutputError::Closed)?;
        sink.flush().map_err(|source| self.io(source))?;
        self.flushed
            .store(self.written.load(Ordering::Relaxed), Ordering::Relaxed);
        Ok(())
    }

    /// Counters: `published` = observation lines, `sent` = all lines written, `acked` = lines
    /// flushed.
    pub fn stats(&self) -> OutputStats {
        OutputStats {
            published: self.published.load(Ordering::Relaxed),
            sent: self.written.load(Ordering::Relaxed),
            acked: self.flushed.load(Ordering::Relaxed),
            connected: true,
            ..OutputStats::default()
        }
    }

    /// Flushes and closes.
    pub fn shutdown(self) -> Result<OutputStats, OutputError> {
        self.flush()?;
        self.sink
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        Ok(self.stats())
    }

    fn io(&self, source: io::Error) -> OutputError {
        OutputError::Io {
            target: self.name.clone(),
            source,
        }
    }

    fn write_line(&self, payload: Vec<u8>) -> Result<u64, OutputError> {
        // One message per line: re-encode JSON that spans lines (serde_json::to_vec never does).
        let line = if payload.contains(&b'\n') || payload.contains(&b'\r') {
            let v: serde_json::Value = serde_json::from_slice(&payload)?;
            serde_json::to_vec(&v)?
        } else {
            payload
        };
        let mut guard = self.sink.lock().unwrap_or_else(PoisonError::into_inner);
        let sink = guard.as_mut().ok_or(OutputError::Closed)?;
        sink.write_all(&line)
            .and_then(|()| sink.write_all(b"\n"))
            .map_err(|source| self.io(source))?;
        Ok(self.written.fetch_add(1, Ordering::Relaxed) + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::{parse_output_url, OutputSpec};

    #[test]
    fn writes_one_message_per_line_and_flushes_on_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let spec = parse_output_url(&format!("jsonl:{}", path.display())).unwrap();
        let OutputSpec::Jsonl(target) = spec else {
            panic!("{spec:?}")
        };
        let out = JsonlOutput::open(&target).unwrap();
        assert_eq!(
            out.publish_devices(br#"{"schema":"ward.observation.v1","seq":1}"#.to_vec())
                .unwrap(),
            1
        );
        out.publish_status(b"{\n  \"schema\": \"ward.status.v1\"\n}".to_vec())
            .unwrap();
        assert_eq!(out.publish_devices(br#"{"seq":2}"#.to_vec()).unwrap(), 3);
        assert!(out.publish_devices(b"{\nnot json".to_vec()).is_err());
        // Buffered: nothing on disk yet.
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
        let stats = out.shutdown().unwrap();
        assert_eq!((stats.published, stats.sent, stats.acked), (2, 3, 3));
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(
            lines,
            vec![
                r#"{"schema":"ward.observation.v1","seq":1}"#,
                r#"{"schema":"ward.status.v1"}"#,
                r#"{"seq":2}"#
            ]
        );
        // Appends on reopen.
        let out = JsonlOutput::open(&target).unwrap();
        out.publish_devices(br#"{"seq":3}"#.to_vec()).unwrap();
        drop(out);
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 4);
    }

    #[test]
    fn unwritable_path_names_the_target() {
        let e = JsonlOutput::open(&JsonlTarget::File("/nonexistent/dir/x.jsonl".into()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/dir/x.jsonl"), "{e}");
    }
}
