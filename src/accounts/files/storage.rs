//! Where uploaded bytes live. The API knows files only by their random stored name, never by a
//! server path; a disk folder is the one backend today, behind [`BlobStore`] so an object store can
//! take its place.

use std::future::Future;
use std::io;
use std::path::PathBuf;

use bytes::Bytes;

/// Byte storage keyed by a stored name (see [`is_stored_name`]).
pub trait BlobStore: Send + Sync {
    fn put(&self, name: &str, bytes: Bytes) -> impl Future<Output = io::Result<()>> + Send;
    /// `Ok(None)` when there is no such blob.
    fn get(&self, name: &str) -> impl Future<Output = io::Result<Option<Bytes>>> + Send;
    /// Removing a missing blob is not an error.
    fn delete(&self, name: &str) -> impl Future<Output = io::Result<()>> + Send;
}

/// A stored name as flux makes them: ASCII letters, digits, `.`, `-`, `_`, not starting with a dot,
/// so it can never name a path outside the store.
pub fn is_stored_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// A random stored name with the extension of the sniffed type. Deliberately a UUIDv4, not the v7 of
/// row ids: the name is the capability of a public chat attachment, so all 122 bits stay random
/// (a v7 would give away the upload time and keep only 74 random bits).
pub fn new_stored_name(ext: &str) -> String {
    format!("{}.{ext}", uuid::Uuid::new_v4().simple())
}

/// A folder on local disk (`<data_dir>/uploads` by default).
#[derive(Debug, Clone)]
pub struct LocalDisk {
    root: PathBuf,
}

impl LocalDisk {
    pub fn new(root: PathBuf) -> Self {
        LocalDisk { root }
    }

    fn path(&self, name: &str) -> io::Result<PathBuf> {
        if !is_stored_name(name) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "bad stored name",
            ));
        }
        Ok(self.root.join(name))
    }
}

impl BlobStore for LocalDisk {
    async fn put(&self, name: &str, bytes: Bytes) -> io::Result<()> {
        let path = self.path(name)?;
        tokio::fs::create_dir_all(&self.root).await?;
        // Write beside, then rename: a crash never leaves a half file under the final name.
        let partial = self.root.join(format!("{name}.part"));
        tokio::fs::write(&partial, &bytes).await?;
        tokio::fs::rename(&partial, &path).await
    }

    async fn get(&self, name: &str) -> io::Result<Option<Bytes>> {
        let path = self.path(name)?;
        match tokio::fs::read(&path).await {
            Ok(data) => Ok(Some(Bytes::from(data))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn delete(&self, name: &str) -> io::Result<()> {
        let path = self.path(name)?;
        match tokio::fs::remove_file(&path).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_names_cannot_escape() {
        assert!(is_stored_name("0190a1b2c3.png"));
        assert!(is_stored_name(&new_stored_name("pdf")));
        for bad in [
            "", "../x.png", "a/b.png", ".hidden", "a\\b", "x%2e%2e", "é.png",
        ] {
            assert!(!is_stored_name(bad), "{bad}");
        }
    }

    #[tokio::test]
    async fn put_get_delete() {
        let dir = tempfile::tempdir().unwrap();
        let disk = LocalDisk::new(dir.path().join("uploads"));
        disk.put("a.txt", Bytes::from_static(b"hi")).await.unwrap();
        assert_eq!(disk.get("a.txt").await.unwrap().unwrap(), "hi");
        disk.delete("a.txt").await.unwrap();
        assert!(disk.get("a.txt").await.unwrap().is_none());
        disk.delete("a.txt").await.unwrap();
        assert!(disk.put("../evil", Bytes::new()).await.is_err());
    }
}
