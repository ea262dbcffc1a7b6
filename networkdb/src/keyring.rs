//! Encryption keys for gossip and streams (libnetwork's memberlist keyring).
//!
//! Every datagram and stream message is sealed with AES-GCM under the primary key and opened
//! with whichever installed key works, so keys can be rotated without a flag day: install the
//! new key everywhere, make it primary everywhere, then remove the old one.

use std::fmt;

use aes_gcm::aead::Aead;
use aes_gcm::{Aes128Gcm, Aes256Gcm, KeyInit, Nonce};
use rand::RngExt;

use crate::error::{Error, Result};

/// Version byte of the sealed format: `[version][12-byte nonce][ciphertext and 16-byte tag]`.
const SEALED_VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// Bytes that sealing adds to a message.
pub const SEAL_OVERHEAD: usize = 1 + NONCE_LEN + TAG_LEN;

#[derive(Clone)]
enum Cipher {
    Aes128(Box<Aes128Gcm>),
    Aes256(Box<Aes256Gcm>),
}

#[derive(Clone)]
struct Key {
    bytes: Vec<u8>,
    cipher: Cipher,
}

impl Key {
    fn new(bytes: &[u8]) -> Result<Self> {
        let cipher = match bytes.len() {
            16 => Cipher::Aes128(Box::new(
                Aes128Gcm::new_from_slice(bytes).map_err(|_| Error::InvalidKey(bytes.len()))?,
            )),
            32 => Cipher::Aes256(Box::new(
                Aes256Gcm::new_from_slice(bytes).map_err(|_| Error::InvalidKey(bytes.len()))?,
            )),
            n => return Err(Error::InvalidKey(n)),
        };
        Ok(Self {
            bytes: bytes.to_vec(),
            cipher,
        })
    }
}

