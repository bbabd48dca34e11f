//! JSON Web Tokens as the gateway sees them: parsing, key sets (JWKS) with RSA keys decoded once
//! per `kid`, RS256 verification, and signing for test tokens.
//!
//! Hand-rolled on purpose around AWS-LC and RustCrypto's `rsa` (see [`VerifyingKey`]): `jsonwebtoken` rebuilds the RSA public key on
//! every verification and folds every failure into its own validation rules, while the simulator
//! needs APIM's rejection reasons (unknown `kid`, `alg: none`, HMAC with a public key…) and a warm
//! key set to keep decisions close to the raw verify rate.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::traits::PublicKeyParts;
use rsa::{BoxedUint, Pkcs1v15Sign, PrivateKey, PublicKey};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The largest token read. Entra access tokens are a few KB (group overage keeps even a member of
/// many groups small); anything four times larger is refused as malformed rather than decoded.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The largest JWKS document read. Entra's key sets hold a handful of 2048-bit keys, about 2 KB
/// each.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;

/// Keys in one JWKS document: Entra publishes fewer than ten at a time.
pub const MAX_JWKS_KEYS: usize = 64;

/// The header fields a token check reads; any other member is ignored, any JSON type accepted
/// here and judged by the caller (a non-string `alg` is "no `alg`", a non-string `kid` none).
#[derive(Deserialize)]
struct Header {
    #[serde(default)]
    alg: Option<Value>,
    #[serde(default)]
    kid: Option<Value>,
}

/// A token split into its parts; nothing in it is trusted until verified.
#[derive(Debug, Clone)]
pub struct Jwt {
    pub alg: String,
    pub kid: Option<String>,
    pub claims: Map<String, Value>,
    /// The compact token; its first `signed_len` bytes (`header.payload`) are what is signed.
    compact: String,
    signed_len: usize,
    signature: Vec<u8>,
}

impl Jwt {
    /// Parses a compact JWS. Errors say what is malformed, never the token itself.
    /// Nesting in the header and payload is bounded by `serde_json`'s recursion limit (128).
    pub fn parse(token: &str) -> Result<Jwt, String> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(format!(
                "the token is {} bytes; a JWT over {MAX_TOKEN_BYTES} bytes is refused (Entra tokens are a few KB)",
                token.len()
            ));
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(format!(
                "a JWT has three dot-separated parts, this one has {}",
                token.split('.').count()
            ));
        };
        let decode_json = |part: &str, what: &str| -> Result<Map<String, Value>, String> {
            let bytes = URL_SAFE_NO_PAD
                .decode(part.trim_end_matches('='))
                .map_err(|_| format!("the {what} is not base64url"))?;
            match serde_json::from_slice(&bytes) {
                Ok(Value::Object(map)) => Ok(map),
                _ => Err(format!("the {what} is not a JSON object")),
            }
        };
        let header_bytes = URL_SAFE_NO_PAD
            .decode(header.trim_end_matches('='))
            .map_err(|_| "the header is not base64url".to_owned())?;
        // Typed: only `alg` and `kid` are read from the header, and a map of it was a sixth of
        // a token check's work outside the RSA verification.
        let not_object = || "the header is not a JSON object".to_owned();
        // A struct also deserializes from a JSON array (by position); a header must be an object.
        if header_bytes.trim_ascii_start().first() != Some(&b'{') {
            return Err(not_object());
        }
        let header_fields: Header =
            serde_json::from_slice(&header_bytes).map_err(|_| not_object())?;
        let claims = decode_json(payload, "payload")?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature.trim_end_matches('='))
            .map_err(|_| "the signature is not base64url".to_owned())?;
        let alg = match header_fields.alg {
            Some(Value::String(alg)) => alg,
            _ => return Err("the header has no `alg`".to_owned()),
        };
        let kid = match header_fields.kid {
            Some(Value::String(kid)) => Some(kid),
            _ => None,
        };
        Ok(Jwt {
            alg,
            kid,
            claims,
            compact: token.to_owned(),
            signed_len: header.len() + 1 + payload.len(),
            signature,
        })
    }

    pub fn claim_str(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    /// A time claim (`exp`, `nbf`, `iat`) as Unix seconds: `Ok(None)` when absent, an error
    /// naming the claim when it is not a whole number of seconds from 1970 to the end of 9999.
    /// RFC 7519 allows fractions, but Entra never issues them, and an absurd instant only makes
    /// the lifetime arithmetic overflow.
    pub fn time_claim(&self, name: &str) -> Result<Option<i64>, String> {
        let Some(value) = self.claims.get(name) else {
            return Ok(None);
        };
        let seconds = match value {
            Value::Number(n) => n.as_i64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 1e18)
                    .map(|f| f as i64)
            }),
            _ => None,
        };
        match seconds {
            Some(s) if (0..=MAX_NUMERIC_DATE).contains(&s) => Ok(Some(s)),
            _ => Err(format!(
                "claim `{name}` must be a whole number of seconds from 0 to {MAX_NUMERIC_DATE} (9999-12-31T23:59:59Z), not {}",
                shown_json(value)
            )),
        }
    }

    pub fn signing_input(&self) -> &[u8] {
        &self.compact.as_bytes()[..self.signed_len]
    }

    pub fn signature(&self) -> &[u8] {
        &self.signature
    }
}

