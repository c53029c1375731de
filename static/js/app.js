// The Chorus web client: sign-in, friends, groups and the chat window.
// Plain ES modules, no build step. All user data is rendered with textContent.

import { api, upload, getToken, setToken, hooks } from './api.js';
import { ChatSocket } from './socket.js';
import { el, $, avatar, isUploadUrl, fmtTime, fmtDay, dayKey, fmtShort } from './dom.js';

const PAGE = 50;
/** The server's `chat.max_content_bytes` (UTF-8 bytes, not characters). */
const MAX_BYTES = 8192;
const utf8 = new TextEncoder();
const TYPING_SEND_MS = 2000;
const TYPING_SHOW_MS = 4000;
const EMOJI = ['😀', '😂', '🥲', '😊', '😍', '😘', '😎', '🤔', '😴', '😭', '😡', '🥳', '👍', '👎', '👏', '🙏',
  '💪', '👋', '🤝', '❤️', '💔', '🔥', '✨', '🎉', '☕', '🍕', '🍺', '🌞', '🌧️', '⚽', '🎵', '✅', '❌', '👀', '💯', '🚀'];
const narrow = window.matchMedia('(max-width: 760px)');
// On touch screens Enter makes a new line (the button sends) and opening a chat does not pop
// the keyboard up.
const touch = window.matchMedia('(pointer: coarse)');

// ---------------------------------------------------------------------------------------------
// State

const S = {
  me: null,
  contacts: new Map(), // user id -> user
  groups: new Map(), // community id -> community
  users: new Map(), // user id -> user (names of group members)
  convs: new Map(), // conversation id -> Conv
  pending: new Map(), // client id -> pending message
  active: null, // conversation id on screen
  tab: 'chats',
  everConnected: false,
  connected: false, // the socket is open: presence dots are only shown as live while it is
  focused: document.hasFocus(), // the window has focus: only then is what shows "seen"
  pinned: true, // the open chat is scrolled to the bottom and stays there as content grows
};

const socket = new ChatSocket(getToken, {
  open: onSocketOpen,
  frame: onFrame,
  state: onSocketState,
  closed: (code) => { if (code === 4401) endSession('You were logged out.'); },
});

function privateConv(a, b) {
  return `p:${Math.min(a, b)}:${Math.max(a, b)}`;
}

function conv(id) {
  let c = S.convs.get(id);
  if (!c) {
    const [kind, x, y] = id.split(':');
    c = {
      id,
      kind: kind === 'p' ? 'private' : kind === 'g' ? 'group' : 'system',
      peer: kind === 'p' ? (Number(x) === S.me?.id ? Number(y) : Number(x)) : Number(x),
      msgs: new Map(), // seq -> message
      nodes: new Map(), // key -> <li>
      maxSeq: 0,
      myRead: 0,
      sentRead: 0,
      unseen: new Set(), // seqs of others' messages that came over the socket and are not read
      readBy: new Map(), // user -> seq
      typing: new Map(), // user -> timer
      lastTypingSent: 0,
      historyLoaded: false,
      loadingOlder: false,
      draft: '',
    };
    S.convs.set(id, c);
  }
  return c;
}

function minSeq(c) {
  let min = Infinity;
  for (const seq of c.msgs.keys()) min = Math.min(min, seq);
  return min;
}

// The server sends everything after the user's read cursor when a socket opens, so what came
// over the socket from others and was not viewed is unread; history pages never count.
function unreadCount(c) {
  let n = 0;
  for (const seq of c.unseen) if (seq > c.myRead) n += 1;
  return n;
}

function lastMessage(c) {
  let last = null;
  for (const m of c.msgs.values()) if (!last || m.seq > last.seq) last = m;
  for (const p of S.pending.values()) if (p.conversation === c.id && (!last || p.ts >= last.ts)) last = p;
  return last;
}

function userName(id) {
  if (id === S.me?.id) return S.me.name;
  if (!id) return SYSTEM_NAME;
  const u = S.contacts.get(id) || S.users.get(id);
  if (u) return u.name;
  fetchUser(id);
  return '…';
}

// Names of people we do not hold yet are looked up in batches; an account that no longer
// exists is absent from the answer and shows as "Deleted account" (no 404 per name).
const fetching = new Set();
let lookupQueue = [];
function fetchUser(id) {
  if (fetching.has(id) || !Number.isInteger(id)) return;
  fetching.add(id);
  lookupQueue.push(id);
  if (lookupQueue.length === 1) queueMicrotask(lookupUsers);
}

async function lookupUsers() {
  const ids = lookupQueue.splice(0, 100);
  if (lookupQueue.length) queueMicrotask(lookupUsers);
  try {
    const found = await api('GET', `/api/users?ids=${ids.join(',')}`);
    const known = new Set();
    for (const u of found) { S.users.set(u.id, u); known.add(u.id); }
    for (const id of ids) if (!known.has(id)) S.users.set(id, { id, name: DELETED_NAME, deleted: true });
    renderActive();
    renderLists();
  } catch {
    for (const id of ids) fetching.delete(id); // asked again on the next render
  }
}

function isViewing(c) {
  return S.active === c.id && document.visibilityState === 'visible' && S.focused
    && (!narrow.matches || document.body.classList.contains('chat-open'));
}

function newClientId() {
  if (crypto.randomUUID && window.isSecureContext) return `c-${crypto.randomUUID()}`;
  const rnd = crypto.getRandomValues(new Uint32Array(4));
  return `c-${Date.now().toString(36)}-${Array.from(rnd, (x) => x.toString(36)).join('')}`;
}

// ---------------------------------------------------------------------------------------------
// Session

hooks.onUnauthorized = () => endSession('Your session has ended. Please sign in again.');

async function startSession() {
  const me = await api('GET', '/api/users/me');
  S.me = me;
  S.users.set(me.id, me);
  $('auth-view').hidden = true;
  $('app-view').hidden = false;
  renderMe();
  await Promise.all([loadContacts(), loadGroups()]);
  socket.start();
  loadPreviews();
}

/**
 * Every conversation of ours (strangers' requests and the system inbox too), with the last
 * message of each for its preview line and its place in the list.
 */
async function loadPreviews() {
  let ids;
  try {
    const list = await api('GET', '/api/conversations');
    ids = [];
    for (const x of list) {
      const c = conv(x.conversation);
      c.myRead = Math.max(c.myRead, x.read_seq);
      c.sentRead = Math.max(c.sentRead, x.read_seq);
      if (x.last_seq > 0) ids.push(x.conversation);
    }
  } catch {
    ids = [...S.contacts.keys()].map((u) => privateConv(S.me.id, u))
      .concat([...S.groups.keys()].map((g) => `g:${g}`), [`s:${S.me.id}`]);
  }
  await Promise.all(ids.slice(0, 200).map(async (id) => {
    if (S.convs.get(id)?.historyLoaded) return;
    try {
      const page = await api('GET', `/api/conversations/${id}/messages?limit=1`);
      for (const m of page) addMessage(m, false);
    } catch { /* a preview is optional */ }
  }));
  renderLists();
  if (S.active) renderMessages();
}

function resetState() {
  for (const c of S.convs.values()) for (const t of c.typing.values()) clearTimeout(t);
  S.me = null;
  S.contacts.clear();
  S.groups.clear();
  S.users.clear();
  S.convs.clear();
  S.pending.clear();
  S.active = null;
  S.everConnected = false;
}

function endSession(message) {
  socket.stop();
  setToken(null);
  resetState();
  document.querySelectorAll('dialog[open]').forEach((d) => d.close());
  $('app-view').hidden = true;
  $('auth-view').hidden = false;
  hideBanner();
  document.title = 'Chorus';
  document.body.classList.remove('chat-open');
  $('chat-pane').hidden = true;
  $('chat-placeholder').hidden = false;
  $('user-results').hidden = true;
  $('group-results').hidden = true;
  showAuthTab('login');
  showSideTab('chats');
  if (message) $('login-error').textContent = message;
  $('login-name').focus();
}

async function logout() {
  try { await api('DELETE', '/api/sessions'); } catch { /* the token goes either way */ }
  endSession('');
}

// ---------------------------------------------------------------------------------------------
// Auth view

function showAuthTab(which) {
  const login = which === 'login';
  $('tab-login').setAttribute('aria-selected', String(login));
  $('tab-register').setAttribute('aria-selected', String(!login));
  $('tab-login').tabIndex = login ? 0 : -1;
  $('tab-register').tabIndex = login ? -1 : 0;
  $('login-form').hidden = !login;
  $('register-form').hidden = login;
  $('login-error').textContent = '';
  $('register-error').textContent = '';
}

function wireTabs(tabs, select) {
  tabs.forEach((tab, i) => {
    tab.addEventListener('click', () => select(i));
    tab.addEventListener('keydown', (e) => {
      if (e.key !== 'ArrowRight' && e.key !== 'ArrowLeft') return;
      const next = (i + (e.key === 'ArrowRight' ? 1 : tabs.length - 1)) % tabs.length;
      select(next);
      tabs[next].focus();
    });
  });
}

async function login(name, password, keep) {
  const session = await api('POST', '/api/sessions', { name, password, remember: keep });
  setToken(session.token, keep);
  await startSession();
}

