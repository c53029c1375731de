// REST calls. Every /api route but register and log-in takes the bearer token.

const TOKEN_KEY = 'chorus.token';

// "Keep me signed in" keeps the token in localStorage (every tab, across restarts); without
// it the token lives in this tab's sessionStorage only (and the server ends it within 12 h).
function stores() {
  const out = [];
  try { out.push(sessionStorage); } catch { /* storage may be disabled */ }
  try { out.push(localStorage); } catch { /* storage may be disabled */ }
  return out;
}

export function getToken() {
  for (const store of stores()) {
    const token = store.getItem(TOKEN_KEY);
    if (token) return token;
  }
  return null;
}

export function setToken(token, keep = false) {
  for (const store of stores()) store.removeItem(TOKEN_KEY);
  if (!token) return;
  try {
    (keep ? localStorage : sessionStorage).setItem(TOKEN_KEY, token);
  } catch { /* the session lasts as long as this page */ }
}

/** An error answer of the API: `code` is the stable snake_case code, `status` the HTTP status. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }
}

/** Calls the API; JSON bodies in and out. Calls `onUnauthorized` on a 401 with a token. */
export const hooks = { onUnauthorized: null };

export async function api(method, path, body) {
  const headers = {};
  const token = getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  let payload;
  if (body instanceof FormData) {
    payload = body;
  } else if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, { method, headers, body: payload });
  } catch (err) {
    throw new ApiError(0, 'network', 'The server cannot be reached. Check your connection.');
  }
  if (res.status === 204) return null;
  let data = null;
  const text = await res.text();
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!res.ok) {
    const code = data?.error?.code || 'http_error';
    const message = data?.error?.message || `Request failed (${res.status})`;
    if (res.status === 401 && token && code === 'unauthorized' && hooks.onUnauthorized) {
      hooks.onUnauthorized();
    }
    throw new ApiError(res.status, code, message);
  }
  return data;
}

/** Uploads one image; resolves to the attachment `{id,url,content_type,size}`. */
export function upload(file) {
  const form = new FormData();
  form.append('file', file, file.name || 'image');
  return api('POST', '/api/attachments', form);
}
