//! Drawing: reads the [`Model`] and paints one frame. No state lives here.

use ratatui::layout::{Alignment, Constraint, Direction, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, List, ListItem, ListState, Paragraph, Wrap};
use ratatui::Frame;

use super::model::*;
use crate::types::{ChatMessage, ConversationId, Media};

/// The keys, as `?` shows them.
pub const KEYS: &[(&str, &str)] = &[
    ("Tab", "switch between the list and the composer"),
    ("↑/↓ j/k", "pick a conversation (in the list)"),
    ("Ctrl-N/Ctrl-P", "next/previous conversation (anywhere)"),
    ("Enter", "open the chat (list) / send (composer)"),
    ("Esc", "back to the list; close a prompt"),
    (
        "PgUp/PgDn",
        "scroll the chat; older pages load on the way up",
    ),
    ("a", "add a contact by name"),
    ("g", "join a group by id or name"),
    ("n", "create a group"),
    ("L", "leave the selected group"),
    ("r", "reconnect now and reload the lists"),
    ("O", "log out (forgets the remembered session)"),
    ("q / Ctrl-C", "quit"),
    ("? / F1", "this help; any key closes it"),
];

/// Paints the whole screen.
pub fn draw(f: &mut Frame, m: &Model) {
    let area = f.area();
    match &m.screen {
        Screen::Menu => menu(f, m, area),
        Screen::Form(form) => form_view(f, m, form, area),
        Screen::Main => main_view(f, m, area),
    }
    if m.help {
        help(f, area);
    }
}

fn notice_line(m: &Model) -> Line<'static> {
    match &m.notice {
        Some(Notice::Error(t)) => Line::from(Span::styled(
            format!("✗ {t}"),
            Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
        )),
        Some(Notice::Info(t)) => Line::from(Span::styled(
            format!("• {t}"),
            Style::default().fg(Color::Green),
        )),
        None => Line::from(""),
    }
}

fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

fn menu(f: &mut Frame, m: &Model, area: Rect) {
    let r = centered(area, 46, 11);
    let mut lines = vec![
        Line::from(Span::styled(
            "Chorus",
            Style::default().add_modifier(Modifier::BOLD),
        )),
        Line::from(Span::styled(
            m.server.clone(),
            Style::default().fg(Color::DarkGray),
        )),
        Line::from(""),
    ];
    for (i, item) in MENU.iter().enumerate() {
        let text = format!(
            "{} {}. {item}",
            if i == m.menu_index { "▶" } else { " " },
            i + 1
        );
        let style = if i == m.menu_index {
            Style::default()
                .fg(Color::Cyan)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::default()
        };
        lines.push(Line::from(Span::styled(text, style)));
    }
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled(
        "↑/↓ Enter, or 1 2 3 · ? keys",
        Style::default().fg(Color::DarkGray),
    )));
    let p = Paragraph::new(lines)
        .alignment(Alignment::Center)
        .block(Block::default().borders(Borders::ALL).title(" Welcome "));
    f.render_widget(p, r);
    let n = Rect::new(
        area.x,
        area.bottom().saturating_sub(1),
        area.width,
        1.min(area.height),
    );
    f.render_widget(Paragraph::new(notice_line(m)), n);
}

fn form_view(f: &mut Frame, m: &Model, form: &Form, area: Rect) {
    let r = centered(area, 50, 10);
    let title = match form.kind {
        FormKind::Login => " Log in ",
        FormKind::Register => " Register ",
    };
    let field = |label: &str, value: String, active: bool| {
        let style = if active {
            Style::default()
                .fg(Color::Cyan)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::default()
        };
        Line::from(vec![
            Span::styled(format!("{label:>9}: "), style),
            Span::raw(value),
            Span::raw(if active { "▏" } else { "" }),
        ])
    };
    let lines = vec![
        Line::from(""),
        field("Name", form.name.clone(), form.field == 0),
        field(
            "Password",
            "•".repeat(form.password.chars().count()),
            form.field == 1,
        ),
        Line::from(""),
        Line::from(Span::styled(
            if form.busy {
                "working…"
            } else {
                "Enter: next/submit · Tab: field · Esc: back"
            },
            Style::default().fg(Color::DarkGray),
        )),
    ];
    let p = Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(title));
    f.render_widget(p, r);
    let n = Rect::new(
        area.x,
        area.bottom().saturating_sub(1),
        area.width,
        1.min(area.height),
    );
    f.render_widget(Paragraph::new(notice_line(m)), n);
}

fn link_span(m: &Model) -> Span<'static> {
    match &m.link {
        Link::Online => Span::styled("● connected", Style::default().fg(Color::Green)),
        Link::Connecting => Span::styled("◌ connecting…", Style::default().fg(Color::Yellow)),
        Link::Offline => Span::styled("○ offline", Style::default().fg(Color::DarkGray)),
        Link::Reconnecting { retry_in_ms, .. } => Span::styled(
            format!(
                "◌ reconnecting in {:.1}s (r: now)",
                *retry_in_ms as f64 / 1000.0
            ),
            Style::default()
                .fg(Color::Yellow)
                .add_modifier(Modifier::BOLD),
        ),
    }
}

