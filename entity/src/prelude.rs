//! Short names for every entity.

pub use crate::api_key::Entity as ApiKey;
pub use crate::audit_log::Entity as AuditLog;
pub use crate::lead::Entity as Lead;
pub use crate::lead_tag::Entity as LeadTag;
pub use crate::pipeline::Entity as Pipeline;
pub use crate::refresh_token::Entity as RefreshToken;
pub use crate::setting::Entity as Setting;
pub use crate::source::Entity as Source;
pub use crate::stage::Entity as Stage;
pub use crate::tenant::Entity as Tenant;
pub use crate::user::Entity as User;
