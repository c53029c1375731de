// The /chat websocket: reconnects with exponential backoff (with jitter) and tells the page
// about each state change so it can show a banner and resume from its cursors.

const HEARTBEAT_MS = 20000;
const BACKOFF_START_MS = 500;
const BACKOFF_MAX_MS = 15000;

export class ChatSocket {
  /**
   * @param {() => string|null} tokenFn  the current token
   * @param {object} on  {open(), frame(obj), state(state, info), closed(code)}
   */
  constructor(tokenFn, on) {
    this.tokenFn = tokenFn;
    this.on = on;
    this.ws = null;
    this.attempt = 0;
    this.timer = null;
    this.heartbeat = null;
    this.stopped = true;
    this.state = 'idle';
  }

  start() {
    this.stopped = false;
    this.attempt = 0;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.heartbeat);
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.onclose = null;
      ws.close(1000, 'bye');
    }
    this.setState('idle');
  }

  get isOpen() {
    return !!this.ws && this.ws.readyState === WebSocket.OPEN;
  }

  /** Sends a frame if the socket is open; returns whether it went out. */
  send(frame) {
    if (!this.isOpen) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  /** Reconnects now instead of waiting for the backoff timer (e.g. the browser came online). */
  retryNow() {
    if (this.stopped || this.isOpen || this.state === 'connecting') return;
    clearTimeout(this.timer);
    this.connect();
  }

  setState(state, info) {
    this.state = state;
    this.on.state?.(state, info);
  }

  connect() {
    const token = this.tokenFn();
    if (!token || this.stopped) return;
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const url = `${proto}//${location.host}/chat?token=${encodeURIComponent(token)}`;
    this.setState('connecting', { attempt: this.attempt });
    let ws;
    try {
      ws = new WebSocket(url);
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.attempt = 0;
      this.setState('open');
      clearInterval(this.heartbeat);
      this.heartbeat = setInterval(() => this.send({ type: 'heartbeat' }), HEARTBEAT_MS);
      this.on.open?.();
    };
    ws.onmessage = (ev) => {
      if (typeof ev.data !== 'string' || ev.data === 'heartbeat') return;
      let frame;
      try { frame = JSON.parse(ev.data); } catch { return; }
      this.on.frame?.(frame);
    };
    ws.onclose = (ev) => {
      clearInterval(this.heartbeat);
      if (this.ws !== ws) return;
      this.ws = null;
      // 4401: this session was logged out (here or elsewhere); the page decides what next.
      if (ev.code === 4401 || this.stopped) {
        this.setState('idle');
        this.on.closed?.(ev.code);
        return;
      }
      this.on.closed?.(ev.code);
      this.scheduleReconnect();
    };
    ws.onerror = () => { /* onclose follows */ };
  }

  scheduleReconnect() {
    if (this.stopped) return;
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_START_MS * 2 ** this.attempt);
    const delay = Math.round(base / 2 + Math.random() * base / 2);
    this.attempt += 1;
    this.setState('waiting', { delay, attempt: this.attempt, at: Date.now() + delay });
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
  }
}
