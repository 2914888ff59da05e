//! SeaORM entities for leadgraph's tables, one module per table.

pub mod api_key;
pub mod audit_log;
pub mod enums;
pub mod event;
pub mod event_stream;
pub mod idempotency_key;
pub mod import_job;
pub mod import_row;
pub mod lead;
pub mod lead_tag;
pub mod pipeline;
pub mod prelude;
pub mod refresh_token;
pub mod setting;
pub mod source;
pub mod stage;
pub mod tenant;
pub mod user;
pub mod webhook_attempt;
pub mod webhook_delivery;
pub mod webhook_endpoint;
