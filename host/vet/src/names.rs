//! Names that become file names: connector names, versions and trust-store key names.
//!
//! They are checked before any file is touched. Together with `cap-std`'s directory handles
//! (which refuse `..`, absolute paths and symlinks that leave the directory) this keeps every
//! name inside the user's weir directory: a name is letters, digits, `-` and `_` only, and a
//! version is a semantic version, so neither can hold `/`, `..` or a leading dot.

use std::fmt;

use serde::Serialize;

/// The longest name accepted, so that file names stay well within every file system's limit.
pub const MAX_NAME: usize = 64;

/// Why a name or version was refused.
#[derive(Debug, thiserror::Error)]
pub enum NameError {
    #[error(
        "{what} {name:?} is refused: use 1 to {MAX_NAME} ASCII letters, digits, `-` or `_` (no `/`, `..` or paths)"
    )]
    BadName { what: &'static str, name: String },
    #[error("version {version:?} is refused: it must be a semantic version such as 0.2.0 ({why})")]
    BadVersion { version: String, why: String },
    #[error("{text:?} is not NAME or NAME@VERSION")]
    BadReference { text: String },
}

/// Checks a connector or key name.
pub fn check_name(what: &'static str, name: &str) -> Result<(), NameError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok { Ok(()) } else { Err(NameError::BadName { what, name: name.to_string() }) }
}

/// Checks a version and returns it parsed, for ordering.
pub fn check_version(version: &str) -> Result<semver::Version, NameError> {
    let bad = |why: String| NameError::BadVersion { version: version.to_string(), why };
    if version.len() > MAX_NAME {
        return Err(bad(format!("longer than {MAX_NAME} characters")));
    }
    semver::Version::parse(version).map_err(|e| bad(e.to_string()))
}

/// `NAME` or `NAME@VERSION`, as a connection's `connector` key and the commands spell it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnectorRef {
    pub name: String,
    pub version: Option<String>,
}

impl ConnectorRef {
    /// Parses and checks `NAME[@VERSION]`.
    pub fn parse(text: &str) -> Result<ConnectorRef, NameError> {
        let (name, version) = match text.split_once('@') {
            Some((name, version)) => (name, Some(version)),
            None => (text, None),
        };
        check_name("connector name", name)?;
        if let Some(version) = version {
            check_version(version)?;
        }
        Ok(ConnectorRef { name: name.to_string(), version: version.map(str::to_string) })
    }

    /// Parses `NAME@VERSION`, where the version is required.
    pub fn parse_exact(text: &str) -> Result<(String, String), NameError> {
        match ConnectorRef::parse(text)? {
            ConnectorRef { name, version: Some(version) } => Ok((name, version)),
            _ => Err(NameError::BadReference { text: format!("{text} (NAME@VERSION is needed here)") }),
        }
    }
}

impl fmt::Display for ConnectorRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.version {
            Some(v) => write!(f, "{}@{v}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_escape_a_directory_are_refused() {
        for bad in ["", "..", ".", "a/b", "/etc/passwd", "../x", "a\\b", "a b", "a\0", "é", &"x".repeat(65)]
        {
            assert!(check_name("connector name", bad).is_err(), "{bad:?} was accepted");
        }
        for good in ["airtable", "my-connector_2", "A1"] {
            check_name("connector name", good).unwrap();
        }
    }

    #[test]
    fn versions_are_semantic_versions_only() {
        for bad in ["", "1", "1.0", "../1.0.0", "1.0.0/..", "1.0.0/x", "/1.0.0", "1.0.0+a..b", "v1.0.0"] {
            assert!(check_version(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(check_version("0.2.0-beta.1+build.7").is_ok());
    }

    #[test]
    fn references_split_at_the_at_sign() {
        let r = ConnectorRef::parse("airtable@0.2.0").unwrap();
        assert_eq!((r.name.as_str(), r.version.as_deref()), ("airtable", Some("0.2.0")));
        assert_eq!(ConnectorRef::parse("airtable").unwrap().version, None);
        assert!(ConnectorRef::parse("../airtable@0.2.0").is_err());
        assert!(ConnectorRef::parse("airtable@../../x").is_err());
        assert!(ConnectorRef::parse_exact("airtable").is_err());
    }
}
