//! Pushes tiny, valid OCI images into a registry over its HTTP API (blob upload + manifest PUT), the way
//! a CI pipeline would. Shared by the integration tests and the poll benchmark (`examples/registry_bench.rs`
//! includes this file), so it depends only on reqwest, serde_json, sha2 and tokio.
// Each user (a test module, the bench example) calls only some of these helpers.
#![allow(dead_code)]

use std::sync::Arc;

use sha2::{Digest, Sha256};

/// `head -c 1024 /dev/zero | gzip -n`: a real gzip'd empty tar archive, the smallest valid layer.
pub const EMPTY_LAYER: &[u8] = &[
    0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x63, 0x60, 0x18, 0x05, 0xa3, 0x60,
    0x14, 0x8c, 0x54, 0x00, 0x00, 0x2e, 0xaf, 0xb5, 0xef, 0x00, 0x04, 0x00, 0x00,
];
/// The sha256 of 1024 zero bytes: the uncompressed layer's diff id.
const EMPTY_LAYER_DIFF_ID: &str =
    "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef";

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(data))
}

/// A descriptor as it appears in manifests and indexes.
#[derive(Clone, Debug)]
pub struct Pushed {
    pub digest: String,
    pub size: usize,
    pub media_type: &'static str,
}

/// How seeding requests authenticate.
#[derive(Clone)]
pub enum SeedAuth {
    Anonymous,
    Basic { username: String, password: String },
    Bearer(String),
}

#[derive(Clone)]
pub struct Seeder {
    base: String,
    http: reqwest::Client,
    auth: SeedAuth,
}

