//! Secret-bearing files (token files, configs with inline passwords): written atomically and owner-only, and read with a warning when others can read them.

use std::io::Write as _;
use std::path::Path;

/// Writes `contents` to `path` atomically, readable and writable by the owner only (0600 on
/// Unix).
///
/// A [`tempfile::NamedTempFile`] is created in the target's directory (a fresh random name,
/// `O_EXCL`: never an existing file, never through a symlink, mode 0600 from the start),
/// written, flushed to disk, and `persist`ed over `path` with a rename. The rename replaces a
/// symlink at `path` instead of writing through it, and an existing file's wider mode is not
/// kept. A failed write leaves `path` as it was and removes the temporary file.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("google-token.json");
/// mailroom_http::write_private_file(&path, b"{\"refresh_token\":\"1//x\"}").unwrap();
/// # #[cfg(unix)] {
/// use std::os::unix::fs::PermissionsExt;
/// assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
/// # }
/// ```
pub fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "secret".into());
    let mut builder = tempfile::Builder::new();
    let prefix = format!(".{file_name}.");
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o600));
    }
    let mut file = builder.tempfile_in(directory)?;
    #[cfg(unix)]
    {
        // The creation mode is filtered by the umask; say it again explicitly.
        use std::os::unix::fs::PermissionsExt;
        file.as_file().set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(contents)?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    #[cfg(unix)]
    if let Ok(directory) = std::fs::File::open(directory) {
        // Makes the rename durable; some file systems refuse fsync on a directory.
        let _ = directory.sync_all();
    }
    Ok(())
}

/// Replaces the refresh token in a token file (a rotated one from the token endpoint), keeping
/// the file's other fields: a JSON object gets its `refresh_token` (and `saved_at`, when it
/// has one) replaced, anything else (a bare refresh token on one line) is replaced whole.
/// Written like [`write_private_file`]: atomic, owner-only.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("token.json");
/// std::fs::write(&path, r#"{"client_id":"c","account":"erp@company.com","refresh_token":"old"}"#).unwrap();
/// mailroom_http::replace_refresh_token(&path, "new").unwrap();
/// let saved: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
/// assert_eq!((saved["refresh_token"].as_str(), saved["account"].as_str()), (Some("new"), Some("erp@company.com")));
/// ```
pub fn replace_refresh_token(path: &Path, refresh_token: &str) -> std::io::Result<()> {
    let text = std::fs::read_to_string(path)?;
    let contents = match serde_json::from_str::<serde_json::Value>(text.trim()) {
        Ok(serde_json::Value::Object(mut document)) => {
            document.insert("refresh_token".into(), refresh_token.into());
            if document.contains_key("saved_at") {
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
                document.insert("saved_at".into(), now.into());
            }
            let mut text = serde_json::to_string_pretty(&document).map_err(std::io::Error::other)?;
            text.push('\n');
            text
        }
        _ => format!("{refresh_token}\n"),
    };
    write_private_file(path, contents.as_bytes())
}

/// Reads a secret-bearing file as text; logs a warning (tracing) when the file can be read by
/// its group or by everyone, because then the secret in it can be too.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("token.json");
/// mailroom_http::write_private_file(&path, b"secret").unwrap();
/// assert_eq!(mailroom_http::read_private_file(&path).unwrap(), "secret");
/// ```
pub fn read_private_file(path: &Path) -> std::io::Result<String> {
    let text = std::fs::read_to_string(path)?;
    if let Some(mode) = readable_by_others(path) {
        tracing::warn!(
            path = %path.display(),
            mode = format_args!("{mode:o}"),
            "the file holds a secret but can be read by other users: run `chmod 600` on it"
        );
    }
    Ok(text)
}

/// The permission bits of `path` when its group or others may read it (Unix); `None` otherwise.
pub fn readable_by_others(path: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
        (mode & 0o044 != 0).then_some(mode)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_symlink_at_the_destination_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim.txt");
        std::fs::write(&victim, "untouched").unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
        let path = dir.path().join("config.toml");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        write_private_file(&path, b"password = \"x\"").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
        assert_eq!(mode(&victim), 0o644);
        assert!(!std::fs::symlink_metadata(&path).unwrap().file_type().is_symlink());
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn an_existing_world_readable_file_becomes_owner_only_and_nothing_is_left_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(readable_by_others(&path), Some(0o644));
        write_private_file(&path, b"new").unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(readable_by_others(&path), None);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["config.toml"]);
    }
}
