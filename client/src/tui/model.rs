//! The terminal UI's state as a pure model: [`Model::update`] takes an [`Event`] (a key, a
//! server answer, a chat event, a clock tick) and returns the [`Effect`]s to perform (calls to
//! the server). Nothing here does I/O, so tests drive it directly and the drawing
//! ([`super::view`]) only reads it.

use std::collections::{BTreeMap, HashMap};

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::chat::ChatEvent;
use crate::types::*;

/// How many messages one history page asks for.
pub const PAGE: u32 = 50;
/// `typing` is sent at most this often (ms), and shown this long after the last one.
pub const TYPING_EVERY_MS: i64 = 2_000;
const TYPING_SHOWN_MS: i64 = 4_000;

/// Which screen is showing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Screen {
    /// The seed's menu: log in, register, quit.
    Menu,
    /// The log-in or register form.
    Form(Form),
    /// Signed in: conversations, chat, composer.
    Main,
}

/// What a form does on submit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormKind {
    Login,
    Register,
}

/// The name and password form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Form {
    pub kind: FormKind,
    pub name: String,
    pub password: String,
    /// 0 = name, 1 = password.
    pub field: usize,
    /// A submit is under way.
    pub busy: bool,
}

/// The one-line prompt at the bottom of the main screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptKind {
    /// Join a community by id or name.
    JoinGroup,
    /// Create a community with this name.
    NewGroup,
    /// Add a contact by name.
    AddContact,
}

/// Where keys go on the main screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    List,
    Composer,
}

/// The state of the websocket as the user should know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    Offline,
    Connecting,
    Online,
    /// Down; the next try is in `retry_in_ms`.
    Reconnecting {
        reason: String,
        retry_in_ms: u64,
    },
}

/// A line for the user: an answer or an error, shown until the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    Info(String),
    Error(String),
}

/// Who or what a conversation is with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    User(UserId),
    Group(CommunityId),
    System,
}

/// One row of the conversation list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub conversation: ConversationId,
    pub peer: Peer,
    pub title: String,
    pub online: bool,
    pub unread: usize,
}

/// What is loaded of one conversation, keyed by seq so nothing shows twice.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Thread {
    pub messages: BTreeMap<Seq, ChatMessage>,
    /// The latest page was asked for.
    pub requested: bool,
    /// No older messages exist.
    pub complete: bool,
    /// A page is on its way.
    pub loading: bool,
}

/// A send not acked yet (or refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub id: String,
    pub conversation: ConversationId,
    pub content: String,
    /// The server's refusal, when it refused.
    pub failed: Option<String>,
}

/// Input to the model.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Key(KeyEvent),
    /// The clock, epoch ms (typing indicators expire).
    Tick(i64),
    /// A log-in (or a remembered session) worked.
    LoggedIn {
        user: User,
        remembered: bool,
    },
    Registered(User),
    /// A call failed: what was tried, and the error as the user should read it.
    Failed {
        what: String,
        error: String,
        auth: bool,
    },
    /// Contacts and communities, fresh.
    Loaded {
        contacts: Vec<User>,
        communities: Vec<Community>,
    },
    History {
        conversation: ConversationId,
        page: Page,
        messages: Vec<ChatMessage>,
    },
    Reads {
        conversation: ConversationId,
        cursors: Vec<ReadCursor>,
    },
    Joined(Community),
    Left(CommunityId),
    ContactAdded(User),
    UserInfo(User),
    Chat(ChatEvent),
}

/// What the model asks the runtime to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Login {
        name: String,
        password: String,
    },
    Register {
        name: String,
        password: String,
    },
    /// Fetch contacts and communities.
    Load,
    History {
        conversation: ConversationId,
        page: Page,
    },
    Reads(ConversationId),
    /// Send a message (id chosen by the model, so the pending line can be matched).
    Send(ClientFrame),
    Read {
        conversation: ConversationId,
        seq: Seq,
    },
    Typing(Peer),
    Join(String),
    Leave(CommunityId),
    NewGroup(String),
    AddContact(String),
    LookupUser(UserId),
    ReconnectNow,
    Logout,
    /// Stop the session's websocket and forget the remembered session (back at the menu).
    EndSession,
    Quit,
}

