//! Wasm OCI artifacts: a component published to an OCI registry in the CNCF layout (an image
//! manifest whose config has the media type `application/vnd.wasm.config.v0+json` and whose
//! single layer, `application/wasm`, is the component itself), spoken over the OCI
//! distribution HTTP API.
//!
//! Pulls are pinned by digest: a reference by tag is resolved once to its manifest digest,
//! which is what the lock file records. The manifest's bytes are checked against the digest
//! the reference names, and the layer's bytes against the digest and size the manifest
//! names, before anything else reads them; the signature is then verified as for any install.
//!
//! Plain HTTP is used only for registries on loopback (`localhost`, `127.0.0.0/8`, `[::1]`),
//! as Docker does for a local registry; every other registry is reached over HTTPS. A
//! registry that asks for a bearer token (as public registries do even for anonymous pulls)
//! gets one from the realm it names; credentials are not supported yet.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, LOCATION, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode, Url};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The OCI image manifest media type that Wasm artifacts use.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// The config media type of a Wasm artifact (CNCF TAG Runtime's layout).
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// The media type of the one layer: the component's bytes.
pub const LAYER_MEDIA_TYPE: &str = "application/wasm";
/// The largest manifest read (the distribution spec's recommended limit).
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;
/// The largest component pulled; the Airtable connector is about 1 MiB.
pub const MAX_COMPONENT_BYTES: u64 = 256 << 20;

