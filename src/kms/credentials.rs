//! AWS credentials and region, found the way AWS tools find them, first
//! source first:
//!
//! 1. environment variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//!    `AWS_SESSION_TOKEN`);
//! 2. web identity: `AWS_WEB_IDENTITY_TOKEN_FILE` and `AWS_ROLE_ARN`,
//!    exchanged at STS for temporary credentials;
//! 3. the profile `AWS_PROFILE` (default `default`) in the shared
//!    `credentials` and `config` files: `role_arn` with
//!    `web_identity_token_file`, static keys, or `credential_process`.
//!
//! This module does *not* support SSO sessions, `source_profile` role
//! chains or instance metadata; a profile that needs them is told to wrap
//! `aws configure export-credentials` in a `credential_process`. It never
//! writes anything, and no error or `Debug` output holds a secret.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use zeroize::Zeroizing;

use crate::kms::transport::{Transport, TransportError};

/// Variables a `credential_process` child must not inherit: git-seal's own
/// secrets, which no AWS helper needs.
const CHILD_REMOVED_VARS: &[&str] = &["GIT_SEAL_KEK", "GIT_SEAL_PKCS11_PIN"];

/// Variables this module reads (and `AwsEnv::from_process` keeps).
const VARS: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_PROFILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_KMS",
    "AWS_ENDPOINT_URL_STS",
    "HOME",
];

/// An access key pair, with a session token when it is temporary. `Debug`
/// prints none of it.
#[derive(Clone)]
pub struct Credentials {
    access_key_id: String,
    secret_access_key: Zeroizing<String>,
    session_token: Option<Zeroizing<String>>,
    expiration: Option<String>,
}

impl Credentials {
    /// Credentials from their parts.
    pub fn new(
        access_key_id: String,
        secret_access_key: Zeroizing<String>,
        session_token: Option<Zeroizing<String>>,
    ) -> Credentials {
        Credentials {
            access_key_id,
            secret_access_key,
            session_token,
            expiration: None,
        }
    }

    /// The access key id (`AKIA…` or `ASIA…`), which the signature names.
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// The session token of temporary credentials.
    pub fn session_token(&self) -> Option<&str> {
        self.session_token.as_deref().map(String::as_str)
    }

    /// When temporary credentials expire (RFC 3339), if their source said.
    pub fn expiration(&self) -> Option<&str> {
        self.expiration.as_deref()
    }

    pub(crate) fn secret_access_key(&self) -> &str {
        &self.secret_access_key
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("temporary", &self.session_token.is_some())
            .field("expiration", &self.expiration)
            .finish_non_exhaustive()
    }
}

/// The environment that AWS tools read: the `AWS_*` variables above and
/// `HOME`. Taken from the process, or given (tests, callers that isolate).
/// `Debug` prints the names that are set, never their values.
#[derive(Clone, Default)]
pub struct AwsEnv {
    vars: BTreeMap<String, Zeroizing<String>>,
}

impl AwsEnv {
    /// The variables AWS tools read, from this process's environment.
    pub fn from_process() -> AwsEnv {
        AwsEnv::from_vars(
            VARS.iter()
                .filter_map(|name| Some((*name, std::env::var(name).ok()?))),
        )
    }

    /// The given variables only; an empty value counts as unset.
    pub fn from_vars<K: Into<String>, V: Into<String>>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> AwsEnv {
        AwsEnv {
            vars: vars
                .into_iter()
                .map(|(k, v)| (k.into(), Zeroizing::new(v.into())))
                .filter(|(_, v)| !v.is_empty())
                .collect(),
        }
    }

