//! Everything that speaks to Genesys Cloud, and nothing else does: regions, OAuth tokens, the
//! retry policy, the client-side rate limiter, and typed API calls.

pub mod auth;
pub mod client;
pub mod flow;
pub mod ratelimit;
pub mod region;
pub mod retry;

pub use auth::{AuthError, TokenProvider};
pub use client::{ApiError, ClientConfig, FlowPage, GenesysClient};
pub use flow::FlowSummary;
pub use ratelimit::RateLimiter;
pub use region::Region;
pub use retry::RetryConfig;
