// Portfolio: cash, equity, PnL and return; open positions with unrealised PnL; the equity curve;
// the trade history, paginated. Live: a fill or a snapshot refreshes it without a reload.
import { api, card, errorText, esc, fmt, message, onLive, pill, qs, signCls, throttle } from "../core.js";

const PAGE = 20;

export async function mount(root) {
  root.innerHTML = `
    <div class="row" style="margin-bottom:14px"><h2 style="margin:0">Portfolio</h2><span class="spacer"></span>
      <span class="muted small" id="asof"></span></div>
    <div class="cards" id="cards"></div>
    <div class="grid-2e">
      <div class="panel"><h3>Open positions</h3><div id="positions" class="table-wrap"></div></div>
      <div class="panel"><h3>Equity</h3><div id="equity" class="chart"></div></div>
    </div>
    <div class="panel"><div class="row"><h3 style="margin:0">Trade history</h3><span class="spacer"></span>
      <span class="muted small" id="trades-total"></span></div>
      <div id="trades" class="table-wrap" style="margin-top:8px"></div>
      <div class="pager"><button class="ghost" id="prev" type="button">‹ newer</button><span id="page"></span>
        <button class="ghost" id="next" type="button">older ›</button></div></div>`;
  let offset = 0;
  let total = 0;
  let initial = null;

  async function loadSummary() {
    const cards = root.querySelector("#cards");
    let p;
    try {
      const any = await api.get("/portfolio/equity?limit=1"); // empty until the first snapshot: no 404 to log
      if (!any.length) {
        message(cards, "No portfolio snapshot yet: the execution agent publishes one after its first fill or mark.");
        return null;
      }
      p = await api.get("/portfolio");
    } catch (err) {
      message(cards, `The portfolio could not be loaded: ${errorText(err)}`, "error");
      return null;
    }
    const start = initial !== null ? initial : +p.equity - +p.realized_pnl - +p.unrealized_pnl + +p.fees;
    const ret = start ? +p.equity / start - 1 : 0;
    cards.innerHTML = card("Equity", fmt.money(p.equity), `peak ${fmt.money(p.peak_equity)}`)
      + card("Cash", fmt.money(p.cash), p.account)
      + card("Total return", fmt.signedPct(ret), `from ${fmt.money(start)}`, signCls(ret))
      + card("Realised PnL", fmt.money(p.realized_pnl), `fees ${fmt.money(p.fees)}`, signCls(p.realized_pnl))
      + card("Unrealised PnL", fmt.money(p.unrealized_pnl), `${p.open_positions} open`, signCls(p.unrealized_pnl))
      + card("Drawdown", fmt.pct(p.drawdown), `state ${p.trading_state}`, +p.drawdown > 0 ? "neg" : "");
    root.querySelector("#asof").textContent = `as of ${fmt.time(p.ts)}`;
    return p;
  }

  async function loadPositions() {
    const el = root.querySelector("#positions");
    try {
      const rows = await api.get("/positions");
      if (!rows.length) { message(el, "No open position."); return; }
      window.TSCharts.sortableTable(el, [
        { key: "symbol", label: "symbol" },
        { key: "quantity", label: "quantity", num: true, fmt: (v) => fmt.num(v, 6) },
        { key: "average_price", label: "avg entry", num: true, fmt: (v) => fmt.num(v) },
        { key: "mark_price", label: "price", num: true, fmt: (v) => fmt.num(v) },
        { key: "unrealised", label: "unrealised PnL", num: true, fmt: (v) => fmt.money(v), cls: (v) => signCls(v) },
        { key: "realized_pnl", label: "realised", num: true, fmt: (v) => fmt.money(v), cls: (v) => signCls(v) },
      ], rows.map((r) => ({ ...r, unrealised: r.mark_price === null ? null : (+r.mark_price - +r.average_price) * +r.quantity })));
    } catch (err) {
      message(el, `Positions could not be loaded: ${errorText(err)}`, "error");
    }
  }

  async function loadEquity() {
    const el = root.querySelector("#equity");
    try {
      const points = await api.get("/portfolio/equity?limit=2000");
      if (points.length < 2) { message(el, "The equity curve appears after two portfolio snapshots."); return; }
      if (initial === null) initial = +points[0].equity;
      window.TSCharts.equityDrawdown(el, points.map((x) => ({ time: x.ts, value: x.equity })), null, { height: 300 });
    } catch (err) {
      message(el, `The equity curve could not be loaded: ${errorText(err)}`, "error");
    }
  }

  async function loadTrades(flashNew = false) {
    const el = root.querySelector("#trades");
    try {
      const page = await api.get(`/trades${qs({ limit: PAGE, offset })}`);
      total = page.total;
      root.querySelector("#trades-total").textContent = `${total.toLocaleString()} fills`;
      root.querySelector("#page").textContent = total ? `${offset + 1}–${Math.min(offset + PAGE, total)} of ${total}` : "";
      root.querySelector("#prev").disabled = offset === 0;
      root.querySelector("#next").disabled = offset + PAGE >= total;
      if (!page.items.length) { message(el, "No trade yet."); return; }
      const shown = new Set([...el.querySelectorAll("tr[data-fill]")].map((tr) => tr.dataset.fill));
      el.innerHTML = `<table class="grid"><thead><tr><th>time</th><th>symbol</th><th>side</th>
        <th class="num">quantity</th><th class="num">price</th><th class="num">notional</th><th class="num">fee</th><th>liquidity</th></tr></thead><tbody>
        ${page.items.map((t) => `<tr data-fill="${esc(t.fill_id)}" class="${flashNew && shown.size && !shown.has(t.fill_id) ? "flash" : ""}">
          <td>${fmt.time(t.ts)}</td><td>${esc(t.symbol)}</td><td>${pill(t.side)}</td>
          <td class="num">${fmt.num(t.quantity, 6)}</td><td class="num">${fmt.num(t.price)}</td>
          <td class="num">${fmt.money(+t.price * +t.quantity)}</td><td class="num">${fmt.num(t.fee, 4)}</td><td>${esc(t.liquidity)}</td></tr>`).join("")}
        </tbody></table>`;
    } catch (err) {
      message(el, `Trades could not be loaded: ${errorText(err)}`, "error");
    }
  }

  root.querySelector("#prev").addEventListener("click", () => { offset = Math.max(0, offset - PAGE); loadTrades(); });
  root.querySelector("#next").addEventListener("click", () => { offset += PAGE; loadTrades(); });

  await loadEquity();
  await Promise.all([loadSummary(), loadPositions(), loadTrades()]);
  const refresh = throttle(() => { loadSummary(); loadPositions(); if (offset === 0) loadTrades(true); }, 1500);
  const offs = [
    onLive("fill", refresh),
    onLive("portfolio_snapshot", throttle(() => { loadSummary(); loadPositions(); }, 3000)),
    onLive("portfolio_snapshot", throttle(loadEquity, 15000)),
  ];
  return { unmount: () => offs.forEach((f) => f()) };
}
