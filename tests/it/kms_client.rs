//! The AWS KMS client (`git_seal::kms`) against independent parties:
//!
//! - botocore's SigV4 signer must produce byte-identical `Authorization` and
//!   `X-Amz-Date` headers for the same requests, credentials and time;
//! - the moto emulator serves KMS and STS on a loopback port for the calls,
//!   errors and credential sources. moto accepts any signature, which is why
//!   signing is proven against botocore instead;
//! - a scripted loopback HTTP server plays throttling and broken answers.
//!
//! Only loopback addresses are used. Without python3, botocore or moto the
//! tests print why and skip, except under `CI=true`, where they fail.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use git_seal::kms::sigv4::{self, Scope};
use git_seal::kms::transport::{Transport, TransportError};
use git_seal::kms::{AwsEnv, Credentials, CredentialsError, KmsClient, KmsError, Retry, Timeouts};
use zeroize::Zeroizing;

use crate::harness::in_ci;

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY-SECRET";
const TOKEN: &str = "IQoJb3JpZ2luX2VjE-SESSION-TOKEN";

/// Skip (or, under CI, fail) when a component is missing.
fn skip(why: &str) {
    assert!(!in_ci(), "{why} under CI=true (see .ci/run)");
    eprintln!("skipping: {why}");
}

fn credentials(token: Option<&str>) -> Credentials {
    Credentials::new(
        "AKIDTESTEXAMPLE".to_owned(),
        Zeroizing::new(SECRET.to_owned()),
        token.map(|t| Zeroizing::new(t.to_owned())),
    )
}

/// Display, alternate Debug and every source of `error` hold none of
/// `secrets`.
#[track_caller]
fn assert_no_secret(error: &(dyn std::error::Error + 'static), secrets: &[&str]) {
    let mut texts = vec![format!("{error}"), format!("{error:#?}")];
    let mut source = error.source();
    while let Some(e) = source {
        texts.push(format!("{e} {e:?}"));
        source = e.source();
    }
    for text in &texts {
        for secret in secrets {
            assert!(!text.contains(secret), "{secret:?} shows in {text}");
        }
    }
}

// ---------------------------------------------------------------- botocore

/// botocore signs each request on stdin (a JSON list, secrets included) at
/// its frozen time and prints the headers it set.
const BOTOCORE_SIGNER: &str = r#"
import base64, datetime, json, sys
from urllib.parse import unquote
from unittest import mock
import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

out = []
for case in json.load(sys.stdin):
    creds = Credentials(case["access_key_id"], case["secret"], case["token"])
    # A query goes in as parameters, as botocore's serializers hand it
    # over: botocore then encodes it afresh, as the SigV4 spec says.
    url, _, query = case["url"].partition("?")
    params = [tuple(unquote(part) for part in pair.partition("=")[::2])
              for pair in query.split("&") if pair]
    request = AWSRequest(method=case["method"], url=url, params=params,
                         data=base64.b64decode(case["body"]), headers=dict(case["headers"]))
    frozen = datetime.datetime.fromtimestamp(case["time"], datetime.timezone.utc)
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=frozen):
        botocore.auth.SigV4Auth(creds, case["service"], case["region"]).add_auth(request)
    out.append({"authorization": request.headers["Authorization"],
                "x_amz_date": request.headers["X-Amz-Date"],
                "token": request.headers.get("X-Amz-Security-Token")})
json.dump(out, sys.stdout)
"#;

struct Case {
    method: &'static str,
    url: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    body: Vec<u8>,
    region: &'static str,
    service: &'static str,
    time: u64,
    token: Option<&'static str>,
}