/// 9999-12-31T23:59:59Z in Unix seconds: the last instant a time claim may name.
pub const MAX_NUMERIC_DATE: i64 = 253_402_300_799;

/// A claim value in an error: numbers and short strings as they are, anything else by its kind,
/// so a detail stays one short line.
fn shown_json(value: &Value) -> String {
    match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) if s.chars().count() <= 40 => format!("\"{s}\""),
        Value::String(_) => "a long string".to_owned(),
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

/// Why a signature did not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    KeyNotFound,
    SignatureInvalid,
}

/// One JWK as published at an Entra `jwks_uri`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Jwk {
    pub kty: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub key_use: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

/// A JWKS document could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", location.map(|(l, c)| format!("{l}:{c}: ")).unwrap_or_default())]
pub struct JwksError {
    pub location: Option<(usize, usize)>,
    pub message: String,
}

/// RSA verification keys by `kid`, decoded once; cloning shares them (a gateway hands the same
/// key sets to every request's simulator).
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: Arc<BTreeMap<String, VerifyingKey>>,
    jwks: Arc<Vec<Jwk>>,
}

/// One key, in the form that verifies fastest. AWS-LC (`aws-lc-rs`, rustls' default provider,
/// the BoringSSL lineage with OpenSSL's assembly) verifies RS256 with a key parsed once: its
/// Montgomery form is computed on the first verification and kept in the key. ring cannot keep
/// one (its public API rebuilds the modulus' Montgomery constants on every call), which left it at
/// about 0.79 of `openssl speed rsa2048`'s verify rate before any token handling (issue 12's
/// measurements; `benches/rsa_ratio.sh` reproduces the comparison). AWS-LC, like ring, takes
/// moduli of 2048 to 8192 bits only; a smaller key (which Microsoft.IdentityModel still accepts
/// for verification, from 1024 bits) keeps RustCrypto's `rsa`, so a key set that verified
/// before still does.
#[derive(Debug, Clone)]
enum VerifyingKey {
    AwsLc(aws_lc_rs::signature::ParsedPublicKey),
    Rsa(PublicKey),
}

/// The smallest modulus AWS-LC's `RSA_PKCS1_2048_8192_SHA256` accepts.
const FAST_MIN_MODULUS_BITS: u32 = 2048;

impl KeySet {
    /// Refuses documents over [`MAX_JWKS_BYTES`] or [`MAX_JWKS_KEYS`]; nesting is bounded by
    /// `serde_json`'s recursion limit (128).
    pub fn from_json(text: &str) -> Result<KeySet, JwksError> {
        if text.len() > MAX_JWKS_BYTES {
            return Err(JwksError {
                location: None,
                message: format!(
                    "the key set is larger than {MAX_JWKS_BYTES} bytes; Entra's are a few KB"
                ),
            });
        }
        let jwks: Jwks = serde_json::from_str(text).map_err(|e| JwksError {
            location: Some((e.line(), e.column())),
            message: format!("not a JWKS document ({{\"keys\": [...]}}): {e}"),
        })?;
        KeySet::from_jwks(jwks)
    }