fn main_view(f: &mut Frame, m: &Model, area: Rect) {
    let rows = Layout::default()
        .direction(Direction::Vertical)
        .constraints([
            Constraint::Length(1),
            Constraint::Min(3),
            Constraint::Length(3),
            Constraint::Length(1),
        ])
        .split(area);
    let me = m.me.as_ref().map(|u| u.name.clone()).unwrap_or_default();
    let top = Line::from(vec![
        Span::styled(
            " Chorus ",
            Style::default().add_modifier(Modifier::BOLD | Modifier::REVERSED),
        ),
        Span::raw(format!(" {me} @ {}  ", m.server)),
        link_span(m),
        Span::styled("   ? keys", Style::default().fg(Color::DarkGray)),
    ]);
    f.render_widget(Paragraph::new(top), rows[0]);

    let cols = Layout::default()
        .direction(Direction::Horizontal)
        .constraints([Constraint::Length(26), Constraint::Min(20)])
        .split(rows[1]);
    conversation_list(f, m, cols[0]);
    chat_pane(f, m, cols[1]);

    let (title, text) = match &m.prompt {
        Some((kind, t)) => (
            match kind {
                PromptKind::JoinGroup => " Join group (id or name), Enter ",
                PromptKind::NewGroup => " New group name, Enter ",
                PromptKind::AddContact => " Add contact by name, Enter ",
            },
            t.clone(),
        ),
        None => (" Message (Enter sends) ", m.composer.clone()),
    };
    let active = m.focus == Focus::Composer || m.prompt.is_some();
    let style = if active {
        Style::default().fg(Color::Cyan)
    } else {
        Style::default().fg(Color::DarkGray)
    };
    let composer = Paragraph::new(Line::from(vec![
        Span::raw(text),
        Span::raw(if active { "▏" } else { "" }),
    ]))
    .block(
        Block::default()
            .borders(Borders::ALL)
            .border_style(style)
            .title(title),
    );
    f.render_widget(composer, rows[2]);
    f.render_widget(Paragraph::new(notice_line(m)), rows[3]);
}

fn conversation_list(f: &mut Frame, m: &Model, area: Rect) {
    let items: Vec<ListItem> = m
        .entries
        .iter()
        .map(|e| {
            let (dot, color) = match e.peer {
                Peer::User(_) if e.online => ("●", Color::Green),
                Peer::User(_) => ("○", Color::DarkGray),
                Peer::Group(_) => ("#", Color::Blue),
                Peer::System => ("!", Color::Magenta),
            };
            let mut spans = vec![
                Span::styled(format!("{dot} "), Style::default().fg(color)),
                Span::raw(e.title.clone()),
            ];
            if e.unread > 0 {
                spans.push(Span::styled(
                    format!(" ({})", e.unread),
                    Style::default()
                        .fg(Color::Yellow)
                        .add_modifier(Modifier::BOLD),
                ));
            }
            ListItem::new(Line::from(spans))
        })
        .collect();
    let border = if m.focus == Focus::List && m.prompt.is_none() {
        Style::default().fg(Color::Cyan)
    } else {
        Style::default().fg(Color::DarkGray)
    };
    let list = List::new(items)
        .block(
            Block::default()
                .borders(Borders::ALL)
                .border_style(border)
                .title(" Conversations "),
        )
        .highlight_style(Style::default().add_modifier(Modifier::REVERSED));
    let mut state = ListState::default();
    if !m.entries.is_empty() {
        state.select(Some(m.selected));
    }
    f.render_stateful_widget(list, area, &mut state);
    if m.entries.is_empty() {
        let hint = Paragraph::new("No conversations yet.\na: add a contact\ng: join a group")
            .style(Style::default().fg(Color::DarkGray));
        f.render_widget(hint, area.inner(ratatui::layout::Margin::new(1, 1)));
    }
}

/// `HH:MM` (UTC) of an epoch-ms time.
fn clock(ts: i64) -> String {
    let secs = ts.div_euclid(1000).rem_euclid(86_400);
    format!("{:02}:{:02}", secs / 3600, secs % 3600 / 60)
}

