//! `[custody]`: the custody store's file, retention and queues (the defaults live beside the
//! store, in `crate::custody`).

use super::compiler::{Compiler, ConfigError};
use super::raw;
use toml::Spanned;

impl Compiler<'_> {
    /// `[custody]`: off unless a path is given (a database file is the operator's choice of
    /// place) or `[cluster] postgres` is (`shared`: the records go there); `enabled = true`
    /// without either is refused.
    pub(super) fn custody(
        &self,
        raw: &raw::RawCustody,
        shared: bool,
    ) -> Result<Option<crate::custody::Settings>, ConfigError> {
        use crate::custody::{
            Settings, CHANNEL_RECORDS_RANGE, DEFAULT_CHANNEL_RECORDS, DEFAULT_READ_QUEUE,
            DEFAULT_RETENTION_DAYS, READ_QUEUE_RANGE,
        };
        let bounded = |value: &Option<Spanned<usize>>,
                       range: &std::ops::RangeInclusive<usize>,
                       default: usize,
                       path: &str| match value {
            Some(n) if !range.contains(n.get_ref()) => Err(self.err(
                n.span(),
                path,
                format!("must be {} to {}", range.start(), range.end()),
            )),
            Some(n) => Ok(*n.get_ref()),
            None => Ok(default),
        };
        let channel_records = bounded(
            &raw.channel_records,
            &CHANNEL_RECORDS_RANGE,
            DEFAULT_CHANNEL_RECORDS,
            "custody.channel_records",
        )?;
        let read_queue = bounded(
            &raw.read_queue,
            &READ_QUEUE_RANGE,
            DEFAULT_READ_QUEUE,
            "custody.read_queue",
        )?;
        if raw.enabled == Some(false) {
            return Ok(None);
        }
        let Some(path) = raw.path.as_ref() else {
            if shared {
                return Ok(Some(Settings {
                    path: None,
                    retention_days: raw.retention_days.unwrap_or(DEFAULT_RETENTION_DAYS),
                    channel_records,
                    read_queue,
                }));
            }
            if raw.enabled == Some(true) {
                return Err(self.err(
                    0..0,
                    "custody.path",
                    "is needed when custody is enabled (the SQLite file)",
                ));
            }
            return Ok(None);
        };
        let p = path.get_ref();
        if p.is_empty() || p.contains('\0') {
            return Err(self.err(
                path.span(),
                "custody.path",
                "must be a file path (not empty, no NUL byte)",
            ));
        }
        Ok(Some(Settings {
            path: Some(std::path::PathBuf::from(p)),
            retention_days: raw.retention_days.unwrap_or(DEFAULT_RETENTION_DAYS),
            channel_records,
            read_queue,
        }))
    }
}

#[cfg(test)]
mod tests {
    use crate::config::testing::GOOD;
    use crate::config::Config;

    #[test]
    fn custody_settings() {
        let c = Config::from_toml(GOOD, "t.toml").unwrap();
        assert_eq!(c.custody, None, "off without a path");
        let with = |t: &str| Config::from_toml(&format!("{GOOD}\n[custody]\n{t}\n"), "t.toml");
        let on = with("path = \"/tmp/c.db\"").unwrap().custody.unwrap();
        assert_eq!(on.path, Some(std::path::PathBuf::from("/tmp/c.db")));
        assert_eq!(on.retention_days, crate::custody::DEFAULT_RETENTION_DAYS);
        assert_eq!(on.channel_records, crate::custody::DEFAULT_CHANNEL_RECORDS);
        assert_eq!(on.read_queue, crate::custody::DEFAULT_READ_QUEUE);
        let set = with("path = \"c.db\"\nretention_days = 0\nchannel_records = 8\nread_queue = 3")
            .unwrap()
            .custody
            .unwrap();
        assert_eq!(
            (set.retention_days, set.channel_records, set.read_queue),
            (0, 8, 3)
        );
        assert_eq!(
            with("path = \"c.db\"\nenabled = false").unwrap().custody,
            None
        );
        let e = with("enabled = true").unwrap_err();
        assert!(e.to_string().contains("custody.path"), "{e}");
        let e = with("path = \"c.db\"\nchannel_records = 0").unwrap_err();
        assert!(e.to_string().contains("custody.channel_records"), "{e}");
        let e = with("path = \"c.db\"\nread_queue = 0").unwrap_err();
        assert!(e.to_string().contains("custody.read_queue"), "{e}");
        assert!(with("path = \"c.db\"\nwhat = 1").is_err());
        // With [cluster] postgres, custody is on without a path; `enabled = false` still wins.
        let cluster =
            "[responses.store]\nenabled = false\n[cluster]\npostgres = \"postgres://rw@db/rw\"";
        let shared = with(&format!("retention_days = 7\n{cluster}"))
            .unwrap()
            .custody
            .unwrap();
        assert_eq!((shared.path, shared.retention_days), (None, 7));
        assert_eq!(
            with(&format!("enabled = false\n{cluster}"))
                .unwrap()
                .custody,
            None
        );
    }
}
