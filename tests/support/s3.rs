//! A real S3-compatible server for tests: moto's server mode on a free loopback port, started per
//! test and killed when dropped. A test that cannot start it fails and says how to install it.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};

/// Credentials moto accepts (it accepts any).
pub const ACCESS_KEY: &str = "AKIAFLOWVAULTTEST";
/// Distinctive, so a leak is easy to find.
pub const SECRET_KEY: &str = "aws-secret-Quokka-7719";
/// The bucket tests write to.
pub const BUCKET: &str = "flowvault-test";

/// A running S3 server.
pub struct S3Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The moto version the tests need (5.2.1 answers CompleteMultipartUpload with the wrong XML root).
const MOTO: &str = "moto[server]==5.2.5";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl S3Server {
    /// Starts moto's server and creates [`BUCKET`].
    pub async fn start() -> S3Server {
        let port = free_port();
        let child = Command::new(super::python_tool("moto-5.2.5", MOTO, "moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start moto_server ({e}); delete target/test-tools to reinstall it"));
        let server = S3Server {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not start listening on port {port} within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        server
            .client()
            .create_bucket()
            .bucket(BUCKET)
            .send()
            .await
            .expect("create the test bucket");
        server
    }

    /// An SDK client for reading back what flowvault wrote (a stock S3 client).
    pub fn client(&self) -> Client {
        let config = aws_sdk_s3::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .force_path_style(true)
            .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test"))
            .build();
        Client::from_conf(config)
    }

    /// The AWS environment the binary needs to reach this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("FLOWVAULT_S3_FORCE_PATH_STYLE", "true".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }

    /// Reads an object's bytes.
    pub async fn get(&self, key: &str) -> Vec<u8> {
        let out = self
            .client()
            .get_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("get {key}: {e:?}"));
        out.body.collect().await.expect("object body").into_bytes().to_vec()
    }

    /// Every key under `prefix`.
    pub async fn keys(&self, prefix: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let out = self
                .client()
                .list_objects_v2()
                .bucket(BUCKET)
                .prefix(prefix)
                .set_continuation_token(token)
                .send()
                .await
                .expect("list objects");
            keys.extend(out.contents().iter().filter_map(|o| o.key().map(str::to_string)));
            token = out.next_continuation_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        keys.sort();
        keys
    }

    /// Waits (up to a minute) until a multipart upload is open: the archive is streaming.
    pub async fn wait_for_multipart_upload(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.open_uploads().await == 0 {
            assert!(Instant::now() < deadline, "the multipart upload never started");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Multipart uploads still open under the bucket.
    pub async fn open_uploads(&self) -> usize {
        let out = self
            .client()
            .list_multipart_uploads()
            .bucket(BUCKET)
            .send()
            .await
            .expect("list multipart uploads");
        out.uploads().len()
    }
}

/// A storage fault injected by [`FaultyS3`].
#[derive(Debug, Clone, Copy)]
pub enum S3Fault {
    /// The first `count` part uploads answer `status` (500: transient, 403: permanent).
    FailParts { status: u16, count: usize },
    /// After `puts` object uploads, the bucket is gone: everything answers 404 NoSuchBucket.
    VanishAfterPuts(usize),
}

/// A proxy in front of a real S3 server that injects one kind of fault, like a failure-injecting
/// client wrapper but over real HTTP, so the SDK's own retry and error paths run.
pub struct FaultyS3 {
    /// The proxy's endpoint, to give flowvault instead of the server's.
    pub endpoint: String,
    _task: tokio::task::JoinHandle<()>,
}

impl FaultyS3 {
    /// Starts a proxy to `upstream` injecting `fault`.
    pub async fn start(upstream: &str, fault: S3Fault) -> FaultyS3 {
        use axum::body::Body;
        use axum::extract::Request;
        use axum::response::Response;
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};

        let upstream = upstream.to_string();
        let http = reqwest::Client::new();
        let counter = Arc::new(AtomicUsize::new(0));
        let handler = move |req: Request| {
            let (upstream, http, counter) = (upstream.clone(), http.clone(), counter.clone());
            async move {
                let (parts, body) = req.into_parts();
                let path_q = parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str().to_string())
                    .unwrap_or_default();
                let is_part = parts.method == axum::http::Method::PUT && path_q.contains("partNumber=");
                let is_put = parts.method == axum::http::Method::PUT && !is_part;
                let error = |status: u16, code: &str| {
                    Response::builder()
                        .status(status)
                        .header("content-type", "application/xml")
                        .body(Body::from(format!("<?xml version=\"1.0\"?><Error><Code>{code}</Code><Message>injected {code}</Message></Error>")))
                        .unwrap()
                };
                match fault {
                    S3Fault::FailParts { status, count }
                        if is_part && counter.fetch_add(1, Ordering::SeqCst) < count =>
                    {
                        return error(status, if status == 403 { "AccessDenied" } else { "InternalError" });
                    }
                    S3Fault::VanishAfterPuts(n) if counter.load(Ordering::SeqCst) >= n => {
                        return error(404, "NoSuchBucket");
                    }
                    S3Fault::VanishAfterPuts(_) if is_put => {
                        counter.fetch_add(1, Ordering::SeqCst);
                    }
                    _ => {}
                }
                let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
                let mut forward = http
                    .request(parts.method.clone(), format!("{upstream}{path_q}"))
                    .body(bytes);
                for (k, v) in &parts.headers {
                    if k != "host" {
                        forward = forward.header(k, v);
                    }
                }
                match forward.send().await {
                    Ok(resp) => {
                        let mut builder = Response::builder().status(resp.status().as_u16());
                        for (k, v) in resp.headers() {
                            if k != "transfer-encoding" && k != "connection" {
                                builder = builder.header(k, v);
                            }
                        }
                        builder
                            .body(Body::from(resp.bytes().await.unwrap_or_default()))
                            .unwrap()
                    }
                    Err(_) => error(502, "BadGateway"),
                }
            }
        };
        let app = axum::Router::new().fallback(handler);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FaultyS3 { endpoint, _task: task }
    }
}
