//! The KMS calls git-seal makes (Encrypt, Decrypt, DescribeKey) over the
//! JSON 1.1 protocol: a signed `POST /` whose `X-Amz-Target` names the
//! operation, with blobs in base64. Throttling and server errors are retried
//! a few times with backoff; every other AWS error becomes a `KmsError`
//! that says what to do.
//!
//! It does *not* create, enable or schedule keys: that is the customer's
//! business, done with their own tools.

use std::time::{Duration, SystemTime};

use base64::Engine;
use zeroize::Zeroizing;

use crate::kms::credentials::{self, AwsEnv, Credentials, CredentialsError};
use crate::kms::sigv4::{self, Scope, SigningError};
use crate::kms::transport::{Answer, Timeouts, Transport, TransportError};

const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// How throttled or failing calls are retried: up to `tries` calls, the
/// n-th wait drawn between half and all of `first_wait · 2ⁿ`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Calls in all, the first included (at least 1).
    pub tries: u32,
    /// The longest first wait.
    pub first_wait: Duration,
}

impl Default for Retry {
    /// Four tries, waiting at most 0.25 + 0.5 + 1 s in all.
    fn default() -> Retry {
        Retry {
            tries: 4,
            first_wait: Duration::from_millis(250),
        }
    }
}

/// What DescribeKey says about a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDescription {
    /// The key's ARN (what an alias or key id resolves to).
    pub arn: String,
    /// `Enabled`, `Disabled`, `PendingDeletion`, … (the API may leave it
    /// out).
    pub key_state: Option<String>,
    /// `ENCRYPT_DECRYPT` for the symmetric keys git-seal uses (the API may
    /// leave it out).
    pub key_usage: Option<String>,
}

/// A failed KMS call. Messages name the operation, key, endpoint and what
/// to do; never credentials, tokens or plaintext.
#[derive(Debug, thiserror::Error)]
pub enum KmsError {
    /// No region is configured and the key id is not an ARN.
    #[error(
        "no AWS region for KMS key {key_id:?}: set AWS_REGION, give the profile a region, \
         or name the key by its ARN"
    )]
    NoRegion {
        /// The key id as given.
        key_id: String,
    },
    /// No usable credentials.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    /// The request could not be signed.
    #[error(transparent)]
    Signing(#[from] SigningError),
    /// The endpoint could not be reached.
    #[error(
        "cannot reach AWS KMS at {endpoint}: {source}; check the network, AWS_REGION and \
         AWS_ENDPOINT_URL_KMS"
    )]
    Unreachable {
        /// The KMS endpoint.
        endpoint: String,
        /// What failed.
        #[source]
        source: TransportError,
    },
    /// AWS did not accept the credentials themselves.
    #[error(
        "AWS rejected the credentials for KMS {operation} ({code}: {message}); refresh or fix \
         them (an expired session token, a deleted access key, or a clock more than 5 minutes off)"
    )]
    BadCredentials {
        /// The operation.
        operation: &'static str,
        /// AWS's error code.
        code: String,
        /// AWS's message.
        message: String,
    },
    /// The caller may not use the key.
    #[error(
        "AWS KMS denied {operation} with key {key_id} ({message}); an IAM grant is missing: \
         allow kms:{operation} on this key in the caller's IAM policy and the key policy, and \
         if a kms:EncryptionContext condition applies, let it allow the git-seal:kid context"
    )]
    AccessDenied {
        /// The operation.
        operation: &'static str,
        /// The key id as given.
        key_id: String,
        /// AWS's message.
        message: String,
    },
    /// The key is disabled.
    #[error(
        "KMS key {key_id} is disabled, so {operation} is refused; enable it \
         (aws kms enable-key --key-id {key_id}) or rotate to a KEK under another key"
    )]
    Disabled {
        /// The operation.
        operation: &'static str,
        /// The key id as given.
        key_id: String,
    },
    /// The key is pending deletion, pending import or otherwise unusable.
    #[error(
        "KMS key {key_id} cannot be used now ({message}); if it is pending deletion, cancel \
         that with aws kms cancel-key-deletion --key-id {key_id} and enable it again"
    )]
    InvalidState {
        /// The key id as given.
        key_id: String,
        /// AWS's message.
        message: String,
    },
    /// No such key in this account and region.
    #[error(
        "KMS key {key_id} was not found in region {region} ({message}); check the key id or ARN \
         and AWS_REGION"
    )]
    NotFound {
        /// The key id as given.
        key_id: String,
        /// The region asked.
        region: String,
        /// AWS's message.
        message: String,
    },
    /// The ciphertext does not open under this key with this context.
    #[error(
        "KMS cannot decrypt this record with key {key_id}: its ciphertext or its encryption \
         context (git-seal:kid) was altered, or it was made under another key; restore the \
         KEK record from history"
    )]
    InvalidCiphertext {
        /// The key id as given.
        key_id: String,
    },
    /// Throttled or failing every time.
    #[error(
        "AWS KMS refused {operation} {tries} times ({last}); try again later, or raise the \
         account's KMS request quota if it keeps happening"
    )]
    Throttled {
        /// The operation.
        operation: &'static str,
        /// Calls made.
        tries: u32,
        /// The last refusal.
        last: String,
    },
    /// Any other AWS error.
    #[error("AWS KMS refused {operation} with key {key_id}: {code}: {message}")]
    Service {
        /// The operation.
        operation: &'static str,
        /// The key id as given.
        key_id: String,
        /// AWS's error code.
        code: String,
        /// AWS's message.
        message: String,
    },
    /// The answer is not a KMS answer.
    #[error(
        "{endpoint} answered KMS {operation} with something that is not a KMS answer \
         (HTTP {status}: {reason}); check AWS_ENDPOINT_URL_KMS"
    )]
    Malformed {
        /// The operation.
        operation: &'static str,
        /// The KMS endpoint.
        endpoint: String,
        /// The HTTP status.
        status: u16,
        /// What was wrong.
        reason: &'static str,
    },
}

