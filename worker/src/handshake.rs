//! Workers prove to each other that they know the cluster secret before any frame is read.
//!
//! When the receiving worker has a secret, it opens every accepted connection with a challenge:
//! `GALE1` and 16 random bytes. The sender answers with HMAC-SHA256(secret, challenge), 32
//! bytes. A connection that does not answer within [`PROVE_WITHIN`], or answers wrong, is closed
//! before a single frame byte is buffered: a process that only reaches the port cannot inject
//! tuples, and cannot make the worker hold memory or threads for long. The secret itself never
//! travels. (The sender does not check the receiver: a receiver that is not a Gale worker learns
//! nothing it could replay, since each challenge is fresh.)

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// What opens a challenge.
const MAGIC: &[u8; 5] = b"GALE1";
const NONCE: usize = 16;
const TAG: usize = 32;
/// How long a connecting worker has to answer the challenge.
pub const PROVE_WITHIN: Duration = Duration::from_secs(3);

/// The cluster secret (`--cluster-secret-file` / `GALE_CLUSTER_SECRET`), as an HMAC key.
#[derive(Clone)]
pub struct ClusterSecret(hmac::Key);

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecret(..)")
    }
}

/// Why a connection was refused.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("the peer did not prove the cluster secret within {0:?}")]
    Silent(Duration),
    #[error("the peer answered the challenge with the wrong secret")]
    WrongSecret,
    #[error(
        "the receiving worker did not send a Gale challenge (is it a Gale worker with a cluster secret?)"
    )]
    NoChallenge,
    #[error("cannot make a challenge: no randomness")]
    Random,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl ClusterSecret {
    pub fn new(secret: &[u8]) -> Self {
        ClusterSecret(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    fn answer(&self, challenge: &[u8]) -> hmac::Tag {
        hmac::sign(&self.0, challenge)
    }

    /// The receiving side: challenges a new connection and waits for the proof. The stream's
    /// read timeout is left at `within`.
    pub fn challenge(&self, s: &mut TcpStream, within: Duration) -> Result<(), HandshakeError> {
        let mut nonce = [0u8; NONCE];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| HandshakeError::Random)?;
        let mut hello = Vec::with_capacity(MAGIC.len() + NONCE);
        hello.extend_from_slice(MAGIC);
        hello.extend_from_slice(&nonce);
        s.write_all(&hello)?;
        s.set_read_timeout(Some(within))?;
        let mut tag = [0u8; TAG];
        s.read_exact(&mut tag).map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                HandshakeError::Silent(within)
            }
            std::io::ErrorKind::UnexpectedEof => HandshakeError::WrongSecret,
            _ => HandshakeError::Io(e),
        })?;
        hmac::verify(&self.0, &hello, &tag).map_err(|_| HandshakeError::WrongSecret)
    }

    /// The sending side: reads the challenge and answers it.
    pub fn prove(&self, s: &mut TcpStream, within: Duration) -> Result<(), HandshakeError> {
        s.set_read_timeout(Some(within))?;
        let mut hello = [0u8; MAGIC.len() + NONCE];
        s.read_exact(&mut hello).map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                HandshakeError::NoChallenge
            }
            _ => HandshakeError::Io(e),
        })?;
        if &hello[..MAGIC.len()] != MAGIC {
            return Err(HandshakeError::NoChallenge);
        }
        s.write_all(self.answer(&hello).as_ref())?;
        s.set_read_timeout(None)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// Runs `server` on an accepted loopback connection and `client` on the connecting side.
    fn pair<T: Send>(
        server: impl FnOnce(&mut TcpStream) -> T + Send,
        client: impl FnOnce(&mut TcpStream) + Send,
    ) -> T {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        std::thread::scope(|sc| {
            let c = sc.spawn(move || {
                let mut s = TcpStream::connect(addr).expect("connect");
                client(&mut s);
            });
            let (mut s, _) = l.accept().expect("accept");
            let out = server(&mut s);
            drop(s);
            let _ = c.join();
            out
        })
    }

    #[test]
    fn the_right_secret_passes_and_a_wrong_one_or_silence_does_not() {
        let ours = ClusterSecret::new(b"cluster secret");
        let within = Duration::from_millis(500);
        // (what the client does, accepted?)
        let right = pair(
            |s| ours.challenge(s, within).map_err(|e| e.to_string()),
            |s| ours.prove(s, within).expect("proves"),
        );
        assert_eq!(right, Ok(()));
        let theirs = ClusterSecret::new(b"another secret");
        let wrong = pair(
            |s| ours.challenge(s, within),
            |s| {
                let _ = theirs.prove(s, within);
            },
        );
        assert!(
            matches!(wrong, Err(HandshakeError::WrongSecret)),
            "{wrong:?}"
        );
        // A forger that sends a frame instead of an answer: refused on its first 32 bytes.
        let forged = pair(
            |s| ours.challenge(s, within),
            |s| {
                let _ = s.write_all(&[0, 0, 0, 40]);
                let _ = s.write_all(&[0x92; 40]);
            },
        );
        assert!(
            matches!(forged, Err(HandshakeError::WrongSecret)),
            "{forged:?}"
        );
        // One that says nothing: refused when the time is up.
        let silent = pair(
            |s| ours.challenge(s, within),
            |_| std::thread::sleep(Duration::from_millis(900)),
        );
        assert!(
            matches!(silent, Err(HandshakeError::Silent(_))),
            "{silent:?}"
        );
    }

    #[test]
    fn a_sender_with_a_secret_refuses_a_receiver_without_one() {
        let ours = ClusterSecret::new(b"s");
        let within = Duration::from_millis(300);
        pair(
            |_| std::thread::sleep(Duration::from_millis(600)),
            |s| {
                let e = ours.prove(s, within).expect_err("no challenge came");
                assert!(matches!(e, HandshakeError::NoChallenge), "{e:?}");
            },
        );
    }
}