/// The whole UI state.
#[derive(Debug, Clone)]
pub struct Model {
    pub server: String,
    pub screen: Screen,
    pub menu_index: usize,
    pub me: Option<User>,
    pub names: HashMap<UserId, String>,
    pub entries: Vec<Entry>,
    pub selected: usize,
    pub focus: Focus,
    pub threads: HashMap<ConversationId, Thread>,
    pub outgoing: Vec<Outgoing>,
    pub typing: HashMap<ConversationId, (UserId, i64)>,
    pub reads: HashMap<ConversationId, HashMap<UserId, Seq>>,
    pub composer: String,
    pub prompt: Option<(PromptKind, String)>,
    pub notice: Option<Notice>,
    pub link: Link,
    pub help: bool,
    /// Lines scrolled back from the newest.
    pub scroll: usize,
    pub quit: bool,
    now_ms: i64,
    last_typing_ms: i64,
    sent_read: HashMap<ConversationId, Seq>,
    next_id: u64,
}

/// The menu's items, in the seed's order.
pub const MENU: [&str; 3] = ["Log in", "Register", "Quit"];

impl Model {
    /// A model at the menu for `server`.
    pub fn new(server: impl Into<String>) -> Self {
        Self {
            server: server.into(),
            screen: Screen::Menu,
            menu_index: 0,
            me: None,
            names: HashMap::new(),
            entries: Vec::new(),
            selected: 0,
            focus: Focus::List,
            threads: HashMap::new(),
            outgoing: Vec::new(),
            typing: HashMap::new(),
            reads: HashMap::new(),
            composer: String::new(),
            prompt: None,
            notice: None,
            link: Link::Offline,
            help: false,
            scroll: 0,
            quit: false,
            now_ms: 0,
            last_typing_ms: i64::MIN / 2,
            sent_read: HashMap::new(),
            next_id: 0,
        }
    }

    /// The selected conversation's row.
    pub fn current(&self) -> Option<&Entry> {
        self.entries.get(self.selected)
    }

    /// The display name of a user.
    pub fn name_of(&self, user: UserId) -> String {
        if self.me.as_ref().is_some_and(|m| m.id == user) {
            return "me".into();
        }
        self.names
            .get(&user)
            .cloned()
            .unwrap_or_else(|| format!("user {user}"))
    }

    /// Who is typing in `conversation` now, if anyone.
    pub fn typing_in(&self, conversation: ConversationId) -> Option<UserId> {
        self.typing
            .get(&conversation)
            .filter(|(_, until)| *until > self.now_ms)
            .map(|(u, _)| *u)
    }