    /// A variable's value, `None` when unset or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(|v| v.as_str())
    }

    /// The profile in use: `AWS_PROFILE`, else `default`.
    pub fn profile(&self) -> &str {
        self.get("AWS_PROFILE").unwrap_or("default")
    }

    /// A service's endpoint: `AWS_ENDPOINT_URL_<SERVICE>`, else
    /// `AWS_ENDPOINT_URL`, else `https://<service>.<region>.amazonaws.com`.
    pub fn endpoint(&self, service: &str, region: &str) -> String {
        let specific = format!("AWS_ENDPOINT_URL_{}", service.to_ascii_uppercase());
        match self.get(&specific).or_else(|| self.get("AWS_ENDPOINT_URL")) {
            Some(url) => url.to_owned(),
            None => format!("https://{service}.{region}.amazonaws.com"),
        }
    }

    fn expand(&self, path: &str) -> PathBuf {
        match (path.strip_prefix("~/"), self.get("HOME")) {
            (Some(rest), Some(home)) => Path::new(home).join(rest),
            _ => PathBuf::from(path),
        }
    }

    fn credentials_file(&self) -> PathBuf {
        self.expand(
            self.get("AWS_SHARED_CREDENTIALS_FILE")
                .unwrap_or("~/.aws/credentials"),
        )
    }

    fn config_file(&self) -> PathBuf {
        self.expand(self.get("AWS_CONFIG_FILE").unwrap_or("~/.aws/config"))
    }
}

impl std::fmt::Debug for AwsEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsEnv")
            .field("set", &self.vars.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Why no credentials or region could be had. Messages name sources,
/// files, profiles and exit statuses, never a secret or a helper's output.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// No source held credentials.
    #[error(
        "no AWS credentials found (tried {tried}); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, \
         AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN, or AWS_PROFILE naming a profile with credentials"
    )]
    NotFound {
        /// The sources looked at, for the message.
        tried: String,
    },
    /// One of a pair of variables is set without the other.
    #[error("{set} is set but {missing} is not; set both or neither")]
    Partial {
        /// The variable that is set.
        set: &'static str,
        /// The one that is missing.
        missing: &'static str,
    },
    /// `AWS_PROFILE` names a profile that neither file has.
    #[error(
        "AWS profile {profile:?} is in neither {} nor {}; fix AWS_PROFILE or add the profile",
        credentials_file.display(),
        config_file.display()
    )]
    NoSuchProfile {
        /// The profile name.
        profile: String,
        /// The shared credentials file looked at.
        credentials_file: PathBuf,
        /// The shared config file looked at.
        config_file: PathBuf,
    },
    /// The profile exists but holds no credentials git-seal can use.
    #[error("AWS profile {profile:?} {reason}")]
    Profile {
        /// The profile name.
        profile: String,
        /// What is wrong and what to do.
        reason: String,
    },
    /// A shared file or token file exists but cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// `credential_process` could not be started.
    #[error("cannot run the credential_process of AWS profile {profile:?}: {source}")]
    ProcessStart {
        /// The profile name.
        profile: String,
        /// The spawn error.
        #[source]
        source: std::io::Error,
    },
    /// `credential_process` failed.
    #[error(
        "the credential_process of AWS profile {profile:?} failed ({status}); run it by hand to see why"
    )]
    ProcessFailed {
        /// The profile name.
        profile: String,
        /// Its exit status.
        status: std::process::ExitStatus,
    },
    /// `credential_process` printed something other than its JSON.
    #[error(
        "the credential_process of AWS profile {profile:?} printed {reason}; it must print \
         {{\"Version\": 1, \"AccessKeyId\": …, \"SecretAccessKey\": …}}"
    )]
    ProcessOutput {
        /// The profile name.
        profile: String,
        /// What was wrong with it (never the output itself).
        reason: &'static str,
    },
    /// STS refused the web identity exchange.
    #[error(
        "STS at {endpoint} refused AssumeRoleWithWebIdentity for {role_arn}: {code}: {message}; \
         check the role's trust policy and that the token in {} is current",
        token_file.display()
    )]
    StsRefused {
        /// The STS endpoint.
        endpoint: String,
        /// The role asked for.
        role_arn: String,
        /// The token file.
        token_file: PathBuf,
        /// STS's error code.
        code: String,
        /// STS's message.
        message: String,
    },
    /// STS could not be reached.
    #[error("cannot reach STS for AssumeRoleWithWebIdentity: {source}")]
    StsTransport {
        /// What failed.
        #[source]
        source: TransportError,
    },
    /// STS answered, but not with credentials.
    #[error(
        "STS at {endpoint} answered AssumeRoleWithWebIdentity without credentials (HTTP {status}); \
         check AWS_ENDPOINT_URL_STS"
    )]
    StsAnswer {
        /// The STS endpoint.
        endpoint: String,
        /// The HTTP status.
        status: u16,
    },
}

