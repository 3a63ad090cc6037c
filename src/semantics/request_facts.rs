//! What a request allows the cache (RFC 9111 §3.5, §5.2.1): whether it may use the cache at
//! all under its route's policy, and what it may be answered with.

use http::request;

use super::request_directives::{Directives, RequestDirectives};
use crate::BypassReason;
use crate::policy::{Authorization, Cookies, Policy};

/// What the storing decision needs to know about the request.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RequestFacts {
    pub has_authorization: bool,
    /// The request spelled its target in normal form (see `key::target`); otherwise it may
    /// read the normal form's entry, but its response is never stored.
    pub canonical: bool,
    /// The request is conditional or ranged: its fetch asks for the whole response without
    /// its conditions, and its own answer is computed from that.
    pub conditional: bool,
    /// The request said `Cache-Control: no-store`: it may be answered from the cache, but
    /// the response to it is not stored (RFC 9111 §5.2.1.5).
    pub no_store: bool,
    /// What its `Cache-Control` (or `Pragma`) limits it to; `None` for most requests.
    pub limits: Option<RequestDirectives>,
}

/// Which of the fields [`RequestFacts::read`] depends on a request has.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Present {
    /// `Authorization`.
    pub authorization: bool,
    /// `Cookie`.
    pub cookie: bool,
    /// `Cache-Control` or `Pragma`.
    pub directives: bool,
}

impl RequestFacts {
    /// Reads the request; `Err` when the request must bypass the cache under `policy`.
    /// `canonical` and `conditional` start as "in normal form" and "unconditional"; the caller
    /// sets them from what it read of the target and the header names. `present`: which of
    /// the fields read here the request has (the caller's pass over the fields told, so none
    /// is looked up by name, and directives are parsed only when there are some).
    pub(crate) fn read(
        request: &request::Parts,
        policy: &Policy,
        present: Present,
    ) -> Result<Self, BypassReason> {
        if !policy.enabled {
            return Err(BypassReason::Policy);
        }
        let headers = &request.headers;
        let has_authorization = present.authorization;
        if has_authorization && policy.authorization == Authorization::Bypass {
            return Err(BypassReason::Authorization);
        }
        if policy.cookies == Cookies::Bypass && present.cookie {
            return Err(BypassReason::Cookie);
        }
        let directives = if present.directives {
            Directives::read(headers, policy.client_revalidation)
        } else {
            Directives::default()
        };
        Ok(RequestFacts {
            has_authorization,
            canonical: true,
            conditional: false,
            no_store: directives.no_store,
            limits: directives.limits,
        })
    }

    /// Whether this request may fetch on behalf of other requests for its key: lead a
    /// coalesced fetch, refresh an entry in the background, or mark its key hit-for-pass. Not
    /// with its own credentials, nor when spelled other than in normal form: what such a
    /// request gets from the origin is decided by something that belongs to it alone. (A
    /// conditional or ranged request may: the fetch it leads asks for the whole response.)
    /// Nor may a request whose response is not to be stored (`no-store`).
    pub(crate) fn fills_for_others(self) -> bool {
        self.canonical && !self.has_authorization && !self.no_store
    }
}