function busy(form, on) {
  form.querySelectorAll('button, input, textarea').forEach((x) => { x.disabled = on; });
}

$('login-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const form = e.currentTarget;
  const name = $('login-name').value.trim();
  const password = $('login-password').value;
  const error = $('login-error');
  if (!name || !password) { error.textContent = 'Enter your user name and password.'; return; }
  error.textContent = '';
  busy(form, true);
  try {
    await login(name, password, $('login-remember').checked);
    form.reset();
  } catch (err) {
    error.textContent = err.code === 'invalid_credentials' ? 'Wrong user name or password.' : err.message;
  } finally {
    busy(form, false);
  }
});

$('register-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const form = e.currentTarget;
  const name = $('reg-name').value.trim();
  const email = $('reg-email').value.trim();
  const password = $('reg-password').value;
  const error = $('register-error');
  if (!name) { error.textContent = 'Choose a user name.'; return; }
  if (password.length < 8) { error.textContent = 'The password needs at least 8 characters.'; return; }
  error.textContent = '';
  busy(form, true);
  try {
    const body = { name, password };
    if (email) body.email = email;
    await api('POST', '/api/users', body);
    await login(name, password, $('reg-remember').checked);
    form.reset();
  } catch (err) {
    error.textContent = err.code === 'name_taken' ? 'That user name is taken. Try another.' : err.message;
  } finally {
    busy(form, false);
  }
});

wireTabs([$('tab-login'), $('tab-register')], (i) => showAuthTab(i === 0 ? 'login' : 'register'));

// ---------------------------------------------------------------------------------------------
// Contacts and groups

async function loadContacts() {
  const list = await api('GET', '/api/contacts');
  S.contacts.clear();
  for (const u of list) {
    S.contacts.set(u.id, u);
    S.users.set(u.id, u);
  }
  renderLists();
  renderActiveHead();
}

async function loadGroups() {
  const list = await api('GET', '/api/communities');
  S.groups.clear();
  for (const g of list) S.groups.set(g.id, g);
  renderLists();
  renderActiveHead();
}

function renderMe() {
  $('me-name').textContent = S.me.name;
  $('me-avatar').replaceChildren(avatar(S.me.name, S.me.avatar));
}

function previewText(c) {
  const typers = [...c.typing.keys()];
  if (typers.length) {
    return { text: c.kind === 'group' ? `${userName(typers[0])} is typing…` : 'typing…', typing: true };
  }
  const m = lastMessage(c);
  if (!m) return { text: c.kind === 'group' ? (S.groups.get(c.peer)?.description || 'No messages yet') : 'Say hello 👋' };
  const who = m.from === S.me.id ? 'You: ' : c.kind === 'group' ? `${userName(m.from)}: ` : '';
  const body = m.media === 'image' ? '📷 Photo' : m.media === 'text' || m.media === 'emoji' ? m.content : `📎 ${m.media}`;
  return { text: who + body.replace(/\s+/g, ' ').slice(0, 80) };
}

function convItem(c, name, avatarNode, extra) {
  const unread = unreadCount(c);
  const preview = previewText(c);
  const last = lastMessage(c);
  const button = el('button', {
    type: 'button',
    class: `conv-item${S.active === c.id ? ' active' : ''}${unread ? ' has-unread' : ''}`,
    dataset: { conv: c.id },
    'aria-current': S.active === c.id ? 'true' : null,
    onclick: () => openConv(c.id),
  },
  el('span', { class: 'avatar-wrap' }, avatarNode,
    extra?.presence ? el('span', { class: `dot ${extra.presence}`, 'aria-hidden': 'true' }) : null),
  el('span', { class: 'conv-text' },
    el('span', { class: 'conv-name', text: name }),
    extra?.presence ? el('span', { class: 'sr-only', text: `(${extra.presence})` }) : null,
    el('span', { class: `conv-preview${preview.typing ? ' typing' : ''}`, text: preview.text })),
  el('span', { class: 'conv-meta' },
    el('span', { class: 'conv-time', text: last ? fmtShort(last.ts) : '' }),
    unread ? el('span', { class: 'badge' }, unread > 99 ? '99+' : String(unread), el('span', { class: 'sr-only', text: ' unread' })) : null));
  return el('li', {}, button);
}

function activity(c) {
  return lastMessage(c)?.ts || 0;
}

function renderLists() {
  if (!S.me) return;
  const friends = [...S.contacts.values()].map((u) => ({ u, c: conv(privateConv(S.me.id, u.id)) }));
  friends.sort((a, b) => activity(b.c) - activity(a.c) || a.u.name.localeCompare(b.u.name));
  let friendUnread = 0;
  const all = []; // every conversation, for the one sorted list
  $('friend-list').replaceChildren(...friends.map(({ u, c }) => {
    friendUnread += unreadCount(c);
    const make = () => convItem(c, u.name, avatar(u.name, u.avatar), { presence: isOnline(u) ? 'online' : 'offline' });
    all.push({ c, make });
    return make();
  }));
  // Conversations with people who are not (or no longer) friends: "Requests", never back
  // among the friends (removing a friend is for good until one of you adds the other again).
  const strangers = [...S.convs.values()].filter((c) => c.kind === 'private' && !S.contacts.has(c.peer)
    && (c.msgs.size > 0 || S.active === c.id));
  strangers.sort((a, b) => activity(b) - activity(a));
  $('request-list').replaceChildren(...strangers.map((c) => {
    friendUnread += unreadCount(c);
    const name = userName(c.peer);
    const make = () => convItem(c, name, avatar(name, S.users.get(c.peer)?.avatar));
    all.push({ c, make });
    return make();
  }));
  $('requests-title').hidden = strangers.length === 0;
  // Notices from the operators: a conversation of their own, read like any other.
  const notices = conv(`s:${S.me.id}`);
  if (notices.msgs.size > 0) {
    friendUnread += unreadCount(notices);
    const make = () => convItem(notices, SYSTEM_NAME, systemAvatar());
    all.push({ c: notices, make });
    $('friend-list').prepend(make());
  }
  $('friends-empty').hidden = friends.length + strangers.length > 0 || notices.msgs.size > 0;

  const groups = [...S.groups.values()].map((g) => ({ g, c: conv(`g:${g.id}`) }));
  groups.sort((a, b) => activity(b.c) - activity(a.c) || a.g.name.localeCompare(b.g.name));
  let groupUnread = 0;
  $('group-list').replaceChildren(...groups.map(({ g, c }) => {
    groupUnread += unreadCount(c);
    const make = () => convItem(c, g.name, avatar(g.name, g.icon, { square: true }));
    all.push({ c, make });
    return make();
  }));
  $('groups-empty').hidden = groups.length > 0;

  // One list of everything, latest activity first.
  all.sort((a, b) => activity(b.c) - activity(a.c));
  $('chat-list').replaceChildren(...all.map(({ make }) => make()));
  $('chats-empty').hidden = all.length > 0;

  setBadge($('friends-badge'), friendUnread);
  setBadge($('groups-badge'), groupUnread);
  const total = friendUnread + groupUnread;
  setBadge($('chats-badge'), total);
  document.title = total ? `(${total}) Chorus` : 'Chorus';
}

/** Whether to show a user as online: only what a live socket told us counts. */
function isOnline(u) {
  return !!(S.connected && u?.online);
}

const SYSTEM_NAME = 'Chorus notices';
const DELETED_NAME = 'Deleted account';

function systemAvatar() {
  return el('span', { class: 'avatar system', 'aria-hidden': 'true' }, el('img', { src: '/favicon.svg', alt: '' }));
}

function setBadge(node, n) {
  node.hidden = n === 0;
  node.textContent = n ? String(n) : '';
  node.setAttribute('aria-label', `${n} unread`);
}

const SIDE_TABS = ['chats', 'friends', 'groups'];

function showSideTab(which) {
  S.tab = which;
  for (const tab of SIDE_TABS) {
    const on = tab === which;
    $(`tab-${tab}`).setAttribute('aria-selected', String(on));
    $(`tab-${tab}`).tabIndex = on ? 0 : -1;
    $(`panel-${tab}`).hidden = !on;
  }
}
wireTabs(SIDE_TABS.map((tab) => $(`tab-${tab}`)), (i) => showSideTab(SIDE_TABS[i]));
$('chats-find-people').addEventListener('click', () => { showSideTab('friends'); $('user-search').focus(); });
$('chats-find-groups').addEventListener('click', () => { showSideTab('groups'); $('group-search').focus(); });

$('user-search-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const q = $('user-search').value.trim();
  const out = $('user-results');
  if (!q) { out.hidden = true; return; }
  try {
    const users = await api('GET', `/api/users?q=${encodeURIComponent(q)}`);
    out.replaceChildren(...(users.length ? users.map(userResult) : [el('li', { class: 'empty', text: 'Nobody found.' })]));
  } catch (err) {
    out.replaceChildren(el('li', { class: 'empty error', text: err.message }));
  }
  out.hidden = false;
});

