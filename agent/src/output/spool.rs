//! A bounded, crash-safe, on-disk queue of outgoing messages.
//!
//! # Format
//!
//! One file per message, named by its id zero-padded to 20 digits: `00000000000000000042.msg`.
//! A file is written as `<name>.tmp`, fsynced, renamed to `<name>.msg`, and then the directory is
//! fsynced, all before [`Spool::push`] returns; so after a crash a `.msg` file is either absent or
//! complete, and a leftover `.tmp` file is a torn write of a message `push` never confirmed
//! (deleted on [`Spool::open`]).
//!
//! A message file is:
//!
//! | bytes | content                                               |
//! |-------|-------------------------------------------------------|
//! | 8     | magic `WARDSPL1`                                      |
//! | 4     | topic length, u32 little-endian                       |
//! | 4     | payload length, u32 little-endian                     |
//! | 4     | CRC-32 (IEEE) of topic ‖ payload, u32 little-endian   |
//! | n     | topic, UTF-8                                          |
//! | m     | payload                                               |
//!
//! The CRC only guards against storage corruption (the rename already makes writes atomic). A
//! `.msg` file that fails the check is renamed to `.corrupt` (kept for inspection, never sent).
//!
//! Ids keep increasing across restarts, even when the spool was empty: the file `next-id` holds a
//! lease (every id below it may have been used), advanced durably in blocks of
//! [`ID_LEASE_BLOCK`] before an id beyond it is handed out. After a restart ids resume at the
//! lease, so they may skip up to one block but never repeat.
//!
//! The spool is bounded by `max_bytes`, counting whole files (header included). A message that
//! would exceed the bound evicts the oldest messages first; evictions are counted and logged.
//!
//! One process per spool directory: the spool does not lock the directory.
//!
//! Messages are observations, so the spool is private whatever the process umask: the
//! directory is created 0700 and every file 0600; a directory or spool file found more open
//! (an earlier version, a hand-made directory) is tightened, with a warning, or a warning
//! says why it could not be.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tracing::{info, warn};

