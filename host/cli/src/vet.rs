//! `weir key`, `sign`, `verify`, `trust` and `connector`: the vetting commands, each a call
//! into `weir-vet` whose result is printed as text or JSON.

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;
use serde::Serialize;
use weir_vet::InstallOptions;

/// `weir key …`.
#[derive(Subcommand)]
pub enum KeyCommand {
    /// Write a new Ed25519 key pair (weir.key, owner-only, and weir.pub) into DIR.
    Generate {
        #[arg(long)]
        out: PathBuf,
    },
}

/// `weir trust …`.
#[derive(Subcommand)]
pub enum TrustCommand {
    /// Trust a public key: connectors it signed may run.
    Add {
        /// The public key file (weir.pub, or a wasmsign2 public key).
        public_key: PathBuf,
        #[arg(long)]
        name: String,
    },
    /// The trusted keys.
    List,
    /// Stop trusting a key (connectors only it signed stop running).
    Remove { name: String },
}

/// `weir connector …`.
#[derive(Subcommand)]
pub enum ConnectorCommand {
    /// Install a component from a file or a Wasm OCI artifact (host:port/repo:tag or …@sha256:…).
    Install {
        source: String,
        /// Install a component that no trusted key signed (never one whose signature is broken).
        #[arg(long)]
        allow_unsigned: bool,
        /// Approve its capabilities, including an auth rule that sends a secret to a fixed origin.
        #[arg(long)]
        approve: bool,
    },
    /// The installed connectors and their pins.
    List,
    /// One connector, or one of its versions: NAME[@VERSION].
    Info { connector: String },
    /// Remove an installed version: NAME@VERSION.
    Remove { connector: String },
    /// The capability change between two versions (installed versions or files), as +/- lines.
    Diff { name: String, from: String, to: String },
    /// Pin a newer version (or a file); refused when it asks for more, until --approve.
    Upgrade {
        name: String,
        #[arg(long)]
        to: String,
        #[arg(long)]
        approve: bool,
    },
    /// Pin an installed version: NAME@VERSION.
    Pin { connector: String },
    /// Go back to the version pinned before.
    Rollback { name: String },
    /// Publish an installed version as a Wasm OCI artifact.
    Push { connector: String, reference: String },
}

fn print<T: Serialize + std::fmt::Display>(value: &T, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        println!("{value}");
    }
    Ok(())
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> Result<T> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(f))
}

pub fn key(command: KeyCommand, json: bool) -> Result<()> {
    match command {
        KeyCommand::Generate { out } => print(&weir_vet::key_generate(&out)?, json),
    }
}

pub fn sign(file: PathBuf, key: PathBuf, out: Option<PathBuf>, json: bool) -> Result<()> {
    print(&weir_vet::sign(&file, &key, out.as_deref())?, json)
}

pub fn verify(file: PathBuf, key: Option<PathBuf>, json: bool) -> Result<()> {
    print(&weir_vet::verify(&weir_vet::weir_home(), &file, key.as_deref())?, json)
}

pub fn trust(command: TrustCommand, json: bool) -> Result<()> {
    let root = weir_vet::weir_home();
    match command {
        TrustCommand::Add { public_key, name } => {
            print(&weir_vet::trust_add(&root, &public_key, &name)?, json)
        }
        TrustCommand::List => print(&weir_vet::trust_list(&root)?, json),
        TrustCommand::Remove { name } => print(&weir_vet::trust_remove(&root, &name)?, json),
    }
}

pub fn connector(command: ConnectorCommand, json: bool) -> Result<()> {
    let root = weir_vet::weir_home();
    match command {
        ConnectorCommand::Install { source, allow_unsigned, approve } => {
            let options = InstallOptions { allow_unsigned, approve };
            print(&block_on(weir_vet::connector_install(&root, &source, options))??, json)
        }
        ConnectorCommand::List => print(&weir_vet::connector_list(&root)?, json),
        ConnectorCommand::Info { connector } => print(&weir_vet::connector_info(&root, &connector)?, json),
        ConnectorCommand::Remove { connector } => {
            print(&weir_vet::connector_remove(&root, &connector)?, json)
        }
        ConnectorCommand::Diff { name, from, to } => {
            print(&weir_vet::connector_diff(&root, &name, &from, &to)?, json)
        }
        ConnectorCommand::Upgrade { name, to, approve } => {
            print(&weir_vet::connector_upgrade(&root, &name, &to, approve)?, json)
        }
        ConnectorCommand::Pin { connector } => print(&weir_vet::connector_pin(&root, &connector)?, json),
        ConnectorCommand::Rollback { name } => print(&weir_vet::connector_rollback(&root, &name)?, json),
        ConnectorCommand::Push { connector, reference } => {
            print(&block_on(weir_vet::connector_push(&root, &connector, &reference))??, json)
        }
    }
}
