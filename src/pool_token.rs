//! The pool's shared secret: a random token that only the pool and the
//! worker processes it starts know.
//!
//! - The pool gives it to each worker in the environment
//!   ([`ENV_VAR`]), and sends it with every call to a worker under the
//!   request metadata key [`HEADER`]. The crate's own worker refuses calls
//!   that do not carry it (`UNAUTHENTICATED`), which matters when a worker
//!   listens on TCP, where any local user can connect.
//! - Workers send it back with every call to the host's callback server,
//!   which refuses callers without it. Snakepit's own worker scripts know
//!   nothing of it, so a pool that runs one
//!   ([`PoolBuilder::worker_script`](crate::PoolBuilder::worker_script))
//!   does not ask for it (see the README's security notes).
//!
//! The Python side is `snakepit_bridge/pool_token.py`.

use std::fmt;
use std::io::Read;

/// The environment variable that carries the token to a worker. The worker
/// removes it from its environment at start-up, so processes its tools
/// start do not inherit it.
pub(crate) const ENV_VAR: &str = "SNAKEPIT_POOL_TOKEN";

/// The request metadata key that carries the token, both ways.
pub(crate) const HEADER: &str = "x-snakepit-pool-token";

/// Random bytes in a token: 256 bits, as 64 hex digits.
const TOKEN_BYTES: usize = 32;

/// A per-pool secret.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct PoolToken(String);

impl PoolToken {
    /// A new token from the kernel's random source.
    pub fn generate() -> std::io::Result<PoolToken> {
        let mut bytes = [0u8; TOKEN_BYTES];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
        Ok(PoolToken(hex(&bytes)))
    }

    /// The token as sent: lowercase hex digits, safe in an environment
    /// variable and in gRPC metadata.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is this token, compared in time that does not
    /// depend on where the first difference is.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let expected = self.0.as_bytes();
        if presented.len() != expected.len() {
            return false;
        }
        expected
            .iter()
            .zip(presented)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// Never printed: a token in a log line would be a token given away.
impl fmt::Debug for PoolToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PoolToken(..)")
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_hex_and_never_printed() {
        let a = PoolToken::generate().unwrap();
        let b = PoolToken::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 2 * TOKEN_BYTES);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(format!("{a:?}"), "PoolToken(..)");
    }

    #[test]
    fn only_the_same_token_matches() {
        let a = PoolToken::generate().unwrap();
        assert!(a.matches(a.as_str().as_bytes()));
        let mut other = a.as_str().as_bytes().to_vec();
        other[TOKEN_BYTES] ^= 1;
        assert!(!a.matches(&other));
        assert!(!a.matches(&a.as_str().as_bytes()[1..]));
        assert!(!a.matches(b""));
    }
}
