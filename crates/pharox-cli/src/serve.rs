//! `pharox serve`: where its API keys come from and where it may listen.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context, Result, bail};
use pharox_server::ApiKeys;

/// The environment variable holding comma-separated API keys.
pub const API_KEYS_ENV: &str = "PHAROX_API_KEYS";

/// The keys from `PHAROX_API_KEYS` (comma-separated) and from `file` (one a
/// line, `#` comments), together.
///
/// # Errors
/// When the file cannot be read, or names no key.
pub fn load_api_keys(env: Option<&str>, file: Option<&Path>) -> Result<ApiKeys> {
    let mut keys = match env {
        Some(list) => ApiKeys::from_list(list).with_context(|| format!("in {API_KEYS_ENV}"))?,
        None => ApiKeys::none(),
    };
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading API keys from {}", path.display()))?;
        let from_file =
            ApiKeys::from_lines(&text).with_context(|| format!("in {}", path.display()))?;
        if from_file.is_empty() {
            bail!("{} holds no API key", path.display());
        }
        keys = keys.merged(&from_file);
    }
    Ok(keys)
}

/// Refuses an address other than loopback when no key is configured: an
/// open lease service must not be reachable from other machines.
///
/// # Errors
/// When `keys` is empty and `addr` is not a loopback address.
pub fn check_exposure(addr: SocketAddr, keys: &ApiKeys) -> Result<()> {
    if keys.is_empty() && !addr.ip().is_loopback() {
        bail!(
            "refusing to listen on {addr} without API keys: set {API_KEYS_ENV} or \
             --api-keys-file, or listen on a loopback address (127.0.0.1, ::1)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_keys_only_loopback_is_allowed() {
        let none = ApiKeys::none();
        for ok in ["127.0.0.1:8000", "127.5.5.5:1", "[::1]:8000"] {
            assert!(check_exposure(ok.parse().unwrap(), &none).is_ok(), "{ok}");
        }
        for refused in [
            "0.0.0.0:8000",
            "[::]:8000",
            "10.0.0.1:8000",
            "192.168.1.2:80",
        ] {
            let e = check_exposure(refused.parse().unwrap(), &none).unwrap_err();
            assert!(e.to_string().contains("without API keys"), "{refused}: {e}");
        }
        let keys = ApiKeys::admin(["k"]);
        assert!(check_exposure("0.0.0.0:8000".parse().unwrap(), &keys).is_ok());
    }

    #[test]
    fn keys_come_from_the_environment_and_the_file_together() {
        let dir = std::env::temp_dir().join(format!("pharox-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("keys");
        std::fs::write(&file, "# ops\nfile-key\n").unwrap();
        let keys = load_api_keys(Some("env-a,env-b"), Some(&file)).unwrap();
        assert_eq!(keys.len(), 3);
        assert!(keys.accepts(b"file-key") && keys.accepts(b"env-b"));
        assert!(load_api_keys(None, None).unwrap().is_empty());
        std::fs::write(&file, "# nothing\n\n").unwrap();
        assert!(load_api_keys(None, Some(&file)).is_err());
        assert!(load_api_keys(None, Some(&dir.join("missing"))).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
