//! One lock file per input (`{stem}.lock` beside its results) so that several processes, on one
//! machine or on several nodes over a shared file system, never work on the same input at once.
//!
//! - The lock is created with O_EXCL and names its owner: host, boot id, PID namespace, pid and
//!   the process's start time, so a pid reused after a reboot or seen from another container is
//!   never mistaken for the owner.
//! - While it is held, a heartbeat thread refreshes its modification time.
//! - A lock is stale when its heartbeat is older than the timeout, or when its owner is a process
//!   of this host, boot and PID namespace that no longer exists (a killed run on the same machine
//!   is resumed at once).
//! - Taking over a stale lock renames it to a name unique to the taker: of several takers only
//!   one rename can succeed, and the winner then creates a fresh lock with O_EXCL like anybody
//!   else, so two workers can never both hold it.
//! - The holder re-reads its lock at every checkpoint and before publishing results
//!   (`check_owned`), so a worker that stalled past the timeout and lost its lock stops instead
//!   of overwriting the new owner's work.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::error::{Error, FailureKind, Result};

pub struct Lock {
    path: PathBuf,
    owner: String,
    stop: Arc<AtomicBool>,
    heartbeat: Option<std::thread::JoinHandle<()>>,
}

/// Who holds a lock that could not be taken, and how old its heartbeat is.
#[derive(Debug)]
pub struct Busy {
    pub owner: String,
    pub heartbeat_age: Duration,
}

pub fn hostname() -> String {
    read_trimmed("/proc/sys/kernel/hostname").unwrap_or_else(|| "unknown-host".into())
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

fn pid_namespace() -> String {
    std::fs::read_link("/proc/self/ns/pid")
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Start time of a process in clock ticks since boot (field 22 of /proc/PID/stat).
fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; fields after it follow the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(19).map(String::from)
}

/// This process as a lock owner: `host boot-id pid-namespace pid start-time`.
fn owner_id() -> String {
    let pid = std::process::id();
    format!(
        "{} {} {} {pid} {}",
        hostname(),
        read_trimmed("/proc/sys/kernel/random/boot_id").unwrap_or_default(),
        pid_namespace().replace(' ', "_"),
        start_time(pid).unwrap_or_default()
    )
}

/// Whether an owner string names a process of this host, boot and PID namespace that is gone.
fn owner_is_dead_here(owner: &str) -> bool {
    let f: Vec<&str> = owner.split_whitespace().collect();
    let [host, boot, ns, pid, start] = f[..] else {
        return false;
    };
    let me = owner_id();
    let m: Vec<&str> = me.split_whitespace().collect();
    if m.len() != 5 || host != m[0] || boot != m[1] || ns != m[2] {
        return false;
    }
    match pid.parse::<u32>() {
        Ok(pid) => start_time(pid).as_deref() != Some(start),
        Err(_) => false,
    }
}

fn heartbeat_age(path: &Path) -> Option<Duration> {
    let m = std::fs::metadata(path).ok()?.modified().ok()?;
    Some(SystemTime::now().duration_since(m).unwrap_or_default())
}

/// The owner of a lock file, its heartbeat age, and whether it is stale.
pub fn inspect(path: &Path, timeout: Duration) -> Option<(String, Duration, bool)> {
    let owner = std::fs::read_to_string(path).ok()?.trim().to_string();
    let age = heartbeat_age(path).unwrap_or_default();
    let stale = age > timeout || owner_is_dead_here(&owner);
    Some((owner, age, stale))
}

impl Lock {
    pub fn acquire(path: &Path, timeout: Duration) -> Result<std::result::Result<Lock, Busy>> {
        let owner = owner_id();
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        for _ in 0..5 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
            {
                Ok(mut f) => {
                    std::io::Write::write_all(&mut f, owner.as_bytes())
                        .map_err(|e| Error::io(path, e))?;
                    return Ok(Ok(Lock::start(path, owner, timeout)));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Error::io(path, e)),
            }
            match inspect(path, timeout) {
                Some((holder, age, false)) => {
                    return Ok(Err(Busy {
                        owner: holder,
                        heartbeat_age: age,
                    }))
                }
                Some((holder, _, true)) => {
                    // Move the stale lock out of the way under a name only we use; if another
                    // taker moved it first, our rename fails and we simply try again.
                    let aside = path.with_extension(format!("lock.stale.{}", std::process::id()));
                    if std::fs::rename(path, &aside).is_ok() {
                        tracing::info!("{}: took over the stale lock of {holder}", path.display());
                        let _ = std::fs::remove_file(&aside);
                    }
                }
                None => {} // released meanwhile: try to create it again
            }
        }
        match inspect(path, timeout) {
            Some((owner, heartbeat_age, _)) => Ok(Err(Busy {
                owner,
                heartbeat_age,
            })),
            None => Err(Error::video(
                path,
                FailureKind::Output,
                "could not take the input's lock",
            )),
        }
    }

    /// Fails when the lock file no longer names this process (another worker took it over).
    pub fn check_owned(&self) -> Result<()> {
        match std::fs::read_to_string(&self.path) {
            Ok(s) if s.trim() == self.owner => Ok(()),
            other => {
                Err(Error::video(
                    &self.path,
                    FailureKind::Other,
                    format!(
                    "this worker lost its lock (now {}); another worker is processing the input",
                    other.map(|s| s.trim().to_string()).unwrap_or_else(|e| e.to_string())
                ),
                ))
            }
        }
    }

    fn start(path: &Path, owner: String, timeout: Duration) -> Lock {
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (path.to_path_buf(), stop.clone());
        let every = (timeout / 4).max(Duration::from_millis(200));
        let heartbeat = std::thread::Builder::new()
            .name("lock-heartbeat".into())
            .spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    std::thread::park_timeout(every);
                    if let Ok(f) = std::fs::OpenOptions::new().append(true).open(&p) {
                        let _ = f.set_modified(SystemTime::now());
                    }
                }
            })
            .ok();
        Lock {
            path: path.to_path_buf(),
            owner,
            stop,
            heartbeat,
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.heartbeat.take() {
            h.thread().unpark();
            let _ = h.join();
        }
        if self.check_owned().is_ok() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_lock_is_busy_a_dead_owners_lock_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let held = Lock::acquire(&path, Duration::from_secs(60))
            .unwrap()
            .unwrap();
        assert!(
            Lock::acquire(&path, Duration::from_secs(60))
                .unwrap()
                .is_err(),
            "held by a live process"
        );
        held.check_owned().unwrap();
        std::mem::forget(held); // as if the process had been killed: the file stays
                                // A lock naming a dead process of this host: same identity, impossible start time.
        let mut f: Vec<String> = owner_id().split_whitespace().map(String::from).collect();
        f[4] = "0".into();
        std::fs::write(&path, f.join(" ")).unwrap();
        let taken = Lock::acquire(&path, Duration::from_secs(60))
            .unwrap()
            .expect("stale lock taken over");
        taken.check_owned().unwrap();
        drop(taken);
        assert!(!path.exists(), "released on drop");
    }

    #[test]
    fn an_old_heartbeat_is_stale_and_a_lost_lock_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("y.lock");
        std::fs::write(&path, "other-host boot ns 1 1").unwrap();
        let f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(120))
            .unwrap();
        let mine = Lock::acquire(&path, Duration::from_secs(60))
            .unwrap()
            .expect("stale by heartbeat");
        std::fs::write(&path, "someone else").unwrap();
        assert!(mine.check_owned().is_err());
    }
}
