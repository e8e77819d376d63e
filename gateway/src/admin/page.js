// Renders /status.json into the page and refreshes it every 2 seconds. Every value is set
// with textContent: route names, paths and config errors come from the config file.
"use strict";

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function table(headers, rows) {
  const t = el("table");
  const head = t.appendChild(el("thead")).appendChild(el("tr"));
  headers.forEach((h) => head.appendChild(el("th", h)));
  const body = t.appendChild(el("tbody"));
  rows.forEach((cells) => {
    const tr = body.appendChild(el("tr"));
    cells.forEach((c) => tr.appendChild(c instanceof Node ? wrap(c) : el("td", c)));
  });
  return t;
}

function wrap(node) {
  if (node.tagName === "TD") return node;
  const td = el("td");
  td.appendChild(node);
  return td;
}

function num(value, digits) {
  return el("td", value === null || value === undefined ? "–" : Number(value).toFixed(digits), "num");
}

function badge(state) {
  return el("span", state.replace("_", "-"), "state " + state);
}

function when(unix) {
  return new Date(unix * 1000).toISOString().replace("T", " ").replace(/\..*/, " UTC");
}

function duration(seconds) {
  const d = Math.floor(seconds / 86400), h = Math.floor(seconds / 3600) % 24;
  const m = Math.floor(seconds / 60) % 60, s = seconds % 60;
  return (d ? d + "d " : "") + (d || h ? h + "h " : "") + m + "m " + s + "s";
}

// An endpoint's state in one word: ejected (breaker open), failing (active check),
// half_open (a probe decides), unknown (not checked yet) or healthy.
function endpointState(e) {
  if (e.breaker === "open") return "ejected";
  if (e.check === "failing") return "failing";
  if (e.breaker === "half_open") return "half_open";
  if (e.check === "unknown") return "unknown";
  return e.healthy ? "healthy" : "down";
}

function renderPools(pools) {
  const box = el("div");
  pools.forEach((pool) => {
    const h = box.appendChild(el("h3", pool.name + " "));
    h.appendChild(badge(pool.ready ? "healthy" : "down"));
    let note = pool.balance;
    if (pool.max_in_flight !== null) {
      note += " · " + pool.in_flight + " in flight of " + pool.max_in_flight + ", " + pool.queued + " queued";
    }
    box.appendChild(el("p", note, "muted"));
    const rows = pool.endpoints.map((e) => {
      const state = endpointState(e);
      const cell = el("td");
      cell.appendChild(badge(state));
      const address = el("td");
      address.appendChild(el("code", e.address));
      return [address, cell, e.check, e.breaker.replace("_", "-"), num(e.in_flight, 0), num(e.latency_ms, 1)];
    });
    const t = box.appendChild(table(["endpoint", "state", "active check", "breaker", "in flight", "latency ms"], rows));
    pool.endpoints.forEach((e, i) => {
      const row = t.tBodies[0].rows[i];
      row.dataset.endpoint = e.address;
      row.dataset.state = endpointState(e);
    });
  });
  return box;
}

function renderRoutes(routes) {
  const rows = routes.map((r) => {
    const name = el("td");
    name.appendChild(el("code", r.name));
    const match = el("td");
    match.appendChild(el("code", r.match));
    const limits = r.rate_limits.length ? r.rate_limits.join("; ") : "–";
    return [name, match, r.target, r.policies.join(" › "), r.auth, limits,
      num(r.requests_per_second, 2),
      num(r.error_ratio === null ? null : r.error_ratio * 100, 1)];
  });
  return table(["route", "match", "target", "policies, in order", "auth", "rate limits", "req/s (1 min)", "5xx %"], rows);
}

function renderConfig(config) {
  const box = el("div");
  const p = box.appendChild(el("p"));
  p.appendChild(el("code", config.source));
  p.appendChild(el("span", " · hash " + config.hash.slice(0, 16), "muted"));
  const rows = config.reloads.map((r) => {
    const result = el("td");
    result.appendChild(badge(r.result));
    const errors = el("td");
    if (r.errors.length) errors.appendChild(el("pre", r.errors.join("\n")));
    else errors.textContent = "–";
    return [when(r.at), result, el("code", r.hash.slice(0, 16)), errors];
  });
  box.appendChild(table(["when", "result", "hash", "errors"], rows));
  return box;
}

function renderListeners(status) {
  const box = el("div");
  box.appendChild(table(["listener", "address"], status.listeners.map((l) => [l.name, el("code", l.address)])));
  const certs = status.certificates.map((c) => {
    const left = el("td", c.days_left.toFixed(1) + " days", "num");
    if (c.days_left < 14) left.appendChild(el("span", " renew", "state failing"));
    return [c.names.join(", "), c.source, when(c.not_after), left];
  });
  if (certs.length) box.appendChild(table(["certificate", "source", "expires", "left"], certs));
  else box.appendChild(el("p", "No certificates (no HTTPS listener).", "muted"));
  return box;
}

function render(status) {
  document.getElementById("version").textContent = status.version;
  document.getElementById("summary").textContent =
    "up " + duration(status.uptime_seconds) + " since " + when(status.started_at) + " · " +
    status.routes.length + " routes, " + status.pools.length + " pools";
  const sections = {
    pools: renderPools(status.pools),
    routes: renderRoutes(status.routes),
    config: renderConfig(status.config),
    listeners: renderListeners(status),
  };
  Object.entries(sections).forEach(([id, node]) => document.getElementById(id).replaceChildren(node));
  document.getElementById("refresh").textContent = "Updated " + new Date().toLocaleTimeString() + ", every 2 s.";
}

async function refresh() {
  try {
    const response = await fetch("/status.json", { cache: "no-store" });
    if (!response.ok) throw new Error(response.status + " " + response.statusText);
    render(await response.json());
  } catch (error) {
    document.getElementById("refresh").textContent = "Cannot read /status.json: " + error.message;
  }
  setTimeout(refresh, 2000);
}

refresh();