    /// Applies one event; returns what to do about it.
    pub fn update(&mut self, event: Event) -> Vec<Effect> {
        match event {
            Event::Key(k) => self.key(k),
            Event::Tick(now) => {
                self.now_ms = now;
                vec![]
            }
            Event::LoggedIn { user, remembered } => {
                self.notice = Some(Notice::Info(if remembered {
                    format!("Welcome back, {}.", user.name)
                } else {
                    format!("Logged in as {}.", user.name)
                }));
                self.names.insert(user.id, user.name.clone());
                self.me = Some(user);
                self.screen = Screen::Main;
                self.focus = Focus::List;
                self.link = Link::Connecting;
                vec![Effect::Load]
            }
            Event::Registered(user) => {
                // Log straight in with what was just typed.
                let password = match &self.screen {
                    Screen::Form(f) => f.password.clone(),
                    _ => String::new(),
                };
                self.notice = Some(Notice::Info(format!("Registered {}.", user.name)));
                vec![Effect::Login {
                    name: user.name,
                    password,
                }]
            }
            Event::Failed { what, error, auth } => {
                if let Screen::Form(f) = &mut self.screen {
                    f.busy = false;
                }
                self.notice = Some(Notice::Error(format!("{what}: {error}")));
                if auth && self.screen == Screen::Main {
                    return self.end_session("Your session has ended; log in again.");
                }
                vec![]
            }
            Event::Loaded {
                contacts,
                communities,
            } => self.loaded(contacts, communities),
            Event::History {
                conversation,
                page,
                messages,
            } => {
                let thread = self.threads.entry(conversation).or_default();
                thread.loading = false;
                if !matches!(page, Page::After(_)) && (messages.len() as u32) < PAGE {
                    thread.complete = true;
                }
                for m in messages {
                    thread.messages.insert(m.seq, m);
                }
                self.mark_read()
            }
            Event::Reads {
                conversation,
                cursors,
            } => {
                let r = self.reads.entry(conversation).or_default();
                for c in cursors {
                    let e = r.entry(c.user).or_insert(c.seq);
                    *e = (*e).max(c.seq);
                }
                vec![]
            }
            Event::Joined(c) => {
                self.notice = Some(Notice::Info(format!("Joined {}.", c.name)));
                let conversation = ConversationId::Group(c.id);
                self.add_group(&c);
                if let Some(i) = self
                    .entries
                    .iter()
                    .position(|e| e.conversation == conversation)
                {
                    self.select(i)
                } else {
                    vec![]
                }
            }
            Event::Left(id) => {
                self.notice = Some(Notice::Info("Left the group.".into()));
                self.remove(ConversationId::Group(id));
                self.select(self.selected.min(self.entries.len().saturating_sub(1)))
            }
            Event::ContactAdded(u) => {
                self.notice = Some(Notice::Info(format!("{} is now a contact.", u.name)));
                self.add_contact(&u);
                vec![]
            }
            Event::UserInfo(u) => {
                self.names.insert(u.id, u.name.clone());
                for e in &mut self.entries {
                    if e.peer == Peer::User(u.id) {
                        e.title = u.name.clone();
                    }
                }
                vec![]
            }
            Event::Chat(c) => self.chat(c),
        }
    }

    fn end_session(&mut self, why: &str) -> Vec<Effect> {
        let server = std::mem::take(&mut self.server);
        let notice = Notice::Error(why.to_owned());
        *self = Model::new(server);
        self.notice = Some(notice);
        vec![Effect::EndSession]
    }

    fn loaded(&mut self, contacts: Vec<User>, communities: Vec<Community>) -> Vec<Effect> {
        let keep = self.current().map(|e| e.conversation);
        // Conversations that are not contacts or groups (a stranger's message, the system
        // inbox) stay.
        self.entries.retain(|e| {
            matches!(e.peer, Peer::System)
                || matches!(e.peer, Peer::User(_))
                    && self
                        .threads
                        .get(&e.conversation)
                        .is_some_and(|t| !t.messages.is_empty())
        });
        for u in &contacts {
            self.add_contact(u);
        }
        for c in &communities {
            self.add_group(c);
        }
        self.sort();
        let i = keep
            .and_then(|k| self.entries.iter().position(|e| e.conversation == k))
            .unwrap_or(0);
        self.select(i)
    }

    fn sort(&mut self) {
        let keep = self.current().map(|e| e.conversation);
        self.entries.sort_by(|a, b| {
            let rank = |e: &Entry| match e.peer {
                Peer::User(_) => 0,
                Peer::Group(_) => 1,
                Peer::System => 2,
            };
            (rank(a), a.title.to_lowercase()).cmp(&(rank(b), b.title.to_lowercase()))
        });
        if let Some(k) = keep {
            if let Some(i) = self.entries.iter().position(|e| e.conversation == k) {
                self.selected = i;
            }
        }
    }