fn botocore_cases() -> Vec<Case> {
    let kms = |target| {
        vec![
            ("Content-Type", "application/x-amz-json-1.1"),
            ("X-Amz-Target", target),
        ]
    };
    vec![
        Case {
            method: "POST",
            url: "https://kms.us-east-1.amazonaws.com/",
            headers: kms("TrentService.Encrypt"),
            body: br#"{"KeyId":"alias/git-seal","Plaintext":"AAECAw=="}"#.to_vec(),
            region: "us-east-1",
            service: "kms",
            time: 1_767_322_445,
            token: None,
        },
        Case {
            method: "POST",
            url: "https://kms.eu-west-1.amazonaws.com/",
            headers: kms("TrentService.Decrypt"),
            body: br#"{"CiphertextBlob":"AQID","EncryptionContext":{"git-seal:kid":"k_b3b9e069a8d3a8c9"}}"#
                .to_vec(),
            region: "eu-west-1",
            service: "kms",
            time: 951_782_400,
            token: Some(TOKEN),
        },
        Case {
            method: "POST",
            url: "https://kms.ap-southeast-2.amazonaws.com",
            headers: kms("TrentService.DescribeKey"),
            body: r#"{"KeyId":"alias/ключ-🔑","Note":"naïve — ünïcödé"}"#.as_bytes().to_vec(),
            region: "ap-southeast-2",
            service: "kms",
            time: 4_102_444_799,
            token: Some("token with spaces / and + signs="),
        },
        Case {
            method: "POST",
            url: "http://127.0.0.1:4566/some/./path/../x%20y/ü/?b=2&a=1&a=0&c=%7E",
            headers: vec![
                ("Content-Type", "application/x-amz-json-1.1"),
                ("X-Custom-Header", "  spaced    out \t value  "),
                ("User-Agent", "not-signed/1.0"),
            ],
            body: b"".to_vec(),
            region: "us-gov-west-1",
            service: "kms",
            time: 1_700_000_000,
            token: None,
        },
        Case {
            method: "POST",
            url: "https://sts.eu-central-1.amazonaws.com:443/",
            headers: vec![(
                "Content-Type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )],
            body: b"Action=GetCallerIdentity&Version=2011-06-15".to_vec(),
            region: "eu-central-1",
            service: "sts",
            time: 1_234_567_890,
            token: Some(TOKEN),
        },
        Case {
            method: "GET",
            url: "http://[::1]:8080/?Version=2011-06-15&Action=GetCallerIdentity",
            headers: vec![],
            body: (0u8..=255).collect(),
            region: "cn-north-1",
            service: "sts",
            time: 0,
            token: None,
        },
    ]
}

fn python_has(module: &str) -> bool {
    Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn kms_client_sigv4_matches_botocore_byte_for_byte() {
    if !python_has("botocore.auth") {
        return skip("no python3 with botocore");
    }
    let cases = botocore_cases();
    let input: Vec<serde_json::Value> = cases
        .iter()
        .map(|c| {
            serde_json::json!({
                "method": c.method, "url": c.url, "headers": c.headers,
                "body": base64_encode(&c.body), "region": c.region, "service": c.service,
                "time": c.time, "access_key_id": "AKIDTESTEXAMPLE", "secret": SECRET,
                "token": c.token,
            })
        })
        .collect();
    // The secret goes over stdin, never argv or the environment.
    let mut child = Command::new("python3")
        .args(["-c", BOTOCORE_SIGNER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(&input).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "botocore signer failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(theirs.len(), cases.len());
    for (case, theirs) in cases.iter().zip(&theirs) {
        let ours = sigv4::sign(
            &sigv4::Request {
                method: case.method,
                url: case.url,
                headers: &case.headers,
                body: &case.body,
            },
            &credentials(case.token),
            &Scope {
                region: case.region,
                service: case.service,
                time: UNIX_EPOCH + Duration::from_secs(case.time),
            },
        )
        .unwrap();
        assert_eq!(ours.authorization, theirs["authorization"], "{}", case.url);
        assert_eq!(ours.amz_date, theirs["x_amz_date"], "{}", case.url);
        let our_token = ours
            .headers()
            .into_iter()
            .find(|(name, _)| *name == "X-Amz-Security-Token")
            .map(|(_, value)| value.to_owned());
        assert_eq!(
            our_token.as_deref(),
            theirs["token"].as_str(),
            "{}",
            case.url
        );
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

// -------------------------------------------------------------------- moto

/// A child process killed (by its PID) on drop.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Guard {
    /// Start `command` and wait until it listens on loopback `port`.
    fn listening(mut command: Command, port: u16) -> Guard {
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start a test server");
        let mut guard = Guard(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = guard.0.try_wait().unwrap() {
                panic!("{command:?} exited before it listened: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "{command:?} did not listen in 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        guard
    }
}

/// A moto server on a free loopback port, killed on drop; it runs in a
/// directory of its own, where its request recorder writes.
pub(crate) struct Moto {
    _server: Guard,
    _dir: tempfile::TempDir,
    pub(crate) url: String,
}

impl Moto {
    /// Start moto and wait until it answers; `None` (after `skip`) when moto
    /// is not installed.
    pub(crate) fn start() -> Option<Moto> {
        if !python_has("moto.server") {
            skip("no python3 with moto[server]");
            return None;
        }
        let port = free_port();
        let mut command = Command::new("python3");
        command.args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ]);
        let dir = tempfile::tempdir().unwrap();
        command.current_dir(dir.path());
        Some(Moto {
            _server: Guard::listening(command, port),
            _dir: dir,
            url: format!("http://127.0.0.1:{port}"),
        })
    }

    /// An environment that sends KMS and STS to this moto, with `vars`.
    fn env(&self, home: &Path, vars: &[(&str, &str)]) -> AwsEnv {
        let mut all = vec![
            ("HOME", home.to_str().unwrap()),
            ("AWS_ENDPOINT_URL", &self.url),
            ("AWS_REGION", "eu-west-1"),
        ];
        all.extend_from_slice(vars);
        AwsEnv::from_vars(all)
    }

    /// A client with static test credentials.
    fn client(&self) -> KmsClient {
        KmsClient::new(
            self.url.clone(),
            "eu-west-1".to_owned(),
            credentials(None),
            Timeouts::default(),
        )
    }

    /// Call a KMS operation the product does not need (CreateKey, …) with a
    /// request signed as the client signs; returns the JSON answer.
    pub(crate) fn admin(&self, operation: &str, body: serde_json::Value) -> serde_json::Value {
        let body = body.to_string();
        let target = format!("TrentService.{operation}");
        let headers = [
            ("Content-Type", "application/x-amz-json-1.1"),
            ("X-Amz-Target", target.as_str()),
        ];
        let signed = sigv4::sign(
            &sigv4::Request {
                method: "POST",
                url: &self.url,
                headers: &headers,
                body: body.as_bytes(),
            },
            &credentials(None),
            &Scope {
                region: "eu-west-1",
                service: "kms",
                time: SystemTime::now(),
            },
        )
        .unwrap();
        let mut all = headers.to_vec();
        all.extend(signed.headers());
        let answer = Transport::new(Timeouts::default())
            .post(&self.url, &all, body.as_bytes())
            .unwrap();
        assert_eq!(
            answer.status,
            200,
            "{operation}: {}",
            String::from_utf8_lossy(&answer.body)
        );
        serde_json::from_slice(&answer.body).unwrap()
    }

    /// A new symmetric key; its id.
    pub(crate) fn create_key(&self) -> String {
        let created = self.admin(
            "CreateKey",
            serde_json::json!({"Description": "git-seal test", "KeyUsage": "ENCRYPT_DECRYPT"}),
        );
        created["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned()
    }
}

/// A loopback port nobody listens on (bound, then released).
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

const KID: &str = "k_b3b9e069a8d3a8c9";

/// Encrypt a stand-in KEK under `key_id` bound to [`KID`] and get it back.
#[track_caller]
fn assert_round_trip(client: &KmsClient, key_id: &str) {
    let context = [("git-seal:kid", KID)];
    let blob = client.encrypt(key_id, b"kek", &context).unwrap();
    assert_eq!(
        &client.decrypt(key_id, &blob, &context).unwrap()[..],
        b"kek"
    );
}

#[test]
fn kms_client_round_trips_with_the_kid_as_encryption_context() {
    let Some(moto) = Moto::start() else { return };
    let key_id = moto.create_key();
    let client = moto.client();
    let described = client.describe_key(&key_id).unwrap();
    assert!(
        described.arn.starts_with("arn:aws:kms:eu-west-1:"),
        "{described:?}"
    );
    assert!(described.arn.ends_with(&key_id));
    assert_eq!(
        (
            described.key_state.as_deref(),
            described.key_usage.as_deref()
        ),
        (Some("Enabled"), Some("ENCRYPT_DECRYPT"))
    );

    let kek = [0x5au8; 32];
    let context = [("git-seal:kid", KID)];
    let blob = client.encrypt(&key_id, &kek, &context).unwrap();
    assert!(!blob.windows(kek.len()).any(|w| w == kek));
    let opened = client.decrypt(&key_id, &blob, &context).unwrap();
    assert_eq!(&opened[..], &kek[..]);
    // The ARN names the same key.
    let opened = client.decrypt(&described.arn, &blob, &context).unwrap();
    assert_eq!(&opened[..], &kek[..]);

    let wrong = client
        .decrypt(&key_id, &blob, &[("git-seal:kid", "k_0000000000000000")])
        .unwrap_err();
    assert!(
        matches!(wrong, KmsError::InvalidCiphertext { .. }),
        "{wrong:?}"
    );
    assert!(wrong.to_string().contains("encryption context"), "{wrong}");
    let none = client.decrypt(&key_id, &blob, &[]).unwrap_err();
    assert!(
        matches!(none, KmsError::InvalidCiphertext { .. }),
        "{none:?}"
    );
    let mut altered = blob.clone();
    let last = altered.len() - 1;
    altered[last] ^= 1;
    let altered = client.decrypt(&key_id, &altered, &context).unwrap_err();
    assert!(
        matches!(altered, KmsError::InvalidCiphertext { .. }),
        "{altered:?}"
    );
    for error in [&wrong, &none, &altered] {
        assert_no_secret(error, &[SECRET, "Wlpa"]);
    }
}

#[test]
fn kms_client_names_unknown_keys_and_reads_key_states() {
    let Some(moto) = Moto::start() else { return };
    let client = moto.client();
    let unknown = "0b7c8d6e-1111-2222-3333-444455556666";
    for error in [
        client.describe_key(unknown).unwrap_err(),
        client.encrypt(unknown, b"x", &[]).unwrap_err(),
    ] {
        assert!(matches!(error, KmsError::NotFound { .. }), "{error:?}");
        let text = error.to_string();
        assert!(
            text.contains(unknown) && text.contains("eu-west-1"),
            "{text}"
        );
        assert_no_secret(&error, &[SECRET]);
    }

    // moto keeps key states but does not refuse calls by them (real KMS
    // does: the scripted server below plays those refusals).
    let key_id = moto.create_key();
    moto.admin("DisableKey", serde_json::json!({"KeyId": key_id}));
    let state = client.describe_key(&key_id).unwrap().key_state;
    assert_eq!(state.as_deref(), Some("Disabled"));
    moto.admin(
        "ScheduleKeyDeletion",
        serde_json::json!({"KeyId": key_id, "PendingWindowInDays": 7}),
    );
    let state = client.describe_key(&key_id).unwrap().key_state;
    assert_eq!(state.as_deref(), Some("PendingDeletion"));
}

#[test]
fn kms_client_without_credentials_names_the_sources_it_tried() {
    let home = tempfile::tempdir().unwrap();
    // A default profile with a region only: no credentials anywhere.
    std::fs::create_dir_all(home.path().join(".aws")).unwrap();
    std::fs::write(
        home.path().join(".aws/config"),
        "[default]\nregion = eu-west-1\n",
    )
    .unwrap();
    let env = AwsEnv::from_vars([
        ("HOME", home.path().to_str().unwrap()),
        ("AWS_ENDPOINT_URL_KMS", "http://127.0.0.1:9"),
    ]);
    let error = KmsClient::from_env(&env, "alias/git-seal", Timeouts::default()).unwrap_err();
    assert!(
        matches!(
            error,
            KmsError::Credentials(CredentialsError::NotFound { .. })
        ),
        "{error:?}"
    );
    let text = error.to_string();
    for source in [
        "environment",
        "web identity",
        "profile \"default\"",
        ".aws/credentials",
        ".aws/config",
    ] {
        assert!(text.contains(source), "{source} missing from: {text}");
    }

    let env = AwsEnv::from_vars([
        ("HOME", home.path().to_str().unwrap()),
        ("AWS_PROFILE", "nosuch"),
    ]);
    let arn = "arn:aws:kms:eu-west-1:111122223333:key/0b7c8d6e";
    let error = KmsClient::from_env(&env, arn, Timeouts::default()).unwrap_err();
    assert!(error.to_string().contains("\"nosuch\""), "{error}");

    let error = KmsClient::from_env(
        &AwsEnv::from_vars([("HOME", "/nonexistent")]),
        "alias/x",
        Timeouts::default(),
    )
    .unwrap_err();
    assert!(matches!(error, KmsError::NoRegion { .. }), "{error:?}");
}

#[test]
fn kms_client_reports_an_unreachable_endpoint_within_seconds() {
    let home = tempfile::tempdir().unwrap();
    let closed = format!("http://127.0.0.1:{}", free_port());
    let env = AwsEnv::from_vars([
        ("HOME", home.path().to_str().unwrap()),
        ("AWS_REGION", "eu-west-1"),
        ("AWS_ACCESS_KEY_ID", "AKIDTESTEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", SECRET),
        ("AWS_SESSION_TOKEN", TOKEN),
        ("AWS_ENDPOINT_URL_KMS", &closed),
    ]);
    let client = KmsClient::from_env(&env, "alias/git-seal", Timeouts::default()).unwrap();
    assert_eq!(client.endpoint(), closed);
    let started = Instant::now();
    let error = client
        .decrypt("alias/git-seal", b"blob", &[("git-seal:kid", KID)])
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(error, KmsError::Unreachable { .. }), "{error:?}");
    assert!(error.to_string().contains(&closed), "{error}");
    assert_no_secret(&error, &[SECRET, TOKEN]);
    let debug = format!("{client:?} {env:?}");
    assert!(!debug.contains(SECRET) && !debug.contains(TOKEN), "{debug}");
}

/// An HTTPS server with a self-signed certificate for 127.0.0.1.
const TLS_SERVER: &str = r#"
import http.server, ssl, sys
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(sys.argv[2], sys.argv[3])
server = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), http.server.BaseHTTPRequestHandler)
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"#;

#[test]
fn kms_client_refuses_a_certificate_the_system_does_not_trust() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !made.is_ok_and(|s| s.success()) || !python_has("ssl") {
        return skip("no openssl command or python3 ssl module");
    }
    let port = free_port();
    let mut command = Command::new("python3");
    command
        .args(["-c", TLS_SERVER, &port.to_string()])
        .arg(&cert)
        .arg(&key);
    let _server = Guard::listening(command, port);
    let url = format!("https://127.0.0.1:{port}");
    let client = KmsClient::new(
        url.clone(),
        "eu-west-1".to_owned(),
        credentials(Some(TOKEN)),
        Timeouts::default(),
    );
    let error = client.describe_key("alias/git-seal").unwrap_err();
    assert!(
        matches!(
            &error,
            KmsError::Unreachable {
                source: TransportError::Tls { .. },
                ..
            }
        ),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(
        text.contains(&url) && text.contains("certificate"),
        "{text}"
    );
    assert_no_secret(&error, &[SECRET, TOKEN]);
}

#[test]
fn kms_client_times_out_on_a_silent_endpoint() {
    // Accepts connections (the kernel's backlog does) but never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let client = KmsClient::new(
        url.clone(),
        "eu-west-1".to_owned(),
        credentials(None),
        Timeouts {
            connect: Duration::from_secs(1),
            total: Duration::from_secs(1),
        },
    );
    let started = Instant::now();
    let error = client.describe_key("alias/git-seal").unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(error, KmsError::Unreachable { .. }), "{error:?}");
    assert!(error.to_string().contains("in time"), "{error}");
}

#[test]
fn kms_client_gets_credentials_from_a_credential_process() {
    let Some(moto) = Moto::start() else { return };
    let key_id = moto.create_key();
    let home = tempfile::tempdir().unwrap();
    let aws = home.path().join(".aws");
    std::fs::create_dir_all(&aws).unwrap();
    let answer = serde_json::json!({
        "Version": 1, "AccessKeyId": "ASIAPROCESSEXAMPLE", "SecretAccessKey": SECRET,
        "SessionToken": TOKEN, "Expiration": "2099-01-01T00:00:00Z",
    });
    let helper = home.path().join("helper.sh");
    std::fs::write(&helper, format!("#!/bin/sh\ncat <<'EOF'\n{answer}\nEOF\n")).unwrap();
    std::fs::write(
        aws.join("config"),
        format!(
            "[default]\nregion = us-east-2\n\n[profile ci]\nregion = eu-west-1\ncredential_process = sh {}\n\n\
             [profile broken]\ncredential_process = echo '{SECRET}'; exit 3\n\n\
             [profile garbled]\ncredential_process = echo '{{\"AccessKeyId\": \"{SECRET}\"}}'\n\n\
             [profile sso]\nsso_session = corp\n",
            helper.display()
        ),
    )
    .unwrap();
    // The region comes from the profile for "ci", from AWS_REGION for the
    // others (it is looked up before the credentials).
    let env = |profile| {
        let mut vars = vec![
            ("HOME", home.path().to_str().unwrap()),
            ("AWS_ENDPOINT_URL", moto.url.as_str()),
            ("AWS_PROFILE", profile),
        ];
        if profile != "ci" {
            vars.push(("AWS_REGION", "eu-west-1"));
        }
        AwsEnv::from_vars(vars)
    };

    let client = KmsClient::from_env(&env("ci"), &key_id, Timeouts::default()).unwrap();
    assert_eq!(client.region(), "eu-west-1");
    let debug = format!("{client:?}");
    assert!(
        debug.contains("temporary: true") && debug.contains("2099-01-01"),
        "{debug}"
    );
    assert!(!debug.contains(SECRET) && !debug.contains(TOKEN), "{debug}");
    assert_round_trip(&client, &key_id);

    let broken = KmsClient::from_env(&env("broken"), &key_id, Timeouts::default()).unwrap_err();
    assert!(
        matches!(
            broken,
            KmsError::Credentials(CredentialsError::ProcessFailed { .. })
        ),
        "{broken:?}"
    );
    let text = broken.to_string();
    assert!(
        text.contains("\"broken\"") && text.contains("exit status: 3"),
        "{text}"
    );
    let garbled = KmsClient::from_env(&env("garbled"), &key_id, Timeouts::default()).unwrap_err();
    assert!(
        matches!(
            garbled,
            KmsError::Credentials(CredentialsError::ProcessOutput { .. })
        ),
        "{garbled:?}"
    );
    for error in [&broken, &garbled] {
        assert_no_secret(error, &[SECRET]);
    }
    let sso = KmsClient::from_env(&env("sso"), &key_id, Timeouts::default()).unwrap_err();
    assert!(sso.to_string().contains("export-credentials"), "{sso}");
}

#[test]
fn kms_client_assumes_a_role_with_web_identity_at_sts() {
    let Some(moto) = Moto::start() else { return };
    let key_id = moto.create_key();
    let home = tempfile::tempdir().unwrap();
    let token_file = home.path().join("oidc-token");
    let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJyZXBvOmFjbWUvYXBwIn0.SIGNATURE-WEB-IDENTITY";
    std::fs::write(&token_file, format!("{jwt}\n")).unwrap();
    let role = "arn:aws:iam::123456789012:role/git-seal-ci";

    let from_vars = moto.env(
        home.path(),
        &[
            ("AWS_WEB_IDENTITY_TOKEN_FILE", token_file.to_str().unwrap()),
            ("AWS_ROLE_ARN", role),
            ("AWS_ROLE_SESSION_NAME", "ci-run-42"),
        ],
    );
    std::fs::create_dir_all(home.path().join(".aws")).unwrap();
    std::fs::write(
        home.path().join(".aws/config"),
        format!(
            "[profile ci]\nrole_arn = {role}\nweb_identity_token_file = {}\n",
            token_file.display()
        ),
    )
    .unwrap();
    let from_profile = moto.env(home.path(), &[("AWS_PROFILE", "ci")]);

    for env in [from_vars, from_profile] {
        let client = KmsClient::from_env(&env, &key_id, Timeouts::default()).unwrap();
        let debug = format!("{client:?}");
        assert!(debug.contains("temporary: true"), "{debug}");
        assert!(!debug.contains(jwt), "{debug}");
        assert_round_trip(&client, &key_id);
    }

    let missing = moto.env(
        home.path(),
        &[
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "/nonexistent/token"),
            ("AWS_ROLE_ARN", role),
        ],
    );
    let error = KmsClient::from_env(&missing, &key_id, Timeouts::default()).unwrap_err();
    assert!(error.to_string().contains("/nonexistent/token"), "{error}");
}

// ------------------------------------------------- scripted loopback server

/// Serves `answers` (status, body), one per connection, in order, and
/// records each request's head; stops after the last.
struct Scripted {
    url: String,
    thread: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl Scripted {
    fn start(answers: Vec<(u16, &'static str)>) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let thread = std::thread::spawn(move || {
            let mut heads = Vec::new();
            for (status, body) in answers {
                let (stream, _) = listener.accept().unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                let mut reader = BufReader::new(stream);
                let mut head = String::new();
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = value.trim().parse().unwrap();
                    }
                    if line == "\r\n" || line.is_empty() {
                        break;
                    }
                    head.push_str(&line);
                }
                let mut body_in = vec![0; length];
                reader.read_exact(&mut body_in).unwrap();
                heads.push(head);
                let mut stream = reader.into_inner();
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/x-amz-json-1.1\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
            heads
        });
        Scripted {
            url,
            thread: Some(thread),
        }
    }

    fn client(&self) -> KmsClient {
        KmsClient::new(
            self.url.clone(),
            "eu-west-1".to_owned(),
            credentials(Some(TOKEN)),
            Timeouts::default(),
        )
    }

    /// The request heads received.
    fn heads(mut self) -> Vec<String> {
        self.thread.take().unwrap().join().unwrap()
    }
}

const THROTTLED: (u16, &str) = (
    400,
    r#"{"__type":"com.amazonaws.kms#ThrottlingException","message":"Rate exceeded"}"#,
);
const DESCRIBED: (u16, &str) = (
    200,
    r#"{"KeyMetadata":{"Arn":"arn:aws:kms:eu-west-1:111122223333:key/k","KeyState":"Enabled","KeyUsage":"ENCRYPT_DECRYPT"}}"#,
);

#[test]
fn kms_client_retries_throttling_and_server_errors_then_succeeds() {
    let server = Scripted::start(vec![
        THROTTLED,
        (503, "<html>busy</html>"),
        (429, "{}"),
        DESCRIBED,
    ]);
    let started = Instant::now();
    let described = server.client().describe_key("alias/k").unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(described.key_state.as_deref(), Some("Enabled"));
    let heads = server.heads();
    assert_eq!(heads.len(), 4);
    let port = heads[0]
        .lines()
        .find_map(|l| l.strip_prefix("host: ").or(l.strip_prefix("Host: ")));
    let url_host = "127.0.0.1:";
    assert!(
        port.is_some_and(|h| h.starts_with(url_host)),
        "{}",
        heads[0]
    );
    for head in &heads {
        let lower = head.to_ascii_lowercase();
        assert!(
            lower.contains("x-amz-target: trentservice.describekey"),
            "{head}"
        );
        assert!(
            lower.contains("content-type: application/x-amz-json-1.1"),
            "{head}"
        );
        assert!(
            lower.contains("authorization: aws4-hmac-sha256 credential=akidtestexample/"),
            "{head}"
        );
        assert!(
            lower.contains(
                "signedheaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target,"
            ),
            "{head}"
        );
    }
}

#[test]
fn kms_client_gives_up_on_throttling_after_bounded_tries() {
    let server = Scripted::start(vec![THROTTLED; 4]);
    let started = Instant::now();
    let error = server
        .client()
        .decrypt("alias/k", b"blob", &[])
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(error, KmsError::Throttled { tries: 4, .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("ThrottlingException"), "{error}");
    assert_eq!(server.heads().len(), 4);

    let server = Scripted::start(vec![(500, "{}"), (502, "")]);
    let error = server
        .client()
        .with_retry(Retry {
            tries: 2,
            first_wait: Duration::from_millis(10),
        })
        .encrypt("alias/k", b"kek", &[])
        .unwrap_err();
    assert!(
        matches!(error, KmsError::Throttled { tries: 2, .. }),
        "{error:?}"
    );
}

#[test]
fn kms_client_explains_refusals_and_malformed_answers() {
    let server = Scripted::start(vec![
        (200, "<html>captive portal</html>"),
        (200, r#"{"Plaintext":"not base64!"}"#),
        (403, "forbidden"),
        (
            400,
            r#"{"__type":"AccessDeniedException","message":"User: arn:aws:iam::1:user/ci is not authorized to perform: kms:Decrypt"}"#,
        ),
        (
            400,
            r#"{"__type":"ExpiredTokenException","message":"The security token included in the request is expired"}"#,
        ),
        (
            400,
            r#"{"__type":"DisabledException","message":"arn:aws:kms:eu-west-1:1:key/k is disabled."}"#,
        ),
        (
            400,
            r#"{"__type":"KMSInvalidStateException","message":"arn:aws:kms:eu-west-1:1:key/k is pending deletion."}"#,
        ),
    ]);
    let client = server.client();
    let context = [("git-seal:kid", KID)];
    let errors: Vec<KmsError> = (0..7)
        .map(|_| client.decrypt("alias/k", b"blob", &context).unwrap_err())
        .collect();
    assert!(
        matches!(errors[0], KmsError::Malformed { status: 200, .. }),
        "{:?}",
        errors[0]
    );
    assert!(
        matches!(errors[1], KmsError::Malformed { .. }),
        "{:?}",
        errors[1]
    );
    assert!(
        matches!(errors[2], KmsError::Malformed { status: 403, .. }),
        "{:?}",
        errors[2]
    );
    let denied = errors[3].to_string();
    assert!(
        denied.contains("alias/k")
            && denied.contains("IAM grant")
            && denied.contains("kms:EncryptionContext"),
        "{denied}"
    );
    assert!(
        matches!(errors[4], KmsError::BadCredentials { .. }),
        "{:?}",
        errors[4]
    );
    assert!(
        matches!(errors[5], KmsError::Disabled { .. }),
        "{:?}",
        errors[5]
    );
    assert!(
        errors[5]
            .to_string()
            .contains("enable-key --key-id alias/k"),
        "{}",
        errors[5]
    );
    assert!(
        matches!(errors[6], KmsError::InvalidState { .. }),
        "{:?}",
        errors[6]
    );
    let pending = errors[6].to_string();
    assert!(
        pending.contains("pending deletion") && pending.contains("cancel-key-deletion"),
        "{pending}"
    );
    for error in &errors {
        assert_no_secret(error, &[SECRET, TOKEN]);
    }
    server.heads();
}
