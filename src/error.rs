//! The controllers' error type. Each variant names the step that failed; [`Error::reason`] is the
//! one bounded value used as condition reason, Warning Event reason and metric label, and
//! [`Error::message`] the bounded sentence for conditions and Events.
//!
//! Client errors are shown through [`describe`]: the API server's own message, never the Debug
//! form `kube::Error::Api` puts into its Display. A request the API server refused as invalid
//! (400 BadRequest, 422 Invalid) is permanent: sending it again cannot succeed.

/// Longest message the operator writes into a condition or an Event note (the API server
/// refuses Event notes over 1 kB).
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// How long an object whose pass failed on an [`Error::Dependency`] waits before it is looked
/// at again, when no watch trigger comes first.
pub const DEPENDENCY_RETRY: std::time::Duration = std::time::Duration::from_secs(300);

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
    /// The spec is fine, but what it refers to is not in the state it needs: another object holds
    /// the namespace, a namespace was kept from an earlier Workspace, a referenced object is
    /// missing. Another object's change resolves it, so it is retried after
    /// [`DEPENDENCY_RETRY`] as well as on the watch triggers.
    #[error("{message}")]
    Dependency {
        /// Bounded PascalCase reason, for example `NamespaceConflict`.
        reason: &'static str,
        /// What is in the way and how to resolve it.
        message: String,
    },
    /// Reading an object from the API server failed.
    #[error("{}", client_message("reading", "refused to read", .what, .source))]
    Read {
        /// What was read, for example `Secret analytics/warehouse`.
        what: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// Applying a desired object failed.
    #[error("{}", client_message("applying", "refused the", .what, .source))]
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
    #[error("{}", client_message("updating", "refused the", "status", .source))]
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
            Error::InvalidSpec { reason, .. } | Error::Dependency { reason, .. } => reason,
            _ if self.rejection().is_some() => "RejectedByApiServer",
            Error::Read { .. } => "ReadFailed",
            Error::Apply { .. } => "ApplyFailed",
            Error::CacheNotReady => "CacheNotReady",
            Error::StatusUpdate { .. } => "StatusUpdateFailed",
        }
    }

    /// Permanent errors need a change to the object; retrying cannot help: invalid specs, and
    /// requests the API server refused as invalid. Everything else is transient (API server,
    /// network, conflicts, permissions) and is retried with a growing delay — except
    /// [`Error::Dependency`], which waits for other objects and is retried after a fixed delay.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Error::MalformedObject { .. } | Error::InvalidSpec { .. })
            || self.rejection().is_some()
    }

    /// Whether the error depends on other objects (see [`Error::Dependency`]).
    pub fn is_dependency(&self) -> bool {
        matches!(self, Error::Dependency { .. })
    }

    /// What goes into a condition or an Event: the error as a sentence, at most
    /// [`MAX_MESSAGE_BYTES`].
    pub fn message(&self) -> String {
        bounded(&self.to_string(), MAX_MESSAGE_BYTES)
    }

    /// The API server's answer when it refused a request as invalid.
    fn rejection(&self) -> Option<&kube::core::Status> {
        match self {
            Error::Read { source, .. } | Error::Apply { source, .. } | Error::StatusUpdate { source } => {
                rejection(source)
            }
            _ => None,
        }
    }
}

/// The Status of a request the API server refused as invalid: 400 BadRequest or 422 Invalid.
/// Sending the same request again gets the same answer.
fn rejection(source: &kube::Error) -> Option<&kube::core::Status> {
    match source {
        kube::Error::Api(status) if matches!(status.code, 400 | 422) => Some(status),
        _ => None,
    }
}

/// The message of a failed request: `<doing> <what>: <why>`, or, when the API server refused
/// it as invalid, `the API server <refused> <what>: <its message>`.
fn client_message(doing: &str, refused: &str, what: &str, source: &kube::Error) -> String {
    match rejection(source) {
        Some(status) => format!("the API server {refused} {what}: {}", status_message(status)),
        None => format!("{doing} {what}: {}", describe(source)),
    }
}

fn status_message(status: &kube::core::Status) -> String {
    if status.message.is_empty() {
        format!(
            "{} (HTTP {})",
            if status.reason.is_empty() { "no reason given" } else { &status.reason },
            status.code
        )
    } else {
        status.message.clone()
    }
}

/// A client error as a person reads it: for an API error the API server's message with its
/// reason and HTTP code, otherwise the error and its causes, never a Debug form.
pub fn describe(error: &kube::Error) -> String {
    if let kube::Error::Api(status) = error {
        let answer = match status.reason.as_str() {
            "" => format!("HTTP {}", status.code),
            reason => format!("{reason}, HTTP {}", status.code),
        };
        return if status.message.is_empty() {
            format!("the API server answered without a message ({answer})")
        } else {
            format!("{} ({answer})", status.message)
        };
    }
    // The transport errors' own text starts with a type name; say what happened instead.
    let (mut text, mut cause): (String, Option<&dyn std::error::Error>) = match error {
        kube::Error::HyperError(e) => {
            (format!("the request to the API server failed: {e}"), std::error::Error::source(e))
        }
        kube::Error::Service(e) => {
            (format!("the request to the API server failed: {e}"), std::error::Error::source(e.as_ref()))
        }
        other => (other.to_string(), std::error::Error::source(other)),
    };
    // Wrapping errors often repeat their cause in their own text; show each part once.
    while let Some(c) = cause {
        let part = c.to_string();
        if !text.contains(&part) {
            text = format!("{text}: {part}");
        }
        cause = c.source();
    }
    text
}

