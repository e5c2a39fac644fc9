// The pharox dashboard: reads the /v1 JSON routes and renders them, every
// REFRESH_MS. No framework, no build step. Data only ever goes into the page
// as text (textContent, SVG attributes), never as markup. The API key stays
// in this tab's sessionStorage and travels only in the X-API-Key header.
"use strict";

(function () {
  const REFRESH_MS = 2000;
  const HISTORY_LIMIT = 120;
  const MAX_POOLS = 100;
  const KEY_SLOT = "pharox.apiKey";
  const SVG = "http://www.w3.org/2000/svg";
  const authRequired = document.documentElement.dataset.auth === "required";

  const $ = (id) => document.getElementById(id);
  let memoryKey = null; // when sessionStorage is disabled
  const state = {
    selected: decodeSelection(),
    timer: null,
    running: false, // a refresh is in flight
    again: false, // refresh once more as soon as it ends
    lastOk: null,
    updates: 0,
    skewMs: 0, // store clock minus this browser's clock, from the last snapshot
  };

  class ApiFailure extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  function storedKey() {
    try {
      return sessionStorage.getItem(KEY_SLOT);
    } catch (_) {
      return null;
    }
  }

  function setKey(key) {
    try {
      if (key) sessionStorage.setItem(KEY_SLOT, key);
      else sessionStorage.removeItem(KEY_SLOT);
    } catch (_) {
      // Storage disabled: the key lives only as long as this page.
    }
    memoryKey = key || null;
  }

  async function api(path) {
    const headers = { Accept: "application/json" };
    const key = storedKey() || memoryKey;
    if (key) headers["X-API-Key"] = key;
    let res;
    try {
      res = await fetch(path, { headers, cache: "no-store", credentials: "omit", referrerPolicy: "no-referrer" });
    } catch (e) {
      throw new ApiFailure(0, "unreachable", "cannot reach the server");
    }
    let body = null;
    try {
      body = await res.json();
    } catch (_) {
      body = null;
    }
    if (!res.ok) {
      const err = (body && body.error) || {};
      throw new ApiFailure(res.status, err.code || "http_" + res.status, (body && body.detail) || res.statusText);
    }
    return body;
  }

  // --- selection, kept in the URL's fragment (a pool id, never a key) ---

  function decodeSelection() {
    const m = /^#pool=(.+)$/.exec(location.hash);
    if (!m) return null;
    try {
      return decodeURIComponent(m[1]);
    } catch (_) {
      return null;
    }
  }

  function select(key) {
    state.selected = key;
    history.replaceState(null, "", "#pool=" + encodeURIComponent(key));
    refreshNow();
  }

  // --- small DOM helpers ---

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  function row(cells) {
    const tr = document.createElement("tr");
    for (const c of cells) tr.appendChild(c);
    return tr;
  }

  function num(v) {
    return el("td", v, "num");
  }

  function replaceRows(table, rows) {
    const body = table.tBodies[0];
    body.replaceChildren(...rows);
  }

  function time(iso) {
    if (!iso) return "—";
    const d = new Date(iso);
    return d.toLocaleTimeString([], { hour12: false });
  }

  // A lease id's first 8 hex digits are its pool's tag, the same for every
  // lease of the pool: the tail tells them apart.
  function shortId(id) {
    return "…" + String(id).slice(-8);
  }

  function duration(ms) {
    if (ms <= 0) return "expired";
    const s = Math.floor(ms / 1000);
    if (s < 60) return s + " s";
    const m = Math.floor(s / 60);
    if (m < 60) return m + " min " + (s % 60) + " s";
    const h = Math.floor(m / 60);
    return h + " h " + (m % 60) + " min";
  }

  // --- rendering ---

  function renderPools(pools, stats) {
    $("no-pools").hidden = pools.length > 0;
    replaceRows(
      $("pools"),
      pools.map((p, i) => {
        const s = stats[i];
        const cells = [el("td", p.name)];
        if (s) {
          cells.push(num(s.total), num(s.active), num(s.available), num(s.leased), num(s.active_leases), num(s.total_leases));
        } else {
          for (let k = 0; k < 6; k++) cells.push(num("—"));
        }
        const tr = row(cells);
        tr.dataset.pool = p.key;
        tr.tabIndex = 0;
        if (p.key === state.selected) tr.className = "selected";
        tr.addEventListener("click", () => select(p.key));
        tr.addEventListener("keydown", (e) => {
          if (e.key === "Enter") select(p.key);
        });
        return tr;
      })
    );
  }

  function renderStats(stats) {
    for (const span of document.querySelectorAll("#stats [data-stat]")) {
      span.textContent = String(stats[span.dataset.stat]);
    }
  }

  function renderProxies(proxies) {
    replaceRows(
      $("proxies"),
      proxies.map((p) => {
        const status = el("td");
        status.appendChild(el("span", p.status, "badge " + p.status));
        const limit = p.max_concurrency === null || p.max_concurrency === undefined ? "∞" : p.max_concurrency;
        const tr = row([
          el("td", p.id),
          el("td", p.protocol + "://" + p.host + ":" + p.port),
          status,
          num(p.latency_ms === null || p.latency_ms === undefined ? "—" : p.latency_ms + " ms"),
          num(p.current_leases + " / " + limit),
          el("td", p.country || "—"),
          el("td", time(p.checked_at)),
        ]);
        tr.dataset.proxy = p.id;
        return tr;
      })
    );
  }

  function renderLeases(leases) {
    $("no-leases").hidden = leases.length > 0;
    const sorted = leases.slice().sort((a, b) => Date.parse(a.expires_at) - Date.parse(b.expires_at));
    replaceRows(
      $("leases"),
      sorted.map((l) => {
        const left = el("td", "", "num");
        left.dataset.expires = l.expires_at;
        const id = el("td", shortId(l.id));
        id.title = l.id;
        const tr = row([
          id,
          el("td", l.proxy.id),
          el("td", l.consumer),
          num(l.token),
          el("td", time(l.acquired_at)),
          left,
        ]);
        tr.dataset.lease = l.id;
        return tr;
      })
    );
    tickCountdowns();
  }

  function tickCountdowns() {
    const now = Date.now() + state.skewMs;
    for (const cell of document.querySelectorAll("#leases [data-expires]")) {
      const ms = Date.parse(cell.dataset.expires) - now;
      cell.textContent = duration(ms);
      cell.classList.toggle("overdue", ms <= 0);
    }
  }

  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // A line chart of live leases and available proxies, oldest on the left.
  function renderHistory(snapshots) {
    const chart = $("chart");
    const points = snapshots.slice().reverse();
    const empty = points.length === 0;
    // An <svg> has no `hidden` property: set the attribute itself.
    chart.toggleAttribute("hidden", empty);
    $("legend").hidden = empty;
    $("history-note").hidden = !empty;
    chart.dataset.points = String(points.length);
    const title = $("chart-title");
    chart.replaceChildren(title);
    if (empty) return;

    const W = 960, H = 220, left = 40, right = 10, top = 10, bottom = 24;
    const t = points.map((s) => Date.parse(s.collected_at));
    const t0 = t[0], t1 = Math.max(t[t.length - 1], t0 + 1);
    const yMax = Math.max(1, ...points.map((s) => Math.max(s.active_leases, s.available, s.total)));
    const x = (ms) => left + ((ms - t0) / (t1 - t0)) * (W - left - right);
    const y = (v) => top + (1 - v / yMax) * (H - top - bottom);

    for (const v of [0, Math.round(yMax / 2), yMax]) {
      chart.appendChild(svg("line", { class: "grid", x1: left, x2: W - right, y1: y(v), y2: y(v) }));
      chart.appendChild(svg("text", { class: "axis", x: left - 6, y: y(v) + 4, "text-anchor": "end" }, String(v)));
    }
    chart.appendChild(svg("text", { class: "axis", x: left, y: H - 6 }, time(points[0].collected_at)));
    chart.appendChild(
      svg("text", { class: "axis", x: W - right, y: H - 6, "text-anchor": "end" }, time(points[points.length - 1].collected_at))
    );
    for (const [field, cls] of [["available", "available"], ["active_leases", "leases"]]) {
      const coords = points.map((s, i) => x(t[i]).toFixed(1) + "," + y(s[field]).toFixed(1));
      if (coords.length === 1) coords.push((W - right) + "," + y(points[0][field]).toFixed(1));
      chart.appendChild(svg("polyline", { class: "line " + cls, points: coords.join(" ") }));
    }
    $("history-range").textContent = points.length + " snapshots";
  }

  // --- the refresh loop ---

  function showAuth(reason) {
    $("auth").hidden = false;
    $("main").hidden = true;
    $("forget-key").hidden = true;
    $("auth-reason").textContent = reason;
    $("status").textContent = "waiting for an API key";
    $("status").classList.remove("stale");
    $("api-key").focus();
  }

  function showError(message) {
    $("error").textContent = message;
    $("error").hidden = false;
    $("status").textContent = state.lastOk ? "stale: last update " + state.lastOk.toLocaleTimeString([], { hour12: false }) : "no data yet";
    $("status").classList.add("stale");
  }

  async function refresh() {
    const pools = await api("/v1/pools/");
    const shown = pools.slice(0, MAX_POOLS);
    const stats = await Promise.all(
      shown.map((p) =>
        api("/v1/pools/" + encodeURIComponent(p.id) + "/stats").catch((e) => {
          if (e.status === 404) return null; // removed in between
          throw e;
        })
      )
    );
    if (!shown.some((p) => p.key === state.selected)) {
      state.selected = shown.length ? shown[0].key : null;
    }
    renderPools(shown, stats);

    const current = shown.find((p) => p.key === state.selected);
    $("pool").hidden = !current;
    if (current) {
      const base = "/v1/pools/" + encodeURIComponent(current.id);
      const [snap, hist] = await Promise.all([api(base + "/snapshot"), api(base + "/stats/history?limit=" + HISTORY_LIMIT)]);
      state.skewMs = Date.parse(snap.taken_at) - Date.now();
      $("pool-name").textContent = current.name;
      renderStats(snap.stats);
      renderProxies(snap.proxies);
      renderLeases(snap.leases);
      renderHistory(hist.snapshots);
    }
    const note = pools.length > MAX_POOLS ? " · first " + MAX_POOLS + " of " + pools.length + " pools" : "";
    state.lastOk = new Date();
    state.updates += 1;
    document.body.dataset.updates = String(state.updates);
    $("status").textContent = "updated " + state.lastOk.toLocaleTimeString([], { hour12: false }) + " · every " + REFRESH_MS / 1000 + " s" + note;
    $("status").classList.remove("stale");
  }

  async function tick() {
    state.timer = null;
    if (state.running) {
      state.again = true;
      return;
    }
    state.running = true;
    try {
      await step();
    } finally {
      state.running = false;
    }
    if (state.again) {
      state.again = false;
      refreshNow();
    }
  }

  // One refresh; schedules the next unless it waits for a key.
  async function step() {
    if (authRequired && !(storedKey() || memoryKey)) {
      showAuth("This server needs an API key (scope admin: the dashboard reads snapshots).");
      return;
    }
    try {
      await refresh();
      $("error").hidden = true;
      $("auth").hidden = true;
      $("main").hidden = false;
      $("forget-key").hidden = !authRequired;
    } catch (e) {
      if (e.status === 401 || e.status === 403) {
        // No key, a wrong one, or one whose scope is not admin: ask again.
        setKey(null);
        showAuth("The server refused the key (" + e.status + " " + e.code + ": " + e.message + "). The dashboard needs a key with the admin scope.");
        return;
      }
      showError(e.status ? "The server answered " + e.status + " (" + e.code + "): " + e.message : "Cannot reach the server; retrying.");
    }
    schedule();
  }

  function schedule() {
    if (state.timer === null) state.timer = setTimeout(tick, REFRESH_MS);
  }

  function refreshNow() {
    if (state.timer !== null) clearTimeout(state.timer);
    state.timer = null;
    tick();
  }

  function start() {
    $("auth-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const input = $("api-key");
      const key = input.value.trim();
      input.value = "";
      if (!key) return;
      setKey(key);
      refreshNow();
    });
    $("forget-key").addEventListener("click", () => {
      setKey(null);
      refreshNow();
    });
    setInterval(tickCountdowns, 1000);
    tick();
  }

  start();
})();