function userResult(u) {
  let action;
  if (u.id === S.me.id) action = el('span', { class: 'tag', text: 'You' });
  else if (S.contacts.has(u.id)) {
    action = el('button', {
      type: 'button',
      class: 'btn small',
      text: 'Message',
      onclick: () => {
        $('user-results').hidden = true;
        $('user-search').value = '';
        openConv(privateConv(S.me.id, u.id));
      },
    });
  } else {
    action = el('span', { class: 'result-actions' }, el('button', {
      type: 'button',
      class: 'btn small',
      text: 'Message',
      'aria-label': `Message ${u.name}`,
      onclick: () => {
        S.users.set(u.id, u);
        $('user-results').hidden = true;
        $('user-search').value = '';
        openConv(privateConv(S.me.id, u.id));
      },
    }), el('button', {
      type: 'button',
      class: 'btn small primary',
      text: 'Add friend',
      'aria-label': `Add ${u.name} as a friend`,
      onclick: async (e) => {
        e.currentTarget.disabled = true;
        try {
          const friend = await api('POST', '/api/contacts', { user_id: u.id });
          S.contacts.set(friend.id, friend);
          S.users.set(friend.id, friend);
          $('user-results').hidden = true;
          $('user-search').value = '';
          renderLists();
          openConv(privateConv(S.me.id, friend.id));
        } catch (err) {
          if (err.code === 'already_contact') await loadContacts();
          else toast(err.message);
        }
      },
    }));
  }
  return el('li', { class: 'result' }, avatar(u.name, u.avatar, { size: 'small' }),
    el('span', { class: 'result-name', text: u.name }), action);
}

$('group-search-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const q = $('group-search').value.trim();
  const out = $('group-results');
  if (!q) { out.hidden = true; return; }
  try {
    const groups = await api('GET', `/api/communities/search?q=${encodeURIComponent(q)}`);
    out.replaceChildren(...(groups.length ? groups.map(groupResult) : [el('li', { class: 'empty', text: 'No group found.' })]));
  } catch (err) {
    out.replaceChildren(el('li', { class: 'empty error', text: err.message }));
  }
  out.hidden = false;
});

function groupResult(g) {
  const joined = S.groups.has(g.id);
  const action = joined
    ? el('button', {
      type: 'button',
      class: 'btn small',
      text: 'Open',
      onclick: () => {
        $('group-results').hidden = true;
        $('group-search').value = '';
        openConv(`g:${g.id}`);
      },
    })
    : el('button', {
      type: 'button',
      class: 'btn small primary',
      text: 'Join',
      'aria-label': `Join ${g.name}`,
      onclick: async (e) => {
        e.currentTarget.disabled = true;
        try {
          const group = await api('POST', `/api/communities/${g.id}/members`);
          S.groups.set(group.id, group);
        } catch (err) {
          if (err.code !== 'already_member') { toast(err.message); return; }
          await loadGroups();
        }
        $('group-results').hidden = true;
        $('group-search').value = '';
        renderLists();
        openConv(`g:${g.id}`);
      },
    });
  return el('li', { class: 'result' }, avatar(g.name, g.icon, { size: 'small', square: true }),
    el('span', { class: 'result-text' },
      el('span', { class: 'result-name', text: g.name }),
      el('span', { class: 'result-sub', text: `${g.member_count} member${g.member_count === 1 ? '' : 's'}${g.description ? ` · ${g.description}` : ''}` })),
    action);
}

// ---------------------------------------------------------------------------------------------
// The chat window

function openConv(id, { fromHistory = false } = {}) {
  const c = conv(id);
  // Back (a phone's back gesture too) returns to the list instead of leaving the app.
  if (!fromHistory) {
    if (history.state?.chat) history.replaceState({ chat: id }, '');
    else history.pushState({ chat: id }, '');
  }
  if (S.active && S.active !== id) {
    const prev = S.convs.get(S.active);
    if (prev) prev.draft = $('composer-text').value;
  }
  S.active = id;
  // The one list shows every conversation; from a friends or groups view, go to the right one.
  if (S.tab !== 'chats') showSideTab(c.kind === 'group' ? 'groups' : 'friends');
  document.body.classList.add('chat-open');
  $('chat-placeholder').hidden = true;
  $('chat-pane').hidden = false;
  $('msg-list').replaceChildren();
  $('composer-text').value = c.draft || '';
  updateByteCount();
  closeEmoji();
  renderActiveHead();
  c.divider = c.historyLoaded ? firstUnread(c) : 0;
  renderMessages();
  positionAtOpen(c);
  renderLists();
  if (!touch.matches) $('composer-text').focus();
  if (c.kind === 'group') loadMembers(c);
  if (!c.historyLoaded) loadLatest(c);
  else markRead(c);
}

function closeChat() {
  S.active = null;
  document.body.classList.remove('chat-open');
  $('chat-pane').hidden = true;
  $('chat-placeholder').hidden = false;
  renderLists();
}

function showList() {
  document.body.classList.remove('chat-open');
  const id = S.active;
  renderLists();
  document.querySelector(`.conv-item[data-conv="${id}"]`)?.focus();
}

$('back-btn').addEventListener('click', () => {
  if (history.state?.chat) history.back(); // popstate shows the list
  else showList();
});

window.addEventListener('popstate', (e) => {
  if (!S.me) return;
  const id = e.state?.chat;
  if (id && S.convs.has(id)) openConv(id, { fromHistory: true });
  else showList();
});

async function loadLatest(c) {
  try {
    const [page, reads] = await Promise.all([
      api('GET', `/api/conversations/${c.id}/messages?limit=${PAGE}`),
      api('GET', `/api/conversations/${c.id}/reads`),
    ]);
    for (const m of page) addMessage(m, false);
    // Where everyone stands now; later moves arrive as `read` frames.
    for (const r of reads) {
      if (r.user === S.me.id) {
        c.myRead = Math.max(c.myRead, r.seq);
        c.sentRead = Math.max(c.sentRead, r.seq);
      } else {
        c.readBy.set(r.user, Math.max(c.readBy.get(r.user) || 0, r.seq));
      }
    }
    // The chat opens at the first unread message: fetch back to it (a few pages at most).
    for (let pages = 0; pages < 20; pages += 1) {
      const first = minSeq(c);
      if (!(first > c.myRead + 1) || !Number.isFinite(first)) break;
      const older = await api('GET', `/api/conversations/${c.id}/messages?before=${first}&limit=${PAGE}`);
      if (!older.length) break;
      for (const m of older) addMessage(m, false);
    }
    c.historyLoaded = true;
    if (S.active === c.id) {
      c.divider = firstUnread(c);
      renderMessages();
      positionAtOpen(c);
    }
    renderLists();
    markRead(c);
  } catch (err) {
    if (err.status !== 401) toast(`Could not load the history: ${err.message}`);
  }
}

async function loadOlder(c) {
  const first = minSeq(c);
  if (c.loadingOlder || !c.historyLoaded || !(first > 1) || !Number.isFinite(first)) return;
  c.loadingOlder = true;
  const box = $('messages');
  const fromBottom = box.scrollHeight - box.scrollTop;
  try {
    const page = await api('GET', `/api/conversations/${c.id}/messages?before=${first}&limit=${PAGE}`);
    for (const m of page) addMessage(m, false);
    if (S.active === c.id) {
      renderMessages();
      box.scrollTop = box.scrollHeight - fromBottom;
    }
  } catch (err) {
    toast(`Could not load older messages: ${err.message}`);
  } finally {
    c.loadingOlder = false;
  }
}

/** The first message from someone else after my read cursor: where a chat opens. */
function firstUnread(c) {
  let first = 0;
  for (const m of c.msgs.values()) {
    if (m.seq > c.myRead && m.from !== S.me.id && (!first || m.seq < first)) first = m.seq;
  }
  return first;
}

/** Messages from others after my read cursor, for the "↓ N new" button. */
function newBelow(c) {
  let n = 0;
  for (const m of c.msgs.values()) if (m.seq > c.myRead && m.from !== S.me.id) n += 1;
  return n;
}

/** Opens at the "New messages" divider when there is one, else at the bottom. */
function positionAtOpen(c) {
  const box = $('messages');
  const divider = c.divider && $('msg-list').querySelector('li.unread-divider');
  if (divider) {
    box.scrollTop = Math.max(0, divider.offsetTop - box.offsetTop - 8);
  } else box.scrollTop = box.scrollHeight;
  S.pinned = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  updateNewButton(c);
}

function updateNewButton(c) {
  const box = $('messages');
  const away = box.scrollHeight - box.scrollTop - box.clientHeight > 80;
  const n = newBelow(c);
  const btn = $('new-btn');
  btn.hidden = !away;
  btn.textContent = n ? `↓ ${n} new` : '↓';
  btn.setAttribute('aria-label', n ? `Scroll to the newest message (${n} new)` : 'Scroll to the newest message');
}

