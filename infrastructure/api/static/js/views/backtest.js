// Backtest: a form that starts a job (POST /backtests), its progress, then its stats, the equity and
// drawdown chart, the candlesticks with entry/exit markers, the trades table; past jobs listed.
import { api, card, errorText, esc, fmt, message, pill, serverConfig, signCls } from "../core.js";

const POLL_MS = 1000;

function statsHtml(s) {
  const m = (k) => (s[`metric_${k}`] !== undefined ? s[`metric_${k}`] : s[k]);
  return card("Total return", fmt.signedPct(m("total_return")), `final ${fmt.money(s.final_equity)}`, signCls(m("total_return")))
    + card("Max drawdown", fmt.pct(m("max_drawdown")), "", "neg")
    + card("Win rate", m("win_rate") === null || m("win_rate") === undefined ? "n/a" : fmt.pct(m("win_rate"), 1))
    + card("Sharpe", m("sharpe") === null || m("sharpe") === undefined ? "n/a" : fmt.num(m("sharpe"), 2))
    + card("Trades", String(s.trades ?? "–"), `${s.open_trades ?? 0} open · ${s.fills ?? 0} fills`)
    + card("Buy & hold", fmt.signedPct(m("benchmark_return")), "same period", signCls(m("benchmark_return")));
}

export function renderResult(el, job) {
  const r = job.result;
  const trades = r.trades || [];
  el.innerHTML = `
    <div class="cards" id="bt-stats">${statsHtml(r.summary || {})}</div>
    <div class="grid-2e">
      <div class="panel"><h3>Equity and drawdown</h3><div id="bt-equity" class="chart"></div></div>
      <div class="panel"><h3>${esc(job.request.symbol)} · ${esc(job.request.timeframe)} with entries and exits</h3>
        <div id="bt-candles" class="chart"></div></div>
    </div>
    <div class="panel"><div class="row"><h3 style="margin:0">Trades</h3><span class="spacer"></span>
      <span class="muted small">${trades.length} round trips · click a column to sort</span></div>
      <div id="bt-trades" class="table-wrap" style="margin-top:8px"></div></div>`;
  const eq = r.equity_curve.map((p) => ({ time: p.ts, value: p.equity }));
  if (eq.length >= 2) window.TSCharts.equityDrawdown(el.querySelector("#bt-equity"), eq, null, { height: 360 });
  else message(el.querySelector("#bt-equity"), "Not enough samples for an equity curve.");
  const bars = (r.candles || []).filter((c) => c.symbol === job.request.symbol).map((c) => ({ ...c, time: c.open_time }));
  const candleEl = el.querySelector("#bt-candles");
  if (bars.length) {
    const chart = window.TSCharts.candles(candleEl, bars, window.TSCharts.tradeMarkers(trades), { height: 360 });
    candleEl.dataset.markers = String(chart.markers.length);
  } else {
    message(candleEl, "The runner returned no candles for this series.");
  }
  const tradesEl = el.querySelector("#bt-trades");
  if (!trades.length) { message(tradesEl, "No trade in this backtest."); return; }
  window.TSCharts.sortableTable(tradesEl, [
    { key: "symbol", label: "symbol" }, { key: "side", label: "side" },
    { key: "entry_time", label: "entry", fmt: fmt.time }, { key: "entry_price", label: "entry price", num: true, fmt: (v) => fmt.num(v) },
    { key: "exit_time", label: "exit", fmt: (v) => (v ? fmt.time(v) : "open") },
    { key: "exit_price", label: "exit price", num: true, fmt: (v) => fmt.num(v) },
    { key: "quantity", label: "quantity", num: true, fmt: (v) => fmt.num(v, 6) },
    { key: "fees", label: "fees", num: true, fmt: (v) => fmt.num(v, 2) },
    { key: "pnl", label: "PnL", num: true, fmt: (v) => fmt.money(v), cls: (v) => signCls(v) },
  ], trades);
}

