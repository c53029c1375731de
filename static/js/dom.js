// Small DOM helpers. User data only ever goes in through textContent and checked attributes.

/** Creates an element: el('p', {class: 'x', text: 'hi'}, child, ...). */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (key === 'src' || key === 'href') {
      // Only our own uploads (or our own static files) may become a URL in the page.
      if (!isSafeUrl(value)) continue;
      node.setAttribute(key, value);
    } else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const UPLOAD_RE = /^\/uploads\/[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** True for a URL of one of our uploads: `/uploads/<file>` and nothing else. */
export function isUploadUrl(url) {
  return typeof url === 'string' && UPLOAD_RE.test(url) && !url.includes('..');
}

function isSafeUrl(url) {
  return isUploadUrl(url) || (typeof url === 'string' && /^\/(swagger\/|favicon\.svg$|#)/.test(url));
}

export function initials(name) {
  const parts = String(name || '?').trim().split(/[\s._-]+/).filter(Boolean);
  const first = [...(parts[0] || '?')][0] || '?';
  const second = parts.length > 1 ? [...parts[1]][0] : '';
  return (first + second).toUpperCase();
}

function hue(name) {
  let h = 0;
  for (const ch of String(name || '')) h = (h * 31 + ch.codePointAt(0)) >>> 0;
  return h % 8;
}

/** An avatar: the uploaded image when there is one, else initials on a colour picked by name. */
export function avatar(name, url, { size = '', square = false } = {}) {
  const cls = `avatar av-${hue(name)}${size ? ` ${size}` : ''}${square ? ' square' : ''}`;
  if (isUploadUrl(url)) {
    return el('span', { class: cls, 'aria-hidden': 'true' }, el('img', { src: url, alt: '', loading: 'lazy' }));
  }
  return el('span', { class: cls, 'aria-hidden': 'true', text: initials(name) });
}

export function fmtTime(ts) {
  return new Date(ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

export function dayKey(ts) {
  const d = new Date(ts);
  return `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`;
}

export function fmtDay(ts) {
  const d = new Date(ts);
  const today = new Date();
  const yesterday = new Date(Date.now() - 86400000);
  if (dayKey(ts) === dayKey(today.getTime())) return 'Today';
  if (dayKey(ts) === dayKey(yesterday.getTime())) return 'Yesterday';
  return d.toLocaleDateString([], { weekday: 'long', day: 'numeric', month: 'long', year: 'numeric' });
}

/** A short time for a list: the time today, else the date. */
export function fmtShort(ts) {
  if (!ts) return '';
  if (dayKey(ts) === dayKey(Date.now())) return fmtTime(ts);
  return new Date(ts).toLocaleDateString([], { day: 'numeric', month: 'short' });
}

export function $(id) {
  return document.getElementById(id);
}
