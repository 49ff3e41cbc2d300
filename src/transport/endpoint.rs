//! The node's QUIC endpoint (quinn, on its own UDP port): throw-away self-signed certificates on the
//! server side and no certificate check on the client side, because the Noise handshake on the first
//! stream is what authenticates, and it is bound to this TLS session (`protocols/handshake-v1.md`).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// The ALPN of hail calls.
pub const ALPN: &[u8] = b"hail/1";
/// Keepalive on a call's QUIC connection (keeps NAT mappings open too).
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);
/// A QUIC connection silent this long is dead.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(20);

/// Why the endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// The UDP socket could not be bound.
    #[error("cannot bind the call socket on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// TLS could not be configured (should not happen).
    #[error("cannot configure QUIC TLS: {0}")]
    Tls(String),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn transport_config() -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.keep_alive_interval(Some(KEEP_ALIVE));
    t.max_idle_timeout(Some(IDLE_TIMEOUT.try_into().expect("20 s is a valid idle timeout")));
    t.max_concurrent_bidi_streams(4u32.into());
    // Video: one stream per GOP, the previous one reset when the next opens.
    t.max_concurrent_uni_streams(16u32.into());
    t.congestion_controller_factory(Arc::new(super::congestion::MediaFloorConfig::default()));
    Arc::new(t)
}

fn server_config() -> Result<quinn::ServerConfig, EndpointError> {
    let tls = |e: &dyn std::fmt::Display| EndpointError::Tls(e.to_string());
    let cert = rcgen::generate_simple_self_signed(vec!["hail".to_owned()]).map_err(|e| tls(&e))?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()));
    let mut crypto = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| tls(&e))?
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .map_err(|e| tls(&e))?;
    crypto.alpn_protocols = vec![ALPN.to_vec()];
    let quic = QuicServerConfig::try_from(crypto).map_err(|e| tls(&e))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(quic));
    config.transport_config(transport_config());
    Ok(config)
}

fn client_config() -> Result<quinn::ClientConfig, EndpointError> {
    let tls = |e: &dyn std::fmt::Display| EndpointError::Tls(e.to_string());
    let provider = provider();
    let mut crypto = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| tls(&e))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(NoiseAuthenticates(provider)))
        .with_no_client_auth();
    crypto.alpn_protocols = vec![ALPN.to_vec()];
    let quic = QuicClientConfig::try_from(crypto).map_err(|e| tls(&e))?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    config.transport_config(transport_config());
    Ok(config)
}

/// Accepts any server certificate: the Noise handshake authenticates the peer and binds this TLS
/// session through the exporter. TLS signatures are still checked against the certificate presented.
#[derive(Debug)]
struct NoiseAuthenticates(Arc<CryptoProvider>);

impl ServerCertVerifier for NoiseAuthenticates {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Binds a QUIC endpoint on `addr`, able to both accept and dial.
pub fn bind(addr: SocketAddr) -> Result<quinn::Endpoint, EndpointError> {
    let mut endpoint =
        quinn::Endpoint::server(server_config()?, addr).map_err(|source| EndpointError::Bind { addr, source })?;
    endpoint.set_default_client_config(client_config()?);
    Ok(endpoint)
}

/// The `ip:port` candidates to advertise for an endpoint bound to `local`: its own address when it
/// is bound to one, else each of `host_ips` (the node's interface addresses) with its port.
pub fn candidates(local: SocketAddr, host_ips: &[IpAddr]) -> Vec<String> {
    if !local.ip().is_unspecified() {
        return vec![local.to_string()];
    }
    let mut out: Vec<String> = host_ips
        .iter()
        .filter(|ip| ip.is_ipv4() == local.is_ipv4() && !ip.is_unspecified())
        .map(|ip| SocketAddr::new(*ip, local.port()).to_string())
        .collect();
    out.dedup();
    out.truncate(super::candidate::MAX_CANDIDATES);
    out
}
