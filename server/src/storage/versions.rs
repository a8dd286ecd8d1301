//! Document versions: the whole state of a document at a moment, kept beside it.
//!
//! A version belongs to the generation it was made in: one made for a generation that a DELETE
//! has ended is refused ([`super::StoreError::Superseded`]), and a DELETE removes a document's
//! versions with it, so no version from before a deletion can be restored into what came after.
//! The SQL is shared by SQLite and PostgreSQL (`$n` placeholders, integer milliseconds for
//! times); each store runs it in its own transaction.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// A version as listed: everything but its content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionInfo {
    pub id: i64,
    pub label: Option<String>,
    /// Who made it: a token's `sub`, `api`, `auto` (made by the server on a schedule).
    pub author: String,
    /// RFC 3339, UTC.
    #[serde(serialize_with = "rfc3339")]
    pub created_at: u64,
    /// Bytes of its content (one v1 update of the whole document).
    pub size: u64,
}

fn rfc3339<S: serde::Serializer>(ms: &u64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_ms(*ms))
}

/// Milliseconds since the epoch as RFC 3339 (UTC, millisecond precision).
pub fn format_ms(ms: u64) -> String {
    let secs = (ms / 1000) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// A time as an API takes it: milliseconds since the epoch, or RFC 3339 in UTC
/// (`2026-12-07T10:30:00Z`, fractions of a second allowed).
pub fn parse_time(text: &str) -> Option<u64> {
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok();
    }
    let text = text
        .strip_suffix('Z')
        .or_else(|| text.strip_suffix("+00:00"))?;
    let (date, time) = text.split_once(['T', 't', ' '])?;
    let mut date = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (date.next()??, date.next()??, date.next()??);
    let (time, fraction) = match time.split_once('.') {
        Some((time, fraction)) => (time, fraction),
        None => (time, ""),
    };
    let mut time = time.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (hour, minute, second) = (time.next()??, time.next()??, time.next()??);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let millis: i64 = match fraction.len() {
        0 => 0,
        _ if fraction.bytes().all(|b| b.is_ascii_digit()) => {
            format!("{fraction:0<3}")[..3].parse().ok()?
        }
        _ => return None,
    };
    // Days since 1970-01-01 from a civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let ms = ((days * 86_400 + hour * 3600 + minute * 60 + second) * 1000) + millis;
    u64::try_from(ms).ok()
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A version to store.
#[derive(Debug, Clone)]
pub struct NewVersion {
    pub label: Option<String>,
    pub author: String,
    pub created_at: u64,
    pub content: Vec<u8>,
}

/// What to keep of a document's versions after a new one (`None`: no limit of that kind).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// The newest this many.
    pub keep_last: Option<u32>,
    /// Made within this many milliseconds.
    pub max_age_ms: Option<u64>,
    /// The newest whose sizes add up to at most this many bytes (the newest is always kept).
    pub max_bytes: Option<u64>,
}

impl Retention {
    pub fn is_unlimited(&self) -> bool {
        *self == Retention::default()
    }

    /// The ids to remove from `versions` (newest first), given the time `now`.
    pub fn expired(&self, versions: &[VersionInfo], now: u64) -> Vec<i64> {
        let mut total = 0u64;
        versions
            .iter()
            .enumerate()
            .filter(|(index, version)| {
                total = total.saturating_add(version.size);
                let too_many = self.keep_last.is_some_and(|n| *index >= n as usize);
                let too_old = self
                    .max_age_ms
                    .is_some_and(|age| now.saturating_sub(version.created_at) > age);
                let too_big = *index > 0 && self.max_bytes.is_some_and(|max| total > max);
                too_many || too_old || too_big
            })
            .map(|(_, version)| version.id)
            .collect()
    }
}

/// Inserts a version if `$2` is still the document's generation; returns its id (no row:
/// superseded). `$1` name, `$2` generation, `$3` label, `$4` author, `$5` created (ms),
/// `$6` size, `$7` content.
pub const INSERT: &str = "INSERT INTO document_versions \
     (name, generation, label, author, created_ms, size, content) \
     SELECT $1, $2, $3, $4, $5, $6, $7 \
     WHERE COALESCE((SELECT generation FROM document_generations WHERE name = $1), 0) = $2 \
     RETURNING id";

/// A page of versions, newest first: `$1` name, `$2` ids below, `$3` limit.
pub const LIST: &str = "SELECT id, label, author, created_ms, size FROM document_versions \
     WHERE name = $1 AND id < $2 ORDER BY id DESC LIMIT $3";

/// One version with its content: `$1` name, `$2` id.
pub const GET: &str = "SELECT id, label, author, created_ms, size, content \
     FROM document_versions WHERE name = $1 AND id = $2";

/// `$1` name, `$2` id.
pub const DELETE_ONE: &str = "DELETE FROM document_versions WHERE name = $1 AND id = $2";

/// Every version of a document (with the document): `$1` name.
pub const DELETE_ALL: &str = "DELETE FROM document_versions WHERE name = $1";

/// A version from a row's columns.
pub fn info(
    id: i64,
    label: Option<String>,
    author: String,
    created: i64,
    size: i64,
) -> VersionInfo {
    VersionInfo {
        id,
        label,
        author,
        created_at: created.max(0) as u64,
        size: size.max(0) as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339() {
        for ms in [0, 951_782_400_123, 1_796_601_600_000, 1_796_650_245_999] {
            assert_eq!(parse_time(&format_ms(ms)), Some(ms), "{}", format_ms(ms));
        }
        assert_eq!(parse_time("2026-12-07T00:00:00Z"), Some(1_796_601_600_000));
        assert_eq!(parse_time("1796601600000"), Some(1_796_601_600_000));
        assert_eq!(
            parse_time("2026-12-07T00:00:00.5+00:00"),
            Some(1_796_601_600_500)
        );
        for bad in [
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2026-12-07T00:00:00",
            "",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
        assert_eq!(format_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_ms(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(format_ms(1_796_601_600_000), "2026-12-07T00:00:00.000Z");
    }

    fn version(id: i64, age_ms: u64, size: u64) -> VersionInfo {
        info(
            id,
            None,
            "api".into(),
            (10_000_000 - age_ms) as i64,
            size as i64,
        )
    }

    #[test]
    fn retention_keeps_the_newest_within_every_limit() {
        let versions = [
            version(5, 0, 40),
            version(4, 1_000, 40),
            version(3, 90_000, 40),
        ];
        let now = 10_000_000;
        assert!(Retention::default().expired(&versions, now).is_empty());
        let last_two = Retention {
            keep_last: Some(2),
            ..Default::default()
        };
        assert_eq!(last_two.expired(&versions, now), [3]);
        let a_minute = Retention {
            max_age_ms: Some(60_000),
            ..Default::default()
        };
        assert_eq!(a_minute.expired(&versions, now), [3]);
        let small = Retention {
            max_bytes: Some(10),
            ..Default::default()
        };
        assert_eq!(small.expired(&versions, now), [4, 3], "the newest is kept");
    }
}