let scrollTick = null;
$('messages').addEventListener('scroll', () => {
  const c = S.active && S.convs.get(S.active);
  const box = $('messages');
  S.pinned = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  if (c && box.scrollTop < 60) loadOlder(c);
  if (c && !scrollTick) {
    scrollTick = requestAnimationFrame(() => { scrollTick = null; markRead(c); updateNewButton(c); });
  }
});
// Images and other late content grow the list: a view at the bottom stays at the bottom.
const pin = new ResizeObserver(() => {
  if (S.pinned) $('messages').scrollTop = $('messages').scrollHeight;
});
pin.observe($('msg-list'));
pin.observe($('messages')); // the view itself shrinks when the banner or a long draft appears
$('new-btn').addEventListener('click', () => {
  const c = S.active && S.convs.get(S.active);
  $('messages').scrollTop = $('messages').scrollHeight;
  S.pinned = true;
  if (c) { markRead(c); updateNewButton(c); }
});
window.addEventListener('focus', () => {
  S.focused = true;
  const c = S.active && S.convs.get(S.active);
  if (c) markRead(c);
});
window.addEventListener('blur', () => { S.focused = false; });
$('older-btn').addEventListener('click', () => {
  const c = S.active && S.convs.get(S.active);
  if (c) loadOlder(c);
});

/** The newest message that is on screen now (its first lines at least), or 0. */
function lastVisibleSeq() {
  const bottom = $('messages').getBoundingClientRect().bottom;
  const nodes = $('msg-list').querySelectorAll('li.msg[data-seq]');
  for (let i = nodes.length - 1; i >= 0; i -= 1) {
    const r = nodes[i].getBoundingClientRect();
    if (r.top + Math.min(r.height, 24) <= bottom + 1) return Number(nodes[i].dataset.seq);
  }
  return 0;
}

/** Marks read what is on screen in a focused, visible window; nothing more. */
function markRead(c) {
  // Until the history and cursors are loaded nothing is known to be on screen.
  if (!isViewing(c) || !c.maxSeq || !c.historyLoaded) return;
  const seq = Math.min(lastVisibleSeq(), c.maxSeq);
  if (seq <= c.myRead) return;
  c.myRead = seq;
  for (const s of c.unseen) if (s <= seq) c.unseen.delete(s);
  if (c.sentRead < seq && socket.send({ type: 'read', conversation: c.id, seq })) c.sentRead = seq;
  updateNewButton(c);
  renderLists();
}

function renderActiveHead() {
  const c = S.active && S.convs.get(S.active);
  if (!c || !S.me) return;
  let title;
  let sub;
  let av;
  const typers = [...c.typing.keys()];
  if (c.kind === 'group') {
    const g = S.groups.get(c.peer);
    title = g?.name || `Group ${c.peer}`;
    av = avatar(title, g?.icon, { square: true });
    const online = c.members ? c.members.filter((id) => id === S.me.id || isOnline(S.users.get(id))).length : null;
    sub = typers.length
      ? `${typers.map(userName).join(', ')} ${typers.length > 1 ? 'are' : 'is'} typing…`
      : g ? `${g.member_count} member${g.member_count === 1 ? '' : 's'}${online !== null && S.connected ? `, ${online} online` : ''}${g.description ? ` · ${g.description}` : ''}` : '';
  } else if (c.kind === 'system') {
    title = SYSTEM_NAME;
    av = systemAvatar();
    sub = 'Messages from the operators of this server';
  } else {
    const u = S.contacts.get(c.peer) || S.users.get(c.peer);
    title = userName(c.peer);
    av = el('span', { class: 'avatar-wrap' }, avatar(title, u?.avatar),
      el('span', { class: `dot ${isOnline(u) ? 'online' : 'offline'}`, 'aria-hidden': 'true' }));
    sub = u?.deleted ? 'This account was deleted' : typers.length ? 'typing…' : !S.connected ? 'Connecting…'
      : u?.online ? 'Online' : !S.contacts.has(c.peer) ? 'Not in your friends' : lastSeen(u);
  }
  $('chat-title').textContent = title;
  $('chat-sub').textContent = sub;
  $('chat-sub').classList.toggle('typing', typers.length > 0);
  $('chat-avatar').replaceChildren(av);
  $('members-btn').hidden = c.kind !== 'group';
  $('unfriend-btn').hidden = c.kind !== 'private' || !S.contacts.has(c.peer);
  const deleted = c.kind === 'private' && S.users.get(c.peer)?.deleted;
  $('addfriend-btn').hidden = c.kind !== 'private' || S.contacts.has(c.peer) || !!deleted;
  $('composer').hidden = c.kind === 'system' || !!deleted;
}

/** "last seen …" for someone offline, from the server's record (or the presence frame). */
function lastSeen(u) {
  if (!u?.last_seen) return 'Offline';
  const ago = Date.now() - u.last_seen;
  if (ago < 60000) return 'last seen just now';
  if (ago < 3600000) return `last seen ${Math.floor(ago / 60000)} min ago`;
  if (dayKey(u.last_seen) === dayKey(Date.now())) return `last seen today at ${fmtTime(u.last_seen)}`;
  return `last seen ${new Date(u.last_seen).toLocaleDateString([], { day: 'numeric', month: 'short' })} at ${fmtTime(u.last_seen)}`;
}

/** Who is in an open group and online: for the count in its header. */
async function loadMembers(c) {
  try {
    const members = await api('GET', `/api/communities/${c.peer}/members`);
    for (const u of members) if (u.id !== S.me.id) S.users.set(u.id, { ...S.users.get(u.id), ...u });
    c.members = members.map((u) => u.id);
    const g = S.groups.get(c.peer);
    if (g) g.member_count = members.length;
    if (S.active === c.id) renderActiveHead();
  } catch { /* the count stays without "online" */ }
}

function renderActive() {
  renderActiveHead();
  renderMessages();
}

function sortedItems(c) {
  const confirmed = [...c.msgs.values()].sort((a, b) => a.seq - b.seq);
  const pending = [...S.pending.values()].filter((p) => p.conversation === c.id).sort((a, b) => a.ts - b.ts);
  return confirmed.concat(pending);
}

/** Re-renders the open conversation, reusing the nodes of messages already shown. */
function renderMessages({ toBottom = false } = {}) {
  const c = S.active && S.convs.get(S.active);
  if (!c) return;
  const box = $('messages');
  const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 120;
  const items = sortedItems(c);
  const out = [];
  let prev = null;
  let lastMine = null;
  const sameRun = (a, b) => a && b && a.from === b.from && dayKey(a.ts) === dayKey(b.ts) && Math.abs(b.ts - a.ts) < 300000;
  items.forEach((m, i) => {
    const day = dayKey(m.ts);
    if (!prev || dayKey(prev.ts) !== day) {
      out.push(el('li', { class: 'day' }, el('span', { text: fmtDay(m.ts) })));
    }
    if (c.divider && m.seq === c.divider && !m.pending) {
      out.push(el('li', { class: 'unread-divider', role: 'separator' }, el('span', { text: 'New messages' })));
    }
    const node = messageNode(c, m, sameRun(prev, m), !sameRun(m, items[i + 1]));
    out.push(node);
    if (m.from === S.me.id && !m.pending) lastMine = m;
    prev = m;
  });
  // Read receipts under my last sent message.
  for (const node of c.nodes.values()) node.querySelector('.receipt')?.replaceChildren();
  if (lastMine) {
    const node = c.nodes.get(`s${lastMine.seq}`);
    const receipt = node?.querySelector('.receipt');
    if (receipt) receipt.textContent = receiptText(c, lastMine);
  }
  $('msg-list').replaceChildren(...out);
  const first = minSeq(c);
  $('older-btn').hidden = !(c.historyLoaded && first > 1 && Number.isFinite(first));
  $('history-start').hidden = !(c.historyLoaded && (first === 1 || items.length === 0));
  if (toBottom || nearBottom) box.scrollTop = box.scrollHeight;
  if (toBottom) S.pinned = true;
  updateNewButton(c);
}

function receiptText(c, m) {
  if (c.kind === 'private') {
    return (c.readBy.get(c.peer) || 0) >= m.seq ? 'Seen' : 'Sent';
  }
  const readers = [...c.readBy.entries()].filter(([u, seq]) => u !== S.me.id && seq >= m.seq).map(([u]) => userName(u));
  if (!readers.length) return 'Sent';
  return `Seen by ${readers.slice(0, 3).join(', ')}${readers.length > 3 ? ` +${readers.length - 3}` : ''}`;
}

