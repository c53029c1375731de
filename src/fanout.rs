//! The fan-out: the one way from "something happened" to the connections that hear it.
//!
//! Writers (the group-commit writer, dispatch, the REST handlers, a connection coming or
//! going) call [`Fanout::announce`], which delivers a [`Notice`] to this node's own
//! connections and publishes it to the peers. A peer's notice arrives from the cluster over a
//! channel ([`Fanout::hear`]) and enters the same [`Fanout::deliver_here`], so a notice reaches
//! a connection the same way whichever node it started on.
//!
//! [`deliver_here`](Fanout::deliver_here) is also the one place that works out who is in a
//! conversation ([`participants`], [`participates`]) and the one place each notice's frame is
//! built, once per notice whatever the number of connections.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::cluster::{Cluster, Heard};
use crate::frame::ServerFrame;
use crate::hub::{CloseReason, ConnId, Hub, Outgoing};
use crate::ids::{CommunityId, ConversationId, UserId};
use crate::store::{Store, StoreError};

pub use crate::notice::{Body, Notice};

/// Peers' notices taken from the cluster's channel at once, at most.
const HEAR_BATCH: usize = 256;

/// What the caller already knows about who hears a notice here.
#[derive(Debug, Default)]
pub struct Scope {
    /// The connection that caused the notice and has its answer already (the ack of its own
    /// send, its own read): it hears nothing more.
    pub except: Option<ConnId>,
    /// The conversation's participants, when the caller has just read them (saves a query).
    pub participants: Option<Vec<UserId>>,
}

/// Delivery to this node's connections, and publishing to the peers.
pub struct Fanout {
    hub: Arc<Hub>,
    store: Store,
    cluster: Option<Cluster>,
}

/// Everyone in `conversation`: the two people of a private one, the owner of a system inbox,
/// the members of a group.
pub async fn participants(
    store: &Store,
    conversation: ConversationId,
) -> Result<Vec<UserId>, StoreError> {
    Ok(match conversation {
        ConversationId::Private(a, b) => vec![a, b],
        ConversationId::System(u) => vec![u],
        ConversationId::Group(c) => store.member_ids(c).await?,
    })
}

/// Whether `user` takes part in `conversation` now (one row, not the member list).
pub async fn participates(
    store: &Store,
    user: UserId,
    conversation: ConversationId,
) -> Result<bool, StoreError> {
    match conversation {
        ConversationId::Group(c) => store.is_member(c, user).await,
        other => Ok(other.names_user(user)),
    }
}

impl Fanout {
    /// The fan-out over `hub`, publishing to `cluster` when this node is in one.
    pub fn new(hub: Arc<Hub>, store: Store, cluster: Option<Cluster>) -> Self {
        Self {
            hub,
            store,
            cluster,
        }
    }

    /// Delivers `notice` here, then tells every peer.
    pub async fn announce(&self, notice: Notice, scope: Scope) {
        self.deliver_here(&notice, scope).await;
        self.publish(notice);
    }

    /// Tells every peer only (no-op outside a cluster): for what this node's connections
    /// already heard some other way.
    pub fn publish(&self, notice: Notice) {
        if let Some(cluster) = &self.cluster {
            cluster.publish(notice);
        }
    }

    /// What the cluster's receiver hands up, in the order it heard it; ends when the receiver
    /// stops.
    ///
    /// Items are taken as they queued up (up to [`HEAR_BATCH`] at once), and each group's member
    /// list is read once for the whole batch rather than once per notice. Read per notice, a busy
    /// group made this loop one database round trip per peer message: it fell behind, and a
    /// group's last messages reached this node's members seconds late (the bench's three-node
    /// group scenario counted some as lost after 5 s). A membership notice in the batch drops
    /// that group's list, so what follows it is delivered to the members as they are after it.
    pub async fn hear(self: Arc<Self>, mut heard: mpsc::Receiver<Heard>) {
        let mut items = Vec::with_capacity(HEAR_BATCH);
        while heard.recv_many(&mut items, HEAR_BATCH).await > 0 {
            let mut members: HashMap<CommunityId, Vec<UserId>> = HashMap::new();
            for item in items.drain(..) {
                match item {
                    Heard::Notice(notice) => {
                        let notice = self.current(notice).await;
                        if let Notice::Member { community, .. } = &notice {
                            members.remove(community);
                        }
                        let participants = match notice.conversation() {
                            Some(ConversationId::Group(c)) => self.members(&mut members, c).await,
                            _ => None,
                        };
                        let scope = Scope {
                            except: None,
                            participants,
                        };
                        self.deliver_here(&notice, scope).await;
                    }
                    Heard::Resync => self.hub.resync_all(),
                    Heard::PeerJoined => {
                        // A new peer learns who is connected here.
                        for user in self.hub.users() {
                            self.publish(Notice::Presence {
                                user,
                                here: true,
                                notify: false,
                            });
                        }
                    }
                }
            }
        }
    }

