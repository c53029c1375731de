// The Chorus web client: sign-in, friends, groups and the chat window.
// Plain ES modules, no build step. All user data is rendered with textContent.

import { api, upload, getToken, setToken, hooks } from './api.js';
import { ChatSocket } from './socket.js';
import { el, $, avatar, isUploadUrl, fmtTime, fmtDay, dayKey, fmtShort } from './dom.js';

const PAGE = 50;
const TYPING_SEND_MS = 2000;
const TYPING_SHOW_MS = 4000;
const EMOJI = ['😀', '😂', '🥲', '😊', '😍', '😘', '😎', '🤔', '😴', '😭', '😡', '🥳', '👍', '👎', '👏', '🙏',
  '💪', '👋', '🤝', '❤️', '💔', '🔥', '✨', '🎉', '☕', '🍕', '🍺', '🌞', '🌧️', '⚽', '🎵', '✅', '❌', '👀', '💯', '🚀'];
const narrow = window.matchMedia('(max-width: 760px)');

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
  tab: 'friends',
  everConnected: false,
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
  const u = S.contacts.get(id) || S.users.get(id);
  if (u) return u.name;
  fetchUser(id);
  return `User ${id}`;
}

const fetching = new Set();
async function fetchUser(id) {
  if (fetching.has(id)) return;
  fetching.add(id);
  try {
    const u = await api('GET', `/api/users/${id}`);
    S.users.set(u.id, u);
    renderActive();
    renderLists();
  } catch { /* a deleted user keeps its placeholder name */ }
}