    fn add_contact(&mut self, u: &User) {
        let Some(me) = self.me.as_ref().map(|m| m.id) else {
            return;
        };
        self.names.insert(u.id, u.name.clone());
        let conversation = ConversationId::private(me, u.id);
        if let Some(e) = self
            .entries
            .iter_mut()
            .find(|e| e.conversation == conversation)
        {
            e.title = u.name.clone();
            e.online = u.online;
            return;
        }
        self.entries.push(Entry {
            conversation,
            peer: Peer::User(u.id),
            title: u.name.clone(),
            online: u.online,
            unread: 0,
        });
        self.sort();
    }

    fn add_group(&mut self, c: &Community) {
        let conversation = ConversationId::Group(c.id);
        if let Some(e) = self
            .entries
            .iter_mut()
            .find(|e| e.conversation == conversation)
        {
            e.title = c.name.clone();
            return;
        }
        self.entries.push(Entry {
            conversation,
            peer: Peer::Group(c.id),
            title: c.name.clone(),
            online: false,
            unread: 0,
        });
        self.sort();
    }

    fn remove(&mut self, conversation: ConversationId) {
        let keep = self.current().map(|e| e.conversation);
        self.entries.retain(|e| e.conversation != conversation);
        self.threads.remove(&conversation);
        self.selected = keep
            .and_then(|k| self.entries.iter().position(|e| e.conversation == k))
            .unwrap_or(0);
    }

    /// Selects row `i`: clears its unread count, loads its history and read cursors once.
    fn select(&mut self, i: usize) -> Vec<Effect> {
        if self.entries.is_empty() {
            self.selected = 0;
            return vec![];
        }
        let i = i.min(self.entries.len() - 1);
        if i != self.selected {
            self.scroll = 0;
        }
        self.selected = i;
        let e = &mut self.entries[i];
        e.unread = 0;
        let conversation = e.conversation;
        let thread = self.threads.entry(conversation).or_default();
        let mut out = vec![];
        if !thread.requested {
            thread.requested = true;
            thread.loading = true;
            out.push(Effect::History {
                conversation,
                page: Page::Latest,
            });
            out.push(Effect::Reads(conversation));
        }
        out.extend(self.mark_read());
        out
    }

    /// Sends a read mark for the selected conversation when it has something newer.
    fn mark_read(&mut self) -> Vec<Effect> {
        if self.screen != Screen::Main {
            return vec![];
        }
        let Some(conversation) = self.current().map(|e| e.conversation) else {
            return vec![];
        };
        let Some(&seq) = self
            .threads
            .get(&conversation)
            .and_then(|t| t.messages.keys().next_back())
        else {
            return vec![];
        };
        let sent = self.sent_read.entry(conversation).or_insert(0);
        if seq <= *sent {
            return vec![];
        }
        *sent = seq;
        vec![Effect::Read { conversation, seq }]
    }

