//! The terminal UI's model and drawing (ratatui's TestBackend) driven against the real binary:
//! register through the menu, see a friend come online, exchange messages with a websocket
//! user, see "typing" and "seen", survive a server restart with nothing shown twice and nothing
//! lost, log in again (history comes back), and a remembered session (file mode 0600).

use crate::common;

use std::time::Duration;

use chorus_client::tui::model::{Focus, Link, Screen};
use chorus_client::tui::ratatui::backend::TestBackend;
use chorus_client::tui::ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use chorus_client::tui::ratatui::Terminal;
use chorus_client::tui::{Event, Model, Runtime, SessionStore};
use chorus_client::{
    Api, ChatOptions, ClientFrame, ConversationId, Media, Registration, ServerFrame, Socket,
};
use common::{Backend, Server, TestDb};

const DEADLINE: Duration = Duration::from_secs(40);
const PW: &str = "correct horse battery";

/// One terminal client: model, runtime and a 100x30 test terminal.
struct Tui {
    model: Model,
    rt: Runtime,
    term: Terminal<TestBackend>,
}

impl Tui {
    fn new(base: &str, store: Option<SessionStore>) -> Tui {
        let api = Api::new(base).unwrap();
        let options = ChatOptions {
            backoff_min: Duration::from_millis(200),
            backoff_max: Duration::from_secs(1),
            ..ChatOptions::default()
        };
        let mut t = Tui {
            model: Model::new(base),
            rt: Runtime::new(api, store, options),
            term: Terminal::new(TestBackend::new(100, 30)).unwrap(),
        };
        t.draw();
        t
    }

    fn draw(&mut self) {
        let m = &self.model;
        self.term
            .draw(|f| chorus_client::tui::view::draw(f, m))
            .unwrap();
    }

    /// The screen as text, one line per row.
    fn screen(&self) -> String {
        let buf = self.term.backend().buffer();
        let mut s = String::new();
        for y in 0..buf.area.height {
            for x in 0..buf.area.width {
                s.push_str(buf[(x, y)].symbol());
            }
            s.push('\n');
        }
        s
    }

    fn key(&mut self, code: KeyCode) {
        let ev = Event::Key(KeyEvent::new(code, KeyModifiers::NONE));
        self.rt.apply(&mut self.model, ev);
        self.draw();
    }

    fn type_text(&mut self, text: &str) {
        for c in text.chars() {
            self.key(KeyCode::Char(c));
        }
    }

    /// Feeds server events to the model until `done` holds for the model and the screen.
    async fn until(&mut self, what: &str, done: impl Fn(&Model, &str) -> bool) {
        let end = tokio::time::Instant::now() + DEADLINE;
        loop {
            if done(&self.model, &self.screen()) {
                return;
            }
            let left = end.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.rt.next()).await {
                Ok(ev) => {
                    self.rt.apply(&mut self.model, ev);
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_millis() as i64;
                    self.rt.apply(&mut self.model, Event::Tick(now));
                    self.draw();
                }
                Err(_) => panic!("timed out waiting for {what}; screen:\n{}", self.screen()),
            }
        }
    }

    async fn until_screen(&mut self, what: &str, text: &str) {
        let text = text.to_owned();
        self.until(what, move |_, s| s.contains(&text)).await
    }
}

/// Reads `sock` until `pick` accepts a frame.
async fn frame<T>(sock: &mut Socket, what: &str, pick: impl Fn(ServerFrame) -> Option<T>) -> T {
    let end = tokio::time::Instant::now() + DEADLINE;
    loop {
        let left = end.saturating_duration_since(tokio::time::Instant::now());
        match sock.recv_within(left).await {
            Ok(f) => {
                if let Some(v) = pick(f) {
                    return v;
                }
            }
            Err(e) => panic!("waiting for {what}: {e}"),
        }
    }
}

fn say(to: i64, id: &str, text: &str) -> ClientFrame {
    ClientFrame::Private {
        id: id.into(),
        to,
        media: Media::Text,
        content: text.into(),
    }
}

