//! JWT verification keys from PEM: which kind of key a file holds, and its raw form for ring.
//!
//! A small DER walk rather than a full ASN.1 library: only SubjectPublicKeyInfo (inside a
//! `PUBLIC KEY` block or a `CERTIFICATE`) and PKCS#1 `RSA PUBLIC KEY` are read, which is what
//! `openssl pkey -pubout` and identity providers hand out. Runs at config load only.

/// rsaEncryption, 1.2.840.113549.1.1.1.
const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// id-ecPublicKey, 1.2.840.10045.2.1.
const OID_EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// prime256v1 / P-256, 1.2.840.10045.3.1.7.
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// secp384r1 / P-384, 1.3.132.0.34 (named in errors only).
const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
/// Ed25519, 1.3.101.112 (named in errors only).
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];

/// Smallest RSA modulus ring verifies RS256 with (`RSA_PKCS1_2048_8192_SHA256`).
pub const RSA_MIN_BITS: usize = 2048;
/// Largest RSA modulus ring verifies RS256 with.
pub const RSA_MAX_BITS: usize = 8192;
/// An uncompressed P-256 point: 0x04, then X and Y of 32 bytes each.
const P256_POINT_LEN: usize = 65;

const TAG_INTEGER: u8 = 0x02;
const TAG_BIT_STRING: u8 = 0x03;
const TAG_OID: u8 = 0x06;
const TAG_SEQUENCE: u8 = 0x30;
/// `[0] EXPLICIT Version` at the head of a certificate's TBSCertificate.
const TAG_CERT_VERSION: u8 = 0xa0;

/// A public key as found in a PEM file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// PKCS#1 `RSAPublicKey` DER and the modulus size in bits.
    Rsa { der: Vec<u8>, bits: usize },
    /// An uncompressed SEC1 point on P-256.
    EcP256(Vec<u8>),
    /// A key of a kind JWT routes cannot use; the text names it for the error.
    Unsupported(&'static str),
}

impl PublicKey {
    /// What the key is, for messages ("an RSA 2048-bit key").
    pub fn describe(&self) -> String {
        match self {
            PublicKey::Rsa { bits, .. } => format!("an RSA {bits}-bit key"),
            PublicKey::EcP256(_) => "an EC P-256 key".into(),
            PublicKey::Unsupported(what) => (*what).into(),
        }
    }
}

/// Reads the first public key or certificate of a PEM text. Errors are short phrases meant to
/// follow the file name; they never quote the file's content.
pub fn parse_public_key_pem(text: &[u8]) -> Result<PublicKey, String> {
    let blocks = pem::parse_many(text).map_err(|e| format!("not valid PEM: {e}"))?;
    if blocks.is_empty() {
        return Err("not valid PEM: no -----BEGIN block".into());
    }
    if blocks.iter().any(|b| b.tag().contains("PRIVATE KEY")) {
        return Err("holds a private key; give the public key (openssl pkey -pubout)".into());
    }
    let block = blocks
        .iter()
        .find(|b| matches!(b.tag(), "PUBLIC KEY" | "RSA PUBLIC KEY" | "CERTIFICATE"))
        .ok_or("has no PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE block")?;
    let der = block.contents();
    let parsed = match block.tag() {
        "RSA PUBLIC KEY" => only(der).and_then(rsa_key),
        "PUBLIC KEY" => only(der)
            .and_then(|d| tlv(d, TAG_SEQUENCE))
            .and_then(|(spki, _)| spki_key(spki)),
        _ => only(der).and_then(certificate_key),
    };
    parsed.map_err(|e| format!("malformed {}: {e}", block.tag()))
}