    fn chat(&mut self, event: ChatEvent) -> Vec<Effect> {
        let me = self.me.as_ref().map(|m| m.id).unwrap_or_default();
        match event {
            ChatEvent::Connected => {
                self.link = Link::Online;
                vec![]
            }
            ChatEvent::Disconnected { reason, retry_in } => {
                self.link = Link::Reconnecting {
                    reason,
                    retry_in_ms: retry_in.as_millis() as u64,
                };
                vec![]
            }
            ChatEvent::Message(m) => self.incoming(m, me),
            ChatEvent::Acked { id, mut message } => {
                message.from = Some(me);
                self.outgoing.retain(|o| o.id != id);
                self.incoming(message, me)
            }
            ChatEvent::Rejected { id, code, message } => {
                let text = format!("{message} ({code})");
                if let Some(o) = id
                    .as_ref()
                    .and_then(|id| self.outgoing.iter_mut().find(|o| &o.id == id))
                {
                    if code != "unavailable" {
                        o.failed = Some(text.clone());
                    }
                }
                self.notice = Some(Notice::Error(format!("Not sent: {text}")));
                vec![]
            }
            ChatEvent::Presence { user, online } => {
                for e in &mut self.entries {
                    if e.peer == Peer::User(user) {
                        e.online = online;
                    }
                }
                if online {
                    self.notice = Some(Notice::Info(format!("{} is online.", self.name_of(user))));
                }
                vec![]
            }
            ChatEvent::Read {
                conversation,
                user,
                seq,
            } => {
                let e = self
                    .reads
                    .entry(conversation)
                    .or_default()
                    .entry(user)
                    .or_insert(seq);
                *e = (*e).max(seq);
                vec![]
            }
            ChatEvent::Typing { from, conversation } => {
                if from != me {
                    self.typing
                        .insert(conversation, (from, self.now_ms + TYPING_SHOWN_MS));
                }
                vec![]
            }
            ChatEvent::Contact { user, added } => {
                if !added {
                    self.remove(ConversationId::private(me, user));
                }
                vec![Effect::Load]
            }
            ChatEvent::Member {
                community,
                user,
                joined,
            } => {
                if user == me && !joined {
                    self.remove(ConversationId::Group(community));
                    return self.select(self.selected);
                }
                if user == me {
                    return vec![Effect::Load];
                }
                let who = self.name_of(user);
                self.notice = Some(Notice::Info(format!(
                    "{who} {} {}.",
                    if joined { "joined" } else { "left" },
                    self.entries
                        .iter()
                        .find(|e| e.peer == Peer::Group(community))
                        .map(|e| e.title.clone())
                        .unwrap_or_else(|| "a group".into())
                )));
                if !self.names.contains_key(&user) {
                    return vec![Effect::LookupUser(user)];
                }
                vec![]
            }
            ChatEvent::SessionEnded(why) => self.end_session(&format!("Session ended: {why}")),
        }
    }

    /// A stored message arrived (or one's own was acked).
    fn incoming(&mut self, m: ChatMessage, me: UserId) -> Vec<Effect> {
        let conversation = m.conversation;
        let mut out = vec![];
        if !self.entries.iter().any(|e| e.conversation == conversation) {
            let (peer, title) = match conversation {
                ConversationId::Group(c) => (Peer::Group(c), format!("group {c}")),
                ConversationId::System(_) => (Peer::System, "system".to_owned()),
                ConversationId::Private(..) => {
                    let other = conversation.peer(me).unwrap_or_default();
                    if !self.names.contains_key(&other) {
                        out.push(Effect::LookupUser(other));
                    }
                    (Peer::User(other), self.name_of(other))
                }
            };
            self.entries.push(Entry {
                conversation,
                peer,
                title,
                online: false,
                unread: 0,
            });
            self.sort();
        }
        if self
            .typing
            .get(&conversation)
            .is_some_and(|(u, _)| Some(*u) == m.from)
        {
            self.typing.remove(&conversation);
        }
        let thread = self.threads.entry(conversation).or_default();
        let new = thread.messages.insert(m.seq, m.clone()).is_none();
        let selected = self.current().map(|e| e.conversation) == Some(conversation);
        if new && !selected && m.from != Some(me) {
            if let Some(e) = self
                .entries
                .iter_mut()
                .find(|e| e.conversation == conversation)
            {
                e.unread += 1;
            }
        }
        if selected {
            out.extend(self.mark_read());
        }
        out
    }

    fn key(&mut self, k: KeyEvent) -> Vec<Effect> {
        let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && k.code == KeyCode::Char('c') {
            self.quit = true;
            return vec![Effect::Quit];
        }
        if self.help {
            self.help = false;
            return vec![];
        }
        match self.screen.clone() {
            Screen::Menu => self.menu_key(k),
            Screen::Form(f) => self.form_key(f, k),
            Screen::Main => self.main_key(k, ctrl),
        }
    }

