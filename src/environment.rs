//! The process environment, read in one place. Everything else receives an [`Environment`], so tests
//! pass a map instead of mutating the real environment.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::secret::Secret;

#[derive(Clone, Default)]
pub struct Environment {
    variables: BTreeMap<String, String>,
}

impl Environment {
    /// The real process environment (variables that are not valid UTF-8 are left out).
    pub fn from_process() -> Self {
        Environment {
            variables: std::env::vars_os()
                .filter_map(|(key, value)| {
                    Some((key.into_string().ok()?, value.into_string().ok()?))
                })
                .collect(),
        }
    }

    /// A fixed set of variables (tests).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Environment {
            variables: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.variables.get(name).map(String::as_str)
    }

    /// A variable that holds a secret; `None` when unset or empty.
    pub fn secret(&self, name: &str) -> Option<Secret> {
        self.get(name)
            .filter(|value| !value.is_empty())
            .map(Secret::new)
    }

    pub fn home_dir(&self) -> Option<PathBuf> {
        self.get("HOME").map(PathBuf::from)
    }
}

impl std::fmt::Debug for Environment {
    // Values may be secrets: show only the names.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.variables.keys()).finish()
    }
}
