//! Vetted connectors through the `weir` binary: a component from a path runs only when a trusted
//! key signed it (or the connection allows unsigned connectors, and then every command says
//! so); installed connectors are found by name and pinned; an upgrade that asks for more waits
//! for approval; refusals say what would allow them and change nothing. The signing and store
//! mechanics themselves are tested in `weir-vet`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::text;

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("shards.wasm"), weir_artifacts::SHARDS).unwrap();
        Env { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn weir(&self, args: &[&str]) -> Output {
        common::weir_command()
            .current_dir(self.dir.path())
            .env_remove("WEIR_ALLOW_UNSIGNED")
            .env("WEIR_HOME", self.path("home"))
            .env("WEIR_CACHE_DIR", self.path("cache"))
            .args(args)
            .output()
            .expect("weir runs")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.weir(args);
        assert!(out.status.success(), "weir {args:?}:\n{}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn fails(&self, args: &[&str]) -> String {
        let out = self.weir(args);
        assert!(!out.status.success(), "weir {args:?} should fail:\n{}", text(&out));
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn connections(&self, connector: &str, extra: &str) -> String {
        let path = self.path("connections.toml");
        std::fs::write(&path, format!("[connections.s]\nconnector = \"{connector}\"\n{extra}")).unwrap();
        path.to_string_lossy().into_owned()
    }

    /// Everything under the weir home, as (path, bytes), to show a refusal changed nothing.
    fn home_snapshot(&self) -> Vec<(PathBuf, Vec<u8>)> {
        fn walk(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
            let Ok(entries) = std::fs::read_dir(dir) else { return };
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else {
                    out.push((p.clone(), std::fs::read(&p).unwrap_or_default()));
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.path("home"), &mut out);
        out.sort();
        out
    }
}

#[test]
fn a_component_from_a_path_runs_only_when_signed_by_a_trusted_key() {
    let env = Env::new();
    let conns = env.connections("shards.wasm", "");
    // Unsigned: refused, naming what would allow it; nothing compiled, nothing read.
    let err = env.fails(&["tables", "--connections", &conns]);
    assert!(err.contains("not signed") && err.contains("weir sign"), "{err}");
    assert!(err.contains("allow_unsigned") || err.contains("--allow-unsigned"), "{err}");
    // Allowed unsigned: it runs, and says so.
    let out = env.weir(&["tables", "--connections", &conns, "--allow-unsigned"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no trusted key signed"), "{}", text(&out));

    // Signed by a key that is not trusted yet: refused, naming `weir trust add`.
    env.ok(&["key", "generate", "--out", "keys"]);
    env.ok(&["sign", "shards.wasm", "--key", "keys/weir.key", "--out", "signed.wasm"]);
    let conns = env.connections("signed.wasm", "");
    let err = env.fails(&["tables", "--connections", &conns]);
    assert!(err.contains("weir trust add"), "{err}");
    // Trusted: it runs without a word about signatures.
    env.ok(&["trust", "add", "keys/weir.pub", "--name", "team"]);
    let out = env.weir(&["tables", "--connections", &conns]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "events");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("signed"), "{}", text(&out));
    assert!(env.ok(&["verify", "signed.wasm"]).contains("team"));

    // One byte changed anywhere after signing: refused as tampered, and verify fails too.
    let mut tampered = std::fs::read(env.path("signed.wasm")).unwrap();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 1;
    std::fs::write(env.path("tampered.wasm"), tampered).unwrap();
    let conns = env.connections("tampered.wasm", "allow_unsigned = true\n");
    let err = env.fails(&["tables", "--connections", &conns]);
    assert!(err.contains("changed after it was signed"), "{err}");
    env.fails(&["verify", "tampered.wasm"]);
}

#[test]
fn installed_connectors_are_found_by_name_and_upgrades_that_ask_for_more_wait_for_approval() {
    let env = Env::new();
    env.ok(&["key", "generate", "--out", "keys"]);
    env.ok(&["trust", "add", "keys/weir.pub", "--name", "team"]);
    env.ok(&["sign", "shards.wasm", "--key", "keys/weir.key"]);
    env.ok(&["connector", "install", "shards.wasm"]);
    let list = env.ok(&["connector", "list", "--json"]);
    assert!(list.contains("\"shards\"") && list.contains("0.2.0"), "{list}");
    // `connector = "shards"` is the pinned installed version.
    let conns = env.connections("shards", "");
    assert_eq!(env.ok(&["tables", "--connections", &conns]).trim(), "events");
    let inspect = env.ok(&["inspect", "shards"]);
    assert!(inspect.contains("installed shards@0.2.0") && inspect.contains("signed by team"), "{inspect}");

    // Version 0.3.0 asks for a network origin 0.2.0 did not have.
    let wider = weir_tests::repackage(weir_artifacts::SHARDS, "tests/components/shards/manifest.toml", |m| {
        m.replace("version = \"0.2.0\"", "version = \"0.3.0\"")
            + "\n[network]\nallow = [\"https://collector.example.com\"]\n"
    });
    std::fs::write(env.path("wider.wasm"), wider).unwrap();
    env.ok(&["sign", "wider.wasm", "--key", "keys/weir.key"]);
    let diff = env.ok(&["connector", "diff", "shards", "0.2.0", "wider.wasm"]);
    assert!(diff.contains("+") && diff.contains("https://collector.example.com"), "{diff}");
    let before = env.home_snapshot();
    let err = env.fails(&["connector", "upgrade", "shards", "--to", "wider.wasm"]);
    assert!(err.contains("https://collector.example.com") && err.contains("--approve"), "{err}");
    assert_eq!(env.home_snapshot(), before, "a refused upgrade changed the store");
    env.ok(&["connector", "upgrade", "shards", "--to", "wider.wasm", "--approve"]);
    assert!(env.ok(&["inspect", "shards"]).contains("shards@0.3.0"));
    // Rolled back, the name means 0.2.0 again; a pin to a version not installed is refused.
    env.ok(&["connector", "rollback", "shards"]);
    assert!(env.ok(&["inspect", "shards"]).contains("shards@0.2.0"));
    let err = env.fails(&["connector", "pin", "shards@9.9.9"]);
    assert!(err.contains("9.9.9") && err.contains("weir connector install"), "{err}");
}
