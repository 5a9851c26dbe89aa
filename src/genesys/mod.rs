//! Everything that speaks to Genesys Cloud, and nothing else does: regions, OAuth tokens, the
//! retry driver, the client-side rate limiter, typed API calls and the verified flow listing.

pub mod architect;
pub mod auth;
pub mod client;
pub mod export_jobs;
pub mod flow;
pub mod flow_id;
pub mod flows;
pub mod objects;
pub mod org;
pub mod pages;
pub mod ratelimit;
pub mod region;
pub mod retry;
pub mod write;

pub use auth::{AuthError, TokenProvider};
pub use client::{ApiError, ClientConfig, FlowPage, GenesysClient};
pub use flow::FlowSummary;
pub use flow_id::{FlowId, IdSet};
pub use flows::{FlowLister, ListError, ListOptions, Listed, ListingReport, PassRecord};
pub use org::Organization;
pub use ratelimit::RateLimiter;
pub use region::Region;
pub use retry::{Retrier, RetryConfig};
