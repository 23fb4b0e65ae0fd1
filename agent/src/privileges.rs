//! Dropping root after the capture sockets are open.
//!
//! # Design
//!
//! ward needs root (or `CAP_NET_RAW`) for one thing: opening `AF_PACKET` sockets. The sequence
//! is: open the capture ([`crate::capture::Capture::open`]) → [`drop_to`]`(user)` → start the
//! capture threads, MQTT, etc.
//!
//! [`drop_to`] leaves the process running as `user` (real, effective and saved uid and gid; no
//! supplementary groups) with **exactly `CAP_NET_RAW`** in its permitted, effective and
//! bounding sets, empty inheritable and ambient sets, `no_new_privs` set and `keepcaps` off.
//! `CAP_NET_RAW` is kept (rather than nothing) so a capture thread can reopen an interface
//! whose socket failed, e.g. after the link went down and up or the interface was re-created;
//! with no capability at all the agent would go deaf until restarted. `CAP_NET_RAW` lets it
//! open raw sockets in its own network namespace, which is no more than the agent already holds
//! through its open sockets. Anything the agent executes gets no capability (inheritable and
//! ambient are empty, the executable has no file capabilities to grant under `no_new_privs`).
//!
//! # Threads
//!
//! Linux capability sets, the bounding set, `keepcaps` and `no_new_privs` are **per thread**;
//! uid/gid changes are applied to every thread (glibc broadcasts them). Call [`drop_to`] on the
//! main thread *before* starting other threads (the capture readers, the tokio runtime): threads
//! created afterwards inherit the reduced sets. Threads that already exist lose all their
//! capabilities when the uid changes (they do not have `keepcaps`), which [`drop_to`] verifies
//! from `/proc/self/task/*/status`, but they keep a full bounding set and no `no_new_privs`, so
//! a warning is logged when the process is multi-threaded.
//!
//! # Not root
//!
//! When the effective uid is not 0 (e.g. the agent was started as an unprivileged user with
//! `AmbientCapabilities=CAP_NET_RAW`), there is nothing to switch from: [`drop_to`] logs why and
//! returns `Ok(())` without changing anything.

use std::collections::BTreeSet;
use std::fs;

use caps::{CapSet, Capability, CapsHashSet};
use nix::unistd::{Gid, Uid, User};
use serde::{Deserialize, Serialize};

/// The one capability kept after the drop.
pub const KEPT_CAPABILITY: Capability = Capability::CAP_NET_RAW;

/// Why privileges could not be dropped. The agent must not continue after any of these.
#[derive(Debug, thiserror::Error)]
pub enum PrivError {
    /// No such user.
    #[error("user {0:?} does not exist (check --user)")]
    UnknownUser(String),
    /// The target user is root itself.
    #[error("refusing to \"drop\" privileges to {0:?}: it is uid 0; choose an unprivileged user with --user")]
    TargetIsRoot(String),
    /// A system call failed.
    #[error("privilege drop, {step}: {source}")]
    Sys {
        /// What was being done.
        step: &'static str,
        /// errno.
        source: nix::Error,
    },
    /// A capability operation failed.
    #[error("privilege drop, {step}: {detail}")]
    Caps {
        /// What was being done.
        step: &'static str,
        /// What the caps crate said.
        detail: String,
    },
    /// After the drop, the process is not in the expected state.
    #[error("privilege drop did not take effect: {0}")]
    Verify(String),
}

fn sys(step: &'static str) -> impl FnOnce(nix::Error) -> PrivError {
    move |source| PrivError::Sys { step, source }
}

fn capserr(step: &'static str) -> impl FnOnce(caps::errors::CapsError) -> PrivError {
    move |e| PrivError::Caps {
        step,
        detail: e.to_string(),
    }
}

/// The calling thread's identity and privileges, as the kernel reports them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivState {
    /// Real, effective, saved uid.
    pub uid: [u32; 3],
    /// Real, effective, saved gid.
    pub gid: [u32; 3],
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// Effective capabilities (e.g. `CAP_NET_RAW`), sorted.
    pub effective: Vec<String>,
    /// Permitted capabilities.
    pub permitted: Vec<String>,
    /// Inheritable capabilities.
    pub inheritable: Vec<String>,
    /// Ambient capabilities.
    pub ambient: Vec<String>,
    /// Bounding set.
    pub bounding: Vec<String>,
    /// `PR_GET_NO_NEW_PRIVS`.
    pub no_new_privs: bool,
    /// `PR_GET_KEEPCAPS`.
    pub keepcaps: bool,
    /// Threads in the process.
    pub threads: usize,
}

