//! OpenSSH `known_hosts` lookup, done here rather than by libgit2 so the file is the configured one (not
//! `~/.ssh/known_hosts`) and the decision is ours: unknown → rejected unless allowed, changed → rejected.
//!
//! Supported: plain and `[host]:port` patterns, comma lists, `*` / `?` wildcards, `!` negation,
//! `@revoked`. Not supported (the line is skipped): hashed hosts (`|1|…`) and `@cert-authority`.

use base64::Engine as _;

/// What the file says about one host and the key it presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKeyStatus {
    /// A line for this host lists exactly this key.
    Trusted,
    /// The key is marked `@revoked` for this host.
    Revoked,
    /// The host is listed with another key of the same type: the server's key changed (or someone is
    /// in between).
    Changed,
    /// The host is listed, but only with keys of other types than the one the server presented
    /// (libgit2 does not let us ask the server for a listed type): add that key type to the file.
    OtherKeyTypes,
    /// The host is not listed.
    Unknown,
}

#[derive(Debug, Clone, Default)]
pub struct KnownHosts {
    entries: Vec<Entry>,
}

#[derive(Debug, Clone)]
struct Entry {
    patterns: Vec<String>,
    revoked: bool,
    key: Vec<u8>,
}

impl KnownHosts {
    pub fn parse(text: &str) -> Self {
        let entries = text
            .lines()
            .filter_map(|line| {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    return None;
                }
                let mut fields = line.split_whitespace();
                let mut first = fields.next()?;
                let mut revoked = false;
                if let Some(marker) = first.strip_prefix('@') {
                    match marker {
                        "revoked" => revoked = true,
                        // A CA line needs certificate checks libgit2 does not expose.
                        _ => return None,
                    }
                    first = fields.next()?;
                }
                if first.starts_with('|') {
                    return None;
                }
                let _key_type = fields.next()?;
                let key = base64::engine::general_purpose::STANDARD
                    .decode(fields.next()?)
                    .ok()?;
                Some(Entry {
                    patterns: first.split(',').map(str::to_string).collect(),
                    revoked,
                    key,
                })
            })
            .collect();
        KnownHosts { entries }
    }

    /// Looks up `key` (the SSH wire-format public key blob, as in the file's base64 field) for `host`.
    pub fn check(&self, host: &str, port: u16, key: &[u8]) -> HostKeyStatus {
        let name = host_name(host, port);
        let matching = self
            .entries
            .iter()
            .filter(|entry| host_matches(&entry.patterns, &name));
        let presented_type = key_type(key);
        let mut listed = false;
        let mut same_type_listed = false;
        let mut trusted = false;
        for entry in matching {
            if entry.key == key {
                if entry.revoked {
                    return HostKeyStatus::Revoked;
                }
                trusted = true;
            }
            if !entry.revoked {
                listed = true;
                same_type_listed |= key_type(&entry.key) == presented_type;
            }
        }
        match (trusted, listed, same_type_listed) {
            (true, _, _) => HostKeyStatus::Trusted,
            (false, true, true) => HostKeyStatus::Changed,
            (false, true, false) => HostKeyStatus::OtherKeyTypes,
            (false, false, _) => HostKeyStatus::Unknown,
        }
    }
}

/// The algorithm name that opens an SSH public key blob (`string` = u32 length + bytes).
fn key_type(blob: &[u8]) -> Option<&[u8]> {
    let length = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?) as usize;
    blob.get(4..4 + length)
}

/// The name OpenSSH writes for a host: `host` on port 22, `[host]:port` elsewhere.
pub fn host_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

fn host_matches(patterns: &[String], name: &str) -> bool {
    let mut matched = false;
    for pattern in patterns {
        if let Some(negated) = pattern.strip_prefix('!') {
            if wildcard_match(negated.as_bytes(), name.as_bytes()) {
                return false;
            }
        } else if wildcard_match(pattern.as_bytes(), name.as_bytes()) {
            matched = true;
        }
    }
    matched
}

fn wildcard_match(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|skip| wildcard_match(rest, &text[skip..])),
        Some((b'?', rest)) => !text.is_empty() && wildcard_match(rest, &text[1..]),
        Some((c, rest)) => text
            .first()
            .is_some_and(|t| t.eq_ignore_ascii_case(c) && wildcard_match(rest, &text[1..])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
    const KEY_B: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIHh0cmFrZXlieXRlc2Zvcm1hdGNoaW5ndGVzdHM=";
    // An `ecdsa-sha2-nistp256` blob (type name and a dummy body).
    const KEY_ECDSA: &str = "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTY=";

    fn blob(key: &str) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(key)
            .unwrap()
    }

    #[test]
    fn bracketed_port_entries_match_only_their_port() {
        let hosts = KnownHosts::parse(&format!("[127.0.0.1]:2222 ssh-ed25519 {KEY_A} c\n"));
        let cases = [
            (2222, KEY_A, HostKeyStatus::Trusted),
            (22, KEY_A, HostKeyStatus::Unknown),
            (2222, KEY_B, HostKeyStatus::Changed),
            (2222, KEY_ECDSA, HostKeyStatus::OtherKeyTypes),
        ];
        for (port, key, expected) in cases {
            assert_eq!(
                hosts.check("127.0.0.1", port, &blob(key)),
                expected,
                "{port}"
            );
        }
    }

    #[test]
    fn lists_wildcards_negation_and_revocation() {
        let text = format!(
            "# comment\n\
             git.example.com,*.internal,!bad.internal ssh-ed25519 {KEY_A}\n\
             @revoked git.example.com ssh-ed25519 {KEY_B}\n\
             |1|c2FsdA==|aGFzaA== ssh-ed25519 {KEY_B}\n\
             @cert-authority *.example.com ssh-ed25519 {KEY_B}\n"
        );
        let hosts = KnownHosts::parse(&text);
        let cases = [
            ("GIT.example.com", KEY_A, HostKeyStatus::Trusted),
            ("a.internal", KEY_A, HostKeyStatus::Trusted),
            ("bad.internal", KEY_A, HostKeyStatus::Unknown),
            ("git.example.com", KEY_B, HostKeyStatus::Revoked),
            ("other.example.com", KEY_B, HostKeyStatus::Unknown),
        ];
        for (host, key, expected) in cases {
            assert_eq!(hosts.check(host, 22, &blob(key)), expected, "{host}");
        }
    }
}