    /// `community`'s members from this batch's lists, read once per batch; `None` when storage
    /// fails (then the fan-out asks again, and on failure catches everyone up from storage).
    async fn members(
        &self,
        lists: &mut HashMap<CommunityId, Vec<UserId>>,
        community: CommunityId,
    ) -> Option<Vec<UserId>> {
        if let Some(list) = lists.get(&community) {
            return Some(list.clone());
        }
        let list = self.store.member_ids(community).await.ok()?;
        lists.insert(community, list.clone());
        Some(list)
    }

    /// A peer's notice may arrive late. For contacts, members and profiles storage holds the
    /// current state, so the notice is brought up to it: a late packet can only repeat the
    /// present, never bring an older state back.
    async fn current(&self, notice: Notice) -> Notice {
        match notice {
            Notice::Contact { a, b, added } => {
                let added = match self.store.contact_ids(a).await {
                    Ok(contacts) => contacts.contains(&b),
                    Err(err) => {
                        tracing::warn!(%err, "cluster: checking a contact; passing the notice on as sent");
                        added
                    }
                };
                Notice::Contact { a, b, added }
            }
            Notice::Profile { user, name, avatar } => {
                let (name, avatar) = match self.store.user(user).await {
                    Ok(u) => (u.name, u.avatar),
                    Err(err) => {
                        tracing::warn!(%err, "cluster: reading a profile; passing the notice on as sent");
                        (name, avatar)
                    }
                };
                Notice::Profile { user, name, avatar }
            }
            Notice::Member {
                community,
                user,
                joined,
            } => {
                let joined = match self.store.is_member(community, user).await {
                    Ok(member) => member,
                    Err(err) => {
                        tracing::warn!(%err, "cluster: checking a membership; passing the notice on as sent");
                        joined
                    }
                };
                Notice::Member {
                    community,
                    user,
                    joined,
                }
            }
            other => other,
        }
    }

