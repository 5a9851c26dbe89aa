//! One TLS stack for every HTTPS client (reqwest for Genesys and the Pushgateway, the AWS SDK for
//! S3): rustls with the aws-lc-rs provider, installed once per process.

/// Installs aws-lc-rs as the process's rustls provider (a no-op when one already is).
pub fn init() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
