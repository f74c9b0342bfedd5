// Shared plumbing of the dashboard: the API client (same origin, bearer token from localStorage),
// the live event stream (server-sent events, one connection for the whole page) and small helpers.

const TOKEN_KEY = "tradeswarm.token";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function getToken() {
  return localStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(value) {
  if (value) localStorage.setItem(TOKEN_KEY, value);
  else localStorage.removeItem(TOKEN_KEY);
}

async function call(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") {
    headers["Content-Type"] = "application/json";
    const token = getToken();
    if (token) headers.Authorization = `Bearer ${token}`;
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    throw new ApiError(0, `the API is unreachable (${err.message || err})`);
  }
  let data = null;
  const text = await response.text();
  if (text) {
    try { data = JSON.parse(text); } catch { data = { message: text.slice(0, 200) }; }
  }
  if (!response.ok) {
    let message = (data && (data.message || data.detail)) || response.statusText;
    if (response.status === 401) {
      message = getToken()
        ? "the API refused the token: it is not the server's TRADESWARM_API_TOKEN (set it with 🔑 token)"
        : "no API token: set it with the 🔑 token button (top right) to run analyses, backtests and controls";
    }
    throw new ApiError(response.status, message);
  }
  return data;
}

export const api = {
  get: (path) => call("GET", path),
  post: (path, body) => call("POST", path, body === undefined ? {} : body),
};

let configPromise = null;
/** The server's /dashboard/config (links, whether the AI desk is served), fetched once. */
export function serverConfig() {
  if (!configPromise) configPromise = api.get("/dashboard/config").catch(() => ({ links: {}, desk: false }));
  return configPromise;
}

/** Build a query string from an object, skipping empty values. */
export function qs(params) {
  const parts = Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== "");
  return parts.length ? "?" + parts.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join("&") : "";
}

// ------------------------------------------------------------------------------ live events

const listeners = new Map(); // type -> Set(fn)
const stateListeners = new Set();
let source = null;
let liveState = "connecting";
const TYPES = ["candle", "consensus_decision", "order_update", "fill", "portfolio_snapshot", "risk_alert",
  "risk_decision", "compliance_decision", "command_ack", "lagged", "desk_decision", "unavailable"];

function setLiveState(state) {
  liveState = state;
  for (const fn of stateListeners) fn(state);
}

/** Open the page's one event stream; EventSource reconnects by itself (the server says retry: 2s). */
export function connectLive() {
  if (source) return;
  source = new EventSource("/events");
  source.addEventListener("hello", () => setLiveState("open"));
  source.onopen = () => setLiveState("open");
  source.onerror = () => setLiveState(source.readyState === EventSource.CLOSED ? "closed" : "reconnecting");
  for (const type of TYPES) {
    source.addEventListener(type, (ev) => {
      if (type === "unavailable") { setLiveState("off"); source.close(); return; }
      let payload = {};
      try { payload = JSON.parse(ev.data); } catch { return; }
      for (const fn of listeners.get(type) || []) {
        try { fn(payload.data || {}, payload.ts); } catch (err) { console.warn("live handler failed", err); }
      }
    });
  }
}

/** Subscribe to one event type; returns the unsubscribe function. */
export function onLive(type, fn) {
  if (!listeners.has(type)) listeners.set(type, new Set());
  listeners.get(type).add(fn);
  return () => listeners.get(type).delete(fn);
}

export function onLiveState(fn) {
  stateListeners.add(fn);
  fn(liveState);
  return () => stateListeners.delete(fn);
}

// ------------------------------------------------------------------------------ helpers

export const fmt = {
  num: (v, d) => window.TSCharts.fmtNum(v, d),
  money: (v) => window.TSCharts.fmtNum(v, 2),
  pct: (v, d = 2) => (v === null || v === undefined || Number.isNaN(+v) ? "–" : `${(+v * 100).toFixed(d)}%`),
  signedPct: (v, d = 2) => (v === null || v === undefined || Number.isNaN(+v) ? "–"
    : `${+v >= 0 ? "+" : ""}${(+v * 100).toFixed(d)}%`),
  time: (t) => {
    if (!t) return "–";
    const d = new Date(t);
    return Number.isNaN(d.getTime()) ? String(t) : d.toISOString().slice(0, 16).replace("T", " ");
  },
  ago: (t) => {
    const s = Math.max(0, (Date.now() - new Date(t).getTime()) / 1000);
    if (s < 60) return `${Math.round(s)}s ago`;
    if (s < 3600) return `${Math.round(s / 60)}m ago`;
    return `${Math.round(s / 3600)}h ago`;
  },
};

export const esc = (s) => window.TSCharts.escapeHtml(String(s ?? ""));

export function signCls(v) {
  return +v > 0 ? "pos" : +v < 0 ? "neg" : "";
}

export function message(el, text, kind = "") {
  el.innerHTML = `<div class="msg ${kind}">${esc(text)}</div>`;
}

export function errorText(err) {
  return err instanceof ApiError ? err.message : `unexpected error: ${err && err.message ? err.message : err}`;
}

/** A `<div class="card">` with label, value and an optional sub-line. */
export function card(label, value, sub = "", cls = "") {
  return `<div class="card"><div class="label">${esc(label)}</div><div class="value ${cls}">${esc(value)}</div>`
    + (sub ? `<div class="sub">${esc(sub)}</div>` : "") + "</div>";
}

export function pill(text, cls) {
  return `<span class="pill ${esc(cls || text)}">${esc(text)}</span>`;
}

/** Run ``fn`` at most once per ``ms`` (trailing): live events never cause a request storm. */
export function throttle(fn, ms) {
  let timer = null;
  let pending = false;
  return (...args) => {
    if (timer) { pending = true; return; }
    fn(...args);
    timer = setTimeout(() => {
      timer = null;
      if (pending) { pending = false; fn(...args); }
    }, ms);
  };
}

/** Every symbol the server knows (market series), with the chosen one remembered across views. */
export async function symbols() {
  const series = await api.get("/market/symbols");
  return [...new Set(series.map((s) => s.symbol))].sort();
}

export function currentSymbol(list) {
  const saved = localStorage.getItem("tradeswarm.symbol");
  if (saved && (!list || list.includes(saved))) return saved;
  return list && list.length ? list[0] : "";
}

export function rememberSymbol(symbol) {
  localStorage.setItem("tradeswarm.symbol", symbol);
}

export function symbolSelect(list, selected) {
  return `<select id="symbol" aria-label="symbol">${list.map((s) =>
    `<option ${s === selected ? "selected" : ""}>${esc(s)}</option>`).join("")}</select>`;
}

/** Candles (the orchestrator's latest snapshots) of a symbol; [] when it has none yet. */
export async function candlesOf(symbol, limit = 500) {
  try {
    const rows = await api.get(`/market/${encodeURIComponent(symbol)}/latest${qs({ limit })}`);
    return rows.map((r) => ({ ...r, time: r.close_time }));
  } catch (err) {
    if (err.status === 404) return [];
    throw err;
  }
}

/** Confirmation dialog; resolves to the reason typed, or null when cancelled. */
export function confirmDialog(title, text, danger = true) {
  const dialog = document.getElementById("confirm-dialog");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  const ok = document.getElementById("confirm-ok");
  ok.className = danger ? "danger" : "";
  ok.textContent = title;
  const reason = document.getElementById("confirm-reason");
  reason.value = "";
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok" ? reason.value : null), { once: true });
  });
}
