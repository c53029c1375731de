//! The three systems' wire protocols, reduced to what the scenarios need: log in, join a group,
//! send a private or group message, and tell an ack, a delivery, a refusal and a keep-alive
//! apart. Frames are built and read by hand (no JSON tree per frame) so that the load
//! generator, which shares the machine's two cores with the server under test, spends as
//! little as it can and the same for every system.

use std::time::Duration;

use chorus_client::{Api, NewCommunity, Registration};
use clap::ValueEnum;
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// An open websocket to a system under test.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long a log-in exchange (upgrade plus the system's own hello) may take.
const HELLO_TIMEOUT: Duration = Duration::from_secs(20);

/// The password of every benchmark account (Chorus refuses common ones).
const PASSWORD: &str = "bench-load-pass-9";

/// Which system a run talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum System {
    /// Chorus: REST accounts, `/chat` websocket, JSON frames.
    Chorus,
    /// The bare relay under `bench/relay`.
    Relay,
    /// Socket.IO 4 (`bench/socketio`), Engine.IO v4 over a websocket.
    Socketio,
}

/// Private (to a user) or group (to a community/room).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Private,
    Group,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Kind::Private => "private",
            Kind::Group => "group",
        }
    }
}

/// Who a connection logs in as.
#[derive(Clone, Debug)]
pub enum Identity {
    /// A Chorus account with a session.
    Chorus { api: Api, id: i64 },
    /// A bare name (relay, Socket.IO).
    Named(String),
}

impl Identity {
    /// How a message addresses this user, as JSON (a number for Chorus, a string otherwise).
    pub fn address(&self) -> String {
        match self {
            Identity::Chorus { id, .. } => id.to_string(),
            Identity::Named(n) => format!("\"{n}\""),
        }
    }
}

/// What one incoming text frame is.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming<'a> {
    /// A send was accepted (stored, for Chorus).
    Ack,
    /// A message arrived; its `content`.
    Delivery(&'a str),
    /// The server refused something; the frame.
    Refused(&'a str),
    /// Engine.IO ping: answer `3`.
    Ping,
    /// Anything else (presence, membership, heartbeat answers).
    Other,
}

/// Reads one frame of `system`.
pub fn classify(system: System, text: &str) -> Incoming<'_> {
    match system {
        System::Chorus | System::Relay => {
            let Some(kind) = json_str(text, "type") else {
                return Incoming::Other;
            };
            match kind {
                "ack" => Incoming::Ack,
                "message" => match json_str(text, "content") {
                    Some(c) => Incoming::Delivery(c),
                    None => Incoming::Refused(text),
                },
                "error" => Incoming::Refused(text),
                _ => Incoming::Other,
            }
        }
        System::Socketio => {
            if text == "2" {
                Incoming::Ping
            } else if let Some(rest) = text.strip_prefix("43") {
                if rest.contains("\"ok\":true") {
                    Incoming::Ack
                } else {
                    Incoming::Refused(text)
                }
            } else if text.starts_with("42[\"message\"") {
                match json_str(text, "content") {
                    Some(c) => Incoming::Delivery(c),
                    None => Incoming::Refused(text),
                }
            } else if text.starts_with("44") || text.starts_with('1') {
                Incoming::Refused(text)
            } else {
                Incoming::Other
            }
        }
    }
}

/// The string value of the first `"key":"..."` in `text` (values here never hold escapes).
pub fn json_str<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let mut from = 0;
    while let Some(at) = text[from..].find(key) {
        let start = from + at;
        let end = start + key.len();
        from = end;
        if start == 0 || text.as_bytes()[start - 1] != b'"' {
            continue;
        }
        let rest = text[end..].strip_prefix("\":\"")?;
        let close = rest.find('"')?;
        return Some(&rest[..close]);
    }
    None
}