    fn menu_key(&mut self, k: KeyEvent) -> Vec<Effect> {
        let choose = match k.code {
            KeyCode::Up | KeyCode::Char('k') => {
                self.menu_index = (self.menu_index + MENU.len() - 1) % MENU.len();
                None
            }
            KeyCode::Down | KeyCode::Char('j') | KeyCode::Tab => {
                self.menu_index = (self.menu_index + 1) % MENU.len();
                None
            }
            KeyCode::Enter => Some(self.menu_index),
            KeyCode::Char('1') | KeyCode::Char('l') => Some(0),
            KeyCode::Char('2') | KeyCode::Char('r') => Some(1),
            KeyCode::Char('3') | KeyCode::Char('q') | KeyCode::Esc => Some(2),
            KeyCode::Char('?') => {
                self.help = true;
                None
            }
            _ => None,
        };
        match choose {
            Some(2) => {
                self.quit = true;
                vec![Effect::Quit]
            }
            Some(i) => {
                self.menu_index = i;
                self.screen = Screen::Form(Form {
                    kind: if i == 0 {
                        FormKind::Login
                    } else {
                        FormKind::Register
                    },
                    name: String::new(),
                    password: String::new(),
                    field: 0,
                    busy: false,
                });
                vec![]
            }
            None => vec![],
        }
    }

    fn form_key(&mut self, mut f: Form, k: KeyEvent) -> Vec<Effect> {
        let mut out = vec![];
        match k.code {
            KeyCode::Esc => {
                self.screen = Screen::Menu;
                return out;
            }
            KeyCode::Tab | KeyCode::Down | KeyCode::Up | KeyCode::BackTab => f.field = 1 - f.field,
            KeyCode::Backspace => {
                if f.field == 0 {
                    f.name.pop();
                } else {
                    f.password.pop();
                }
            }
            KeyCode::Enter if f.field == 0 => f.field = 1,
            KeyCode::Enter if !f.busy => {
                let (name, password) = (f.name.trim().to_owned(), f.password.clone());
                if name.is_empty() || password.is_empty() {
                    self.notice = Some(Notice::Error("Type a name and a password.".into()));
                } else {
                    f.busy = true;
                    self.notice = None;
                    out.push(match f.kind {
                        FormKind::Login => Effect::Login { name, password },
                        FormKind::Register => Effect::Register { name, password },
                    });
                }
            }
            KeyCode::Char(c) => {
                if f.field == 0 {
                    f.name.push(c);
                } else {
                    f.password.push(c);
                }
            }
            _ => {}
        }
        self.screen = Screen::Form(f);
        out
    }

    fn main_key(&mut self, k: KeyEvent, ctrl: bool) -> Vec<Effect> {
        if let Some((kind, mut text)) = self.prompt.take() {
            match k.code {
                KeyCode::Esc => {}
                KeyCode::Enter => {
                    let t = text.trim().to_owned();
                    if t.is_empty() {
                        return vec![];
                    }
                    return vec![match kind {
                        PromptKind::JoinGroup => Effect::Join(t),
                        PromptKind::NewGroup => Effect::NewGroup(t),
                        PromptKind::AddContact => Effect::AddContact(t),
                    }];
                }
                KeyCode::Backspace => {
                    text.pop();
                    self.prompt = Some((kind, text));
                }
                KeyCode::Char(c) => {
                    text.push(c);
                    self.prompt = Some((kind, text));
                }
                _ => self.prompt = Some((kind, text)),
            }
            return vec![];
        }
        // Keys that work in both panes.
        match k.code {
            KeyCode::PageUp => return self.scroll_back(),
            KeyCode::PageDown => {
                self.scroll = self.scroll.saturating_sub(10);
                return vec![];
            }
            KeyCode::F(1) => {
                self.help = true;
                return vec![];
            }
            KeyCode::Char('n') | KeyCode::Down if ctrl => return self.select(self.selected + 1),
            KeyCode::Char('p') | KeyCode::Up if ctrl => {
                return self.select(self.selected.saturating_sub(1))
            }
            KeyCode::Tab => {
                self.focus = match self.focus {
                    Focus::List => Focus::Composer,
                    Focus::Composer => Focus::List,
                };
                return vec![];
            }
            _ => {}
        }
        match self.focus {
            Focus::List => self.list_key(k),
            Focus::Composer => self.composer_key(k),
        }
    }