export async function mount(root) {
  const config = await serverConfig();
  const strategies = config.strategies && config.strategies.length ? config.strategies : ["sma_cross"];
  root.innerHTML = `
    <h2>Backtest</h2>
    <div class="panel"><form class="bt" id="bt-form">
      <label>symbol<input name="symbol" value="BTC/USDT" required pattern="[A-Z0-9]+/[A-Z0-9]+(:[A-Z0-9]+)?"></label>
      <label>timeframe<input name="timeframe" value="1h" required pattern="\\d{1,3}[smhdwM]"></label>
      <label>venue<input name="venue" value="binance" required></label>
      <label>start (UTC)<input name="start" type="date"></label>
      <label>end (UTC)<input name="end" type="date"></label>
      <label>decided by<select name="runner"><option value="strategies">strategies</option>
        <option value="desk" ${config.desk ? "" : "disabled"}>AI desk${config.desk ? "" : " (not on this server)"}</option></select></label>
      <label>strategy<select name="strategy">${strategies.map((s) => `<option ${s === "sma_cross" ? "selected" : ""}>${esc(s)}</option>`).join("")}</select></label>
      <label>initial cash<input name="cash" type="number" min="1" step="any" value="10000"></label>
      <label>max decisions (desk)<input name="max_decisions" type="number" min="1" value="20" disabled></label>
      <label style="grid-column: span 2">parameters (JSON, for the strategy)<textarea name="params" placeholder='{"fast": 10, "slow": 30}'></textarea></label>
      <div><button type="submit" id="bt-run" class="big">Run backtest</button></div>
    </form><div id="bt-msg" style="margin-top:10px"></div></div>
    <div id="bt-job" style="margin-top:14px"></div>
    <div class="panel"><h3>Past jobs</h3><div id="bt-jobs" class="table-wrap"></div></div>`;
  const form = root.querySelector("#bt-form");
  const runner = form.querySelector("select[name=runner]");
  runner.addEventListener("change", () => {
    form.querySelector("input[name=max_decisions]").disabled = runner.value !== "desk";
  });
  const msg = root.querySelector("#bt-msg");
  const jobEl = root.querySelector("#bt-job");
  let timer = null;
  let alive = true;

  async function loadJobs() {
    const el = root.querySelector("#bt-jobs");
    try {
      const jobs = await api.get("/backtests");
      if (!jobs.length) { message(el, "No backtest job yet: fill in the form above."); return; }
      el.innerHTML = `<table class="grid"><thead><tr><th>submitted</th><th>series</th><th>strategy</th><th>state</th>
        <th class="num">return</th><th class="num">trades</th><th></th></tr></thead><tbody>${jobs.map((j) => {
          const s = (j.result && j.result.summary) || {};
          const ret = s.metric_total_return ?? s.total_return;
          const params = j.request.params || {};
          const strat = (params.strategies || ["sma_cross"]).join(", ") + (params.desk ? " + AI desk" : "");
          return `<tr><td>${fmt.time(j.submitted_at)}</td><td>${esc(j.request.symbol)} ${esc(j.request.timeframe)}</td>
            <td>${esc(strat)}</td><td>${pill(j.state)}</td><td class="num ${signCls(ret)}">${ret === undefined ? "–" : fmt.signedPct(ret)}</td>
            <td class="num">${s.trades ?? "–"}</td><td><a href="#" data-job="${esc(j.job_id)}">open</a></td></tr>`;
        }).join("")}</tbody></table>`;
      el.querySelectorAll("a[data-job]").forEach((a) => a.addEventListener("click", (e) => {
        e.preventDefault();
        follow(a.dataset.job);
      }));
    } catch (err) {
      message(el, errorText(err), "error");
    }
  }

  async function follow(jobId) {
    clearTimeout(timer);
    const started = Date.now();
    const tick = async () => {
      if (!alive) return;
      let job;
      try {
        job = await api.get(`/backtests/${jobId}`);
      } catch (err) {
        message(jobEl, errorText(err), "error");
        return;
      }
      if (job.state === "queued" || job.state === "running") {
        const secs = Math.round((Date.now() - started) / 1000);
        jobEl.innerHTML = `<div class="msg" id="bt-progress"><span class="spinner"></span>${pill(job.state)} backtest of
          ${esc(job.request.symbol)} ${esc(job.request.timeframe)}: ${job.progress ? `${job.progress.toLocaleString()}${job.progress_total ? ` of ${job.progress_total.toLocaleString()}` : ""} candles processed${job.progress_total ? ` (${Math.round(100 * job.progress / job.progress_total)}%)` : ""}` : "starting"} · ${secs}s</div>`;
        timer = setTimeout(tick, POLL_MS);
        return;
      }
      if (job.state === "failed") {
        jobEl.innerHTML = `<div class="msg error" id="bt-failed">The backtest failed: ${esc(job.error || "unknown error")}</div>`;
        loadJobs();
        return;
      }
      jobEl.innerHTML = `<div class="row" style="margin-bottom:8px"><h3 style="margin:0">Result</h3>${pill(job.state)}
        <span class="muted small">${esc(job.request.symbol)} ${esc(job.request.timeframe)} · finished ${fmt.time(job.finished_at)}</span></div><div id="bt-result"></div>`;
      renderResult(jobEl.querySelector("#bt-result"), job);
      loadJobs();
    };
    tick();
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = new FormData(form);
    let params = {};
    const text = String(f.get("params") || "").trim();
    if (text) {
      try { params = JSON.parse(text); } catch (err) { message(msg, `The parameters are not valid JSON: ${err.message}`, "error"); return; }
    }
    const strategy = String(f.get("strategy"));
    const body = {
      symbol: String(f.get("symbol")).trim().toUpperCase(),
      timeframe: String(f.get("timeframe")).trim(),
      venue: String(f.get("venue")).trim(),
      initial_cash: String(f.get("cash") || "10000"),
      params: { strategies: [strategy], params: Object.keys(params).length ? { [strategy]: params } : {} },
    };
    if (f.get("runner") === "desk") {
      body.params.desk = { every: 24, max_decisions: Number(f.get("max_decisions") || 20) };
    }
    if (f.get("start")) body.start = `${f.get("start")}T00:00:00Z`;
    if (f.get("end")) body.end = `${f.get("end")}T00:00:00Z`;
    const button = root.querySelector("#bt-run");
    button.disabled = true;
    msg.innerHTML = "";
    try {
      const job = await api.post("/backtests", body);
      follow(job.job_id);
      loadJobs();
    } catch (err) {
      message(msg, `The backtest was not started: ${errorText(err)}`, "error");
    } finally {
      button.disabled = false;
    }
  });

  await loadJobs();
  return { unmount: () => { alive = false; clearTimeout(timer); } };
}
