// One WebSocket to the gateway that never gives up: backoff with jitter, an application-level
// ping (browsers do not surface protocol pings, and half-open sockets never fire `close`),
// and resume with ?since= so no event is lost across a reconnect.

export const BACKOFF_MIN_MS = 1000;
export const BACKOFF_MAX_MS = 30000;
export const PING_INTERVAL_MS = 15000;
export const MISSED_PONGS_LIMIT = 2;
export const REQUEST_TIMEOUT_MS = 10000;
export const MAX_PENDING_REQUESTS = 100;
// After this many failed attempts in a row the screen says "offline" rather than "reconnecting".
export const OFFLINE_AFTER_FAILURES = 3;

/** Delay before reconnect attempt number `attempt` (0-based): exponential, capped, with jitter. */
export function backoffDelay(attempt, random = Math.random) {
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** attempt);
  // "Equal jitter": half fixed, half random, so a plant-wide restart does not bring every
  // kiosk back in the same second, yet no kiosk waits much less than the schedule says.
  return Math.max(BACKOFF_MIN_MS, Math.round(ceiling / 2 + random() * (ceiling / 2)));
}

export class GatewayConnection extends EventTarget {
  /** path: '/ws/spc/notifications/'; token: from the page URL or null. */
  constructor(path, { token = null, pingMs = PING_INTERVAL_MS, name = 'ws' } = {}) {
    super();
    this.path = path;
    this.token = token;
    this.pingMs = pingMs;
    this.name = name;
    this.ws = null;
    this.state = 'connecting'; // connecting | live | reconnecting | offline
    this.lastSeq = null;
    this.epoch = null; // the database lastSeq counts in (sent back with since=)
    this.lastUpdate = null; // Date of the last frame received
    this.failures = 0;
    this.retryAt = null;
    this.resuming = false;
    this.connectionInfo = null;
    this.stopped = false;
    this._retryTimer = null;
    this._pingTimer = null;
    this._missedPongs = 0;
    this._pingOutstanding = false;
    this._requestCounter = 0;
    this._pending = new Map();
    this._onVisible = () => {
      if (document.visibilityState !== 'visible') return;
      if (this._isOpen()) this._ping();
      else this.reconnectNow();
    };
    this._onOnline = () => this.reconnectNow();
    this._onOffline = () => this._setState(this._isLive() ? this.state : 'offline');
  }

  start() {
    document.addEventListener('visibilitychange', this._onVisible);
    window.addEventListener('online', this._onOnline);
    window.addEventListener('offline', this._onOffline);
    this._open();
  }

  stop() {
    this.stopped = true;
    document.removeEventListener('visibilitychange', this._onVisible);
    window.removeEventListener('online', this._onOnline);
    window.removeEventListener('offline', this._onOffline);
    clearTimeout(this._retryTimer);
    this._teardown();
  }

  /** Skip the rest of the backoff wait (a tap on "reconnect now", the page becoming visible). */
  reconnectNow() {
    if (this.stopped || this._isOpen() || (this.ws && this.ws.readyState === WebSocket.CONNECTING)) return;
    clearTimeout(this._retryTimer);
    this._open();
  }

  /** Send a message; false when not connected. */
  send(message) {
    if (!this._isOpen()) return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }

  /** Send a command and wait for its `result` (resolves) or `error` (rejects with .code). */
  request(message) {
    return new Promise((resolve, reject) => {
      if (!this._isOpen() || this.state !== 'live') {
        reject(Object.assign(new Error('not connected'), { code: 'not_connected' }));
        return;
      }
      if (this._pending.size >= MAX_PENDING_REQUESTS) {
        reject(Object.assign(new Error('too many requests waiting'), { code: 'busy' }));
        return;
      }
      const requestId = `${this.name}-${++this._requestCounter}`;
      const timer = setTimeout(() => {
        this._pending.delete(requestId);
        reject(Object.assign(new Error('timeout'), { code: 'timeout' }));
      }, REQUEST_TIMEOUT_MS);
      this._pending.set(requestId, { resolve, reject, timer });
      this.send({ ...message, request_id: requestId });
    });
  }

  _isOpen() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  _isLive() {
    return this._isOpen() && this.state === 'live';
  }

  _url() {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const params = new URLSearchParams();
    if (this.token) params.set('token', this.token);
    if (this.resuming && this.lastSeq !== null) {
      params.set('since', String(this.lastSeq));
      if (this.epoch) params.set('epoch', this.epoch);
    }
    const query = params.toString();
    return `${proto}//${location.host}${this.path}${query ? `?${query}` : ''}`;
  }

