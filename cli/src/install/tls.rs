//! Which certificate authorities an HTTPS download trusts: the Mozilla roots
//! built into dockyard (`webpki-root-certs`) and the host's own store, so a
//! site mirror signed by a private CA works once that CA is in the system
//! store. Whatever the TLS layer trusts, the sha256 pin decides whether a
//! file is installed.
//!
//! The system store is found the way OpenSSL finds it
//! (`rustls-native-certs`): `$SSL_CERT_FILE` and `$SSL_CERT_DIR` when either
//! is set, else the distribution's bundle (`/etc/ssl/certs/ca-certificates.crt`
//! on Debian and Ubuntu, `/etc/pki/tls/certs/ca-bundle.crt` on Fedora and
//! RHEL, …) and the directories `/etc/ssl/certs` and `/etc/pki/tls/certs`.
//! It is read only when an `https://` URL is about to be fetched.

use ureq::tls::Certificate;

pub struct Roots {
    pub certs: Vec<Certificate<'static>>,
    pub system: usize,
    /// The first problem reading the system store, and how many there were.
    pub problem: Option<(String, usize)>,
}

pub fn roots() -> Roots {
    let mut certs: Vec<Certificate<'static>> = webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .map(|c| Certificate::from_der(c.as_ref()).to_owned())
        .collect();
    let native = rustls_native_certs::load_native_certs();
    let system = native.certs.len();
    certs.extend(
        native
            .certs
            .iter()
            .map(|c| Certificate::from_der(c.as_ref()).to_owned()),
    );
    let problem = native
        .errors
        .first()
        .map(|e| (e.to_string(), native.errors.len()));
    Roots {
        certs,
        system,
        problem,
    }
}

pub fn is_https(url: &str) -> bool {
    url.get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
}
