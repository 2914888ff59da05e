//! The only code that queries the database, one module per resource. Resolvers and REST
//! handlers translate; services decide.

pub mod api_key;
pub mod audit;
pub mod clock;
pub mod delivery;
pub mod event;
pub mod idempotency;
pub mod import;
pub mod invalidate;
pub mod lead;
pub mod page;
pub mod pipeline;
pub mod session;
pub mod source;
pub mod stats;
pub mod tenant;
pub mod user;
pub mod validate;
pub mod webhook;
