/* The interactive backtest report (report.html): inlined into the file with lightweight-charts and
 * charts.js, so it opens offline from disk. Reads the JSON in #report-data. A classic script. */
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const C = window.TSCharts;

  function byId(id) { return document.getElementById(id); }

  // equity and drawdown, with buy & hold
  const eq = data.equity.map((p) => ({ time: p[0], value: p[1] }));
  const bench = (data.benchmark || []).map((p) => ({ time: p[0], value: p[1] }));
  if (eq.length >= 2) C.equityDrawdown(byId("equity-chart"), eq, bench, { height: 380 });
  else byId("equity-chart").textContent = "Not enough samples for an equity curve.";

  // one candlestick chart per symbol with its entries and exits
  const holder = byId("price-charts");
  let total = 0;
  for (const symbol of Object.keys(data.bars)) {
    const box = document.createElement("div");
    box.className = "symbol-chart";
    box.innerHTML = `<h3>${C.escapeHtml(symbol)}</h3><div class="chart" data-symbol="${C.escapeHtml(symbol)}"></div>`;
    holder.appendChild(box);
    const el = box.querySelector(".chart");
    const rows = data.bars[symbol].map((b) => ({ time: b[0], open: b[1], high: b[2], low: b[3], close: b[4] }));
    const trips = data.trades.filter((t) => t.symbol === symbol);
    const chart = C.candles(el, rows, C.tradeMarkers(trips), { height: 380 });
    el.dataset.markers = String(chart.markers.length);
    total += chart.markers.length;
  }
  holder.dataset.markers = String(total);

  // the trades table (rendered in the file) becomes sortable: click a header
  const table = byId("trades-table");
  if (table) {
    const heads = [...table.querySelectorAll("th")];
    heads.forEach((th, col) => {
      th.classList.add("sortable");
      th.title = "sort";
      let asc = true;
      th.addEventListener("click", () => {
        const body = table.tBodies[0];
        const rows = [...body.rows];
        const num = rows.every((r) => r.cells[col].textContent === "" || !Number.isNaN(+r.cells[col].textContent));
        rows.sort((a, b) => {
          const x = a.cells[col].textContent;
          const y = b.cells[col].textContent;
          const cmp = num ? (+x || 0) - (+y || 0) : x.localeCompare(y);
          return asc ? cmp : -cmp;
        });
        heads.forEach((h) => h.classList.remove("asc", "desc"));
        th.classList.add(asc ? "asc" : "desc");
        asc = !asc;
        rows.forEach((r) => body.appendChild(r));
      });
    });
  }
  document.documentElement.dataset.ready = "1";
})();
