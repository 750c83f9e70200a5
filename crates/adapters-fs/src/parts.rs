//! Names of multipart part files: `<n>-<seq>-<md5>`, the newest `seq` of a
//! part number being the part.

/// One stored part file, `<number>-<seq>-<md5>` (`<number>-<md5>` from
/// before sequence numbers counts as the oldest).
#[derive(Debug, Clone)]
pub(crate) struct StoredPart {
    pub(crate) number: u32,
    pub(crate) seq: String,
    pub(crate) etag: String,
    pub(crate) name: String,
}

impl StoredPart {
    pub(crate) fn parse(name: String) -> Option<Self> {
        let mut fields = name.splitn(3, '-');
        let number = fields.next()?.parse().ok()?;
        let (seq, etag) = match (fields.next()?, fields.next()) {
            (seq, Some(etag)) => (seq.to_owned(), etag.to_owned()),
            (etag, None) => (String::new(), etag.to_owned()),
        };
        Some(Self {
            number,
            seq,
            etag,
            name,
        })
    }
}

/// A sequence number for a part file: fixed-width nanoseconds since the
/// epoch and a random tail, so later PUTs sort later and two never tie.
pub(crate) fn part_sequence() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let tail = &uuid::Uuid::new_v4().simple().to_string()[..8];
    format!("{nanos:024}{tail}")
}
