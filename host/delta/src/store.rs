//! Where a table lives: a local folder or an object store (S3, Azure Blob Storage / ADLS Gen2,
//! Google Cloud Storage), and what makes commits to an object store safe.
//!
//! Three duties, in the order a table meets them:
//! 1. [`check_location`], before anything is read or written: the scheme is one this build
//!    serves, the URL carries no credentials, and no setting turns off what keeps commits safe;
//! 2. [`probe_conditional_writes`], when a sink opens a table: the store itself must refuse to
//!    create an object that already exists, since that refusal is all that stops two writers
//!    from both committing one version of the table;
//! 3. [`explain`] and [`redact`], when the store fails: one line that says what went wrong and
//!    which variable or profile supplied the credentials, and never a secret.

use std::collections::HashMap;
use std::error::Error as StdError;

use deltalake::DeltaTable;
use deltalake::logstore::object_store::{self, ObjectStore, ObjectStoreExt, PutMode, PutPayload, path::Path};

use crate::SinkError;

/// The kind of place a table URI names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// A local folder (a path, or `file://`).
    Local,
    /// `s3://` or `s3a://`: AWS S3 or an S3-compatible store.
    S3,
    /// `abfss://`, `abfs://`, `az://`, `azure://`, `adl://`: Azure Blob Storage and ADLS Gen2.
    Azure,
    /// `gs://`: Google Cloud Storage.
    Gcs,
}

impl Store {
    /// The store a URI names; `None` for a scheme weir does not know.
    pub fn of(uri: &str) -> Option<Store> {
        let Some((scheme, _)) = uri.split_once("://") else { return Some(Store::Local) };
        match scheme.to_ascii_lowercase().as_str() {
            "file" => Some(Store::Local),
            "s3" | "s3a" => Some(Store::S3),
            "abfss" | "abfs" | "az" | "azure" | "adl" => Some(Store::Azure),
            "gs" => Some(Store::Gcs),
            _ => None,
        }
    }

    /// Whether this build of weir can write there (the cargo features of `weir-delta`).
    pub fn built(self) -> bool {
        match self {
            Store::Local => true,
            Store::S3 => cfg!(feature = "s3"),
            Store::Azure => cfg!(feature = "azure"),
            Store::Gcs => cfg!(feature = "gcs"),
        }
    }

    fn feature(self) -> &'static str {
        match self {
            Store::Local => "",
            Store::S3 => "s3",
            Store::Azure => "azure",
            Store::Gcs => "gcs",
        }
    }

    /// What a bucket is called in this store.
    fn bucket(self) -> &'static str {
        match self {
            Store::Azure => "container",
            _ => "bucket",
        }
    }
}

/// True for a location in an object store rather than on this machine.
pub(crate) fn is_remote(uri: &str) -> bool {
    !matches!(Store::of(uri), Some(Store::Local))
}

/// Checks a table or warehouse location before anything touches it: a store this build serves,
/// no credentials in the URL, and no setting that turns off safe commits. Local paths pass.
pub fn check_location(uri: &str) -> Result<Store, SinkError> {
    let Some(store) = Store::of(uri) else {
        let scheme = uri.split_once("://").map_or("", |(s, _)| s);
        return Err(location(
            uri,
            format!(
                "weir writes Delta tables to local folders, s3://, abfss:// (or abfs://, az://) and gs:// \
                 locations, not {scheme}://"
            ),
        ));
    };
    if store == Store::Local {
        return Ok(store);
    }
    let url = url::Url::parse(uri).map_err(|e| location(uri, format!("not a valid URL: {e}")))?;
    credentials_in_url(store, &url)?;
    if !store.built() {
        return Err(location(
            uri,
            format!(
                "this build of weir has no {} support; rebuild with `cargo build --release -p weir --features {}`",
                store.feature(),
                store.feature()
            ),
        ));
    }
    if let Some(problem) = unsafe_setting(store) {
        return Err(SinkError::UnsafeCommits { uri: uri.to_string(), problem });
    }
    Ok(store)
}

