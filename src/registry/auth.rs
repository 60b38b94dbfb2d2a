//! Credentials and challenges: where a registry's username and password come from (env var, file,
//! docker `config.json`, credential helper), and how its `WWW-Authenticate` challenge reads.
//!
//! Must not: log or format a password or token (they live in [`Secret`] only).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use base64::Engine;
use serde::Deserialize;

use super::error::RegistryError;
use super::settings::{PasswordSource, RegistryAuthSettings, RegistrySettings};
use crate::environment::Environment;
use crate::reference::DOCKER_HUB;
use crate::secret::Secret;

/// The key Docker uses for Docker Hub in `config.json` and towards credential helpers.
const DOCKER_HUB_CONFIG_KEY: &str = "https://index.docker.io/v1/";
/// The username a credential helper returns for an identity (refresh) token instead of a password.
const IDENTITY_TOKEN_USERNAME: &str = "<token>";

/// A username and password for one registry. No `Debug` derive: the password must never be formatted.
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub password: Secret,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &self.password)
            .finish()
    }
}

/// Reads the credentials the settings name; `None` means anonymous.
pub fn resolve_credentials(
    settings: &RegistrySettings,
    environment: &Environment,
) -> Result<Option<Credentials>, RegistryError> {
    let failure = |reason: String| RegistryError::Credentials {
        host: settings.host.clone(),
        reason,
    };
    match &settings.auth {
        RegistryAuthSettings::Anonymous => Ok(None),
        RegistryAuthSettings::Basic { username, password } => {
            let password = match password {
                PasswordSource::Env(name) => environment.secret(name).ok_or_else(|| {
                    failure(format!("environment variable {name} is unset or empty"))
                })?,
                PasswordSource::File(path) => {
                    let text = std::fs::read_to_string(path).map_err(|error| {
                        failure(format!("cannot read {}: {error}", path.display()))
                    })?;
                    // Files written by `echo` end with a newline that is not part of the password.
                    Secret::new(text.trim_end_matches(['\n', '\r']))
                }
            };
            Ok(Some(Credentials {
                username: username.clone(),
                password,
            }))
        }
        RegistryAuthSettings::DockerConfig { path } => {
            docker_config_credentials(path, &settings.host, environment).map_err(failure)
        }
        RegistryAuthSettings::CredentialHelper { name } => {
            credential_helper(name, &settings.host, environment).map_err(failure)
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct DockerConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, DockerAuthEntry>,
    creds_store: Option<String>,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
struct DockerAuthEntry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    identitytoken: Option<String>,
}

/// The keys under which `config.json` may know `host` (Docker writes URLs, humans write hosts).
fn config_keys(host: &str) -> Vec<String> {
    let mut keys = vec![
        host.to_string(),
        format!("https://{host}"),
        format!("http://{host}"),
        format!("https://{host}/v2/"),
    ];
    if host == DOCKER_HUB {
        keys.splice(
            0..0,
            [
                DOCKER_HUB_CONFIG_KEY.to_string(),
                "index.docker.io".to_string(),
                "registry-1.docker.io".to_string(),
            ],
        );
    }
    keys
}

fn helper_server_url(host: &str) -> &str {
    if host == DOCKER_HUB {
        DOCKER_HUB_CONFIG_KEY
    } else {
        host
    }
}

/// Docker's order: a `credHelpers` entry for the host, else `credsStore`, else the `auths` entry.
fn docker_config_credentials(
    path: &Path,
    host: &str,
    environment: &Environment,
) -> Result<Option<Credentials>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    let config: DockerConfigFile = serde_json::from_str(&text)
        .map_err(|error| format!("{} is not a docker config.json: {error}", path.display()))?;
    let keys = config_keys(host);
    if let Some(helper) = keys.iter().find_map(|key| config.cred_helpers.get(key)) {
        return credential_helper(helper, host, environment);
    }
    if let Some(store) = &config.creds_store {
        return credential_helper(store, host, environment);
    }
    let Some(entry) = keys.iter().find_map(|key| config.auths.get(key)) else {
        return Ok(None);
    };
    if let Some(token) = &entry.identitytoken {
        return Ok(Some(Credentials {
            username: IDENTITY_TOKEN_USERNAME.to_string(),
            password: Secret::new(token.clone()),
        }));
    }
    if let (Some(username), Some(password)) = (&entry.username, &entry.password) {
        return Ok(Some(Credentials {
            username: username.clone(),
            password: Secret::new(password.clone()),
        }));
    }
    let Some(auth) = &entry.auth else {
        return Ok(None);
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| {
            format!(
                "the `auth` entry for {host} in {} is not base64 of user:password",
                path.display()
            )
        })?;
    let (username, password) = decoded.split_once(':').ok_or_else(|| {
        format!(
            "the `auth` entry for {host} in {} has no `:`",
            path.display()
        )
    })?;
    Ok(Some(Credentials {
        username: username.to_string(),
        password: Secret::new(password),
    }))
}

#[derive(Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username")]
    username: String,
    #[serde(rename = "Secret")]
    secret: String,
}