/// A blocking AWS KMS client bound to one region, endpoint and set of
/// credentials.
#[derive(Debug)]
pub struct KmsClient {
    transport: Transport,
    credentials: Credentials,
    region: String,
    endpoint: String,
    retry: Retry,
}

impl KmsClient {
    /// A client for `key_id` configured from the AWS environment: region
    /// (an ARN's own, else `AWS_REGION`, …), endpoint (`AWS_ENDPOINT_URL_KMS`,
    /// `AWS_ENDPOINT_URL`, else the regional one) and credentials.
    pub fn from_env(env: &AwsEnv, key_id: &str, timeouts: Timeouts) -> Result<KmsClient, KmsError> {
        let region = credentials::region(env, key_id)?.ok_or_else(|| KmsError::NoRegion {
            key_id: key_id.to_owned(),
        })?;
        let transport = Transport::new(timeouts);
        let credentials = credentials::load(env, &region, &transport)?;
        Ok(KmsClient {
            transport,
            credentials,
            endpoint: env.endpoint("kms", &region),
            region,
            retry: Retry::default(),
        })
    }

    /// A client with everything given.
    pub fn new(
        endpoint: String,
        region: String,
        credentials: Credentials,
        timeouts: Timeouts,
    ) -> KmsClient {
        KmsClient {
            transport: Transport::new(timeouts),
            credentials,
            region,
            endpoint,
            retry: Retry::default(),
        }
    }

    /// The same client, retrying as `retry` says.
    pub fn with_retry(mut self, retry: Retry) -> KmsClient {
        self.retry = retry;
        self
    }

