//! `--tls`: a self-signed certificate for 127.0.0.1 and localhost, kept in the state directory so
//! clients that insist on HTTPS (Azure CLI, Azure SDKs) can be told to trust it once.

use std::sync::Arc;

use tokio_rustls::TlsAcceptor;

use super::Shared;

const CERT_FILE: &str = "sandbox-cert.pem";
const KEY_FILE: &str = "sandbox-key.pem";

/// Loads or creates the certificate, and builds the acceptor (`None` without `--tls`).
pub(crate) fn acceptor(shared: &Shared) -> anyhow::Result<Option<TlsAcceptor>> {
    if !shared.config.tls {
        return Ok(None);
    }
    let (cert_pem, key_pem) = certificate(shared)?;
    let certs = rustls_pki_certs(&cert_pem)?;
    let key = {
        use rustls::pki_types::pem::PemObject;
        rustls::pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| anyhow::anyhow!("sandbox TLS key: {e}"))?
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(Some(TlsAcceptor::from(Arc::new(config))))
}

/// The certificate PEM, when serving TLS.
pub(crate) fn certificate_pem(shared: &Shared) -> Option<String> {
    if !shared.config.tls {
        return None;
    }
    certificate(shared).ok().map(|(cert, _)| cert)
}

/// Where the certificate is kept, when serving TLS from a state directory.
pub(crate) fn certificate_file(shared: &Shared) -> Option<std::path::PathBuf> {
    shared
        .config
        .state_dir
        .as_ref()
        .filter(|_| shared.config.tls)
        .map(|dir| dir.join(CERT_FILE))
}

fn certificate(shared: &Shared) -> anyhow::Result<(String, String)> {
    if let Some(dir) = &shared.config.state_dir {
        let (cert, key) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
        if cert.exists() && key.exists() {
            super::files::make_private(&key)?;
            return Ok((
                std::fs::read_to_string(cert)?,
                std::fs::read_to_string(key)?,
            ));
        }
    }
    static GENERATED: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    let pair = match &shared.config.state_dir {
        Some(_) => generate()?,
        None => GENERATED
            .get_or_init(|| generate().unwrap_or_default())
            .clone(),
    };
    if let Some(dir) = &shared.config.state_dir {
        // The certificate is public; the key is written owner-only, like the state.
        std::fs::write(dir.join(CERT_FILE), &pair.0)?;
        super::files::write_private(&dir.join(KEY_FILE), pair.1.as_bytes())?;
    }
    Ok(pair)
}

fn generate() -> anyhow::Result<(String, String)> {
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let certified = rcgen::generate_simple_self_signed(names)?;
    Ok((certified.cert.pem(), certified.signing_key.serialize_pem()))
}

fn rustls_pki_certs(pem: &str) -> anyhow::Result<Vec<rustls::pki_types::CertificateDer<'static>>> {
    use rustls::pki_types::pem::PemObject;
    Ok(vec![rustls::pki_types::CertificateDer::from_pem_slice(
        pem.as_bytes(),
    )?])
}