fn location(uri: &str, problem: String) -> SinkError {
    SinkError::Location { uri: shown_uri(uri), problem }
}

/// The URI as it may be printed: without userinfo secrets or a query string.
fn shown_uri(uri: &str) -> String {
    match url::Url::parse(uri) {
        Ok(url) if url.scheme() != "file" => {
            let user = match Store::of(uri) {
                // abfss://container@account…: the user part names the container, not a person.
                Some(Store::Azure) if !url.username().is_empty() => format!("{}@", url.username()),
                _ if !url.username().is_empty() || url.password().is_some() => "***@".to_string(),
                _ => String::new(),
            };
            let query = if url.query().is_some() { "?***" } else { "" };
            format!("{}://{user}{}{}{query}", url.scheme(), url.host_str().unwrap_or(""), url.path())
        }
        _ => uri.to_string(),
    }
}

/// A warehouse URL must not carry credentials: they would end up in shell history, process
/// lists, logs and the run summary. Each store reads them from its usual places instead.
fn credentials_in_url(store: Store, url: &url::Url) -> Result<(), SinkError> {
    let uri = url.as_str();
    let instead = match store {
        Store::S3 => "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile (AWS_PROFILE)",
        Store::Azure => {
            "AZURE_STORAGE_ACCOUNT_KEY, AZURE_STORAGE_SAS_KEY or a service principal (AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, AZURE_TENANT_ID)"
        }
        Store::Gcs => "GOOGLE_APPLICATION_CREDENTIALS (a service-account file)",
        Store::Local => "",
    };
    // abfss://container@account.dfs.core.windows.net: the username is the container.
    let user_is_secret = store != Store::Azure && !url.username().is_empty();
    if url.password().is_some() || user_is_secret {
        return Err(location(
            uri,
            format!("the URL carries credentials (user:secret@); remove them and set {instead} instead"),
        ));
    }
    if let Some(query) = url.query() {
        let signed = query.split('&').any(|pair| {
            let key = pair.split('=').next().unwrap_or("").to_ascii_lowercase();
            ["sig", "sv", "se", "sp", "token", "secret", "key", "password", "credential", "signature"]
                .iter()
                .any(|k| key == *k || key.starts_with("x-amz-"))
        });
        let what = if signed { "a signature or SAS token" } else { "a query string" };
        return Err(location(
            uri,
            format!(
                "the URL carries {what}; a warehouse URL takes none. Remove it and set {instead} instead"
            ),
        ));
    }
    Ok(())
}

/// A setting that would let two writers commit the same table version; `None` when safe.
fn unsafe_setting(store: Store) -> Option<String> {
    if store != Store::S3 {
        return None;
    }
    for (name, value) in std::env::vars() {
        let key = name.to_ascii_lowercase();
        // object_store reads `AWS_CONDITIONAL_PUT` (any case, with or without `aws_`).
        if (key == "aws_conditional_put" || key == "conditional_put")
            && value.trim().eq_ignore_ascii_case("disabled")
        {
            return Some(format!(
                "{name}=disabled turns off S3 conditional writes (If-None-Match), which is what stops two \
                 writers from both committing the same table version; unset {name} (or set it to `etag`)"
            ));
        }
        if key == "aws_s3_locking_provider" && !value.trim().is_empty() {
            return Some(format!(
                "{name}={value} asks for the DynamoDB lock, which this delta-rs no longer has (it would \
                 ignore the setting); weir commits with S3 conditional writes instead. Unset {name}, and \
                 make sure no other writer of these tables still relies on the lock"
            ));
        }
    }
    None
}

/// Storage options weir adds to what delta-rs reads from the environment.
pub(crate) fn options(uri: &str) -> HashMap<String, String> {
    let mut options = HashMap::new();
    // With a custom endpoint (MinIO, R2, …) delta-rs skips the AWS SDK's credential chain, and
    // with it the profile files; a user who names a profile means it to be used.
    if Store::of(uri) == Some(Store::S3) && env("AWS_PROFILE").is_some() && env("AWS_ACCESS_KEY_ID").is_none()
    {
        options.insert("AWS_FORCE_CREDENTIAL_LOAD".into(), "true".into());
    }
    options
}