    /// The region calls are signed for.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The URL calls go to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// KMS Encrypt: `plaintext` (at most 4 KiB) under `key_id`, bound to
    /// `context`. Returns the ciphertext blob.
    pub fn encrypt(
        &self,
        key_id: &str,
        plaintext: &[u8],
        context: &[(&str, &str)],
    ) -> Result<Vec<u8>, KmsError> {
        let encoded = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(plaintext));
        let body = request_body(key_id, Some(("Plaintext", &encoded)), context);
        let answer = self.call("Encrypt", key_id, &body)?;
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct EncryptAnswer {
            ciphertext_blob: String,
        }
        let parsed: EncryptAnswer = self.parse("Encrypt", &answer)?;
        self.decode("Encrypt", &answer, &parsed.ciphertext_blob)
            .map(|blob| blob.to_vec())
    }

    /// KMS Decrypt: `ciphertext` with `context`, pinned to `key_id` (KMS
    /// refuses a ciphertext made under another key). Returns the plaintext.
    pub fn decrypt(
        &self,
        key_id: &str,
        ciphertext: &[u8],
        context: &[(&str, &str)],
    ) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        let encoded = base64::engine::general_purpose::STANDARD.encode(ciphertext);
        let body = request_body(key_id, Some(("CiphertextBlob", &encoded)), context);
        let answer = self.call("Decrypt", key_id, &body)?;
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct DecryptAnswer {
            plaintext: String,
        }
        let parsed: DecryptAnswer = self.parse("Decrypt", &answer)?;
        let plaintext = Zeroizing::new(parsed.plaintext);
        self.decode("Decrypt", &answer, &plaintext)
    }

    /// KMS DescribeKey: what `key_id` (an id, ARN or alias) resolves to and
    /// whether it is usable.
    pub fn describe_key(&self, key_id: &str) -> Result<KeyDescription, KmsError> {
        let body = request_body(key_id, None, &[]);
        let answer = self.call("DescribeKey", key_id, &body)?;
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Metadata {
            arn: String,
            key_state: Option<String>,
            key_usage: Option<String>,
        }
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct DescribeAnswer {
            key_metadata: Metadata,
        }
        let parsed: DescribeAnswer = self.parse("DescribeKey", &answer)?;
        Ok(KeyDescription {
            arn: parsed.key_metadata.arn,
            key_state: parsed.key_metadata.key_state,
            key_usage: parsed.key_metadata.key_usage,
        })
    }

    /// Sign and send one call, retrying throttling and server errors;
    /// a successful answer is returned, any other becomes a `KmsError`.
    fn call(&self, operation: &'static str, key_id: &str, body: &[u8]) -> Result<Answer, KmsError> {
        let target = format!("TrentService.{operation}");
        let headers = [
            ("Content-Type", CONTENT_TYPE),
            ("X-Amz-Target", target.as_str()),
        ];
        let tries = self.retry.tries.max(1);
        let mut last = String::new();
        for attempt in 0..tries {
            if attempt > 0 {
                std::thread::sleep(backoff(self.retry.first_wait, attempt - 1));
            }
            let signed = sigv4::sign(
                &sigv4::Request {
                    method: "POST",
                    url: &self.endpoint,
                    headers: &headers,
                    body,
                },
                &self.credentials,
                &Scope {
                    region: &self.region,
                    service: "kms",
                    time: SystemTime::now(),
                },
            )?;
            let mut all = headers.to_vec();
            all.extend(signed.headers());
            let answer = self
                .transport
                .post(&self.endpoint, &all, body)
                .map_err(|source| KmsError::Unreachable {
                    endpoint: self.endpoint.clone(),
                    source,
                })?;
            if (200..300).contains(&answer.status) {
                return Ok(answer);
            }
            let error = AwsError::parse(&answer);
            if answer.status == 429 || answer.status >= 500 || error.code == "ThrottlingException" {
                last = format!(
                    "HTTP {}: {}",
                    answer.status,
                    error.code_or_status(answer.status)
                );
                continue;
            }
            return Err(self.refusal(operation, key_id, &answer, error));
        }
        Err(KmsError::Throttled {
            operation,
            tries,
            last,
        })
    }

    fn refusal(
        &self,
        operation: &'static str,
        key_id: &str,
        answer: &Answer,
        error: AwsError,
    ) -> KmsError {
        let key_id = key_id.to_owned();
        let AwsError { code, message } = error;
        match code.as_str() {
            "AccessDeniedException" => KmsError::AccessDenied {
                operation,
                key_id,
                message,
            },
            "DisabledException" => KmsError::Disabled { operation, key_id },
            "KMSInvalidStateException" => KmsError::InvalidState { key_id, message },
            "NotFoundException" => KmsError::NotFound {
                key_id,
                region: self.region.clone(),
                message,
            },
            "InvalidCiphertextException" | "IncorrectKeyException" => {
                KmsError::InvalidCiphertext { key_id }
            }
            "UnrecognizedClientException"
            | "InvalidSignatureException"
            | "ExpiredTokenException"
            | "IncompleteSignature"
            | "MissingAuthenticationToken" => KmsError::BadCredentials {
                operation,
                code,
                message,
            },
            "" => KmsError::Malformed {
                operation,
                endpoint: self.endpoint.clone(),
                status: answer.status,
                reason: "an error without an AWS error code",
            },
            _ => KmsError::Service {
                operation,
                key_id,
                code,
                message,
            },
        }
    }

    fn parse<T: serde::de::DeserializeOwned>(
        &self,
        operation: &'static str,
        answer: &Answer,
    ) -> Result<T, KmsError> {
        serde_json::from_slice(&answer.body).map_err(|_| KmsError::Malformed {
            operation,
            endpoint: self.endpoint.clone(),
            status: answer.status,
            reason: "not the JSON expected",
        })
    }

    fn decode(
        &self,
        operation: &'static str,
        answer: &Answer,
        text: &str,
    ) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map(Zeroizing::new)
            .map_err(|_| KmsError::Malformed {
                operation,
                endpoint: self.endpoint.clone(),
                status: answer.status,
                reason: "a blob that is not base64",
            })
    }
}

