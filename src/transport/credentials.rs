//! What a gRPC call presents to a worker: the pool's own token (local
//! workers) or a bearer token read from a file (remote workers), and, for
//! remote workers, TLS.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use grpcio::MetadataBuilder;
use parking_lot::Mutex;

use crate::pool_token;
use crate::remote::read_token;

/// The metadata key of a bearer token.
pub(crate) const AUTHORIZATION: &str = "authorization";

/// How often a token file is looked at for a change, at most.
const TOKEN_RECHECK: Duration = Duration::from_secs(1);

/// What every call carries to prove it comes from the pool.
#[derive(Clone)]
pub(crate) enum Auth {
    /// Nothing (a remote worker without a token).
    None,
    /// The pool's own token, for the workers it starts.
    PoolToken(Arc<str>),
    /// `authorization: Bearer <token>`, the token read from a file.
    Bearer(Arc<TokenFile>),
}

impl Auth {
    /// Adds this credential to a call's headers.
    pub fn add_to(&self, headers: &mut MetadataBuilder) {
        // Both tokens are checked to be valid metadata when read.
        match self {
            Auth::None => {}
            Auth::PoolToken(token) => {
                let _ = headers.add_str(pool_token::HEADER, token);
            }
            Auth::Bearer(file) => {
                let _ = headers.add_str(AUTHORIZATION, &file.header());
            }
        }
    }
}

/// A token file, read again when it changes (a rotated Kubernetes Secret
/// is a new file swapped in under the same name).
pub(crate) struct TokenFile {
    path: PathBuf,
    state: Mutex<TokenState>,
}

struct TokenState {
    /// `Bearer <token>`.
    header: Arc<str>,
    /// What the file looked like when read: a change of either reads it
    /// again.
    stamp: Option<(SystemTime, u64)>,
    checked: Instant,
}

impl TokenFile {
    /// Reads the token now; fails when the file cannot be read, is empty,
    /// or holds what cannot travel as metadata.
    pub fn open(path: &Path) -> Result<TokenFile, String> {
        let token = read_token(path)?;
        Ok(TokenFile {
            path: path.to_owned(),
            state: Mutex::new(TokenState {
                header: Arc::from(format!("Bearer {token}")),
                stamp: stamp(path),
                checked: Instant::now(),
            }),
        })
    }

    /// The `authorization` value, the file read again first if it may
    /// have changed (looked at once a second at most). A file that became
    /// unreadable or empty leaves the last good token in use.
    pub fn header(&self) -> Arc<str> {
        let mut state = self.state.lock();
        if state.checked.elapsed() >= TOKEN_RECHECK {
            state.checked = Instant::now();
            let now = stamp(&self.path);
            if now.is_some() && now != state.stamp {
                match read_token(&self.path) {
                    Ok(token) => {
                        state.header = Arc::from(format!("Bearer {token}"));
                        state.stamp = now;
                        log::info!("read the new token in {}", self.path.display());
                    }
                    Err(e) => log::warn!("keeping the last token: {e}"),
                }
            }
        }
        state.header.clone()
    }
}

/// The file's modification time and length, when it can be read.
fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// The TLS credentials of a channel to remote workers.
#[cfg(feature = "tls")]
pub(crate) fn channel_credentials(tls: &crate::remote::Tls) -> grpcio::ChannelCredentials {
    let mut builder = grpcio::ChannelCredentialsBuilder::new().root_cert(tls.ca.clone());
    if let Some((cert, key)) = &tls.identity {
        builder = builder.cert(cert.clone(), key.clone());
    }
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rewritten_token_file_is_read_again() {
        let dir = std::env::temp_dir().join(format!("snakepit-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        std::fs::write(&path, "first\n").unwrap();
        let file = TokenFile::open(&path).unwrap();
        assert_eq!(&*file.header(), "Bearer first");
        // A longer token: the length changes even within the mtime's grain.
        std::fs::write(&path, "second-token").unwrap();
        file.state.lock().checked = Instant::now() - TOKEN_RECHECK;
        assert_eq!(&*file.header(), "Bearer second-token");
        // Emptied: the last good token stays.
        std::fs::write(&path, "").unwrap();
        file.state.lock().checked = Instant::now() - TOKEN_RECHECK;
        assert_eq!(&*file.header(), "Bearer second-token");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_token_that_cannot_be_metadata_is_refused() {
        let dir = std::env::temp_dir().join(format!("snakepit-token2-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        std::fs::write(&path, "two words").unwrap();
        assert!(read_token(&path).unwrap_err().contains("printable"));
        std::fs::write(&path, "  \n").unwrap();
        assert!(read_token(&path).unwrap_err().contains("empty"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