/// The text of one send. `ack` numbers Socket.IO's ack callbacks (unused elsewhere).
pub fn send_frame(
    system: System,
    kind: Kind,
    to: &str,
    id: &str,
    content: &str,
    ack: u64,
) -> String {
    let kind = kind.word();
    match system {
        System::Chorus => format!(
            r#"{{"type":"{kind}","id":"{id}","to":{to},"media":"text","content":"{content}"}}"#
        ),
        System::Relay => {
            format!(r#"{{"type":"{kind}","id":"{id}","to":{to},"content":"{content}"}}"#)
        }
        System::Socketio => {
            format!(r#"42{ack}["{kind}",{{"id":"{id}","to":{to},"content":"{content}"}}]"#)
        }
    }
}

/// The keep-alive a client of `system` sends on its own, if any.
pub fn keepalive(system: System) -> Option<&'static str> {
    match system {
        System::Chorus => Some("heartbeat"),
        System::Relay | System::Socketio => None,
    }
}

/// `http://host:port` → `ws://host:port` + `path`.
fn ws_url(server: &str, path: &str) -> String {
    format!(
        "{}{path}",
        server.trim_end_matches('/').replacen("http", "ws", 1)
    )
}

/// Creates the accounts (Chorus) or just names them (the others). `names` get a run prefix so
/// a reused database never clashes.
pub async fn identities(
    system: System,
    server: &str,
    names: Vec<String>,
) -> Result<Vec<Identity>, String> {
    match system {
        System::Relay | System::Socketio => Ok(names.into_iter().map(Identity::Named).collect()),
        System::Chorus => {
            let server = server.to_owned();
            let jobs = names.into_iter().map(|name| {
                let server = server.clone();
                async move {
                    let mut api = Api::new(&server).map_err(|e| e.to_string())?;
                    let reg = Registration {
                        name: name.clone(),
                        password: PASSWORD.into(),
                        ..Default::default()
                    };
                    api.register(&reg)
                        .await
                        .map_err(|e| format!("register {name}: {e}"))?;
                    let session = api
                        .login(&name, PASSWORD)
                        .await
                        .map_err(|e| format!("log in {name}: {e}"))?;
                    Ok::<_, String>(Identity::Chorus {
                        api,
                        id: session.user.id,
                    })
                }
            });
            // Chorus hashes passwords on a few threads; more at once only queues.
            futures_util::stream::iter(jobs)
                .buffered(8)
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect()
        }
    }
}

/// A Chorus account's API handle on another node (same token: sessions live in the database).
pub fn on_server(who: &Identity, server: &str) -> Result<Identity, String> {
    match who {
        Identity::Chorus { api, id } => {
            let token = api.token().ok_or("no session")?.to_owned();
            let api = Api::new(server).map_err(|e| e.to_string())?;
            Ok(Identity::Chorus {
                api: api.with_token(token),
                id: *id,
            })
        }
        Identity::Named(_) => Ok(who.clone()),
    }
}

/// Opens a connection as `who` and waits until the server has it registered, so that a
/// message sent to `who` right afterwards is delivered live.
pub async fn connect(system: System, server: &str, who: &Identity) -> Result<Ws, String> {
    tokio::time::timeout(HELLO_TIMEOUT, hello(system, server, who))
        .await
        .map_err(|_| format!("{server}: no hello within {HELLO_TIMEOUT:?}"))?
}

async fn hello(system: System, server: &str, who: &Identity) -> Result<Ws, String> {
    let url = match (system, who) {
        (System::Chorus, Identity::Chorus { api, .. }) => {
            api.chat_url().map_err(|e| e.to_string())?.to_string()
        }
        (System::Relay, _) => ws_url(server, "/"),
        (System::Socketio, _) => ws_url(server, "/socket.io/?EIO=4&transport=websocket"),
        (System::Chorus, Identity::Named(_)) => return Err("a Chorus account is needed".into()),
    };
    // No Nagle: every server here turns it off on its side, and the load's small frames would
    // otherwise wait for delayed ACKs.
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url.as_str(), None, true)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let name = match who {
        Identity::Named(n) => n.as_str(),
        Identity::Chorus { .. } => "",
    };
    // What to send, and the start of the answer that says the connection is registered.
    let (say, expect): (Option<String>, &str) = match system {
        // The server registers the connection before it reads frames, so an answer to the
        // bare heartbeat proves registration.
        System::Chorus => (Some("heartbeat".into()), "heartbeat"),
        System::Relay => (
            Some(format!(r#"{{"type":"login","name":"{name}"}}"#)),
            r#"{"type":"ready"#,
        ),
        // Engine.IO open (`0{...}`) comes first; then the namespace connect with auth.
        System::Socketio => (None, "0{"),
    };
    if let Some(text) = say {
        ws.send(Message::Text(text))
            .await
            .map_err(|e| e.to_string())?;
    }
    wait_for(&mut ws, expect).await?;
    if system == System::Socketio {
        ws.send(Message::Text(format!(r#"40{{"name":"{name}"}}"#)))
            .await
            .map_err(|e| e.to_string())?;
        wait_for(&mut ws, "40{").await?;
    }
    Ok(ws)
}

/// Reads until a text frame starting with `prefix`; a refusal or the end is an error.
async fn wait_for(ws: &mut Ws, prefix: &str) -> Result<String, String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.starts_with(prefix) => return Ok(t),
            Some(Ok(Message::Text(t)))
                if t.starts_with("44") || t.contains(r#""type":"error""#) =>
            {
                return Err(format!("refused: {t}"))
            }
            Some(Ok(Message::Close(c))) => return Err(format!("closed: {c:?}")),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("connection ended".into()),
        }
    }
}

/// Makes group `name` with `members` in it; returns how messages address it. `conns` are the
/// members' open connections (relay and Socket.IO join on the connection; Chorus over REST).
pub async fn make_group(
    system: System,
    name: &str,
    members: &[Identity],
    conns: &mut [Ws],
) -> Result<String, String> {
    match system {
        System::Chorus => {
            let Some(Identity::Chorus { api: owner, .. }) = members.first() else {
                return Err("a group needs Chorus members".into());
            };
            let community = owner
                .create_community(&NewCommunity {
                    name: name.to_owned(),
                    ..Default::default()
                })
                .await
                .map_err(|e| format!("create {name}: {e}"))?;
            for who in &members[1..] {
                if let Identity::Chorus { api, .. } = who {
                    api.join_community(community.id)
                        .await
                        .map_err(|e| format!("join {name}: {e}"))?;
                }
            }
            Ok(community.id.to_string())
        }
        System::Relay | System::Socketio => {
            for ws in conns.iter_mut() {
                let (say, expect) = if system == System::Relay {
                    (
                        format!(r#"{{"type":"join","room":"{name}"}}"#),
                        r#"{"type":"joined""#,
                    )
                } else {
                    (format!(r#"420["join",{{"room":"{name}"}}]"#), "430[")
                };
                ws.send(Message::Text(say))
                    .await
                    .map_err(|e| e.to_string())?;
                let answer = tokio::time::timeout(HELLO_TIMEOUT, wait_for(ws, expect))
                    .await
                    .map_err(|_| format!("join {name}: no answer"))??;
                if system == System::Socketio && !answer.contains("\"ok\":true") {
                    return Err(format!("join {name}: {answer}"));
                }
            }
            Ok(format!("\"{name}\""))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_systems_frames() {
        let chorus = r#"{"type":"message","msg_id":"x","conversation":"p:1:2","seq":3,"from":1,"to":2,"kind":"private","media":"text","content":"4:5:6","ts":1}"#;
        assert_eq!(
            classify(System::Chorus, chorus),
            Incoming::Delivery("4:5:6")
        );
        let ack = r#"{"type":"ack","id":"a1","msg_id":"x","conversation":"p:1:2","seq":3,"ts":1}"#;
        assert_eq!(classify(System::Chorus, ack), Incoming::Ack);
        assert_eq!(
            classify(System::Relay, r#"{"type":"ack","id":"1"}"#),
            Incoming::Ack
        );
        let sio =
            r#"42["message",{"id":"1","from":"a","to":"b","kind":"private","content":"1:2:3"}]"#;
        assert_eq!(classify(System::Socketio, sio), Incoming::Delivery("1:2:3"));
        assert_eq!(
            classify(System::Socketio, r#"4317[{"ok":true,"id":"1"}]"#),
            Incoming::Ack
        );
        assert!(matches!(
            classify(System::Socketio, r#"4317[{"ok":false}]"#),
            Incoming::Refused(_)
        ));
        assert_eq!(classify(System::Socketio, "2"), Incoming::Ping);
        assert_eq!(classify(System::Chorus, "heartbeat"), Incoming::Other);
    }

    #[test]
    fn json_str_skips_longer_keys() {
        assert_eq!(json_str(r#"{"msg_id":"a","id":"b"}"#, "id"), Some("b"));
        assert_eq!(json_str(r#"{"id":5}"#, "id"), None);
    }
}