/// Credentials from the first source that has them: environment, web
/// identity, then the profile. `region` picks the STS endpoint for web
/// identity; `transport` carries that one unsigned call.
pub fn load(
    env: &AwsEnv,
    region: &str,
    transport: &Transport,
) -> Result<Credentials, CredentialsError> {
    if let Some(credentials) = from_environment(env)? {
        return Ok(credentials);
    }
    if let (Some(token_file), Some(role_arn)) = (
        env.get("AWS_WEB_IDENTITY_TOKEN_FILE"),
        env.get("AWS_ROLE_ARN"),
    ) {
        let web = WebIdentity {
            token_file: env.expand(token_file),
            role_arn,
            session_name: env.get("AWS_ROLE_SESSION_NAME"),
        };
        return web.assume(env, region, transport);
    }
    let name = env.profile();
    let profile = Profile::load(env)?;
    if profile.is_none() && env.get("AWS_PROFILE").is_some() {
        return Err(CredentialsError::NoSuchProfile {
            profile: name.to_owned(),
            credentials_file: env.credentials_file(),
            config_file: env.config_file(),
        });
    }
    if let Some(credentials) = profile
        .map(|p| p.credentials(env, region, transport))
        .transpose()?
        .flatten()
    {
        return Ok(credentials);
    }
    Err(CredentialsError::NotFound {
        tried: format!(
            "environment variables, web identity, profile {name:?} in {} and {}",
            env.credentials_file().display(),
            env.config_file().display()
        ),
    })
}

/// The region: the one in `key_id` when it is an ARN, else `AWS_REGION`,
/// `AWS_DEFAULT_REGION`, the profile's `region`. `None` when none says.
pub fn region(env: &AwsEnv, key_id: &str) -> Result<Option<String>, CredentialsError> {
    // A key named by its ARN lives in the ARN's region, whatever the
    // caller's default (a teammate's AWS_REGION must not send the call to
    // a region where the key does not exist).
    if let Some(region) = arn_region(key_id) {
        return Ok(Some(region.to_owned()));
    }
    if let Some(region) = env
        .get("AWS_REGION")
        .or_else(|| env.get("AWS_DEFAULT_REGION"))
    {
        return Ok(Some(region.to_owned()));
    }
    if let Some(region) = Profile::load(env)?.and_then(|p| p.get("region").map(str::to_owned)) {
        return Ok(Some(region));
    }
    Ok(None)
}

/// `arn:aws:kms:REGION:ACCOUNT:key/ID` → `REGION`.
fn arn_region(key_id: &str) -> Option<&str> {
    let mut parts = key_id.splitn(6, ':');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("arn"), Some(_), Some(_), Some(region)) if !region.is_empty() => Some(region),
        _ => None,
    }
}

