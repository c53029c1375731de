//! The state one node shares between its HTTP handlers and background tasks.

use crate::config::Settings;
use crate::metrics::Metrics;
use crate::presence::Presence;
use crate::store::Store;
use crate::upload::Uploads;

/// Everything a handler may need, behind one `Arc`.
pub struct App {
    pub settings: Settings,
    pub store: Store,
    pub presence: Presence,
    pub uploads: Uploads,
    pub metrics: Metrics,
}
