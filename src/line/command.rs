//! The line endpoint's commands: one per line, a keyword (any case) and its arguments, parsed
//! here without touching anything else, so every shape of bad input has one answer.

use crate::ids::{CommunityId, ConversationId, Seq, UserId};

/// Most messages `HISTORY` shows at once, and how many without `n`.
pub const HISTORY_MAX: u64 = 100;
pub const HISTORY_DEFAULT: u64 = 20;

/// A user as a command names them: by display name, or `#id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    Name(String),
    Id(UserId),
}

/// Where `HISTORY` and `READ` look: a conversation id, or the private conversation with a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    Conversation(ConversationId),
    With(Who),
}

/// One command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Help,
    Login { name: String, password: String },
    Ping,
    Quit,
    Who,
    Msg { to: Who, text: String },
    Group { to: CommunityId, text: String },
    Join(CommunityId),
    History { place: Place, n: u64 },
    Read { place: Place, seq: Seq },
}

impl Command {
    /// Whether this is a send (numbered `l1`, `l2`, … so its answer can be matched).
    pub fn is_send(keyword: &str) -> bool {
        keyword.eq_ignore_ascii_case("MSG") || keyword.eq_ignore_ascii_case("GROUP")
    }
}

/// Why a line is not a command: `unknown_command` or `invalid_command`, with a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("no such command; HELP lists them")]
    Unknown,
    #[error("{0}")]
    Invalid(String),
}

impl CommandError {
    /// The stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unknown => "unknown_command",
            Self::Invalid(_) => "invalid_command",
        }
    }
}

fn invalid(usage: &str) -> CommandError {
    CommandError::Invalid(format!("usage: {usage}"))
}

/// The first word of `line` and the rest (leading spaces dropped).
pub fn keyword(line: &str) -> (&str, &str) {
    let line = line.trim_start_matches(' ');
    match line.split_once(' ') {
        Some((word, rest)) => (word, rest.trim_start_matches(' ')),
        None => (line, ""),
    }
}

/// Splits a user off the front of `rest`: a bare word, a `"quoted name"` (with `\"` and `\\`)
/// or `#id`. Returns it and what follows (leading spaces dropped).
fn who(rest: &str) -> Option<(Who, &str)> {
    let (token, after) = name_token(rest)?;
    let who = match token {
        Token::Quoted(name) => Who::Name(name),
        Token::Bare(word) => match word.strip_prefix('#') {
            Some(id) => Who::Id(UserId(id.parse().ok()?)),
            None => Who::Name(word.to_owned()),
        },
    };
    Some((who, after.trim_start_matches(' ')))
}

enum Token<'a> {
    Bare(&'a str),
    Quoted(String),
}

fn name_token(rest: &str) -> Option<(Token<'_>, &str)> {
    if let Some(quoted) = rest.strip_prefix('"') {
        let mut name = String::new();
        let mut chars = quoted.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => name.push(chars.next()?.1),
                '"' => return Some((Token::Quoted(name), &quoted[i + 1..])),
                c => name.push(c),
            }
        }
        return None;
    }
    let (word, after) = rest.split_once(' ').unwrap_or((rest, ""));
    (!word.is_empty()).then_some((Token::Bare(word), after))
}

fn place(token: &str) -> Option<Place> {
    if let Ok(conversation) = token.parse::<ConversationId>() {
        return Some(Place::Conversation(conversation));
    }
    match who(token)? {
        (who, "") => Some(Place::With(who)),
        _ => None,
    }
}

fn community(token: &str) -> Option<CommunityId> {
    token.parse().ok().filter(|&id| id > 0).map(CommunityId)
}

/// The place token of `HISTORY`/`READ`: a quoted name may hold spaces.
fn split_place(rest: &str) -> Option<(Place, &str)> {
    if rest.starts_with('"') {
        let (who, after) = who(rest)?;
        return Some((Place::With(who), after));
    }
    let (token, after) = rest.split_once(' ').unwrap_or((rest, ""));
    Some((place(token)?, after.trim_start_matches(' ')))
}

