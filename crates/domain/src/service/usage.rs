//! `GET /v1/usage` (docs/api.md §11): what the caller and, for admins, the
//! project hold, next to their quotas.
use super::*;

/// One scope's usage and quotas (`null`: no quota).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct UsageView {
    /// Registered files.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// The file quota.
    pub quota_files: Option<u64>,
    /// The byte quota.
    pub quota_bytes: Option<u64>,
}

/// The answer of `GET /v1/usage`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UsageReport {
    /// The caller's own files (the service principal's: no user quota; its
    /// files count toward the project).
    pub user: UsageView,
    /// The project and environment, for admins only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<UsageView>,
}

impl FileService {
    /// `GET /v1/usage`.
    pub async fn usage(&self, principal: &Principal) -> Result<UsageReport> {
        let tenant = &principal.tenant;
        let quota = &self.config.quota;
        let own = self.repo.usage(tenant, Some(&principal.identity)).await?;
        let user_limit = match principal.identity.kind {
            OwnerType::User => quota.user,
            OwnerType::Service => crate::quota::Limit::NONE,
        };
        let view = |u: Usage, limit: crate::quota::Limit| UsageView {
            files: u.files,
            bytes: u.bytes,
            quota_files: limit.files,
            quota_bytes: limit.bytes,
        };
        let project = if principal.admin {
            Some(view(self.repo.usage(tenant, None).await?, quota.project))
        } else {
            None
        };
        Ok(UsageReport {
            user: view(own, user_limit),
            project,
        })
    }
}
