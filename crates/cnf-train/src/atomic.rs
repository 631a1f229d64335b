//! The one way this project writes a file: staged beside its final name and renamed into place
//! when complete ([`AtomicFile`]), so a failure or a kill at any point leaves the previous
//! version of the file byte for byte intact. Model folders (config, weights, checkpoint), the
//! CSVs of `cnf density` and `cnf sample`, and every PNG go through it.
//!
//! ```
//! use std::io::Write;
//! # let dir = tempfile::tempdir()?;
//! let path = dir.path().join("out.csv");
//! std::fs::write(&path, "old\n")?;
//! let mut f = cnf_train::atomic::AtomicFile::create(&path)?;
//! writeln!(f, "x,logp")?;
//! drop(f); // an error before `commit`: the old file stays
//! assert_eq!(std::fs::read_to_string(&path)?, "old\n");
//! let mut f = cnf_train::atomic::AtomicFile::create(&path)?;
//! writeln!(f, "x,logp")?;
//! f.commit()?;
//! assert_eq!(std::fs::read_to_string(&path)?, "x,logp\n");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::TrainError;

/// Buffer of the staged file's writer.
const BUFFER: usize = 1 << 20;

/// Distinguishes the temporary files of one process.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A file written under a temporary name in the target's folder
/// (`.NAME.PID.K.tmp`: process id and a per-process counter, so concurrent writers never share
/// one) through a buffered writer, and renamed to its final name by [`AtomicFile::commit`]
/// after a flush and an fsync. Dropped without a commit (an error, a panic), it removes the
/// temporary file and leaves the target untouched. A process killed mid-write leaves the
/// target untouched too, and its hidden `.NAME.PID.K.tmp` behind.
#[derive(Debug)]
pub struct AtomicFile {
    path: PathBuf,
    tmp: PathBuf,
    writer: Option<BufWriter<File>>,
}

impl AtomicFile {
    /// Starts writing `path` (whose folder must exist). A symbolic link is followed: the file
    /// it points to is replaced, the link stays. An existing file's permissions are kept.
    ///
    /// # Errors
    /// [`TrainError::Invalid`] if `path` has no file name (`/`, `..`); [`TrainError::Io`] if
    /// the temporary file cannot be created (no such folder, no permission).
    pub fn create(path: &Path) -> Result<Self, TrainError> {
        let path = match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_symlink() => {
                std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
            }
            _ => path.to_path_buf(),
        };
        let io = |e: std::io::Error| TrainError::io(path.display())(e);
        let name = path
            .file_name()
            .ok_or_else(|| TrainError::Invalid(format!("{}: not a file name", path.display())))?
            .to_string_lossy()
            .into_owned();
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let (tmp, file) = loop {
            let k = COUNTER.fetch_add(1, Ordering::Relaxed);
            let tmp = dir.join(format!(".{name}.{}.{k}.tmp", std::process::id()));
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)
            {
                Ok(f) => break (tmp, f),
                // A leftover of a killed process that had this process's id: take the next.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io(e)),
            }
        };
        if let Ok(m) = std::fs::metadata(&path) {
            if m.is_file() {
                let _ = file.set_permissions(m.permissions());
            }
        }
        Ok(Self {
            path,
            tmp,
            writer: Some(BufWriter::with_capacity(BUFFER, file)),
        })
    }

    /// The final name.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The temporary name being written.
    pub fn temp_path(&self) -> &Path {
        &self.tmp
    }

    /// Flushes, syncs the data to disk and renames the file to its final name (replacing an
    /// existing file in one step). On failure the temporary file is removed and the target is
    /// untouched.
    ///
    /// # Errors
    /// [`TrainError::Io`] naming the target if the flush, the sync or the rename fails.
    pub fn commit(mut self) -> Result<(), TrainError> {
        let io = |e: std::io::Error| TrainError::io(self.path.display())(e);
        let Some(writer) = self.writer.take() else {
            return Ok(());
        };
        let done = writer
            .into_inner()
            .map_err(|e| e.into_error())
            .and_then(|file| file.sync_all())
            .and_then(|()| std::fs::rename(&self.tmp, &self.path));
        if let Err(e) = done {
            let _ = std::fs::remove_file(&self.tmp);
            return Err(io(e));
        }
        // Make the rename itself durable (best effort: not every platform opens folders).
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.writer.as_mut().map_or(Ok(0), |w| w.write(buf))
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self.writer.as_mut() {
            Some(w) => w.write_all(buf),
            None => Err(std::io::ErrorKind::BrokenPipe.into()),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.writer.as_mut().map_or(Ok(()), |w| w.flush())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if let Some(w) = self.writer.take() {
            // Not committed: discard the buffer (no flush) and the temporary file.
            let (file, _) = w.into_parts();
            drop(file);
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Writes `bytes` to `path` atomically with an [`AtomicFile`], creating the folder if needed.
///
/// # Errors
/// [`TrainError::Io`] if the folder cannot be created or the file cannot be written, synced or
/// renamed into place; [`TrainError::Invalid`] if `path` has no file name.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(TrainError::io(dir.display()))?;
    }
    let mut f = AtomicFile::create(path)?;
    f.write_all(bytes).map_err(TrainError::io(path.display()))?;
    f.commit()
}

/// An output file of a command: a regular (or not yet existing) file is staged with an
/// [`AtomicFile`]; a special file that exists (`/dev/stdout`, a FIFO, a terminal) cannot be
/// renamed over and is written in place.
#[derive(Debug)]
pub enum OutputFile {
    /// A regular file, replaced on [`OutputFile::commit`].
    Staged(AtomicFile),
    /// A special file, written as it goes.
    Direct(BufWriter<File>),
}

impl OutputFile {
    /// Opens `path` for writing (nothing is replaced until [`OutputFile::commit`]).
    ///
    /// # Errors
    /// [`TrainError::Invalid`] if `path` is a folder or has no file name; [`TrainError::Io`] if
    /// a special file cannot be opened for writing or the temporary file cannot be created.
    pub fn create(path: &Path) -> Result<Self, TrainError> {
        match std::fs::metadata(path) {
            Ok(m) if !m.is_file() && !m.is_dir() => {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(TrainError::io(path.display()))?;
                Ok(Self::Direct(BufWriter::with_capacity(BUFFER, f)))
            }
            Ok(m) if m.is_dir() => Err(TrainError::Invalid(format!(
                "{} is a folder, not a file",
                path.display()
            ))),
            _ => Ok(Self::Staged(AtomicFile::create(path)?)),
        }
    }

    /// Completes the file: renames a staged file into place, flushes a special one.
    ///
    /// # Errors
    /// [`TrainError::Io`] if the flush, sync or rename fails ([`AtomicFile::commit`]).
    pub fn commit(self) -> Result<(), TrainError> {
        match self {
            Self::Staged(f) => f.commit(),
            Self::Direct(mut w) => w.flush().map_err(TrainError::io("the output")),
        }
    }
}

impl Write for OutputFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Self::Staged(f) => f.write(buf),
            Self::Direct(w) => w.write(buf),
        }
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Self::Staged(f) => f.write_all(buf),
            Self::Direct(w) => w.write_all(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Self::Staged(f) => f.flush(),
            Self::Direct(w) => w.flush(),
        }
    }
}

