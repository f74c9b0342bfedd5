// The dashboard's entry point: hash router (#/dashboard, #/analysis...), theme, token dialog,
// live-stream indicator and the swarm's trading state in the top bar.
import { api, connectLive, esc, getToken, onLive, onLiveState, setToken, throttle } from "./core.js";
import * as dashboard from "./views/dashboard.js";
import * as analysis from "./views/analysis.js";
import * as portfolio from "./views/portfolio.js";
import * as backtest from "./views/backtest.js";
import * as system from "./views/system.js";

const VIEWS = { dashboard, analysis, portfolio, backtest, system };
let current = null;
let renderId = 0;

function route() {
  const hash = location.hash.replace(/^#\/?/, "");
  const [name, ...rest] = hash.split("/");
  const view = VIEWS[name] ? name : "dashboard";
  return { view, arg: rest.join("/") ? decodeURIComponent(rest.join("/")) : "" };
}

async function render() {
  const { view, arg } = route();
  const id = ++renderId;
  if (current && current.unmount) {
    try { current.unmount(); } catch (err) { console.warn("unmount failed", err); }
  }
  current = null;
  document.querySelectorAll("#nav a").forEach((a) => a.classList.toggle("active", a.dataset.view === view));
  // each render gets its own element: a view still loading when the user moves on keeps writing into
  // its own (detached) element, never into the next view's
  const host = document.getElementById("view");
  host.innerHTML = "";
  host.dataset.view = view;
  const root = document.createElement("div");
  host.appendChild(root);
  try {
    const mounted = await VIEWS[view].mount(root, { arg, navigate: (h) => { location.hash = h; }, reload: render });
    if (id !== renderId) { if (mounted && mounted.unmount) mounted.unmount(); return; }
    current = mounted || null;
  } catch (err) {
    if (id !== renderId) return;
    root.innerHTML = `<div class="msg error">This view failed to load: ${esc(err && err.message ? err.message : err)}</div>`;
    console.warn(err);
  }
}

function applyTheme(theme) {
  document.documentElement.dataset.theme = theme;
  localStorage.setItem("tradeswarm.theme", theme);
}

function initTheme() {
  const saved = localStorage.getItem("tradeswarm.theme");
  const prefers = window.matchMedia && window.matchMedia("(prefers-color-scheme: light)").matches ? "light" : "dark";
  applyTheme(saved || prefers);
  document.getElementById("theme-btn").addEventListener("click", () => {
    applyTheme(document.documentElement.dataset.theme === "dark" ? "light" : "dark");
    render(); // the charts take their colours at creation
  });
}

function initToken() {
  const dialog = document.getElementById("token-dialog");
  const input = document.getElementById("token-input");
  const button = document.getElementById("token-btn");
  const show = () => { button.textContent = getToken() ? "🔑 token set" : "🔑 set token"; };
  show();
  button.addEventListener("click", () => { input.value = getToken(); dialog.showModal(); input.focus(); });
  dialog.addEventListener("close", () => {
    if (dialog.returnValue === "save") setToken(input.value.trim());
    if (dialog.returnValue === "clear") setToken("");
    show();
  });
}

function initLive() {
  const el = document.getElementById("live");
  const label = el.querySelector("span");
  onLiveState((state) => {
    el.className = `live ${state}`;
    label.textContent = { open: "live", reconnecting: "reconnecting…", connecting: "connecting…",
      closed: "disconnected", off: "no live stream" }[state] || state;
  });
  connectLive();
}

async function refreshTrading() {
  const pill = document.getElementById("trading-pill");
  try {
    const h = await api.get("/health");
    pill.textContent = h.trading;
    pill.className = `pill ${h.trading}`;
    pill.title = `swarm ${h.status}: ${h.agents_up}/${h.agents_total} agents up; intended ${h.trading_intended}`;
  } catch {
    pill.textContent = "api down";
    pill.className = "pill down";
  }
}

initTheme();
initToken();
initLive();
refreshTrading();
setInterval(refreshTrading, 10000);
onLive("command_ack", throttle(refreshTrading, 1000));
window.addEventListener("hashchange", render);
render();
