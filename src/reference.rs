//! Image references: parsing and normalization after the distribution reference grammar
//! (`[host[:port]/]path[:tag][@digest]`, Docker Hub's `docker.io` and `library/` rules).
//!
//! Owns: turning the text of an image reference into its parts, with the byte ranges of each part in the
//! original text, so the YAML rewriter can replace exactly the tag or digest bytes.
//! Must not: do I/O, guess at invalid references (they are errors), or know about registries' API hosts
//! beyond Docker Hub's well-known alias.

use std::fmt;
use std::ops::Range;

/// The registry that a reference without a domain names.
pub const DOCKER_HUB: &str = "docker.io";
/// The host that serves Docker Hub's registry API (`docker.io` itself only redirects).
pub const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";
/// Docker Hub's namespace for official images (`nginx` is `docker.io/library/nginx`).
const OFFICIAL_NAMESPACE: &str = "library";
/// The grammar's limit on the whole name (domain and path).
const NAME_TOTAL_LENGTH_MAX: usize = 255;
/// The grammar's limit on a tag.
const TAG_LENGTH_MAX: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("empty image reference")]
    Empty,
    #[error("invalid image reference `{reference}`: {reason}")]
    Invalid {
        reference: String,
        reason: &'static str,
    },
}

/// A parsed, normalized image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct ImageReference {
    /// Registry host with optional port, normalized (`docker.io` when the reference names none).
    pub registry: String,
    /// Repository path inside the registry (`library/nginx` for official Docker Hub images).
    pub repository: String,
    pub tag: Option<String>,
    /// `algorithm:hex`, e.g. `sha256:…`.
    pub digest: Option<String>,
}

/// Where each part of a reference sits in the text it was parsed from (byte ranges).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferenceSpans {
    /// The name as written (domain and path), e.g. `nginx` or `ghcr.io/acme/api`.
    pub name: Range<usize>,
    /// The tag without its leading `:`.
    pub tag: Option<Range<usize>>,
    /// The digest without its leading `@`.
    pub digest: Option<Range<usize>>,
}

impl ImageReference {
    /// Parses and normalizes `text` (no surrounding whitespace allowed).
    pub fn parse(text: &str) -> Result<Self, ReferenceError> {
        Self::parse_with_spans(text).map(|(reference, _)| reference)
    }

    /// Parses `text` and also returns where its name, tag and digest are.
    pub fn parse_with_spans(text: &str) -> Result<(Self, ReferenceSpans), ReferenceError> {
        if text.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let invalid = |reason| ReferenceError::Invalid {
            reference: text.to_string(),
            reason,
        };

        let (remainder, digest_range) = match text.find('@') {
            Some(at) => {
                let digest = &text[at + 1..];
                if !is_valid_digest(digest) {
                    return Err(invalid("the digest is not `algorithm:hex`"));
                }
                (&text[..at], Some(at + 1..text.len()))
            }
            None => (text, None),
        };

        // A `:` after the last `/` separates the tag; one before it belongs to a registry port.
        let last_slash = remainder.rfind('/');
        let (name, tag_range) = match remainder.rfind(':') {
            Some(colon) if last_slash.is_none_or(|slash| colon > slash) => {
                let tag = &remainder[colon + 1..];
                if !is_valid_tag(tag) {
                    return Err(invalid(
                        "the tag must match [A-Za-z0-9_][A-Za-z0-9._-]{0,127}",
                    ));
                }
                (&remainder[..colon], Some(colon + 1..remainder.len()))
            }
            _ => (remainder, None),
        };
        if name.is_empty() {
            return Err(invalid("the name is empty"));
        }
        if name.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(invalid("the name is longer than 255 characters"));
        }

        let (domain, path) = split_domain(name);
        if let Some(domain) = domain
            && !is_valid_domain(domain)
        {
            return Err(invalid("the registry host is not a valid host[:port]"));
        }
        if !path.split('/').all(is_valid_path_component) {
            return Err(invalid(
                "a path component must be lowercase letters and digits, separated by `.`, `_`, `__` or `-`",
            ));
        }

        let registry = match domain {
            None | Some("index.docker.io") => DOCKER_HUB.to_string(),
            Some(domain) => domain.to_string(),
        };
        let repository = if registry == DOCKER_HUB && !path.contains('/') {
            format!("{OFFICIAL_NAMESPACE}/{path}")
        } else {
            path.to_string()
        };

