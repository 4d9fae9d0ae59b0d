// podflow dashboard: polls the API every two seconds and updates the page in place.
//
// Data comes from GET api/monitor/overview and GET api/podcast/runs (relative
// URLs, so the page works under a proxy's path prefix). With PODFLOW_API_TOKEN
// set, a 401 asks for the token once; it is kept in sessionStorage and sent as
// "Authorization: Bearer" on every request, never in a URL (audio is fetched
// with the header into a blob: URL). Everything shown is set with textContent
// or DOM properties: nothing the API sends is ever parsed as HTML.
"use strict";

(() => {
  const POLL_MS = 2000;
  const TOKEN_KEY = "podflow.apiToken";
  const LABELS = { PENDING: "pending", STARTED: "running", SUCCESS: "succeeded", FAILURE: "failed", REVOKED: "cancelled" };
  const SVG = "http://www.w3.org/2000/svg";

  const state = {
    token: sessionStorage.getItem(TOKEN_KEY) || "",
    filter: "",
    rows: new Map(), // run_id -> {tr, signature, blobUrl}
    bars: [],
  };

  const $ = (id) => document.getElementById(id);

  // -- DOM helpers: text only ---------------------------------------------------------

  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node[key] = value;
    }
    for (const child of children) {
      if (child !== null && child !== undefined && child !== false) {
        node.append(child instanceof Node ? child : String(child));
      }
    }
    return node;
  }

  function svg(tag, attrs = {}) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
    return node;
  }

  function setText(id, text) {
    const node = $(id);
    if (node.textContent !== text) node.textContent = text;
  }

  // -- formatting ----------------------------------------------------------------------

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    if (seconds < 10) return `${seconds.toFixed(1)} s`;
    if (seconds < 60) return `${Math.round(seconds)} s`;
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60) return `${minutes} min ${Math.round(seconds % 60)} s`;
    const hours = Math.floor(minutes / 60);
    if (hours < 48) return `${hours} h ${minutes % 60} min`;
    return `${Math.floor(hours / 24)} d ${hours % 24} h`;
  }

  function ago(iso, now) {
    if (!iso) return "never";
    return `${duration(Math.max(0, (now - Date.parse(iso)) / 1000))} ago`;
  }

  function clock(iso) {
    return new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  // -- talking to the API --------------------------------------------------------------

  class Unauthorized extends Error {}

  async function request(url, options = {}) {
    const headers = new Headers(options.headers || {});
    headers.set("Accept", "application/json");
    if (state.token) headers.set("Authorization", `Bearer ${state.token}`);
    const response = await fetch(url, { ...options, headers, cache: "no-store", credentials: "omit" });
    if (response.status === 401) throw new Unauthorized("the API refused the token");
    return response;
  }

  async function json(url, options) {
    const response = await request(url, options);
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      const message = body && body.error ? body.error.message : `${response.status} ${response.statusText}`;
      throw new Error(message);
    }
    return body;
  }

  let tokenPrompt = null;

  // Ask for the token (once at a time); resolves when the user has typed one.
  function askToken(refused) {
    if (tokenPrompt) return tokenPrompt;
    tokenPrompt = new Promise((resolve) => {
      const dialog = $("token-dialog");
      const form = $("token-form");
      const input = $("token-input");
      const error = $("token-error");
      error.hidden = !refused;
      error.textContent = refused ? "That token was refused; try again." : "";
      input.value = "";
      const submit = (event) => {
        event.preventDefault();
        const token = input.value.trim();
        if (!token) return;
        form.removeEventListener("submit", submit);
        state.token = token;
        sessionStorage.setItem(TOKEN_KEY, token);
        dialog.close();
        tokenPrompt = null;
        resolve();
      };
      form.addEventListener("submit", submit);
      dialog.showModal();
      input.focus();
    });
    return tokenPrompt;
  }

  // Run ``action``; on a 401 ask for the token, then run it again.
  async function authorized(action) {
    for (;;) {
      try {
        return await action();
      } catch (error) {
        if (!(error instanceof Unauthorized)) throw error;
        const refused = Boolean(state.token);
        state.token = "";
        sessionStorage.removeItem(TOKEN_KEY);
        await askToken(refused);
      }
    }
  }

  // -- overview: totals, chart, queues, workers, sweeps -----------------------------

  function renderTotals(totals) {
    for (const card of document.querySelectorAll(".total")) {
      const count = totals[card.dataset.status] ?? 0;
      const node = card.querySelector(".count");
      if (node.textContent !== String(count)) node.textContent = String(count);
    }
  }

  function buildChart() {
    const chart = $("chart");
    chart.append(svg("line", { class: "axis", x1: 30, y1: 140, x2: 600, y2: 140 }));
    const top = svg("text", { class: "tick", x: 26, y: 14, "text-anchor": "end" });
    const mid = svg("text", { class: "tick", x: 26, y: 77, "text-anchor": "end" });
    const zero = svg("text", { class: "tick", x: 26, y: 143, "text-anchor": "end" });
    zero.textContent = "0";
    chart.append(top, mid, zero, svg("line", { class: "gridline", x1: 30, y1: 10, x2: 600, y2: 10 }));
    chart.append(svg("line", { class: "gridline", x1: 30, y1: 75, x2: 600, y2: 75 }));
    const labels = [];
    for (const [x, anchor] of [[32, "start"], [315, "middle"], [598, "end"]]) {
      const label = svg("text", { class: "tick", x, y: 160, "text-anchor": anchor });
      chart.append(label);
      labels.push(label);
    }
    for (let i = 0; i < 60; i++) {
      const group = svg("g");
      const title = svg("title");
      group.append(title);
      const parts = {};
      for (const status of ["SUCCESS", "FAILURE", "REVOKED"]) {
        parts[status] = svg("rect", { class: `seg ${status}`, x: 32 + i * 9.45, width: 7.5, y: 140, height: 0 });
        group.append(parts[status]);
      }
      chart.append(group);
      state.bars.push({ title, parts });
    }
    state.chart = { top, mid, labels };
  }

  function renderChart(minutes) {
    if (!state.bars.length) buildChart();
    const peak = Math.max(1, ...minutes.map((m) => m.success + m.failure + m.revoked));
    const scale = 130 / peak;
    let sum = 0;
    minutes.slice(-60).forEach((minute, i) => {
      const bar = state.bars[i];
      let y = 140;
      for (const [status, count] of [["SUCCESS", minute.success], ["FAILURE", minute.failure], ["REVOKED", minute.revoked]]) {
        const height = count * scale;
        y -= height;
        bar.parts[status].setAttribute("y", String(y));
        bar.parts[status].setAttribute("height", String(height));
      }
      sum += minute.success + minute.failure + minute.revoked;
      bar.title.textContent =
        `${clock(minute.minute)}: ${minute.success} succeeded, ${minute.failure} failed, ${minute.revoked} cancelled`;
    });
    state.chart.top.textContent = String(peak);
    state.chart.mid.textContent = peak % 2 === 0 ? String(peak / 2) : "";
    if (minutes.length) {
      state.chart.labels[0].textContent = clock(minutes[0].minute);
      state.chart.labels[1].textContent = clock(minutes[Math.floor(minutes.length / 2)].minute);
      state.chart.labels[2].textContent = "now";
    }
    setText("chart-sum", `${sum} in the last hour`);
  }

  function renderQueues(overview) {
    const table = $("queues");
    table.hidden = overview.queues.length === 0;
    table.tBodies[0].replaceChildren(
      ...overview.queues.map((q) =>
        el(
          "tr",
          {},
          el("th", { scope: "row" }, q.name),
          el("td", {}, q.ready),
          el("td", {}, q.delayed),
          el("td", { className: q.dead > 0 ? "bad" : "" }, q.dead),
          el("td", {}, q.unacked ?? "–"),
        ),
      ),
    );
    const note = $("broker-note");
    let text = "";
    if (!overview.broker) text = "Thread mode: runs execute inside the API process; there is no broker.";
    else if (overview.broker.error) text = `Broker unavailable: ${overview.broker.error}`;
    else if (overview.broker.note) text = overview.broker.note;
    note.hidden = !text;
    note.classList.toggle("error", Boolean(overview.broker && overview.broker.error));
    if (note.textContent !== text) note.textContent = text;

    const list = $("workers");
    if (!overview.broker) {
      list.replaceChildren(el("li", { className: "muted" }, "the API process's thread pool"));
    } else if (overview.workers === null) {
      list.replaceChildren(el("li", { className: "muted" }, "no worker information"));
    } else if (!overview.workers.length) {
      list.replaceChildren(el("li", { className: "bad" }, "no worker has been seen"));
    } else {
      list.replaceChildren(
        ...overview.workers.map((w) =>
          el(
            "li",
            { className: w.alive ? "alive" : "dead", title: w.id },
            el("span", { className: "dot", ariaHidden: "true" }),
            el("span", { className: "who" }, w.host ? `${w.host} · pid ${w.pid}` : w.id),
            el("span", { className: "seen" }, `seen ${duration(w.last_seen_s)} ago${w.alive ? "" : " · dead"}`),
          ),
        ),
      );
    }
  }

  function renderSweeps(overview) {
    const pending = overview.oldest_pending_age_s;
    setText("oldest-pending", pending === null ? "none waiting" : duration(pending));
    const sweep = overview.last_sweep;
    setText("last-sweep", sweep.at ? `${duration(sweep.age_s)} ago` : "never: is the scheduler running?");
    setText("sweeps", String(sweep.sweeps));
    const parts = Object.entries(sweep.runs)
      .filter(([, count]) => count > 0)
      .map(([rule, count]) => `${rule.replaceAll("_", " ")} ${count}`);
    setText("swept", parts.length ? parts.join(" · ") : "none");
  }

  function renderOverview(overview) {
    const mode = $("mode");
    mode.hidden = false;
    setText("mode", `${overview.mode} mode`);
    renderTotals(overview.totals);
    renderChart(overview.finished_per_minute);
    renderQueues(overview);
    renderSweeps(overview);
  }

  // -- runs ---------------------------------------------------------------------------

  function progressCell(run) {
    const progress = run.progress;
    const percent = progress ? Math.max(0, Math.min(100, progress.percent)) : 0;
    const fill = el("div", { className: "fill" });
    fill.style.width = `${percent}%`;
    const bar = el("div", {
      className: "progress",
      role: "progressbar",
      ariaValueMin: "0",
      ariaValueMax: "100",
      ariaValueNow: String(Math.round(percent)),
    }, fill);
    const words = progress ? [progress.stage, progress.message].filter(Boolean).join(" · ") : "starting";
    return [bar, el("span", { className: "progress-text" }, `${Math.round(percent)}% ${words}`)];
  }

  function audioCell(run) {
    const url = run.result && run.result.audio_url;
    if (!url) return null;
    if (!state.token) return el("audio", { controls: true, preload: "none", src: url });
    // an <audio> cannot send a header: fetch with it, then play from a blob: URL
    const button = el("button", { type: "button", className: "play" }, "▶ load audio");
    button.addEventListener("click", async () => {
      button.disabled = true;
      button.textContent = "loading…";
      try {
        const response = await authorized(() => request(url));
        if (!response.ok) throw new Error(`${response.status} ${response.statusText}`);
        const blobUrl = URL.createObjectURL(await response.blob());
        const row = state.rows.get(run.run_id);
        if (row) row.blobUrl = blobUrl;
        const audio = el("audio", { controls: true, src: blobUrl });
        button.replaceWith(audio);
        audio.play().catch(() => {}); // autoplay may be refused; the controls remain
      } catch (error) {
        button.disabled = false;
        button.textContent = "▶ load audio";
        toast(`audio: ${error.message}`);
      }
    });
    return button;
  }

  function outcomeCell(run) {
    switch (run.status) {
      case "STARTED":
        return progressCell(run);
      case "PENDING":
        if (run.enqueue_error) return [el("span", { className: "warn" }, `not enqueued yet: ${run.enqueue_error}`)];
        return [el("span", { className: "muted" }, run.enqueued_at ? "queued" : "not started")];
      case "FAILURE": {
        const error = run.error || { type: "", message: "" };
        return [el("span", { className: "error" }, el("strong", {}, error.type), error.message ? `: ${error.message}` : "")];
      }
      case "REVOKED":
        return [el("span", { className: "muted" }, run.error ? run.error.message : "")];
      case "SUCCESS": {
        const length = run.result && run.result.duration_s;
        return [
          audioCell(run),
          el("span", { className: "muted" }, length ? ` ${duration(length)} of audio` : ""),
        ];
      }
      default:
        return [];
    }
  }

  function actionCell(run) {
    const buttons = [];
    if (run.status === "PENDING" || run.status === "STARTED") {
      buttons.push(el("button", { type: "button", className: "cancel", onclick: () => act(run, "cancel") }, "cancel"));
    }
    if (run.status === "FAILURE" || run.status === "REVOKED") {
      buttons.push(el("button", { type: "button", className: "retry", onclick: () => act(run, "retry") }, "retry"));
    }
    return buttons;
  }

  async function act(run, action) {
    try {
      await authorized(() => json(run.links[action], { method: "POST" }));
      toast(action === "cancel" ? `cancelled ${run.episode_name}` : `retrying ${run.episode_name} as a new run`);
    } catch (error) {
      toast(`${action} failed: ${error.message}`);
    }
    refresh();
  }

  function fillRow(tr, run) {
    tr.className = `run ${run.status}`;
    tr.dataset.status = run.status;
    const attempt = run.attempt > 1 ? el("span", { className: "muted" }, ` attempt ${run.attempt}`) : null;
    tr.replaceChildren(
      el(
        "td",
        { className: "name" },
        el("span", { className: "episode" }, run.episode_name),
        el("span", { className: "id", title: run.run_id }, run.run_id.slice(0, 12)),
        el("span", { className: "muted profiles" }, `${run.episode_profile} · ${run.speaker_profile}`),
      ),
      el("td", {}, el("span", { className: `badge ${run.status}` }, LABELS[run.status] || run.status), attempt),
      el("td", { className: "outcome" }, ...outcomeCell(run)),
      el("td", { className: "created", title: run.created_at }),
      el("td", { className: "actions" }, ...actionCell(run)),
    );
  }

  function renderRuns(runs) {
    const body = $("runs").tBodies[0];
    const now = Date.now();
    const seen = new Set();
    runs.forEach((run, index) => {
      seen.add(run.run_id);
      let row = state.rows.get(run.run_id);
      if (!row) {
        row = { tr: el("tr", { dataset: { runId: run.run_id } }), signature: "", blobUrl: null };
        state.rows.set(run.run_id, row);
      }
      // rebuild a row only when what it shows changed, so a playing <audio> is left alone
      const signature = JSON.stringify([run.status, run.attempt, run.progress, run.error, run.result, run.enqueue_error]);
      if (signature !== row.signature) {
        fillRow(row.tr, run);
        row.signature = signature;
      }
      const created = row.tr.querySelector(".created");
      const when = ago(run.created_at, now);
      if (created.textContent !== when) created.textContent = when;
      // move rows only when out of place: moving a node pauses its media
      if (body.children[index] !== row.tr) body.insertBefore(row.tr, body.children[index] || null);
    });
    for (const [runId, row] of state.rows) {
      if (!seen.has(runId)) {
        row.tr.remove();
        if (row.blobUrl) URL.revokeObjectURL(row.blobUrl);
        state.rows.delete(runId);
      }
    }
    $("runs-empty").hidden = runs.length > 0;
  }

  // -- status line and messages -------------------------------------------------------

  function live(ok, text) {
    const node = $("live");
    node.classList.toggle("down", !ok);
    if (node.textContent !== text) node.textContent = text;
  }

  let toastTimer = null;

  function toast(text) {
    const node = $("toast");
    node.textContent = text;
    node.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { node.hidden = true; }, 4000);
  }

  // -- polling ------------------------------------------------------------------------

  let inFlight = null;

  function refresh() {
    if (inFlight) return inFlight;
    const query = new URLSearchParams({ limit: "50" });
    if (state.filter) query.set("status", state.filter);
    inFlight = authorized(() =>
      Promise.all([json("api/monitor/overview"), json(`api/podcast/runs?${query}`)]),
    )
      .then(([overview, page]) => {
        renderOverview(overview);
        renderRuns(page.runs);
        live(true, `live · updated ${new Date().toLocaleTimeString()}`);
      })
      .catch((error) => live(false, `offline: ${error.message}`))
      .finally(() => { inFlight = null; });
    return inFlight;
  }

  async function poll() {
    await refresh();
    setTimeout(poll, POLL_MS);
  }

  function setFilter(status) {
    state.filter = status;
    for (const button of $("filters").querySelectorAll("button")) {
      button.setAttribute("aria-pressed", String(button.dataset.status === status));
    }
    refresh();
  }

  document.addEventListener("DOMContentLoaded", () => {
    // Escape would close the token dialog, leaving a page that can show nothing
    $("token-dialog").addEventListener("cancel", (event) => event.preventDefault());
    for (const button of $("filters").querySelectorAll("button")) {
      button.addEventListener("click", () => setFilter(button.dataset.status));
    }
    poll();
  });
})();