function messageNode(c, m, grouped, tail) {
  const key = m.pending ? `c${m.clientId}` : `s${m.seq}`;
  let node = c.nodes.get(key);
  const mine = m.from === S.me.id;
  if (!node) {
    const bubble = el('div', { class: 'bubble' });
    if (m.media === 'image') {
      if (isUploadUrl(m.content)) {
        bubble.classList.add('image');
        bubble.append(el('button', {
          type: 'button',
          class: 'thumb',
          'aria-label': 'Open image full size',
          onclick: () => openImage(m.content),
        }, el('img', {
          src: m.content,
          alt: `Image from ${userName(m.from)}`,
          loading: 'lazy',
          decoding: 'async',
          // The server names uploads with their size: the box is reserved before the image loads.
          ...thumbSize(m.content),
        })));
      } else {
        bubble.append(el('p', { class: 'text muted', text: '[image unavailable]' }));
      }
    } else if (m.media === 'emoji') {
      bubble.classList.add('emoji-only');
      bubble.append(el('p', { class: 'text', text: m.content }));
    } else if (m.media === 'text') {
      const onlyEmoji = /^(\p{Extended_Pictographic}|\p{Emoji_Component}|\uFE0F|\u200D|\s){1,12}$/u.test(m.content)
        && /\p{Extended_Pictographic}/u.test(m.content) && [...m.content.trim()].length <= 6;
      if (onlyEmoji) bubble.classList.add('emoji-only');
      bubble.append(el('p', { class: 'text' }, ...linkify(m.content)));
    } else if (isUploadUrl(m.content)) {
      bubble.append(el('a', { href: m.content, target: '_blank', rel: 'noopener', text: `📎 ${m.media} attachment` }));
    } else {
      bubble.append(el('p', { class: 'text', text: m.content }));
    }
    const meta = el('div', { class: 'meta' },
      el('time', { datetime: new Date(m.ts).toISOString(), title: new Date(m.ts).toLocaleString(), text: fmtTime(m.ts) }),
      el('span', { class: 'status' }),
      mine ? el('span', { class: 'receipt' }) : null);
    // A tap shows the time of a bubble inside a run (only the last one always shows it).
    bubble.addEventListener('click', (e) => {
      if (!e.target.closest('a, button')) node.classList.toggle('show-time');
    });
    node = el('li', {
      class: `msg ${mine ? 'mine' : 'theirs'}`,
      dataset: m.pending ? { client: m.clientId } : { seq: String(m.seq) },
    });
    if (!mine) node.append(el('span', { class: 'avatar-col' }));
    node.append(el('div', { class: 'msg-body' },
      (c.kind === 'group' && !mine) ? el('span', { class: 'sender' }) : null,
      bubble, meta));
    c.nodes.set(key, node);
  }
  node.classList.toggle('grouped', !!grouped);
  node.classList.toggle('tail', !!tail);
  node.classList.toggle('pending', !!m.pending);
  node.classList.toggle('failed', !!m.failed);
  const sender = node.querySelector('.sender');
  if (sender) sender.textContent = grouped ? '' : userName(m.from);
  const col = node.querySelector('.avatar-col');
  if (col && c.kind === 'group') {
    const u = S.users.get(m.from);
    const want = tail ? `${m.from}:${u?.name || ''}:${u?.avatar || ''}` : '';
    if (col.dataset.who !== want) {
      col.dataset.who = want;
      col.replaceChildren(tail ? avatar(userName(m.from), u?.avatar, { size: 'small' }) : '');
    }
  }
  const status = node.querySelector('.status');
  if (m.failed) {
    status.replaceChildren(`Not sent: ${m.failed} `,
      el('button', { type: 'button', class: 'link', text: 'Retry', onclick: () => retry(m) }), ' · ',
      m.media === 'text' ? el('button', { type: 'button', class: 'link', text: 'Edit', onclick: () => dropFailed(m, true) }) : null,
      m.media === 'text' ? ' · ' : null,
      el('button', { type: 'button', class: 'link', text: 'Discard', onclick: () => dropFailed(m, false) }));
  } else status.textContent = m.pending ? 'Sending…' : '';
  return node;
}

const SIZE_RE = /\.([1-9]\d{0,4})x([1-9]\d{0,4})\.[a-z]+$/;
const THUMB_MAX = 280;
const THUMB_MIN = 60;

/** The shown size of an upload whose URL carries its pixel size (`<uuid>.<w>x<h>.<ext>`). */
function thumbSize(url) {
  const m = SIZE_RE.exec(url);
  if (!m) return {};
  const w = Number(m[1]);
  const h = Number(m[2]);
  const maxW = Math.min(THUMB_MAX, Math.floor(window.innerWidth * 0.6));
  const k = Math.min(1, maxW / w, THUMB_MAX / h);
  return { width: Math.max(THUMB_MIN, Math.round(w * k)), height: Math.max(THUMB_MIN, Math.round(h * k)) };
}

const LINK_RE = /\bhttps?:\/\/[^\s<>"'`]+/giu;

/** Text with its http(s) links as anchors that open in a new tab; everything else stays text. */
function linkify(text) {
  const out = [];
  let at = 0;
  for (const match of text.matchAll(LINK_RE)) {
    let raw = match[0];
    // Trailing punctuation belongs to the sentence, not the link.
    while (/[.,;:!?)\]}'"»]$/u.test(raw) && !(raw.endsWith(')') && raw.includes('('))) raw = raw.slice(0, -1);
    let url;
    try { url = new URL(raw); } catch { continue; }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') continue;
    if (match.index > at) out.push(text.slice(at, match.index));
    const a = document.createElement('a');
    a.href = url.href;
    a.target = '_blank';
    a.rel = 'noopener noreferrer';
    a.textContent = raw;
    out.push(a);
    at = match.index + raw.length;
  }
  if (at < text.length) out.push(text.slice(at));
  return out;
}

$('image-dialog').addEventListener('click', (e) => {
  if (e.target === e.currentTarget) e.currentTarget.close();
});

function openImage(url) {
  if (!isUploadUrl(url)) return;
  $('lightbox-img').setAttribute('src', url);
  $('image-dialog').showModal();
}

// ---------------------------------------------------------------------------------------------
// Incoming frames

/** Adds a stored message once per (conversation, seq); returns whether it was new. */
function addMessage(m, live) {
  if (!m || typeof m.seq !== 'number' || typeof m.conversation !== 'string') return false;
  const c = conv(m.conversation);
  const mine = m.type !== 'system' && m.from === S.me.id;
  const have = c.msgs.get(m.seq);
  if (have) {
    // Known from a history page, now delivered as missed: the server says it is unread.
    if (live && have.historic && !mine && m.seq > c.myRead) {
      have.historic = false;
      c.unseen.add(m.seq);
      return 'unread';
    }
    return false;
  }
  const msg = {
    msg_id: m.msg_id,
    conversation: m.conversation,
    seq: m.seq,
    from: m.type === 'system' ? 0 : m.from,
    media: m.type === 'system' ? 'text' : m.media || 'text',
    content: String(m.content ?? ''),
    ts: m.ts || Date.now(),
    historic: !live,
  };
  c.msgs.set(m.seq, msg);
  if (live && !mine && m.seq > c.myRead) c.unseen.add(m.seq);
  c.maxSeq = Math.max(c.maxSeq, m.seq);
  if (live && c.typing.has(msg.from)) {
    clearTimeout(c.typing.get(msg.from));
    c.typing.delete(msg.from);
  }
  return true;
}

function onFrame(f) {
  switch (f.type) {
    case 'message': {
      const added = addMessage(f, true);
      if (!added) return;
      const c = conv(f.conversation);
      if (added === 'unread') { afterChange(c); return; }
      notifyMessage(c, c.msgs.get(f.seq));
      if (c.kind === 'private' && !S.contacts.has(c.peer) && f.from !== S.me.id) loadContacts().catch(() => {});
      if (c.kind === 'group' && !S.groups.has(c.peer)) loadGroups().catch(() => {});
      afterChange(c);
      break;
    }
    case 'ack': {
      const p = S.pending.get(f.id);
      if (!p) return;
      S.pending.delete(f.id);
      const c = conv(f.conversation);
      c.nodes.delete(`c${p.clientId}`);
      addMessage({ ...p, type: 'message', msg_id: f.msg_id, seq: f.seq, ts: f.ts, conversation: f.conversation }, false);
      afterChange(c);
      break;
    }
    case 'system': {
      // Listed like any conversation (with an unread badge), read when it is opened.
      if (!addMessage({ ...f, type: 'system' }, true)) return;
      afterChange(conv(f.conversation));
      break;
    }
    case 'presence': {
      for (const map of [S.contacts, S.users]) {
        const u = map.get(f.user);
        if (u) {
          u.online = !!f.online;
          if (!f.online) u.last_seen = Date.now();
        }
      }
      renderLists();
      renderActiveHead();
      break;
    }
    case 'read': {
      const c = conv(f.conversation);
      if (f.user === S.me.id) {
        c.myRead = Math.max(c.myRead, f.seq);
        c.sentRead = Math.max(c.sentRead, f.seq);
        renderLists();
      } else {
        c.readBy.set(f.user, Math.max(c.readBy.get(f.user) || 0, f.seq));
        if (S.active === c.id) renderMessages();
      }
      break;
    }
    case 'contact': {
      // Someone added or removed us (or we did, in another tab): the list follows at once.
      loadContacts().catch(() => {});
      break;
    }
    case 'member': {
      // Member counts change; a group we left in another tab drops out of the list.
      const open = S.active && S.convs.get(S.active);
      loadGroups().then(() => {
        // Only a member may list the members (a 403 would be noise in the console).
        if (open?.kind === 'group' && open.peer === f.community && S.groups.has(f.community)) loadMembers(open);
      }).catch(() => {});
      break;
    }
    case 'profile': {
      // A new name or avatar shows everywhere at once, ours from another device too.
      for (const map of [S.contacts, S.users]) {
        const u = map.get(f.user);
        if (u) { u.name = f.name; u.avatar = f.avatar ?? null; }
      }
      if (f.user === S.me.id) { S.me.name = f.name; S.me.avatar = f.avatar ?? null; renderMe(); }
      renderLists();
      renderActive();
      break;
    }
    case 'typing': {
      if (f.from === S.me.id) return;
      const c = conv(f.conversation);
      clearTimeout(c.typing.get(f.from));
      if (f.stop) {
        c.typing.delete(f.from);
        renderLists();
        if (S.active === c.id) renderActiveHead();
        return;
      }
      c.typing.set(f.from, setTimeout(() => {
        c.typing.delete(f.from);
        renderLists();
        if (S.active === c.id) renderActiveHead();
      }, TYPING_SHOW_MS));
      renderLists();
      if (S.active === c.id) renderActiveHead();
      break;
    }
    case 'error': {
      const p = f.id && S.pending.get(f.id);
      if (p) {
        if (f.code === 'unavailable') {
          setTimeout(() => socket.send(p.frame), 1000);
          return;
        }
        p.failed = f.message || f.code;
        if (S.active === p.conversation) renderMessages();
      } else if (f.code !== 'not_a_participant') {
        toast(f.message || f.code);
      }
      break;
    }
    default:
      break;
  }
}