/// File magic.
const MAGIC: &[u8; 8] = b"WARDSPL1";
/// Magic + topic length + payload length + CRC.
pub const HEADER_LEN: u64 = 20;
/// Ids are leased in blocks of this size (one extra fsynced write per block).
pub const ID_LEASE_BLOCK: u64 = 1024;
/// Extension of a complete message.
const MSG_EXT: &str = "msg";
/// Extension of a message being written.
const TMP_EXT: &str = "tmp";
/// Extension given to a message file that failed validation.
const CORRUPT_EXT: &str = "corrupt";
/// The id lease file.
const LEASE_FILE: &str = "next-id";
/// Eviction warnings are aggregated over this interval.
const EVICT_LOG_INTERVAL: Duration = Duration::from_secs(30);
/// Mode of the spool directory (and of any directory the agent creates for its data).
pub const DIR_MODE: u32 = 0o700;
/// Mode of every file holding observations.
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` (and missing parents) with mode 0700 whatever the umask. An existing
/// directory that other users can reach into is set to 0700, with a warning; if that is not
/// allowed (another owner), a warning says so and the directory is used as it is.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)?;
    tighten(dir, DIR_MODE, "directory");
    Ok(())
}

/// Sets `path` to `mode` if group or others have any access to it, warning either way.
fn tighten(path: &Path, mode: u32, what: &str) {
    let Ok(meta) = fs::metadata(path) else {
        return;
    };
    let have = meta.permissions().mode() & 0o7777;
    if have & 0o077 == 0 {
        return;
    }
    match fs::set_permissions(path, Permissions::from_mode(mode)) {
        Ok(()) => warn!(
            path = %path.display(),
            "spool {what} was accessible to other users (mode {have:o}); set to {mode:o}"
        ),
        Err(e) => warn!(
            path = %path.display(),
            error = %e,
            "spool {what} is accessible to other users (mode {have:o}) and could not be set \
             to {mode:o}; observations in it are readable by them"
        ),
    }
}

/// Creates (truncating) a file with mode 0600 whatever the umask; a file that already
/// existed with a wider mode is narrowed.
fn create_private_file(path: &Path) -> io::Result<File> {
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(path)?;
    if f.metadata()?.permissions().mode() & 0o077 != 0 {
        f.set_permissions(Permissions::from_mode(FILE_MODE))?;
    }
    Ok(f)
}

/// Spool errors.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// File-system error on `path`.
    #[error("spool {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The message alone is larger than the spool.
    #[error("message of {size} bytes does not fit in a spool of {max_bytes} bytes")]
    TooLarge {
        /// Size on disk the message would take.
        size: u64,
        /// The spool bound.
        max_bytes: u64,
    },
    /// A message file failed validation; it was renamed to `.corrupt`.
    #[error("spool {path}: corrupt message file ({reason}); moved aside")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: &'static str,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One spooled message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolMessage {
    /// Spool id.
    pub id: u64,
    /// MQTT topic it is for.
    pub topic: String,
    /// Payload.
    pub payload: Vec<u8>,
}

/// Spool counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpoolStats {
    /// Messages stored.
    pub depth: u64,
    /// Bytes stored (whole files).
    pub bytes: u64,
    /// The bound.
    pub max_bytes: u64,
    /// Id the next `push` will get.
    pub next_id: u64,
    /// Messages evicted (oldest first) to respect the bound, since `open`.
    pub evicted_messages: u64,
    /// Bytes evicted, since `open`.
    pub evicted_bytes: u64,
    /// Messages found on `open`.
    pub recovered: u64,
    /// Torn `.tmp` files deleted on `open`.
    pub discarded_temp: u64,
    /// Message files found corrupt and moved aside (on `open` or `read`).
    pub corrupt: u64,
}

#[derive(Debug, Default)]
struct EvictLog {
    last: Option<Instant>,
    messages: u64,
    bytes: u64,
}

/// The bounded on-disk queue. See the module documentation for the format.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    /// id → size on disk.
    index: BTreeMap<u64, u64>,
    bytes: u64,
    next_id: u64,
    /// Every id below this may have been handed out (persisted in `next-id`).
    lease: u64,
    stats: SpoolStats,
    evict_log: EvictLog,
}

/// The size on disk of a message.
pub fn message_size(topic: &str, payload: &[u8]) -> u64 {
    HEADER_LEN + topic.len() as u64 + payload.len() as u64
}

impl Spool {
    /// Opens (creating if needed) the spool in `dir`, bounded to `max_bytes`. Recovers every
    /// complete message, deletes torn temporary files, moves corrupt files aside, and evicts
    /// the oldest messages if the recovered ones exceed `max_bytes`.
    pub fn open(dir: impl AsRef<Path>, max_bytes: u64) -> Result<Spool, SpoolError> {
        let dir = dir.as_ref().to_path_buf();
        create_private_dir(&dir).map_err(io_err(&dir))?;
        let lease_path = dir.join(LEASE_FILE);
        tighten(&lease_path, FILE_MODE, "file");
        let lease = match fs::read_to_string(&lease_path) {
            Ok(s) => match s.trim().parse::<u64>() {
                Ok(v) => v,
                Err(_) => {
                    warn!(path = %lease_path.display(), "spool id lease unreadable; ignoring it");
                    0
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io_err(&lease_path)(e)),
        };

        let mut spool = Spool {
            dir,
            max_bytes,
            index: BTreeMap::new(),
            bytes: 0,
            next_id: 1,
            lease,
            stats: SpoolStats::default(),
            evict_log: EvictLog::default(),
        };

        let entries = fs::read_dir(&spool.dir).map_err(io_err(&spool.dir))?;
        for entry in entries {
            let entry = entry.map_err(io_err(&spool.dir))?;
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let Some((stem, ext)) = name.rsplit_once('.') else {
                continue;
            };
            let id = match stem.parse::<u64>() {
                Ok(id) if stem.len() == 20 => id,
                _ => continue,
            };
            match ext {
                TMP_EXT => {
                    fs::remove_file(&path).map_err(io_err(&path))?;
                    spool.stats.discarded_temp += 1;
                    warn!(path = %path.display(), "spool: deleted torn temporary file");
                }
                MSG_EXT => match validate_file(&path) {
                    Ok(size) => {
                        tighten(&path, FILE_MODE, "file");
                        spool.index.insert(id, size);
                        spool.bytes += size;
                    }
                    Err(SpoolError::Corrupt { reason, .. }) => {
                        spool.quarantine(&path, reason);
                    }
                    Err(e) => return Err(e),
                },
                CORRUPT_EXT => tighten(&path, FILE_MODE, "file"),
                _ => {}
            }
        }
        spool.stats.recovered = spool.index.len() as u64;
        let after_last = spool.index.keys().next_back().map_or(1, |id| id + 1);
        spool.next_id = after_last.max(spool.lease).max(1);
        if spool.bytes > spool.max_bytes {
            spool.evict_to_fit(0);
        }
        sync_dir(&spool.dir)?;
        if spool.stats.recovered > 0 || spool.stats.discarded_temp > 0 {
            info!(
                dir = %spool.dir.display(),
                recovered = spool.stats.recovered,
                bytes = spool.bytes,
                discarded_temp = spool.stats.discarded_temp,
                corrupt = spool.stats.corrupt,
                next_id = spool.next_id,
                "spool recovered"
            );
        }
        Ok(spool)
    }

    /// The spool directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stores a message durably (fsynced file and directory) and returns its id. Evicts the
    /// oldest messages first when the new one would exceed the bound.
    pub fn push(&mut self, topic: &str, payload: &[u8]) -> Result<u64, SpoolError> {
        let size = message_size(topic, payload);
        if size > self.max_bytes
            || u32::try_from(topic.len()).is_err()
            || u32::try_from(payload.len()).is_err()
        {
            return Err(SpoolError::TooLarge {
                size,
                max_bytes: self.max_bytes,
            });
        }
        self.evict_to_fit(size);

        let id = self.next_id;
        if id >= self.lease {
            self.write_lease(id.saturating_add(ID_LEASE_BLOCK))?;
        }
        // Consume the id even if the write fails, so an id is never reused for other content.
        self.next_id += 1;

        let tmp = self.path(id, TMP_EXT);
        let dst = self.path(id, MSG_EXT);
        let result = (|| {
            let mut f = create_private_file(&tmp).map_err(io_err(&tmp))?;
            let mut header = Vec::with_capacity(HEADER_LEN as usize);
            header.extend_from_slice(MAGIC);
            header.extend_from_slice(&(topic.len() as u32).to_le_bytes());
            header.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            header.extend_from_slice(&crc32(&[topic.as_bytes(), payload]).to_le_bytes());
            f.write_all(&header).map_err(io_err(&tmp))?;
            f.write_all(topic.as_bytes()).map_err(io_err(&tmp))?;
            f.write_all(payload).map_err(io_err(&tmp))?;
            f.sync_all().map_err(io_err(&tmp))?;
            drop(f);
            fs::rename(&tmp, &dst).map_err(io_err(&dst))?;
            sync_dir(&self.dir)
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        self.index.insert(id, size);
        self.bytes += size;
        Ok(id)
    }

    /// Removes a message (it was delivered). Returns whether it was still stored (it may have
    /// been evicted or acknowledged already).
    pub fn ack(&mut self, id: u64) -> Result<bool, SpoolError> {
        let Some(size) = self.index.remove(&id) else {
            return Ok(false);
        };
        self.bytes -= size;
        let path = self.path(id, MSG_EXT);
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// Reads one message. `Ok(None)` if it is not stored (acknowledged or evicted). A corrupt
    /// file is moved aside, dropped from the spool and reported as [`SpoolError::Corrupt`].
    pub fn read(&mut self, id: u64) -> Result<Option<SpoolMessage>, SpoolError> {
        if !self.index.contains_key(&id) {
            return Ok(None);
        }
        let path = self.path(id, MSG_EXT);
        match read_file(&path) {
            Ok((topic, payload)) => Ok(Some(SpoolMessage { id, topic, payload })),
            Err(SpoolError::Corrupt { reason, .. }) => {
                if let Some(size) = self.index.remove(&id) {
                    self.bytes -= size;
                }
                self.quarantine(&path, reason);
                Err(SpoolError::Corrupt { path, reason })
            }
            Err(SpoolError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                // Deleted behind our back: nothing to send.
                if let Some(size) = self.index.remove(&id) {
                    self.bytes -= size;
                }
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Ids of the stored messages, oldest first.
    pub fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.index.keys().copied()
    }

    /// The stored messages, oldest first, each read from disk when the iterator reaches it.
    /// Corrupt files are moved aside and yielded as errors.
    pub fn pending(&mut self) -> Pending<'_> {
        Pending {
            spool: self,
            after: None,
        }
    }

    /// The oldest stored id greater than `after` (`None`: the oldest of all).
    pub fn next_after(&self, after: Option<u64>) -> Option<u64> {
        match after {
            None => self.index.keys().next().copied(),
            Some(a) => self
                .index
                .range(a.saturating_add(1)..)
                .next()
                .map(|(id, _)| *id)
                .filter(|id| *id > a),
        }
    }

    /// The size on disk of message `id`, if stored.
    pub fn size(&self, id: u64) -> Option<u64> {
        self.index.get(&id).copied()
    }

    /// Whether message `id` is stored.
    pub fn contains(&self, id: u64) -> bool {
        self.index.contains_key(&id)
    }

    /// Messages stored.
    pub fn depth(&self) -> u64 {
        self.index.len() as u64
    }

    /// Bytes stored.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// No messages stored.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The bound.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Counters.
    pub fn stats(&self) -> SpoolStats {
        SpoolStats {
            depth: self.depth(),
            bytes: self.bytes,
            max_bytes: self.max_bytes,
            next_id: self.next_id,
            ..self.stats
        }
    }

    fn path(&self, id: u64, ext: &str) -> PathBuf {
        self.dir.join(format!("{id:020}.{ext}"))
    }

    fn write_lease(&mut self, lease: u64) -> Result<(), SpoolError> {
        let tmp = self.dir.join(format!("{LEASE_FILE}.{TMP_EXT}"));
        let dst = self.dir.join(LEASE_FILE);
        let mut f = create_private_file(&tmp).map_err(io_err(&tmp))?;
        f.write_all(format!("{lease}\n").as_bytes())
            .map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
        drop(f);
        fs::rename(&tmp, &dst).map_err(io_err(&dst))?;
        sync_dir(&self.dir)?;
        self.lease = lease;
        Ok(())
    }

    /// Evicts the oldest messages until `incoming` more bytes fit.
    fn evict_to_fit(&mut self, incoming: u64) {
        let mut messages = 0u64;
        let mut bytes = 0u64;
        while self.bytes + incoming > self.max_bytes {
            let Some((id, size)) = self.index.pop_first() else {
                break;
            };
            self.bytes -= size;
            let path = self.path(id, MSG_EXT);
            if let Err(e) = fs::remove_file(&path) {
                if e.kind() != io::ErrorKind::NotFound {
                    warn!(path = %path.display(), error = %e, "spool: could not delete evicted message");
                }
            }
            messages += 1;
            bytes += size;
        }
        if messages == 0 {
            return;
        }
        self.stats.evicted_messages += messages;
        self.stats.evicted_bytes += bytes;
        self.evict_log.messages += messages;
        self.evict_log.bytes += bytes;
        let due = self
            .evict_log
            .last
            .is_none_or(|t| t.elapsed() >= EVICT_LOG_INTERVAL);
        if due {
            warn!(
                evicted_messages = self.evict_log.messages,
                evicted_bytes = self.evict_log.bytes,
                total_evicted_messages = self.stats.evicted_messages,
                total_evicted_bytes = self.stats.evicted_bytes,
                spool_max_bytes = self.max_bytes,
                spool_depth = self.index.len(),
                oldest_kept = self.index.keys().next().copied(),
                "spool full: evicted the oldest messages"
            );
            self.evict_log = EvictLog {
                last: Some(Instant::now()),
                messages: 0,
                bytes: 0,
            };
        }
    }

    fn quarantine(&mut self, path: &Path, reason: &'static str) {
        self.stats.corrupt += 1;
        let aside = path.with_extension(CORRUPT_EXT);
        let renamed = fs::rename(path, &aside);
        warn!(
            path = %path.display(),
            moved_to = %aside.display(),
            reason,
            renamed = renamed.is_ok(),
            "spool: corrupt message file moved aside"
        );
    }
}

/// Iterator returned by [`Spool::pending`].
#[derive(Debug)]
pub struct Pending<'a> {
    spool: &'a mut Spool,
    after: Option<u64>,
}

impl Iterator for Pending<'_> {
    type Item = Result<SpoolMessage, SpoolError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let id = self.spool.next_after(self.after)?;
            self.after = Some(id);
            match self.spool.read(id) {
                Ok(Some(m)) => return Some(Ok(m)),
                Ok(None) => continue,
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

fn corrupt(path: &Path, reason: &'static str) -> SpoolError {
    SpoolError::Corrupt {
        path: path.to_path_buf(),
        reason,
    }
}

/// Parses the header; returns (topic length, payload length, crc).
fn parse_header(path: &Path, header: &[u8]) -> Result<(u64, u64, u32), SpoolError> {
    let field = |at: usize| -> Option<u32> {
        let b: [u8; 4] = header.get(at..at + 4)?.try_into().ok()?;
        Some(u32::from_le_bytes(b))
    };
    if header.get(..8) != Some(MAGIC.as_slice()) {
        return Err(corrupt(path, "bad magic"));
    }
    match (field(8), field(12), field(16)) {
        (Some(t), Some(p), Some(c)) => Ok((u64::from(t), u64::from(p), c)),
        _ => Err(corrupt(path, "short header")),
    }
}

/// Checks a message file completely; returns its size.
fn validate_file(path: &Path) -> Result<u64, SpoolError> {
    let (topic, payload) = read_file(path)?;
    Ok(message_size(&topic, &payload))
}

fn read_file(path: &Path) -> Result<(String, Vec<u8>), SpoolError> {
    let mut f = OpenOptions::new()
        .read(true)
        .open(path)
        .map_err(io_err(path))?;
    let len = f.metadata().map_err(io_err(path))?.len();
    if len < HEADER_LEN {
        return Err(corrupt(path, "short header"));
    }
    let mut header = [0u8; HEADER_LEN as usize];
    f.read_exact(&mut header).map_err(io_err(path))?;
    let (topic_len, payload_len, crc) = parse_header(path, &header)?;
    if HEADER_LEN + topic_len + payload_len != len {
        return Err(corrupt(path, "length mismatch"));
    }
    let mut topic = vec![0u8; topic_len as usize];
    f.read_exact(&mut topic).map_err(io_err(path))?;
    let mut payload = vec![0u8; payload_len as usize];
    f.read_exact(&mut payload).map_err(io_err(path))?;
    if crc32(&[&topic, &payload]) != crc {
        return Err(corrupt(path, "checksum mismatch"));
    }
    let topic = String::from_utf8(topic).map_err(|_| corrupt(path, "topic is not UTF-8"))?;
    Ok((topic, payload))
}

const CRC_TABLE: [u32; 256] = crc_table();

const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

/// CRC-32 (IEEE 802.3, as zlib) over the concatenation of `parts`.
fn crc32(parts: &[&[u8]]) -> u32 {
    let mut c = !0u32;
    for part in parts {
        for &b in *part {
            c = CRC_TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
        }
    }
    !c
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn all(spool: &mut Spool) -> Vec<(u64, String, Vec<u8>)> {
        spool
            .pending()
            .map(|m| {
                let m = m.unwrap();
                (m.id, m.topic, m.payload)
            })
            .collect()
    }

    #[test]
    fn crc_matches_reference() {
        assert_eq!(crc32(&[b"123456789"]), 0xCBF4_3926);
        assert_eq!(crc32(&[b"1234", b"56789"]), 0xCBF4_3926);
        assert_eq!(crc32(&[]), 0);
    }

    #[test]
    fn push_read_ack_and_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
        let a = s.push("t/a", b"one").unwrap();
        let b = s.push("t/b", b"two").unwrap();
        let c = s.push("t/c", b"").unwrap();
        assert!(a < b && b < c);
        assert_eq!(s.depth(), 3);
        assert_eq!(
            s.bytes(),
            message_size("t/a", b"one") + message_size("t/b", b"two") + message_size("t/c", b"")
        );
        assert_eq!(s.next_after(None), Some(a));
        assert_eq!(s.next_after(Some(a)), Some(b));
        assert_eq!(s.next_after(Some(c)), None);
        assert!(s.ack(b).unwrap());
        assert!(!s.ack(b).unwrap());
        assert_eq!(
            all(&mut s),
            vec![
                (a, "t/a".into(), b"one".to_vec()),
                (c, "t/c".into(), vec![])
            ]
        );
        assert_eq!(s.read(b).unwrap(), None);
    }

    #[test]
    fn restart_recovers_everything_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut ids = Vec::new();
        {
            let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
            for i in 0..50u32 {
                ids.push(s.push("ward/v1/x/y/devices", &i.to_le_bytes()).unwrap());
            }
            s.ack(ids[0]).unwrap();
            s.ack(ids[10]).unwrap();
            // Dropped without any shutdown: a crash.
        }
        let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(s.stats().recovered, 48);
        let got = all(&mut s);
        let want: Vec<_> = ids
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 0 && *i != 10)
            .map(|(i, id)| {
                (
                    *id,
                    "ward/v1/x/y/devices".to_string(),
                    (i as u32).to_le_bytes().to_vec(),
                )
            })
            .collect();
        assert_eq!(got, want);
        assert_eq!(s.bytes(), 48 * message_size("ward/v1/x/y/devices", &[0; 4]));
    }

    #[test]
    fn torn_temp_file_is_discarded_and_complete_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = {
            let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
            (
                s.push("t", b"first").unwrap(),
                s.push("t", b"second").unwrap(),
            )
        };
        // A crash in the middle of writing message b+1: a half-written temp file.
        let torn = dir.path().join(format!("{:020}.tmp", b + 1));
        fs::write(&torn, &b"WARDSPL1\x01\x00"[..]).unwrap();
        // And an unrelated file, which is left alone.
        fs::write(dir.path().join("README"), b"hello").unwrap();

        let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
        assert!(!torn.exists());
        assert_eq!(s.stats().discarded_temp, 1);
        assert!(dir.path().join("README").exists());
        let got: Vec<_> = all(&mut s).into_iter().map(|(id, _, p)| (id, p)).collect();
        assert_eq!(got, vec![(a, b"first".to_vec()), (b, b"second".to_vec())]);
        // The torn message's id is not reused.
        assert!(s.push("t", b"third").unwrap() > b + 1);
    }

    #[test]
    fn corrupt_file_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = {
            let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
            (
                s.push("t", b"good").unwrap(),
                s.push("t", b"flipped").unwrap(),
            )
        };
        let path = dir.path().join(format!("{b:020}.msg"));
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        fs::write(&path, bytes).unwrap();

        let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(s.stats().corrupt, 1);
        assert!(dir.path().join(format!("{b:020}.corrupt")).exists());
        let ids: Vec<_> = s.ids().collect();
        assert_eq!(ids, vec![a]);
        assert_eq!(s.bytes(), message_size("t", b"good"));

        // Corruption discovered while reading.
        let c = s.push("t", b"later").unwrap();
        let path = dir.path().join(format!("{c:020}.msg"));
        fs::write(&path, b"WARDSPL1garbage!").unwrap();
        assert!(matches!(s.read(c), Err(SpoolError::Corrupt { .. })));
        assert!(!s.contains(c));
        assert_eq!(s.stats().corrupt, 2);
    }

    #[test]
    fn ids_keep_increasing_across_restarts_even_when_empty() {
        let dir = tempfile::tempdir().unwrap();
        let mut last = 0;
        // Crosses a lease block boundary (1024) in the second round.
        for n in [3, ID_LEASE_BLOCK + 10, 2] {
            let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
            for _ in 0..n {
                let id = s.push("t", b"x").unwrap();
                assert!(id > last, "id {id} after {last}");
                last = id;
                s.ack(id).unwrap();
            }
            assert!(s.is_empty());
        }
        // No message files left, yet ids continue from the lease.
        let s = Spool::open(dir.path(), 1 << 20).unwrap();
        assert!(s.stats().next_id > last);
    }

    #[test]
    fn too_large_is_rejected_without_evicting() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), 100).unwrap();
        s.push("t", &[0; 10]).unwrap();
        assert!(matches!(
            s.push("t", &[0; 100]),
            Err(SpoolError::TooLarge { .. })
        ));
        assert_eq!(s.depth(), 1);
        assert_eq!(s.stats().evicted_messages, 0);
    }

    #[test]
    fn eviction_drops_oldest_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let one = message_size("t", &[0; 80]); // 101 bytes
        let mut s = Spool::open(dir.path(), one * 3).unwrap();
        let ids: Vec<_> = (0..5).map(|_| s.push("t", &[0; 80]).unwrap()).collect();
        assert_eq!(s.ids().collect::<Vec<_>>(), ids[2..].to_vec());
        let st = s.stats();
        assert_eq!(st.evicted_messages, 2);
        assert_eq!(st.evicted_bytes, 2 * one);
        assert_eq!(st.bytes, 3 * one);
        for id in &ids[..2] {
            assert!(!dir.path().join(format!("{id:020}.msg")).exists());
        }
    }

    #[test]
    fn shrinking_the_bound_evicts_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let one = message_size("t", &[0; 80]);
        {
            let mut s = Spool::open(dir.path(), one * 10).unwrap();
            for _ in 0..10 {
                s.push("t", &[0; 80]).unwrap();
            }
        }
        let s = Spool::open(dir.path(), one * 4).unwrap();
        assert_eq!(s.depth(), 4);
        assert_eq!(s.stats().evicted_messages, 6);
        assert!(s.bytes() <= one * 4);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push(usize),
        AckOldest,
        Reopen,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0usize..400).prop_map(Op::Push),
            2 => Just(Op::AckOldest),
            1 => Just(Op::Reopen),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        /// The bound is never exceeded; what is kept is exactly the newest messages that fit
        /// (minus the acknowledged ones); ids only increase, across reopenings too.
        #[test]
        fn bound_is_never_exceeded(max in 450u64..2000, ops in proptest::collection::vec(op(), 1..60)) {
            let dir = tempfile::tempdir().unwrap();
            let mut s = Spool::open(dir.path(), max).unwrap();
            let mut model: std::collections::VecDeque<(u64, Vec<u8>)> = Default::default();
            let mut last_id = 0;
            let mut evicted = 0u64;
            for op in ops {
                match op {
                    Op::Push(n) => {
                        let payload: Vec<u8> = (0..n).map(|i| i as u8).collect();
                        let size = message_size("t", &payload);
                        let id = s.push("t", &payload).unwrap();
                        prop_assert!(id > last_id);
                        last_id = id;
                        let mut total: u64 = model.iter().map(|(_, p)| message_size("t", p)).sum();
                        while total + size > max {
                            let (_, p) = model.pop_front().unwrap();
                            total -= message_size("t", &p);
                            evicted += 1;
                        }
                        model.push_back((id, payload));
                    }
                    Op::AckOldest => {
                        if let Some((id, _)) = model.pop_front() {
                            prop_assert!(s.ack(id).unwrap());
                        }
                    }
                    Op::Reopen => {
                        let before = s.stats();
                        drop(s);
                        s = Spool::open(dir.path(), max).unwrap();
                        prop_assert_eq!(s.bytes(), before.bytes);
                        prop_assert!(s.stats().next_id >= before.next_id);
                        // Counters are per open.
                        evicted = 0;
                    }
                }
                prop_assert!(s.bytes() <= max);
                let on_disk: u64 = fs::read_dir(dir.path()).unwrap()
                    .map(|e| e.unwrap().path())
                    .filter(|p| p.extension().is_some_and(|x| x == "msg"))
                    .map(|p| fs::metadata(p).unwrap().len())
                    .sum();
                prop_assert_eq!(on_disk, s.bytes());
                prop_assert!(on_disk <= max);
                prop_assert_eq!(s.stats().evicted_messages, evicted);
                let ids: Vec<u64> = s.ids().collect();
                let want: Vec<u64> = model.iter().map(|(id, _)| *id).collect();
                prop_assert_eq!(ids, want);
            }
            let got: Vec<(u64, Vec<u8>)> = s.pending().map(|m| { let m = m.unwrap(); (m.id, m.payload) }).collect();
            prop_assert_eq!(got, model.into_iter().collect::<Vec<_>>());
        }
    }
}
