//! The `User` type, the `users` query and `createUser`/`updateUser`.

use crate::graphql::time::DateTime;
use async_graphql::{Context, ID, InputObject, Object, Result};
use entity::enums::Role;
use entity::user;

use super::columns::Fields;
use super::guard::Need;
use super::tenant::Tenant;
use super::{app, rc};
use crate::ids::Kind;
use crate::service::{self, user::NewUser, user::UserPatch};

/// A user of the caller's tenant.
pub struct User(pub user::Model);

/// The columns each field of `User` shows (its tenant is always read).
pub const COLUMNS: Fields<user::Column> = {
    use user::Column as C;
    &[
        ("id", &[]),
        ("email", &[C::Email]),
        ("name", &[C::Name]),
        ("role", &[C::Role]),
        ("active", &[C::Active]),
        ("tenant", &[]),
        ("createdAt", &[C::CreatedAt]),
        ("updatedAt", &[C::UpdatedAt]),
    ]
};

#[Object]
impl User {
    /// Opaque ID.
    pub async fn id(&self, ctx: &Context<'_>) -> Result<ID> {
        super::encode(ctx, Kind::User, self.0.id)
    }
    /// Email address (lower-cased).
    async fn email(&self) -> &str {
        &self.0.email
    }
    /// Display name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Role within the tenant.
    async fn role(&self) -> Role {
        self.0.role
    }
    /// Whether the user can log in and their keys work.
    async fn active(&self) -> bool {
        self.0.active
    }
    /// The user's tenant.
    async fn tenant(&self, ctx: &Context<'_>) -> Result<Tenant> {
        Ok(Tenant(
            service::tenant::get(&app(ctx)?.db, self.0.tenant_id).await?,
        ))
    }
    /// Creation time.
    async fn created_at(&self) -> DateTime {
        self.0.created_at.into()
    }
    /// Last change.
    async fn updated_at(&self) -> DateTime {
        self.0.updated_at.into()
    }
}

/// Input of `createUser`.
#[derive(InputObject)]
pub struct CreateUserInput {
    /// Email address, unique across the deployment (case-insensitive).
    pub email: String,
    /// Display name (1 to 100 characters).
    pub name: String,
    /// Role; only owners grant `OWNER`.
    pub role: Role,
    /// Password (8 to 1024 characters).
    pub password: String,
}

/// Input of `updateUser`: omitted fields are left unchanged.
#[derive(InputObject, Default)]
pub struct UpdateUserInput {
    /// New display name.
    pub name: Option<String>,
    /// New role.
    pub role: Option<Role>,
    /// Activate or deactivate (deactivating stops the user's keys at once).
    pub active: Option<bool>,
}

/// User queries.
#[derive(Default)]
pub struct UserQuery;

#[Object]
impl UserQuery {
    /// The users of the caller's tenant.
    #[graphql(guard = "Need::Auth")]
    async fn users(&self, ctx: &Context<'_>) -> Result<Vec<User>> {
        let list = service::user::list(app(ctx)?, rc(ctx)?).await?;
        Ok(list.into_iter().map(User).collect())
    }
}

/// User mutations.
#[derive(Default)]
pub struct UserMutation;

#[Object]
impl UserMutation {
    /// Creates a user (admins and owners, through a session).
    #[graphql(guard = "Need::AdminSession")]
    async fn create_user(&self, ctx: &Context<'_>, input: CreateUserInput) -> Result<User> {
        let new = NewUser {
            email: input.email,
            name: input.name,
            role: input.role,
            password: input.password,
        };
        Ok(User(service::user::create(app(ctx)?, rc(ctx)?, new).await?))
    }

    /// Changes a user's name, role or active flag (admins and owners, through a session;
    /// an admin cannot change an owner).
    #[graphql(guard = "Need::AdminSession")]
    async fn update_user(&self, ctx: &Context<'_>, id: ID, input: UpdateUserInput) -> Result<User> {
        let id = super::decode_arg(ctx, Kind::User, &id)?;
        let patch = UserPatch {
            name: input.name,
            role: input.role,
            active: input.active,
        };
        Ok(User(
            service::user::update(app(ctx)?, rc(ctx)?, id, patch).await?,
        ))
    }
}
