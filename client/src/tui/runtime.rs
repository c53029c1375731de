//! Performs the model's [`Effect`]s against the server and turns answers and chat events into
//! [`Event`]s. Each call runs in its own task, so the UI never waits on the network.

use std::collections::HashMap;
use std::future::Future;

use tokio::sync::mpsc;

use super::config::{Saved, SessionStore};
use super::model::{Effect, Event, Model, Peer};
use crate::chat::{Chat, ChatEvent, ChatOptions};
use crate::error::ClientError;
use crate::rest::Api;
use crate::types::*;

enum Internal {
    Ui(Event),
    /// A log-in worked: keep the token, start the chat.
    Session {
        token: String,
        user: User,
        remembered: bool,
    },
}

/// The side of the UI that talks to the server.
pub struct Runtime {
    api: Api,
    chat: Option<Chat>,
    tx: mpsc::UnboundedSender<Internal>,
    rx: mpsc::UnboundedReceiver<Internal>,
    store: Option<SessionStore>,
    options: ChatOptions,
}

/// Sends UI events (keys) into a [`Runtime`] from another thread.
#[derive(Clone)]
pub struct EventSender(mpsc::UnboundedSender<Internal>);

impl EventSender {
    /// False once the runtime is gone.
    pub fn send(&self, e: Event) -> bool {
        self.0.send(Internal::Ui(e)).is_ok()
    }
}

fn failed(what: &str, e: ClientError) -> Event {
    Event::Failed {
        what: what.to_owned(),
        auth: e.is_auth(),
        error: e.to_string(),
    }
}

