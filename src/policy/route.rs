//! Route patterns: which [`Policy`](super::Policy) applies to a request.
//!
//! Patterns use axum's syntax: literal segments, `{name}` for one segment, `{*name}` for the rest
//! of the path. A pattern matches a request when it is the route template axum matched
//! (`MatchedPath`), or when it matches the request's path: axum's `OriginalUri` when present
//! (inside a nested router axum strips the prefix from the URI, not from the original), else the
//! URI's.

use std::fmt;

/// A parsed route pattern such as `/products/{id}` or `/static/{*path}`.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct RoutePattern {
    source: String,
    segments: Vec<Segment>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param,
    Rest,
}

/// A route pattern that could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidPattern {
    pattern: String,
    why: &'static str,
}

impl fmt::Display for InvalidPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid route pattern {:?}: {}", self.pattern, self.why)
    }
}

impl std::error::Error for InvalidPattern {}

impl RoutePattern {
    /// The pattern as written.
    pub(crate) fn source(&self) -> &str {
        &self.source
    }

    /// Parses a pattern. It must start with `/`; `{*rest}` may only be the last segment.
    pub(crate) fn parse(pattern: &str) -> Result<Self, InvalidPattern> {
        let invalid = |why| InvalidPattern {
            pattern: pattern.to_owned(),
            why,
        };
        let Some(body) = pattern.strip_prefix('/') else {
            return Err(invalid("must start with '/'"));
        };
        let mut segments = Vec::new();
        let parts: Vec<&str> = body.split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            let segment = match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                Some(name) if name.starts_with('*') => {
                    if i + 1 != parts.len() {
                        return Err(invalid("'{*name}' must be the last segment"));
                    }
                    Segment::Rest
                }
                Some("") => return Err(invalid("empty parameter name")),
                Some(name) if name.contains(['{', '}']) => return Err(invalid("nested braces")),
                Some(_) => Segment::Param,
                None if part.contains(['{', '}']) => {
                    return Err(invalid("a parameter must be a whole segment"));
                }
                None => Segment::Literal((*part).to_owned()),
            };
            segments.push(segment);
        }
        Ok(RoutePattern {
            source: pattern.to_owned(),
            segments,
        })
    }

    /// Whether the pattern is the matched route template (axum's `MatchedPath`), or matches
    /// the path.
    pub(crate) fn matches(&self, matched_template: Option<&str>, path: &str) -> bool {
        matched_template == Some(self.source.as_str()) || self.matches_path(path)
    }

    /// Whether the pattern matches a URI path.
    pub(crate) fn matches_path(&self, path: &str) -> bool {
        let Some(path) = path.strip_prefix('/') else {
            return false;
        };
        let mut parts = path.split('/');
        for segment in &self.segments {
            match segment {
                Segment::Rest => return true,
                Segment::Param => match parts.next() {
                    Some(p) if !p.is_empty() => {}
                    _ => return false,
                },
                Segment::Literal(lit) => {
                    if parts.next() != Some(lit.as_str()) {
                        return false;
                    }
                }
            }
        }
        parts.next().is_none()
    }
}

impl fmt::Debug for RoutePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RoutePattern({:?})", self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_param_and_rest() {
        let p = RoutePattern::parse("/products/{id}").unwrap();
        assert!(p.matches(None, "/products/42"));
        assert!(!p.matches(None, "/products/"));
        assert!(!p.matches(None, "/products/42/reviews"));
        assert!(!p.matches(None, "/product/42"));
        let rest = RoutePattern::parse("/static/{*path}").unwrap();
        assert!(rest.matches(None, "/static/css/site.css"));
        assert!(rest.matches(None, "/static/"));
        assert!(!rest.matches(None, "/other/x"));
        let root = RoutePattern::parse("/").unwrap();
        assert!(root.matches(None, "/"));
        assert!(!root.matches(None, "/x"));
    }

    #[test]
    fn matched_template_wins() {
        let p = RoutePattern::parse("/api/products/{id}").unwrap();
        // Nested router: the URI path was stripped to "/42", the template is the full one.
        assert!(p.matches(Some("/api/products/{id}"), "/42"));
        assert!(!p.matches(Some("/api/users/{id}"), "/api/users/42"));
        // A wildcard pattern still matches the concrete routes under it.
        let rest = RoutePattern::parse("/api/{*rest}").unwrap();
        assert!(rest.matches(Some("/api/users/{id}"), "/api/users/42"));
    }

    #[test]
    fn bad_patterns_are_errors() {
        for bad in ["products", "/a/{*rest}/b", "/a/{}", "/a/x{id}", "/a/{{id}}"] {
            let err = RoutePattern::parse(bad).unwrap_err();
            assert!(err.to_string().contains("invalid route pattern"), "{bad}");
        }
    }
}