/// Parses one line (without its line ending).
pub fn parse(line: &str) -> Result<Command, CommandError> {
    let (word, rest) = keyword(line);
    let word = word.to_ascii_uppercase();
    let no_args = |command: Command, usage: &str| {
        if rest.trim().is_empty() {
            Ok(command)
        } else {
            Err(invalid(usage))
        }
    };
    match word.as_str() {
        "HELP" => Ok(Command::Help),
        "PING" => no_args(Command::Ping, "PING"),
        "QUIT" => no_args(Command::Quit, "QUIT"),
        "WHO" => no_args(Command::Who, "WHO"),
        "LOGIN" => {
            const USAGE: &str = "LOGIN name password";
            let (who, password) = who(rest).ok_or_else(|| invalid(USAGE))?;
            let Who::Name(name) = who else {
                return Err(invalid(USAGE));
            };
            if password.is_empty() {
                return Err(invalid(USAGE));
            }
            Ok(Command::Login {
                name,
                password: password.to_owned(),
            })
        }
        "MSG" => {
            const USAGE: &str = "MSG name text";
            let (to, text) = who(rest).ok_or_else(|| invalid(USAGE))?;
            if text.trim().is_empty() {
                return Err(invalid(USAGE));
            }
            Ok(Command::Msg {
                to,
                text: text.to_owned(),
            })
        }
        "GROUP" => {
            const USAGE: &str = "GROUP community-id text";
            let (id, text) = rest.split_once(' ').ok_or_else(|| invalid(USAGE))?;
            let to = community(id).ok_or_else(|| invalid(USAGE))?;
            let text = text.trim_start_matches(' ');
            if text.trim().is_empty() {
                return Err(invalid(USAGE));
            }
            Ok(Command::Group {
                to,
                text: text.to_owned(),
            })
        }
        "JOIN" => community(rest.trim())
            .map(Command::Join)
            .ok_or_else(|| invalid("JOIN community-id")),
        "HISTORY" => {
            const USAGE: &str = "HISTORY conversation|name [n], n from 1 to 100";
            let (place, after) = split_place(rest).ok_or_else(|| invalid(USAGE))?;
            let n = match after.trim() {
                "" => HISTORY_DEFAULT,
                n => n
                    .parse()
                    .ok()
                    .filter(|n| (1..=HISTORY_MAX).contains(n))
                    .ok_or_else(|| invalid(USAGE))?,
            };
            Ok(Command::History { place, n })
        }
        "READ" => {
            const USAGE: &str = "READ conversation|name seq";
            let (place, after) = split_place(rest).ok_or_else(|| invalid(USAGE))?;
            let seq = after
                .trim()
                .parse()
                .ok()
                .filter(|&s: &i64| s > 0)
                .ok_or_else(|| invalid(USAGE))?;
            Ok(Command::Read {
                place,
                seq: Seq(seq),
            })
        }
        _ => Err(CommandError::Unknown),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: &str) -> Who {
        Who::Name(n.into())
    }

    #[test]
    fn commands_parse_in_any_case() {
        assert_eq!(parse("help"), Ok(Command::Help));
        assert_eq!(parse("  Who"), Ok(Command::Who));
        assert_eq!(parse("QUIT "), Ok(Command::Quit));
        assert_eq!(
            parse("login alice correct horse  battery"),
            Ok(Command::Login {
                name: "alice".into(),
                password: "correct horse  battery".into()
            })
        );
        assert_eq!(parse("JOIN 7"), Ok(Command::Join(CommunityId(7))));
    }

    #[test]
    fn names_are_bare_quoted_or_by_id() {
        assert_eq!(
            parse("MSG bob  hi there "),
            Ok(Command::Msg {
                to: name("bob"),
                text: "hi there ".into()
            })
        );
        assert_eq!(
            parse(r#"MSG "Ann \"A\" Lee" hello"#),
            Ok(Command::Msg {
                to: name(r#"Ann "A" Lee"#),
                text: "hello".into()
            })
        );
        assert_eq!(
            parse("msg #42 yo"),
            Ok(Command::Msg {
                to: Who::Id(UserId(42)),
                text: "yo".into()
            })
        );
        assert_eq!(
            parse(r#"LOGIN "Ann Lee" pw"#),
            Ok(Command::Login {
                name: "Ann Lee".into(),
                password: "pw".into()
            })
        );
    }

    #[test]
    fn places_are_conversations_or_people() {
        assert_eq!(
            parse("HISTORY p:1:2 5"),
            Ok(Command::History {
                place: Place::Conversation(ConversationId::Private(UserId(1), UserId(2))),
                n: 5
            })
        );
        assert_eq!(
            parse("HISTORY bob"),
            Ok(Command::History {
                place: Place::With(name("bob")),
                n: HISTORY_DEFAULT
            })
        );
        assert_eq!(
            parse(r#"READ "Ann Lee" 3"#),
            Ok(Command::Read {
                place: Place::With(name("Ann Lee")),
                seq: Seq(3)
            })
        );
        assert_eq!(
            parse("READ g:7 12"),
            Ok(Command::Read {
                place: Place::Conversation(ConversationId::Group(CommunityId(7))),
                seq: Seq(12)
            })
        );
    }

    #[test]
    fn bad_lines_say_which_way_they_are_bad() {
        assert_eq!(parse("SHOUT hi"), Err(CommandError::Unknown));
        assert_eq!(parse(""), Err(CommandError::Unknown));
        for bad in [
            "MSG bob",
            "MSG",
            "MSG \"unterminated hi",
            "GROUP x hi",
            "GROUP 0 hi",
            "GROUP 7",
            "JOIN",
            "JOIN -1",
            "HISTORY",
            "HISTORY g:7 0",
            "HISTORY g:7 101",
            "HISTORY g:7 x",
            "READ g:7",
            "READ g:7 -1",
            "LOGIN alice",
            "LOGIN #3 pw",
            "WHO me",
            "PING pong",
        ] {
            assert_eq!(
                parse(bad).map_err(|e| e.code()),
                Err("invalid_command"),
                "{bad}"
            );
        }
    }

    #[test]
    fn sends_are_told_by_keyword() {
        assert!(Command::is_send("msg") && Command::is_send("GROUP"));
        assert!(!Command::is_send("JOIN"));
    }
}
