//! The state one node shares between its HTTP handlers, websocket connections and background
//! tasks, and the fan-out steps that need several parts of it.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::HashGate;
use crate::cluster::{Cluster, Event};
use crate::commit::Committer;
use crate::config::Settings;
use crate::frame::ServerFrame;
use crate::hub::{Hub, NodeId, Outgoing};
use crate::ids::{CommunityId, ConversationId, UserId};
use crate::metrics::Metrics;
use crate::presence::Presence;
use crate::store::{Store, StoredMessage};
use crate::throttle::LoginThrottle;
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
    /// Turns at password hashing (bounded work and memory).
    pub hash_gate: HashGate,
    /// Failed log-ins by account and address.
    pub login_throttle: LoginThrottle,
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

    /// Two users became (or stopped being) contacts: both hear it on every device, here and,
    /// through the cluster, on every node.
    pub fn contact_changed(&self, a: UserId, b: UserId, added: bool) {
        self.notify_contact_local(a, b, added);
        self.publish(Event::Contact { a, b, added });
    }

    /// The local half of [`App::contact_changed`].
    pub fn notify_contact_local(&self, a: UserId, b: UserId, added: bool) {
        for (to, other) in [(a, b), (b, a)] {
            let frame = ServerFrame::Contact { user: other, added };
            self.hub
                .send_to_users([to], &Outgoing::Frame(frame.to_text().into()), None);
        }
    }

    /// `user` joined or left `community`: its members (and the user's own devices) hear it,
    /// here and on every node.
    pub async fn membership_changed(&self, community: CommunityId, user: UserId, joined: bool) {
        self.notify_member_local(community, user, joined).await;
        self.publish(Event::Member {
            community,
            user,
            joined,
        });
    }

    /// The local half of [`App::membership_changed`].
    pub async fn notify_member_local(&self, community: CommunityId, user: UserId, joined: bool) {
        let members = match self.store.member_ids(community).await {
            Ok(m) => m,
            Err(err) => {
                tracing::warn!(%err, "membership: cannot list members");
                return;
            }
        };
        let frame = ServerFrame::Member {
            community,
            user,
            joined,
        };
        let text: Arc<str> = frame.to_text().into();
        let out = Outgoing::Frame(text.clone());
        // Someone who left is no longer a member but still hears it on their other devices.
        let audience = members.into_iter().filter(|m| *m != user);
        self.hub.send_to_users(audience, &out, None);
        let own = if joined {
            Outgoing::Joined {
                conversation: ConversationId::Group(community),
                text,
            }
        } else {
            out
        };
        self.hub.send_to_users([user], &own, None);
    }

    /// `user` changed their name or avatar: whoever shows them hears it, here and on every node.
    pub async fn profile_changed(&self, user: UserId, name: String, avatar: Option<String>) {
        self.notify_profile_local(user, name.clone(), avatar.clone())
            .await;
        self.publish(Event::Profile { user, name, avatar });
    }

    /// The local half of [`App::profile_changed`]: their contacts, the members of their groups
    /// and their own devices, once each.
    pub async fn notify_profile_local(&self, user: UserId, name: String, avatar: Option<String>) {
        let mut audience = vec![user];
        match self.store.contact_ids(user).await {
            Ok(contacts) => audience.extend(contacts),
            Err(err) => tracing::warn!(%err, "profile notice: cannot list contacts"),
        }
        match self.store.community_ids_of(user).await {
            Ok(communities) => {
                for community in communities {
                    match self.store.member_ids(community).await {
                        Ok(members) => audience.extend(members),
                        Err(err) => tracing::warn!(%err, "profile notice: cannot list members"),
                    }
                }
            }
            Err(err) => tracing::warn!(%err, "profile notice: cannot list groups"),
        }
        audience.sort_unstable_by_key(|u| u.0);
        audience.dedup();
        let frame = ServerFrame::Profile { user, name, avatar };
        self.hub
            .send_to_users(audience, &Outgoing::Frame(frame.to_text().into()), None);
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
