//! A parsed file, loaded once per change.
//!
//! Each [`FileCache::get`] stats the file (one `stat`, no read) and reuses
//! the parsed version when nothing that identifies it changed: device,
//! inode, size, mtime, ctime (both to the nanosecond), mode, owner and
//! group. A rewrite by rename (what `dialgate user add` does) always changes
//! the inode; an edit in place changes the size or the times; a `chmod` or
//! `chown` changes the ctime, mode or owner. The timestamps the kernel keeps
//! are coarse (a clock tick), so a version whose mtime or ctime is less
//! than [`RACY`] before the moment it was read is not trusted: it is read again
//! on the next `get` until it is old enough (the rule git uses for its
//! index), so an edit in place right after a load is never missed.
//!
//! Failing closed: a file that cannot be read or parsed is an error for
//! every `get` until it changes again, and the version before it is dropped
//! (the file on disk is what the operator means now). A parse failure is
//! remembered per version, so a broken file is not re-parsed on every
//! login; each new error is logged once.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::userdb::UserFileError;

/// How recent a change must be to be re-checked by reading (see the module
/// documentation).
pub const RACY: Duration = Duration::from_secs(2);

/// What identifies one version of a file on disk.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct FileStamp {
    dev: u64,
    ino: u64,
    len: u64,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileStamp {
    fn of(meta: &std::fs::Metadata) -> FileStamp {
        FileStamp {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mode: meta.mode(),
            uid: meta.uid(),
            gid: meta.gid(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    /// True when the mtime or the ctime is less than [`RACY`] before
    /// `read_at` (or after it: a clock step). The ctime counts too: an
    /// edit in place that puts the old mtime back (`cp -p`, `touch -r`,
    /// `rsync --inplace -t`) leaves an old mtime, and a second such edit of
    /// the same size within the ctime's clock tick changes nothing else.
    fn racy(&self, read_at: SystemTime) -> bool {
        [self.mtime, self.ctime].into_iter().any(|(secs, nsecs)| {
            let changed = UNIX_EPOCH
                + Duration::new(
                    u64::try_from(secs).unwrap_or(0),
                    u32::try_from(nsecs).unwrap_or(0),
                );
            match read_at.duration_since(changed) {
                Ok(age) => age < RACY,
                Err(_) => true,
            }
        })
    }
}

enum Loaded<T> {
    Ok(Arc<T>),
    Failed(Arc<UserFileError>),
}

struct State<T> {
    /// The version last read, whether it is trusted without reading, and
    /// what it gave.
    loaded: Option<(FileStamp, bool, Loaded<T>)>,
    /// The last error logged, so each is logged once.
    last_error: Option<String>,
}

/// A file parsed by `load`, cached per version (see the module
/// documentation).
pub struct FileCache<T> {
    path: PathBuf,
    what: &'static str,
    load: fn(&Path) -> Result<T, UserFileError>,
    state: Mutex<State<T>>,
    loads: AtomicU64,
}

impl<T> std::fmt::Debug for FileCache<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileCache")
            .field("path", &self.path)
            .field("loads", &self.loads())
            .finish_non_exhaustive()
    }
}

impl<T> FileCache<T> {
    /// A cache of `path`, read with `load`; `what` names it in logs ("users
    /// file"). Nothing is read until the first `get`.
    pub fn new(
        path: PathBuf,
        what: &'static str,
        load: fn(&Path) -> Result<T, UserFileError>,
    ) -> FileCache<T> {
        FileCache {
            path,
            what,
            load,
            state: Mutex::new(State {
                loaded: None,
                last_error: None,
            }),
            loads: AtomicU64::new(0),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many times the file was read and parsed (successfully or not).
    pub fn loads(&self) -> u64 {
        self.loads.load(Ordering::Relaxed)
    }

    /// The current version, parsed; blocking (a `stat`, and a read and
    /// parse when the file changed). Errors: the file cannot be read, or
    /// this version of it is invalid.
    pub fn get(&self) -> Result<Arc<T>, Arc<UserFileError>> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let result = self.refresh(&mut st);
        match &result {
            Ok(_) => {
                if st.last_error.take().is_some() {
                    tracing::info!(path = %self.path.display(), "{} usable again", self.what);
                }
            }
            Err(e) => {
                let msg = e.to_string();
                if st.last_error.as_deref() != Some(msg.as_str()) {
                    tracing::error!(error = %msg, "{} unusable: every login that needs it is refused", self.what);
                    st.last_error = Some(msg);
                }
            }
        }
        result
    }

    fn refresh(&self, st: &mut State<T>) -> Result<Arc<T>, Arc<UserFileError>> {
        let meta = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            Err(source) => {
                st.loaded = None;
                return Err(Arc::new(UserFileError::Io {
                    path: self.path.clone(),
                    source,
                }));
            }
        };
        let stamp = FileStamp::of(&meta);
        if let Some((s, trusted, v)) = &st.loaded
            && *s == stamp
            && *trusted
        {
            return match v {
                Loaded::Ok(t) => Ok(t.clone()),
                Loaded::Failed(e) => Err(e.clone()),
            };
        }
        // Drop the old version first: on failure, nothing stale remains.
        let again = st.loaded.take().is_some_and(|(s, _, _)| s == stamp);
        let read_at = SystemTime::now();
        let loaded = match (self.load)(&self.path) {
            Ok(t) => Loaded::Ok(Arc::new(t)),
            Err(e) => Loaded::Failed(Arc::new(e)),
        };
        self.loads.fetch_add(1, Ordering::Relaxed);
        // The file may have changed between the stat and the read: stat it
        // again, and trust the version only if it is the same and old
        // enough.
        let after = std::fs::metadata(&self.path)
            .ok()
            .map(|m| FileStamp::of(&m));
        let trusted = after == Some(stamp) && !stamp.racy(read_at);
        let out = match &loaded {
            Loaded::Ok(t) => {
                if again {
                    tracing::debug!(path = %self.path.display(), "{} read again (changed recently)", self.what);
                } else {
                    tracing::info!(path = %self.path.display(), "{} loaded", self.what);
                }
                Ok(t.clone())
            }
            Loaded::Failed(e) => Err(e.clone()),
        };
        st.loaded = Some((after.unwrap_or(stamp), trusted, loaded));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(path: &Path) -> Result<String, UserFileError> {
        std::fs::read_to_string(path).map_err(|source| UserFileError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// A file rewritten in place with its old mtime put back (`cp -p`,
    /// `rsync --inplace -t`, `touch -r`) has a fresh ctime: within a clock
    /// tick of that ctime a second such rewrite of the same size changes
    /// no field of the stamp, so the version is not trusted (read again at
    /// each `get`) until its ctime too is [`RACY`] old, not only its mtime.
    #[test]
    fn a_recent_ctime_is_racy_even_with_an_old_mtime() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "v1").unwrap();
        let old = SystemTime::now() - Duration::from_secs(60);
        std::fs::File::options()
            .append(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let cache = FileCache::new(path.clone(), "test file", read);
        assert_eq!(*cache.get().unwrap(), "v1");
        assert_eq!(*cache.get().unwrap(), "v1");
        assert_eq!(cache.loads(), 2, "read again while its ctime is recent");
        std::thread::sleep(RACY + Duration::from_millis(100));
        assert_eq!(*cache.get().unwrap(), "v1");
        let n = cache.loads();
        assert_eq!(*cache.get().unwrap(), "v1");
        assert_eq!(cache.loads(), n, "trusted once old enough");
    }
}
