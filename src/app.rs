//! The state one node shares between its HTTP handlers, websocket connections and background
//! tasks, and the fan-out steps that need several parts of it.

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cluster::{Cluster, Event};
use crate::commit::Committer;
use crate::config::Settings;
use crate::frame::ServerFrame;
use crate::hub::{Hub, NodeId, Outgoing};
use crate::ids::UserId;
use crate::metrics::Metrics;
use crate::presence::Presence;
use crate::store::{Store, StoredMessage};
use crate::upload::Uploads;

/// Everything a handler may need, behind one `Arc`.
pub struct App {
    pub settings: Settings,
    pub store: Store,
    pub presence: Presence,
    pub uploads: Uploads,
    pub metrics: Metrics,
    pub hub: Hub,
    pub committer: Committer,
    /// Cancelled when the node begins to shut down: connections stop reading.
    pub stopping: CancellationToken,
    /// One token per open websocket connection, so shutdown can wait for them.
    pub connections: TaskTracker,
    /// Peers sharing the database, when this node is in a cluster.
    pub cluster: Option<Cluster>,
}

impl App {
    /// Queues a stored message for the local Nodes of `recipients`, except the sending Node
    /// (which gets the ack instead).
    pub fn deliver_local(
        &self,
        message: &StoredMessage,
        recipients: &[UserId],
        except: Option<NodeId>,
    ) {
        let out = Outgoing::Message {
            conversation: message.conversation,
            seq: message.seq,
            text: ServerFrame::stored(message).to_text().into(),
        };
        self.hub
            .send_to_users(recipients.iter().copied(), &out, except);
    }

    /// Tells every peer (no-op outside a cluster).
    pub fn publish(&self, event: Event) {
        if let Some(cluster) = &self.cluster {
            cluster.publish(event);
        }
    }

    /// Tells `user`'s contacts connected here that they came online or went offline.
    pub async fn announce_presence_local(&self, user: UserId, online: bool) {
        let contacts = match self.store.contact_ids(user).await {
            Ok(c) => c,
            Err(err) => {
                tracing::warn!(%err, "presence: cannot list contacts");
                return;
            }
        };
        let out = Outgoing::Frame(ServerFrame::Presence { user, online }.to_text().into());
        self.hub.send_to_users(contacts, &out, None);
    }
}