  _open() {
    this._teardown();
    this.retryAt = null;
    this.resuming = this.lastSeq !== null;
    let ws;
    try {
      ws = new WebSocket(this._url());
    } catch {
      this._closed();
      return;
    }
    this.ws = ws;
    ws.onmessage = (event) => this._received(event.data);
    ws.onclose = () => {
      if (this.ws === ws) this._closed();
    };
    ws.onerror = () => {}; // `close` always follows; nothing useful to add here
    this._emitState();
  }

  _teardown() {
    clearInterval(this._pingTimer);
    this._pingTimer = null;
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.onmessage = ws.onclose = ws.onerror = null;
      if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) ws.close(4000, 'reconnect');
    }
    for (const [, pending] of this._pending) {
      clearTimeout(pending.timer);
      pending.reject(Object.assign(new Error('connection lost'), { code: 'not_connected' }));
    }
    this._pending.clear();
  }

  _closed() {
    this._teardown();
    if (this.stopped) return;
    this.failures += 1;
    const delay = backoffDelay(this.failures - 1);
    this.retryAt = Date.now() + delay;
    const offline = this.failures >= OFFLINE_AFTER_FAILURES || navigator.onLine === false;
    this._setState(offline ? 'offline' : 'reconnecting');
    this._retryTimer = setTimeout(() => this._open(), delay);
  }

  /** Close a socket that looks alive but is not (missed pongs) and reconnect at once. */
  _forceReconnect() {
    this._teardown();
    this._setState('reconnecting');
    this._open();
  }

  _ping() {
    if (!this._isOpen()) return;
    if (this._pingOutstanding) {
      this._missedPongs += 1;
      if (this._missedPongs >= MISSED_PONGS_LIMIT) {
        this._forceReconnect();
        return;
      }
    }
    this._pingOutstanding = true;
    this.ws.send(JSON.stringify({ type: 'ping', request_id: `${this.name}-ping` }));
  }

  _received(data) {
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return; // not ours to show; the gateway only sends JSON
    }
    if (!message || typeof message !== 'object') return;
    this.lastUpdate = new Date();
    const type = message.type;
    if (type === 'pong') {
      this._pingOutstanding = false;
      this._missedPongs = 0;
      return;
    }
    if (type === 'connection') {
      this._connected(message);
    } else if (type === 'replay_complete') {
      if (typeof message.to_seq === 'number') this._seenSeq(message.to_seq);
      this.resuming = false;
    } else if (typeof message.seq === 'number') {
      this._seenSeq(message.seq);
    }
    if ((type === 'result' || type === 'error') && message.request_id != null) {
      const pending = this._pending.get(String(message.request_id));
      if (pending) {
        this._pending.delete(String(message.request_id));
        clearTimeout(pending.timer);
        if (type === 'result') pending.resolve(message);
        // `texts` has the refusal in every language (a Korean gateway, a screen switched to English)
        else pending.reject(Object.assign(new Error(message.message || message.code), { code: message.code, texts: message.texts }));
      }
    }
    this.dispatchEvent(new CustomEvent('message', { detail: message }));
  }

  _seenSeq(seq) {
    if (this.lastSeq === null || seq > this.lastSeq) this.lastSeq = seq;
  }

  _connected(message) {
    this.connectionInfo = message;
    this.failures = 0;
    this._missedPongs = 0;
    this._pingOutstanding = false;
    const gatewaySeq = typeof message.seq === 'number' ? message.seq : null;
    const epoch = typeof message.epoch === 'string' && message.epoch ? message.epoch : null;
    const otherEpoch = epoch !== null && this.epoch !== null && epoch !== this.epoch;
    if (epoch !== null) this.epoch = epoch;
    let reset = false;
    if (otherEpoch || (gatewaySeq !== null && this.lastSeq !== null && gatewaySeq < this.lastSeq)) {
      // Another database (a lost file, a new PC), or the counter went backwards: what we hold is not its
      // history. The server answered our since= with an incomplete replay; start from its state.
      reset = true;
      this.resuming = false;
      this.lastSeq = gatewaySeq;
    } else if (!this.resuming && gatewaySeq !== null) {
      this._seenSeq(gatewaySeq);
    }
    clearInterval(this._pingTimer);
    this._pingTimer = setInterval(() => this._ping(), this.pingMs);
    this._setState('live');
    this.dispatchEvent(new CustomEvent('connected', { detail: { message, resumed: this.resuming, reset } }));
  }

  _setState(state) {
    this.state = state;
    this._emitState();
  }

  _emitState() {
    this.dispatchEvent(new CustomEvent('state', { detail: this }));
  }
}
