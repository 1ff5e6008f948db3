//! One page of a repository's issue listing, `GET /repos/{owner}/{repo}/issues?state=all&
//! sort=updated&direction=asc&since=…`, and the offset that resumes it.
//!
//! Why the next page is usually asked by `since` rather than by the `Link` header's next URL:
//! GitHub's page links count positions (`page=2`) in a listing sorted by `updated_at`, and an
//! issue updated while the listing is read moves from the front to the end, shifting every later
//! one a place forward, so the issue that was first on page 2 ends up last on page 1, already
//! read, and is never read at all, until it changes again. Asking for the next page as "updated
//! at or after the last one seen" (keyset paging) cannot skip anything. The `Link` header still
//! decides whether there is more, and its next URL is followed in the one case keyset paging
//! cannot move: a whole page updated in the same second.
//!
//! `since` includes its own second, so the issues seen at exactly that second are kept in the
//! offset and skipped when they come again: a rerun reads only what changed.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use weir_connector_sdk::{ConnectorError, Host, Request, Response};

/// Where a listing stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Offset {
    /// The newest `updated_at` read (GitHub's format, which `since` takes back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// The ids read that were updated at exactly `since`, ascending.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seen: Vec<u64>,
    /// The `Link` header's next page, while a page did not move `since`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

impl Offset {
    pub fn parse(text: Option<&str>) -> Result<Offset, ConnectorError> {
        match text {
            None => Ok(Offset::default()),
            Some(text) => serde_json::from_str(text).map_err(|e| {
                ConnectorError::UnsupportedOffset(format!("{text:?} is not a GitHub listing offset: {e}"))
            }),
        }
    }

    pub fn render(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }
}

/// A page of the listing: its items, and the offset after it (None when the listing is
/// exhausted: nothing new and no next page, so the read ends where it started).
pub struct Listed {
    pub items: Vec<Value>,
    pub end: Option<Offset>,
}

/// The URL of the page an offset starts at.
pub fn url(base_url: &str, repository: &str, page_size: u32, start: &Offset) -> String {
    if let Some(next) = &start.next {
        return next.clone();
    }
    let mut url = format!(
        "{base_url}/repos/{repository}/issues?state=all&sort=updated&direction=asc&per_page={page_size}"
    );
    if let Some(since) = &start.since {
        url.push_str("&since=");
        url.push_str(since);
    }
    url
}

/// Reads the page `start` points at; the items already read at `since` are left out.
pub fn read(
    host: &dyn Host,
    base_url: &str,
    repository: &str,
    page_size: u32,
    start: &Offset,
) -> Result<Listed, ConnectorError> {
    let mut request = Request::get(url(base_url, repository, page_size, start));
    request.headers.push(("accept".into(), "application/vnd.github+json".into()));
    request.headers.push(("x-github-api-version".into(), "2022-11-28".into()));
    let response = host.send(request)?;
    check(&response, repository)?;
    let body: Value = serde_json::from_slice(&response.body)
        .map_err(|e| ConnectorError::Internal(format!("GitHub's issue listing is not JSON: {e}")))?;
    let Value::Array(page) = body else {
        return Err(ConnectorError::Internal("GitHub's issue listing is not a JSON array".into()));
    };
    let mut items = Vec::with_capacity(page.len());
    let mut end = Offset { since: start.since.clone(), seen: start.seen.clone(), next: None };
    for item in page {
        let (Some(id), Some(updated)) = (item["id"].as_u64(), item["updated_at"].as_str()) else {
            return Err(ConnectorError::Internal("an issue without id or updated_at".into()));
        };
        if start.since.as_deref() == Some(updated) && start.seen.binary_search(&id).is_ok() {
            continue;
        }
        // The listing is sorted by updated_at, and GitHub's times compare as text.
        if end.since.as_deref() != Some(updated) {
            end.since = Some(updated.to_string());
            end.seen.clear();
        }
        if let Err(at) = end.seen.binary_search(&id) {
            end.seen.insert(at, id);
        }
        items.push(item);
    }
    let next = next_link(&response.headers);
    if items.is_empty() && next.is_none() {
        return Ok(Listed { items, end: None });
    }
    if next.is_some() && end.since == start.since {
        // A whole page in one second: only the page link can move on.
        end.next = next;
    }
    Ok(Listed { items, end: Some(end) })
}

/// Turns a refusal into the error that says what to do.
fn check(response: &Response, repository: &str) -> Result<(), ConnectorError> {
    let message = || {
        let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        body["message"].as_str().map_or_else(
            || String::from_utf8_lossy(&response.body).chars().take(200).collect(),
            str::to_string,
        )
    };
    let header = |name: &str| {
        response.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    };
    match response.status {
        200 => Ok(()),
        401 => Err(ConnectorError::Auth(format!("GitHub refused the token: {}", message()))),
        403 | 429 if header("x-ratelimit-remaining") == Some("0") || header("retry-after").is_some() => {
            Err(ConnectorError::RateLimited(format!(
                "GitHub's rate limit still refuses after the host's retries: {}",
                message()
            )))
        }
        403 => Err(ConnectorError::Auth(format!(
            "GitHub denied {repository}'s issues: {}; the token needs read access to Issues and Pull requests",
            message()
        ))),
        404 => Err(ConnectorError::InvalidOptions(format!(
            "repository {repository} was not found, or the token cannot see it ({})",
            message()
        ))),
        status => Err(ConnectorError::Source { status, message: message() }),
    }
}

/// The `rel="next"` URL of a `Link` header: `<url>; rel="next", <url>; rel="last"`.
pub fn next_link(headers: &[(String, String)]) -> Option<String> {
    let (_, link) = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("link"))?;
    link.split(',').find_map(|part| {
        let (target, params) = part.trim().split_once(';')?;
        let is_next = params.split(';').any(|p| {
            let p = p.trim();
            p == "rel=\"next\"" || p == "rel=next"
        });
        let url = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        is_next.then(|| url.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_link_headers_next_url() {
        let link = |v: &str| vec![("Link".to_string(), v.to_string())];
        let github = "<https://api.github.com/repositories/1300192/issues?page=2>; rel=\"next\", \
                      <https://api.github.com/repositories/1300192/issues?page=9>; rel=\"last\"";
        assert_eq!(
            next_link(&link(github)).as_deref(),
            Some("https://api.github.com/repositories/1300192/issues?page=2")
        );
        let last_page = "<https://api.github.com/repositories/1300192/issues?page=1>; rel=\"prev\"";
        assert_eq!(next_link(&link(last_page)), None);
        assert_eq!(next_link(&[]), None);
    }

    #[test]
    fn offsets_render_only_what_they_hold_and_refuse_others() {
        assert_eq!(Offset::default().render(), "{}");
        let o = Offset { since: Some("2026-01-01T00:00:00Z".into()), seen: vec![1, 2], next: None };
        assert_eq!(o.render(), r#"{"since":"2026-01-01T00:00:00Z","seen":[1,2]}"#);
        assert_eq!(Offset::parse(Some(&o.render())).unwrap(), o);
        assert!(matches!(Offset::parse(Some(r#"{"page":2}"#)), Err(ConnectorError::UnsupportedOffset(_))));
    }
}