/// `message` cut to at most `max` bytes at a character boundary, marked with `…` when cut.
pub fn bounded(message: &str, max: usize) -> String {
    if message.len() <= max {
        return message.to_string();
    }
    const MARK: &str = "…";
    let mut end = max.saturating_sub(MARK.len());
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{MARK}", &message[..end])
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
            (
                Error::Apply { what: "StatefulSet s".into(), source: api_error(422) },
                "RejectedByApiServer",
                true,
            ),
            (Error::Read { what: "Secret a/b".into(), source: api_error(400) }, "RejectedByApiServer", true),
            (Error::StatusUpdate { source: api_error(422) }, "RejectedByApiServer", true),
            (Error::StatusUpdate { source: api_error(503) }, "StatusUpdateFailed", false),
            (Error::CacheNotReady, "CacheNotReady", false),
            (
                Error::Dependency { reason: "NamespaceConflict", message: "x".into() },
                "NamespaceConflict",
                false,
            ),
            (
                Error::Dependency { reason: "RetainedNamespace", message: "x".into() },
                "RetainedNamespace",
                false,
            ),
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
            let dependency = matches!(error, Error::Dependency { .. });
            assert_eq!(error.is_dependency(), dependency, "{reason}");
        }
    }

    #[test]
    fn dependency_errors_are_neither_permanent_nor_counted_as_transient() {
        let error = Error::Dependency {
            reason: "NamespaceConflict",
            message: "namespace dw-a belongs to Workspace b".into(),
        };
        assert!(!error.is_permanent() && error.is_dependency());
        assert_eq!(error.to_string(), "namespace dw-a belongs to Workspace b");
        let long = Error::Dependency { reason: "NamespaceConflict", message: "é".repeat(2000) };
        assert!(long.message().len() <= MAX_MESSAGE_BYTES);
        assert!(DEPENDENCY_RETRY >= std::time::Duration::from_secs(60));
        assert!(DEPENDENCY_RETRY <= std::time::Duration::from_secs(600));
    }

    #[test]
    fn messages_name_what_failed() {
        let error = Error::Apply { what: "Namespace dw-analytics".into(), source: api_error(409) };
        assert!(error.to_string().starts_with("applying Namespace dw-analytics: "));
    }

    fn invalid(code: u16) -> kube::Error {
        let message = r#"StatefulSet.apps "studio" is invalid: spec.template.spec.containers[0].env[0].name: Invalid value: "a b": a valid environment variable name must consist of alphabetic characters"#;
        kube::Error::Api(kube::core::Status::failure(message, "Invalid").with_code(code).boxed())
    }

    #[test]
    fn requests_the_api_server_refused_as_invalid_are_permanent_and_readable() {
        for code in [400, 422] {
            let error = Error::Apply { what: "StatefulSet studio".into(), source: invalid(code) };
            assert!(error.is_permanent(), "{code}");
            assert_eq!(error.reason(), "RejectedByApiServer");
            let message = error.message();
            assert!(
                message.starts_with(
                    r#"the API server refused the StatefulSet studio: StatefulSet.apps "studio" is invalid: "#
                ),
                "{message}"
            );
            assert!(!message.contains("Status {") && !message.contains("ApiError"), "{message}");
            let read = Error::Read { what: "Secret a/b".into(), source: invalid(code) };
            assert!(
                read.is_permanent()
                    && read.to_string().starts_with("the API server refused to read Secret a/b: ")
            );
            let status = Error::StatusUpdate { source: invalid(code) };
            assert!(
                status.is_permanent()
                    && status.to_string().starts_with("the API server refused the status: ")
            );
        }
        // Without a message the reason and code stand in.
        let bare =
            kube::Error::Api(kube::core::Status { code: 422, ..kube::core::Status::default() }.boxed());
        let error = Error::Apply { what: "ConfigMap x".into(), source: bare };
        assert!(error.to_string().ends_with("(HTTP 422)"), "{error}");
    }

    #[test]
    fn other_client_errors_stay_transient_and_readable() {
        for code in [401, 403, 404, 409, 429, 500, 503] {
            let error = Error::Apply { what: "Namespace a".into(), source: api_error(code) };
            assert!(!error.is_permanent(), "{code}");
            assert_eq!(error.reason(), "ApplyFailed");
            assert_eq!(error.to_string(), format!("applying Namespace a: boom (InternalError, HTTP {code})"));
        }
        let serde = serde_json::from_str::<serde_json::Value>("{").unwrap_err();
        let error = Error::Read { what: "Secret a/b".into(), source: kube::Error::SerdeError(serde) };
        assert!(!error.is_permanent());
        assert!(!error.to_string().contains("Error("), "{error}");
        let unreachable = kube::Error::Service("connection refused".into());
        let error = Error::Apply { what: "Namespace a".into(), source: unreachable };
        assert_eq!(
            error.to_string(),
            "applying Namespace a: the request to the API server failed: connection refused"
        );
        assert!(!error.is_permanent());
    }

    #[test]
    fn messages_are_bounded_at_a_character_boundary() {
        let long = Error::InvalidSpec { reason: "X", message: "é".repeat(2000) };
        let message = long.message();
        assert!(message.len() <= MAX_MESSAGE_BYTES, "{}", message.len());
        assert!(message.ends_with('…'));
        assert_eq!(bounded("short", 10), "short");
        assert_eq!(bounded("abcdefghijkl", 10), "abcdefg…");
        let huge = Error::Apply { what: "ConfigMap x".into(), source: api_error(500) };
        assert_eq!(huge.message(), huge.to_string());
    }
}
