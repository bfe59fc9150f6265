//! What the response cache calls an answer: the name a handler gives a request, and what the
//! answer is about (for purging everything about one thing at once).

use super::context::RequestInfo;

/// How the response cache names a request's answer. Requests of one route with equal names
/// get equal answers, so one stored answer serves them all.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CacheName {
    /// What identifies the answer, e.g. `/iiif/2/1/abc/full/200,/0/default.jpg`.
    pub name: String,
    /// What the answer is about (an image handler gives the image's base path, `/iiif/2/1/abc`),
    /// so that `purge?image=` drops every answer about it.
    pub about: Option<String>,
}

impl CacheName {
    /// The request as its client sees it: the public base (scheme, host, any prefix), path
    /// and query. Right for answers that depend on nothing else (an answer that names its own
    /// URL depends on the base, for example).
    pub fn of_request(req: &RequestInfo<'_>) -> Self {
        let path = req
            .header
            .uri
            .path_and_query()
            .map_or("/", |pq| pq.as_str());
        Self {
            name: format!("{}{path}", req.public_base),
            about: None,
        }
    }

    /// [`CacheName::of_request`], about `about`.
    pub fn of_request_about(req: &RequestInfo<'_>, about: Option<&str>) -> Self {
        Self {
            about: about.map(str::to_string),
            ..Self::of_request(req)
        }
    }

    /// An answer about `about`, named `answer` within it (e.g. an image's base path and its
    /// canonical IIIF request, whatever the spelling asked).
    pub fn about(about: &str, answer: &str) -> Self {
        Self {
            name: format!("{about}/{answer}"),
            about: Some(about.to_string()),
        }
    }
}

/// Put in a request's extensions by a filter that changes what the request may see (an
/// authorisation check): the response cache keeps the answers of each variant apart, so an
/// answer made for an authorised request is never served to one that is not.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CacheVariant(pub String);
