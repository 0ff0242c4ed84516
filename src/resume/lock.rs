//! One lock file per input (`{stem}.lock` beside its results) so that several processes, on one
//! machine or on several nodes over a shared file system, never work on the same input at once.
//!
//! The lock is created with O_EXCL and names its owner (host, pid). While it is held a heartbeat
//! thread refreshes its modification time. A lock whose heartbeat is older than the timeout, or
//! whose owner is a process on this host that no longer exists, is stale and is taken over: the
//! taker renames its own lock over it and then checks it is still the owner, so two takers cannot
//! both win.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::error::{Error, Result};

pub struct Lock {
    path: PathBuf,
    owner: String,
    stop: Arc<AtomicBool>,
    heartbeat: Option<std::thread::JoinHandle<()>>,
}

/// Why a lock could not be taken.
#[derive(Debug)]
pub enum Busy {
    /// Another live worker holds it (owner, seconds since its last heartbeat).
    HeldBy(String, u64),
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown-host".into())
}

fn owner_id() -> String {
    format!("{} {}", hostname(), std::process::id())
}

fn process_alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks for existence and permission.
    pid > 0
        && (unsafe { libc::kill(pid, 0) } == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM))
}

fn heartbeat_age(path: &Path) -> Option<Duration> {
    let m = std::fs::metadata(path).ok()?.modified().ok()?;
    Some(SystemTime::now().duration_since(m).unwrap_or_default())
}

/// Reads a lock file: (owner text, is stale).
pub fn inspect(path: &Path, timeout: Duration) -> Option<(String, Duration, bool)> {
    let owner = std::fs::read_to_string(path).ok()?.trim().to_string();
    let age = heartbeat_age(path).unwrap_or_default();
    let mut parts = owner.split_whitespace();
    let (host, pid) = (
        parts.next().unwrap_or(""),
        parts
            .next()
            .and_then(|p| p.parse::<i32>().ok())
            .unwrap_or(0),
    );
    let dead_here = host == hostname() && !process_alive(pid);
    Some((owner.clone(), age, dead_here || age > timeout))
}

impl Lock {
    pub fn acquire(path: &Path, timeout: Duration) -> Result<std::result::Result<Lock, Busy>> {
        let owner = owner_id();
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
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
            Some((holder, age, false)) => Ok(Err(Busy::HeldBy(holder, age.as_secs()))),
            _ => {
                // Stale (or vanished): take it over.
                let tmp = path.with_extension(format!("lock.{}", std::process::id()));
                std::fs::write(&tmp, owner.as_bytes()).map_err(|e| Error::io(&tmp, e))?;
                std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
                std::thread::sleep(Duration::from_millis(50));
                match std::fs::read_to_string(path) {
                    Ok(s) if s.trim() == owner => {
                        tracing::info!("{}: took over a stale lock", path.display());
                        Ok(Ok(Lock::start(path, owner, timeout)))
                    }
                    Ok(s) => Ok(Err(Busy::HeldBy(s.trim().to_string(), 0))),
                    Err(e) => Err(Error::io(path, e)),
                }
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
        if std::fs::read_to_string(&self.path)
            .map(|s| s.trim() == self.owner)
            .unwrap_or(false)
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