        // The limit holds for the normalized name too, as in distribution's `ParseNormalizedNamed`
        // (`nginx` is `docker.io/library/nginx`): otherwise a name accepted here would not parse
        // again once normalized, and a registry refuses it.
        if registry.len() + 1 + repository.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(invalid(
                "the name is longer than 255 characters once normalized",
            ));
        }
        let reference = ImageReference {
            registry,
            repository,
            tag: tag_range.clone().map(|range| text[range].to_string()),
            digest: digest_range.clone().map(|range| text[range].to_string()),
        };
        let spans = ReferenceSpans {
            name: 0..name.len(),
            tag: tag_range,
            digest: digest_range,
        };
        Ok((reference, spans))
    }

    /// The normalized name: `registry/repository`, e.g. `docker.io/library/nginx`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The host that serves this reference's registry API.
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API_HOST
        } else {
            &self.registry
        }
    }
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Normalizes an image name without tag or digest (`nginx` → `docker.io/library/nginx`).
pub fn normalize_name(name: &str) -> Result<String, ReferenceError> {
    let reference = ImageReference::parse(name)?;
    if reference.tag.is_some() || reference.digest.is_some() {
        return Err(ReferenceError::Invalid {
            reference: name.to_string(),
            reason: "expected an image name without tag or digest",
        });
    }
    Ok(reference.name())
}

/// Whether `tag` is a valid OCI tag: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub fn is_valid_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= TAG_LENGTH_MAX
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes[1..]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Whether `digest` is `algorithm:hex` as the OCI image spec defines it (hex of at least 32 characters).
pub fn is_valid_digest(digest: &str) -> bool {
    let Some((algorithm, encoded)) = digest.split_once(':') else {
        return false;
    };
    let algorithm_ok = !algorithm.is_empty()
        && algorithm.split(['+', '.', '_', '-']).all(|component| {
            let mut chars = component.chars();
            chars.next().is_some_and(|c| c.is_ascii_lowercase())
                && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        });
    let encoded_ok = encoded.len() >= 32
        && encoded
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    algorithm_ok && encoded_ok
}

/// Splits a name into its domain (when the first component looks like one) and its path, following
/// distribution's rule: the first component is a domain if it contains `.` or `:`, is `localhost`, or has
/// an uppercase letter.
pub fn split_domain(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

fn is_valid_domain(domain: &str) -> bool {
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        // IPv6 literal: `[::1]:5000`.
        match rest.split_once(']') {
            Some((address, after)) => {
                if address.is_empty() || !address.chars().all(|c| c.is_ascii_hexdigit() || c == ':')
                {
                    return false;
                }
                match after.strip_prefix(':') {
                    Some(port) => (None, Some(port)),
                    None if after.is_empty() => (None, None),
                    None => return false,
                }
            }
            None => return false,
        }
    } else {
        match domain.rsplit_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(domain), None),
        }
    };
    let port_ok = port.is_none_or(|port| {
        !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit())
    });
    let host_ok = host.is_none_or(|host| {
        !host.is_empty()
            && host.split('.').all(|label| {
                let bytes = label.as_bytes();
                !bytes.is_empty()
                    && bytes[0].is_ascii_alphanumeric()
                    && bytes[bytes.len() - 1].is_ascii_alphanumeric()
                    && bytes
                        .iter()
                        .all(|&b| b.is_ascii_alphanumeric() || b == b'-')
            })
    });
    port_ok && host_ok
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn is_valid_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    if bytes.is_empty()
        || !is_lower_alphanumeric(bytes[0])
        || !is_lower_alphanumeric(bytes[bytes.len() - 1])
    {
        return false;
    }
    let mut index = 0;
    while index < bytes.len() {
        if is_lower_alphanumeric(bytes[index]) {
            index += 1;
            continue;
        }
        let start = index;
        while index < bytes.len() && !is_lower_alphanumeric(bytes[index]) {
            index += 1;
        }
        let separator = &component[start..index];
        let valid = matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
        if !valid {
            return false;
        }
    }
    true
}

