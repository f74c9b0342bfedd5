// System: every agent from its heartbeats, the alerts feed, queue depths, and the controls (pause,
// resume, HALT, FLATTEN) with a confirmation and the acknowledgements as they arrive.
import { api, confirmDialog, errorText, esc, fmt, message, onLive, pill, serverConfig, throttle } from "../core.js";

const CONTROLS = [
  ["pause", "Pause", "warn", "No new entries: the strategy agent stops opening positions (exits still run)."],
  ["resume", "Resume", "", "Trading resumes: entries allowed again, a HALT is lifted."],
  ["halt", "HALT", "danger", "Kill switch: no new orders anywhere, open orders cancelled."],
  ["flatten", "FLATTEN", "danger", "Close every open position at market (then stay flat)."],
];

function alertHtml(a) {
  const d = a.data || {};
  return `<div class="item"><time>${fmt.time(a.ts)}</time>${pill(d.severity || "info")}
    <span><b>${esc(d.code || "")}</b> ${esc(d.message || "")}</span></div>`;
}

export async function mount(root) {
  const config = await serverConfig();
  const links = Object.entries(config.links || {}).filter(([, url]) => url);
  root.innerHTML = `
    <div class="row" style="margin-bottom:14px"><h2 style="margin:0">System</h2><span class="spacer"></span>
      ${links.map(([name, url]) => `<a class="pill" href="${esc(url)}" target="_blank" rel="noopener">${esc(name === "rabbitmq" ? "RabbitMQ management ↗" : name === "grafana" ? "Grafana ↗" : name)}</a>`).join(" ")}
    </div>
    <div class="panel"><div class="row"><h3 style="margin:0">Controls</h3><span class="spacer"></span><span id="state"></span></div>
      <div class="row controls" style="margin-top:10px">${CONTROLS.map(([kind, label, cls, help]) =>
        `<button type="button" class="${cls}" data-command="${kind}" title="${esc(help)}">${label}</button>`).join("")}</div>
      <div id="control-msg" style="margin-top:10px"></div><div id="acks" class="acks"></div></div>
    <div class="panel"><h3>Agents</h3><div id="agents" class="table-wrap"></div></div>
    <div class="grid-2e">
      <div class="panel"><h3>Alerts</h3><div id="alerts" class="feed"></div></div>
      <div class="panel"><h3>Queues</h3><div id="queues" class="table-wrap"></div></div>
    </div>
    <div class="panel"><h3>Recent commands</h3><div id="commands" class="table-wrap"></div></div>`;
  let watching = null; // command id whose acks are shown
  let alive = true;
  let pollTimer = null;

  async function loadState() {
    try {
      const h = await api.get("/health");
      root.querySelector("#state").innerHTML = `trading ${pill(h.trading)} intended ${pill(h.trading_intended)} · swarm ${pill(h.status)}`;
    } catch (err) {
      root.querySelector("#state").innerHTML = `<span class="neg">${esc(errorText(err))}</span>`;
    }
  }

  async function loadAgents() {
    const el = root.querySelector("#agents");
    try {
      const agents = await api.get("/agents");
      if (!agents.length) { message(el, "No heartbeat received yet: no agent is known."); return; }
      el.innerHTML = `<table class="grid"><thead><tr><th>agent</th><th>kind</th><th>status</th><th>trading</th><th>last seen</th>
        <th class="num">processed</th><th class="num">failed</th><th class="num">dead-lettered</th><th class="num">restarts</th><th>host</th></tr></thead>
        <tbody>${agents.map((a) => `<tr data-agent="${esc(a.agent_id)}"><td>${esc(a.agent_id)}</td><td>${esc(a.kind)}</td><td>${pill(a.state)}</td>
          <td>${a.halted ? pill("halted") : a.paused ? pill("paused") : pill("active")}</td><td>${fmt.ago(a.last_seen)}</td>
          <td class="num">${a.processed.toLocaleString()}</td><td class="num">${a.failed}</td><td class="num">${a.dead_lettered}</td>
          <td class="num">${a.restarts}</td><td class="muted">${esc(a.host)}:${a.pid}</td></tr>`).join("")}</tbody></table>`;
    } catch (err) {
      message(el, errorText(err), "error");
    }
  }

  async function loadAlerts() {
    const el = root.querySelector("#alerts");
    try {
      const alerts = await api.get("/alerts?limit=50");
      if (!alerts.length) { message(el, "No alert since the orchestrator started."); return; }
      el.innerHTML = alerts.map(alertHtml).join("");
    } catch (err) {
      message(el, errorText(err), "error");
    }
  }

  async function loadQueues() {
    const el = root.querySelector("#queues");
    try {
      const q = await api.get("/queues");
      if (!q.available) { message(el, q.message || "Queue depths are not available."); return; }
      if (!q.queues.length) { message(el, "No queue."); return; }
      el.innerHTML = `<table class="grid"><thead><tr><th>queue</th><th class="num">waiting</th><th class="num">consumers</th>
        ${q.queues.some((x) => x.delivered !== null) ? '<th class="num">delivered</th>' : ""}</tr></thead><tbody>${q.queues.map((x) =>
        `<tr><td>${esc(x.name)}</td><td class="num ${x.messages > 1000 ? "neg" : ""}">${x.messages.toLocaleString()}</td><td class="num">${x.consumers}</td>
        ${x.delivered !== null ? `<td class="num">${x.delivered.toLocaleString()}</td>` : ""}</tr>`).join("")}</tbody></table>`;
    } catch (err) {
      message(el, errorText(err), "error");
    }
  }

  async function loadCommands() {
    const el = root.querySelector("#commands");
    try {
      const commands = await api.get("/control/commands?limit=10");
      if (!commands.length) { message(el, "No command issued since the orchestrator started."); return; }
      el.innerHTML = `<table class="grid"><thead><tr><th>issued</th><th>command</th><th>target</th><th>by</th><th>state</th>
        <th>acknowledged</th><th>awaiting</th><th>reason</th></tr></thead><tbody>${commands.map((c) =>
        `<tr><td>${fmt.time(c.issued_at)}</td><td><b>${esc(c.kind.toUpperCase())}</b></td><td>${esc(c.target)}</td><td>${esc(c.issued_by)}</td>
        <td>${pill(c.state)}</td><td>${esc(c.acknowledged.join(", "))}</td><td>${esc(c.awaiting.concat(c.missing_kinds).join(", "))}</td>
        <td class="muted">${esc(c.reason)}</td></tr>`).join("")}</tbody></table>`;
    } catch (err) {
      message(el, errorText(err), "error");
    }
  }

  async function showAcks() {
    if (!watching) return;
    const el = root.querySelector("#acks");
    let c;
    try { c = await api.get(`/control/commands/${watching}`); } catch (err) { message(el, errorText(err), "error"); return; }
    const rows = c.acks.map((a) => `<div class="item" data-ack="${esc(a.agent_id)}"><time>${fmt.time(a.received_at)}</time>
      ${pill(a.ok ? "ok" : "failed")} <b>${esc(a.agent_kind)}</b> <span class="muted">${esc(a.agent_id)}</span> ${esc(a.detail)}</div>`).join("");
    const waiting = c.awaiting.concat(c.missing_kinds);
    el.innerHTML = `<div class="row"><b>${esc(c.kind.toUpperCase())}</b> ${pill(c.state)} <span id="ack-state" data-state="${esc(c.state)}" class="muted small">
      ${c.complete ? "acknowledged by every required agent" : `waiting for ${esc(waiting.join(", ") || "acknowledgements")}`}</span></div>
      <div class="feed">${rows || '<div class="msg">No acknowledgement yet.</div>'}</div>`;
    const note = root.querySelector("#control-ok");
    if (note && c.state !== "pending") {
      note.textContent = c.complete ? `${c.kind.toUpperCase()} acknowledged by every required agent.`
        : `${c.kind.toUpperCase()} ${c.state}: see the acknowledgements below.`;
    }
    if (c.state === "pending" && alive) {
      clearTimeout(pollTimer);
      pollTimer = setTimeout(showAcks, 2000); // acks arrive as live events too; this is the fallback
    }
    loadCommands();
    loadState();
    loadAgents();
  }

  root.querySelectorAll("button[data-command]").forEach((button) => {
    button.addEventListener("click", async () => {
      const [kind, label, , help] = CONTROLS.find((c) => c[0] === button.dataset.command);
      const reason = await confirmDialog(label, `${help} Sent to every agent.`, kind !== "resume");
      if (reason === null) return;
      const msg = root.querySelector("#control-msg");
      button.disabled = true;
      try {
        const c = await api.post(`/control/${kind}`, { reason });
        msg.innerHTML = `<div class="msg" id="control-ok">${esc(label)} issued (${esc(c.command_id)}): waiting for the agents' acknowledgements…</div>`;
        watching = c.command_id;
        showAcks();
      } catch (err) {
        msg.innerHTML = `<div class="msg error" id="control-error">${esc(label)} refused: ${esc(errorText(err))}</div>`;
      } finally {
        button.disabled = false;
      }
    });
  });

  await Promise.all([loadState(), loadAgents(), loadAlerts(), loadQueues(), loadCommands()]);
  const offs = [
    onLive("command_ack", (ack) => { if (watching && ack.command_id === watching) showAcks(); else loadCommands(); }),
    onLive("risk_alert", throttle(loadAlerts, 1000)),
  ];
  const timer = setInterval(() => { loadAgents(); loadQueues(); loadState(); }, 5000);
  return { unmount: () => { alive = false; offs.forEach((f) => f()); clearInterval(timer); clearTimeout(pollTimer); } };
}