/// The SubjectPublicKeyInfo inside an X.509 certificate (RFC 5280 §4.1).
fn certificate_key(der: &[u8]) -> Result<PublicKey, &'static str> {
    let (cert, _) = tlv(der, TAG_SEQUENCE)?;
    let (mut tbs, _) = tlv(cert, TAG_SEQUENCE)?;
    if tbs.first() == Some(&TAG_CERT_VERSION) {
        tbs = any_tlv(tbs)?.2;
    }
    // serialNumber, signature, issuer, validity, subject; then subjectPublicKeyInfo.
    for _ in 0..5 {
        tbs = any_tlv(tbs)?.2;
    }
    let (spki, _) = tlv(tbs, TAG_SEQUENCE)?;
    spki_key(spki)
}

/// SubjectPublicKeyInfo contents: `SEQUENCE { algorithm, BIT STRING key }` (RFC 5280 §4.1.2.7).
fn spki_key(spki: &[u8]) -> Result<PublicKey, &'static str> {
    let (alg, rest) = tlv(spki, TAG_SEQUENCE)?;
    let (bits, _) = tlv(rest, TAG_BIT_STRING)?;
    let key = match bits.split_first() {
        Some((0, key)) => key,
        _ => return Err("key bit string has unused bits"),
    };
    let (oid, params) = tlv(alg, TAG_OID)?;
    if oid == OID_RSA {
        rsa_key(key)
    } else if oid == OID_EC {
        let (curve, _) = tlv(params, TAG_OID)?;
        if curve == OID_P256 {
            if key.len() != P256_POINT_LEN || key[0] != 0x04 {
                return Err("P-256 point is not uncompressed");
            }
            Ok(PublicKey::EcP256(key.to_vec()))
        } else if curve == OID_P384 {
            Ok(PublicKey::Unsupported("an EC P-384 key"))
        } else {
            Ok(PublicKey::Unsupported("an EC key on an unsupported curve"))
        }
    } else if oid == OID_ED25519 {
        Ok(PublicKey::Unsupported("an Ed25519 key"))
    } else {
        Ok(PublicKey::Unsupported("a key of an unknown type"))
    }
}

/// PKCS#1 `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }`.
fn rsa_key(der: &[u8]) -> Result<PublicKey, &'static str> {
    let (seq, _) = tlv(der, TAG_SEQUENCE)?;
    let (n, rest) = tlv(seq, TAG_INTEGER)?;
    tlv(rest, TAG_INTEGER)?;
    let n = &n[n.iter().take_while(|&&b| b == 0).count()..];
    let bits = match n.first() {
        Some(&top) => n.len() * 8 - top.leading_zeros() as usize,
        None => return Err("RSA modulus is zero"),
    };
    // The whole `RSAPublicKey` element, tag and length included, is what ring takes.
    let whole = der.len() - any_tlv(der)?.2.len();
    Ok(PublicKey::Rsa {
        der: der[..whole].to_vec(),
        bits,
    })
}

/// The block's DER, refused if anything follows its one top-level element.
fn only(der: &[u8]) -> Result<&[u8], &'static str> {
    if any_tlv(der)?.2.is_empty() {
        Ok(der)
    } else {
        Err("trailing bytes after the DER element")
    }
}

/// One element with the expected tag: (contents, what follows).
fn tlv(der: &[u8], tag: u8) -> Result<(&[u8], &[u8]), &'static str> {
    let (t, contents, rest) = any_tlv(der)?;
    if t != tag {
        return Err("unexpected DER element");
    }
    Ok((contents, rest))
}

/// One DER element: (tag, contents, what follows). Lengths up to 4 bytes; bounds checked.
fn any_tlv(der: &[u8]) -> Result<(u8, &[u8], &[u8]), &'static str> {
    const TRUNCATED: &str = "truncated DER";
    let (&tag, rest) = der.split_first().ok_or(TRUNCATED)?;
    let (&first, mut rest) = rest.split_first().ok_or(TRUNCATED)?;
    let len = if first < 0x80 {
        first as usize
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return Err("bad DER length");
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | b as usize);
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return Err(TRUNCATED);
    }
    Ok((tag, &rest[..len], &rest[len..]))
}