fn is_lower_alphanumeric(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by `fuzz/` (target `reference`): a 250-character Docker Hub name parsed, but its normalized
    /// form (`docker.io/library/…`, 268 characters) did not.
    #[test]
    fn the_name_length_limit_holds_for_the_normalized_name() {
        let short = "a".repeat(255 - "docker.io/library/".len());
        let reference = ImageReference::parse(&format!("{short}:1")).unwrap();
        assert_eq!(ImageReference::parse(&reference.to_string()), Ok(reference));
        let long = format!("{short}a");
        assert!(ImageReference::parse(&format!("{long}:1")).is_err());
        assert!(ImageReference::parse(&format!("docker.io/library/{long}")).is_err());
        assert!(ImageReference::parse(&format!("ghcr.io/{}", "a".repeat(247))).is_ok());
    }

    fn parsed(text: &str) -> ImageReference {
        ImageReference::parse(text).unwrap_or_else(|error| panic!("{text}: {error}"))
    }

    #[test]
    fn docker_hub_official_images_get_library_namespace() {
        let reference = parsed("nginx:1.25");
        assert_eq!(reference.name(), "docker.io/library/nginx");
        assert_eq!(reference.tag.as_deref(), Some("1.25"));
        assert_eq!(reference.api_host(), "registry-1.docker.io");
        assert_eq!(parsed("docker.io/nginx").name(), "docker.io/library/nginx");
        assert_eq!(
            parsed("index.docker.io/library/nginx").name(),
            "docker.io/library/nginx"
        );
        assert_eq!(parsed("bitnami/nginx").name(), "docker.io/bitnami/nginx");
    }

    #[test]
    fn registry_with_port_is_not_a_tag() {
        let (reference, spans) = ImageReference::parse_with_spans("host:5000/a/b:1").unwrap();
        assert_eq!(reference.registry, "host:5000");
        assert_eq!(reference.repository, "a/b");
        assert_eq!(reference.tag.as_deref(), Some("1"));
        assert_eq!(spans.tag, Some(14..15));
        let reference = parsed("localhost:5000/app");
        assert_eq!(reference.registry, "localhost:5000");
        assert_eq!(reference.tag, None);
        assert_eq!(parsed("localhost/app").registry, "localhost");
        assert_eq!(parsed("[::1]:5000/app:2").registry, "[::1]:5000");
    }

    #[test]
    fn digest_spans_point_at_the_digest_bytes() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let text = format!("ghcr.io/acme/api:1.2.3@{digest}");
        let (reference, spans) = ImageReference::parse_with_spans(&text).unwrap();
        assert_eq!(reference.digest.as_deref(), Some(digest.as_str()));
        assert_eq!(&text[spans.tag.unwrap()], "1.2.3");
        assert_eq!(&text[spans.digest.unwrap()], digest);
        assert_eq!(&text[spans.name], "ghcr.io/acme/api");
        let digest_only = parsed(&format!("nginx@{digest}"));
        assert_eq!(digest_only.tag, None);
    }

    #[test]
    fn invalid_references_are_errors() {
        for text in [
            "",
            "Nginx",
            "nginx:",
            "nginx:-bad",
            "nginx:bad tag",
            "a//b",
            "nginx@sha256:short",
            "host:port/app",
            "-acme/app",
            "acme/app-",
            &format!("nginx:{}", "a".repeat(129)),
        ] {
            assert!(
                ImageReference::parse(text).is_err(),
                "{text:?} should be invalid"
            );
        }
    }

    #[test]
    fn uppercase_first_component_is_a_domain() {
        assert_eq!(parsed("Registry/app").registry, "Registry");
    }

    #[test]
    fn tag_grammar() {
        assert!(is_valid_tag("1.2.3"));
        assert!(is_valid_tag("_x"));
        assert!(is_valid_tag(&"a".repeat(128)));
        assert!(!is_valid_tag(&"a".repeat(129)));
        assert!(!is_valid_tag(".x"));
        assert!(!is_valid_tag("1.0\n"));
        assert!(!is_valid_tag("a\"b"));
        assert!(!is_valid_tag("1.0.0+build"));
    }

    #[test]
    fn normalize_name_rejects_tags() {
        assert_eq!(normalize_name("nginx").unwrap(), "docker.io/library/nginx");
        assert!(normalize_name("nginx:1").is_err());
    }
}
