//! A per-worker memory of Basic credentials already checked, because bcrypt is slow on purpose.

use ring::hmac;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// Entries per worker: 1024 × 56 bytes ≈ 56 KiB, plenty for the clients one core serves.
pub const CACHE_SLOTS: usize = 1024;
/// How long a verdict is trusted; a password removed from htpasswd takes effect at reload anyway.
pub const CACHE_TTL: Duration = Duration::from_secs(5 * 60);

/// Verified (and refused) Basic credentials, so a client sending the same `Authorization` on
/// every request costs one bcrypt run per `CACHE_TTL`, not one per request (50-250 ms each).
///
/// Keyed by HMAC-SHA256 of rule id + user + password under a random per-cache key: neither the
/// plaintext nor an unsalted, offline-crackable hash is kept. Direct-mapped and fixed-size, so it
/// is bounded and never allocates after `new`; a collision simply evicts. Not shared between
/// workers (no locking): one per worker thread.
pub struct AuthCache {
    key: hmac::Key,
    slots: Box<[Slot]>,
    ttl: Duration,
    hits: u64,
    misses: u64,
}

#[derive(Clone, Copy)]
struct Slot {
    tag: [u8; 32],
    /// `None` = empty.
    expires: Option<Instant>,
    ok: bool,
}

impl AuthCache {
    /// `CACHE_SLOTS` entries trusted for `CACHE_TTL`.
    pub fn new() -> AuthCache {
        AuthCache::with_limits(CACHE_SLOTS, CACHE_TTL)
    }

    /// A cache of `slots` entries (at least one) each trusted for `ttl`.
    pub fn with_limits(slots: usize, ttl: Duration) -> AuthCache {
        let rng = ring::rand::SystemRandom::new();
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &rng)
            .expect("the OS random source (getrandom) is available");
        let empty = Slot {
            tag: [0; 32],
            expires: None,
            ok: false,
        };
        AuthCache {
            key,
            slots: vec![empty; slots.max(1)].into_boxed_slice(),
            ttl,
            hits: 0,
            misses: 0,
        }
    }

    /// Lookups answered from the cache (for metrics).
    pub fn hits(&self) -> u64 {
        self.hits
    }

    /// Lookups that had to run bcrypt (for metrics).
    pub fn misses(&self) -> u64 {
        self.misses
    }

    /// The cache key of one credential for one rule; lengths are framed so `ab`+`c` ≠ `a`+`bc`.
    pub(super) fn tag(&self, rule: u64, user: &[u8], password: &[u8]) -> [u8; 32] {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(&rule.to_le_bytes());
        ctx.update(&(user.len() as u64).to_le_bytes());
        ctx.update(user);
        ctx.update(password);
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.sign().as_ref());
        out
    }

    /// The remembered verdict for `tag`, if still fresh.
    pub(super) fn get(&mut self, tag: &[u8; 32], now: Instant) -> Option<bool> {
        let slot = &self.slots[index(tag, self.slots.len())];
        let fresh = slot.expires.is_some_and(|e| now < e);
        if fresh && bool::from(slot.tag.ct_eq(tag)) {
            self.hits += 1;
            Some(slot.ok)
        } else {
            self.misses += 1;
            None
        }
    }

    /// Remembers a verdict, replacing whatever shared the slot.
    pub(super) fn put(&mut self, tag: [u8; 32], ok: bool, now: Instant) {
        let i = index(&tag, self.slots.len());
        self.slots[i] = Slot {
            tag,
            expires: now.checked_add(self.ttl),
            ok,
        };
    }
}

impl Default for AuthCache {
    fn default() -> Self {
        AuthCache::new()
    }
}

impl std::fmt::Debug for AuthCache {
    // By hand: the HMAC key and tags stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthCache")
            .field("slots", &self.slots.len())
            .field("ttl", &self.ttl)
            .field("hits", &self.hits)
            .field("misses", &self.misses)
            .finish()
    }
}

/// The slot of a tag: its first 8 bytes are uniformly random already.
fn index(tag: &[u8; 32], len: usize) -> usize {
    let mut first = [0u8; 8];
    first.copy_from_slice(&tag[..8]);
    (u64::from_le_bytes(first) % len as u64) as usize
}
