//! Quotas and usage (docs/api.md §11): what an owner and a project hold, from
//! the maintained counts, and the limits a registration may not pass.

use serde::Serialize;

use crate::error::{Error, ErrorCode};

/// Files and bytes held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Registered files.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
}

impl Usage {
    /// One file of `bytes`.
    pub fn one_file(bytes: u64) -> Self {
        Self { files: 1, bytes }
    }
}

/// The limits of one scope; `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limit {
    /// Most files.
    pub files: Option<u64>,
    /// Most bytes.
    pub bytes: Option<u64>,
}

impl Limit {
    /// No limit.
    pub const NONE: Limit = Limit {
        files: None,
        bytes: None,
    };

    /// Whether either limit is set.
    pub fn is_set(&self) -> bool {
        self.files.is_some() || self.bytes.is_some()
    }
}

/// The quotas of a deployment (`STOWAGE_QUOTA_*`): per user, and per project
/// and environment. Files of the service principal count toward the project
/// only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quota {
    /// Per user.
    pub user: Limit,
    /// Per project and environment.
    pub project: Limit,
}

impl Quota {
    /// No quotas.
    pub const NONE: Quota = Quota {
        user: Limit::NONE,
        project: Limit::NONE,
    };

    /// Whether any quota is set.
    pub fn is_set(&self) -> bool {
        self.user.is_set() || self.project.is_set()
    }

    /// The quota `adding` would exceed given what the user (`None` for the
    /// service principal) and the project hold, as `file/quota-exceeded`
    /// naming it; `None` when it fits.
    pub fn exceeded(&self, user: Option<Usage>, project: Usage, adding: Usage) -> Option<Error> {
        let over = |held: u64, add: u64, limit: Option<u64>| {
            limit.filter(|&max| held.checked_add(add).is_none_or(|total| total > max))
        };
        let checks = [
            (
                user.map(|u| (u.files, self.user.files)),
                adding.files,
                "user file",
            ),
            (
                user.map(|u| (u.bytes, self.user.bytes)),
                adding.bytes,
                "user byte",
            ),
            (
                Some((project.files, self.project.files)),
                adding.files,
                "project file",
            ),
            (
                Some((project.bytes, self.project.bytes)),
                adding.bytes,
                "project byte",
            ),
        ];
        checks.into_iter().find_map(|(held, add, name)| {
            let (held, limit) = held?;
            over(held, add, limit).map(|max| {
                let unit = if name.ends_with("file") {
                    "files"
                } else {
                    "bytes"
                };
                Error::with_message(
                    ErrorCode::QuotaExceeded,
                    format!(
                        "The {name} quota would be exceeded (limit {max} {unit}, {held} in use)"
                    ),
                )
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const USED: Usage = Usage {
        files: 9,
        bytes: 900,
    };

    fn quota(user: (Option<u64>, Option<u64>), project: (Option<u64>, Option<u64>)) -> Quota {
        Quota {
            user: Limit {
                files: user.0,
                bytes: user.1,
            },
            project: Limit {
                files: project.0,
                bytes: project.1,
            },
        }
    }

    #[test]
    fn no_quota_never_refuses() {
        assert!(!Quota::NONE.is_set());
        assert!(Quota::NONE
            .exceeded(Some(USED), USED, Usage::one_file(u64::MAX))
            .is_none());
    }

    #[test]
    fn the_last_file_and_the_last_byte_fit_one_more_does_not() {
        let q = quota((Some(10), Some(1000)), (None, None));
        assert!(q.exceeded(Some(USED), USED, Usage::one_file(100)).is_none());
        let e = q
            .exceeded(Some(USED), USED, Usage::one_file(101))
            .expect("over");
        assert_eq!(e.code(), ErrorCode::QuotaExceeded);
        assert!(e.message().contains("user byte quota"), "{}", e.message());
        let full = Usage {
            files: 10,
            bytes: 0,
        };
        let e = q
            .exceeded(Some(full), full, Usage::one_file(0))
            .expect("over");
        assert!(e.message().contains("user file quota"), "{}", e.message());
    }

    #[test]
    fn the_service_principal_counts_toward_the_project_only() {
        let q = quota((Some(1), Some(1)), (Some(100), Some(10_000)));
        assert!(q.exceeded(None, USED, Usage::one_file(50)).is_none());
        let e = q
            .exceeded(None, USED, Usage::one_file(9_101))
            .expect("over");
        assert!(
            e.message().contains("project byte quota"),
            "{}",
            e.message()
        );
        let e = q
            .exceeded(
                None,
                Usage {
                    files: 100,
                    bytes: 0,
                },
                Usage::one_file(1),
            )
            .expect("over");
        assert!(
            e.message().contains("project file quota"),
            "{}",
            e.message()
        );
    }

    #[test]
    fn user_quotas_are_checked_before_project_ones_and_never_overflow() {
        let q = quota((Some(0), None), (Some(0), None));
        let e = q
            .exceeded(Some(USED), USED, Usage::one_file(1))
            .expect("over");
        assert!(e.message().contains("user file quota"), "{}", e.message());
        let q = quota((None, Some(u64::MAX)), (None, None));
        let huge = Usage {
            files: 0,
            bytes: u64::MAX,
        };
        assert!(q.exceeded(Some(huge), huge, Usage::one_file(0)).is_none());
        assert!(q.exceeded(Some(huge), huge, Usage::one_file(1)).is_some());
    }

    #[test]
    fn an_issue_without_a_declared_size_checks_the_file_count() {
        let q = quota((Some(9), Some(1)), (None, None));
        let e = q
            .exceeded(Some(USED), USED, Usage::one_file(0))
            .expect("over");
        assert!(e.message().contains("user file quota"), "{}", e.message());
    }
}
