/*
 * hb2r status page: log in, read the agent's API, follow /api/realtime.
 *
 * - The token lives in sessionStorage (this tab only), goes out as a Bearer header and as the
 *   WebSocket's first message: never in a URL, where logs would keep it.
 * - Every string from the API is put in the page as text (textContent, text nodes, properties):
 *   a file named "<img src=x onerror=alert(1)>.mkv" shows as exactly that.
 * - No polling: the lists are read again when the socket says a job changed (or `status`:
 *   something else /api/status shows did), a little later so that a burst makes one read.
 *   Progress and host figures arrive on the socket. When it closes, it reconnects by itself
 *   (backing off up to RECONNECT_MAX_MS); its `hello` brings a full read. Close code 4401
 *   means the token is refused: back to the login form.
 * - History: /api/history is read with the rest. The charts are drawn by uPlot 1.6.32 (MIT; vendored
 *   from the npm registry as agent/static/uPlot.iife.min.js, served by the agent), in the colours
 *   of the page's CSS variables, so they follow dark mode; they are drawn again when the scheme or
 *   their width changes.
 */
"use strict";

(() => {
  const TOKEN_KEY = "hb2r.token";
  const REFRESH_DELAY_MS = 250;
  const HOSTS_REFRESH_MS = 10000; // hosts report every lease/3; no socket message says so
  const RECONNECT_MIN_MS = 500;
  const RECONNECT_MAX_MS = 10000;
  const LIST_LIMIT = 100;
  const UNAUTHORIZED_CLOSE = 4401;
  const HISTORY_DAYS = 30;
  const CHART_HEIGHT = 180;
  const DARK = window.matchMedia("(prefers-color-scheme: dark)");

  const $ = (id) => document.getElementById(id);

  const state = {
    token: sessionStorage.getItem(TOKEN_KEY),
    user: null,
    socket: null,
    reconnectMs: RECONNECT_MIN_MS,
    reconnectTimer: null,
    refreshTimer: null,
    hostsTimer: null,
    refreshing: false,
    refreshAgain: false,
    startedAt: null,
    encodes: new Map(), // job id -> the row's parts
    shownAdmin: false, // whether the rows on show have an admin's buttons
    history: null, // the last /api/history answer, to draw the charts again
    charts: new Map(), // chart name -> its uPlot
  };

  class Unauthorized extends Error {}
  class Offline extends Error {}

  // --- DOM, text only -------------------------------------------------------------------

  /** Make an element. `text` sets textContent; data-* and aria-* go through setAttribute;
   * anything else is a property. Children that are strings become text nodes. */
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (key === "text") node.textContent = value;
      else if (key === "class") node.className = value;
      else if (key.startsWith("data-") || key.startsWith("aria-")) node.setAttribute(key, String(value));
      else node[key] = value;
    }
    for (const child of children) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  function setText(id, text) {
    $(id).textContent = text;
  }

  // --- formats --------------------------------------------------------------------------

  function bytes(value) {
    if (value === null || value === undefined) return "–";
    const sign = value < 0 ? "−" : "";
    let size = Math.abs(value);
    const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let unit = 0;
    while (size >= 1024 && unit < units.length - 1) {
      size /= 1024;
      unit += 1;
    }
    const digits = unit === 0 || size >= 100 ? 0 : 1;
    return `${sign}${size.toFixed(digits)} ${units[unit]}`;
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "–";
    let left = Math.max(0, Math.round(seconds));
    const days = Math.floor(left / 86400);
    left -= days * 86400;
    const hours = Math.floor(left / 3600);
    left -= hours * 3600;
    const minutes = Math.floor(left / 60);
    const secs = left - minutes * 60;
    if (days) return `${days} d ${hours} h`;
    if (hours) return `${hours} h ${minutes} min`;
    if (minutes) return `${minutes} min ${secs} s`;
    return `${secs} s`;
  }

  const percent = (value) => `${Math.round(value)} %`;

  /** A moment as the operator reads it: its time today, else its date and time. */
  function when(iso) {
    const moment = new Date(iso);
    if (Number.isNaN(moment.getTime())) return iso;
    const today = new Date().toDateString() === moment.toDateString();
    const options = today ? { hour: "2-digit", minute: "2-digit" } : { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" };
    return moment.toLocaleString([], options);
  }

  // --- the API --------------------------------------------------------------------------

  async function api(path, { method = "GET", body } = {}) {
    const headers = { Accept: "application/json" };
    if (state.token) headers.Authorization = `Bearer ${state.token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
        credentials: "omit",
      });
    } catch {
      throw new Offline("The agent does not answer; the page reconnects when it is back.");
    }
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    const message = (data && data.message) || `the agent answered HTTP ${response.status}`;
    if (response.status === 401 && path !== "/api/auth/login") throw new Unauthorized(message);
    if (!response.ok) throw new Error(message);
    return data;
  }

  function fail(error) {
    if (error instanceof Unauthorized) {
      showLogin("Your session has ended; log in again.");
    } else {
      notice(error.message);
    }
  }

  function notice(text) {
    setText("notice", text);
    $("notice").hidden = false;
  }

  function clearNotice() {
    $("notice").hidden = true;
    setText("notice", "");
  }

  // --- login and logout -----------------------------------------------------------------

  function showLogin(message) {
    state.token = null;
    state.user = null;
    sessionStorage.removeItem(TOKEN_KEY);
    disconnect();
    clearTimeout(state.refreshTimer);
    clearInterval(state.hostsTimer);
    clearDashboard();
    clearNotice();
    $("dashboard").hidden = true;
    $("logout").hidden = true;
    setText("who", "");
    setConnection("offline", "logged out");
    $("login").hidden = false;
    setText("login-error", message || "");
    $("username").focus();
  }

  function showDashboard() {
    $("login").hidden = true;
    $("dashboard").hidden = false;
    $("logout").hidden = false;
    showUser();
    connect();
    refresh();
    clearInterval(state.hostsTimer);
    state.hostsTimer = setInterval(refreshHosts, HOSTS_REFRESH_MS);
  }

  function showUser() {
    setText("who", state.user ? `${state.user.name} (${state.user.role})` : "");
    if (state.shownAdmin !== isAdmin()) {
      // The buttons follow the role (it can change on a config reload): rows are made anew.
      state.shownAdmin = isAdmin();
      for (const id of [...state.encodes.keys()]) removeEncode(id);
    }
  }

  const isAdmin = () => Boolean(state.user && state.user.role === "admin");

  $("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = event.submitter || $("login-form").querySelector("button");
    button.disabled = true;
    setText("login-error", "");
    try {
      const answer = await api("/api/auth/login", {
        method: "POST",
        body: { username: $("username").value, password: $("password").value },
      });
      state.token = answer.token;
      state.user = answer.user;
      sessionStorage.setItem(TOKEN_KEY, answer.token);
      $("password").value = "";
      showDashboard();
    } catch (error) {
      setText("login-error", error.message);
    } finally {
      button.disabled = false;
    }
  });

  $("logout").addEventListener("click", async () => {
    try {
      await api("/api/auth/logout", { method: "POST" });
    } catch {
      // the token is forgotten here either way
    }
    showLogin("");
  });

  // --- the socket -----------------------------------------------------------------------

  function setConnection(name, text) {
    const badge = $("connection");
    badge.dataset.state = name;
    badge.textContent = text;
  }

  function connect() {
    if (!state.token || state.socket) return;
    clearTimeout(state.reconnectTimer);
    setConnection("connecting", "connecting…");
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${location.host}/api/realtime`);
    state.socket = socket;
    socket.addEventListener("open", () => socket.send(JSON.stringify({ token: state.token })));
    socket.addEventListener("message", (event) => {
      if (state.socket !== socket) return; // a socket already let go (logged out)
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      receive(message);
    });
    socket.addEventListener("close", (event) => {
      if (state.socket !== socket) return; // one we closed ourselves
      state.socket = null;
      if (event.code === UNAUTHORIZED_CLOSE) {
        showLogin("Your session has ended; log in again.");
        return;
      }
      setConnection("offline", "offline, reconnecting…");
      const wait = state.reconnectMs;
      state.reconnectMs = Math.min(state.reconnectMs * 2, RECONNECT_MAX_MS);
      state.reconnectTimer = setTimeout(connect, wait);
    });
  }

  function disconnect() {
    clearTimeout(state.reconnectTimer);
    const socket = state.socket;
    state.socket = null;
    if (socket) socket.close(1000, "logged out");
  }

  function receive(message) {
    switch (message.type) {
      case "hello":
        state.reconnectMs = RECONNECT_MIN_MS;
        state.user = message.user;
        showUser();
        setConnection("live", "live");
        refresh(); // whatever happened while the socket was down
        break;
      case "job":
        if (message.job.state !== "running") removeEncode(message.job.id);
        scheduleRefresh();
        break;
      case "status":
        scheduleRefresh();
        break;
      case "progress":
        upsertEncode({ ...message, id: message.job_id });
        $("encodes-empty").hidden = state.encodes.size > 0;
        break;
      case "system":
        renderSystem(message.system);
        break;
      case "error":
        notice(message.message);
        break;
      default:
        break;
    }
  }

  // --- reading the API ------------------------------------------------------------------

  function scheduleRefresh() {
    clearTimeout(state.refreshTimer);
    state.refreshTimer = setTimeout(refresh, REFRESH_DELAY_MS);
  }

  /** The hosts section alone: hosts report on their own timer, and no socket message says so. */
  async function refreshHosts() {
    if (!state.token || state.refreshing) return;
    try {
      const hosts = await api("/api/hosts");
      if (state.token) renderHosts(hosts);
    } catch (error) {
      fail(error);
    }
  }

  async function refresh() {
    if (!state.token) return;
    if (state.refreshing) {
      state.refreshAgain = true;
      return;
    }
    state.refreshing = true;
    try {
      const [me, status, system, hosts, queued, dead, history] = await Promise.all([
        api("/api/auth/me"),
        api("/api/status"),
        api("/api/system"),
        api("/api/hosts"),
        api(`/api/jobs?state=queued&limit=${LIST_LIMIT}`),
        api(`/api/jobs?state=dead&limit=${LIST_LIMIT}`),
        api(`/api/history?days=${HISTORY_DAYS}`),
      ]);
      if (!state.token) return; // logged out meanwhile
      state.user = me.user;
      showUser();
      renderStatus(status);
      renderSystem(system);
      renderHosts(hosts);
      renderJobs("queue", queued);
      renderJobs("dead", dead);
      renderHistory(history);
      clearNotice();
    } catch (error) {
      fail(error);
    } finally {
      state.refreshing = false;
      if (state.refreshAgain) {
        state.refreshAgain = false;
        scheduleRefresh();
      }
    }
  }

  // --- rendering ------------------------------------------------------------------------

  function clearDashboard() {
    for (const id of ["hosts", "libraries", "encodes", "queue", "dead", "gate-reasons", "recent"]) $(id).replaceChildren();
    state.encodes.clear();
    for (const chart of state.charts.values()) chart.destroy();
    state.charts.clear();
    state.history = null;
  }

  function renderStatus(status) {
    setText("host", status.host);
    setText("version", status.version);
    setText("generation", String(status.config_generation));
    state.startedAt = Date.now() - status.uptime_seconds * 1000; // this clock, not the agent's
    showUptime();
    $("reload-error").hidden = !status.reload_error;
    setText("reload-error", status.reload_error ? `config reload refused: ${status.reload_error}` : "");
    $("libraries").replaceChildren(...status.libraries.map(libraryCard));
    renderEncodes(status.running);
  }

  function showUptime() {
    if (state.startedAt !== null) setText("uptime", duration((Date.now() - state.startedAt) / 1000));
  }

  function libraryCard(library) {
    const { condition, counts, space } = library;
    const count = (name, label) =>
      el("div", {}, el("dt", { text: label }), el("dd", { text: String(counts[name]), "data-count": name }));
    const saved = space.saved_bytes;
    const share = space.input_bytes > 0 ? Math.max(0, saved) / space.input_bytes : 0;
    return el(
      "article",
      { class: "card library", "data-library": library.name },
      el(
        "div",
        { class: "head" },
        el("h3", { text: library.name }),
        el("span", { class: "condition", text: condition.status, "data-status": condition.status }),
      ),
      el("p", { class: "reason", text: condition.reason }),
      el(
        "dl",
        { class: "counts" },
        count("done", "done"),
        count("queued", "queued"),
        count("waiting", "waiting"),
        count("dead", "dead"),
      ),
      el(
        "div",
        { class: "space" },
        el(
          "div",
          {},
          "Saved ",
          el("span", { class: "saved", text: bytes(saved) }),
          space.input_bytes > 0 ? ` (${percent(share * 100)})` : "",
        ),
        el("meter", { min: 0, max: 1, value: share, title: `${percent(share * 100)} saved` }),
        el("div", {
          class: "detail",
          text:
            `${bytes(space.input_bytes)} in → ${bytes(space.output_bytes)} out, ` +
            `${space.outputs} ${space.outputs === 1 ? "file" : "files"} in ${library.output}`,
        }),
      ),
      rulesLine(library.rules),
    );
  }

  // What the rules did: sources published as they are, files skipped, and encodes that saved too
  // little (larger_output), by what was done instead. Nothing when the rules did nothing.
  function rulesLine(rules) {
    if (!rules) return null;
    const fallbacks = Object.entries(rules.larger_output).filter(([, total]) => total > 0);
    const larger = fallbacks.reduce((sum, [, total]) => sum + total, 0);
    if (rules.copies + rules.skips + larger === 0) return null;
    const said = fallbacks.map(([then, total]) => `${then} ${total}`).join(", ");
    return el("p", {
      class: "rules",
      "data-rules": "",
      text:
        `Rules: ${rules.copies} copied as they are, ${rules.skips} skipped` +
        (larger > 0 ? `, ${larger} saved too little (${said})` : ""),
    });
  }

  function renderEncodes(list) {
    const ids = new Set(list.map((entry) => entry.id));
    for (const id of [...state.encodes.keys()]) {
      if (!ids.has(id)) removeEncode(id);
    }
    for (const entry of list) upsertEncode(entry);
    $("encodes-empty").hidden = state.encodes.size > 0;
  }

  function removeEncode(id) {
    const row = state.encodes.get(id);
    if (row) {
      row.item.remove();
      state.encodes.delete(id);
    }
    $("encodes-empty").hidden = state.encodes.size > 0;
  }

  function upsertEncode(entry) {
    let row = state.encodes.get(entry.id);
    if (!row) {
      row = {
        bar: el("progress", { max: 100, value: 0 }),
        percent: el("b"),
        fps: el("b"),
        eta: el("b"),
        note: el("span"),
      };
      const head = el(
        "div",
        { class: "job" },
        el("span", { class: "name", text: entry.path, title: entry.path }),
        el("span", { class: "meta", text: `${entry.library} · #${entry.id}` }),
      );
      if (isAdmin()) head.append(el("span", { class: "actions" }, actionButton(entry, "cancel", "Cancel")));
      row.item = el(
        "li",
        { class: "encode", "data-job-id": entry.id },
        head,
        row.bar,
        el("div", { class: "numbers" }, row.percent, el("span", {}, row.fps, " fps"), el("span", {}, "ETA ", row.eta), row.note),
      );
      state.encodes.set(entry.id, row);
      $("encodes").append(row.item);
    }
    row.bar.value = entry.progress;
    row.bar.title = percent(entry.progress);
    row.percent.textContent = `${entry.progress.toFixed(1)} %`;
    row.fps.textContent = entry.fps === null || entry.fps === undefined ? "–" : entry.fps.toFixed(1);
    row.eta.textContent = duration(entry.eta_seconds);
    row.note.textContent = entry.suspended ? "suspended (memory)" : "";
  }

  function renderSystem(system) {
    showUptime();
    const { cpu, memory, archive, gate } = system;
    const verdict = $("gate-verdict");
    verdict.dataset.open = String(gate.admitting);
    verdict.textContent = gate.admitting
      ? "Open: queued jobs start as slots free up."
      : "No job starts now, because:";
    $("gate-reasons").replaceChildren(...gate.reasons.map((reason) => el("li", { text: reason })));

    gauge($("cpu-meter"), cpu.percent, 100, cpu.limit_percent);
    setText("cpu-text", `${percent(cpu.percent)} of limit ${percent(cpu.limit_percent)} · ${cpu.cores} cores`);
    gauge($("memory-meter"), memory.percent, 100, memory.limit_percent);
    setText(
      "memory-text",
      `${percent(memory.percent)} of limit ${percent(memory.limit_percent)} · ` +
        `${bytes(memory.available_bytes)} free (keeps ${bytes(memory.min_free_bytes)})`,
    );
    if (archive.total_bytes) {
      const used = archive.total_bytes - archive.free_bytes;
      gauge($("disk-meter"), used, archive.total_bytes, archive.total_bytes - archive.min_free_bytes);
      setText(
        "disk-text",
        `${bytes(archive.free_bytes)} free of ${bytes(archive.total_bytes)} (keeps ${bytes(archive.min_free_bytes)})`,
      );
    } else {
      gauge($("disk-meter"), 0, 1, 1);
      setText("disk-text", archive.error ? `cannot read: ${archive.error}` : "unknown");
    }
    const running = system.running.length;
    setText(
      "slots",
      `${running} of ${system.max_jobs} encode ${system.max_jobs === 1 ? "slot" : "slots"} in use · ` +
        `load ${system.load.map((value) => value.toFixed(2)).join(" ")}`,
    );
    renderEncodes(system.running);
  }

  /** Show value of max on meter; green below 3/4 of limit, amber up to it, red beyond. */
  function gauge(meter, value, max, limit) {
    meter.max = max;
    meter.low = Math.min(limit, max) * 0.75;
    meter.high = Math.min(limit, max);
    meter.optimum = 0;
    meter.value = Math.max(0, Math.min(value, max));
  }

  function renderHosts(answer) {
    const rows = answer.hosts.map(hostRow);
    $("hosts").replaceChildren(...rows);
    $("hosts-empty").hidden = rows.length > 0;
    const late = answer.hosts.filter((host) => host.late).length;
    setText("hosts-count", late ? `(${rows.length}, ${late} late)` : `(${rows.length})`);
  }

  /** One host as it last reported: a late one (not seen for 3 leases) says when it was last seen. */
  function hostRow(host) {
    const meta = [
      `hb2r ${host.version}`,
      `HandBrake ${host.handbrake_version || "unknown"}`,
      `libraries: ${host.libraries.length ? host.libraries.join(", ") : "none readable"}`,
      `${host.running_jobs} running`,
    ];
    const seen = host.late
      ? `late: last seen ${host.last_seen}`
      : `seen ${duration(host.seen_seconds_ago)} ago`;
    return el(
      "li",
      { class: "job host", "data-host": host.name, "data-late": host.late ? "true" : "false" },
      el("span", { class: "name", text: host.name, title: host.name }),
      host.leader ? el("span", { class: "badge", text: "plans" }) : null,
      el("span", { class: "meta", text: meta.join(" · ") }),
      el("p", { class: host.late ? "why late" : "why", text: seen }),
    );
  }

  function renderJobs(which, page) {
    const rows = page.jobs.map((job) => jobRow(job, which));
    $(which).replaceChildren(...rows);
    $(`${which}-empty`).hidden = rows.length > 0;
    setText(`${which}-count`, page.next_cursor ? `(${LIST_LIMIT}+)` : `(${rows.length})`);
  }

  function jobRow(job, which) {
    const meta = [job.library, `#${job.id}`, `${job.attempts} ${job.attempts === 1 ? "attempt" : "attempts"}`];
    if (job.host) meta.push(`on ${job.host}`);
    if (which === "queue" && job.reason) meta.push(job.reason);
    const item = el(
      "li",
      { class: "job", "data-job-id": job.id },
      el("span", { class: "name", text: job.path, title: job.path }),
      el("span", { class: "meta", text: meta.join(" · ") }),
    );
    if (isAdmin()) {
      item.append(
        el(
          "span",
          { class: "actions" },
          ...(which === "dead"
            ? [actionButton(job, "retry", "Retry")]
            : which === "queue" && (job.state === "queued" || job.state === "failed")
              ? [actionButton(job, "priority", "Run next"), actionButton(job, "cancel", "Cancel")]
              : [actionButton(job, "cancel", "Cancel")]),
        ),
      );
    }
    if (which === "dead" && job.error) item.append(el("p", { class: "why", text: job.error }));
    return item;
  }

  function actionButton(job, action, label) {
    const button = el("button", {
      type: "button",
      class: action === "cancel" ? "danger" : "secondary",
      text: label,
      "data-action": action,
      "aria-label": `${label} ${job.path}`,
    });
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        await api(`/api/jobs/${encodeURIComponent(job.id)}/${action}`, { method: "POST" });
        scheduleRefresh(); // the socket's job message would too; this is sooner
      } catch (error) {
        button.disabled = false;
        fail(error);
      }
    });
    return button;
  }

  // --- history: the Recent list and the charts -------------------------------------------

  function renderHistory(history) {
    state.history = history;
    const rows = history.recent.map(recentRow);
    $("recent").replaceChildren(...rows);
    $("recent-empty").hidden = rows.length > 0;
    setText("recent-count", `(${rows.length})`);
    drawCharts();
  }

  const LARGER_OUTPUT = {
    copy: "saved too little: the source was published instead",
    keep: "saved too little: published anyway",
    skip: "saved too little: nothing published",
  };

  /** One ended encode: what it took and saved, or why it failed. */
  function recentRow(event) {
    const meta = [event.library];
    if (event.seconds !== null) meta.push(`took ${duration(event.seconds)}`);
    const item = el(
      "li",
      { class: "job recent", "data-outcome": event.outcome, "data-job-id": event.job_id },
      el("span", { class: "name", text: event.path, title: event.path }),
      el("span", { class: "meta", text: meta.join(" · ") }),
    );
    if (event.outcome === "done") {
      const sizes = event.output_bytes === null
        ? `${bytes(event.input_bytes)} in, nothing published`
        : `${bytes(event.input_bytes)} → ${bytes(event.output_bytes)}`;
      item.append(el("span", { class: "meta sizes", text: sizes }));
      if (event.saved_bytes !== null && event.input_bytes > 0) {
        const share = (100 * event.saved_bytes) / event.input_bytes;
        item.append(el("span", { class: "saving", text: `saved ${bytes(event.saved_bytes)} (${percent(share)})` }));
      }
    } else {
      item.append(el("span", { class: "outcome", text: event.outcome === "dead" ? "dead" : "failed, retried later" }));
    }
    item.append(el("span", { class: "meta when", text: when(event.finished_at), title: event.finished_at }));
    const why = event.error || LARGER_OUTPUT[event.larger_output];
    if (why) item.append(el("p", { class: "why", text: why }));
    return item;
  }

  /** The page's colour for a CSS variable (light or dark, as the scheme says). */
  const colour = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

  /** A day (YYYY-MM-DD, the agent's) as the unix time of that midnight here, for the x axis. */
  function dayTime(day) {
    const [year, month, date] = day.split("-").map(Number);
    return new Date(year, month - 1, date).getTime() / 1000;
  }

  // Steps for the y axis's ticks: whole numbers of things, round numbers of bytes.
  const COUNT_STEPS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000];
  const BYTE_STEPS = [0, 1, 2, 3, 4, 5].flatMap((power) => [1, 2, 5, 10, 20, 50, 100, 200, 500].map((step) => step * 1024 ** power));

  const CHARTS = {
    saved: { value: bytes, steps: BYTE_STEPS, series: [{ label: "saved", field: "saved_bytes", colour: "--ready", bars: true }] },
    encodes: {
      value: (count) => String(count),
      steps: COUNT_STEPS,
      series: [
        { label: "encoded", field: "encodes", colour: "--accent", bars: true, align: -1 },
        { label: "failed", field: "failures", colour: "--error", bars: true, align: 1 },
      ],
    },
    queue: { value: (count) => String(count), steps: COUNT_STEPS, series: [{ label: "queue", field: "queue_peak", colour: "--paused" }] },
  };

  function drawCharts() {
    if (!state.history || typeof window.uPlot !== "function") return;
    for (const [name, chart] of Object.entries(CHARTS)) drawChart(name, chart, state.history.daily);
  }

  function drawChart(name, chart, daily) {
    const target = $(`chart-${name}`).querySelector(".plot");
    const old = state.charts.get(name);
    if (old) old.destroy();
    const text = colour("--text");
    const line = colour("--line");
    const axis = { stroke: text, grid: { stroke: line, width: 1 }, ticks: { stroke: line, width: 1 } };
    const series = chart.series.map((one) => ({
      label: one.label,
      stroke: colour(one.colour),
      fill: one.bars ? colour(one.colour) : undefined,
      width: one.bars ? 0 : 2,
      points: { show: !one.bars, size: 5, fill: colour(one.colour) },
      paths: one.bars ? window.uPlot.paths.bars({ size: [chart.series.length > 1 ? 0.4 : 0.7, 40], align: one.align || 0 }) : undefined,
      value: (plot, value) => (value === null || value === undefined ? "–" : chart.value(value)),
    }));
    const data = [daily.map((day) => dayTime(day.day)), ...chart.series.map((one) => daily.map((day) => day[one.field]))];
    const plot = new window.uPlot(
      {
        width: Math.max(200, target.clientWidth),
        height: CHART_HEIGHT,
        series: [{ label: "day", value: (plot, value) => (value === null ? "–" : new Date(value * 1000).toLocaleDateString()) }, ...series],
        scales: { x: { time: true, range: (plot, min, max) => [min - 43200, max + 43200] }, y: { range: (plot, min, max) => [0, Math.max(1, (max || 0) * 1.1)] } },
        axes: [
          { ...axis, space: 60 },
          { ...axis, size: 64, incrs: chart.steps, values: (plot, ticks) => ticks.map((tick) => chart.value(tick)) },
        ],
        legend: { show: true },
        cursor: { drag: { x: false, y: false } },
      },
      data,
      target,
    );
    state.charts.set(name, plot);
  }

  function resizeCharts() {
    for (const [name, plot] of state.charts) {
      const width = Math.max(200, $(`chart-${name}`).querySelector(".plot").clientWidth);
      if (width !== plot.width) plot.setSize({ width, height: CHART_HEIGHT });
    }
  }

  if (typeof ResizeObserver === "function") {
    const watching = new ResizeObserver(() => resizeCharts());
    for (const name of Object.keys(CHARTS)) watching.observe($(`chart-${name}`));
  }
  DARK.addEventListener("change", drawCharts); // the colours are read from the CSS again

  // --- start ----------------------------------------------------------------------------

  window.addEventListener("online", () => {
    if (state.token && !state.socket) connect();
  });

  async function start() {
    if (!state.token) {
      showLogin("");
      return;
    }
    try {
      state.user = (await api("/api/auth/me")).user;
    } catch (error) {
      if (error instanceof Unauthorized) {
        showLogin("Your session has ended; log in again.");
        return;
      }
      // The agent is away: show what we can; the socket reconnects and reads the rest.
    }
    showDashboard();
  }

  start();
})();