impl Runtime {
    /// A runtime for the server of `api`; `store` remembers sessions (none: never).
    pub fn new(api: Api, store: Option<SessionStore>, options: ChatOptions) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            api,
            chat: None,
            tx,
            rx,
            store,
            options,
        }
    }

    fn server(&self) -> String {
        self.api.base().as_str().trim_end_matches('/').to_owned()
    }

    /// A handle for feeding keys from the input thread.
    pub fn sender(&self) -> EventSender {
        EventSender(self.tx.clone())
    }

    /// Tries the remembered session for this server; true if there was one to try.
    pub fn restore(&mut self) -> bool {
        let Some(saved) = self.store.as_ref().and_then(|s| s.load(&self.server())) else {
            return false;
        };
        let api = self.api.clone().with_token(saved.token.clone());
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let msg = match api.me().await {
                Ok(user) => Internal::Session {
                    token: saved.token,
                    user,
                    remembered: true,
                },
                Err(e) => Internal::Ui(failed("The remembered session", e)),
            };
            let _ = tx.send(msg);
        });
        true
    }

    /// The next event for the model: a call's answer or a chat event.
    pub async fn next(&mut self) -> Event {
        loop {
            let chat = async {
                match self.chat.as_mut() {
                    Some(c) => c.next_event().await,
                    None => std::future::pending().await,
                }
            };
            let internal = tokio::select! {
                i = self.rx.recv() => i,
                e = chat => match e {
                    Some(e) => return Event::Chat(e),
                    None => { self.chat = None; continue }
                },
            };
            // `self.tx` lives as long as `self`, so the channel never closes.
            let Some(i) = internal else { continue };
            match i {
                Internal::Ui(e) => return e,
                Internal::Session {
                    token,
                    user,
                    remembered,
                } => {
                    self.api = self.api.clone().with_token(token.clone());
                    if let Some(store) = &self.store {
                        let saved = Saved {
                            token,
                            name: user.name.clone(),
                        };
                        if let Err(e) = store.save(&self.server(), saved) {
                            tracing::warn!(%e, "cannot remember the session");
                        }
                    }
                    self.chat = Some(Chat::start(
                        self.api.clone(),
                        HashMap::new(),
                        self.options.clone(),
                    ));
                    return Event::LoggedIn { user, remembered };
                }
            }
        }
    }

    /// Feeds one event to the model and performs what it asks for.
    pub fn apply(&mut self, model: &mut Model, event: Event) {
        for effect in model.update(event) {
            self.perform(effect);
        }
    }

    fn spawn<F>(&self, f: F)
    where
        F: Future<Output = Event> + Send + 'static,
    {
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let _ = tx.send(Internal::Ui(f.await));
        });
    }

    fn end(&mut self) {
        if let Some(c) = self.chat.take() {
            c.close();
        }
        if let Some(store) = &self.store {
            let _ = store.forget(&self.server());
        }
        self.api = Api::new(self.api.base().as_str()).unwrap_or_else(|_| self.api.clone());
    }

    /// Performs one effect (in the background when it calls the server).
    pub fn perform(&mut self, effect: Effect) {
        let api = self.api.clone();
        match effect {
            Effect::Login { name, password } => {
                let tx = self.tx.clone();
                tokio::spawn(async move {
                    let mut api = api;
                    let msg = match api.login(&name, &password).await {
                        Ok(s) => Internal::Session {
                            token: s.token,
                            user: s.user,
                            remembered: false,
                        },
                        Err(e) => Internal::Ui(failed("Log-in failed", e)),
                    };
                    let _ = tx.send(msg);
                });
            }
            Effect::Register { name, password } => self.spawn(async move {
                let reg = Registration {
                    name,
                    password,
                    ..Default::default()
                };
                match api.register(&reg).await {
                    Ok(u) => Event::Registered(u),
                    Err(e) => failed("Registration failed", e),
                }
            }),
            Effect::Load => self.spawn(async move {
                match tokio::try_join!(api.contacts(), api.communities()) {
                    Ok((contacts, communities)) => Event::Loaded {
                        contacts,
                        communities,
                    },
                    Err(e) => failed("Loading contacts and groups", e),
                }
            }),
            Effect::History { conversation, page } => self.spawn(async move {
                match api.history(conversation, page, super::model::PAGE).await {
                    Ok(messages) => Event::History {
                        conversation,
                        page,
                        messages,
                    },
                    Err(e) => failed("Loading history", e),
                }
            }),
            Effect::Reads(conversation) => self.spawn(async move {
                match api.reads(conversation).await {
                    Ok(cursors) => Event::Reads {
                        conversation,
                        cursors,
                    },
                    Err(e) => failed("Loading read marks", e),
                }
            }),
            Effect::Send(frame) => match &self.chat {
                Some(c) => c.send(frame),
                None => {
                    let _ = self.tx.send(Internal::Ui(Event::Chat(ChatEvent::Rejected {
                        id: frame.send_id().map(str::to_owned),
                        code: "not_connected".into(),
                        message: "no chat session".into(),
                    })));
                }
            },
            Effect::Read { conversation, seq } => {
                if let Some(c) = &self.chat {
                    c.read(conversation, seq);
                }
            }
            Effect::Typing(peer) => match (&self.chat, peer) {
                (Some(c), Peer::User(u)) => c.typing_to(u),
                (Some(c), Peer::Group(g)) => c.typing_in(g),
                _ => {}
            },
            Effect::Join(what) => self.spawn(async move {
                let id = match what.parse::<CommunityId>() {
                    Ok(id) => id,
                    Err(_) => match api.search_communities(&what).await {
                        Err(e) => return failed("Searching groups", e),
                        Ok(found) => {
                            let exact: Vec<CommunityId> = found
                                .iter()
                                .filter(|c| c.name == what)
                                .map(|c| c.id)
                                .collect();
                            let all: Vec<CommunityId> = found.iter().map(|c| c.id).collect();
                            match (exact.as_slice(), all.as_slice()) {
                                ([one], _) | ([], [one]) => *one,
                                (_, []) => {
                                    return Event::Failed {
                                        what: "Join".into(),
                                        error: format!("no group is called {what:?}"),
                                        auth: false,
                                    }
                                }
                                _ => {
                                    let names: Vec<String> = found
                                        .iter()
                                        .take(5)
                                        .map(|c| format!("{} (id {})", c.name, c.id))
                                        .collect();
                                    return Event::Failed {
                                        what: "Join".into(),
                                        error: format!(
                                            "several groups match: {}; type the id",
                                            names.join(", ")
                                        ),
                                        auth: false,
                                    };
                                }
                            }
                        }
                    },
                };
                match api.join_community(id).await {
                    Ok(c) => Event::Joined(c),
                    Err(e) => failed("Join", e),
                }
            }),
            Effect::NewGroup(name) => self.spawn(async move {
                let c = NewCommunity {
                    name,
                    ..Default::default()
                };
                match api.create_community(&c).await {
                    Ok(c) => Event::Joined(c),
                    Err(e) => failed("Creating the group", e),
                }
            }),
            Effect::Leave(id) => self.spawn(async move {
                match api.leave_community(id).await {
                    Ok(()) => Event::Left(id),
                    Err(e) => failed("Leaving the group", e),
                }
            }),
            Effect::AddContact(name) => self.spawn(async move {
                let found = match api.search_users(&name).await {
                    Ok(f) => f,
                    Err(e) => return failed("Searching users", e),
                };
                let Some(u) = found.into_iter().find(|u| u.name == name) else {
                    return Event::Failed {
                        what: "Add contact".into(),
                        error: format!("nobody is called {name:?}"),
                        auth: false,
                    };
                };
                match api.add_contact(u.id).await {
                    Ok(u) => Event::ContactAdded(u),
                    Err(e) => failed("Add contact", e),
                }
            }),
            Effect::LookupUser(id) => self.spawn(async move {
                match api.user(id).await {
                    Ok(u) => Event::UserInfo(u),
                    Err(e) => failed("Looking up a user", e),
                }
            }),
            Effect::ReconnectNow => {
                if let Some(c) = &self.chat {
                    c.reconnect_now();
                }
            }
            Effect::Logout => {
                self.end();
                let tx = self.tx.clone();
                tokio::spawn(async move {
                    let mut api = api;
                    let _ = api.logout().await;
                    let _ = tx.send(Internal::Ui(Event::Chat(ChatEvent::SessionEnded(
                        "you logged out".into(),
                    ))));
                });
            }
            Effect::EndSession => self.end(),
            Effect::Quit => {
                if let Some(c) = self.chat.take() {
                    c.close();
                }
            }
        }
    }
}
