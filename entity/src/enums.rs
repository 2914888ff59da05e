//! The closed sets of values stored as strings: lower-case in the database and REST,
//! upper-case in GraphQL.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $value:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum,
            Serialize, Deserialize, async_graphql::Enum,
        )]
        #[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
        #[serde(rename_all = "lowercase")]
        pub enum $name {
            $(
                #[doc = $value]
                #[sea_orm(string_value = $value)]
                $variant,
            )+
        }

        impl $name {
            /// The lower-case name used in the database and in REST.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $value,)+
                }
            }

            /// Parses the lower-case name used in REST.
            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($value => Some(Self::$variant),)+
                    _ => None,
                }
            }

            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant,)+];

            /// Every lower-case name, in declaration order (REST's and OpenAPI's enum lists).
            pub const NAMES: &'static [&'static str] = &[$($value,)+];
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(
    /// The data partition a request acts on; live and sandbox never see each other's rows.
    Environment { Live = "live", Sandbox = "sandbox" }
);
string_enum!(
    /// What an API key may do.
    Scope { Read = "read", Full = "full" }
);
string_enum!(
    /// A tenant's billing plan, which sets its rate limit and whether its keys may write.
    Plan { Free = "free", Starter = "starter", Pro = "pro", Team = "team", Enterprise = "enterprise" }
);
string_enum!(
    /// A user's role within its tenant.
    Role { Owner = "owner", Admin = "admin", Member = "member" }
);
string_enum!(
    /// The channel a lead or source came through.
    Channel { Web = "web", Referral = "referral", Api = "api", Import = "import", Manual = "manual" }
);
string_enum!(
    /// Where a lead stands in qualification.
    LeadStatus { New = "new", Contacted = "contacted", Qualified = "qualified", Unqualified = "unqualified" }
);

impl Role {
    /// Owners and admins manage users, all keys and read the audit log.
    pub fn is_admin(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }
}

impl Plan {
    /// Keys of tenants on the free and starter plans are read-only.
    pub fn allows_key_writes(self) -> bool {
        !matches!(self, Plan::Free | Plan::Starter)
    }
}

string_enum!(
    /// What happened to a resource: the type of an event of the change feed.
    EventType {
        LeadCreated = "lead.created",
        LeadUpdated = "lead.updated",
        LeadDeleted = "lead.deleted",
        LeadAssigned = "lead.assigned",
        LeadStageChanged = "lead.stage_changed",
        LeadTagsChanged = "lead.tags_changed",
        LeadMerged = "lead.merged",
        LeadDuplicateDetected = "lead.duplicate_detected",
        ImportCompleted = "import.completed",
    }
);

string_enum!(
    /// Where a webhook delivery stands.
    DeliveryStatus { Pending = "pending", Succeeded = "succeeded", Failed = "failed" }
);
string_enum!(
    /// Where an import job stands.
    ImportStatus { Queued = "queued", Running = "running", Completed = "completed", Failed = "failed", Cancelled = "cancelled" }
);
string_enum!(
    /// What an import does with a row whose email a lead already has.
    OnDuplicate { Skip = "skip", Update = "update", Create = "create" }
);
string_enum!(
    /// The format of an import file.
    ImportFormat { Csv = "csv", Ndjson = "ndjson" }
);