/// The JSON body: `KeyId`, one base64 blob field, and the encryption
/// context. Built in one zeroizing buffer sized up front, so no copy of a
/// plaintext blob is left behind by a reallocation.
fn request_body(
    key_id: &str,
    blob: Option<(&str, &str)>,
    context: &[(&str, &str)],
) -> Zeroizing<Vec<u8>> {
    let json = |text: &str| serde_json::Value::from(text).to_string();
    let context: Vec<String> = context
        .iter()
        .map(|(k, v)| format!("{}:{}", json(k), json(v)))
        .collect();
    let key = json(key_id);
    let capacity = 64
        + key.len()
        + blob.map_or(0, |(n, b)| n.len() + b.len())
        + context.iter().map(|c| c.len() + 1).sum::<usize>();
    let mut body = Zeroizing::new(Vec::with_capacity(capacity));
    body.extend_from_slice(b"{\"KeyId\":");
    body.extend_from_slice(key.as_bytes());
    if let Some((name, value)) = blob {
        body.extend_from_slice(format!(",\"{name}\":\"").as_bytes());
        body.extend_from_slice(value.as_bytes());
        body.push(b'"');
    }
    if !context.is_empty() {
        body.extend_from_slice(b",\"EncryptionContext\":{");
        body.extend_from_slice(context.join(",").as_bytes());
        body.push(b'}');
    }
    body.push(b'}');
    body
}

/// The n-th wait (from 0): between half and all of `first · 2ⁿ`.
fn backoff(first: Duration, n: u32) -> Duration {
    let ceiling = first.saturating_mul(1 << n.min(16));
    let half = ceiling / 2;
    let jitter =
        rand_core::RngCore::next_u64(&mut rand_core::OsRng) % (half.as_micros().max(1) as u64);
    half + Duration::from_micros(jitter)
}

/// An AWS JSON-protocol error: `__type` (after any `namespace#`, before any
/// `:`) and `message`, each cut short, since both are shown to users.
struct AwsError {
    code: String,
    message: String,
}

impl AwsError {
    fn parse(answer: &Answer) -> AwsError {
        #[derive(serde::Deserialize)]
        struct Raw {
            #[serde(rename = "__type")]
            kind: Option<String>,
            #[serde(alias = "Message")]
            message: Option<String>,
        }
        let raw: Raw = serde_json::from_slice(&answer.body).unwrap_or(Raw {
            kind: None,
            message: None,
        });
        let kind = raw.kind.unwrap_or_default();
        let code = kind.rsplit('#').next().unwrap_or_default();
        let code = code.split(':').next().unwrap_or_default();
        AwsError {
            code: printable(code, 100),
            message: printable(raw.message.as_deref().unwrap_or("no message"), 300),
        }
    }

    fn code_or_status(&self, status: u16) -> String {
        if self.code.is_empty() {
            format!("status {status}")
        } else {
            self.code.clone()
        }
    }
}

/// At most `max` characters, control characters dropped (a hostile endpoint
/// should not draw on the user's terminal).
fn printable(text: &str, max: usize) -> String {
    text.chars().filter(|c| !c.is_control()).take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_kms_json() {
        let body = request_body(
            "alias/k\"",
            Some(("Plaintext", "AAEC")),
            &[("git-seal:kid", "k_1")],
        );
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"KeyId": "alias/k\"", "Plaintext": "AAEC", "EncryptionContext": {"git-seal:kid": "k_1"}})
        );
        assert_eq!(&request_body("k", None, &[])[..], br#"{"KeyId":"k"}"#);
    }

    #[test]
    fn error_codes_lose_namespace_and_suffix() {
        let answer = |body: &str| Answer {
            status: 400,
            body: Zeroizing::new(body.as_bytes().to_vec()),
        };
        let e = AwsError::parse(&answer(
            r#"{"__type":"com.amazonaws.kms#NotFoundException","message":"gone\u001b[2J"}"#,
        ));
        assert_eq!(
            (e.code.as_str(), e.message.as_str()),
            ("NotFoundException", "gone[2J")
        );
        let e = AwsError::parse(&answer(
            r#"{"__type":"ThrottlingException:http://internal","Message":"slow"}"#,
        ));
        assert_eq!(
            (e.code.as_str(), e.message.as_str()),
            ("ThrottlingException", "slow")
        );
        let e = AwsError::parse(&answer("<html>"));
        assert_eq!(
            (e.code.as_str(), e.code_or_status(502).as_str()),
            ("", "status 502")
        );
    }

    #[test]
    fn backoff_doubles_within_bounds() {
        let first = Duration::from_millis(200);
        for n in 0..3 {
            let wait = backoff(first, n);
            let ceiling = first * (1 << n);
            assert!(wait >= ceiling / 2 && wait <= ceiling, "{n}: {wait:?}");
        }
        let total: Duration = (0..3).map(|n| first * (1 << n)).sum();
        assert!(total <= Duration::from_secs(3));
    }
}
