//! The controllers' error type. Each variant names the step that failed; [`Error::reason`] is the
//! one bounded value used as condition reason, Warning Event reason and metric label.

/// What can go wrong in a reconcile pass.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The stored object does not match the schema this operator version understands.
    #[error("the object cannot be read as a {kind}: {message}")]
    MalformedObject {
        /// Kind of the object.
        kind: &'static str,
        /// The deserialisation error.
        message: String,
    },
    /// The spec is invalid in a way the API server's schema cannot check.
    #[error("{message}")]
    InvalidSpec {
        /// Bounded PascalCase reason, for example `MissingSecret`.
        reason: &'static str,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// Reading an object from the API server failed.
    #[error("reading {what}: {source}")]
    Read {
        /// What was read, for example `Secret analytics/warehouse`.
        what: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// Applying a desired object failed.
    #[error("applying {what}: {source}")]
    Apply {
        /// What was applied.
        what: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// The operator's caches have not received their initial lists yet.
    #[error("the operator's caches are not filled yet")]
    CacheNotReady,
    /// Writing the status subresource failed.
    #[error("updating status: {source}")]
    StatusUpdate {
        /// The client error.
        #[source]
        source: kube::Error,
    },
}

impl Error {
    /// The bounded PascalCase reason: condition reason, Event reason and metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::MalformedObject { .. } => "MalformedObject",
            Error::InvalidSpec { reason, .. } => reason,
            Error::Read { .. } => "ReadFailed",
            Error::Apply { .. } => "ApplyFailed",
            Error::CacheNotReady => "CacheNotReady",
            Error::StatusUpdate { .. } => "StatusUpdateFailed",
        }
    }

    /// Permanent errors need a change to the object; retrying cannot help. Everything else is
    /// transient (API server, network, conflicts) and is retried with a growing delay.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Error::MalformedObject { .. } | Error::InvalidSpec { .. })
    }
}

/// Result of a reconcile step.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16) -> kube::Error {
        kube::Error::Api(kube::core::Status::failure("boom", "InternalError").with_code(code).boxed())
    }

    #[test]
    fn reasons_are_bounded_pascal_case_and_classified() {
        let cases = [
            (Error::MalformedObject { kind: "Project", message: "x".into() }, "MalformedObject", true),
            (Error::InvalidSpec { reason: "MissingSecret", message: "x".into() }, "MissingSecret", true),
            (Error::Read { what: "Secret a/b".into(), source: api_error(500) }, "ReadFailed", false),
            (Error::Apply { what: "Namespace a".into(), source: api_error(409) }, "ApplyFailed", false),
            (Error::StatusUpdate { source: api_error(503) }, "StatusUpdateFailed", false),
            (Error::CacheNotReady, "CacheNotReady", false),
        ];
        let pattern = |r: &str| {
            let mut chars = r.chars();
            chars.next().is_some_and(|c| c.is_ascii_uppercase())
                && r.chars().all(|c| c.is_ascii_alphanumeric())
        };
        for (error, reason, permanent) in cases {
            assert_eq!(error.reason(), reason);
            assert!(pattern(error.reason()), "{reason} is not PascalCase");
            assert_eq!(error.is_permanent(), permanent, "{reason}");
        }
    }

    #[test]
    fn messages_name_what_failed() {
        let error = Error::Apply { what: "Namespace dw-analytics".into(), source: api_error(409) };
        assert!(error.to_string().starts_with("applying Namespace dw-analytics: "));
    }
}
