//! `[access_log]`: where the access log goes (stderr by default, a file, or nowhere).

use super::compiler::{Compiler, ConfigError};
use super::raw;

impl Compiler<'_> {
    /// `[access_log]`: on by default, to stderr.
    pub(super) fn access_log(
        &self,
        raw: &raw::RawAccessLog,
    ) -> Result<Option<crate::access_log::Destination>, ConfigError> {
        use crate::access_log::Destination;
        if raw.enabled == Some(false) {
            return Ok(None);
        }
        let Some(path) = raw.path.as_ref() else {
            return Ok(Some(Destination::Stderr));
        };
        match path.get_ref().as_str() {
            "stderr" => Ok(Some(Destination::Stderr)),
            "" => Err(self.err(
                path.span(),
                "access_log.path",
                "must be \"stderr\" or a file path",
            )),
            p if p.contains('\0') => Err(self.err(
                path.span(),
                "access_log.path",
                "must not contain a NUL byte",
            )),
            p => Ok(Some(Destination::File(std::path::PathBuf::from(p)))),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::testing::GOOD;
    use crate::config::Config;

    #[test]
    fn access_log_settings() {
        let c = Config::from_toml(GOOD, "t.toml").unwrap();
        assert_eq!(c.access_log, Some(crate::access_log::Destination::Stderr));
        assert!(c.describe().contains("access log to stderr"));
        let with = |t: &str| Config::from_toml(&format!("{GOOD}\n[access_log]\n{t}\n"), "t.toml");
        assert_eq!(with("enabled = false").unwrap().access_log, None);
        assert_eq!(
            with("path = \"/var/log/rw.log\"").unwrap().access_log,
            Some(crate::access_log::Destination::File(
                "/var/log/rw.log".into()
            ))
        );
        assert_eq!(
            with("path = \"stderr\"").unwrap().access_log,
            Some(crate::access_log::Destination::Stderr)
        );
        let e = with("path = \"\"").unwrap_err();
        assert!(e.to_string().contains("access_log.path"), "{e}");
        assert!(with("format = \"text\"").is_err());
    }
}
