// Analysis: the AI desk's role cards and final decision (POST /analyze, GET /desk/decisions) when the
// server has the desk, and always the strategies' votes and consensus (GET /consensus, /signals,
// /decisions); a price chart with the decision marked; the history filterable by symbol and outcome.
import { api, ApiError, candlesOf, currentSymbol, errorText, esc, fmt, message, onLive, pill, qs, rememberSymbol,
  serverConfig, symbols, symbolSelect, throttle } from "../core.js";

const ROLE_ORDER = ["technical", "sentiment", "tokenomics", "researcher", "trader", "risk_manager"];
const ROLE_LABEL = { technical: "Technical analyst", sentiment: "Sentiment / news analyst",
  tokenomics: "Tokenomics analyst", researcher: "Researcher thesis", trader: "Trader proposal",
  risk_manager: "Risk manager verdict" };
const LAST_KEY = "tradeswarm.analysis";
const NO_DESK = "The AI desk is not available on this server (no POST /analyze): "
  + "showing the strategies' votes and consensus instead.";

/** Ask the desk for an analysis of ``symbol``; remembers the result (or that there is no desk). */
export async function runAnalysis(symbol) {
  const config = await serverConfig();
  if (!config.desk) {
    sessionStorage.setItem(LAST_KEY, JSON.stringify({ symbol, desk: false, at: new Date().toISOString() }));
    return null;
  }
  try {
    const result = await api.post("/analyze", { symbol, mode: "live" });
    sessionStorage.setItem(LAST_KEY, JSON.stringify({ symbol, desk: true, result }));
    return result;
  } catch (err) {
    if (err instanceof ApiError && [404, 405, 503].includes(err.status)) { // no desk (or none configured)
      sessionStorage.setItem(LAST_KEY, JSON.stringify({ symbol, desk: false, at: new Date().toISOString(),
        why: err.status === 503 ? err.message : "" }));
      return null;
    }
    throw err;
  }
}

function lastRun(symbol) {
  try {
    const saved = JSON.parse(sessionStorage.getItem(LAST_KEY) || "null");
    return saved && saved.symbol === symbol ? saved : null;
  } catch { return null; }
}

function renderValue(v) {
  if (v === null || v === undefined) return "–";
  if (typeof v === "number") return fmt.num(v, Math.abs(v) < 10 ? 3 : 2);
  if (typeof v === "string") return v;
  return JSON.stringify(v, null, 1);
}

const label = (k) => k.replace(/_/g, " ");

function outputHtml(output) {
  if (!output || typeof output !== "object") return `<p class="muted">${esc(renderValue(output))}</p>`;
  const entries = Object.entries(output);
  const isLong = (v) => typeof v === "string" && v.length > 40;
  const prose = entries.filter(([, v]) => isLong(v));
  const simple = entries.filter(([, v]) => (v === null || typeof v !== "object") && !isLong(v));
  const lists = entries.filter(([, v]) => Array.isArray(v) && v.every((x) => typeof x !== "object"));
  const nested = entries.filter(([k, v]) => v !== null && typeof v === "object" && !lists.some(([l]) => l === k));
  return `<dl class="kv">${simple.map(([k, v]) => `<dt>${esc(label(k))}</dt><dd><b>${esc(renderValue(v))}</b></dd>`).join("")}</dl>`
    + prose.map(([k, v]) => `<div class="small muted" style="margin-top:8px">${esc(label(k))}</div><p class="prose">${esc(v)}</p>`).join("")
    + lists.filter(([, v]) => v.length).map(([k, v]) => `<div class="small muted" style="margin-top:8px">${esc(label(k))}</div>
      <ul class="bullets">${v.map((x) => `<li>${esc(renderValue(x))}</li>`).join("")}</ul>`).join("")
    + nested.map(([k, v]) => `<div class="small muted" style="margin-top:6px">${esc(label(k))}</div><pre>${esc(JSON.stringify(v, null, 2))}</pre>`).join("");
}