#[tokio::test]
async fn terminal_ui_chats_through_a_server_restart() {
    let db = match TestDb::create(Backend::Sqlite).await {
        Some(db) => db,
        None => return,
    };
    let mut server = Server::start_on(db.clone(), &[]).await;
    let base = server.base.clone();
    let config = tempfile::tempdir().unwrap();
    let store = SessionStore::in_dir(config.path().join("chorus"));

    // bob is a plain websocket user.
    let mut bob = Api::new(&base).unwrap();
    bob.register(&Registration {
        name: "bob".into(),
        password: PW.into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let b = bob.login("bob", PW).await.unwrap().user;

    // The seed's menu; register through it (which logs straight in).
    let mut t = Tui::new(&base, Some(store.clone()));
    let s = t.screen();
    assert!(
        s.contains("1. Log in") && s.contains("2. Register") && s.contains("3. Quit"),
        "{s}"
    );
    t.key(KeyCode::Char('2'));
    assert!(t.screen().contains("Register"));
    t.type_text("alice");
    t.key(KeyCode::Enter);
    t.type_text(PW);
    t.key(KeyCode::Enter);
    t.until("logged in and connected", |m, _| {
        m.screen == Screen::Main && m.link == Link::Online
    })
    .await;
    let a = t.model.me.clone().unwrap();
    assert!(t.screen().contains("● connected"));

    // The session is remembered, readable by the user alone.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(store.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "session file mode {mode:o}");
    }
    assert!(store.load(base.trim_end_matches('/')).is_some());

    // bob befriends alice: he appears offline, then online when his websocket opens.
    bob.add_contact(a.id).await.unwrap();
    t.until_screen("bob in the list", "○ bob").await;
    let mut bs = Socket::connect(&bob).await.unwrap();
    t.until_screen("bob online", "● bob").await;
    assert!(t.screen().contains("bob is online."));

    // alice writes; bob gets it; bob answers and alice sees it.
    t.key(KeyCode::Enter);
    assert_eq!(t.model.focus, Focus::Composer);
    t.type_text("hello bob");
    t.key(KeyCode::Enter);
    let got = frame(&mut bs, "alice's message", |f| match f {
        ServerFrame::Message(m) => Some(m),
        _ => None,
    })
    .await;
    assert_eq!((got.content.as_str(), got.from), ("hello bob", Some(a.id)));
    t.until_screen("own message acked", "me: hello bob").await;

    bs.send(&ClientFrame::Typing {
        to: Some(a.id),
        community: None,
    })
    .await
    .unwrap();
    t.until_screen("typing", "bob is typing…").await;
    bs.send(&say(a.id, "b-1", "hi alice")).await.unwrap();
    t.until_screen("bob's answer", "bob: hi alice").await;
    // alice has the chat open: her read mark reaches bob ...
    let conv = ConversationId::private(a.id, b.id);
    frame(&mut bs, "alice's read mark", |f| match f {
        ServerFrame::Read { user, seq: 2, .. } if user == a.id => Some(()),
        _ => None,
    })
    .await;
    // ... and bob's shows as "seen" under her message.
    bs.send(&ClientFrame::Read {
        conversation: conv,
        seq: 1,
    })
    .await
    .unwrap();
    t.until_screen("seen", "✓ seen").await;

    // The server goes away; the UI says so and keeps what alice types.
    let addr = server.addr.clone();
    server.terminate().await;
    drop(server);
    drop(bs);
    t.until_screen("reconnecting banner", "reconnecting").await;
    t.type_text("sent while down");
    t.key(KeyCode::Enter);
    assert!(
        t.screen().contains("sent while down  (sending…)"),
        "{}",
        t.screen()
    );

    // It comes back on the same address: the queued message is stored once and reaches bob.
    let server = Server::start_on(db.clone(), &[("CHORUS__SERVER__ADDR", &addr)]).await;
    t.until("reconnected and acked", |m, _| {
        m.link == Link::Online && m.outgoing.is_empty()
    })
    .await;
    let mut bs = Socket::connect(&bob).await.unwrap();
    let got = frame(&mut bs, "the queued message", |f| match f {
        ServerFrame::Message(m) if m.content == "sent while down" => Some(m),
        _ => None,
    })
    .await;
    assert_eq!(got.seq, 3);
    bs.send(&say(a.id, "b-2", "welcome back")).await.unwrap();
    t.until_screen("bob after the restart", "bob: welcome back")
        .await;

    // Nothing twice, nothing lost: exactly the four stored messages, once each on screen.
    let s = t.screen();
    for text in [
        "me: hello bob",
        "bob: hi alice",
        "me: sent while down",
        "bob: welcome back",
    ] {
        assert_eq!(s.matches(text).count(), 1, "{text:?} on screen:\n{s}");
    }
    let seqs: Vec<i64> = t.model.threads[&conv].messages.keys().copied().collect();
    assert_eq!(seqs, vec![1, 2, 3, 4]);
    let stored = bob
        .history(conv, chorus_client::Page::Latest, 50)
        .await
        .unwrap();
    assert_eq!(stored.len(), 4);

    // Quit from the list.
    t.key(KeyCode::Esc);
    t.key(KeyCode::Char('q'));
    assert!(t.model.quit);

    // A second client logs in through the menu: a wrong password is shown as the server says
    // it, then the right one brings the conversation back from history.
    let mut t2 = Tui::new(&base, None);
    t2.key(KeyCode::Char('1'));
    t2.type_text("alice");
    t2.key(KeyCode::Enter);
    t2.type_text("wrong password!");
    t2.key(KeyCode::Enter);
    t2.until_screen("the server's error", "invalid_credentials")
        .await;
    for _ in 0.."wrong password!".len() {
        t2.key(KeyCode::Backspace);
    }
    t2.type_text(PW);
    t2.key(KeyCode::Enter);
    t2.until_screen("history after log-in", "bob: welcome back")
        .await;
    assert!(t2.screen().contains("me: hello bob"));

    // The remembered session logs the first client's successor straight in.
    let mut t3 = Tui::new(&base, Some(store.clone()));
    assert!(t3.rt.restore());
    t3.until_screen("remembered session", "Welcome back, alice.")
        .await;
    drop(server);
}
