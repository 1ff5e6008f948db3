//! `{name}` templates over a connection's parameters, as used by manifests.

use std::collections::BTreeMap;

/// Why a template is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unmatched `}}`")]
    Unmatched,
    #[error("unclosed `{{`")]
    Unclosed,
    #[error("bad placeholder {{{0}}}")]
    BadPlaceholder(String),
    #[error("no value for {{{0}}}")]
    Missing(String),
}

/// The placeholder names in a template, in order; `{{` and `}}` are literal braces.
pub fn placeholders(template: &str) -> Result<Vec<String>, TemplateError> {
    let mut names = Vec::new();
    walk(template, |piece| {
        if let Piece::Name(n) = piece {
            names.push(n.to_string());
        }
    })?;
    Ok(names)
}

/// Renders a template; every placeholder must have a value.
pub fn render(template: &str, values: &BTreeMap<String, String>) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len());
    let mut missing = None;
    walk(template, |piece| match piece {
        Piece::Text(t) => out.push_str(t),
        Piece::Name(n) => match values.get(n) {
            Some(v) => out.push_str(v),
            None => missing = missing.take().or(Some(n.to_string())),
        },
    })?;
    match missing {
        Some(n) => Err(TemplateError::Missing(n)),
        None => Ok(out),
    }
}

enum Piece<'a> {
    Text(&'a str),
    Name(&'a str),
}

fn walk<'a>(template: &'a str, mut f: impl FnMut(Piece<'a>)) -> Result<(), TemplateError> {
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        f(Piece::Text(&rest[..i]));
        let brace = &rest[i..i + 1];
        if rest[i + 1..].starts_with(brace) {
            f(Piece::Text(brace));
            rest = &rest[i + 2..];
            continue;
        }
        if brace == "}" {
            return Err(TemplateError::Unmatched);
        }
        let end = rest[i..].find('}').ok_or(TemplateError::Unclosed)? + i;
        let name = &rest[i + 1..end];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(TemplateError::BadPlaceholder(name.to_string()));
        }
        f(Piece::Name(name));
        rest = &rest[end + 1..];
    }
    f(Piece::Text(rest));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_reports_missing_values() {
        let values = BTreeMap::from([("base_url".to_string(), "https://api.airtable.com".to_string())]);
        assert_eq!(render("{base_url}", &values).unwrap(), "https://api.airtable.com");
        assert_eq!(render("a{{b}}c", &values).unwrap(), "a{b}c");
        assert_eq!(render("Bearer {token}", &values).unwrap_err().to_string(), "no value for {token}");
        assert_eq!(placeholders("x{a}y{b_2}").unwrap(), ["a", "b_2"]);
        assert!(placeholders("{a").is_err());
        assert!(placeholders("{a b}").is_err());
    }
}