/** After a conversation changed: redraw what shows it, and mark it read if it is on screen. */
let listTimer = null;
function afterChange(c) {
  if (S.active === c.id) {
    renderMessages();
    markRead(c);
    renderActiveHead();
  }
  // Many frames arrive at once on connect: draw the lists once per frame.
  if (!listTimer) {
    listTimer = requestAnimationFrame(() => { listTimer = null; renderLists(); });
  }
}

// ---------------------------------------------------------------------------------------------
// Connection

let bannerTick = null;
function onSocketState(state, info) {
  clearInterval(bannerTick);
  if (state === 'waiting') {
    const show = () => {
      const secs = Math.max(0, Math.ceil((info.at - Date.now()) / 1000));
      showBanner(`Connection lost. Reconnecting in ${secs} s…`, true);
    };
    show();
    bannerTick = setInterval(show, 1000);
    // A refused upgrade may mean the session ended: asking the API tells (a 401 ends it).
    if (info.attempt >= 2) api('GET', '/api/users/me').catch(() => {});
  } else if (state === 'connecting' && S.everConnected) {
    showBanner('Reconnecting…', false);
  } else if (state === 'open') {
    if (S.everConnected) {
      showBanner('Connected again.', false, 'ok');
      setTimeout(() => { if (socket.state === 'open') hideBanner(); }, 2000);
    } else hideBanner();
  }
  const was = S.connected;
  S.connected = state === 'open';
  if (was !== S.connected) { renderLists(); renderActiveHead(); }
  if (S.connected) clearStaleErrors();
  $('me-status').textContent = state === 'open' ? 'Online' : 'Connecting…';
  $('me-status').classList.toggle('off', state !== 'open');
}

function onSocketOpen() {
  const wasConnected = S.everConnected;
  S.everConnected = true;
  // Resume from our cursors: anything newer than what we hold comes back once.
  const after = {};
  for (const c of S.convs.values()) if (c.maxSeq > 0 && c.kind !== 'system') after[c.id] = c.maxSeq;
  if (Object.keys(after).length) socket.send({ type: 'sync', after });
  // Sends that were never acknowledged go again with the same id (the server stores them once).
  for (const p of [...S.pending.values()].sort((a, b) => a.ts - b.ts)) if (!p.failed) socket.send(p.frame);
  for (const c of S.convs.values()) c.sentRead = Math.min(c.sentRead, c.myRead);
  const active = S.active && S.convs.get(S.active);
  if (active) markRead(active);
  if (wasConnected) {
    loadContacts().catch(() => {});
    loadGroups().catch(() => {});
  }
}

/** Search errors shown while the server was unreachable go once it is back. */
function clearStaleErrors() {
  for (const id of ['user-results', 'group-results']) {
    const out = $(id);
    if (out.querySelector('.error')) { out.replaceChildren(); out.hidden = true; }
  }
}

function showBanner(text, retry, tone = 'warn') {
  const b = $('banner');
  b.className = `banner ${tone}`;
  b.replaceChildren(el('span', { class: 'spinner', 'aria-hidden': 'true' }), el('span', { text }),
    retry ? el('button', { type: 'button', class: 'btn small', text: 'Retry now', onclick: () => socket.retryNow() }) : null);
  b.hidden = false;
}

function hideBanner() {
  clearInterval(bannerTick);
  $('banner').hidden = true;
}

window.addEventListener('online', () => socket.retryNow());
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState !== 'visible' || !S.me) return;
  const c = S.active && S.convs.get(S.active);
  if (c) markRead(c);
  loadContacts().catch(() => {});
});

// ---------------------------------------------------------------------------------------------
// Sending

function sendMessage(media, content) {
  const c = S.active && S.convs.get(S.active);
  if (!c || c.kind === 'system') return;
  const clientId = newClientId();
  const frame = { type: c.kind, id: clientId, to: c.peer, media, content };
  const p = { clientId, conversation: c.id, from: S.me.id, media, content, ts: Date.now(), pending: true, frame };
  S.pending.set(clientId, p);
  socket.send(frame);
  c.lastTypingSent = 0;
  renderMessages({ toBottom: true });
  renderLists();
}

function retry(p) {
  p.failed = null;
  socket.send(p.frame);
  renderMessages();
}

/** Drops a message that was not sent; `edit` puts its text back in the box first. */
function dropFailed(p, edit) {
  S.pending.delete(p.clientId);
  const c = S.convs.get(p.conversation);
  c?.nodes.delete(`c${p.clientId}`);
  if (edit && p.media === 'text') {
    const box = $('composer-text');
    box.value = p.content;
    updateByteCount();
    box.focus();
  }
  renderMessages();
  renderLists();
}

$('composer').addEventListener('submit', (e) => {
  e.preventDefault();
  const box = $('composer-text');
  const text = box.value;
  if (!text.trim() || byteCount(text) > MAX_BYTES) return;
  sendMessage('text', text);
  box.value = '';
  updateByteCount();
  const c = S.convs.get(S.active);
  if (c) c.draft = '';
  box.focus();
});

$('composer-text').addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && !touch.matches) {
    e.preventDefault();
    $('composer').requestSubmit();
  }
});

function byteCount(text) {
  return utf8.encode(text).length;
}

/** Shows how many bytes a long draft takes, and refuses to send one over the server's limit. */
function updateByteCount() {
  const n = byteCount($('composer-text').value);
  const out = $('byte-count');
  const over = n > MAX_BYTES;
  out.hidden = n < MAX_BYTES * 0.8;
  out.textContent = over ? `${n - MAX_BYTES} bytes too long` : `${n} / ${MAX_BYTES} bytes`;
  out.classList.toggle('over', over);
  $('send-btn').disabled = over;
  $('composer-text').setAttribute('aria-invalid', String(over));
}

$('composer-text').addEventListener('input', () => {
  updateByteCount();
  const c = S.active && S.convs.get(S.active);
  if (!c || c.kind === 'system') return;
  const to = c.kind === 'group' ? { community: c.peer } : { to: c.peer };
  if (!$('composer-text').value.trim()) {
    // The draft was cleared: others stop showing "typing…" now, not 4 s later.
    if (c.lastTypingSent && socket.send({ type: 'typing', ...to, stop: true })) c.lastTypingSent = 0;
    return;
  }
  const now = Date.now();
  if (now - c.lastTypingSent < TYPING_SEND_MS) return;
  if (socket.send({ type: 'typing', ...to })) c.lastTypingSent = now;
});

$('image-input').addEventListener('change', (e) => {
  const input = e.currentTarget;
  const file = input.files?.[0];
  input.value = '';
  if (file) sendImage(file);
});

// An image pasted from the clipboard or dropped on the chat is sent like a picked one.
$('composer-text').addEventListener('paste', (e) => {
  const file = [...(e.clipboardData?.files || [])].find((f) => f.type.startsWith('image/'));
  if (!file) return;
  e.preventDefault();
  sendImage(file);
});
// A file dropped anywhere must never navigate away from the app; on the chat it is sent.
for (const type of ['dragover', 'drop']) {
  window.addEventListener(type, (e) => {
    if (e.dataTransfer?.types?.includes('Files')) e.preventDefault();
  });
}
$('chat-pane').addEventListener('dragover', (e) => {
  if (!e.dataTransfer?.types?.includes('Files')) return;
  e.dataTransfer.dropEffect = 'copy';
  $('chat-pane').classList.add('dropping');
});
$('chat-pane').addEventListener('dragleave', (e) => {
  if (!$('chat-pane').contains(e.relatedTarget)) $('chat-pane').classList.remove('dropping');
});
$('chat-pane').addEventListener('drop', (e) => {
  $('chat-pane').classList.remove('dropping');
  const file = [...(e.dataTransfer?.files || [])][0];
  const c = S.active && S.convs.get(S.active);
  if (!file || !c || c.kind === 'system') return;
  e.preventDefault();
  sendImage(file);
});

