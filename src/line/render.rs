//! Server frames as lines. The fan-out builds each frame once, as the websocket's JSON, for every
//! connection it goes to; a line connection turns it into one line here. User ids become names
//! (the caller looks them up first: [`users_in`]), and text is escaped so that one message is
//! always one line.

use serde_json::Value;

use crate::ids::UserId;

/// `text` on one line: `\` as `\\`, newline as `\n`, carriage return as `\r`, tab as `\t`, any
/// other control character as `\u{…}`. Everything else (any language, emoji) is left as is.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// A name as one token, the way commands take it back: bare when it is one plain word, else
/// in double quotes with `"` and `\` escaped.
pub fn name_token(name: &str) -> String {
    let plain = !name.is_empty()
        && !name.starts_with(['"', '#'])
        && !name
            .chars()
            .any(|c| c == ' ' || c == '\\' || c.is_control());
    if plain {
        return name.to_owned();
    }
    let mut out = String::from("\"");
    for c in name.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// A message's content on a line: text and emoji as they are (escaped), other media as
/// `[image] /uploads/…`.
pub fn content(media: &str, text: &str) -> String {
    match media {
        "text" | "emoji" => escape(text),
        other => format!("[{other}] {}", escape(text)),
    }
}

/// The user ids a frame names, whose names [`render`] needs.
pub fn users_in(frame: &Value) -> Vec<UserId> {
    ["from", "user"]
        .iter()
        .filter_map(|key| frame.get(key).and_then(Value::as_i64))
        .map(UserId)
        .collect()
}

/// How a line connection renders what it cannot know from the frame alone.
pub trait Context {
    /// A user as a name token ([`name_token`]), or `#id` for one that is gone.
    fn name(&self, user: UserId) -> String;
    /// The line-local reference (`l3`) of this connection's own send with client `id`.
    fn reference(&self, id: &str) -> String;
}

fn text_of(frame: &Value, key: &str) -> String {
    escape(frame.get(key).and_then(Value::as_str).unwrap_or_default())
}

fn num(frame: &Value, key: &str) -> i64 {
    frame.get(key).and_then(Value::as_i64).unwrap_or_default()
}

/// One server frame (the websocket's JSON) as a line, or `None` for what line clients are not
/// sent (typing, heartbeats, anything unknown).
pub fn render(frame: &Value, cx: &impl Context) -> Option<String> {
    let kind = frame.get("type")?.as_str()?;
    let user = |key: &str| cx.name(UserId(num(frame, key)));
    let conversation = || text_of(frame, "conversation");
    let line = match kind {
        "message" => {
            let media = frame.get("media").and_then(Value::as_str).unwrap_or("text");
            let raw = frame
                .get("content")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let content = content(media, raw);
            format!(
                "MESSAGE {} {} {} {content}",
                conversation(),
                num(frame, "seq"),
                user("from")
            )
        }
        "system" => format!(
            "SYSTEM {} {} {}",
            conversation(),
            num(frame, "seq"),
            text_of(frame, "content")
        ),
        "ack" => {
            let id = frame.get("id").and_then(Value::as_str).unwrap_or_default();
            format!(
                "ACK {} {} {}",
                cx.reference(id),
                conversation(),
                num(frame, "seq")
            )
        }
        "error" => {
            let reference = match frame.get("id").and_then(Value::as_str) {
                Some(id) => cx.reference(id),
                None => "-".to_owned(),
            };
            format!(
                "ERR {} {reference} {}",
                frame
                    .get("code")
                    .and_then(Value::as_str)
                    .unwrap_or("internal"),
                text_of(frame, "message")
            )
        }
        "presence" => {
            let online = frame.get("online").and_then(Value::as_bool)?;
            let state = if online { "online" } else { "offline" };
            format!("PRESENCE {} {state}", user("user"))
        }
        "read" => format!(
            "READ {} {} {}",
            conversation(),
            user("user"),
            num(frame, "seq")
        ),
        "contact" => {
            let added = frame.get("added").and_then(Value::as_bool)?;
            let change = if added { "added" } else { "removed" };
            format!("CONTACT {} {change}", user("user"))
        }
        "member" => {
            let joined = frame.get("joined").and_then(Value::as_bool)?;
            let change = if joined { "joined" } else { "left" };
            format!(
                "MEMBER {} {} {change}",
                num(frame, "community"),
                user("user")
            )
        }
        "profile" => {
            let name = frame.get("name").and_then(Value::as_str)?;
            format!("PROFILE #{} {}", num(frame, "user"), name_token(name))
        }
        _ => return None,
    };
    Some(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Names;

    impl Context for Names {
        fn name(&self, user: UserId) -> String {
            match user.0 {
                1 => "alice".into(),
                2 => name_token("Ann Lee"),
                n => format!("#{n}"),
            }
        }
        fn reference(&self, id: &str) -> String {
            id.strip_prefix("line:x:")
                .map_or(id.to_owned(), |n| format!("l{n}"))
        }
    }

    #[test]
    fn text_stays_on_one_line() {
        assert_eq!(escape("a\nb\\c\r\td\u{7}é🙂"), "a\\nb\\\\c\\r\\td\\u{7}é🙂");
    }

    #[test]
    fn names_are_tokens_commands_take_back() {
        assert_eq!(name_token("alice"), "alice");
        assert_eq!(name_token("Ann Lee"), "\"Ann Lee\"");
        assert_eq!(name_token("say \"hi\""), r#""say \"hi\"""#);
        assert_eq!(name_token("#1"), "\"#1\"");
        assert_eq!(name_token("back\\slash"), r#""back\\slash""#);
    }

    #[test]
    fn frames_render_as_documented() {
        let cases = [
            (
                json!({"type":"message","msg_id":"m","conversation":"p:1:2","seq":18,"from":2,
                       "to":1,"kind":"private","media":"text","content":"hi\nthere","ts":1}),
                Some("MESSAGE p:1:2 18 \"Ann Lee\" hi\\nthere"),
            ),
            (
                json!({"type":"message","conversation":"g:7","seq":3,"from":1,"media":"image",
                       "content":"/uploads/a.png"}),
                Some("MESSAGE g:7 3 alice [image] /uploads/a.png"),
            ),
            (
                json!({"type":"ack","id":"line:x:3","msg_id":"m","conversation":"p:1:2","seq":19,"ts":1}),
                Some("ACK l3 p:1:2 19"),
            ),
            (
                json!({"type":"error","id":"line:x:4","code":"not_a_member","message":"you are not in community 7"}),
                Some("ERR not_a_member l4 you are not in community 7"),
            ),
            (
                json!({"type":"error","code":"rate_limited","message":"slow down"}),
                Some("ERR rate_limited - slow down"),
            ),
            (
                json!({"type":"presence","user":1,"online":true}),
                Some("PRESENCE alice online"),
            ),
            (
                json!({"type":"presence","user":9,"online":false}),
                Some("PRESENCE #9 offline"),
            ),
            (
                json!({"type":"read","conversation":"g:7","user":1,"seq":4}),
                Some("READ g:7 alice 4"),
            ),
            (
                json!({"type":"contact","user":2,"added":true}),
                Some("CONTACT \"Ann Lee\" added"),
            ),
            (
                json!({"type":"member","community":7,"user":1,"joined":false}),
                Some("MEMBER 7 alice left"),
            ),
            (
                json!({"type":"system","msg_id":"m","conversation":"s:1","seq":2,"content":"hello","ts":1}),
                Some("SYSTEM s:1 2 hello"),
            ),
            (
                json!({"type":"profile","user":1,"name":"Alice B","avatar":null}),
                Some("PROFILE #1 \"Alice B\""),
            ),
            (
                json!({"type":"typing","from":1,"conversation":"p:1:2"}),
                None,
            ),
            (json!({"type":"heartbeat"}), None),
        ];
        for (frame, want) in cases {
            assert_eq!(render(&frame, &Names).as_deref(), want, "{frame}");
        }
        assert_eq!(
            users_in(&json!({"type":"read","user":5,"from":3})),
            [UserId(3), UserId(5)]
        );
    }
}
