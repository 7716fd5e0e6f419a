//! AWS Signature Version 4 for one HTTP request: canonical request, string
//! to sign, signing key and the headers that carry the result
//! (`X-Amz-Date`, `X-Amz-Security-Token`, `Authorization`).
//!
//! The time is a parameter, so signing is a pure function that tests pin.
//! This module does no I/O and knows nothing of KMS; it does *not* sign the
//! payload hash into an `X-Amz-Content-SHA256` header (only S3 wants that).

use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::kms::credentials::Credentials;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Headers that proxies may add, drop or rewrite, so they are never signed
/// (the list botocore keeps, which AWS services accept).
const UNSIGNED_HEADERS: &[&str] = &[
    "connection",
    "expect",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "x-amzn-trace-id",
];

/// Headers that signing itself sets; copies in the input are dropped.
const SET_BY_SIGNING: &[&str] = &["authorization", "x-amz-date", "x-amz-security-token"];

/// One HTTP request to sign. `url` is absolute and already percent-encoded
/// as it goes on the wire; `headers` are those the caller will send (other
/// than the ones signing adds).
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `POST`, `GET`, …
    pub method: &'a str,
    /// `https://kms.eu-west-1.amazonaws.com/`, with any port, path and query.
    pub url: &'a str,
    /// Header names and values, in the order they will be sent.
    pub headers: &'a [(&'a str, &'a str)],
    /// The exact body bytes.
    pub body: &'a [u8],
}

/// Where and when a signature is valid: the credential scope's region and
/// service, and the signing time.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// `us-east-1`, …
    pub region: &'a str,
    /// `kms`, `sts`, …
    pub service: &'a str,
    /// The signing time; AWS refuses a request more than 5 minutes off.
    pub time: SystemTime,
}

/// The headers that signing adds to the request.
pub struct Signed {
    /// `X-Amz-Date`: the signing time as `YYYYMMDDTHHMMSSZ`.
    pub amz_date: String,
    /// `Authorization`: algorithm, credential scope, signed headers and
    /// signature.
    pub authorization: String,
    /// The `Host` header signed, when the request had none: it must be
    /// sent exactly so.
    pub host: Option<String>,
    security_token: Option<Zeroizing<String>>,
}

impl Signed {
    /// Every header to add, as (name, value): `Host` when the request had
    /// none, `X-Amz-Date`, `X-Amz-Security-Token` when the credentials are
    /// temporary, and `Authorization`.
    pub fn headers(&self) -> Vec<(&'static str, &str)> {
        let mut headers = Vec::with_capacity(4);
        if let Some(host) = &self.host {
            headers.push(("Host", host.as_str()));
        }
        headers.push(("X-Amz-Date", self.amz_date.as_str()));
        if let Some(token) = &self.security_token {
            headers.push(("X-Amz-Security-Token", token.as_str()));
        }
        headers.push(("Authorization", self.authorization.as_str()));
        headers
    }
}

impl std::fmt::Debug for Signed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signed")
            .field("amz_date", &self.amz_date)
            .field("authorization", &self.authorization)
            .field("host", &self.host)
            .field("has_security_token", &self.security_token.is_some())
            .finish()
    }
}

/// Why a request cannot be signed. Messages name the URL, never credentials.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// The URL has no `scheme://host`.
    #[error("cannot sign a request to {url:?}: expected an absolute http(s) URL")]
    Url {
        /// The URL as given.
        url: String,
    },
    /// The clock reads a time before 1970.
    #[error("cannot sign a request: the system clock is before 1970; set the clock")]
    Clock,
}