async function sendImage(file) {
  const label = $('image-btn-label');
  label.classList.add('busy');
  try {
    const att = await upload(file);
    if (!isUploadUrl(att.url)) throw new Error('unexpected upload URL');
    sendMessage('image', att.url);
  } catch (err) {
    toast(err.code === 'unsupported_media_type' ? 'Only PNG, JPEG, GIF and WebP images can be sent.'
      : err.code === 'payload_too_large' ? 'That image is too large.' : `Upload failed: ${err.message}`);
  } finally {
    label.classList.remove('busy');
  }
}

// Emoji picker: the full Unicode set (static/js/emoji-data.js, loaded the first time the
// picker opens), grouped, searchable by name, recently used first; inserts at the cursor.
const emojiPanel = $('emoji-panel');
const RECENT_KEY = 'chorus.emoji.recent';
const RECENT_MAX = 24;
let emojiGroups = null; // [{name, items: [[emoji, name], ...]}]

function recentEmoji() {
  try { return JSON.parse(localStorage.getItem(RECENT_KEY) || '[]').filter((x) => typeof x === 'string').slice(0, RECENT_MAX); } catch { return []; }
}

function insertEmoji(ch) {
  const box = $('composer-text');
  const start = box.selectionStart ?? box.value.length;
  const end = box.selectionEnd ?? box.value.length;
  box.setRangeText(ch, start, end, 'end');
  box.dispatchEvent(new Event('input'));
  try { localStorage.setItem(RECENT_KEY, JSON.stringify([ch, ...recentEmoji().filter((x) => x !== ch)].slice(0, RECENT_MAX))); } catch { /* not remembered */ }
  box.focus();
  closeEmoji();
}

const emojiNames = new Map();
function emojiButton(ch) {
  return el('button', { type: 'button', class: 'emoji', text: ch, title: emojiNames.get(ch) || null, onclick: () => insertEmoji(ch) });
}

function emojiSection(title, list) {
  return el('section', { class: 'emoji-group', 'aria-label': title },
    el('h3', { class: 'emoji-group-title', text: title }),
    el('div', { class: 'emoji-grid' }, ...list.map(emojiButton)));
}

function renderEmoji() {
  const out = $('emoji-list');
  if (!emojiGroups) { out.replaceChildren(el('p', { class: 'empty', text: 'Loading…' })); return; }
  const words = $('emoji-search').value.trim().toLowerCase().split(/\s+/).filter(Boolean);
  if (words.length) {
    const hits = [];
    for (const g of emojiGroups) {
      for (const [ch, name] of g.items) if (words.every((w) => name.includes(w))) hits.push(ch);
    }
    out.replaceChildren(hits.length ? emojiSection('Search results', hits.slice(0, 400)) : el('p', { class: 'empty', text: 'No emoji found.' }));
    return;
  }
  const recent = recentEmoji();
  out.replaceChildren(...(recent.length ? [emojiSection('Recently used', recent)] : []),
    ...emojiGroups.map((g) => emojiSection(g.name, g.items.map(([ch]) => ch))));
}

async function loadEmoji() {
  if (emojiGroups) return;
  try {
    const { EMOJI_GROUPS } = await import('./emoji-data.js');
    emojiGroups = EMOJI_GROUPS.map(([name, list]) => ({
      name,
      items: list.split('\n').map((line) => line.split('\t')),
    }));
    for (const g of emojiGroups) for (const [ch, name] of g.items) emojiNames.set(ch, name);
  } catch {
    emojiGroups = [{ name: 'Smileys', items: EMOJI.map((ch) => [ch, '']) }];
  }
  renderEmoji();
}

emojiPanel.append(
  el('label', { for: 'emoji-search', class: 'sr-only', text: 'Search emoji' }),
  el('input', { id: 'emoji-search', type: 'search', class: 'emoji-search', placeholder: 'Search emoji', autocomplete: 'off', oninput: renderEmoji }),
  el('div', { id: 'emoji-list', class: 'emoji-list' }),
);

function closeEmoji() {
  emojiPanel.hidden = true;
  $('emoji-btn').setAttribute('aria-expanded', 'false');
}

$('emoji-btn').addEventListener('click', () => {
  const open = emojiPanel.hidden;
  emojiPanel.hidden = !open;
  $('emoji-btn').setAttribute('aria-expanded', String(open));
  if (open) {
    $('emoji-search').value = '';
    renderEmoji();
    loadEmoji();
    $('emoji-search').focus();
  }
});
emojiPanel.addEventListener('keydown', (e) => {
  if (e.key === 'Escape') { closeEmoji(); $('emoji-btn').focus(); }
});
document.addEventListener('click', (e) => {
  if (!emojiPanel.hidden && !e.target.closest('.emoji-wrap')) closeEmoji();
});

// ---------------------------------------------------------------------------------------------
// Dialogs: profile, new group, members, confirmations

document.querySelectorAll('dialog [data-close]').forEach((b) => b.addEventListener('click', () => b.closest('dialog').close()));

function confirmDialog(title, text, okLabel) {
  const d = $('confirm-dialog');
  $('confirm-title').textContent = title;
  $('confirm-text').textContent = text;
  $('confirm-ok').textContent = okLabel;
  d.returnValue = '';
  d.showModal();
  return new Promise((resolve) => {
    d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true });
  });
}

let avatarUrl;
$('profile-btn').addEventListener('click', () => {
  avatarUrl = undefined;
  $('profile-name').value = S.me.name;
  $('profile-email').value = S.me.email || '';
  $('profile-phone').value = S.me.phone || '';
  $('profile-current').value = '';
  $('profile-new').value = '';
  $('avatar-input').value = '';
  $('profile-error').textContent = '';
  $('profile-avatar').replaceChildren(avatar(S.me.name, S.me.avatar, { size: 'big' }));
  $('profile-dialog').showModal();
  showNotifyPrefs();
  loadSessions();
});

/** Where this account is signed in; any other session can be ended from here. */
async function loadSessions() {
  const out = $('session-list');
  out.replaceChildren(el('li', { class: 'empty', text: 'Loading…' }));
  try {
    const sessions = await api('GET', '/api/sessions');
    out.replaceChildren(...sessions.map((x) => el('li', { class: 'session' },
      el('span', { class: 'result-text' },
        el('span', { class: 'result-name', text: x.current ? 'This browser' : 'Another device or browser' }),
        el('span', { class: 'result-sub', text: `Signed in ${new Date(x.created_at).toLocaleString()} · until ${new Date(x.expires_at).toLocaleDateString()}` })),
      x.current ? el('span', { class: 'tag', text: 'Current' }) : el('button', {
        type: 'button',
        class: 'btn small',
        text: 'Sign out',
        'aria-label': `Sign out the session from ${new Date(x.created_at).toLocaleString()}`,
        onclick: async (e) => {
          e.currentTarget.disabled = true;
          try {
            await api('DELETE', `/api/sessions/${x.id}`);
          } catch (err) {
            if (err.code !== 'not_found') $('profile-error').textContent = err.message;
          }
          loadSessions();
        },
      }))));
  } catch (err) {
    out.replaceChildren(el('li', { class: 'empty', text: err.message }));
  }
}

$('avatar-input').addEventListener('change', async (e) => {
  const file = e.currentTarget.files?.[0];
  if (!file) return;
  $('profile-error').textContent = '';
  try {
    const att = await upload(file);
    avatarUrl = att.url;
    $('profile-avatar').replaceChildren(avatar(S.me.name, att.url, { size: 'big' }));
  } catch (err) {
    $('profile-error').textContent = err.code === 'unsupported_media_type' ? 'Use a PNG, JPEG, GIF or WebP image.' : err.message;
  }
});

$('profile-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const patch = {};
  const name = $('profile-name').value.trim();
  const email = $('profile-email').value.trim();
  const phone = $('profile-phone').value.trim();
  if (name && name !== S.me.name) patch.name = name;
  if (email !== (S.me.email || '')) patch.email = email || null;
  if (phone !== (S.me.phone || '')) patch.phone = phone || null;
  if (avatarUrl) patch.avatar = avatarUrl;
  const newPassword = $('profile-new').value;
  if (newPassword) {
    if (!$('profile-current').value) {
      $('profile-error').textContent = 'Enter your current password to set a new one.';
      return;
    }
    patch.password = newPassword;
    patch.current_password = $('profile-current').value;
  }
  if (!Object.keys(patch).length) { $('profile-dialog').close(); return; }
  try {
    S.me = await api('PATCH', '/api/users/me', patch);
    S.users.set(S.me.id, S.me);
    renderMe();
    renderActive();
    $('profile-dialog').close();
    toast('Profile saved.');
  } catch (err) {
    $('profile-error').textContent = err.code === 'wrong_password' ? 'The current password is wrong.'
      : err.code === 'name_taken' ? 'That user name is taken.' : err.message;
  }
});

$('delete-account-btn').addEventListener('click', async () => {
  $('profile-dialog').close();
  const ok = await confirmDialog('Delete your account?',
    `This removes ${S.me.name}, your friends and your group memberships. Messages you sent stay. This cannot be undone.`,
    'Delete account');
  if (!ok) return;
  try {
    await api('DELETE', '/api/users/me');
    endSession('Your account was deleted.');
  } catch (err) {
    toast(err.message);
  }
});