/// The installed keys; the first one is the primary.
#[derive(Clone, Default)]
pub struct Keyring {
    keys: Vec<Key>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("Keyring")
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl Keyring {
    /// A keyring holding `keys`, the first one primary; duplicates are dropped.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] if a key is not 16 or 32 bytes long.
    pub fn new(keys: &[Vec<u8>]) -> Result<Self> {
        let mut ring = Self::default();
        for key in keys {
            ring.add(key)?;
        }
        Ok(ring)
    }

    /// True when at least one key is installed (traffic is encrypted).
    pub fn is_enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// The installed keys, primary first.
    pub fn keys(&self) -> Vec<Vec<u8>> {
        self.keys.iter().map(|k| k.bytes.clone()).collect()
    }

    /// Installs a key (libnetwork's `SetKey`); the first key installed becomes primary. Adding
    /// an installed key does nothing.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] if the key is not 16 or 32 bytes long; nothing changed.
    pub fn add(&mut self, key: &[u8]) -> Result<()> {
        let key = Key::new(key)?;
        if !self.keys.iter().any(|k| k.bytes == key.bytes) {
            self.keys.push(key);
        }
        Ok(())
    }

    /// Makes an installed key the primary (libnetwork's `SetPrimaryKey`).
    ///
    /// # Errors
    /// [`Error::KeyNotFound`] if the key is not installed; nothing changed.
    pub fn set_primary(&mut self, key: &[u8]) -> Result<()> {
        let pos = self
            .keys
            .iter()
            .position(|k| k.bytes == key)
            .ok_or(Error::KeyNotFound("set primary"))?;
        let k = self.keys.remove(pos);
        self.keys.insert(0, k);
        Ok(())
    }

    /// Removes a secondary key (libnetwork's `RemoveKey`).
    ///
    /// # Errors
    /// [`Error::PrimaryKeyRemoval`] for the primary key, [`Error::KeyNotFound`] if the key is
    /// not installed; nothing changed either way.
    pub fn remove(&mut self, key: &[u8]) -> Result<()> {
        let pos = self
            .keys
            .iter()
            .position(|k| k.bytes == key)
            .ok_or(Error::KeyNotFound("remove"))?;
        if pos == 0 {
            return Err(Error::PrimaryKeyRemoval);
        }
        self.keys.remove(pos);
        Ok(())
    }

    /// Seals `plain` with the primary key and a random nonce; returns `plain` unchanged when no
    /// key is installed.
    pub fn seal(&self, rng: &mut impl RngExt, plain: Vec<u8>) -> Vec<u8> {
        let Some(primary) = self.keys.first() else {
            return plain;
        };
        let nonce: [u8; NONCE_LEN] = rng.random();
        let sealed = match &primary.cipher {
            Cipher::Aes128(c) => c.encrypt(Nonce::from_slice(&nonce), plain.as_slice()),
            Cipher::Aes256(c) => c.encrypt(Nonce::from_slice(&nonce), plain.as_slice()),
        };
        // AES-GCM encryption only fails for messages larger than 64 GiB.
        let sealed = sealed.unwrap_or_default();
        let mut out = Vec::with_capacity(SEAL_OVERHEAD + plain.len());
        out.push(SEALED_VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens a sealed message with any installed key; returns `data` unchanged when no key is
    /// installed.
    ///
    /// # Errors
    /// [`Error::Decrypt`] if the message is not sealed, is truncated, or no key opens it.
    pub fn open(&self, data: &[u8]) -> Result<Vec<u8>> {
        if self.keys.is_empty() {
            return Ok(data.to_vec());
        }
        let Some((&version, rest)) = data.split_first() else {
            return Err(Error::Decrypt("empty message"));
        };
        if version != SEALED_VERSION {
            return Err(Error::Decrypt("message is not encrypted"));
        }
        if rest.len() < NONCE_LEN + TAG_LEN {
            return Err(Error::Decrypt("message is truncated"));
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::from_slice(nonce);
        for key in &self.keys {
            let opened = match &key.cipher {
                Cipher::Aes128(c) => c.decrypt(nonce, sealed),
                Cipher::Aes256(c) => c.decrypt(nonce, sealed),
            };
            if let Ok(plain) = opened {
                return Ok(plain);
            }
        }
        Err(Error::Decrypt("no installed key opens the message"))
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    #[test]
    fn a_message_sealed_with_the_primary_opens_with_a_ring_holding_it_as_secondary() {
        let mut rng = StdRng::seed_from_u64(1);
        let old = vec![1u8; 16];
        let new = vec![2u8; 32];
        let sender = Keyring::new(&[new.clone(), old.clone()]).unwrap();
        let receiver = Keyring::new(&[old, new]).unwrap();
        let sealed = sender.seal(&mut rng, b"hello".to_vec());
        assert_ne!(&sealed[SEAL_OVERHEAD - TAG_LEN..], b"hello");
        assert_eq!(receiver.open(&sealed).unwrap(), b"hello");
    }

    #[test]
    fn a_ring_without_the_key_rejects_the_message() {
        let mut rng = StdRng::seed_from_u64(1);
        let sender = Keyring::new(&[vec![1u8; 16]]).unwrap();
        let other = Keyring::new(&[vec![3u8; 16]]).unwrap();
        let sealed = sender.seal(&mut rng, b"hello".to_vec());
        assert!(matches!(other.open(&sealed), Err(Error::Decrypt(_))));
        assert!(matches!(other.open(b"plain"), Err(Error::Decrypt(_))));
        assert!(matches!(other.open(&sealed[..10]), Err(Error::Decrypt(_))));
    }

    #[test]
    fn rotation_changes_the_primary_and_refuses_to_remove_it() {
        let a = vec![1u8; 16];
        let b = vec![2u8; 16];
        let mut ring = Keyring::new(std::slice::from_ref(&a)).unwrap();
        ring.add(&b).unwrap();
        ring.set_primary(&b).unwrap();
        assert_eq!(ring.keys(), vec![b.clone(), a.clone()]);
        assert!(matches!(ring.remove(&b), Err(Error::PrimaryKeyRemoval)));
        ring.remove(&a).unwrap();
        assert_eq!(ring.keys(), vec![b]);
        assert!(matches!(ring.remove(&a), Err(Error::KeyNotFound(_))));
        assert!(matches!(ring.add(&[0; 5]), Err(Error::InvalidKey(5))));
    }

    #[test]
    fn an_empty_ring_passes_plain_text_through() {
        let mut rng = StdRng::seed_from_u64(1);
        let ring = Keyring::default();
        assert_eq!(ring.seal(&mut rng, b"x".to_vec()), b"x");
        assert_eq!(ring.open(b"x").unwrap(), b"x");
    }
}