    pub fn from_jwks(jwks: Jwks) -> Result<KeySet, JwksError> {
        if jwks.keys.len() > MAX_JWKS_KEYS {
            return Err(JwksError {
                location: None,
                message: format!(
                    "the key set has {} keys; at most {MAX_JWKS_KEYS} are read (Entra publishes fewer than ten)",
                    jwks.keys.len()
                ),
            });
        }
        let mut keys = BTreeMap::new();
        for (i, jwk) in jwks.keys.iter().enumerate() {
            let fail = |message: String| JwksError {
                location: None,
                message: format!("keys[{i}]: {message}"),
            };
            if jwk.kty != "RSA" {
                // Entra publishes RSA keys only; other key types cannot verify RS256 and are skipped.
                continue;
            }
            let kid = jwk
                .kid
                .clone()
                .ok_or_else(|| fail("an RSA key without `kid` cannot be selected".to_owned()))?;
            let component = |v: &Option<String>, name: &str| -> Result<Vec<u8>, JwksError> {
                let text = v
                    .as_deref()
                    .ok_or_else(|| fail(format!("missing `{name}`")))?;
                URL_SAFE_NO_PAD
                    .decode(text.trim_end_matches('='))
                    .map_err(|_| fail(format!("`{name}` is not base64url")))
            };
            let (n, e) = (component(&jwk.n, "n")?, component(&jwk.e, "e")?);
            let key = PublicKey::new(
                BoxedUint::from_be_slice_vartime(&n),
                BoxedUint::from_be_slice_vartime(&e),
            )
            .map_err(|err| fail(format!("not a usable RSA key: {err}")))?;
            let key = if key.n().bit_width() >= FAST_MIN_MODULUS_BITS {
                let strip = |bytes: &[u8]| -> Vec<u8> {
                    let zeros = bytes.iter().take_while(|b| **b == 0).count();
                    bytes[zeros..].to_vec()
                };
                let components = aws_lc_rs::signature::RsaPublicKeyComponents {
                    n: strip(&n),
                    e: strip(&e),
                };
                match components
                    .to_parsed_public_key(&aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256)
                {
                    Ok(parsed) => VerifyingKey::AwsLc(parsed),
                    // Over 8192 bits or an exponent AWS-LC refuses: RustCrypto decides, as before.
                    Err(_) => VerifyingKey::Rsa(key),
                }
            } else {
                VerifyingKey::Rsa(key)
            };
            keys.insert(kid, key);
        }
        Ok(KeySet {
            keys: Arc::new(keys),
            jwks: Arc::new(jwks.keys),
        })
    }

    pub fn contains(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn to_jwks(&self) -> Jwks {
        Jwks {
            keys: self.jwks.as_ref().clone(),
        }
    }

    /// Verifies an RS256 signature with the key named by `kid`.
    pub fn verify_rs256(
        &self,
        kid: &str,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), VerifyError> {
        let verified = match self.keys.get(kid).ok_or(VerifyError::KeyNotFound)? {
            VerifyingKey::AwsLc(key) => key.verify_sig(message, signature).is_ok(),
            VerifyingKey::Rsa(key) => key
                .verify(
                    Pkcs1v15Sign::new::<Sha256>(),
                    &Sha256::digest(message),
                    signature,
                )
                .is_ok(),
        };
        if verified {
            Ok(())
        } else {
            Err(VerifyError::SignatureInvalid)
        }
    }
}

/// Signs RS256 tokens with one key: used for test tokens and, later, by the sandbox.
pub struct TokenSigner {
    pub kid: String,
    /// ring signs about 3.5 times faster than `rsa` (0.6 ms against 2.3 ms per 2048-bit
    /// signature here), which is what bounds the sandbox's token endpoint; `rsa` still generates
    /// and encodes the keys, which ring cannot.
    key: ring::signature::RsaKeyPair,
    private: PrivateKey,
    public: PublicKey,
}

impl TokenSigner {
    /// A fresh 2048-bit key (the size Entra uses), from the caller's randomness.
    pub fn generate<R: rsa::rand_core::TryCryptoRng + ?Sized>(
        rng: &mut R,
        kid: &str,
    ) -> Result<TokenSigner, String> {
        let private =
            PrivateKey::new(rng, 2048).map_err(|e| format!("cannot generate an RSA key: {e}"))?;
        Ok(TokenSigner::from_private(private, kid))
    }