const PROBE_BODY: &[u8] =
    b"weir checks that this store refuses to create an object that exists; safe to delete\n";

/// Proves that the store behind `table` refuses a create-if-absent write of an object that
/// already exists (S3 `If-None-Match: *`, Azure and GCS preconditions). delta-rs commits a table
/// version by creating its log file that way, so this refusal is what makes one writer win each
/// version. A store that accepts the second write would let two writers both "commit" version
/// N, the second silently replacing the first; such a store is refused. Local folders need no
/// probe: the file system creates the log file atomically.
pub(crate) async fn probe_conditional_writes(uri: &str, table: &DeltaTable) -> Result<(), SinkError> {
    let Some(store) = Store::of(uri).filter(|s| *s != Store::Local) else { return Ok(()) };
    let objects = table.log_store().object_store(None);
    let path = Path::from(format!("_weir_probe/{}", unique_name()));
    let create = || PutMode::Create.into();
    let op = "write a probe object";
    objects
        .put_opts(&path, PutPayload::from_static(PROBE_BODY), create())
        .await
        .map_err(|e| store_error(uri, op, &e))?;
    let second = objects.put_opts(&path, PutPayload::from_static(PROBE_BODY), create()).await;
    // Best effort: a leftover probe is a few bytes under `_weir_probe/`, which Delta never reads.
    let _ = objects.delete(&path).await;
    match second {
        Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
        Ok(_) => Err(SinkError::UnsafeCommits { uri: uri.to_string(), problem: ignores_conditions(store) }),
        Err(object_store::Error::NotImplemented { .. }) => Err(SinkError::UnsafeCommits {
            uri: uri.to_string(),
            problem:
                "conditional writes are turned off for this store (is AWS_CONDITIONAL_PUT=disabled set?), \
                      and they are what stops two writers from both committing one table version; unset \
                      AWS_CONDITIONAL_PUT"
                    .to_string(),
        }),
        Err(e) => Err(store_error(uri, op, &e)),
    }
}

fn ignores_conditions(store: Store) -> String {
    let fix = match store {
        Store::S3 => {
            "Point AWS_ENDPOINT_URL at a store that supports S3 conditional writes (`If-None-Match: *` \
             on PutObject; AWS S3 does, and so do recent MinIO, Cloudflare R2 and moto 5.2). delta-rs no \
             longer offers a lock to fall back on"
        }
        _ => "Use the service itself rather than a gateway or emulator that drops the precondition",
    };
    format!(
        "the store accepted a second create-if-absent write of the same object, so it ignores \
         conditional writes and two writers could both commit the same table version. {fix}"
    )
}

fn unique_name() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{}-{nanos}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// A store failure as a [`SinkError::Store`], explained and redacted.
pub(crate) fn store_error(uri: &str, op: &'static str, error: &(dyn StdError + 'static)) -> SinkError {
    SinkError::Store { uri: uri.to_string(), op, problem: explain(uri, error) }
}

