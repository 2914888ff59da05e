//! The only code that queries the database, one module per resource. Resolvers and REST
//! handlers translate; services decide.

pub mod api_key;
pub mod audit;
pub mod delivery;
pub mod duplicates;
pub mod event;
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