impl Seeder {
    /// `base` is `http(s)://host:port`; `ca_pem` trusts a test CA.
    pub fn new(base: &str, ca_pem: Option<&[u8]>, auth: SeedAuth) -> Self {
        let mut builder = reqwest::Client::builder().tcp_nodelay(true);
        if let Some(pem) = ca_pem {
            builder = builder.add_root_certificate(reqwest::Certificate::from_pem(pem).unwrap());
        }
        Seeder {
            base: base.trim_end_matches('/').to_string(),
            http: builder.build().unwrap(),
            auth,
        }
    }

    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, url);
        match &self.auth {
            SeedAuth::Anonymous => request,
            SeedAuth::Basic { username, password } => request.basic_auth(username, Some(password)),
            SeedAuth::Bearer(token) => request.bearer_auth(token),
        }
    }

    /// Uploads a blob (monolithic: POST for a session, PUT with the digest).
    pub async fn push_blob(
        &self,
        repository: &str,
        data: &[u8],
        media_type: &'static str,
    ) -> Pushed {
        let digest = sha256(data);
        let start = self
            .request(
                reqwest::Method::POST,
                &format!("{}/v2/{repository}/blobs/uploads/", self.base),
            )
            .send()
            .await
            .expect("start blob upload");
        assert_eq!(start.status().as_u16(), 202, "start upload in {repository}");
        let location = start.headers()["location"].to_str().unwrap().to_string();
        let location = if location.starts_with('/') {
            format!("{}{location}", self.base)
        } else {
            location
        };
        let separator = if location.contains('?') { '&' } else { '?' };
        let finish = self
            .request(
                reqwest::Method::PUT,
                &format!("{location}{separator}digest={digest}"),
            )
            .header("content-type", "application/octet-stream")
            .body(data.to_vec())
            .send()
            .await
            .expect("finish blob upload");
        assert_eq!(
            finish.status().as_u16(),
            201,
            "finish upload in {repository}"
        );
        Pushed {
            digest,
            size: data.len(),
            media_type,
        }
    }

    /// PUTs a manifest or index under `reference` (a tag or digest); returns its digest.
    pub async fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        body: &[u8],
        media_type: &'static str,
    ) -> String {
        let response = self
            .request(
                reqwest::Method::PUT,
                &format!("{}/v2/{repository}/manifests/{reference}", self.base),
            )
            .header("content-type", media_type)
            .body(body.to_vec())
            .send()
            .await
            .expect("put manifest");
        let status = response.status();
        assert_eq!(
            status.as_u16(),
            201,
            "put manifest {repository}:{reference}: {}",
            response.text().await.unwrap_or_default()
        );
        sha256(body)
    }

    /// Pushes one image's blobs (layer + a config with `created` and `architecture`) and returns its
    /// manifest bytes, not yet tagged.
    pub async fn image_manifest(
        &self,
        repository: &str,
        created: &str,
        architecture: &str,
    ) -> Vec<u8> {
        self.labelled_manifest(repository, created, architecture, &[], &[])
            .await
    }

    /// [`Seeder::image_manifest`] with `labels` in the config (`config.Labels`, as `docker build
    /// --label` writes them) and `annotations` on the manifest (as `buildx --annotation` writes them).
    pub async fn labelled_manifest(
        &self,
        repository: &str,
        created: &str,
        architecture: &str,
        labels: &[(&str, &str)],
        annotations: &[(&str, &str)],
    ) -> Vec<u8> {
        let layer = self.push_blob(repository, EMPTY_LAYER, OCI_LAYER).await;
        let labels: serde_json::Map<String, serde_json::Value> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
            .collect();
        let image_config = if labels.is_empty() {
            serde_json::json!({})
        } else {
            serde_json::json!({ "Labels": labels })
        };
        let config = serde_json::json!({
            "created": created,
            "architecture": architecture,
            "os": "linux",
            "config": image_config,
            "rootfs": {"type": "layers", "diff_ids": [EMPTY_LAYER_DIFF_ID]},
        });
        let config = self
            .push_blob(repository, config.to_string().as_bytes(), OCI_CONFIG)
            .await;
        let mut manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(&config),
            "layers": [descriptor(&layer)],
        });
        if !annotations.is_empty() {
            manifest["annotations"] = annotations
                .iter()
                .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
                .collect::<serde_json::Map<_, _>>()
                .into();
        }
        manifest.to_string().into_bytes()
    }

    /// An OCI index tagged `tag` with `annotations` of its own, over one linux/amd64 image whose
    /// config carries `labels`; returns the index digest.
    pub async fn push_annotated_index(
        &self,
        repository: &str,
        tag: &str,
        created: &str,
        labels: &[(&str, &str)],
        annotations: &[(&str, &str)],
    ) -> String {
        let manifest = self
            .labelled_manifest(repository, created, "amd64", labels, &[])
            .await;
        let digest = sha256(&manifest);
        self.put_manifest(repository, &digest, &manifest, OCI_MANIFEST)
            .await;
        let annotations: serde_json::Map<String, serde_json::Value> = annotations
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
            .collect();
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{
                "mediaType": OCI_MANIFEST,
                "digest": digest,
                "size": manifest.len(),
                "platform": {"architecture": "amd64", "os": "linux"},
            }],
            "annotations": annotations,
        });
        self.put_manifest(repository, tag, index.to_string().as_bytes(), OCI_INDEX)
            .await
    }

    /// One image tagged `tag`; returns the manifest digest.
    pub async fn push_image(&self, repository: &str, tag: &str, created: &str) -> String {
        let manifest = self.image_manifest(repository, created, "amd64").await;
        self.put_manifest(repository, tag, &manifest, OCI_MANIFEST)
            .await
    }

    /// A multi-arch image (linux/amd64 + linux/arm64 manifests pushed by digest, an OCI index tagged
    /// `tag`); returns (index digest, [amd64 digest, arm64 digest]).
    pub async fn push_index(
        &self,
        repository: &str,
        tag: &str,
        created: &str,
    ) -> (String, Vec<String>) {
        let mut entries = Vec::new();
        let mut children = Vec::new();
        for architecture in ["amd64", "arm64"] {
            let manifest = self.image_manifest(repository, created, architecture).await;
            let digest = sha256(&manifest);
            self.put_manifest(repository, &digest, &manifest, OCI_MANIFEST)
                .await;
            entries.push(serde_json::json!({
                "mediaType": OCI_MANIFEST,
                "digest": digest,
                "size": manifest.len(),
                "platform": {"architecture": architecture, "os": "linux"},
            }));
            children.push(digest);
        }
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": entries,
        });
        let digest = self
            .put_manifest(repository, tag, index.to_string().as_bytes(), OCI_INDEX)
            .await;
        (digest, children)
    }

    /// Tags one manifest with every tag, `parallel` PUTs in flight (a registry stores a tag as a
    /// link, so this is how a 10,000-tag repository is seeded in seconds).
    pub async fn tag_all(
        &self,
        repository: &str,
        manifest: Vec<u8>,
        tags: Vec<String>,
        parallel: usize,
    ) {
        let manifest = Arc::new(manifest);
        let tags = Arc::new(tags);
        let mut workers = tokio::task::JoinSet::new();
        for worker in 0..parallel {
            let (seeder, manifest, tags, repository) = (
                self.clone(),
                manifest.clone(),
                tags.clone(),
                repository.to_string(),
            );
            workers.spawn(async move {
                for tag in tags.iter().skip(worker).step_by(parallel) {
                    seeder
                        .put_manifest(&repository, tag, &manifest, OCI_MANIFEST)
                        .await;
                }
            });
        }
        while let Some(result) = workers.join_next().await {
            result.expect("tagging worker");
        }
    }
}

fn descriptor(pushed: &Pushed) -> serde_json::Value {
    serde_json::json!({"mediaType": pushed.media_type, "digest": pushed.digest, "size": pushed.size})
}
