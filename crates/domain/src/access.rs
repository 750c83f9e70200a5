//! Who may do what (docs/api.md §5), in one place. Every use case asks these
//! functions; adapters apply the same rule inside their list query.

use crate::error::{Error, ErrorCode, Result};
use crate::model::{File, Principal, Projection, Visibility};
use crate::upload::IssuedUpload;

/// Whether and how `principal` may read `file`.
///
/// # Errors
/// `file/not-found` for a file of another project or environment (its existence
/// is not revealed); `file/access-denied` when the caller may not read it.
pub fn read_access(principal: &Principal, file: &File) -> Result<Projection> {
    if principal.tenant != file.tenant {
        return Err(Error::new(ErrorCode::FileNotFound));
    }
    if principal.admin || principal.is(&file.owner) {
        return Ok(Projection::Full);
    }
    let visible = match file.visibility {
        Visibility::Public | Visibility::Protected => true,
        Visibility::Shared => principal
            .user_id()
            .is_some_and(|uid| file.shared_with.iter().any(|u| u == uid)),
        Visibility::Private => false,
    };
    if visible {
        Ok(Projection::Public)
    } else {
        Err(Error::new(ErrorCode::AccessDenied))
    }
}

/// Whether `principal` may change or delete `file` (owner or admin only).
///
/// # Errors
/// `file/not-found` across tenants, `file/access-denied` for anyone but the owner or an admin.
pub fn modify_access(principal: &Principal, file: &File) -> Result<()> {
    if principal.tenant != file.tenant {
        return Err(Error::new(ErrorCode::FileNotFound));
    }
    if principal.admin || principal.is(&file.owner) {
        Ok(())
    } else {
        Err(Error::new(ErrorCode::AccessDenied))
    }
}

/// Whether `principal` may drive `upload` (its parts, completion, abort) or
/// register it: the caller it was issued to, or an admin. The upload was
/// found in the caller's tenant.
///
/// # Errors
/// `file/access-denied` for anyone else.
pub fn upload_access(principal: &Principal, upload: &IssuedUpload) -> Result<()> {
    if principal.admin || principal.is(&upload.owner) {
        Ok(())
    } else {
        Err(Error::new(ErrorCode::AccessDenied))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;

    fn tenant(p: &str, env: Environment) -> Tenant {
        Tenant {
            project: ProjectId::new(p).expect("valid"),
            env,
        }
    }

    fn user(t: &Tenant, id: &str, admin: bool) -> Principal {
        Principal {
            tenant: t.clone(),
            identity: Owner {
                kind: OwnerType::User,
                id: id.into(),
            },
            admin,
        }
    }

    fn file(t: &Tenant, owner: &str, vis: Visibility, shared: &[&str]) -> File {
        File {
            id: FileId::generate(),
            tenant: t.clone(),
            s3_key: "k".into(),
            original_name: "a.txt".into(),
            mime_type: "text/plain".into(),
            size: 1,
            width: None,
            height: None,
            visibility: vis,
            bucket: Bucket::Files,
            owner: Owner {
                kind: OwnerType::User,
                id: owner.into(),
            },
            shared_with: shared.iter().map(|s| s.to_string()).collect(),
            metadata: FileMetadata::default(),
            checksum_sha256: None,
            created_at: Timestamp::from_millis(0),
            updated_at: Timestamp::from_millis(0),
        }
    }

    /// The full §5 table: every caller kind against every visibility.
    #[test]
    fn section_5_table() {
        let t = tenant("p", Environment::Dev);
        let owner = user(&t, "alice", false);
        let admin = user(&t, "root", true);
        let service = Principal {
            tenant: t.clone(),
            identity: Owner {
                kind: OwnerType::Service,
                id: "key-1".into(),
            },
            admin: true,
        };
        let named = user(&t, "bob", false);
        let stranger = user(&t, "carol", false);
        let denied = Err(Error::new(ErrorCode::AccessDenied));
        for vis in Visibility::ALL.iter().copied() {
            let f = file(&t, "alice", vis, &["bob"]);
            assert_eq!(read_access(&owner, &f), Ok(Projection::Full), "{vis}");
            assert_eq!(read_access(&admin, &f), Ok(Projection::Full), "{vis}");
            assert_eq!(read_access(&service, &f), Ok(Projection::Full), "{vis}");
            assert_eq!(modify_access(&owner, &f), Ok(()));
            assert_eq!(modify_access(&admin, &f), Ok(()));
            assert_eq!(modify_access(&service, &f), Ok(()));
            assert_eq!(
                modify_access(&named, &f),
                denied.clone().map(|_: Projection| ())
            );
            assert_eq!(
                modify_access(&stranger, &f),
                denied.clone().map(|_: Projection| ())
            );
            let (named_read, stranger_read) = match vis {
                Visibility::Public | Visibility::Protected => {
                    (Ok(Projection::Public), Ok(Projection::Public))
                }
                Visibility::Shared => (Ok(Projection::Public), denied.clone()),
                Visibility::Private => (denied.clone(), denied.clone()),
            };
            assert_eq!(read_access(&named, &f), named_read, "{vis}");
            assert_eq!(read_access(&stranger, &f), stranger_read, "{vis}");
        }
    }

    #[test]
    fn other_tenants_never_see_files_even_as_admin() {
        let t = tenant("p", Environment::Dev);
        for other in [
            tenant("q", Environment::Dev),
            tenant("p", Environment::Prod),
        ] {
            let f = file(&t, "alice", Visibility::Public, &[]);
            let nf = Err(Error::new(ErrorCode::FileNotFound));
            assert_eq!(read_access(&user(&other, "alice", true), &f), nf);
            assert_eq!(
                modify_access(&user(&other, "alice", true), &f),
                nf.map(|_: Projection| ())
            );
        }
    }

    #[test]
    fn service_principal_is_not_a_user_named_in_shared_with() {
        let t = tenant("p", Environment::Dev);
        let f = file(&t, "alice", Visibility::Shared, &["key-1"]);
        let svc = Principal {
            tenant: t.clone(),
            identity: Owner {
                kind: OwnerType::Service,
                id: "key-1".into(),
            },
            admin: false,
        };
        assert_eq!(
            read_access(&svc, &f),
            Err(Error::new(ErrorCode::AccessDenied))
        );
    }

    #[test]
    fn owner_identity_includes_the_owner_type() {
        let t = tenant("p", Environment::Dev);
        let mut f = file(&t, "key-1", Visibility::Private, &[]);
        f.owner.kind = OwnerType::Service;
        assert_eq!(
            read_access(&user(&t, "key-1", false), &f),
            Err(Error::new(ErrorCode::AccessDenied))
        );
    }
}