fn from_environment(env: &AwsEnv) -> Result<Option<Credentials>, CredentialsError> {
    match (
        env.get("AWS_ACCESS_KEY_ID"),
        env.get("AWS_SECRET_ACCESS_KEY"),
    ) {
        (Some(id), Some(secret)) => Ok(Some(Credentials::new(
            id.to_owned(),
            Zeroizing::new(secret.to_owned()),
            env.get("AWS_SESSION_TOKEN")
                .map(|t| Zeroizing::new(t.to_owned())),
        ))),
        (Some(_), None) => Err(CredentialsError::Partial {
            set: "AWS_ACCESS_KEY_ID",
            missing: "AWS_SECRET_ACCESS_KEY",
        }),
        (None, Some(_)) => Err(CredentialsError::Partial {
            set: "AWS_SECRET_ACCESS_KEY",
            missing: "AWS_ACCESS_KEY_ID",
        }),
        (None, None) => Ok(None),
    }
}

/// One profile's properties, the credentials file's over the config file's.
struct Profile {
    name: String,
    properties: BTreeMap<String, Zeroizing<String>>,
}

impl Profile {
    /// The profile `AWS_PROFILE` names, or `None` when neither file has it.
    fn load(env: &AwsEnv) -> Result<Option<Profile>, CredentialsError> {
        let name = env.profile();
        // The config file names profiles `[profile NAME]`, and the default
        // one `[default]` (AWS CLI also takes `[profile default]`).
        let mut sections = vec![format!("profile {name}")];
        if name == "default" {
            sections.insert(0, "default".to_owned());
        }
        let mut found = false;
        let mut properties = BTreeMap::new();
        let config = read_optional(&env.config_file())?;
        for section in &sections {
            if let Some(props) = config
                .as_deref()
                .and_then(|text| ini_section(text, section))
            {
                found = true;
                properties.extend(props);
            }
        }
        let credentials = read_optional(&env.credentials_file())?;
        if let Some(props) = credentials
            .as_deref()
            .and_then(|text| ini_section(text, name))
        {
            found = true;
            properties.extend(props);
        }
        Ok(found.then(|| Profile {
            name: name.to_owned(),
            properties,
        }))
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.properties
            .get(key)
            .map(|v| v.as_str())
            .filter(|v| !v.is_empty())
    }

    fn refuse(&self, reason: String) -> CredentialsError {
        CredentialsError::Profile {
            profile: self.name.clone(),
            reason,
        }
    }

    /// Web identity, then static keys, then `credential_process`; `None`
    /// when the profile has none of them (say, only a region).
    fn credentials(
        &self,
        env: &AwsEnv,
        region: &str,
        transport: &Transport,
    ) -> Result<Option<Credentials>, CredentialsError> {
        if let (Some(role_arn), Some(token_file)) =
            (self.get("role_arn"), self.get("web_identity_token_file"))
        {
            let web = WebIdentity {
                token_file: env.expand(token_file),
                role_arn,
                session_name: self.get("role_session_name"),
            };
            return web.assume(env, region, transport).map(Some);
        }
        match (
            self.get("aws_access_key_id"),
            self.get("aws_secret_access_key"),
        ) {
            (Some(id), Some(secret)) => {
                return Ok(Some(Credentials::new(
                    id.to_owned(),
                    Zeroizing::new(secret.to_owned()),
                    self.get("aws_session_token")
                        .map(|t| Zeroizing::new(t.to_owned())),
                )))
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err(self.refuse(
                    "has only one of aws_access_key_id and aws_secret_access_key; set both"
                        .to_owned(),
                ))
            }
            (None, None) => {}
        }
        if let Some(command) = self.get("credential_process") {
            return self.run_process(command).map(Some);
        }
        let unsupported = [
            "source_profile",
            "credential_source",
            "sso_session",
            "sso_start_url",
        ]
        .into_iter()
        .find(|key| self.get(key).is_some());
        match unsupported {
            Some(key) => Err(self.refuse(format!(
                "uses {key}, which git-seal does not support; add `credential_process = aws configure \
                 export-credentials --profile {} --format process` to a profile and use that one",
                self.name
            ))),
            None => Ok(None),
        }
    }

