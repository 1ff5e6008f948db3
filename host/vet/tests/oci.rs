//! Push to and pull from a real OCI registry on loopback: Debian's `docker-registry`
//! (the CNCF distribution registry), started here with its storage in a temporary folder.
//! Install it with `apt-get install -y docker-registry`; `WEIR_DOCKER_REGISTRY` may name
//! another binary. Without it these tests print a notice and check nothing.

mod common;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use weir_vet::oci::{self, OciError, Reference};
use weir_vet::{Error, InstallOptions, Store};

/// A registry process listening on 127.0.0.1, stopped when dropped.
struct Registry {
    child: Child,
    address: String,
    storage: tempfile::TempDir,
}

impl Registry {
    fn start() -> Option<Registry> {
        let binary = std::env::var_os("WEIR_DOCKER_REGISTRY")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/bin/docker-registry"));
        if !binary.exists() {
            // CI installs the registry: there, a missing one is a failure, not a skip.
            assert!(
                std::env::var_os("WEIR_REQUIRE_REGISTRY").is_none(),
                "WEIR_REQUIRE_REGISTRY is set but there is no OCI registry binary at {}; \
                 install it with `apt-get install -y docker-registry`",
                binary.display()
            );
            eprintln!(
                "\n!!!!!!!!\n!!! SKIPPED: no OCI registry binary at {}; the OCI push/pull tests checked NOTHING.\n\
                 !!! Install it with `apt-get install -y docker-registry` (or set WEIR_DOCKER_REGISTRY).\n!!!!!!!!\n",
                binary.display()
            );
            return None;
        }
        let storage = tempfile::tempdir().unwrap();
        // Bind port 0 to learn a free port, then hand it to the registry.
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let address = format!("127.0.0.1:{port}");
        let config = storage.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
                 http:\n  addr: {address}\n",
                storage.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new(&binary)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let registry = Registry { child, address, storage };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&registry.address).is_err() {
            assert!(
                Instant::now() < deadline,
                "the registry did not start listening on {}",
                registry.address
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(registry)
    }

    /// The file where the registry keeps the blob with `digest`.
    fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.storage.path().join(format!("data/docker/registry/v2/blobs/sha256/{}/{hex}/data", &hex[..2]))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// A store with `x@0.1.0` installed, signed by a key that the second store trusts too.
fn publisher_and_consumer() -> (tempfile::TempDir, tempfile::TempDir, Vec<u8>) {
    let (publisher, consumer) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let key = trusted_key(publisher.path(), "alice");
    weir_vet::TrustStore::open(consumer.path()).unwrap().add("alice", &key.public_key()).unwrap();
    let bytes = signed("x", "0.1.0", &["{base_url}"], &key);
    Store::open(publisher.path()).unwrap().install(&bytes, "file:x.wasm", InstallOptions::default()).unwrap();
    (publisher, consumer, bytes)
}

/// Pushes the publisher's `x@0.1.0` to the registry as `weir/x:0.1.0`.
fn push_x(rt: &tokio::runtime::Runtime, registry: &Registry, publisher: &std::path::Path) -> oci::Pushed {
    let reference = format!("{}/weir/x:0.1.0", registry.address);
    rt.block_on(weir_vet::connector_push(publisher, "x@0.1.0", &reference)).unwrap()
}

#[test]
fn push_then_install_by_tag_records_the_digest_and_installs_the_same_bytes() {
    let Some(registry) = Registry::start() else { return };
    let (publisher, consumer, bytes) = publisher_and_consumer();
    let rt = runtime();
    let pushed = push_x(&rt, &registry, publisher.path());
    assert_eq!(pushed.layer_digest, oci::digest_of(&bytes));
    assert_eq!(pushed.pinned, format!("{}/weir/x@{}", registry.address, pushed.manifest_digest));

    let by_tag = format!("{}/weir/x:0.1.0", registry.address);
    let installed = rt
        .block_on(weir_vet::connector_install(consumer.path(), &by_tag, InstallOptions::default()))
        .unwrap();
    assert_eq!(installed.connector.source, format!("oci://{}", pushed.pinned));
    assert_eq!(installed.connector.signers[0].name, "alice");
    let store = Store::open(consumer.path()).unwrap();
    let resolved = store.resolve("x").unwrap().unwrap();
    assert_eq!(store.load(&resolved).unwrap(), bytes);

    // By digest, the same artifact; the manifest is what the registry stored for the tag.
    let pulled = rt.block_on(oci::pull(&Reference::parse(&pushed.pinned).unwrap())).unwrap();
    assert_eq!(pulled.bytes, bytes);
    assert_eq!(pulled.pinned.to_string(), pushed.pinned);
}

#[test]
fn a_layer_changed_in_the_registry_is_refused_by_its_digest() {
    let Some(registry) = Registry::start() else { return };
    let (publisher, consumer, bytes) = publisher_and_consumer();
    let rt = runtime();
    let pushed = push_x(&rt, &registry, publisher.path());

    // The registry's storage is ours: change one byte of the component, keeping its size.
    let blob = registry.blob_path(&pushed.layer_digest);
    let mut changed = std::fs::read(&blob).unwrap();
    assert_eq!(changed, bytes);
    *changed.last_mut().unwrap() ^= 1;
    std::fs::write(&blob, &changed).unwrap();

    let before = snapshot(consumer.path());
    let err = rt
        .block_on(weir_vet::connector_install(consumer.path(), &pushed.pinned, InstallOptions::default()))
        .unwrap_err();
    match &err {
        Error::Oci(OciError::DigestMismatch { what, .. }) => assert_eq!(*what, "component layer"),
        other => panic!("expected a digest mismatch, got {other}"),
    }
    assert!(err.to_string().contains(&pushed.layer_digest), "{err}");
    assert_eq!(snapshot(consumer.path()), before);
}

#[test]
fn a_manifest_that_does_not_match_the_pinned_digest_is_refused() {
    let Some(registry) = Registry::start() else { return };
    let (publisher, _consumer, _bytes) = publisher_and_consumer();
    let rt = runtime();
    let pushed = push_x(&rt, &registry, publisher.path());

    // Rewrite the stored manifest: still valid JSON, other annotations.
    let blob = registry.blob_path(&pushed.manifest_digest);
    let manifest = std::fs::read_to_string(&blob).unwrap();
    assert!(manifest.contains("\"0.1.0\""), "{manifest}");
    std::fs::write(&blob, manifest.replace("\"0.1.0\"", "\"0.9.9\"")).unwrap();

    let err = rt.block_on(oci::pull(&Reference::parse(&pushed.pinned).unwrap())).unwrap_err();
    assert!(matches!(err, OciError::DigestMismatch { what: "manifest", .. }), "{err}");
}

#[test]
fn a_reference_to_nothing_says_what_the_registry_answered() {
    let Some(registry) = Registry::start() else { return };
    let rt = runtime();
    let missing = Reference::parse(&format!("{}/weir/missing:1.0.0", registry.address)).unwrap();
    let err = rt.block_on(oci::pull(&missing)).unwrap_err();
    assert!(matches!(err, OciError::Status { status, .. } if status == 404), "{err}");
    // The store is unchanged by a failed pull.
    let home = tempfile::tempdir().unwrap();
    let result = rt.block_on(weir_vet::connector_install(
        home.path(),
        &missing.to_string(),
        InstallOptions::default(),
    ));
    assert!(result.is_err());
    assert!(Store::open(home.path()).unwrap().list().unwrap().connectors.is_empty());
}