/// Sign `request` with `credentials` for `scope`, as AWS Signature Version 4
/// specifies: returns the headers to add.
pub fn sign(
    request: &Request<'_>,
    credentials: &Credentials,
    scope: &Scope<'_>,
) -> Result<Signed, SigningError> {
    let url = Url::parse(request.url).ok_or_else(|| SigningError::Url {
        url: request.url.to_owned(),
    })?;
    let amz_date = amz_date(scope.time).ok_or(SigningError::Clock)?;
    let date = &amz_date[..8];
    let security_token = credentials
        .session_token()
        .map(|t| Zeroizing::new(t.to_owned()));

    let mut headers: Vec<(String, &str)> = request
        .headers
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), *value))
        .filter(|(name, _)| {
            !UNSIGNED_HEADERS.contains(&name.as_str()) && !SET_BY_SIGNING.contains(&name.as_str())
        })
        .collect();
    headers.push(("x-amz-date".to_owned(), &amz_date));
    if let Some(token) = &security_token {
        headers.push(("x-amz-security-token".to_owned(), token.as_str()));
    }
    let host = (!headers.iter().any(|(name, _)| name == "host")).then(|| url.host_header());
    if let Some(host) = &host {
        headers.push(("host".to_owned(), host));
    }
    let (canonical_headers, signed_headers) = canonical_headers(&headers);

    let canonical_request = [
        request.method.to_ascii_uppercase().as_str(),
        &canonical_uri(url.path),
        &canonical_query(url.query),
        &canonical_headers,
        &signed_headers,
        &hex::encode(Sha256::digest(request.body)),
    ]
    .join("\n");
    let credential_scope = format!("{date}/{}/{}/aws4_request", scope.region, scope.service);
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{credential_scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let key = signing_key(
        credentials.secret_access_key(),
        date,
        scope.region,
        scope.service,
    );
    let signature = hex::encode(hmac(key.as_ref(), string_to_sign.as_bytes()));
    let authorization = format!(
        "{ALGORITHM} Credential={}/{credential_scope}, SignedHeaders={signed_headers}, Signature={signature}",
        credentials.access_key_id()
    );
    Ok(Signed {
        amz_date,
        authorization,
        host,
        security_token,
    })
}

/// The signing key: HMAC-SHA-256 chained over date, region, service and
/// `aws4_request`, starting from `"AWS4" + secret`.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Zeroizing<[u8; 32]> {
    let seed = Zeroizing::new(format!("AWS4{secret}"));
    let k_date = Zeroizing::new(hmac(seed.as_bytes(), date.as_bytes()));
    let k_region = Zeroizing::new(hmac(k_date.as_ref(), region.as_bytes()));
    let k_service = Zeroizing::new(hmac(k_region.as_ref(), service.as_bytes()));
    Zeroizing::new(hmac(k_service.as_ref(), b"aws4_request"))
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// `YYYYMMDDTHHMMSSZ` in UTC, or `None` before 1970.
fn amz_date(time: SystemTime) -> Option<String> {
    let secs = time.duration_since(UNIX_EPOCH).ok()?.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    Some(format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    ))
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Canonical headers (`name:value\n` each, sorted by lowercase name, values
/// trimmed with inner whitespace runs collapsed, repeated names joined with
/// `,`) and the signed-headers list (`a;b;c`).
fn canonical_headers(headers: &[(String, &str)]) -> (String, String) {
    let mut names: Vec<&str> = headers.iter().map(|(name, _)| name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let mut canonical = String::new();
    for name in &names {
        let values: Vec<String> = headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, value)| value.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        canonical.push_str(name);
        canonical.push(':');
        canonical.push_str(&values.join(","));
        canonical.push('\n');
    }
    (canonical, names.join(";"))
}

/// The path with dot segments and empty segments removed, then URI-encoded
/// again (every service but S3 signs the already-encoded path encoded a
/// second time).
fn canonical_uri(path: &str) -> String {
    if path.is_empty() {
        return "/".to_owned();
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            _ => segments.push(segment),
        }
    }
    let mut normal = String::new();
    if path.starts_with('/') {
        normal.push('/');
    }
    normal.push_str(&segments.join("/"));
    if path.ends_with('/') && !segments.is_empty() {
        normal.push('/');
    }
    uri_encode(normal.as_bytes(), true)
}

/// Parameters decoded, URI-encoded afresh, sorted by name then value and
/// joined `name=value&…`.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (
                uri_encode(&percent_decode(name), false),
                uri_encode(&percent_decode(value), false),
            )
        })
        .collect();
    pairs.sort_unstable();
    pairs
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// RFC 3986 encoding as SigV4 wants it: unreserved characters stay, every
/// other byte becomes `%XX` (upper-case hex); `/` stays when `keep_slash`.
pub(crate) fn uri_encode(bytes: &[u8], keep_slash: bool) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// The parts of an absolute URL that signing reads.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Url<'a> {
    pub(crate) scheme: String,
    /// Lower-case; IPv6 literals keep their brackets.
    pub(crate) host: String,
    pub(crate) port: Option<u16>,
    pub(crate) path: &'a str,
    pub(crate) query: &'a str,
}