/// Runs `docker-credential-NAME get` (the docker credential-helper protocol: server URL on stdin, JSON
/// on stdout). "Not found" answers mean anonymous.
fn credential_helper(
    name: &str,
    host: &str,
    environment: &Environment,
) -> Result<Option<Credentials>, String> {
    let program = format!("docker-credential-{name}");
    let mut command = Command::new(&program);
    command
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_clear();
    for variable in [
        "PATH",
        "HOME",
        "XDG_RUNTIME_DIR",
        "DBUS_SESSION_BUS_ADDRESS",
    ] {
        if let Some(value) = environment.get(variable) {
            command.env(variable, value);
        }
    }
    let mut child = command
        .spawn()
        .map_err(|error| format!("cannot run {program}: {error}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(helper_server_url(host).as_bytes())
            .map_err(|error| format!("cannot talk to {program}: {error}"))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|error| format!("cannot run {program}: {error}"))?;
    if !output.status.success() {
        let message = String::from_utf8_lossy(&output.stderr);
        // Helpers report a missing entry on stdout (the reference helpers) or stderr.
        if message.contains("credentials not found")
            || String::from_utf8_lossy(&output.stdout).contains("credentials not found")
        {
            return Ok(None);
        }
        // stdout is never shown: a broken helper might print a secret there.
        return Err(format!(
            "{program} get failed ({}): {}",
            output.status,
            message.trim().escape_debug()
        ));
    }
    let answer: HelperAnswer = serde_json::from_slice(&output.stdout)
        .map_err(|_| format!("{program} get printed something other than its JSON answer"))?;
    Ok(Some(Credentials {
        username: answer.username,
        password: Secret::new(answer.secret),
    }))
}

/// An authentication challenge from a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
        error: Option<String>,
    },
}

/// Parses `Bearer realm="…",service="…",scope="…"` or `Basic realm="…"`; quoted values may hold commas.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let parameters = parse_parameters(rest);
    let get = |name: &str| {
        parameters
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.clone())
    };
    Some(Challenge::Bearer {
        realm: get("realm")?,
        service: get("service"),
        scope: get("scope"),
        error: get("error"),
    })
}

fn parse_parameters(text: &str) -> Vec<(String, String)> {
    let mut parameters = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| *c == ',' || c.is_whitespace()).is_some() {}
        let key: String =
            std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ',')).collect();
        if key.is_empty() {
            break;
        }
        if chars.next_if_eq(&'=').is_none() {
            continue;
        }
        let mut value = String::new();
        if chars.next_if_eq(&'"').is_some() {
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = std::iter::from_fn(|| chars.next_if(|c| *c != ',')).collect();
            value = value.trim().to_string();
        }
        parameters.push((key.trim().to_string(), value));
    }
    parameters
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenge_with_commas_in_scope() {
        let header = r#"Bearer realm="http://127.0.0.1:5102/token",service="rw-registry-5002",scope="repository:foo/bar:pull,push",error="insufficient_scope""#;
        assert_eq!(
            parse_challenge(header),
            Some(Challenge::Bearer {
                realm: "http://127.0.0.1:5102/token".into(),
                service: Some("rw-registry-5002".into()),
                scope: Some("repository:foo/bar:pull,push".into()),
                error: Some("insufficient_scope".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge("Bearer service=x"), None);
    }

    fn write_config(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        file
    }

    #[test]
    fn docker_config_auths_entry_is_decoded() {
        let encoded = base64::engine::general_purpose::STANDARD.encode("bot:s3cret");
        let file = write_config(&format!(
            r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{encoded}"}},"ghcr.io":{{"username":"u","password":"p"}}}}}}"#
        ));
        let environment = Environment::default();
        let hub = docker_config_credentials(file.path(), "docker.io", &environment)
            .unwrap()
            .unwrap();
        assert_eq!(
            (hub.username.as_str(), hub.password.expose()),
            ("bot", "s3cret")
        );
        let ghcr = docker_config_credentials(file.path(), "ghcr.io", &environment)
            .unwrap()
            .unwrap();
        assert_eq!((ghcr.username.as_str(), ghcr.password.expose()), ("u", "p"));
        assert!(
            docker_config_credentials(file.path(), "quay.io", &environment)
                .unwrap()
                .is_none()
        );
        assert!(!format!("{hub:?}").contains("s3cret"));
    }

    #[test]
    fn docker_config_cred_helper_runs_the_helper_program() {
        let bin = tempfile::tempdir().unwrap();
        let helper = bin.path().join("docker-credential-fixture");
        std::fs::write(
            &helper,
            "#!/bin/sh\nread server\n[ \"$1\" = get ] || exit 3\nprintf '{\"ServerURL\":\"%s\",\"Username\":\"helper-user\",\"Secret\":\"helper-secret-for-%s\"}' \"$server\" \"$server\"\n",
        )
        .unwrap();
        let mut permissions = std::fs::metadata(&helper).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
        std::fs::set_permissions(&helper, permissions).unwrap();
        let file = write_config(r#"{"credHelpers":{"registry.example:5000":"fixture"}}"#);
        let environment =
            Environment::from_pairs([("PATH", format!("{}:/usr/bin:/bin", bin.path().display()))]);
        let credentials =
            docker_config_credentials(file.path(), "registry.example:5000", &environment)
                .unwrap()
                .unwrap();
        assert_eq!(credentials.username, "helper-user");
        assert_eq!(
            credentials.password.expose(),
            "helper-secret-for-registry.example:5000"
        );
        let missing = docker_config_credentials(
            file.path(),
            "registry.example:5000",
            &Environment::from_pairs([("PATH", "/nonexistent")]),
        );
        assert!(missing.unwrap_err().contains("docker-credential-fixture"));
    }
}