    /// Run `credential_process` through `sh -c`. Its stdin is closed (in a
    /// filter process stdin is Git's protocol) and its stderr is the
    /// user's, so prompts and errors show; its stdout is parsed and never
    /// repeated.
    fn run_process(&self, command: &str) -> Result<Credentials, CredentialsError> {
        let output =
            process_command(command)
                .output()
                .map_err(|source| CredentialsError::ProcessStart {
                    profile: self.name.clone(),
                    source,
                })?;
        let stdout = Zeroizing::new(output.stdout);
        if !output.status.success() {
            return Err(CredentialsError::ProcessFailed {
                profile: self.name.clone(),
                status: output.status,
            });
        }
        let malformed = |reason| CredentialsError::ProcessOutput {
            profile: self.name.clone(),
            reason,
        };
        let answer: ProcessAnswer = serde_json::from_slice(&stdout)
            .map_err(|_| malformed("something that is not its JSON"))?;
        let ProcessAnswer {
            version,
            access_key_id,
            secret_access_key,
            session_token,
            expiration,
        } = answer;
        let secret_access_key = secret_access_key.map(Zeroizing::new);
        let session_token = session_token.map(Zeroizing::new);
        if version != Some(1) {
            return Err(malformed("JSON without \"Version\": 1"));
        }
        let (Some(access_key_id), Some(secret_access_key)) = (access_key_id, secret_access_key)
        else {
            return Err(malformed("JSON without AccessKeyId or SecretAccessKey"));
        };
        let mut credentials = Credentials::new(access_key_id, secret_access_key, session_token);
        credentials.expiration = expiration;
        Ok(credentials)
    }
}

/// `sh -c COMMAND` with stdin closed, stdout captured, stderr the user's,
/// and git-seal's own secrets removed from its environment.
fn process_command(command: &str) -> Command {
    let mut child = Command::new("sh");
    child
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for var in CHILD_REMOVED_VARS {
        child.env_remove(var);
    }
    child
}

/// What a `credential_process` prints.
#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ProcessAnswer {
    version: Option<u32>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    session_token: Option<String>,
    expiration: Option<String>,
}

/// A role to assume with an OIDC token (CI's usual way in).
struct WebIdentity<'a> {
    token_file: PathBuf,
    role_arn: &'a str,
    session_name: Option<&'a str>,
}

impl WebIdentity<'_> {
    /// STS AssumeRoleWithWebIdentity: an unsigned query-protocol POST whose
    /// XML answer holds temporary credentials.
    fn assume(
        &self,
        env: &AwsEnv,
        region: &str,
        transport: &Transport,
    ) -> Result<Credentials, CredentialsError> {
        let token = std::fs::read_to_string(&self.token_file)
            .map(Zeroizing::new)
            .map_err(|source| CredentialsError::Read {
                path: self.token_file.clone(),
                source,
            })?;
        let default_session_name;
        let session_name = match self.session_name {
            Some(name) => name,
            None => {
                let secs = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                default_session_name = format!("git-seal-{secs}");
                &default_session_name
            }
        };
        let encode = |text: &str| crate::kms::sigv4::uri_encode(text.as_bytes(), false);
        let body = Zeroizing::new(format!(
            "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn={}&RoleSessionName={}&WebIdentityToken={}",
            encode(self.role_arn),
            encode(session_name),
            Zeroizing::new(encode(token.trim()))
                .as_str()
        ));
        let endpoint = env.endpoint("sts", region);
        let answer = transport
            .post(
                &endpoint,
                &[(
                    "Content-Type",
                    "application/x-www-form-urlencoded; charset=utf-8",
                )],
                body.as_bytes(),
            )
            .map_err(|source| CredentialsError::StsTransport { source })?;
        let text = Zeroizing::new(String::from_utf8_lossy(&answer.body).into_owned());
        if !(200..300).contains(&answer.status) {
            return match (xml_text(&text, "Code"), xml_text(&text, "Message")) {
                (Some(code), message) => Err(CredentialsError::StsRefused {
                    endpoint,
                    role_arn: self.role_arn.to_owned(),
                    token_file: self.token_file.clone(),
                    code: code.chars().take(100).collect(),
                    message: message.unwrap_or_default().chars().take(300).collect(),
                }),
                (None, _) => Err(CredentialsError::StsAnswer {
                    endpoint,
                    status: answer.status,
                }),
            };
        }
        let credentials = xml_text(&text, "Credentials");
        let field = |name| credentials.as_deref().and_then(|c| xml_text(c, name));
        match (
            field("AccessKeyId"),
            field("SecretAccessKey").map(Zeroizing::new),
            field("SessionToken").map(Zeroizing::new),
        ) {
            (Some(id), Some(secret), Some(token)) => {
                let mut credentials = Credentials::new(id, secret, Some(token));
                credentials.expiration = field("Expiration");
                Ok(credentials)
            }
            _ => Err(CredentialsError::StsAnswer {
                endpoint,
                status: answer.status,
            }),
        }
    }
}