fn names(set: &CapsHashSet) -> Vec<String> {
    set.iter()
        .map(|c| c.to_string())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

fn thread_count() -> usize {
    fs::read_dir("/proc/self/task").map_or(1, |d| d.count())
}

/// Reads the calling thread's identity and capability sets.
pub fn state() -> Result<PrivState, PrivError> {
    let u = nix::unistd::getresuid().map_err(sys("getresuid"))?;
    let g = nix::unistd::getresgid().map_err(sys("getresgid"))?;
    let groups = nix::unistd::getgroups().map_err(sys("getgroups"))?;
    let read = |set, step| caps::read(None, set).map_err(capserr(step));
    Ok(PrivState {
        uid: [u.real.as_raw(), u.effective.as_raw(), u.saved.as_raw()],
        gid: [g.real.as_raw(), g.effective.as_raw(), g.saved.as_raw()],
        groups: groups.iter().map(|g| g.as_raw()).collect(),
        effective: names(&read(CapSet::Effective, "reading effective set")?),
        permitted: names(&read(CapSet::Permitted, "reading permitted set")?),
        inheritable: names(&read(CapSet::Inheritable, "reading inheritable set")?),
        ambient: names(&read(CapSet::Ambient, "reading ambient set")?),
        bounding: names(&read(CapSet::Bounding, "reading bounding set")?),
        no_new_privs: nix::sys::prctl::get_no_new_privs().map_err(sys("PR_GET_NO_NEW_PRIVS"))?,
        keepcaps: nix::sys::prctl::get_keepcaps().map_err(sys("PR_GET_KEEPCAPS"))?,
        threads: thread_count(),
    })
}

/// Switches the process to `user`, keeping only `CAP_NET_RAW` (see the module docs). Call it
/// after the capture sockets are open and before other threads start. A no-op (logged) when not
/// running as root. Any error means the process may be half-dropped: exit.
pub fn drop_to(user: &str) -> Result<(), PrivError> {
    let euid = Uid::effective();
    if !euid.is_root() {
        tracing::info!(
            euid = euid.as_raw(),
            requested_user = user,
            "not running as root: privilege drop skipped (nothing to drop from; the agent keeps \
             the identity and capabilities it was started with)"
        );
        return Ok(());
    }
    let target = User::from_name(user)
        .map_err(sys("looking up the user"))?
        .ok_or_else(|| PrivError::UnknownUser(user.to_owned()))?;
    if target.uid.is_root() {
        return Err(PrivError::TargetIsRoot(user.to_owned()));
    }
    let threads = thread_count();
    if threads > 1 {
        tracing::warn!(
            threads,
            "dropping privileges in a multi-threaded process: only the calling thread (and threads \
             it creates later) gets the reduced bounding set and no_new_privs"
        );
    }
    let keep: CapsHashSet = [KEPT_CAPABILITY].into_iter().collect();

    // 1. While we still have CAP_SETPCAP: shrink the bounding set, clear ambient/inheritable.
    for cap in caps::runtime::thread_all_supported() {
        if cap != KEPT_CAPABILITY {
            caps::drop(None, CapSet::Bounding, cap).map_err(capserr("dropping bounding set"))?;
        }
    }
    caps::clear(None, CapSet::Ambient).map_err(capserr("clearing ambient set"))?;
    caps::clear(None, CapSet::Inheritable).map_err(capserr("clearing inheritable set"))?;

    // 2. Keep the permitted set across the uid change, then switch identity: groups first
    //    (needs CAP_SETGID), gid, uid last.
    nix::sys::prctl::set_keepcaps(true).map_err(sys("PR_SET_KEEPCAPS"))?;
    nix::unistd::setgroups(&[]).map_err(sys("setgroups([])"))?;
    nix::unistd::setresgid(target.gid, target.gid, target.gid).map_err(sys("setresgid"))?;
    nix::unistd::setresuid(target.uid, target.uid, target.uid).map_err(sys("setresuid"))?;

    // 3. Now unprivileged, with root's permitted set kept: reduce it to CAP_NET_RAW and make
    //    that effective.
    caps::set(None, CapSet::Permitted, &keep).map_err(capserr("restricting permitted set"))?;
    caps::set(None, CapSet::Effective, &keep).map_err(capserr("raising CAP_NET_RAW"))?;
    nix::sys::prctl::set_keepcaps(false).map_err(sys("clearing PR_SET_KEEPCAPS"))?;
    nix::sys::prctl::set_no_new_privs().map_err(sys("PR_SET_NO_NEW_PRIVS"))?;

    verify(target.uid, target.gid)?;
    tracing::info!(
        user,
        uid = target.uid.as_raw(),
        gid = target.gid.as_raw(),
        kept = %KEPT_CAPABILITY,
        "dropped root privileges"
    );
    Ok(())
}

fn verify(uid: Uid, gid: Gid) -> Result<(), PrivError> {
    let s = state()?;
    let want_caps = vec![KEPT_CAPABILITY.to_string()];
    let mut problems = Vec::new();
    let raw_uid = uid.as_raw();
    let raw_gid = gid.as_raw();
    if s.uid != [raw_uid; 3] {
        problems.push(format!("uids are {:?}, expected {raw_uid}", s.uid));
    }
    if s.gid != [raw_gid; 3] {
        problems.push(format!("gids are {:?}, expected {raw_gid}", s.gid));
    }
    if !s.groups.is_empty() {
        problems.push(format!("supplementary groups remain: {:?}", s.groups));
    }
    for (set, have) in [
        ("effective", &s.effective),
        ("permitted", &s.permitted),
        ("bounding", &s.bounding),
    ] {
        if *have != want_caps {
            problems.push(format!("{set} set is {have:?}, expected {want_caps:?}"));
        }
    }
    for (set, have) in [("inheritable", &s.inheritable), ("ambient", &s.ambient)] {
        if !have.is_empty() {
            problems.push(format!("{set} set is {have:?}, expected empty"));
        }
    }
    if !s.no_new_privs {
        problems.push("no_new_privs is not set".into());
    }
    if s.keepcaps {
        problems.push("keepcaps is still set".into());
    }
    // Root must be unreachable.
    if nix::unistd::setuid(Uid::from_raw(0)).is_ok() {
        problems.push("setuid(0) succeeded".into());
    }
    problems.extend(thread_self_problems());
    problems.extend(other_thread_problems());
    if problems.is_empty() {
        Ok(())
    } else {
        Err(PrivError::Verify(problems.join("; ")))
    }
}

/// Checks the calling thread's five capability masks in `/proc/thread-self/status`, which (unlike
/// the caps crate's sets) include capabilities newer than the crate knows.
fn thread_self_problems() -> Vec<String> {
    let want = KEPT_CAPABILITY.bitmask();
    let Ok(status) = fs::read_to_string("/proc/thread-self/status") else {
        return vec!["cannot read /proc/thread-self/status".into()];
    };
    let mut problems = Vec::new();
    for (key, expected) in [
        ("CapEff:", want),
        ("CapPrm:", want),
        ("CapBnd:", want),
        ("CapInh:", 0),
        ("CapAmb:", 0),
    ] {
        let mask = status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok());
        match mask {
            Some(m) if m == expected => {}
            Some(m) => problems.push(format!("{key} {m:#x} in /proc, expected {expected:#x}")),
            // CapAmb is missing on kernels before 4.3, which have no ambient set.
            None if key == "CapAmb:" => {}
            None => problems.push(format!("no {key} in /proc/thread-self/status")),
        }
    }
    problems
}