/// One line for a failed store operation: what went wrong, what to check (naming the variable
/// or profile that supplied the credentials), and the store's own words, with secrets removed.
pub(crate) fn explain(uri: &str, error: &(dyn StdError + 'static)) -> String {
    let store = Store::of(uri).unwrap_or(Store::Local);
    let said = redact(&chain_text(error));
    let lower = said.to_ascii_lowercase();
    let found = find::<object_store::Error>(error);
    let refused = matches!(
        found,
        Some(object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. })
    ) || [
        "invalidaccesskeyid",
        "signaturedoesnotmatch",
        "authenticationfailed",
        "authorizationfailure",
        "accessdenied",
        "expiredtoken",
        "invalidtoken",
    ]
    .iter()
    .any(|m| lower.contains(m));
    let no_bucket =
        ["nosuchbucket", "containernotfound", "bucket does not exist", "specified container does not exist"]
            .iter()
            .any(|m| lower.contains(m));
    let what = if refused {
        format!("the store refused the credentials. {}", credentials_hint(store))
    } else if no_bucket {
        format!(
            "the {bucket} does not exist; create it first (weir never creates {bucket}s), or check the URL{endpoint}",
            bucket = store.bucket(),
            endpoint = endpoint_hint(store).map(|e| format!(" and {e}")).unwrap_or_default()
        )
    } else if [
        "credential",
        "profile",
        "no providers",
        "token file",
        "imds",
        "instance metadata",
        "169.254.169.254",
        // The instance metadata service's paths, wherever AWS_METADATA_ENDPOINT points it.
        "/latest/api/token",
        "/latest/meta-data",
    ]
    .iter()
    .any(|m| lower.contains(m))
    {
        format!("no usable credentials were found. {}", credentials_hint(store))
    } else if ["connection refused", "dns error", "error sending request", "timed out", "connect error"]
        .iter()
        .any(|m| lower.contains(m))
    {
        format!("the store could not be reached; check {}", endpoint_hint(store).unwrap_or("the network"))
    } else {
        "the store failed".to_string()
    };
    format!("{what} (the store said: {said})")
}

