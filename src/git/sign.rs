//! Commit signatures made by the same programs `git commit -S` runs, so `git verify-commit` accepts them.

use std::io::Write as _;
use std::process::{Command, Stdio};

use super::error::GitError;
use super::settings::Signing;

/// The armored signature over `payload` (the commit object without its `gpgsig` header), or `None`
/// when signing is off.
pub(crate) fn sign(signing: &Signing, payload: &[u8]) -> Result<Option<String>, GitError> {
    let (program, mut command) = match signing {
        Signing::None => return Ok(None),
        Signing::Ssh { key_file } => {
            let mut command = Command::new("ssh-keygen");
            // No file argument: ssh-keygen signs stdin and writes the signature to stdout.
            command
                .args(["-Y", "sign", "-n", "git", "-f"])
                .arg(key_file);
            ("ssh-keygen", command)
        }
        Signing::Gpg { key_id, gnupg_home } => {
            let mut command = Command::new("gpg");
            command.args([
                "--batch",
                "--no-tty",
                "--pinentry-mode",
                "loopback",
                "--detach-sign",
                "--armor",
                "--local-user",
                key_id,
            ]);
            if let Some(home) = gnupg_home {
                command.env("GNUPGHOME", home);
            }
            ("gpg", command)
        }
    };
    let failed = |detail: String| GitError::Signing {
        program: program.to_string(),
        detail,
    };
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| failed(format!("cannot start it: {error}")))?;
    // The payload is a few hundred bytes: far below the pipe buffer, so writing before reading
    // cannot deadlock.
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(payload)
        .map_err(|error| failed(format!("cannot write the commit to it: {error}")))?;
    let output = child
        .wait_with_output()
        .map_err(|error| failed(error.to_string()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(failed(format!("{}: {}", output.status, stderr.trim())));
    }
    let signature = String::from_utf8(output.stdout)
        .map_err(|_| failed("the signature is not text".to_string()))?;
    if signature.trim().is_empty() {
        return Err(failed("it printed no signature".to_string()));
    }
    Ok(Some(signature))
}