impl<'a> Url<'a> {
    pub(crate) fn parse(url: &'a str) -> Option<Url<'a>> {
        let (scheme, rest) = url.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return None;
        }
        let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, rest) = rest.split_at(end);
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
        let (host, port) = match host_port.rfind(':') {
            Some(i) if !host_port[i..].contains(']') => {
                let port = &host_port[i + 1..];
                let port = if port.is_empty() {
                    None
                } else {
                    Some(port.parse().ok()?)
                };
                (&host_port[..i], port)
            }
            _ => (host_port, None),
        };
        if host.is_empty() {
            return None;
        }
        Some(Url {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
            path,
            query,
        })
    }

    /// The `Host` header: the host, with the port unless it is the
    /// scheme's default.
    pub(crate) fn host_header(&self) -> String {
        let default = if self.scheme == "https" { 443 } else { 80 };
        match self.port {
            Some(port) if port != default => format!("{}:{port}", self.host),
            _ => self.host.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn example_credentials() -> Credentials {
        Credentials::new(
            "AKIDEXAMPLE".to_owned(),
            Zeroizing::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".to_owned()),
            None,
        )
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn signing_key_matches_the_aws_documentation_example() {
        let key = signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20120215",
            "us-east-1",
            "iam",
        );
        assert_eq!(
            hex::encode(key.as_ref()),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
    }

    /// A GET from the AWS SigV4 test suite: example.amazonaws.com, service
    /// "service", 2015-08-30T12:36:00Z; the signature.
    fn suite_signature(url: &str) -> String {
        let signed = sign(
            &Request {
                method: "GET",
                url,
                headers: &[],
                body: b"",
            },
            &example_credentials(),
            &Scope {
                region: "us-east-1",
                service: "service",
                time: at(1_440_938_160),
            },
        )
        .unwrap();
        assert_eq!(signed.amz_date, "20150830T123600Z");
        let prefix =
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                      SignedHeaders=host;x-amz-date, Signature=";
        signed
            .authorization
            .strip_prefix(prefix)
            .unwrap()
            .to_owned()
    }

    /// The test suite's `get-vanilla` and `get-vanilla-query-order-key-case`
    /// (parameters sorted by name, then value).
    #[test]
    fn signatures_match_the_aws_test_suite() {
        assert_eq!(
            suite_signature("https://example.amazonaws.com/"),
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
        assert_eq!(
            suite_signature("https://example.amazonaws.com/?Param2=value2&Param1=value1"),
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
        );
        assert_eq!(
            canonical_query("b=2&a=%7e&a=1&c=x%20y&d"),
            "a=1&a=~&b=2&c=x%20y&d="
        );
    }

    #[test]
    fn a_session_token_is_signed_and_sent_but_never_shown() {
        let credentials = Credentials::new(
            "AKIDEXAMPLE".to_owned(),
            Zeroizing::new("secret".to_owned()),
            Some(Zeroizing::new("token-value".to_owned())),
        );
        let signed = sign(
            &Request {
                method: "POST",
                url: "https://kms.eu-west-1.amazonaws.com/",
                headers: &[("Content-Type", "application/x-amz-json-1.1")],
                body: b"{}",
            },
            &credentials,
            &Scope {
                region: "eu-west-1",
                service: "kms",
                time: at(0),
            },
        )
        .unwrap();
        assert!(signed
            .authorization
            .contains("SignedHeaders=content-type;host;x-amz-date;x-amz-security-token,"));
        assert!(signed
            .headers()
            .contains(&("X-Amz-Security-Token", "token-value")));
        assert_eq!(signed.amz_date, "19700101T000000Z");
        assert!(!format!("{signed:?}").contains("token-value"));
    }

    #[test]
    fn dates_are_utc_calendar_dates() {
        assert_eq!(amz_date(at(951_782_400)).unwrap(), "20000229T000000Z");
        assert_eq!(amz_date(at(4_102_444_799)).unwrap(), "20991231T235959Z");
        assert!(amz_date(UNIX_EPOCH - Duration::from_secs(1)).is_none());
    }

    #[test]
    fn paths_lose_dot_and_empty_segments_and_are_encoded_again() {
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("/"), "/");
        assert_eq!(canonical_uri("/a/./b/../c//d/"), "/a/c/d/");
        assert_eq!(canonical_uri("/a%20b/ü"), "/a%2520b/%C3%BC");
    }

    #[test]
    fn urls_give_host_headers_without_default_ports() {
        let url = Url::parse("http://User@LocalHost:8080/p?q=1#frag").unwrap();
        assert_eq!((url.path, url.query), ("/p", "q=1"));
        assert_eq!(url.host_header(), "localhost:8080");
        assert_eq!(Url::parse("https://h:443").unwrap().host_header(), "h");
        assert_eq!(
            Url::parse("http://[::1]:80/").unwrap().host_header(),
            "[::1]"
        );
        assert_eq!(
            Url::parse("http://[::1]:81/").unwrap().host_header(),
            "[::1]:81"
        );
        assert!(Url::parse("kms.amazonaws.com").is_none());
        assert!(Url::parse("ftp://h/").is_none());
        assert!(Url::parse("http://h:99999/").is_none());
    }
}
