//! Loading a certificate chain and its private key from PEM files, and checking that they
//! belong together. Used by `check` (errors become file:line:col messages) and at start and
//! reload (errors keep the old certificates serving).

use super::x509::{self, CertInfo};
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

/// Largest certificate, key or CA file read: a wrong path to a huge file should fail fast.
pub const MAX_PEM_FILE: u64 = 4 * 1024 * 1024;

/// The process's crypto: rustls on ring (no aws-lc-rs, no cmake), its safe default suites.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate ready to serve.
#[derive(Debug)]
pub struct Loaded {
    pub key: Arc<CertifiedKey>,
    pub info: CertInfo,
}

impl Loaded {
    /// The names this certificate serves: its SAN DNS names, else its common name.
    pub fn names(&self) -> Vec<String> {
        if self.info.dns_names.is_empty() {
            self.info
                .common_name
                .iter()
                .map(|n| n.to_ascii_lowercase())
                .collect()
        } else {
            self.info.dns_names.clone()
        }
    }
}

/// Reads a PEM file (bounded in size).
pub fn read(path: &Path) -> Result<Vec<u8>, String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("cannot read {shown}: not a regular file"));
    }
    if meta.len() > MAX_PEM_FILE {
        return Err(format!(
            "{shown} is larger than {MAX_PEM_FILE} bytes; not a PEM file"
        ));
    }
    std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))
}

/// Every CERTIFICATE block of a PEM file, in order; at least one.
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = read(path)?;
    let shown = path.display();
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{shown}: bad PEM: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{shown}: no CERTIFICATE block"));
    }
    Ok(certs)
}

/// Loads `cert` (the leaf first, then intermediates) and `key`, and checks that the key is the
/// certificate's.
pub fn load(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<Loaded, String> {
    let chain = certificates(cert)?;
    let info = x509::parse(&chain[0]).ok_or_else(|| {
        format!(
            "{}: the first certificate is not readable X.509",
            cert.display()
        )
    })?;
    let pem = read(key)?;
    let shown = key.display();
    if String::from_utf8_lossy(&pem).contains("ENCRYPTED PRIVATE KEY") {
        return Err(format!(
            "{shown}: the private key is encrypted; give an unencrypted key (chmod 600)"
        ));
    }
    let der = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        format!("{shown}: no private key (PKCS#8, PKCS#1 RSA or SEC1 EC PEM block): {e}")
    })?;
    let signing = provider
        .key_provider
        .load_private_key(der)
        .map_err(|e| format!("{shown}: unusable private key: {e}"))?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err(format!(
                "the private key in {shown} does not match the certificate in {}",
                cert.display()
            ))
        }
        Err(e) => return Err(format!("{}: {e}", cert.display())),
    }
    Ok(Loaded {
        key: Arc::new(certified),
        info,
    })
}

/// A root store from a PEM bundle of CA certificates.
pub fn roots(path: &Path) -> Result<rustls::RootCertStore, String> {
    let mut store = rustls::RootCertStore::empty();
    for (i, c) in certificates(path)?.into_iter().enumerate() {
        store.add(c).map_err(|e| {
            format!(
                "{}: certificate {} is not a usable CA: {e}",
                path.display(),
                i + 1
            )
        })?;
    }
    Ok(store)
}

/// The system's CA certificates (the distribution's bundle, as openssl finds it).
pub fn system_roots() -> Result<rustls::RootCertStore, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut store = rustls::RootCertStore::empty();
    let (added, _) = store.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map_or_else(|| "none found".to_string(), |e| e.to_string());
        return Err(format!(
            "no system CA certificates ({why}); set upstream.tls.ca"
        ));
    }
    Ok(store)
}

/// Seconds since the Unix epoch now.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
