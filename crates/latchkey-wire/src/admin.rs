//! The JSON bodies of the administration API (`/admin/v1`), requests and
//! responses; field names are the public contract. Request bodies do not
//! implement `Debug` (`CreateUser` may carry a password).

use serde::{Deserialize, Serialize};

use crate::clock::UnixTime;

/// `GET /admin/v1/users` query parameters.
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
#[derive(Deserialize, Default)]
pub struct UserListQuery {
    /// Accounts whose normalised (NFKC, case-folded) username or
    /// lower-cased email contains this text.
    #[serde(default)]
    pub query: Option<String>,
    /// Accounts per page: 1 to 200 [default: 50].
    #[serde(default)]
    pub limit: Option<usize>,
    /// A previous page's `next_cursor`.
    #[serde(default)]
    pub cursor: Option<String>,
}

/// An account as operators see it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct AdminUser {
    pub id: String,
    pub username: String,
    pub created_at: UnixTime,
    pub roles: Vec<String>,
    pub email: Option<String>,
    pub email_verified_at: Option<UnixTime>,
    /// Whether the account is disabled (cannot sign in, has no session).
    pub disabled: bool,
    pub disabled_at: Option<UnixTime>,
}

/// `GET /admin/v1/users`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Debug)]
pub struct UserPageBody {
    pub users: Vec<AdminUser>,
    /// Pass as `cursor` for the next page; absent on the last one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `POST /admin/v1/users`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Deserialize)]
pub struct CreateUser {
    pub username: String,
    /// Without one, the answer carries a one-time link to set it, and the
    /// account cannot be signed in to until then.
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub roles: Option<Vec<String>>,
}

/// `POST /admin/v1/users`'s answer: the account, and for one created
/// without a password the link to set it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Serialize)]
pub struct CreatedUser {
    #[serde(flatten)]
    pub user: AdminUser,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set_password_link: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set_password_link_expires_at: Option<UnixTime>,
}

/// `PATCH /admin/v1/users/{id}`: each field present is changed.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Deserialize, Default)]
pub struct PatchUser {
    /// `true` ends every session at once; `false` enables the account.
    #[serde(default)]
    pub disabled: Option<bool>,
    /// The whole new list.
    #[serde(default)]
    pub roles: Option<Vec<String>>,
    /// A new, unverified address; `""` removes it.
    #[serde(default)]
    pub email: Option<String>,
}

/// `DELETE /admin/v1/users/{id}/sessions`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Debug)]
pub struct EndedSessions {
    /// How many sessions ended.
    pub ended: usize,
}

/// A one-time link (`POST /admin/v1/users/{id}/password-reset`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Serialize)]
pub struct LinkBody {
    pub link: String,
    pub expires_at: UnixTime,
}

/// `POST /admin/v1/invites`; an empty body takes the defaults.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Deserialize, Default)]
pub struct CreateInvite {
    /// Seconds the code works: 60 to 7 776 000 (90 days) [default: 7 days].
    #[serde(default)]
    pub expires_in: Option<i64>,
    /// Roles the invited account starts with.
    #[serde(default)]
    pub roles: Option<Vec<String>>,
}

/// A new invite code: give it to the invited person, who signs up with it
/// as `invite`. Single use.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Serialize)]
pub struct InviteBody {
    pub code: String,
    pub expires_at: UnixTime,
    pub roles: Vec<String>,
}