/// The unescaped text inside the first `<tag>…</tag>` of `xml` (no
/// attributes expected: STS writes none on these elements).
fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&close)?;
    Some(xml_unescape(&xml[start..end]))
}

fn xml_unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest.find(';') else { break };
        let entity = &rest[1..end];
        let c = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .map(|h| u32::from_str_radix(h, 16))
                .or_else(|| entity.strip_prefix('#').map(str::parse))
                .and_then(Result::ok)
                .and_then(char::from_u32),
        };
        match c {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// A file's text, `None` when it does not exist.
fn read_optional(path: &Path) -> Result<Option<Zeroizing<String>>, CredentialsError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(Zeroizing::new(text))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CredentialsError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// The properties of `[section]` in an AWS INI file, keys lower-cased, or
/// `None` when there is no such section. Comment lines start with `#` or
/// `;`, as do inline comments after whitespace; indented lines continue a
/// nested property (`s3 =` and its children) and are skipped. A section
/// that appears twice is merged, the later value winning.
fn ini_section(text: &str, section: &str) -> Option<BTreeMap<String, Zeroizing<String>>> {
    let mut found = None::<BTreeMap<String, Zeroizing<String>>>;
    let mut inside = false;
    for line in text.lines() {
        let indented = line.starts_with([' ', '\t']);
        let line = strip_comment(line).trim();
        if line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.split_whitespace().collect::<Vec<_>>().join(" ") == section;
            if inside {
                found.get_or_insert_with(BTreeMap::new);
            }
        } else if inside && !indented {
            if let (Some(props), Some((key, value))) = (found.as_mut(), line.split_once('=')) {
                props.insert(
                    key.trim().to_ascii_lowercase(),
                    Zeroizing::new(value.trim().to_owned()),
                );
            }
        }
    }
    found
}

