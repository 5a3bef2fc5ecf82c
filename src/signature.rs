//! Request signatures of the authenticating proxy. Started with `--signature-key=sha256:<key>`,
//! oauth2-proxy signs every request it forwards with a `GAP-Signature` header: an HMAC-SHA256,
//! keyed with the shared secret, over the method, a fixed list of headers (the identity ones
//! among them), the path and query, and the body. A service behind the proxy that checks it
//! knows the identity headers came from the proxy: nobody else holds the key.
//!
//! The message, as oauth2-proxy 7 builds it: the method, a line break; for each header of
//! [`SIGNED_HEADERS`] in that order, its values joined by `,` (nothing when absent) and a line
//! break; the URL path (percent-decoded) and, when there is one, `?` and the raw query; a line
//! break; then the body. The header carries `sha256 ` and the base64 (standard, padded) MAC.

use base64::{Engine, engine::general_purpose::STANDARD};
use ring::hmac;

/// The header holding the signature.
pub const SIGNATURE_HEADER: &str = "gap-signature";
/// The headers covered, in the order they are signed.
pub const SIGNED_HEADERS: [&str; 11] = [
    "content-length",
    "content-md5",
    "content-type",
    "date",
    "authorization",
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-preferred-user",
    "x-forwarded-access-token",
    "cookie",
    "gap-auth",
];
/// The algorithm named in the header; the only one accepted.
const ALGORITHM: &str = "sha256";

/// Why a request's signature is refused. `reason` is the metric label and log field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No `GAP-Signature` header.
    #[error("the request carries no signature: it did not come through the authenticating proxy")]
    Missing,
    /// A header that is not `sha256 <base64>`.
    #[error("the request's signature is malformed or not sha256")]
    Malformed,
    /// The MAC does not match: another key, or something signed was changed.
    #[error("the request's signature does not match")]
    Mismatch,
}

impl Refusal {
    /// Metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Missing => "SignatureMissing",
            Refusal::Malformed => "SignatureMalformed",
            Refusal::Mismatch => "SignatureMismatch",
        }
    }
}

/// The parts of a request that are signed.
#[derive(Clone, Copy, Debug)]
pub struct Signed<'a> {
    /// `GET`, `POST`, …
    pub method: &'a str,
    /// The path as sent (percent-encoded); decoded here as the proxy decodes it.
    pub path: &'a str,
    /// The raw query, without `?`.
    pub query: Option<&'a str>,
    /// The body.
    pub body: &'a [u8],
}

/// The shared key, from the `--signature-key` value's secret part (the text after `sha256:`).
pub struct Key(hmac::Key);

impl Key {
    /// The key of a secret (`sha256:<key>` or `<key>`). The proxy uses the text after the colon
    /// exactly as written, so a key with whitespace (a trailing newline of a file) would sign
    /// with other bytes than ours read: refused with a message, as are keys shorter than 32
    /// characters and keys with another colon.
    pub fn new(secret: &str) -> Result<Key, String> {
        let secret = secret.strip_prefix("sha256:").unwrap_or(secret);
        if secret.chars().any(char::is_whitespace) {
            return Err("the signature key contains whitespace (a trailing newline?); the proxy signs with the key exactly as written, so write it without".into());
        }
        if secret.contains(':') {
            return Err("the signature key must be `sha256:<key>` or `<key>`, the key without ':'".into());
        }
        if secret.len() < 32 {
            return Err("the signature key must be at least 32 characters (for example 32 random bytes, base64-encoded)".into());
        }
        Ok(Key(hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes())))
    }

    /// The `GAP-Signature` value for a request with these headers (name, value; names in any
    /// case, a name repeated for each value), as the proxy computes it.
    pub fn sign(&self, request: Signed<'_>, headers: &[(&str, &[u8])]) -> String {
        let tag = hmac::sign(&self.0, &message(request, headers));
        format!("{ALGORITHM} {}", STANDARD.encode(tag.as_ref()))
    }

    /// Checks the request's `GAP-Signature` in constant time.
    pub fn verify(&self, request: Signed<'_>, headers: &[(&str, &[u8])]) -> Result<(), Refusal> {
        let values = values(headers, SIGNATURE_HEADER);
        let [value] = values.as_slice() else {
            return Err(if values.is_empty() { Refusal::Missing } else { Refusal::Malformed });
        };
        let value = std::str::from_utf8(value).map_err(|_| Refusal::Malformed)?;
        let (algorithm, encoded) = value.trim().split_once(' ').ok_or(Refusal::Malformed)?;
        if algorithm != ALGORITHM {
            return Err(Refusal::Malformed);
        }
        let tag = STANDARD.decode(encoded.trim()).map_err(|_| Refusal::Malformed)?;
        hmac::verify(&self.0, &message(request, headers), &tag).map_err(|_| Refusal::Mismatch)
    }
}

/// The signed message.
fn message(request: Signed<'_>, headers: &[(&str, &[u8])]) -> Vec<u8> {
    let mut message = Vec::with_capacity(256 + request.body.len());
    message.extend_from_slice(request.method.as_bytes());
    message.push(b'\n');
    for name in SIGNED_HEADERS {
        message.extend_from_slice(&values(headers, name).join(&b","[..]));
        message.push(b'\n');
    }
    message.extend_from_slice(&percent_decode(request.path));
    if let Some(query) = request.query.filter(|q| !q.is_empty()) {
        message.push(b'?');
        message.extend_from_slice(query.as_bytes());
    }
    message.push(b'\n');
    message.extend_from_slice(request.body);
    message
}