    fn from_private(private: PrivateKey, kid: &str) -> TokenSigner {
        use rsa::pkcs8::EncodePrivateKey;
        let public = private.to_public_key();
        let der = private
            .to_pkcs8_der()
            .expect("an RSA key encodes as PKCS#8");
        let key = ring::signature::RsaKeyPair::from_pkcs8(der.as_bytes())
            .expect("ring reads the key rsa wrote");
        TokenSigner {
            kid: kid.to_owned(),
            key,
            private,
            public,
        }
    }

    /// A signer from a stored PKCS#8 DER key (the sandbox persists its keys this way).
    pub fn from_pkcs8_der(der: &[u8], kid: &str) -> Result<TokenSigner, String> {
        use rsa::pkcs8::DecodePrivateKey;
        let private =
            PrivateKey::from_pkcs8_der(der).map_err(|e| format!("not a PKCS#8 RSA key: {e}"))?;
        Ok(TokenSigner::from_private(private, kid))
    }

    pub fn to_pkcs8_der(&self) -> Vec<u8> {
        use rsa::pkcs8::EncodePrivateKey;
        self.private
            .to_pkcs8_der()
            .map(|d| d.as_bytes().to_vec())
            .unwrap_or_default()
    }

    /// Verifies an RS256 signature made with this key.
    /// ring keeps the key pair's public half DER-encoded from loading, so nothing is rebuilt here
    /// beyond what ring's verify does anyway; ring only loads keys of 2048 bits and more, which is
    /// what `RSA_PKCS1_2048_8192_SHA256` asks for.
    pub fn verify_rs256(&self, message: &[u8], signature: &[u8]) -> bool {
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            self.key.public().as_ref(),
        )
        .verify(message, signature)
        .is_ok()
    }

    /// The public half as a JWK.
    pub fn jwk(&self) -> Jwk {
        Jwk {
            kty: "RSA".to_owned(),
            kid: Some(self.kid.clone()),
            key_use: Some("sig".to_owned()),
            n: Some(URL_SAFE_NO_PAD.encode(self.public.n().to_be_bytes())),
            e: Some(
                URL_SAFE_NO_PAD.encode(
                    self.public
                        .e()
                        .to_be_bytes()
                        .iter()
                        .skip_while(|b| **b == 0)
                        .copied()
                        .collect::<Vec<_>>(),
                ),
            ),
        }
    }

    /// The public key's modulus, for building forged tokens in tests (HMAC keyed with it).
    pub fn public_modulus(&self) -> Vec<u8> {
        self.public.n().to_be_bytes().to_vec()
    }

    /// A signed compact JWS with this key's `kid`.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with_header(
            &serde_json::json!({ "typ": "JWT", "alg": "RS256", "kid": self.kid }),
            claims,
        )
    }

    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        let input = format!("{}.{}", encode_json(header), encode_json(claims));
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                input.as_bytes(),
                &mut signature,
            )
            .expect("RSA signing with a valid key does not fail");
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