fn strip_comment(line: &str) -> &str {
    if line.trim_start().starts_with(['#', ';']) {
        return "";
    }
    let bytes = line.as_bytes();
    for i in 1..bytes.len() {
        if matches!(bytes[i], b'#' | b';') && bytes[i - 1].is_ascii_whitespace() {
            return &line[..i];
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ini_sections_merge_skip_comments_and_nested_values() {
        let text = "# top\n[default]\nregion = eu-west-1 # inline\n\
                    [profile dev]\naws_access_key_id=AKID\n  ; comment\ns3 =\n  max_concurrent_requests = 4\n\
                    Aws_Secret_Access_Key = s#cret;x\n[ profile  dev ]\nregion=us-east-2\n";
        let dev = ini_section(text, "profile dev").unwrap();
        assert_eq!(dev["aws_access_key_id"].as_str(), "AKID");
        assert_eq!(dev["aws_secret_access_key"].as_str(), "s#cret;x");
        assert_eq!(dev["region"].as_str(), "us-east-2");
        assert_eq!(dev["s3"].as_str(), "");
        assert!(!dev.contains_key("max_concurrent_requests"));
        assert_eq!(
            ini_section(text, "default").unwrap()["region"].as_str(),
            "eu-west-1"
        );
        assert!(ini_section(text, "dev").is_none());
    }

    #[test]
    fn regions_come_from_the_arn_then_variables_then_the_profile() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        std::fs::write(&config, "[profile p]\nregion = ap-south-1\n").unwrap();
        let arn = "arn:aws:kms:eu-central-1:111122223333:key/1234abcd";
        let env = |vars: &[(&str, &str)]| {
            let mut all = vec![
                ("AWS_CONFIG_FILE", config.to_str().unwrap()),
                ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials"),
            ];
            all.extend_from_slice(vars);
            AwsEnv::from_vars(all)
        };
        let region = |vars: &[(&str, &str)], key| region(&env(vars), key).unwrap();
        let key = "1234abcd";
        assert_eq!(
            region(&[("AWS_REGION", "r1"), ("AWS_DEFAULT_REGION", "r2")], key).as_deref(),
            Some("r1")
        );
        assert_eq!(
            region(&[("AWS_DEFAULT_REGION", "r2")], key).as_deref(),
            Some("r2")
        );
        assert_eq!(
            region(&[("AWS_PROFILE", "p")], key).as_deref(),
            Some("ap-south-1")
        );
        // An ARN's region wins over every default.
        assert_eq!(
            region(&[("AWS_REGION", "r1")], arn).as_deref(),
            Some("eu-central-1")
        );
        assert_eq!(region(&[], arn).as_deref(), Some("eu-central-1"));
        assert_eq!(region(&[], "1234abcd"), None);
        assert_eq!(region(&[], "alias/x"), None);
    }

    #[test]
    fn sts_xml_is_read_and_unescaped() {
        let xml = "<R><Credentials><AccessKeyId>ASIA</AccessKeyId>\
                   <SecretAccessKey>a&amp;b&#x2F;c&#47;&lt;</SecretAccessKey></Credentials></R>";
        let creds = xml_text(xml, "Credentials").unwrap();
        assert_eq!(xml_text(&creds, "AccessKeyId").unwrap(), "ASIA");
        assert_eq!(xml_text(&creds, "SecretAccessKey").unwrap(), "a&b/c/<");
        assert_eq!(xml_unescape("&bogus; & &#xZZ;"), "&bogus; & &#xZZ;");
        assert!(xml_text(xml, "SessionToken").is_none());
    }

    #[test]
    fn credential_process_children_lose_git_seal_secrets() {
        let command = process_command("true");
        let removed: Vec<_> = command
            .get_envs()
            .filter(|(_, value)| value.is_none())
            .map(|(name, _)| name.to_str().unwrap())
            .collect();
        assert_eq!(removed, ["GIT_SEAL_KEK", "GIT_SEAL_PKCS11_PIN"]);
    }

    #[test]
    fn debug_output_names_variables_but_shows_no_secret() {
        let env = AwsEnv::from_vars([
            ("AWS_ACCESS_KEY_ID", "AKIDSHOWNOWHERE"),
            ("AWS_SECRET_ACCESS_KEY", "SECRETSHOWNOWHERE"),
            ("AWS_SESSION_TOKEN", "TOKENSHOWNOWHERE"),
        ]);
        let credentials = from_environment(&env).unwrap().unwrap();
        for text in [format!("{env:?}"), format!("{credentials:?}")] {
            assert!(!text.contains("SHOWNOWHERE"), "{text}");
        }
        assert_eq!(credentials.session_token(), Some("TOKENSHOWNOWHERE"));
        let partial = from_environment(&AwsEnv::from_vars([("AWS_SECRET_ACCESS_KEY", "S")]));
        assert!(matches!(
            partial,
            Err(CredentialsError::Partial {
                missing: "AWS_ACCESS_KEY_ID",
                ..
            })
        ));
    }
}