$('logout-btn').addEventListener('click', logout);

$('new-group-btn').addEventListener('click', () => {
  $('group-form').reset();
  $('group-error').textContent = '';
  $('group-dialog').showModal();
});

$('group-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const form = e.currentTarget;
  const name = $('group-name').value.trim();
  const description = $('group-desc').value.trim();
  const file = $('group-icon').files?.[0];
  if (!name) { $('group-error').textContent = 'Give the group a name.'; return; }
  busy(form, true);
  try {
    const body = { name };
    if (description) body.description = description;
    if (file) body.icon = (await upload(file)).url;
    const g = await api('POST', '/api/communities', body);
    S.groups.set(g.id, g);
    $('group-dialog').close();
    renderLists();
    openConv(`g:${g.id}`);
  } catch (err) {
    $('group-error').textContent = err.code === 'unsupported_media_type' ? 'The icon must be a PNG, JPEG, GIF or WebP image.' : err.message;
  } finally {
    busy(form, false);
  }
});

$('members-btn').addEventListener('click', async () => {
  const c = S.convs.get(S.active);
  if (!c || c.kind !== 'group') return;
  const g = S.groups.get(c.peer);
  $('members-title').textContent = g ? `Members of ${g.name}` : 'Members';
  $('members-desc').textContent = g?.description || '';
  $('member-list').replaceChildren(el('li', { class: 'empty', text: 'Loading…' }));
  $('members-dialog').showModal();
  try {
    const members = await api('GET', `/api/communities/${c.peer}/members`);
    for (const u of members) if (u.id !== S.me.id) S.users.set(u.id, u);
    if (g) g.member_count = members.length;
    $('member-list').replaceChildren(...members.map((u) => el('li', { class: 'member' },
      el('span', { class: 'avatar-wrap' }, avatar(u.name, u.avatar, { size: 'small' }),
        el('span', { class: `dot ${u.online || u.id === S.me.id ? 'online' : 'offline'}`, 'aria-hidden': 'true' })),
      el('span', { class: 'result-name', text: u.name }),
      el('span', { class: 'tag', text: g && u.id === g.owner_id ? 'Owner' : u.id === S.me.id ? 'You' : (u.online ? 'Online' : lastSeen(u)) }))));
    renderActiveHead();
  } catch (err) {
    $('member-list').replaceChildren(el('li', { class: 'empty', text: err.message }));
  }
});

$('leave-btn').addEventListener('click', async () => {
  const c = S.convs.get(S.active);
  if (!c || c.kind !== 'group') return;
  const g = S.groups.get(c.peer);
  $('members-dialog').close();
  if (!await confirmDialog('Leave this group?', `You will stop getting messages from ${g?.name || 'this group'}.`, 'Leave group')) return;
  try {
    await api('DELETE', `/api/communities/${c.peer}/members/me`);
  } catch (err) {
    if (err.code !== 'not_a_member') { toast(err.message); return; }
  }
  S.groups.delete(c.peer);
  S.convs.delete(c.id);
  closeChat();
});

$('addfriend-btn').addEventListener('click', async () => {
  const c = S.convs.get(S.active);
  if (!c || c.kind !== 'private') return;
  try {
    const friend = await api('POST', '/api/contacts', { user_id: c.peer });
    S.contacts.set(friend.id, friend);
    S.users.set(friend.id, friend);
  } catch (err) {
    if (err.code !== 'already_contact') { toast(err.message); return; }
    await loadContacts();
  }
  renderLists();
  renderActiveHead();
});

$('unfriend-btn').addEventListener('click', async () => {
  const c = S.convs.get(S.active);
  if (!c || c.kind !== 'private') return;
  const name = userName(c.peer);
  if (!await confirmDialog(`Remove ${name}?`,
    `${name} will no longer be in your friends list, and you in theirs. If either of you writes again, it shows under Requests until one of you adds the other.`,
    'Remove friend')) return;
  try {
    await api('DELETE', `/api/contacts/${c.peer}`);
  } catch (err) {
    if (err.code !== 'not_a_contact') { toast(err.message); return; }
  }
  S.contacts.delete(c.peer);
  S.convs.delete(c.id);
  closeChat();
});

// ---------------------------------------------------------------------------------------------
// Toasts

function toast(text) {
  let box = $('toasts');
  if (!box) {
    box = el('div', { id: 'toasts', class: 'toasts', role: 'status', 'aria-live': 'polite' });
    document.body.append(box);
  }
  const t = el('div', { class: 'toast', text });
  box.append(t);
  setTimeout(() => t.remove(), 5000);
}

// ---------------------------------------------------------------------------------------------
// Notifications: for messages in a conversation that is not on screen (or a window without
// focus). Permission is asked when the user ticks the box, never on load.

const NOTIFY_KEY = 'chorus.notify';

function notifyPrefs() {
  try { return { desktop: false, sound: false, ...JSON.parse(localStorage.getItem(NOTIFY_KEY) || '{}') }; } catch { return { desktop: false, sound: false }; }
}

function saveNotifyPrefs(prefs) {
  try { localStorage.setItem(NOTIFY_KEY, JSON.stringify(prefs)); } catch { /* this page only */ }
}

function showNotifyPrefs() {
  const prefs = notifyPrefs();
  const supported = 'Notification' in window;
  const granted = supported && Notification.permission === 'granted';
  $('notify-desktop').checked = prefs.desktop && granted;
  $('notify-desktop').disabled = !supported;
  $('notify-sound').checked = prefs.sound;
  $('notify-hint').textContent = !supported ? 'This browser cannot show notifications.'
    : Notification.permission === 'denied' ? 'Notifications are blocked for this site in the browser settings.' : '';
}

$('notify-desktop').addEventListener('change', async (e) => {
  const box = e.currentTarget;
  const prefs = notifyPrefs();
  if (box.checked && 'Notification' in window && Notification.permission !== 'granted') {
    const answer = await Notification.requestPermission();
    box.checked = answer === 'granted';
  }
  prefs.desktop = box.checked;
  saveNotifyPrefs(prefs);
  showNotifyPrefs();
});

$('notify-sound').addEventListener('change', (e) => {
  const prefs = notifyPrefs();
  prefs.sound = e.currentTarget.checked;
  saveNotifyPrefs(prefs);
  if (prefs.sound) beep(); // a sample, and it unlocks audio on this click
});

let audio = null;
function beep() {
  try {
    audio ||= new AudioContext();
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.frequency.value = 880;
    gain.gain.setValueAtTime(0.0001, audio.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.15, audio.currentTime + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, audio.currentTime + 0.25);
    osc.connect(gain).connect(audio.destination);
    osc.start();
    osc.stop(audio.currentTime + 0.3);
  } catch { /* no sound available */ }
}

/** A new message from someone else: tell the user if they are not looking at it. */
function notifyMessage(c, m) {
  if (!S.me || m.from === S.me.id || isViewing(c) || Date.now() - m.ts > 60000) return;
  const prefs = notifyPrefs();
  if (prefs.sound) beep();
  if (!prefs.desktop || !('Notification' in window) || Notification.permission !== 'granted') return;
  const title = c.kind === 'group' ? S.groups.get(c.peer)?.name || 'Group' : c.kind === 'system' ? SYSTEM_NAME : userName(m.from);
  const who = c.kind === 'group' ? `${userName(m.from)}: ` : '';
  const body = who + (m.media === 'image' ? '📷 Photo' : m.content.slice(0, 140));
  try {
    const note = new Notification(title, { body, tag: c.id, icon: '/favicon.svg' });
    note.onclick = () => { window.focus(); openConv(c.id); note.close(); };
  } catch { /* some browsers only notify from a service worker */ }
}

// ---------------------------------------------------------------------------------------------
// Theme: follows the system (prefers-color-scheme) until the switch picks light or dark.

const THEME_KEY = 'chorus.theme';
const THEMES = ['auto', 'light', 'dark'];
const THEME_LABEL = { auto: 'Theme: follow the system', light: 'Theme: light', dark: 'Theme: dark' };

function applyTheme(theme) {
  if (theme === 'light' || theme === 'dark') document.documentElement.dataset.theme = theme;
  else delete document.documentElement.dataset.theme;
  const label = THEME_LABEL[theme] || THEME_LABEL.auto;
  $('theme-btn').setAttribute('aria-label', label);
  $('theme-btn').title = label;
}

function storedTheme() {
  try { return localStorage.getItem(THEME_KEY) || 'auto'; } catch { return 'auto'; }
}

applyTheme(storedTheme());
$('theme-btn').addEventListener('click', () => {
  const next = THEMES[(THEMES.indexOf(storedTheme()) + 1) % THEMES.length];
  try { localStorage.setItem(THEME_KEY, next); } catch { /* the choice lasts this page only */ }
  applyTheme(next);
  toast(THEME_LABEL[next]);
});

// ---------------------------------------------------------------------------------------------
// Start

narrow.addEventListener('change', () => renderLists());

if (getToken()) {
  startSession().catch((err) => {
    if (err.status === 401) return; // endSession already ran
    setToken(null);
    endSession(err.message);
  });
} else {
  $('auth-view').hidden = false;
  $('login-name').focus();
}