/// The values of header `name`, in the order received.
fn values<'h>(headers: &[(&str, &'h [u8])], name: &str) -> Vec<&'h [u8]> {
    headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| *v).collect()
}

/// `%XX` sequences decoded; anything else (a stray `%`) kept as it is.
fn percent_decode(path: &str) -> Vec<u8> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).and_then(|b| hex(*b)), bytes.get(i + 2).and_then(|b| hex(*b))) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    type Headers = Vec<(&'static str, String)>;

    fn lookup(headers: &Headers) -> Vec<(&str, &[u8])> {
        headers.iter().map(|(n, v)| (*n, v.as_bytes())).collect()
    }

    fn get(path: &str) -> Signed<'_> {
        Signed { method: "GET", path, query: None, body: b"" }
    }

    fn signed(key: &Key, email: &str) -> Headers {
        let mut headers: Headers = vec![
            ("X-Forwarded-Email", email.into()),
            ("X-Forwarded-User", "1234".into()),
            ("Cookie", "a=b".into()),
        ];
        let signature = key.sign(get("/runtime"), &lookup(&headers));
        headers.push(("GAP-Signature", signature));
        headers
    }

    #[test]
    fn a_signature_of_the_shared_key_is_accepted() {
        let key = Key::new("sha256:0123456789abcdef0123456789abcdef").unwrap();
        assert_eq!(key.verify(get("/runtime"), &lookup(&signed(&key, "alice@example.com"))), Ok(()));
    }

    #[test]
    fn a_request_without_a_signature_is_refused() {
        let key = Key::new("0123456789abcdef0123456789abcdef").unwrap();
        let headers: Headers = vec![("X-Forwarded-Email", "alice@example.com".into())];
        assert_eq!(key.verify(get("/runtime"), &lookup(&headers)), Err(Refusal::Missing));
    }

    #[test]
    fn a_signature_of_another_key_is_refused() {
        let forged = signed(&Key::new("guessguessguessguessguessguess00").unwrap(), "alice@example.com");
        assert_eq!(
            Key::new("0123456789abcdef0123456789abcdef").unwrap().verify(get("/runtime"), &lookup(&forged)),
            Err(Refusal::Mismatch)
        );
    }

    #[test]
    fn a_changed_email_path_or_second_email_is_refused() {
        let key = Key::new("0123456789abcdef0123456789abcdef").unwrap();
        let mut headers = signed(&key, "alice@example.com");
        headers[0].1 = "admin@example.com".into();
        assert_eq!(key.verify(get("/runtime"), &lookup(&headers)), Err(Refusal::Mismatch));

        let headers = signed(&key, "alice@example.com");
        assert_eq!(key.verify(get("/admin"), &lookup(&headers)), Err(Refusal::Mismatch));

        let mut headers = signed(&key, "alice@example.com");
        headers.push(("X-Forwarded-Email", "admin@example.com".into()));
        assert_eq!(key.verify(get("/runtime"), &lookup(&headers)), Err(Refusal::Mismatch));
    }

    #[test]
    fn malformed_signatures_are_refused() {
        let key = Key::new("0123456789abcdef0123456789abcdef").unwrap();
        for bad in ["", "sha256", "sha1 AAAA", "sha256 not*base64", "sha256"] {
            let headers: Headers = vec![("GAP-Signature", bad.into())];
            assert_eq!(key.verify(get("/"), &lookup(&headers)), Err(Refusal::Malformed), "{bad:?}");
        }
        assert!(Key::new(" \n").is_err());
        assert!(Key::new("sha256:").is_err());
        // The proxy signs with the bytes after the colon as written: a newline is refused, not
        // trimmed, and so are short keys.
        assert!(Key::new("sha256:0123456789abcdef0123456789abcdef\n").err().unwrap().contains("whitespace"));
        assert!(Key::new("short").err().unwrap().contains("at least 32"));
        assert!(Key::new("sha1:0123456789abcdef0123456789abcdef").is_err());
    }

    /// The message laid out as oauth2-proxy's hmacauth lays it out: empty lines for absent
    /// headers, the decoded path, the raw query.
    #[test]
    fn the_message_is_the_proxys() {
        let headers: Headers = vec![("X-Forwarded-Email", "a@b.c".into())];
        let request = Signed { method: "GET", path: "/p%20q", query: Some("x=1"), body: b"" };
        assert_eq!(
            String::from_utf8(message(request, &lookup(&headers))).unwrap(),
            "GET\n\n\n\n\n\n\na@b.c\n\n\n\n\n/p q?x=1\n"
        );
    }

    proptest::proptest! {
        /// Any header value and path is checked without panicking.
        #[test]
        fn anything_is_checked_without_panicking(value in ".{0,80}", path in ".{0,40}") {
            let key = Key::new("0123456789abcdef0123456789abcdef").unwrap();
            let headers: Headers = vec![("GAP-Signature", value)];
            let _ = key.verify(Signed { method: "GET", path: &path, query: Some(&path), body: b"" }, &lookup(&headers));
        }
    }
}
