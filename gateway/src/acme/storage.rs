//! The `tls.acme.storage` directory, which gateway replicas may share (a volume):
//!
//! ```text
//! lock                          held (flock) by the one gateway ordering at a time
//! <directory host>/account.json the account's key and URL at that CA
//! <first domain>.crt.pem        the certificate chain for `domains`
//! <first domain>.key.pem        its private key
//! challenges/<token>            HTTP-01 answers, so a replica that did not order answers too
//! ```
//!
//! Every file is written whole to a temporary name and renamed into place, mode 0600, so a
//! reader (another replica, or this one after a crash) sees the old file or the new one.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use crate::config::AcmeConfig;

pub(super) struct Storage {
    dir: PathBuf,
}

/// The certificate and key files for one config.
pub(super) struct CertificatePaths {
    pub(super) cert: PathBuf,
    pub(super) key: PathBuf,
}

impl Storage {
    pub(super) fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
        }
    }

    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(super) fn certificate(&self, config: &AcmeConfig) -> CertificatePaths {
        let name = config.domains.first().map_or("certificate", String::as_str);
        CertificatePaths {
            cert: self.dir.join(format!("{name}.crt.pem")),
            key: self.dir.join(format!("{name}.key.pem")),
        }
    }

    /// One account per CA: a directory per host (and port) of the directory URL, so that
    /// staging and production accounts do not mix.
    pub(super) fn account(&self, config: &AcmeConfig) -> PathBuf {
        let authority = config
            .directory_url
            .trim_start_matches("https://")
            .split('/')
            .next()
            .unwrap_or_default();
        let safe: String = authority
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.dir.join(safe).join("account.json")
    }

    fn challenge(&self, token: &str) -> Option<PathBuf> {
        is_token(token).then(|| self.dir.join("challenges").join(token))
    }

    /// The lock that makes one gateway at a time order, held until the returned file is
    /// dropped; `None` while another process holds it.
    pub(super) fn try_lock(&self) -> io::Result<Option<File>> {
        create_dir(&self.dir)?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(self.dir.join("lock"))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(file)),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }

    pub(super) fn put_challenge(&self, token: &str, answer: &str) -> io::Result<()> {
        let path = self.challenge(token).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "the CA sent an unusable token")
        })?;
        write_private(&path, answer.as_bytes())
    }

    pub(super) fn remove_challenge(&self, token: &str) {
        if let Some(path) = self.challenge(token) {
            let _ = fs::remove_file(path);
        }
    }

    /// The answer to `token` another replica published, if any.
    pub(super) async fn read_challenge(&self, token: &str) -> Option<String> {
        tokio::fs::read_to_string(self.challenge(token)?).await.ok()
    }
}

/// An ACME token: base64url, as RFC 8555 section 8.3 says (and so safe as a file name).
pub(super) fn is_token(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= 256
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn create_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    // The directory holds private keys: owner only, whatever the umask made it.
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
}

/// Write `bytes` to `path` atomically (a temporary file in the same directory, synced, then
/// renamed over it), readable by the owner only.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no parent directory"))?;
    create_dir(dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, path).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })?;
    // The rename is durable once the directory is.
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_base64url_only() {
        assert!(is_token("evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"));
        for bad in ["", "../lock", "a/b", "a.b", "tok en", &"a".repeat(257)] {
            assert!(!is_token(bad), "{bad:?}");
        }
    }

    #[test]
    fn files_are_written_whole_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("key.pem");
        write_private(&path, b"one").unwrap();
        write_private(&path, b"two").unwrap();

        assert_eq!(fs::read(&path).unwrap(), b"two");
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
    }

    #[test]
    fn one_holder_of_the_lock_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::new(dir.path());
        let held = storage.try_lock().unwrap();
        assert!(held.is_some());
        assert!(storage.try_lock().unwrap().is_none(), "held elsewhere");
        drop(held);
        assert!(storage.try_lock().unwrap().is_some(), "released on drop");
    }
}
