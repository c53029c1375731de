//! The bare relay of `make bench`: a tokio-tungstenite server that routes the benchmark's chat
//! protocol and stores nothing. It is the ceiling a chat server on the same machine could reach
//! if storage, ordering and delivery guarantees cost nothing.
//!
//! ```sh
//! bench-relay 127.0.0.1:18400
//! ```
//!
//! Protocol (JSON text frames; the first one must be `login`):
//! - `{"type":"login","name":"alice"}` → `{"type":"ready"}`
//! - `{"type":"join","room":"g1"}` → `{"type":"joined","room":"g1"}`
//! - `{"type":"private","id":"7","to":"bob","content":"..."}` → every connection of `bob` gets
//!   `{"type":"message","kind":"private","id":"7","from":"alice","to":"bob","content":"..."}`,
//!   then the sender gets `{"type":"ack","id":"7"}`
//! - `{"type":"group","id":"8","to":"g1","content":"..."}` → every other connection in room
//!   `g1` gets the message, then the sender the ack.
//!
//! Frames to one connection leave in the order they were queued, so a sender's messages reach
//! each recipient in order. A bad frame is answered with `{"type":"error","code":...}`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// One connection's outgoing queue and its id (to leave rooms and users on close).
type Outbox = (u64, mpsc::UnboundedSender<Message>);

/// Who is connected: connections by user name and by room.
#[derive(Default)]
struct Routes {
    users: HashMap<String, Vec<Outbox>>,
    rooms: HashMap<String, Vec<Outbox>>,
}

impl Routes {
    fn remove(&mut self, id: u64, name: &str, rooms: &[String]) {
        let drop_from = |map: &mut HashMap<String, Vec<Outbox>>, key: &str| {
            if let Some(list) = map.get_mut(key) {
                list.retain(|(c, _)| *c != id);
                if list.is_empty() {
                    map.remove(key);
                }
            }
        };
        drop_from(&mut self.users, name);
        for room in rooms {
            drop_from(&mut self.rooms, room);
        }
    }
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum In {
    Login {
        name: String,
    },
    Join {
        room: String,
    },
    Private {
        id: String,
        to: String,
        content: String,
    },
    Group {
        id: String,
        to: String,
        content: String,
    },
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Out<'a> {
    Ready,
    Joined {
        room: &'a str,
    },
    Message {
        kind: &'a str,
        id: &'a str,
        from: &'a str,
        to: &'a str,
        content: &'a str,
    },
    Ack {
        id: &'a str,
    },
    Error {
        code: &'a str,
    },
}

impl Out<'_> {
    fn frame(&self) -> Message {
        Message::Text(serde_json::to_string(self).expect("plain struct serializes"))
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18400".into())
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let listener = TcpListener::bind(addr).await?;
    println!(
        "listening on {} pid {}",
        listener.local_addr()?,
        std::process::id()
    );
    let routes = Arc::new(Mutex::new(Routes::default()));
    let ids = Arc::new(AtomicU64::new(0));
    loop {
        let (tcp, _) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        let id = ids.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(serve(tcp, id, routes.clone()));
    }
}

/// One connection: a reader that routes frames and a writer that drains the outbox.
async fn serve(tcp: TcpStream, id: u64, routes: Arc<Mutex<Routes>>) {
    let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else {
        return;
    };
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    let writer = tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            if sink.feed(first).await.is_err() {
                return;
            }
            // Everything already queued goes out in one flush.
            while let Ok(more) = rx.try_recv() {
                if sink.feed(more).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    let mut name: Option<String> = None;
    let mut rooms: Vec<String> = Vec::new();
    while let Some(Ok(msg)) = stream.next().await {
        let text = match msg {
            Message::Text(t) => t,
            Message::Close(_) => break,
            _ => continue,
        };
        let frame: In = match serde_json::from_str(&text) {
            Ok(f) => f,
            Err(_) => {
                let _ = tx.send(Out::Error { code: "bad_frame" }.frame());
                continue;
            }
        };
        match (frame, &name) {
            (In::Login { name: n }, None) => {
                routes
                    .lock()
                    .expect("routes lock")
                    .users
                    .entry(n.clone())
                    .or_default()
                    .push((id, tx.clone()));
                name = Some(n);
                let _ = tx.send(Out::Ready.frame());
            }
            (_, None) | (In::Login { .. }, Some(_)) => {
                let _ = tx.send(
                    Out::Error {
                        code: "login_first",
                    }
                    .frame(),
                );
            }
            (In::Join { room }, Some(_)) => {
                routes
                    .lock()
                    .expect("routes lock")
                    .rooms
                    .entry(room.clone())
                    .or_default()
                    .push((id, tx.clone()));
                let _ = tx.send(Out::Joined { room: &room }.frame());
                rooms.push(room);
            }
            (
                In::Private {
                    id: mid,
                    to,
                    content,
                },
                Some(me),
            ) => {
                let out = Out::Message {
                    kind: "private",
                    id: &mid,
                    from: me,
                    to: &to,
                    content: &content,
                }
                .frame();
                if let Some(list) = routes.lock().expect("routes lock").users.get(&to) {
                    for (_, outbox) in list {
                        let _ = outbox.send(out.clone());
                    }
                }
                let _ = tx.send(Out::Ack { id: &mid }.frame());
            }
            (
                In::Group {
                    id: mid,
                    to,
                    content,
                },
                Some(me),
            ) => {
                if !rooms.contains(&to) {
                    let _ = tx.send(
                        Out::Error {
                            code: "not_a_member",
                        }
                        .frame(),
                    );
                    continue;
                }
                let out = Out::Message {
                    kind: "group",
                    id: &mid,
                    from: me,
                    to: &to,
                    content: &content,
                }
                .frame();
                if let Some(list) = routes.lock().expect("routes lock").rooms.get(&to) {
                    for (conn, outbox) in list {
                        if *conn != id {
                            let _ = outbox.send(out.clone());
                        }
                    }
                }
                let _ = tx.send(Out::Ack { id: &mid }.frame());
            }
        }
    }
    if let Some(n) = &name {
        routes.lock().expect("routes lock").remove(id, n, &rooms);
    }
    drop(tx);
    let _ = writer.await;
}