function isViewing(c) {
  return S.active === c.id && document.visibilityState === 'visible'
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

/** The last message of each conversation in the lists, for its preview line and order. */
async function loadPreviews() {
  const ids = [...S.contacts.keys()].map((u) => privateConv(S.me.id, u))
    .concat([...S.groups.keys()].map((g) => `g:${g}`)).slice(0, 100);
  await Promise.all(ids.map(async (id) => {
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

async function login(name, password) {
  const session = await api('POST', '/api/sessions', { name, password });
  setToken(session.token);
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
    await login(name, password);
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
    await login(name, password);
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
  $('friend-list').replaceChildren(...friends.map(({ u, c }) => {
    friendUnread += unreadCount(c);
    return convItem(c, u.name, avatar(u.name, u.avatar), { presence: u.online ? 'online' : 'offline' });
  }));
  // Conversations with people who are not (or no longer) friends stay reachable.
  const strangers = [...S.convs.values()].filter((c) => c.kind === 'private' && !S.contacts.has(c.peer)
    && (c.msgs.size > 0 || S.active === c.id));
  strangers.sort((a, b) => activity(b) - activity(a));
  for (const c of strangers) {
    friendUnread += unreadCount(c);
    const u = S.users.get(c.peer);
    $('friend-list').append(convItem(c, u?.name || userName(c.peer), avatar(u?.name || '?', u?.avatar)));
  }
  $('friends-empty').hidden = friends.length + strangers.length > 0;

  const groups = [...S.groups.values()].map((g) => ({ g, c: conv(`g:${g.id}`) }));
  groups.sort((a, b) => activity(b.c) - activity(a.c) || a.g.name.localeCompare(b.g.name));
  let groupUnread = 0;
  $('group-list').replaceChildren(...groups.map(({ g, c }) => {
    groupUnread += unreadCount(c);
    return convItem(c, g.name, avatar(g.name, g.icon, { square: true }));
  }));
  $('groups-empty').hidden = groups.length > 0;

  setBadge($('friends-badge'), friendUnread);
  setBadge($('groups-badge'), groupUnread);
  const total = friendUnread + groupUnread;
  document.title = total ? `(${total}) Chorus` : 'Chorus';
}

function setBadge(node, n) {
  node.hidden = n === 0;
  node.textContent = n ? String(n) : '';
  node.setAttribute('aria-label', `${n} unread`);
}

function showSideTab(which) {
  S.tab = which;
  const friends = which === 'friends';
  $('tab-friends').setAttribute('aria-selected', String(friends));
  $('tab-groups').setAttribute('aria-selected', String(!friends));
  $('tab-friends').tabIndex = friends ? 0 : -1;
  $('tab-groups').tabIndex = friends ? -1 : 0;
  $('panel-friends').hidden = !friends;
  $('panel-groups').hidden = friends;
}
wireTabs([$('tab-friends'), $('tab-groups')], (i) => showSideTab(i === 0 ? 'friends' : 'groups'));

$('user-search-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const q = $('user-search').value.trim();
  const out = $('user-results');
  if (!q) { out.hidden = true; return; }
  try {
    const users = await api('GET', `/api/users?q=${encodeURIComponent(q)}`);
    out.replaceChildren(...(users.length ? users.map(userResult) : [el('li', { class: 'empty', text: 'Nobody found.' })]));
  } catch (err) {
    out.replaceChildren(el('li', { class: 'empty', text: err.message }));
  }
  out.hidden = false;
});

function userResult(u) {
  let action;
  if (u.id === S.me.id) action = el('span', { class: 'tag', text: 'You' });
  else if (S.contacts.has(u.id)) {
    action = el('button', { type: 'button', class: 'btn small', text: 'Message', onclick: () => openConv(privateConv(S.me.id, u.id)) });
  } else {
    action = el('button', {
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
    });
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
    out.replaceChildren(el('li', { class: 'empty', text: err.message }));
  }
  out.hidden = false;
});

function groupResult(g) {
  const joined = S.groups.has(g.id);
  const action = joined
    ? el('button', { type: 'button', class: 'btn small', text: 'Open', onclick: () => openConv(`g:${g.id}`) })
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

function openConv(id) {
  const c = conv(id);
  if (S.active && S.active !== id) {
    const prev = S.convs.get(S.active);
    if (prev) prev.draft = $('composer-text').value;
  }
  S.active = id;
  showSideTab(c.kind === 'group' ? 'groups' : 'friends');
  document.body.classList.add('chat-open');
  $('chat-placeholder').hidden = true;
  $('chat-pane').hidden = false;
  $('msg-list').replaceChildren();
  $('composer-text').value = c.draft || '';
  closeEmoji();
  renderActiveHead();
  renderMessages({ toBottom: true });
  renderLists();
  $('composer-text').focus();
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

$('back-btn').addEventListener('click', () => {
  document.body.classList.remove('chat-open');
  const id = S.active;
  renderLists();
  document.querySelector(`.conv-item[data-conv="${id}"]`)?.focus();
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
    c.historyLoaded = true;
    if (S.active === c.id) renderMessages({ toBottom: true });
    renderLists();
    markRead(c);
  } catch (err) {
    if (err.status !== 401) toast(`Could not load the history: ${err.message}`);
  }
}

async function loadOlder(c) {
  const first = minSeq(c);
  if (c.loadingOlder || !c.historyLoaded || !(first > 1)) return;
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

$('messages').addEventListener('scroll', () => {
  const c = S.active && S.convs.get(S.active);
  if (c && $('messages').scrollTop < 60) loadOlder(c);
});
$('older-btn').addEventListener('click', () => {
  const c = S.active && S.convs.get(S.active);
  if (c) loadOlder(c);
});

function markRead(c) {
  if (!isViewing(c) || !c.maxSeq) return;
  const changed = c.myRead < c.maxSeq;
  c.myRead = Math.max(c.myRead, c.maxSeq);
  c.unseen.clear();
  if (c.sentRead < c.maxSeq && socket.send({ type: 'read', conversation: c.id, seq: c.maxSeq })) {
    c.sentRead = c.maxSeq;
  }
  if (changed) renderLists();
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
    sub = typers.length
      ? `${typers.map(userName).join(', ')} ${typers.length > 1 ? 'are' : 'is'} typing…`
      : g ? `${g.member_count} member${g.member_count === 1 ? '' : 's'}${g.description ? ` · ${g.description}` : ''}` : '';
  } else {
    const u = S.contacts.get(c.peer) || S.users.get(c.peer);
    title = u?.name || userName(c.peer);
    av = el('span', { class: 'avatar-wrap' }, avatar(title, u?.avatar),
      el('span', { class: `dot ${u?.online ? 'online' : 'offline'}`, 'aria-hidden': 'true' }));
    sub = typers.length ? 'typing…' : u?.online ? 'Online' : 'Offline';
  }
  $('chat-title').textContent = title;
  $('chat-sub').textContent = sub;
  $('chat-sub').classList.toggle('typing', typers.length > 0);
  $('chat-avatar').replaceChildren(av);
  $('members-btn').hidden = c.kind !== 'group';
  $('unfriend-btn').hidden = c.kind !== 'private' || !S.contacts.has(c.peer);
  $('composer').hidden = c.kind === 'system';
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
        }, el('img', { src: m.content, alt: `Image from ${userName(m.from)}`, loading: 'lazy', decoding: 'async' })));
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
      bubble.append(el('p', { class: 'text', text: m.content }));
    } else if (isUploadUrl(m.content)) {
      bubble.append(el('a', { href: m.content, target: '_blank', rel: 'noopener', text: `📎 ${m.media} attachment` }));
    } else {
      bubble.append(el('p', { class: 'text', text: m.content }));
    }
    const meta = el('div', { class: 'meta' },
      el('time', { datetime: new Date(m.ts).toISOString(), title: new Date(m.ts).toLocaleString(), text: fmtTime(m.ts) }),
      el('span', { class: 'status' }),
      mine ? el('span', { class: 'receipt' }) : null);
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
    status.replaceChildren(`Not sent: ${m.failed} `, el('button', {
      type: 'button', class: 'link', text: 'Retry', onclick: () => retry(m),
    }));
  } else status.textContent = m.pending ? 'Sending…' : '';
  return node;
}

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
      if (!addMessage({ ...f, type: 'system' }, true)) return;
      toast(`Notice: ${f.content}`);
      socket.send({ type: 'read', conversation: f.conversation, seq: f.seq });
      break;
    }
    case 'presence': {
      for (const map of [S.contacts, S.users]) {
        const u = map.get(f.user);
        if (u) u.online = !!f.online;
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
      loadGroups().catch(() => {});
      break;
    }
    case 'typing': {
      if (f.from === S.me.id) return;
      const c = conv(f.conversation);
      clearTimeout(c.typing.get(f.from));
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

$('composer').addEventListener('submit', (e) => {
  e.preventDefault();
  const box = $('composer-text');
  const text = box.value;
  if (!text.trim()) return;
  sendMessage('text', text);
  box.value = '';
  const c = S.convs.get(S.active);
  if (c) c.draft = '';
  box.focus();
});

$('composer-text').addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    $('composer').requestSubmit();
  }
});

