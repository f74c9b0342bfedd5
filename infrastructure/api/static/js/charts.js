/* tradeswarm charts: thin helpers over TradingView lightweight-charts (vendor/, Apache-2.0).
 * A classic script (not a module) so that the self-contained backtest report can inline it too.
 * Exposes window.TSCharts. Times are UTC seconds; every chart has crosshair, zoom and pan. */
(function () {
  "use strict";
  const LC = window.LightweightCharts;

  function css(name, fallback) {
    const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return v || fallback;
  }

  function palette() {
    return {
      text: css("--fg", "#1b1f24"),
      muted: css("--muted", "#6b7280"),
      grid: css("--grid", "rgba(128,128,128,0.15)"),
      bg: css("--panel", "#ffffff"),
      up: css("--up", "#16a34a"),
      down: css("--down", "#dc2626"),
      accent: css("--accent", "#2563eb"),
      bench: css("--muted", "#9ca3af"),
    };
  }

  function toSec(t) {
    if (typeof t === "number") return t > 1e11 ? Math.floor(t / 1000) : t;
    return Math.floor(Date.parse(t) / 1000);
  }

  function baseChart(el, height) {
    const p = palette();
    el.innerHTML = "";
    el.style.height = (height || 320) + "px";
    const chart = LC.createChart(el, {
      autoSize: true,
      layout: { background: { type: "solid", color: p.bg }, textColor: p.text, fontFamily: "inherit" },
      grid: { vertLines: { color: p.grid }, horzLines: { color: p.grid } },
      rightPriceScale: { borderColor: p.grid },
      timeScale: { borderColor: p.grid, timeVisible: true, secondsVisible: false },
      crosshair: { mode: LC.CrosshairMode.Normal },
    });
    return chart;
  }

  /** Strictly increasing, de-duplicated points (lightweight-charts refuses anything else). */
  function uniq(points) {
    const out = [];
    for (const pt of points.slice().sort((a, b) => a.time - b.time)) {
      if (out.length && out[out.length - 1].time === pt.time) out[out.length - 1] = pt;
      else out.push(pt);
    }
    return out;
  }

  /** Candlesticks (+ markers [{time, position, shape, color, text}]). Returns {chart, series, markers}. */
  function candles(el, rows, markers, opts) {
    const p = palette();
    const chart = baseChart(el, (opts && opts.height) || 360);
    const series = chart.addSeries(LC.CandlestickSeries, {
      upColor: p.up, downColor: p.down, wickUpColor: p.up, wickDownColor: p.down, borderVisible: false,
    });
    const bars = uniq(rows.map((r) => ({
      time: toSec(r.time), open: +r.open, high: +r.high, low: +r.low, close: +r.close,
    })));
    series.setData(bars);
    const times = bars.map((b) => b.time);
    const plugin = LC.createSeriesMarkers(series, []);
    const api = { chart, series, markerPlugin: plugin, markers: [] };
    api.setMarkers = function (list) {
      // each marker on the bar that contains its time (the last bar at or before it)
      const snap = (t) => {
        let lo = 0;
        let hi = times.length - 1;
        if (hi < 0 || t <= times[0]) return times.length ? times[0] : t;
        while (lo < hi) {
          const mid = (lo + hi + 1) >> 1;
          if (times[mid] <= t) lo = mid; else hi = mid - 1;
        }
        return times[lo];
      };
      const sorted = list.map((m) => Object.assign({}, m, { time: snap(toSec(m.time)) })).sort((a, b) => a.time - b.time);
      api.markers = sorted;
      plugin.setMarkers(sorted);
    };
    api.setMarkers(markers || []);
    api.update = function (r) {
      const t = toSec(r.time);
      if (times.length && t < times[times.length - 1]) return;
      if (!times.length || t > times[times.length - 1]) times.push(t);
      series.update({ time: t, open: +r.open, high: +r.high, low: +r.low, close: +r.close });
    };
    chart.timeScale().fitContent();
    return api;
  }

  /** Markers of round trips: entry arrow below (long) / above (short), exit the other way; prices as
   * labels while there are few enough to read (hover shows the values anyway). */
  function tradeMarkers(trips, opts) {
    const p = palette();
    const labels = opts && opts.labels !== undefined ? opts.labels : trips.length <= 25;
    const out = [];
    for (const t of trips) {
      const long = (t.side || "long").toLowerCase() !== "short" && (t.side || "").toLowerCase() !== "sell";
      out.push({ time: t.entry_time, position: long ? "belowBar" : "aboveBar", shape: long ? "arrowUp" : "arrowDown",
        color: long ? p.up : p.down, text: labels ? (long ? "buy " : "sell ") + fmtNum(t.entry_price) : "" });
      if (t.exit_time) {
        out.push({ time: t.exit_time, position: long ? "aboveBar" : "belowBar", shape: long ? "arrowDown" : "arrowUp",
          color: long ? p.down : p.up, text: labels ? "exit " + fmtNum(t.exit_price) : "" });
      }
    }
    return out;
  }

  /** Lines: [{name, color, points:[{time, value}]}]. */
  function lines(el, list, opts) {
    const chart = baseChart(el, (opts && opts.height) || 260);
    const out = [];
    for (const l of list) {
      const s = chart.addSeries(LC.LineSeries, { color: l.color, lineWidth: l.width || 2, title: l.name,
        lineStyle: l.dashed ? 2 : 0, priceLineVisible: false });
      s.setData(uniq(l.points.map((pt) => ({ time: toSec(pt.time), value: +pt.value }))));
      out.push(s);
    }
    chart.timeScale().fitContent();
    return { chart, series: out };
  }

  /** Equity (line) with its drawdown (area, %) underneath on a second pane. */
  function equityDrawdown(el, points, bench, opts) {
    const p = palette();
    const chart = baseChart(el, (opts && opts.height) || 340);
    const eq = chart.addSeries(LC.LineSeries, { color: p.accent, lineWidth: 2, title: "equity", priceLineVisible: false });
    const data = uniq(points.map((pt) => ({ time: toSec(pt.time), value: +pt.value })));
    eq.setData(data);
    if (bench && bench.length) {
      const b = chart.addSeries(LC.LineSeries, { color: p.bench, lineWidth: 1, lineStyle: 2, title: "buy & hold",
        priceLineVisible: false });
      b.setData(uniq(bench.map((pt) => ({ time: toSec(pt.time), value: +pt.value }))));
    }
    let peak = -Infinity;
    const dd = data.map((pt) => {
      peak = Math.max(peak, pt.value);
      return { time: pt.time, value: peak > 0 ? (pt.value / peak - 1) * 100 : 0 };
    });
    const dds = chart.addSeries(LC.AreaSeries, { lineColor: p.down, topColor: "rgba(220,38,38,0.05)",
      bottomColor: "rgba(220,38,38,0.45)", lineWidth: 1, title: "drawdown %", priceLineVisible: false,
      invertFilledArea: true }, 1);
    dds.setData(dd);
    const panes = chart.panes();
    if (panes.length > 1) panes[1].setHeight(Math.round(((opts && opts.height) || 340) * 0.3));
    chart.timeScale().fitContent();
    return { chart, equity: eq, drawdown: dds };
  }

  function fmtNum(v, digits) {
    const n = +v;
    if (v === null || v === undefined || v === "" || Number.isNaN(n)) return "–";
    const d = digits !== undefined ? digits : Math.abs(n) >= 1000 ? 2 : Math.abs(n) >= 1 ? 3 : 6;
    return n.toLocaleString("en-US", { minimumFractionDigits: d > 2 ? 2 : d, maximumFractionDigits: d });
  }

  /** A sortable table: columns [{key, label, num, fmt}], rows of objects. Click a header to sort. */
  function sortableTable(el, columns, rows) {
    let sortKey = null;
    let asc = true;
    function render() {
      const sorted = rows.slice();
      if (sortKey) {
        const col = columns.find((c) => c.key === sortKey);
        sorted.sort((a, b) => {
          const x = a[sortKey];
          const y = b[sortKey];
          const cmp = col && col.num ? (+x || 0) - (+y || 0) : String(x ?? "").localeCompare(String(y ?? ""));
          return asc ? cmp : -cmp;
        });
      }
      const head = columns.map((c) => {
        const arrow = c.key === sortKey ? (asc ? " ▲" : " ▼") : "";
        return `<th data-key="${c.key}" class="${c.num ? "num" : ""} sortable" tabindex="0">${c.label}${arrow}</th>`;
      }).join("");
      const body = sorted.map((r) => "<tr>" + columns.map((c) => {
        const raw = r[c.key];
        const text = c.fmt ? c.fmt(raw, r) : raw ?? "";
        const cls = (c.num ? "num " : "") + (c.cls ? c.cls(raw, r) : "");
        return `<td class="${cls}">${escapeHtml(String(text))}</td>`;
      }).join("") + "</tr>").join("");
      el.innerHTML = `<table class="grid"><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>`;
      el.querySelectorAll("th.sortable").forEach((th) => {
        const go = () => {
          const k = th.dataset.key;
          if (sortKey === k) asc = !asc;
          else { sortKey = k; asc = true; }
          render();
        };
        th.addEventListener("click", go);
        th.addEventListener("keydown", (e) => { if (e.key === "Enter") go(); });
      });
    }
    render();
  }

  function escapeHtml(s) {
    return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  }

  window.TSCharts = { candles, tradeMarkers, lines, equityDrawdown, sortableTable, fmtNum, escapeHtml, toSec, palette };
})();