/// Why a pull or a push failed.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error(
        "{text:?} is not an OCI reference ({why}); write REGISTRY[:PORT]/REPOSITORY[:TAG][@sha256:DIGEST]"
    )]
    BadReference { text: String, why: String },
    #[error("{method} {url} failed: {source}")]
    Http { method: Method, url: String, source: reqwest::Error },
    #[error("{method} {url} answered {status}: {body}")]
    Status { method: Method, url: String, status: StatusCode, body: String },
    #[error("refused: the {what} from {reference} has digest {found}, not the {expected} it must have")]
    DigestMismatch { what: &'static str, reference: String, expected: String, found: String },
    #[error("refused: {reference} is not a Wasm OCI artifact ({why})")]
    NotWasmArtifact { reference: String, why: String },
    #[error("refused: the {what} from {reference} is larger than {limit} bytes")]
    TooLarge { what: &'static str, reference: String, limit: u64 },
    #[error("the registry at {registry} asked for authentication weir cannot give: {why}")]
    Auth { registry: String, why: String },
}

/// `REGISTRY/REPOSITORY[:TAG][@sha256:DIGEST]`, optionally written with an `oci://` prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reference {
    /// `host[:port]`.
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:<64 hex digits>`: the manifest's digest.
    pub digest: Option<String>,
}

impl Reference {
    /// Parses and checks a reference; every part later becomes part of a URL path, so each is
    /// held to the distribution spec's grammar.
    pub fn parse(text: &str) -> Result<Reference, OciError> {
        let bad = |why: &str| OciError::BadReference { text: text.to_string(), why: why.to_string() };
        let rest = text.strip_prefix("oci://").unwrap_or(text);
        let (rest, digest) = match rest.rsplit_once('@') {
            Some((rest, digest)) => {
                if !is_digest(digest) {
                    return Err(bad("the digest must be sha256: and 64 lowercase hex digits"));
                }
                (rest, Some(digest.to_string()))
            }
            None => (rest, None),
        };
        let (registry, path) = rest.split_once('/').ok_or_else(|| bad("it names no repository"))?;
        let registry_ok = !registry.is_empty()
            && (registry.contains(['.', ':']) || registry == "localhost")
            && registry.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
        if !registry_ok {
            return Err(bad("it must start with a registry host, such as ghcr.io or 127.0.0.1:5000"));
        }
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repository, tag)) => (repository, Some(tag.to_string())),
            None => (path, None),
        };
        let component_ok = |c: &str| {
            !c.is_empty()
                && c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && c.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
                && c.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
        };
        if repository.len() > 255 || !repository.split('/').all(component_ok) {
            return Err(bad(
                "the repository must be lowercase path components of letters, digits, `.`, `_`, `-`",
            ));
        }
        if let Some(tag) = &tag {
            let ok = tag.len() <= 128
                && tag.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
                && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            if !ok {
                return Err(bad("a tag is up to 128 letters, digits, `.`, `_` or `-`"));
            }
        }
        Ok(Reference { registry: registry.to_string(), repository: repository.to_string(), tag, digest })
    }

    /// The same repository, pinned to `digest` and without a tag.
    pub fn pinned(&self, digest: &str) -> Reference {
        Reference { tag: None, digest: Some(digest.to_string()), ..self.clone() }
    }

    /// What the manifest is fetched by: the digest when there is one, else the tag.
    fn manifest_ref(&self) -> &str {
        self.digest.as_deref().or(self.tag.as_deref()).unwrap_or("latest")
    }

    /// Whether the registry is on this machine; a name that merely starts with `127.` is not.
    fn is_loopback(&self) -> bool {
        let host = match self.registry.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default(),
            None => self.registry.split(':').next().unwrap_or_default(),
        };
        host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    fn base_url(&self) -> String {
        let scheme = if self.is_loopback() { "http" } else { "https" };
        format!("{scheme}://{}/v2/{}", self.registry, self.repository)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// A component pulled and checked against its digests.
#[derive(Debug, Clone)]
pub struct Pulled {
    pub bytes: Vec<u8>,
    /// The reference pinned to the manifest's digest: what the lock file records.
    pub pinned: Reference,
    pub layer_digest: String,
}

/// What a push published.
#[derive(Debug, Clone, Serialize)]
pub struct Pushed {
    /// The reference as given (by tag, or by digest).
    pub reference: String,
    /// The same artifact pinned by its manifest digest, for `weir connector install`.
    pub pinned: String,
    pub manifest_digest: String,
    pub layer_digest: String,
    pub size: u64,
}

impl fmt::Display for Pushed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "pushed {} ({} bytes, layer {})", self.reference, self.size, self.layer_digest)?;
        writeln!(f, "pinned by digest: {}", self.pinned)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ImageManifest {
    schema_version: u32,
    #[serde(default)]
    media_type: Option<String>,
    config: Descriptor,
    layers: Vec<Descriptor>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: String,
    digest: String,
    size: u64,
}

/// Pulls a Wasm artifact and checks the manifest and layer digests.
pub async fn pull(reference: &Reference) -> Result<Pulled, OciError> {
    let mut session = Session::new(reference, "pull");
    let url = format!("{}/manifests/{}", reference.base_url(), reference.manifest_ref());
    let response = session.send(Method::GET, &url, Some(MANIFEST_MEDIA_TYPE), None).await?;
    let manifest_bytes = read_bounded(response, "manifest", reference, MAX_MANIFEST_BYTES).await?;
    let manifest_digest = digest_of(&manifest_bytes);
    check_pinned(reference, "manifest", &manifest_digest)?;
    let not_wasm = |why: String| OciError::NotWasmArtifact { reference: reference.to_string(), why };
    let manifest: ImageManifest =
        serde_json::from_slice(&manifest_bytes).map_err(|e| not_wasm(format!("its manifest: {e}")))?;
    if manifest.schema_version != 2 {
        return Err(not_wasm(format!("manifest schema version {}", manifest.schema_version)));
    }
    if let Some(media_type) = manifest.media_type.as_deref().filter(|m| *m != MANIFEST_MEDIA_TYPE) {
        return Err(not_wasm(format!("manifest media type {media_type}")));
    }
    if manifest.config.media_type != CONFIG_MEDIA_TYPE {
        return Err(not_wasm(format!("config media type {}", manifest.config.media_type)));
    }
    let [layer] = manifest.layers.as_slice() else {
        return Err(not_wasm(format!("{} layers, where a Wasm artifact has one", manifest.layers.len())));
    };
    if layer.media_type != LAYER_MEDIA_TYPE {
        return Err(not_wasm(format!("layer media type {}", layer.media_type)));
    }
    if !is_digest(&layer.digest) {
        return Err(not_wasm(format!("layer digest {:?} is not a sha256 digest", layer.digest)));
    }
    if layer.size > MAX_COMPONENT_BYTES {
        return Err(OciError::TooLarge {
            what: "component",
            reference: reference.to_string(),
            limit: MAX_COMPONENT_BYTES,
        });
    }
    let url = format!("{}/blobs/{}", reference.base_url(), layer.digest);
    let response = session.send(Method::GET, &url, None, None).await?;
    let bytes = read_bounded(response, "component", reference, layer.size).await?;
    let found = digest_of(&bytes);
    if found != layer.digest || bytes.len() as u64 != layer.size {
        return Err(OciError::DigestMismatch {
            what: "component layer",
            reference: reference.to_string(),
            expected: format!("{} ({} bytes)", layer.digest, layer.size),
            found: format!("{found} ({} bytes)", bytes.len()),
        });
    }
    Ok(Pulled { bytes, pinned: reference.pinned(&manifest_digest), layer_digest: found })
}

/// Publishes `component` as a Wasm artifact at `reference` (by its tag, else by digest).
pub async fn push(
    reference: &Reference,
    component: &[u8],
    annotations: &BTreeMap<String, String>,
) -> Result<Pushed, OciError> {
    let mut session = Session::new(reference, "pull,push");
    let layer_digest = digest_of(component);
    let (imports, exports) = component_world(component);
    let config = serde_json::json!({
        "created": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "architecture": "wasm",
        "os": "wasip2",
        "layerDigests": [layer_digest],
        "component": { "imports": imports, "exports": exports, "target": null },
    });
    let config = serde_json::to_vec(&config).unwrap_or_default();
    let config_digest = digest_of(&config);
    session.upload_blob(reference, &config_digest, &config).await?;
    session.upload_blob(reference, &layer_digest, component).await?;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": Descriptor { media_type: CONFIG_MEDIA_TYPE.into(), digest: config_digest, size: config.len() as u64 },
        "layers": [Descriptor { media_type: LAYER_MEDIA_TYPE.into(), digest: layer_digest.clone(), size: component.len() as u64 }],
        "annotations": annotations,
    });
    let manifest = serde_json::to_vec(&manifest).unwrap_or_default();
    let manifest_digest = digest_of(&manifest);
    check_pinned(reference, "manifest to push", &manifest_digest)?;
    let target = reference.tag.clone().unwrap_or_else(|| manifest_digest.clone());
    let url = format!("{}/manifests/{target}", reference.base_url());
    session.send(Method::PUT, &url, Some(MANIFEST_MEDIA_TYPE), Some(manifest)).await?;
    Ok(Pushed {
        reference: reference.to_string(),
        pinned: reference.pinned(&manifest_digest).to_string(),
        manifest_digest,
        layer_digest,
        size: component.len() as u64,
    })
}

/// A reference that names a digest holds only the manifest with that digest.
fn check_pinned(reference: &Reference, what: &'static str, found: &str) -> Result<(), OciError> {
    match &reference.digest {
        Some(expected) if expected != found => Err(OciError::DigestMismatch {
            what,
            reference: reference.to_string(),
            expected: expected.clone(),
            found: found.to_string(),
        }),
        _ => Ok(()),
    }
}

/// The outer component's import and export names, for the artifact's config.
fn component_world(component: &[u8]) -> (Vec<String>, Vec<String>) {
    let (mut imports, mut exports) = (Vec::new(), Vec::new());
    let mut depth = 0usize;
    for payload in wasmparser::Parser::new(0).parse_all(component) {
        let Ok(payload) = payload else { break };
        match payload {
            wasmparser::Payload::ComponentImportSection(reader) if depth == 0 => {
                imports.extend(reader.into_iter().flatten().map(|i| i.name.name.to_string()))
            }
            wasmparser::Payload::ComponentExportSection(reader) if depth == 0 => {
                exports.extend(reader.into_iter().flatten().map(|e| e.name.name.to_string()))
            }
            wasmparser::Payload::ModuleSection { .. } | wasmparser::Payload::ComponentSection { .. } => {
                depth += 1
            }
            wasmparser::Payload::End(_) => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    (imports, exports)
}

/// The `sha256:<hex>` digest of some bytes.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn is_digest(text: &str) -> bool {
    text.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Reads a response body, refusing more than `limit` bytes whatever the headers say.
async fn read_bounded(
    mut response: reqwest::Response,
    what: &'static str,
    reference: &Reference,
    limit: u64,
) -> Result<Vec<u8>, OciError> {
    let too_large = || OciError::TooLarge { what, reference: reference.to_string(), limit };
    if response.content_length().is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let url = response.url().to_string();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|source| OciError::Http {
        method: Method::GET,
        url: url.clone(),
        source,
    })? {
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// One conversation with a registry about one repository, holding a bearer token once the
/// registry asked for one.
struct Session {
    client: reqwest::Client,
    registry: String,
    repository: String,
    actions: &'static str,
    token: Option<String>,
}

impl Session {
    fn new(reference: &Reference, actions: &'static str) -> Session {
        let client = reqwest::Client::builder()
            .user_agent(concat!("weir/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(15))
            .read_timeout(Duration::from_secs(120))
            .build()
            .unwrap_or_default();
        Session {
            client,
            registry: reference.registry.clone(),
            repository: reference.repository.clone(),
            actions,
            token: None,
        }
    }

    /// Sends a request; on a 401 asking for a bearer token, fetches one and sends it again.
    /// Any answer but a success is an error carrying the registry's own words.
    async fn send(
        &mut self,
        method: Method,
        url: &str,
        media_type: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<reqwest::Response, OciError> {
        for attempt in 0..2 {
            let mut request = self.client.request(method.clone(), url);
            if let Some(media_type) = media_type {
                request = match body {
                    Some(_) => request.header(CONTENT_TYPE, media_type),
                    None => request.header(ACCEPT, media_type),
                };
            }
            if let Some(body) = &body {
                request = request.body(body.clone());
            }
            if let Some(token) = &self.token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.map_err(|source| OciError::Http {
                method: method.clone(),
                url: url.to_string(),
                source,
            })?;
            if response.status() == StatusCode::UNAUTHORIZED && attempt == 0 && self.token.is_none() {
                self.token = Some(self.fetch_token(response.headers()).await?);
                continue;
            }
            if !response.status().is_success() {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                let body: String = text.chars().take(300).collect();
                return Err(OciError::Status { method, url: url.to_string(), status, body });
            }
            return Ok(response);
        }
        Err(OciError::Auth { registry: self.registry.clone(), why: "the token was refused".into() })
    }

    /// The anonymous bearer-token flow of the distribution spec's token authentication.
    async fn fetch_token(&self, headers: &HeaderMap) -> Result<String, OciError> {
        let auth_error = |why: &str| OciError::Auth { registry: self.registry.clone(), why: why.to_string() };
        let challenge = headers
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| auth_error("it answered 401 without a challenge"))?;
        let params = parse_bearer_challenge(challenge).ok_or_else(|| auth_error(challenge))?;
        let realm = params.get("realm").ok_or_else(|| auth_error("the challenge names no realm"))?;
        let mut url = Url::parse(realm).map_err(|_| auth_error("the challenge's realm is not a URL"))?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = params.get("service") {
                query.append_pair("service", service);
            }
            let default_scope = format!("repository:{}:{}", self.repository, self.actions);
            query.append_pair("scope", params.get("scope").map(String::as_str).unwrap_or(&default_scope));
        }
        let response = self.client.get(url.clone()).send().await.map_err(|source| OciError::Http {
            method: Method::GET,
            url: url.to_string(),
            source,
        })?;
        if !response.status().is_success() {
            return Err(auth_error(&format!("its token service answered {}", response.status())));
        }
        #[derive(Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let bytes = response.bytes().await.map_err(|source| OciError::Http {
            method: Method::GET,
            url: url.to_string(),
            source,
        })?;
        let token: Token = serde_json::from_slice(&bytes).map_err(|_| auth_error("its token is not JSON"))?;
        token.token.or(token.access_token).ok_or_else(|| auth_error("its answer holds no token"))
    }

    /// Uploads a blob unless the registry has it already (a monolithic upload: POST, then PUT).
    async fn upload_blob(
        &mut self,
        reference: &Reference,
        digest: &str,
        bytes: &[u8],
    ) -> Result<(), OciError> {
        let base = reference.base_url();
        let head = format!("{base}/blobs/{digest}");
        if self.send(Method::HEAD, &head, None, None).await.is_ok() {
            return Ok(());
        }
        let start = format!("{base}/blobs/uploads/");
        let response = self.send(Method::POST, &start, None, Some(Vec::new())).await?;
        let location = response.headers().get(LOCATION).and_then(|v| v.to_str().ok()).ok_or_else(|| {
            OciError::Status {
                method: Method::POST,
                url: start.clone(),
                status: response.status(),
                body: "no Location header for the upload".into(),
            }
        })?;
        let base_url = Url::parse(&start).map_err(|_| OciError::BadReference {
            text: reference.to_string(),
            why: "it does not make a valid URL".into(),
        })?;
        let mut upload = base_url.join(location).map_err(|_| OciError::Status {
            method: Method::POST,
            url: start.clone(),
            status: response.status(),
            body: format!("the upload location {location:?} is not a URL"),
        })?;
        upload.query_pairs_mut().append_pair("digest", digest);
        self.send(Method::PUT, upload.as_str(), Some("application/octet-stream"), Some(bytes.to_vec()))
            .await?;
        Ok(())
    }
}

/// Parses `Bearer realm="…",service="…",scope="…"`.
fn parse_bearer_challenge(header: &str) -> Option<BTreeMap<String, String>> {
    let rest = header.trim().strip_prefix("Bearer ").or_else(|| header.trim().strip_prefix("bearer "))?;
    let mut params = BTreeMap::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let after = after.trim_start();
        let (value, next) = match after.strip_prefix('"') {
            Some(quoted) => {
                let end = quoted.find('"')?;
                (&quoted[..end], &quoted[end + 1..])
            }
            None => after.split_once(',').unwrap_or((after, "")),
        };
        params.insert(key.trim().to_ascii_lowercase(), value.to_string());
        rest = next.trim_start_matches([',', ' ']);
    }
    Some(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_with_tags_digests_and_ports() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("oci://127.0.0.1:5000/weir/airtable:0.2.0@{digest}")).unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "weir/airtable");
        assert_eq!(r.tag.as_deref(), Some("0.2.0"));
        assert_eq!(r.digest.as_deref(), Some(digest.as_str()));
        assert_eq!(r.manifest_ref(), digest);
        assert!(r.base_url().starts_with("http://127.0.0.1:5000/v2/weir/airtable"));
        let r = Reference::parse("ghcr.io/org/conn").unwrap();
        assert_eq!((r.manifest_ref(), r.base_url().starts_with("https://")), ("latest", true));
        assert_eq!(r.pinned(&digest).to_string(), format!("ghcr.io/org/conn@{digest}"));
        assert!(Reference::parse("localhost:5000/x:1").unwrap().is_loopback());
        assert!(Reference::parse("[::1]:5000/x").unwrap().is_loopback());
        assert!(!Reference::parse("127.0.0.1.example.com/x").unwrap().is_loopback());
    }

    #[test]
    fn references_that_would_bend_the_url_are_refused() {
        for bad in [
            "airtable",
            "noregistry/airtable",
            "127.0.0.1:5000/../x",
            "127.0.0.1:5000/Upper",
            "127.0.0.1:5000/x:bad/tag",
            "127.0.0.1:5000/x@sha256:short",
            "127.0.0.1:5000/x?q=1",
            "127.0.0.1:5000/x#frag",
            "user@host.example/x",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn bearer_challenges_are_read() {
        let p = parse_bearer_challenge(
            r#"Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:org/x:pull""#,
        )
        .unwrap();
        assert_eq!(p["realm"], "https://ghcr.io/token");
        assert_eq!(p["service"], "ghcr.io");
        assert_eq!(p["scope"], "repository:org/x:pull");
        assert!(parse_bearer_challenge("Basic realm=\"x\"").is_none());
    }
}