$('composer-text').addEventListener('input', () => {
  const c = S.active && S.convs.get(S.active);
  if (!c || !$('composer-text').value.trim()) return;
  const now = Date.now();
  if (now - c.lastTypingSent < TYPING_SEND_MS) return;
  const frame = c.kind === 'group' ? { type: 'typing', community: c.peer } : { type: 'typing', to: c.peer };
  if (socket.send(frame)) c.lastTypingSent = now;
});

$('image-input').addEventListener('change', async (e) => {
  const input = e.currentTarget;
  const file = input.files?.[0];
  input.value = '';
  if (!file) return;
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
});

// Emoji picker: inserts the emoji at the cursor.
const emojiPanel = $('emoji-panel');
emojiPanel.append(...EMOJI.map((ch) => el('button', {
  type: 'button',
  class: 'emoji',
  text: ch,
  onclick: () => {
    const box = $('composer-text');
    const start = box.selectionStart ?? box.value.length;
    const end = box.selectionEnd ?? box.value.length;
    box.setRangeText(ch, start, end, 'end');
    box.focus();
    closeEmoji();
  },
})));

function closeEmoji() {
  emojiPanel.hidden = true;
  $('emoji-btn').setAttribute('aria-expanded', 'false');
}

$('emoji-btn').addEventListener('click', () => {
  const open = emojiPanel.hidden;
  emojiPanel.hidden = !open;
  $('emoji-btn').setAttribute('aria-expanded', String(open));
  if (open) emojiPanel.querySelector('button')?.focus();
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
});

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
      el('span', { class: 'tag', text: g && u.id === g.owner_id ? 'Owner' : u.id === S.me.id ? 'You' : (u.online ? 'Online' : 'Offline') }))));
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

$('unfriend-btn').addEventListener('click', async () => {
  const c = S.convs.get(S.active);
  if (!c || c.kind !== 'private') return;
  const name = userName(c.peer);
  if (!await confirmDialog(`Remove ${name}?`, `${name} will no longer be in your friends list, and you in theirs.`, 'Remove friend')) return;
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