/** The desk's decision: final emphasised, one card per role (whatever roles the JSON has). */
export function deskHtml(d) {
  const f = d.final || {};
  const roles = d.roles || {};
  const names = [...ROLE_ORDER.filter((r) => r in roles), ...Object.keys(roles).filter((r) => !ROLE_ORDER.includes(r))];
  const cards = names.map((name) => {
    const r = roles[name] || {};
    const status = r.status || "ok";
    const tokens = (r.tokens_in || r.tokens_out) ? `${r.tokens_in || 0} in / ${r.tokens_out || 0} out` : "";
    return `<div class="card role ${esc(status)}" data-role="${esc(name)}">
      <div class="row"><h3 style="margin:0">${esc(ROLE_LABEL[name] || name)}</h3><span class="spacer"></span>${pill(status, status === "ok" ? "ok" : "muted")}</div>
      <div class="small muted">${esc(r.model || "")}${tokens ? " · " + esc(tokens) : ""}</div>
      ${status === "ok" ? outputHtml(r.output) : `<p class="muted">${esc(r.reason || "no output")}</p>`}
    </div>`;
  }).join("");
  const t = d.tokens || {};
  return `<div class="final ${esc(f.action || "")}" id="final">
      <div class="action">${esc(f.action || "–")}</div>
      <div><div>${pill(f.verdict || "–")} size <b>${f.size_pct !== undefined && f.size_pct !== null ? fmt.num(f.size_pct, 2) + "%" : "–"}</b></div>
        <div style="margin-top:6px">${esc(f.reason || "")}</div>
        <div class="small muted" style="margin-top:6px">${esc(d.symbol)} · ${esc(d.timeframe || "")} · ${fmt.time(d.ts)} · provider ${esc(d.provider || "–")}
          · tokens ${t.in ?? 0} in / ${t.out ?? 0} out${t.cost_usd !== undefined ? ` · $${fmt.num(t.cost_usd, 4)}` : ""}</div></div>
    </div><div class="role-cards">${cards}</div>`;
}

/** The strategies' consensus: outcome and direction emphasised, each vote with its score. */
export function consensusHtml(event, intent, decisions) {
  const d = event.data;
  const votes = (d.votes || []).map((v) => {
    const w = Math.min(100, Math.abs(+v.score));
    const colour = v.direction === "long" ? "var(--up)" : v.direction === "short" || v.direction === "exit" ? "var(--down)" : "var(--muted)";
    return `<div class="card" data-vote="${esc(v.strategy)}"><div class="row"><b>${esc(v.strategy)}</b><span class="spacer"></span>${pill(v.direction)}</div>
      <div class="small">score ${fmt.num(v.score, 1)} · confidence ${fmt.pct(v.confidence, 0)}</div>
      <div class="bar"><i style="width:${w}%;background:${colour}"></i></div>
      <div class="small muted" style="margin-top:6px">${esc(v.rationale || "")}</div></div>`;
  }).join("");
  const chain = (decisions || []).map((x) => `<div class="item"><time>${esc(x.stage)}</time>${pill(x.verdict)} <span>${esc(x.rationale)}</span></div>`).join("");
  return `<div class="final ${esc(d.direction)}" id="consensus-final">
      <div class="action">${esc(d.outcome === "execute" ? d.direction : d.outcome).toUpperCase()}</div>
      <div><div>${pill(d.outcome)} ${pill(d.direction)} score <b>${fmt.num(d.weighted_score, 1)}</b> · variance ${fmt.num(d.variance, 3)} · ${esc(d.method)}</div>
        <div style="margin-top:6px">${esc(d.rationale || "")}</div>
        <div class="small muted" style="margin-top:6px">${esc(d.symbol)} · ${esc(d.timeframe)} · ${fmt.time(event.ts)}${intent ? ` · intent ${esc(intent.payload.side)} @ ${fmt.num(intent.payload.reference_price)}` : ""}</div></div>
    </div>
    <div class="votes role-cards">${votes || '<div class="msg">No votes.</div>'}</div>
    ${chain ? `<h3>Risk and compliance</h3><div class="feed">${chain}</div>` : ""}`;
}