fn message_line(m: &Model, msg: &ChatMessage) -> Line<'static> {
    let me = m.me.as_ref().map(|u| u.id);
    let who = match msg.from {
        None => "system".to_owned(),
        Some(u) => m.name_of(u),
    };
    let who_style = if msg.from == me {
        Style::default().fg(Color::Cyan)
    } else {
        Style::default().fg(Color::Yellow)
    };
    let body = match msg.media {
        Media::Text | Media::Emoji => msg.content.clone(),
        Media::Image => format!("[image {}]", msg.content),
        Media::Audio => format!("[audio {}]", msg.content),
        Media::File => format!("[file {}]", msg.content),
    };
    Line::from(vec![
        Span::styled(clock(msg.ts), Style::default().fg(Color::DarkGray)),
        Span::raw(" "),
        Span::styled(who, who_style.add_modifier(Modifier::BOLD)),
        Span::raw(": "),
        Span::raw(body),
    ])
}

/// "seen" under my last message: by the peer (private) or by how many (group).
fn seen_line(m: &Model, conversation: ConversationId, last_mine: i64) -> Option<Line<'static>> {
    let me = m.me.as_ref()?.id;
    let readers: Vec<_> = m
        .reads
        .get(&conversation)?
        .iter()
        .filter(|(u, s)| **u != me && **s >= last_mine)
        .map(|(u, _)| *u)
        .collect();
    if readers.is_empty() {
        return None;
    }
    let text = match conversation {
        ConversationId::Private(..) => "      ✓ seen".to_owned(),
        _ => format!("      ✓ seen by {}", readers.len()),
    };
    Some(Line::from(Span::styled(
        text,
        Style::default().fg(Color::Green),
    )))
}

fn chat_pane(f: &mut Frame, m: &Model, area: Rect) {
    let Some(entry) = m.current() else {
        let p = Paragraph::new("Pick a conversation on the left (↑/↓), or press ? for keys.")
            .block(Block::default().borders(Borders::ALL).title(" Chat "));
        f.render_widget(p, area);
        return;
    };
    let conversation = entry.conversation;
    let thread = m.threads.get(&conversation);
    let mut lines: Vec<Line> = Vec::new();
    match thread {
        Some(t) if t.loading => lines.push(Line::from(Span::styled(
            "loading…",
            Style::default().fg(Color::DarkGray),
        ))),
        Some(t) if t.complete => lines.push(Line::from(Span::styled(
            "— start of the conversation —",
            Style::default().fg(Color::DarkGray),
        ))),
        Some(t) if !t.messages.is_empty() => lines.push(Line::from(Span::styled(
            "— PgUp for older —",
            Style::default().fg(Color::DarkGray),
        ))),
        _ => {}
    }
    let me = m.me.as_ref().map(|u| u.id);
    let mut last_mine = None;
    if let Some(t) = thread {
        for msg in t.messages.values() {
            lines.push(message_line(m, msg));
            if msg.from.is_some() && msg.from == me {
                last_mine = Some(msg.seq);
            }
        }
    }
    if let Some(seq) = last_mine {
        if let Some(l) = seen_line(m, conversation, seq) {
            lines.push(l);
        }
    }
    for o in m.outgoing.iter().filter(|o| o.conversation == conversation) {
        let (tail, style) = match &o.failed {
            None => (
                "  (sending…)".to_owned(),
                Style::default().fg(Color::DarkGray),
            ),
            Some(e) => (
                format!("  ✗ not sent: {e}"),
                Style::default().fg(Color::Red),
            ),
        };
        lines.push(Line::from(vec![
            Span::styled("--:-- me: ", style),
            Span::styled(o.content.clone(), style),
            Span::styled(tail, style),
        ]));
    }
    if let Some(u) = m.typing_in(conversation) {
        lines.push(Line::from(Span::styled(
            format!("{} is typing…", m.name_of(u)),
            Style::default()
                .fg(Color::DarkGray)
                .add_modifier(Modifier::ITALIC),
        )));
    }
    let inner_h = area.height.saturating_sub(2) as usize;
    let end = lines
        .len()
        .saturating_sub(m.scroll.min(lines.len().saturating_sub(1)));
    let start = end.saturating_sub(inner_h);
    let shown: Vec<Line> = lines[start..end].to_vec();
    let title = match entry.peer {
        Peer::User(_) => format!(
            " {} {} ",
            entry.title,
            if entry.online {
                "● online"
            } else {
                "○ offline"
            }
        ),
        Peer::Group(id) => format!(" # {} (group {id}) ", entry.title),
        Peer::System => " system notices ".to_owned(),
    };
    let p = Paragraph::new(shown)
        .wrap(Wrap { trim: false })
        .block(Block::default().borders(Borders::ALL).title(title));
    f.render_widget(p, area);
}

fn help(f: &mut Frame, area: Rect) {
    let r = centered(area, 70, KEYS.len() as u16 + 4);
    f.render_widget(Clear, r);
    let mut lines = vec![Line::from("")];
    for (k, what) in KEYS {
        lines.push(Line::from(vec![
            Span::styled(format!("{k:>14}  "), Style::default().fg(Color::Cyan)),
            Span::raw(*what),
        ]));
    }
    let p = Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(" Keys "));
    f.render_widget(p, r);
}