    fn scroll_back(&mut self) -> Vec<Effect> {
        self.scroll += 10;
        let Some(conversation) = self.current().map(|e| e.conversation) else {
            return vec![];
        };
        let thread = self.threads.entry(conversation).or_default();
        // Near the top of what is loaded: fetch the page before it.
        if !thread.complete && !thread.loading && self.scroll + 10 >= thread.messages.len() {
            if let Some(&oldest) = thread.messages.keys().next() {
                thread.loading = true;
                return vec![Effect::History {
                    conversation,
                    page: Page::Before(oldest),
                }];
            }
        }
        vec![]
    }

    fn list_key(&mut self, k: KeyEvent) -> Vec<Effect> {
        match k.code {
            KeyCode::Up | KeyCode::Char('k') => self.select(self.selected.saturating_sub(1)),
            KeyCode::Down | KeyCode::Char('j') => self.select(self.selected + 1),
            KeyCode::Enter | KeyCode::Char('i') => {
                self.focus = Focus::Composer;
                self.select(self.selected)
            }
            KeyCode::Char('?') => {
                self.help = true;
                vec![]
            }
            KeyCode::Char('g') => {
                self.prompt = Some((PromptKind::JoinGroup, String::new()));
                vec![]
            }
            KeyCode::Char('n') => {
                self.prompt = Some((PromptKind::NewGroup, String::new()));
                vec![]
            }
            KeyCode::Char('a') => {
                self.prompt = Some((PromptKind::AddContact, String::new()));
                vec![]
            }
            KeyCode::Char('L') => match self.current().map(|e| e.peer) {
                Some(Peer::Group(id)) => vec![Effect::Leave(id)],
                _ => {
                    self.notice = Some(Notice::Error("Select a group to leave it.".into()));
                    vec![]
                }
            },
            KeyCode::Char('r') => vec![Effect::ReconnectNow, Effect::Load],
            KeyCode::Char('O') => vec![Effect::Logout],
            KeyCode::Char('q') => {
                self.quit = true;
                vec![Effect::Quit]
            }
            _ => vec![],
        }
    }

    fn composer_key(&mut self, k: KeyEvent) -> Vec<Effect> {
        match k.code {
            KeyCode::Esc => {
                self.focus = Focus::List;
                vec![]
            }
            KeyCode::Backspace => {
                self.composer.pop();
                vec![]
            }
            KeyCode::Enter => self.send(),
            KeyCode::Char(c) => {
                self.composer.push(c);
                let peer = self.current().map(|e| e.peer);
                match peer {
                    Some(p @ (Peer::User(_) | Peer::Group(_)))
                        if self.now_ms - self.last_typing_ms >= TYPING_EVERY_MS =>
                    {
                        self.last_typing_ms = self.now_ms;
                        vec![Effect::Typing(p)]
                    }
                    _ => vec![],
                }
            }
            _ => vec![],
        }
    }