/// Whether `a` and `b` name the same existing file (the same inode on Unix, through links and
/// `..`; the same canonical path elsewhere).
pub fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(x), Ok(y)) = (std::fs::metadata(a), std::fs::metadata(b)) {
            return x.dev() == y.dev() && x.ino() == y.ino();
        }
        false
    }
    #[cfg(not(unix))]
    {
        match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
            (Ok(x), Ok(y)) => x == y,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leftovers(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect()
    }

    #[test]
    fn commit_renames_the_staged_file_over_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.csv");
        std::fs::write(&path, "old\n").unwrap();
        let mut f = AtomicFile::create(&path).unwrap();
        let tmp = f.temp_path().to_path_buf();
        assert_eq!(tmp.parent(), Some(dir.path()));
        assert!(tmp.exists());
        f.write_all(b"new\n").unwrap();
        // Nothing reaches the target before the commit.
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old\n");
        f.commit().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
        assert!(!tmp.exists());
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn drop_without_commit_keeps_the_target_and_removes_the_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.csv");
        std::fs::write(&path, "precious\n").unwrap();
        let mut f = AtomicFile::create(&path).unwrap();
        // More than the buffer, so part of it reaches the temporary file.
        f.write_all(&vec![b'x'; 3 * BUFFER]).unwrap();
        let tmp = f.temp_path().to_path_buf();
        assert!(std::fs::metadata(&tmp).unwrap().len() > 0);
        drop(f);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious\n");
        assert!(!tmp.exists());
        assert!(leftovers(dir.path()).is_empty());
        // A file that did not exist is not created.
        let fresh = dir.path().join("b.csv");
        drop(AtomicFile::create(&fresh).unwrap());
        assert!(!fresh.exists());
    }

    #[test]
    fn concurrent_writers_get_distinct_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.csv");
        let a = AtomicFile::create(&path).unwrap();
        let b = AtomicFile::create(&path).unwrap();
        assert_ne!(a.temp_path(), b.temp_path());
        let name = a.temp_path().file_name().unwrap().to_string_lossy();
        assert!(
            name.starts_with(".a.csv.") && name.ends_with(".tmp"),
            "{name}"
        );
        assert!(name.contains(&std::process::id().to_string()));
    }

    #[cfg(unix)]
    #[test]
    fn permissions_are_kept_and_symlinks_followed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.csv");
        std::fs::write(&real, "old").unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o600)).unwrap();
        let link = dir.path().join("link.csv");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let mut f = AtomicFile::create(&link).unwrap();
        f.write_all(b"new").unwrap();
        f.commit().unwrap();
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read_to_string(&real).unwrap(), "new");
        let mode = std::fs::metadata(&real).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn write_atomic_creates_the_folder_and_same_file_sees_through_paths() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/c.json");
        write_atomic(&path, b"{}").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{}");
        let other = dir.path().join("sub/../sub/c.json");
        assert!(same_file(&path, &other));
        assert!(!same_file(&path, &dir.path().join("sub/none.json")));
    }

    #[cfg(unix)]
    #[test]
    fn special_files_are_written_in_place() {
        let out = OutputFile::create(Path::new("/dev/null")).unwrap();
        assert!(matches!(out, OutputFile::Direct(_)));
        out.commit().unwrap();
    }
}
