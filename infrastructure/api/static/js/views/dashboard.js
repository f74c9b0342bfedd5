// Dashboard: symbol, price and change, key indicators, the swarm's state, the chart, Run analysis.
import { api, candlesOf, card, currentSymbol, errorText, esc, fmt, message, onLive, pill, rememberSymbol, signCls,
  symbols, symbolSelect, throttle } from "../core.js";
import { runAnalysis } from "./analysis.js";

const INDICATORS = [
  ["rsi_14", "RSI 14", 1], ["macd_hist", "MACD hist", 3], ["atr_14", "ATR 14", 2], ["adx_14", "ADX 14", 1],
  ["sma_20", "SMA 20", 2], ["ema_50", "EMA 50", 2],
];

function pickIndicators(ind) {
  const out = [];
  for (const [key, label, digits] of INDICATORS) {
    if (ind[key] !== undefined) out.push([label, ind[key], digits]);
  }
  for (const [key, value] of Object.entries(ind)) {
    if (out.length >= 6) break;
    if (!INDICATORS.some(([k]) => k === key) && /^(rsi|macd$|atr|adx|sma|ema|volatility)/.test(key)) {
      out.push([key, value, 2]);
    }
  }
  return out.slice(0, 6);
}

export async function mount(root, ctx) {
  let list;
  try {
    list = await symbols();
  } catch (err) {
    message(root, `The market data could not be loaded: ${errorText(err)}`, "error");
    return null;
  }
  if (!list.length) {
    message(root, "No market data yet: the orchestrator has not received any indicator snapshot. "
      + "Prices appear here as soon as the technical-analysis agent publishes its first candle.");
    const off = onLive("candle", () => { off(); ctx.reload(); });
    return { unmount: off };
  }
  let symbol = currentSymbol(list);
  root.innerHTML = `
    <div class="row" style="margin-bottom:14px">
      <h2 style="margin:0">Market</h2>${symbolSelect(list, symbol)}
      <span class="spacer"></span>
      <span id="analyze-msg" class="muted small"></span>
      <button id="analyze" class="big" type="button">Run analysis</button>
    </div>
    <div class="cards" id="cards"></div>
    <div class="grid-2">
      <div class="panel"><div class="row"><h3 id="chart-title">Price</h3><span class="spacer"></span>
        <span class="muted small" id="regime"></span></div><div id="chart" class="chart"></div></div>
      <div>
        <div class="panel"><h3>Swarm</h3><div id="swarm"></div></div>
        <div class="panel"><h3>Account</h3><div id="account"></div></div>
        <div class="panel"><h3>Latest consensus</h3><div id="consensus" class="feed"></div></div>
        <div class="panel"><h3>Recent fills</h3><div id="fills" class="feed"></div></div>
      </div>
    </div>`;
  const select = root.querySelector("#symbol");
  let chart = null;
  let rows = [];

  async function loadMarket(redraw = true) {
    rows = await candlesOf(symbol, 500);
    const cards = root.querySelector("#cards");
    if (!rows.length) {
      message(cards, `No candles for ${symbol} yet.`);
      return;
    }
    const last = rows[rows.length - 1];
    const ref = rows[Math.max(0, rows.length - 25)];
    const change = +ref.close ? +last.close / +ref.close - 1 : 0;
    const ind = pickIndicators(last.indicators || {});
    cards.innerHTML = card(`${symbol} last`, fmt.num(last.close), `${last.venue} · ${last.timeframe} · ${fmt.time(last.close_time)}`)
      + card("Change (24 bars)", fmt.signedPct(change), `from ${fmt.num(ref.close)}`, signCls(change))
      + ind.map(([label, value, d]) => card(label, fmt.num(value, d))).join("");
    root.querySelector("#chart-title").textContent = `${symbol} · ${last.timeframe}`;
    root.querySelector("#regime").innerHTML = `regime ${pill(last.regime || "unknown", "muted")}`;
    if (redraw || !chart) chart = window.TSCharts.candles(root.querySelector("#chart"), rows, [], { height: 520 });
    await markFills();
  }

  async function loadSwarm() {
    const el = root.querySelector("#swarm");
    try {
      const h = await api.get("/health");
      el.innerHTML = `<dl class="kv">
        <dt>status</dt><dd>${pill(h.status)}</dd>
        <dt>trading</dt><dd>${pill(h.trading)}</dd>
        <dt>intended</dt><dd>${pill(h.trading_intended)}</dd>
        <dt>agents up</dt><dd><b>${h.agents_up}</b> / ${h.agents_total}${h.agents_down ? ` <span class="neg">(${h.agents_down} down)</span>` : ""}</dd>
        <dt>mode</dt><dd>${esc(h.mode)}</dd></dl>`;
    } catch (err) {
      message(el, errorText(err), "error");
    }
  }

  /** Our fills of this symbol on the chart: buys below the bar, sells above. */
  async function markFills() {
    if (!chart || !rows.length) return;
    const page = await api.get(`/trades?symbol=${encodeURIComponent(symbol)}&limit=200`).catch(() => ({ items: [] }));
    const p = window.TSCharts.palette();
    const first = rows[0].open_time;
    chart.setMarkers(page.items.filter((t) => t.ts >= first).map((t) => ({
      time: t.ts, position: t.side === "buy" ? "belowBar" : "aboveBar", shape: t.side === "buy" ? "arrowUp" : "arrowDown",
      color: t.side === "buy" ? p.up : p.down, text: `${t.side} ${fmt.num(t.price)}`,
    })));
  }

  async function loadAccount() {
    const el = root.querySelector("#account");
    try {
      if (!(await api.get("/portfolio/equity?limit=1")).length) { message(el, "No portfolio snapshot yet."); return; }
      const p = await api.get("/portfolio");
      el.innerHTML = `<dl class="kv"><dt>equity</dt><dd><b>${fmt.money(p.equity)}</b></dd>
        <dt>cash</dt><dd>${fmt.money(p.cash)}</dd>
        <dt>unrealised PnL</dt><dd class="${signCls(p.unrealized_pnl)}">${fmt.money(p.unrealized_pnl)}</dd>
        <dt>realised PnL</dt><dd class="${signCls(p.realized_pnl)}">${fmt.money(p.realized_pnl)}</dd>
        <dt>open positions</dt><dd>${p.open_positions}</dd>
        <dt>drawdown</dt><dd>${fmt.pct(p.drawdown)}</dd></dl>`;
    } catch (err) {
      message(el, err.status === 404 ? "No portfolio snapshot yet." : errorText(err), err.status === 404 ? "" : "error");
    }
  }

  async function loadFills() {
    const el = root.querySelector("#fills");
    try {
      const page = await api.get("/trades?limit=6");
      if (!page.items.length) { message(el, "No fill yet."); return; }
      el.innerHTML = page.items.map((t) => `<div class="item"><time>${fmt.time(t.ts)}</time>${pill(t.side)}
        <span>${fmt.num(t.quantity, 6)} ${esc(t.symbol)} @ <b>${fmt.num(t.price)}</b></span></div>`).join("");
    } catch (err) {
      message(el, errorText(err), "error");
    }
  }

  async function loadConsensus() {
    const el = root.querySelector("#consensus");
    try {
      const items = await api.get(`/consensus?symbol=${encodeURIComponent(symbol)}&limit=8`);
      if (!items.length) { message(el, "No consensus decision seen yet for this symbol."); return; }
      el.innerHTML = items.map((e) => {
        const d = e.data;
        return `<div class="item"><time>${fmt.time(e.ts)}</time>${pill(d.outcome)} ${pill(d.direction)}
          <span>score ${fmt.num(d.weighted_score, 1)} · ${d.votes.length} votes</span></div>`;
      }).join("");
    } catch (err) {
      message(el, errorText(err), "error");
    }
  }

  select.addEventListener("change", async () => {
    symbol = select.value;
    rememberSymbol(symbol);
    await Promise.all([loadMarket(), loadConsensus()]);
  });

  const button = root.querySelector("#analyze");
  button.addEventListener("click", async () => {
    button.disabled = true;
    button.innerHTML = `<span class="spinner"></span>Analysing ${esc(symbol)}…`;
    root.querySelector("#analyze-msg").textContent = "";
    try {
      await runAnalysis(symbol);
      ctx.navigate(`#/analysis/${encodeURIComponent(symbol)}`);
    } catch (err) {
      root.querySelector("#analyze-msg").innerHTML = `<span class="neg">${esc(errorText(err))}</span>`;
      button.disabled = false;
      button.textContent = "Run analysis";
    }
  });

  await Promise.all([loadMarket(), loadSwarm(), loadConsensus(), loadAccount(), loadFills()]);
  const offs = [
    onLive("candle", (c) => {
      if (c.symbol !== symbol || !chart) return;
      chart.update({ time: c.close_time, open: c.open, high: c.high, low: c.low, close: c.close });
    }),
    onLive("candle", throttle((c) => { if (c.symbol === symbol) loadMarket(false); }, 5000)),
    onLive("consensus_decision", throttle(loadConsensus, 2000)),
    onLive("fill", throttle(() => { loadFills(); loadAccount(); markFills(); }, 2000)),
  ];
  const timer = setInterval(loadSwarm, 10000);
  return { unmount: () => { offs.forEach((f) => f()); clearInterval(timer); } };
}