    fn send(&mut self) -> Vec<Effect> {
        let content = self.composer.trim().to_owned();
        if content.is_empty() {
            return vec![];
        }
        let Some(entry) = self.current().cloned() else {
            self.notice = Some(Notice::Error("Pick a conversation first.".into()));
            return vec![];
        };
        self.next_id += 1;
        let id = format!("tui-{}-{}", crate::chat::new_send_id(), self.next_id);
        let frame = match entry.peer {
            Peer::User(to) => ClientFrame::Private {
                id: id.clone(),
                to,
                media: Media::Text,
                content: content.clone(),
            },
            Peer::Group(to) => ClientFrame::Group {
                id: id.clone(),
                to,
                media: Media::Text,
                content: content.clone(),
            },
            Peer::System => {
                self.notice = Some(Notice::Error("The system inbox is read-only.".into()));
                return vec![];
            }
        };
        self.composer.clear();
        self.scroll = 0;
        self.outgoing.push(Outgoing {
            id,
            conversation: entry.conversation,
            content,
            failed: None,
        });
        vec![Effect::Send(frame)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: KeyCode) -> Event {
        Event::Key(KeyEvent::new(c, KeyModifiers::NONE))
    }

    fn user(id: UserId, name: &str, online: bool) -> User {
        User {
            id,
            name: name.into(),
            email: None,
            phone: None,
            avatar: None,
            online,
            created_at: 0,
        }
    }

    fn msg(conv: ConversationId, seq: Seq, from: UserId) -> ChatMessage {
        ChatMessage {
            msg_id: format!("m{seq}"),
            conversation: conv,
            seq,
            from: Some(from),
            to: None,
            kind: Some(MessageKind::Private),
            media: Media::Text,
            content: format!("text {seq}"),
            ts: 0,
        }
    }

    fn signed_in() -> Model {
        let mut m = Model::new("http://x");
        m.update(Event::LoggedIn {
            user: user(1, "alice", true),
            remembered: false,
        });
        m.update(Event::Loaded {
            contacts: vec![user(2, "bob", false), user(3, "carol", true)],
            communities: vec![],
        });
        m
    }

    #[test]
    fn menu_keys_follow_the_seed() {
        let mut m = Model::new("http://x");
        m.update(key(KeyCode::Char('2')));
        assert!(matches!(&m.screen, Screen::Form(f) if f.kind == FormKind::Register));
        m.update(key(KeyCode::Esc));
        assert_eq!(m.screen, Screen::Menu);
        // The menu remembers the last choice; ↑ moves to "Log in".
        m.update(key(KeyCode::Up));
        let fx = m.update(key(KeyCode::Enter));
        assert!(matches!(&m.screen, Screen::Form(f) if f.kind == FormKind::Login));
        assert!(fx.is_empty());
        m.update(key(KeyCode::Esc));
        assert_eq!(m.update(key(KeyCode::Char('3'))), vec![Effect::Quit]);
        assert!(m.quit);
    }

    #[test]
    fn a_message_shows_once_and_counts_unread_elsewhere() {
        let mut m = signed_in();
        assert_eq!(m.current().map(|e| e.title.as_str()), Some("bob"));
        let carol = ConversationId::private(1, 3);
        for _ in 0..2 {
            m.update(Event::Chat(ChatEvent::Message(msg(carol, 1, 3))));
        }
        m.update(Event::History {
            conversation: carol,
            page: Page::Latest,
            messages: vec![msg(carol, 1, 3)],
        });
        assert_eq!(m.threads[&carol].messages.len(), 1);
        let e = m.entries.iter().find(|e| e.conversation == carol).unwrap();
        assert_eq!(e.unread, 1);
        // Opening it clears the count and marks it read.
        let fx = m.update(key(KeyCode::Down));
        assert!(fx.contains(&Effect::Read {
            conversation: carol,
            seq: 1
        }));
        assert_eq!(m.current().unwrap().unread, 0);
    }

    #[test]
    fn presence_and_refusals_show() {
        let mut m = signed_in();
        m.update(Event::Chat(ChatEvent::Presence {
            user: 2,
            online: true,
        }));
        assert!(m.entries.iter().find(|e| e.title == "bob").unwrap().online);
        m.update(key(KeyCode::Tab));
        for c in "hi".chars() {
            m.update(key(KeyCode::Char(c)));
        }
        let fx = m.update(key(KeyCode::Enter));
        let Some(Effect::Send(frame)) = fx.first() else {
            panic!("{fx:?}")
        };
        let id = frame.send_id().unwrap().to_owned();
        m.update(Event::Chat(ChatEvent::Rejected {
            id: Some(id),
            code: "rate_limited".into(),
            message: "slow down".into(),
        }));
        assert!(m.outgoing[0].failed.is_some());
        assert_eq!(
            m.notice,
            Some(Notice::Error("Not sent: slow down (rate_limited)".into()))
        );
    }
}
