//! Policy documents and `tagwatch.yaml`, loaded from a file as `validate` / `resolve` do: never panic,
//! and every refusal is a list of positioned diagnostics (`FILE:LINE:COL`, the line inside the file or
//! just past its end, the column at least 1). The first byte picks a policy file or a config file.
//!
//! A config names other files (`policies: [DIR]`, CA and key files): for a config input every `/`,
//! `\` and `..` is neutralized first, so a generated config can only name files inside its own
//! temporary directory and never walks the machine's file system.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use tagwatch::config::{Config, Diagnostics, SecretCheck, load_policies};
use tagwatch::environment::Environment;

static DIR: LazyLock<tempfile::TempDir> = LazyLock::new(|| {
    tempfile::Builder::new()
        .prefix("tagwatch-fuzz-")
        .tempdir_in(if Path::new("/dev/shm").is_dir() {
            "/dev/shm"
        } else {
            "/tmp"
        })
        .unwrap()
});

fn check(diagnostics: &Diagnostics, file: &Path, text: &[u8]) {
    assert!(!diagnostics.0.is_empty(), "an error without a diagnostic");
    // YAML's line breaks: `\r\n`, `\r` and `\n`.
    let breaks = text
        .iter()
        .enumerate()
        .filter(|(index, byte)| {
            **byte == b'\n' || (**byte == b'\r' && text.get(index + 1) != Some(&b'\n'))
        })
        .count();
    let lines = breaks + 1;
    for diagnostic in &diagnostics.0 {
        assert_eq!(diagnostic.file, file, "{diagnostic}");
        assert!(
            (1..=lines + 1).contains(&diagnostic.mark.line) && diagnostic.mark.column >= 1,
            "not positioned in a file of {lines} lines: {diagnostic}"
        );
        assert!(!diagnostic.message.is_empty(), "{diagnostic}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, text)) = data.split_first() else {
        return;
    };
    if selector & 1 == 0 {
        let file: PathBuf = DIR.path().join("policy.yaml");
        std::fs::write(&file, text).unwrap();
        if let Err(diagnostics) = load_policies(std::slice::from_ref(&file)) {
            check(&diagnostics, &file, text);
        }
    } else {
        let mut text = text.to_vec();
        for byte in text.iter_mut() {
            if *byte == b'/' || *byte == b'\\' {
                *byte = b'_';
            }
        }
        for index in 1..text.len() {
            if text[index - 1] == b'.' && text[index] == b'.' {
                text[index] = b'_';
            }
        }
        let file: PathBuf = DIR.path().join("tagwatch.yaml");
        std::fs::write(&file, &text).unwrap();
        let environment = Environment::default();
        if let Err(diagnostics) = Config::load_with(Some(&file), &environment, SecretCheck::Skip) {
            // Diagnostics of the policy files it names are positioned in those files.
            let own = Diagnostics(
                diagnostics
                    .0
                    .into_iter()
                    .filter(|diagnostic| diagnostic.file == file)
                    .collect(),
            );
            if !own.0.is_empty() {
                check(&own, &file, &text);
            }
        }
    }
});