pub fn encode_json(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// An HS256 token: never valid for Entra, built to test that the gateway refuses it.
pub fn sign_hs256(secret: &[u8], header: &Value, claims: &Value) -> String {
    // HMAC-SHA256 (RFC 2104), written out because only tests of the refusal path need it.
    let mut key = if secret.len() > 64 {
        Sha256::digest(secret).to_vec()
    } else {
        secret.to_vec()
    };
    key.resize(64, 0);
    let ipad: Vec<u8> = key.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = key.iter().map(|b| b ^ 0x5c).collect();
    let input = format!("{}.{}", encode_json(header), encode_json(claims));
    let inner = Sha256::new()
        .chain_update(&ipad)
        .chain_update(input.as_bytes())
        .finalize();
    let mac = Sha256::new()
        .chain_update(&opad)
        .chain_update(inner)
        .finalize();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::OnceLock;

    /// One key per test process: generating RSA keys is the slow part.
    pub(crate) fn signer() -> &'static TokenSigner {
        static SIGNER: OnceLock<TokenSigner> = OnceLock::new();
        SIGNER.get_or_init(|| TokenSigner::generate(&mut getrandom::SysRng, "test-kid").unwrap())
    }

    #[test]
    fn signed_tokens_verify_and_tampered_ones_do_not() {
        let s = signer();
        let keys = KeySet::from_jwks(Jwks {
            keys: vec![s.jwk()],
        })
        .unwrap();
        let token = s.sign(&serde_json::json!({"sub": "x"}));
        let jwt = Jwt::parse(&token).unwrap();
        assert_eq!(jwt.alg, "RS256");
        assert_eq!(
            keys.verify_rs256("test-kid", jwt.signing_input(), jwt.signature()),
            Ok(())
        );
        assert_eq!(
            keys.verify_rs256("other", jwt.signing_input(), jwt.signature()),
            Err(VerifyError::KeyNotFound)
        );
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = encode_json(&serde_json::json!({"sub": "y"}));
        parts[1] = &forged;
        let tampered = Jwt::parse(&parts.join(".")).unwrap();
        assert_eq!(
            keys.verify_rs256("test-kid", tampered.signing_input(), tampered.signature()),
            Err(VerifyError::SignatureInvalid)
        );
    }

    #[test]
    fn jwk_round_trips_through_json() {
        let s = signer();
        let text = serde_json::to_string(&Jwks {
            keys: vec![s.jwk()],
        })
        .unwrap();
        assert!(KeySet::from_json(&text).unwrap().contains("test-kid"));
        assert_eq!(s.jwk().e.as_deref(), Some("AQAB"));
    }

    #[test]
    fn malformed_inputs_are_named() {
        assert_eq!(
            Jwt::parse("a.b").unwrap_err(),
            "a JWT has three dot-separated parts, this one has 2"
        );
        assert_eq!(
            Jwt::parse("!!.e30.").unwrap_err(),
            "the header is not base64url"
        );
        let err = KeySet::from_json("{\n  \"keys\": [1]\n}").unwrap_err();
        assert_eq!(err.location.map(|l| l.0), Some(2));
        let err =
            KeySet::from_json(r#"{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}"#).unwrap_err();
        assert_eq!(
            err.message,
            "keys[0]: an RSA key without `kid` cannot be selected"
        );
    }

    #[test]
    fn a_token_over_16_kib_is_malformed() {
        let claims = serde_json::json!({ "pad": "x".repeat(MAX_TOKEN_BYTES) });
        let token = signer().sign(&claims);
        assert_eq!(
            Jwt::parse(&token).unwrap_err(),
            format!(
                "the token is {} bytes; a JWT over 16384 bytes is refused (Entra tokens are a few KB)",
                token.len()
            )
        );
        let just_fits = format!(
            "{}.e30.",
            encode_json(
                &serde_json::json!({"alg": "RS256", "p": "x".repeat(MAX_TOKEN_BYTES * 3 / 4 - 40)})
            )
        );
        assert!(just_fits.len() <= MAX_TOKEN_BYTES, "{}", just_fits.len());
        assert!(Jwt::parse(&just_fits).is_ok());
    }

    #[test]
    fn json_nested_past_serde_json_recursion_limit_is_an_error_not_a_crash() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let payload = URL_SAFE_NO_PAD.encode(format!("{{\"a\":{}}}", &deep[..2_000 * 2]));
        assert_eq!(
            Jwt::parse(&format!("{payload}.e30.")).unwrap_err(),
            "the header is not a JSON object"
        );
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256"}"#);
        assert_eq!(
            Jwt::parse(&format!("{header}.{payload}.")).unwrap_err(),
            "the payload is not a JSON object"
        );
        // What `Jwt::parse` relies on: parsing into a `Value` stops at depth 128.
        let err = serde_json::from_str::<Value>(&deep).unwrap_err();
        assert_eq!(
            err.to_string(),
            "recursion limit exceeded at line 1 column 128"
        );
        // A key set is read into its own types: nesting where a key belongs is a type error,
        // and an unknown field is skipped without recursion, whatever its depth.
        let err = KeySet::from_json(&format!("{{\"keys\": {deep}}}")).unwrap_err();
        assert_eq!(err.location, Some((1, 11)));
        assert!(
            KeySet::from_json(&format!("{{\"pad\": {deep}, \"keys\": []}}"))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_jwks_over_its_size_or_key_count_is_refused() {
        let big = format!(
            "{{\"keys\": [], \"pad\": \"{}\"}}",
            "x".repeat(MAX_JWKS_BYTES)
        );
        assert_eq!(
            KeySet::from_json(&big).unwrap_err().to_string(),
            "the key set is larger than 262144 bytes; Entra's are a few KB"
        );
        let many = Jwks {
            keys: vec![signer().jwk(); MAX_JWKS_KEYS + 1],
        };
        assert_eq!(
            KeySet::from_json(&serde_json::to_string(&many).unwrap())
                .unwrap_err()
                .to_string(),
            "the key set has 65 keys; at most 64 are read (Entra publishes fewer than ten)"
        );
        let enough = Jwks {
            keys: vec![signer().jwk(); MAX_JWKS_KEYS],
        };
        assert!(KeySet::from_jwks(enough).is_ok());
    }

    fn key_set_of(jwk: Jwk) -> KeySet {
        KeySet::from_jwks(Jwks { keys: vec![jwk] }).unwrap()
    }

    /// The fast verifier is given `n` without leading zeros; a JWKS that pads the modulus with a
    /// zero byte (legal base64url of the same integer) must verify as it did with `rsa`.
    #[test]
    fn a_modulus_padded_with_a_zero_byte_still_verifies() {
        let s = signer();
        let mut jwk = s.jwk();
        let mut n = vec![0u8];
        n.extend(s.public_modulus());
        jwk.n = Some(URL_SAFE_NO_PAD.encode(&n));
        jwk.e = Some(URL_SAFE_NO_PAD.encode([0u8, 1, 0, 1]));
        let keys = key_set_of(jwk);
        assert!(matches!(keys.keys["test-kid"], VerifyingKey::AwsLc(_)));
        let jwt = Jwt::parse(&s.sign(&serde_json::json!({"sub": "x"}))).unwrap();
        assert_eq!(
            keys.verify_rs256("test-kid", jwt.signing_input(), jwt.signature()),
            Ok(())
        );
    }

    /// AWS-LC's `RSA_PKCS1_2048_8192_SHA256` refuses moduli under 2048 bits; a 1024-bit key
    /// (accepted for verification by Microsoft.IdentityModel) keeps verifying through `rsa`
    /// instead of turning every token it signed into an invalid signature.
    #[test]
    fn a_1024_bit_key_still_verifies_through_the_fallback() {
        let private = PrivateKey::new(&mut getrandom::SysRng, 1024).unwrap();
        let public = private.to_public_key();
        let jwk = Jwk {
            kty: "RSA".to_owned(),
            kid: Some("small".to_owned()),
            key_use: Some("sig".to_owned()),
            n: Some(URL_SAFE_NO_PAD.encode(public.n().to_be_bytes())),
            e: Some("AQAB".to_owned()),
        };
        let keys = key_set_of(jwk);
        assert!(matches!(keys.keys["small"], VerifyingKey::Rsa(_)));
        let input = format!(
            "{}.{}",
            encode_json(&serde_json::json!({"alg": "RS256", "kid": "small"})),
            encode_json(&serde_json::json!({"sub": "x"}))
        );
        let signature = private
            .sign(
                Pkcs1v15Sign::new::<Sha256>(),
                &Sha256::digest(input.as_bytes()),
            )
            .unwrap();
        assert_eq!(
            keys.verify_rs256("small", input.as_bytes(), &signature),
            Ok(())
        );
        assert_eq!(
            keys.verify_rs256("small", b"other input", &signature),
            Err(VerifyError::SignatureInvalid)
        );
    }

    /// A signature one byte short or long is refused, not read as a shorter or padded number.
    #[test]
    fn a_signature_of_the_wrong_length_is_invalid() {
        let s = signer();
        let keys = key_set_of(s.jwk());
        let jwt = Jwt::parse(&s.sign(&serde_json::json!({"sub": "x"}))).unwrap();
        let short = &jwt.signature()[1..];
        let mut long = jwt.signature().to_vec();
        long.insert(0, 0);
        for signature in [short, &long[..], &[][..]] {
            assert_eq!(
                keys.verify_rs256("test-kid", jwt.signing_input(), signature),
                Err(VerifyError::SignatureInvalid)
            );
            assert!(!s.verify_rs256(jwt.signing_input(), signature));
        }
        assert!(s.verify_rs256(jwt.signing_input(), jwt.signature()));
    }
}