/// Every distinct message of an error chain, outermost first, cut to a readable length.
fn chain_text(error: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(e) = next {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    // One line: stores answer with XML documents, which would break the error across lines.
    let mut all = parts.join(": ").split_whitespace().collect::<Vec<_>>().join(" ");
    if all.len() > 800 {
        let cut = (0..=800).rev().find(|i| all.is_char_boundary(*i)).unwrap_or(0);
        all.truncate(cut);
        all.push('…');
    }
    all
}

/// The first error of type `T` in a chain, looking through the boxes delta-rs and DataFusion use.
fn find<'a, T: StdError + 'static>(error: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        next = e.source();
    }
    None
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Which credentials the store's client will have used, by the variable or profile that holds
/// them, in the order delta-rs and object_store look.
fn credentials_hint(store: Store) -> String {
    match store {
        Store::S3 => s3_credentials_hint(),
        Store::Azure => azure_credentials_hint(),
        Store::Gcs => gcs_credentials_hint(),
        Store::Local => String::new(),
    }
}

fn s3_credentials_hint() -> String {
    let files = format!(
        "{} and {}",
        env("AWS_SHARED_CREDENTIALS_FILE").unwrap_or_else(|| "~/.aws/credentials".into()),
        env("AWS_CONFIG_FILE").unwrap_or_else(|| "~/.aws/config".into())
    );
    if env("AWS_ACCESS_KEY_ID").is_some() {
        let token = if env("AWS_SESSION_TOKEN").is_some() { " and AWS_SESSION_TOKEN" } else { "" };
        format!(
            "weir used AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY{token} from the environment: check that they \
             are current and allowed on this bucket (or unset them to use a profile)"
        )
    } else if let Some(profile) = env("AWS_PROFILE") {
        format!(
            "weir used profile `{profile}` (AWS_PROFILE) from {files}: check that the profile exists there and holds valid credentials"
        )
    } else if env("AWS_WEB_IDENTITY_TOKEN_FILE").is_some() {
        "weir used web identity (AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE): check the role and its trust policy".into()
    } else {
        format!(
            "No AWS_ACCESS_KEY_ID or AWS_PROFILE is set, so weir looked for the default profile in {files}, \
             then for an instance or container role: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or \
             AWS_PROFILE"
        )
    }
}

fn azure_credentials_hint() -> String {
    let account =
        env("AZURE_STORAGE_ACCOUNT_NAME").map(|a| format!(" for account `{a}`")).unwrap_or_default();
    let first = |names: &[&'static str]| names.iter().copied().find(|n| env(n).is_some());
    if let Some(key) =
        first(&["AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_ACCESS_KEY", "AZURE_STORAGE_MASTER_KEY"])
    {
        format!("weir used {key}{account} from the environment: check that it is that account's key")
    } else if let Some(sas) = first(&["AZURE_STORAGE_SAS_KEY", "AZURE_STORAGE_SAS_TOKEN"]) {
        format!(
            "weir used the SAS token in {sas}: check that it is current and allows read, write, list and delete on the container"
        )
    } else if env("AZURE_CLIENT_SECRET").is_some() {
        "weir used the service principal in AZURE_CLIENT_ID, AZURE_CLIENT_SECRET and AZURE_TENANT_ID: check \
         them, and that the principal has the Storage Blob Data Contributor role"
            .into()
    } else if env("AZURE_FEDERATED_TOKEN_FILE").is_some() {
        "weir used workload identity (AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE)".into()
    } else if env("AZURE_STORAGE_USE_EMULATOR").is_some() {
        "weir used the emulator's well-known account (AZURE_STORAGE_USE_EMULATOR)".into()
    } else {
        "No AZURE_STORAGE_ACCOUNT_KEY, AZURE_STORAGE_SAS_KEY or AZURE_CLIENT_SECRET is set, so weir used the \
         managed identity of this machine: set one of them (with AZURE_STORAGE_ACCOUNT_NAME)"
            .into()
    }
}

fn gcs_credentials_hint() -> String {
    let first = |names: &[&'static str]| names.iter().copied().find(|n| env(n).is_some());
    match first(&["GOOGLE_SERVICE_ACCOUNT", "GOOGLE_SERVICE_ACCOUNT_PATH", "GOOGLE_APPLICATION_CREDENTIALS"]) {
        Some(var) => format!("weir used the service-account file in {var}: check that it is valid and may write the bucket"),
        None if env("GOOGLE_SERVICE_ACCOUNT_KEY").is_some() => {
            "weir used the service-account key in GOOGLE_SERVICE_ACCOUNT_KEY: check that it may write the bucket".into()
        }
        None => "No GOOGLE_APPLICATION_CREDENTIALS is set, so weir used the metadata server: set it to a service-account file".into(),
    }
}

/// Which setting chose the endpoint that could not be reached.
fn endpoint_hint(store: Store) -> Option<&'static str> {
    match store {
        Store::S3 if env("AWS_ENDPOINT_URL").is_some() => Some("AWS_ENDPOINT_URL"),
        Store::S3 => Some("AWS_REGION"),
        Store::Azure if env("AZURITE_BLOB_STORAGE_URL").is_some() => Some("AZURITE_BLOB_STORAGE_URL"),
        Store::Azure if env("AZURE_STORAGE_ENDPOINT").is_some() => Some("AZURE_STORAGE_ENDPOINT"),
        Store::Azure => Some("the account name in the URL"),
        _ => None,
    }
}

/// Whether an environment variable holds a secret of a store's credentials.
fn is_secret_variable(name: &str) -> bool {
    let name = name.to_ascii_uppercase();
    ["AWS_", "AZURE_", "GOOGLE_", "GCS_"].iter().any(|p| name.starts_with(p))
        && ["SECRET", "KEY", "TOKEN", "SAS", "PASSWORD", "CREDENTIAL"].iter().any(|w| name.contains(w))
}

/// `text` with every store secret from the environment, and every signature-like query
/// parameter value, replaced by `***`.
pub fn redact(text: &str) -> String {
    let mut out = text.to_string();
    for (name, value) in std::env::vars() {
        // Short values are flags ("true"), never keys; replacing them would garble the text.
        if is_secret_variable(&name) && value.len() >= 8 {
            out = out.replace(&value, "***");
        }
    }
    redact_query_values(&out)
}

/// Replaces the values of query parameters that carry signatures or tokens (a SAS token's
/// `sig`, S3 presigned `X-Amz-*`), which request URLs inside client errors may show.
fn redact_query_values(text: &str) -> String {
    const KEYS: &[&str] =
        &["sig=", "signature=", "x-amz-signature=", "x-amz-credential=", "x-amz-security-token=", "token="];
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let at_param = i == 0 || matches!(text.as_bytes()[i - 1], b'?' | b'&');
        let key = if at_param { KEYS.iter().find(|k| lower[i..].starts_with(*k)) } else { None };
        match key {
            Some(key) => {
                out.push_str(&text[i..i + key.len()]);
                out.push_str("***");
                i += key.len();
                while i < text.len()
                    && !matches!(text.as_bytes()[i], b'&' | b' ' | b')' | b'"' | b'\'' | b'\n')
                {
                    i += 1;
                }
            }
            None => {
                let ch = text[i..].chars().next().map_or(1, char::len_utf8);
                out.push_str(&text[i..i + ch]);
                i += ch;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_are_known_by_scheme() {
        assert_eq!(Store::of("/tmp/w"), Some(Store::Local));
        assert_eq!(Store::of("file:///tmp/w"), Some(Store::Local));
        assert_eq!(Store::of("s3://b/p"), Some(Store::S3));
        assert_eq!(Store::of("abfss://c@a.dfs.core.windows.net/p"), Some(Store::Azure));
        assert_eq!(Store::of("gs://b/p"), Some(Store::Gcs));
        assert_eq!(Store::of("ftp://b/p"), None);
    }

    #[test]
    fn credentials_in_a_url_are_refused_and_never_echoed() {
        for uri in [
            "s3://AKIAEXAMPLE:wJalrXUtnFEMIsecret@bucket/prefix",
            "s3://AKIAEXAMPLE@bucket/prefix",
            "abfss://container:accountkeysecret@acct.dfs.core.windows.net/prefix",
            "abfss://container@acct.dfs.core.windows.net/prefix?sv=2022&sig=c2VjcmV0c2ln",
            "gs://user:hunter2secret@bucket/prefix",
        ] {
            let Err(err) = check_location(uri) else { panic!("{uri} was accepted") };
            let text = err.to_string();
            assert!(matches!(err, SinkError::Location { .. }), "{text}");
            for secret in
                ["wJalrXUtnFEMIsecret", "AKIAEXAMPLE", "accountkeysecret", "c2VjcmV0c2ln", "hunter2secret"]
            {
                assert!(!text.contains(secret), "{uri}: the error shows {secret}: {text}");
            }
            assert!(text.contains("instead"), "{uri}: the error names where credentials go: {text}");
        }
        // The container of an abfss URL is not a credential.
        if Store::Azure.built() {
            assert!(check_location("abfss://container@acct.dfs.core.windows.net/prefix").is_ok());
        }
    }

    #[test]
    fn unknown_schemes_are_refused_with_the_known_ones() {
        let err = check_location("ftp://host/x").unwrap_err().to_string();
        assert!(err.contains("s3://") && err.contains("abfss://"), "{err}");
    }

    #[test]
    fn signature_query_values_are_redacted() {
        let text =
            "error sending request for url (https://a.blob.core.windows.net/c/x?sv=2022&sig=abc%2Fdef&se=1)";
        let out = redact_query_values(text);
        assert!(!out.contains("abc%2Fdef"), "{out}");
        assert!(out.contains("sig=***&se=1"), "{out}");
        assert_eq!(redact_query_values("a design=1 ?nosig=2"), "a design=1 ?nosig=2");
    }

    #[test]
    fn secret_variables_are_recognised_by_name() {
        for name in [
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AZURE_STORAGE_ACCOUNT_KEY",
            "AZURE_STORAGE_SAS_KEY",
            "AZURE_CLIENT_SECRET",
            "GOOGLE_SERVICE_ACCOUNT_KEY",
        ] {
            assert!(is_secret_variable(name), "{name}");
        }
        for name in ["AWS_REGION", "AWS_ENDPOINT_URL", "AZURE_STORAGE_ACCOUNT_NAME", "PATH"] {
            assert!(!is_secret_variable(name), "{name}");
        }
    }
}