/// Checks every thread's `CapEff`/`CapPrm` from `/proc/self/task/*/status`: none may hold a
/// capability other than [`KEPT_CAPABILITY`].
fn other_thread_problems() -> Vec<String> {
    let allowed = KEPT_CAPABILITY.bitmask();
    let mut problems = Vec::new();
    let Ok(tasks) = fs::read_dir("/proc/self/task") else {
        return vec!["cannot read /proc/self/task".into()];
    };
    for task in tasks.flatten() {
        let path = task.path().join("status");
        let Ok(status) = fs::read_to_string(&path) else {
            continue; // the thread exited
        };
        for line in status.lines() {
            for key in ["CapEff:", "CapPrm:"] {
                if let Some(hex) = line.strip_prefix(key) {
                    match u64::from_str_radix(hex.trim(), 16) {
                        Ok(mask) if mask & !allowed == 0 => {}
                        Ok(mask) => problems.push(format!(
                            "thread {} has {key} {mask:#x}",
                            task.file_name().to_string_lossy()
                        )),
                        Err(_) => problems.push(format!("unreadable {key} in {}", path.display())),
                    }
                }
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_is_readable() {
        let s = state().expect("own credentials are readable");
        assert_eq!(s.uid[1], Uid::effective().as_raw());
        assert!(s.threads >= 1);
    }

    #[test]
    fn unknown_user_is_an_error_when_root() {
        if !Uid::effective().is_root() {
            // Not root: drop_to is a no-op for any name.
            assert!(drop_to("ward-no-such-user").is_ok());
            return;
        }
        let err = drop_to("ward-no-such-user").unwrap_err();
        assert!(matches!(err, PrivError::UnknownUser(_)), "{err}");
        assert!(err.to_string().contains("ward-no-such-user"));
        let err = drop_to("root").unwrap_err();
        assert!(matches!(err, PrivError::TargetIsRoot(_)), "{err}");
        // Neither attempt changed anything.
        assert!(Uid::effective().is_root());
    }
}
