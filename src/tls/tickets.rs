//! The process's session-ticket keys: one ticketer shared by every worker and listener, so a
//! client resuming on another core (SO_REUSEPORT picks any) still resumes.
//!
//! Stateless tickets (RFC 5077 / RFC 8446 §4.6.1) encrypted with AES-256-GCM. The key rotates
//! every `TICKET_KEY_ROTATION`; the previous key still decrypts, so a ticket lives between one
//! and two rotation periods. Keys sit behind an `ArcSwap`: encrypting and decrypting take no
//! lock, and the handshake that notices the rotation is due swaps in the new key itself (no timer
//! thread). Keys live only in memory: a restart ends resumption, as with nginx's default.

use arc_swap::ArcSwap;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bytes naming a key at the front of each ticket, so decryption picks the right key.
const KEY_NAME_LEN: usize = 16;

struct Key {
    name: [u8; KEY_NAME_LEN],
    aead: LessSafeKey,
}

impl Key {
    fn generate(rng: &SystemRandom) -> Option<Key> {
        let mut name = [0u8; KEY_NAME_LEN];
        let mut secret = [0u8; 32];
        rng.fill(&mut name).ok()?;
        rng.fill(&mut secret).ok()?;
        let aead = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &secret).ok()?);
        Some(Key { name, aead })
    }
}

struct Keys {
    current: Arc<Key>,
    previous: Option<Arc<Key>>,
    rotate_at: Instant,
}

/// Rotating ticket keys; `Debug` shows no key material.
pub struct Ticketer {
    keys: ArcSwap<Keys>,
    rotation: Duration,
    rng: SystemRandom,
}

impl std::fmt::Debug for Ticketer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticketer")
            .field("rotation", &self.rotation)
            .finish_non_exhaustive()
    }
}

/// The process's one ticketer, made on first use: every listener, worker and config version
/// shares it, so tickets survive reloads and resume on any core.
pub fn process_ticketer() -> Result<Arc<dyn rustls::server::ProducesTickets>, String> {
    static ONE: std::sync::OnceLock<Arc<Ticketer>> = std::sync::OnceLock::new();
    if let Some(t) = ONE.get() {
        return Ok(t.clone());
    }
    let t = Ticketer::new(crate::config::defaults::TICKET_KEY_ROTATION)?;
    Ok(ONE.get_or_init(|| t).clone())
}

impl Ticketer {
    pub fn new(rotation: Duration) -> Result<Arc<Ticketer>, String> {
        let rng = SystemRandom::new();
        let current = Key::generate(&rng).ok_or("cannot generate a session ticket key")?;
        Ok(Arc::new(Ticketer {
            keys: ArcSwap::from_pointee(Keys {
                current: Arc::new(current),
                previous: None,
                rotate_at: Instant::now() + rotation,
            }),
            rotation,
            rng,
        }))
    }

    /// Replaces the current key when it is due; a lost race means another thread just did it.
    fn rotate_if_due(&self) {
        let now = Instant::now();
        let keys = self.keys.load();
        if now < keys.rotate_at {
            return;
        }
        let Some(fresh) = Key::generate(&self.rng) else {
            return; // keep the old key rather than stop issuing tickets
        };
        let next = Arc::new(Keys {
            current: Arc::new(fresh),
            previous: Some(keys.current.clone()),
            rotate_at: now + self.rotation,
        });
        let _ = self.keys.compare_and_swap(&*keys, next);
    }
}

impl rustls::server::ProducesTickets for Ticketer {
    fn enabled(&self) -> bool {
        true
    }

    /// The lifetime hint sent to clients: a ticket is guaranteed to decrypt for one rotation.
    fn lifetime(&self) -> u32 {
        u32::try_from(self.rotation.as_secs()).unwrap_or(u32::MAX)
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.rotate_if_due();
        let keys = self.keys.load();
        let key = &keys.current;
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).ok()?;
        let mut out =
            Vec::with_capacity(KEY_NAME_LEN + NONCE_LEN + plain.len() + AES_256_GCM.tag_len());
        out.extend_from_slice(&key.name);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plain);
        let (head, body) = out.split_at_mut(KEY_NAME_LEN + NONCE_LEN);
        let tag = key
            .aead
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&head[..KEY_NAME_LEN]),
                body,
            )
            .ok()?;
        out.extend_from_slice(tag.as_ref());
        Some(out)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        if cipher.len() < KEY_NAME_LEN + NONCE_LEN + AES_256_GCM.tag_len() {
            return None;
        }
        let (name, rest) = cipher.split_at(KEY_NAME_LEN);
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let keys = self.keys.load();
        let key = std::iter::once(&keys.current)
            .chain(keys.previous.iter())
            .find(|k| k.name[..] == *name)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = sealed.to_vec();
        let plain_len = key
            .aead
            .open_in_place(nonce, Aad::from(name), &mut buf)
            .ok()?
            .len();
        buf.truncate(plain_len);
        Some(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::server::ProducesTickets;

    #[test]
    fn round_trip_and_tamper() {
        let t = Ticketer::new(Duration::from_secs(3600)).unwrap();
        let c = t.encrypt(b"session state").unwrap();
        assert_eq!(t.decrypt(&c).unwrap(), b"session state");
        let mut bad = c.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(t.decrypt(&bad).is_none());
        assert!(t.decrypt(&c[..20]).is_none());
        assert!(t.decrypt(b"").is_none());
    }

    #[test]
    fn previous_key_decrypts_after_one_rotation_not_two() {
        let t = Ticketer::new(Duration::from_millis(20)).unwrap();
        let old = t.encrypt(b"a").unwrap();
        std::thread::sleep(Duration::from_millis(30));
        let newer = t.encrypt(b"b").unwrap(); // rotates
        assert_ne!(old[..KEY_NAME_LEN], newer[..KEY_NAME_LEN]);
        assert_eq!(t.decrypt(&old).unwrap(), b"a");
        std::thread::sleep(Duration::from_millis(30));
        let _ = t.encrypt(b"c"); // rotates again: the first key is gone
        assert!(t.decrypt(&old).is_none());
        assert_eq!(t.decrypt(&newer).unwrap(), b"b");
    }

    #[test]
    fn shared_across_threads() {
        let t = Ticketer::new(Duration::from_secs(3600)).unwrap();
        let c = std::thread::scope(|s| s.spawn(|| t.encrypt(b"x").unwrap()).join().unwrap());
        assert_eq!(t.decrypt(&c).unwrap(), b"x");
    }
}