    /// Queues `notice` for this node's connections that should hear it: the frame is built
    /// once, and the hub copies a pointer to it into each queue.
    pub async fn deliver_here(&self, notice: &Notice, scope: Scope) {
        let hub = &self.hub;
        match notice {
            Notice::Message {
                conversation,
                seq,
                body,
            } => {
                let (conversation, seq) = (*conversation, *seq);
                let message = match body {
                    Some(body) => body.to_message(conversation, seq),
                    None => match self.store.message_at(conversation, seq).await {
                        Ok(Some(m)) => m,
                        Ok(None) => {
                            // The origin stored it before announcing it: catch up from storage.
                            tracing::warn!(%conversation, seq = seq.0, "referenced message not found; catching up from storage");
                            hub.resync_all();
                            return;
                        }
                        Err(err) => {
                            // Never skip it: every connection catches up from storage (and one
                            // that cannot is closed, so its client reconnects and syncs).
                            tracing::error!(%err, "loading a referenced message; catching up from storage");
                            hub.resync_all();
                            return;
                        }
                    },
                };
                let Some(audience) = self.audience(conversation, scope.participants).await else {
                    hub.resync_all();
                    return;
                };
                let out = Outgoing::Message {
                    conversation,
                    seq,
                    text: ServerFrame::stored(&message).to_text().into(),
                };
                hub.send_to_users(audience, &out, scope.except);
            }
            Notice::Read {
                conversation,
                user,
                seq,
            } => {
                let audience = self
                    .audience(*conversation, scope.participants)
                    .await
                    .unwrap_or_default();
                let frame = ServerFrame::Read {
                    conversation: *conversation,
                    user: *user,
                    seq: *seq,
                };
                hub.send_to_users(audience, &frame.into(), scope.except);
            }
            Notice::Typing {
                from,
                conversation,
                stop,
            } => {
                let audience = self
                    .audience(*conversation, scope.participants)
                    .await
                    .unwrap_or_default();
                let frame = ServerFrame::Typing {
                    from: *from,
                    conversation: *conversation,
                    stop: *stop,
                };
                let others = audience.into_iter().filter(|u| u != from);
                hub.send_to_users(others, &frame.into(), scope.except);
            }
            Notice::Presence { user, here, notify } => {
                if *notify {
                    self.presence_to_contacts(*user, *here).await;
                }
            }
            Notice::Contact { a, b, added } => {
                for (to, other) in [(*a, *b), (*b, *a)] {
                    let frame = ServerFrame::Contact {
                        user: other,
                        added: *added,
                    };
                    hub.send_to_users([to], &frame.into(), scope.except);
                }
            }
            Notice::Member {
                community,
                user,
                joined,
            } => {
                let members = match self.store.member_ids(*community).await {
                    Ok(m) => m,
                    Err(err) => {
                        tracing::warn!(%err, "membership: cannot list members");
                        return;
                    }
                };
                let text: Arc<str> = ServerFrame::Member {
                    community: *community,
                    user: *user,
                    joined: *joined,
                }
                .to_text()
                .into();
                let out = Outgoing::Frame(text.clone());
                // Someone who left is no longer a member but still hears it on their other
                // devices.
                let others = members.into_iter().filter(|m| m != user);
                hub.send_to_users(others, &out, scope.except);
                let own = if *joined {
                    Outgoing::Joined {
                        conversation: ConversationId::Group(*community),
                        text,
                    }
                } else {
                    out
                };
                hub.send_to_users([*user], &own, scope.except);
            }
            Notice::Profile { user, name, avatar } => {
                let audience = self.shows(*user).await;
                let frame = ServerFrame::Profile {
                    user: *user,
                    name: name.clone(),
                    avatar: avatar.clone(),
                };
                hub.send_to_users(audience, &frame.into(), scope.except);
            }
            Notice::SessionRevoked { token_hash } => {
                hub.close_session(token_hash, CloseReason::REVOKED)
            }
            Notice::SessionsRevoked { user, keep } => {
                hub.close_user_except(*user, keep, CloseReason::REVOKED)
            }
            Notice::UserDeleted { user } => hub.close_user(*user, CloseReason::REVOKED),
        }
    }

    /// The participants given, or those storage knows (`None` if storage failed).
    async fn audience(
        &self,
        conversation: ConversationId,
        known: Option<Vec<UserId>>,
    ) -> Option<Vec<UserId>> {
        if let Some(known) = known {
            return Some(known);
        }
        match participants(&self.store, conversation).await {
            Ok(people) => Some(people),
            Err(err) => {
                tracing::error!(%err, %conversation, "fan-out: loading participants");
                None
            }
        }
    }

    /// Tells `user`'s contacts connected here that they came online or went offline.
    async fn presence_to_contacts(&self, user: UserId, online: bool) {
        let contacts = match self.store.contact_ids(user).await {
            Ok(c) => c,
            Err(err) => {
                tracing::warn!(%err, "presence: cannot list contacts");
                return;
            }
        };
        let frame = ServerFrame::Presence { user, online };
        self.hub.send_to_users(contacts, &frame.into(), None);
    }

    /// Whoever shows `user` on their page: their contacts, the members of their groups and
    /// their own devices, once each.
    async fn shows(&self, user: UserId) -> Vec<UserId> {
        let store = &self.store;
        let mut audience = vec![user];
        match store.contact_ids(user).await {
            Ok(contacts) => audience.extend(contacts),
            Err(err) => tracing::warn!(%err, "profile notice: cannot list contacts"),
        }
        match store.community_ids_of(user).await {
            Ok(communities) => {
                for community in communities {
                    match store.member_ids(community).await {
                        Ok(members) => audience.extend(members),
                        Err(err) => tracing::warn!(%err, "profile notice: cannot list members"),
                    }
                }
            }
            Err(err) => tracing::warn!(%err, "profile notice: cannot list groups"),
        }
        audience.sort_unstable_by_key(|u| u.0);
        audience.dedup();
        audience
    }
}