export async function mount(root, ctx) {
  let list = [];
  try { list = await symbols(); } catch (err) { message(root, errorText(err), "error"); return null; }
  let symbol = ctx.arg && list.includes(ctx.arg) ? ctx.arg : currentSymbol(list);
  if (!symbol) {
    message(root, "No market data yet: nothing to analyse. Symbols appear once candles are analysed.");
    return null;
  }
  root.innerHTML = `
    <div class="row" style="margin-bottom:14px"><h2 style="margin:0">Analysis</h2>${symbolSelect(list, symbol)}
      <span class="spacer"></span><span id="analyze-msg" class="small"></span>
      <button id="analyze" class="big" type="button">Run analysis</button></div>
    <div id="desk"></div>
    <div class="grid-2" style="margin-top:14px">
      <div class="panel"><h3>Strategies' votes and consensus</h3><div id="consensus"></div></div>
      <div class="panel"><h3 id="chart-title">Price</h3><div id="chart" class="chart"></div></div>
    </div>
    <div class="panel"><div class="row"><h3 style="margin:0">History</h3><span class="spacer"></span>
      <select id="h-symbol" aria-label="history symbol"><option value="">all symbols</option>${list.map((s) => `<option>${esc(s)}</option>`).join("")}</select>
      <select id="h-outcome" aria-label="history outcome"><option value="">all outcomes</option></select></div>
      <div id="history" class="table-wrap" style="margin-top:10px"></div></div>`;
  let hasDesk = (await serverConfig()).desk ? null : false; // null: unknown until /desk/decisions answers
  let marked = null;

  async function deskHistory(params) {
    try {
      const page = await api.get(`/desk/decisions${qs(params)}`);
      hasDesk = true;
      return page.items || page;
    } catch (err) {
      if ([404, 405, 503].includes(err.status)) { hasDesk = false; return null; }
      throw err;
    }
  }

  async function loadDesk() {
    const el = root.querySelector("#desk");
    const last = lastRun(symbol);
    if (last && last.desk && last.result) {
      el.innerHTML = `<div class="panel"><h3>AI desk</h3>${deskHtml(last.result)}</div>`;
      marked = { time: last.result.ts, action: last.result.final && last.result.final.action };
      return;
    }
    if (last && !last.desk) {
      el.innerHTML = `<div class="msg warn" id="no-desk">${esc(last.why ? `${last.why}: showing the strategies' votes and consensus instead.` : NO_DESK)}</div>`;
      return;
    }
    const items = hasDesk === false ? null : await deskHistory({ symbol, limit: 1 }).catch(() => null);
    if (items && items.length) {
      el.innerHTML = `<div class="panel"><h3>AI desk · latest decision</h3>${deskHtml(items[0])}</div>`;
      marked = { time: items[0].ts, action: items[0].final && items[0].final.action };
    } else if (hasDesk === false) {
      el.innerHTML = `<div class="msg">The AI desk is not deployed on this server: the strategies' consensus below is the decision.</div>`;
    } else {
      el.innerHTML = `<div class="msg">No AI desk decision for ${esc(symbol)} yet: press Run analysis.</div>`;
    }
  }

  async function loadConsensus() {
    const el = root.querySelector("#consensus");
    try {
      const [events, signals, decisions] = await Promise.all([
        api.get(`/consensus${qs({ symbol, limit: 1 })}`),
        api.get(`/signals${qs({ symbol, limit: 20 })}`).catch(() => ({ items: [] })),
        api.get(`/decisions${qs({ limit: 100 })}`).catch(() => ({ items: [] })),
      ]);
      if (!events.length) {
        message(el, `No consensus decision seen for ${symbol} since the orchestrator started.`);
        return;
      }
      const ev = events[0];
      const intent = (signals.items || []).find((s) => ev.data.intent_id && s.intent_id === ev.data.intent_id) || null;
      const chain = ev.data.intent_id ? (decisions.items || []).filter((x) => x.intent_id === ev.data.intent_id) : [];
      el.innerHTML = consensusHtml(ev, intent, chain);
      if (!marked) marked = { time: ev.ts, action: ev.data.direction, consensus: true };
    } catch (err) {
      message(el, errorText(err), "error");
    }
  }

  async function loadChart() {
    const el = root.querySelector("#chart");
    const rows = await candlesOf(symbol, 300);
    root.querySelector("#chart-title").textContent = `${symbol} with the decision`;
    if (!rows.length) { message(el, "No candles yet."); return; }
    const p = window.TSCharts.palette();
    const markers = [];
    if (marked && marked.time) {
      const a = String(marked.action || "").toLowerCase();
      const buy = a === "buy" || a === "long";
      const sell = a === "sell" || a === "short" || a === "exit";
      markers.push({ time: marked.time, position: sell ? "aboveBar" : "belowBar",
        shape: buy ? "arrowUp" : sell ? "arrowDown" : "circle", color: buy ? p.up : sell ? p.down : p.accent,
        text: String(marked.action || "").toUpperCase() });
    }
    window.TSCharts.candles(el, rows, markers, { height: 360 });
  }

  async function loadHistory() {
    const el = root.querySelector("#history");
    const sym = root.querySelector("#h-symbol").value || undefined;
    const outcomeSel = root.querySelector("#h-outcome");
    const outcome = outcomeSel.value || undefined;
    try {
      const desk = hasDesk === false ? null : await deskHistory({ symbol: sym, outcome, limit: 50 });
      if (desk) {
        if (outcomeSel.options.length === 1) {
          outcomeSel.innerHTML += ["APPROVE", "ADJUST", "REJECT", "NO_TRADE"].map((o) => `<option>${o}</option>`).join("");
        }
        if (!desk.length) { message(el, "No desk decision matches."); return; }
        window.TSCharts.sortableTable(el, [
          { key: "ts", label: "time", fmt: fmt.time }, { key: "symbol", label: "symbol" },
          { key: "action", label: "action" }, { key: "verdict", label: "verdict" },
          { key: "size_pct", label: "size %", num: true, fmt: (v) => fmt.num(v, 2) },
          { key: "tokens", label: "tokens", num: true }, { key: "reason", label: "reason" },
        ], desk.map((d) => ({ ts: d.ts, symbol: d.symbol, action: d.final && d.final.action,
          verdict: d.final && d.final.verdict, size_pct: d.final && d.final.size_pct,
          tokens: d.tokens ? (d.tokens.in || 0) + (d.tokens.out || 0) : 0, reason: d.final && d.final.reason })));
        return;
      }
      if (outcomeSel.options.length === 1) {
        outcomeSel.innerHTML += ["execute", "manual_review", "reject"].map((o) => `<option>${o}</option>`).join("");
      }
      const events = await api.get(`/consensus${qs({ symbol: sym, outcome, limit: 100 })}`);
      if (!events.length) { message(el, "No consensus decision matches."); return; }
      window.TSCharts.sortableTable(el, [
        { key: "ts", label: "time", fmt: fmt.time }, { key: "symbol", label: "symbol" },
        { key: "outcome", label: "outcome" }, { key: "direction", label: "direction" },
        { key: "score", label: "score", num: true, fmt: (v) => fmt.num(v, 1) },
        { key: "votes", label: "votes", num: true }, { key: "rationale", label: "rationale" },
      ], events.map((e) => ({ ts: e.ts, symbol: e.data.symbol, outcome: e.data.outcome, direction: e.data.direction,
        score: e.data.weighted_score, votes: (e.data.votes || []).length, rationale: (e.data.rationale || "").slice(0, 90) })));
    } catch (err) {
      message(el, errorText(err), "error");
    }
  }

  root.querySelector("#symbol").addEventListener("change", (e) => {
    rememberSymbol(e.target.value);
    ctx.navigate(`#/analysis/${encodeURIComponent(e.target.value)}`);
  });
  root.querySelector("#h-symbol").addEventListener("change", loadHistory);
  root.querySelector("#h-outcome").addEventListener("change", loadHistory);
  const button = root.querySelector("#analyze");
  button.addEventListener("click", async () => {
    button.disabled = true;
    button.innerHTML = `<span class="spinner"></span>Analysing…`;
    root.querySelector("#analyze-msg").textContent = "";
    try {
      await runAnalysis(symbol);
      marked = null;
      await loadDesk();
      await Promise.all([loadConsensus(), loadHistory()]);
      await loadChart();
    } catch (err) {
      root.querySelector("#analyze-msg").innerHTML = `<span class="neg">${esc(errorText(err))}</span>`;
    } finally {
      button.disabled = false;
      button.textContent = "Run analysis";
    }
  });

  await loadDesk();
  await Promise.all([loadConsensus(), loadHistory()]);
  await loadChart();
  const offs = [
    onLive("consensus_decision", throttle((d) => {
      if (d.symbol === symbol) { loadConsensus(); loadHistory(); }
    }, 3000)),
    onLive("desk_decision", throttle(() => { loadHistory(); }, 3000)),
  ];
  return { unmount: () => offs.forEach((f) => f()) };
}
