// podflow dashboard: polls the API every two seconds and updates the page in place.
//
// Two views, each with its own URL: the list (#/?q=…&status=…&profile=…&range=…&at=…)
// and one run (#/runs/<run_id>). The list's filters and page live in the URL, so a
// reload, a bookmark or the back button keeps the place; polling refreshes the page
// shown, never jumps back to the first one.
//
// Data comes from GET api/monitor/overview, GET api/podcast/runs and GET
// api/podcast/runs/<id> (relative URLs, so the page works under a proxy's path
// prefix). With PODFLOW_API_TOKEN set, a 401 asks for the token once; it is kept in
// sessionStorage and sent as "Authorization: Bearer" on every request, never in a
// URL (audio is fetched with the header into a blob: URL).
//
// When the API stops answering, the page says so, greys what it shows (the figures
// are then from the last answer) and disables every action until it answers again.
// Retry sends an Idempotency-Key made for that click and disables its button while
// the request is in flight, so a double click makes one run; cancel and delete ask
// first. Everything shown is set with textContent or DOM properties: nothing the API
// sends is ever parsed as HTML.
"use strict";

(() => {
  const POLL_MS = 2000;
  const PAGE_SIZE = 50;
  const TOKEN_KEY = "podflow.apiToken";
  const LABELS = { PENDING: "pending", STARTED: "running", SUCCESS: "succeeded", FAILURE: "failed", REVOKED: "cancelled" };
  const TERMINAL = new Set(["SUCCESS", "FAILURE", "REVOKED"]);
  const SVG = "http://www.w3.org/2000/svg";

  const state = {
    token: sessionStorage.getItem(TOKEN_KEY) || "",
    rows: new Map(), // run_id -> {tr, signature, blobUrl}
    bars: [],
    offline: false,
    offlineSince: null,
    lastAnswer: null,
    skewMs: 0, // server clock - browser clock, from the overview's "at"
    nextCursor: null,
    inFlight: new Set(), // "<action>:<run_id>" of requests not answered yet
    detail: { runId: null, signature: "", docs: null, blobUrl: null },
    sources: new Map(), // source_id -> title
    deadQueue: null,
    profilesLoaded: false,
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
    for (const child of children.flat()) {
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
    if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "–";
    if (seconds < 9.95) return `${seconds.toFixed(1)} s`;
    // rounded to the second before it is split, so 119.6 s is "2 min 0 s", never "1 min 60 s"
    const whole = Math.round(seconds);
    if (whole < 60) return `${whole} s`;
    const minutes = Math.floor(whole / 60);
    if (minutes < 60) return `${minutes} min ${whole % 60} s`;
    const hours = Math.floor(minutes / 60);
    if (hours < 48) return `${hours} h ${minutes % 60} min`;
    return `${Math.floor(hours / 24)} d ${hours % 24} h`;
  }

  // the server's now, so ages do not depend on the browser's clock
  const serverNow = () => Date.now() + state.skewMs;
  const since = (iso, until) => Math.max(0, ((until ?? serverNow()) - Date.parse(iso)) / 1000);
  const ago = (iso) => (iso ? `${duration(since(iso))} ago` : "never");
  const clock = (iso) => new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  // a time of day, with the date only when it is not today
  const stamp = (iso) => {
    const when = new Date(iso);
    return when.toDateString() === new Date().toDateString()
      ? when.toLocaleTimeString()
      : when.toLocaleString([], { dateStyle: "medium", timeStyle: "medium" });
  };

  function elapsed(run) {
    if (!run.started_at) return null;
    return since(run.started_at, run.finished_at ? Date.parse(run.finished_at) : undefined);
  }

  // an Idempotency-Key for one click (crypto.randomUUID needs a secure context; this does not)
  function newKey() {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return "dashboard-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  // -- talking to the API --------------------------------------------------------------

  class Unauthorized extends Error {}
  class Unreachable extends Error {}

  async function request(url, options = {}) {
    const headers = new Headers(options.headers || {});
    headers.set("Accept", "application/json");
    if (state.token) headers.set("Authorization", `Bearer ${state.token}`);
    let response;
    try {
      response = await fetch(url, { ...options, headers, cache: "no-store", credentials: "omit" });
    } catch (error) {
      throw new Unreachable(`no answer (${error.message})`);
    }
    if (response.status === 401) throw new Unauthorized("the API refused the token");
    if ([502, 503, 504].includes(response.status)) {
      const body = await response.json().catch(() => null);
      throw new Unreachable(body && body.error ? body.error.message : `${response.status} ${response.statusText}`);
    }
    return response;
  }

  async function json(url, options) {
    const response = await request(url, options);
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      const error = new Error(body && body.error ? body.error.message : `${response.status} ${response.statusText}`);
      error.status = response.status;
      throw error;
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

  // -- the URL: which view, which filters, which page ----------------------------------

  function route() {
    const hash = location.hash.replace(/^#/, "") || "/";
    const [path, query = ""] = hash.split("?");
    const run = path.match(/^\/runs\/([A-Za-z0-9_-]+)$/);
    if (run) return { view: "run", runId: run[1] };
    const params = new URLSearchParams(query);
    return {
      view: "list",
      q: params.get("q") || "",
      status: params.get("status") || "",
      profile: params.get("profile") || "",
      range: params.get("range") || "",
      at: (params.get("at") || "").split("~").filter(Boolean), // cursors of the pages before this one
    };
  }

  function listHash(changes) {
    const current = route().view === "list" ? route() : { q: "", status: "", profile: "", range: "", at: [] };
    const next = { ...current, ...changes };
    const params = new URLSearchParams();
    for (const key of ["q", "status", "profile", "range"]) if (next[key]) params.set(key, next[key]);
    if (next.at.length) params.set("at", next.at.join("~"));
    const query = params.toString();
    return `#/${query ? "?" + query : ""}`;
  }

  // a filter changed: back to the first page
  function setFilter(changes) {
    location.hash = listHash({ ...changes, at: [] });
  }

  // -- offline: say so, grey what is shown, disable every action --------------------------

  function setOffline(offline, why) {
    state.offline = offline;
    document.body.classList.toggle("offline", offline);
    $("offline").hidden = !offline;
    if (offline) {
      state.offlineSince = state.offlineSince || new Date();
      const last = state.lastAnswer ? `the figures below are from ${state.lastAnswer.toLocaleTimeString()}` : "nothing could be read yet";
      setText("offline-text", ` Since ${state.offlineSince.toLocaleTimeString()} (${why}): ${last}. Actions are disabled; retrying every ${POLL_MS / 1000} s.`);
      live(false, `offline: ${why}`);
    } else {
      state.offlineSince = null;
    }
    syncButtons();
  }

  // every action button: disabled while offline or while its own request is in flight
  function syncButtons() {
    for (const button of document.querySelectorAll("button[data-act]")) {
      button.disabled = state.offline || state.inFlight.has(button.dataset.act);
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
          { dataset: { queue: q.name } },
          el("th", { scope: "row" }, q.name),
          el("td", {}, q.ready),
          el("td", {}, q.delayed),
          el("td", {}, q.unacked ?? "–"),
          el(
            "td",
            { className: q.dead > 0 ? "bad" : "" },
            q.dead > 0
              ? el("button", { type: "button", className: "link dead-open", title: "list the dead-lettered messages",
                               onclick: () => openDead(q.name) }, `${q.dead} ▸`)
              : "0",
          ),
        ),
      ),
    );
    const note = $("broker-note");
    let text = "";
    if (!overview.broker) text = "Thread mode: runs execute inside the API process; there is no broker.";
    else if (overview.broker.error) text = `Broker unavailable: ${overview.broker.error}`;
    else if (overview.broker.foreign_stores && overview.broker.foreign_stores.length)
      text = `Workers of another store (${overview.broker.foreign_stores.join(", ")}) consume queue ` +
        `${overview.broker.queue}: give each deployment its own PODFLOW_QUEUE.`;
    else if (overview.broker.note) text = overview.broker.note;
    note.hidden = !text;
    const mixed = Boolean(overview.broker && (overview.broker.foreign_stores || []).length);
    note.classList.toggle("error", Boolean(overview.broker && overview.broker.error) || mixed);
    if (note.textContent !== text) note.textContent = text;
    renderWorkers(overview);
  }

  function renderWorkers(overview) {
    const list = $("workers");
    const note = $("workers-note");
    const details = overview.worker_details;
    let noteText = "";
    if (!overview.broker) {
      list.replaceChildren(el("li", { className: "muted" }, "the API process's thread pool"));
    } else if (details) {
      noteText = `A worker silent for ${overview.workers_drop_off_s} s drops off this list.`;
      const stores = new Set(details.map((w) => w.store_id).filter(Boolean));
      if (stores.size > 1) noteText += ` Warning: these workers serve ${stores.size} different stores.`;
      const common = mostCommon(details.map((w) => w.store_id).filter(Boolean));
      list.replaceChildren(
        ...(details.length
          ? details.map((w) => {
              const other = stores.size > 1 && w.store_id && w.store_id !== common;
              return el(
                "li",
                { className: other ? "alive other-store" : "alive", title: `processes ${w.pids.join(", ")}` },
                el("span", { className: "dot", ariaHidden: "true" }),
                el(
                  "span",
                  { className: "who" },
                  `${w.host} · pid ${w.pid}`,
                  el("span", { className: "size", title: "processes × threads" }, ` ${w.processes} × ${w.threads} threads`),
                  w.processes < w.processes_configured ? el("span", { className: "warn" }, ` (${w.processes_configured} configured)`) : null,
                ),
                el(
                  "span",
                  { className: "work" },
                  `running ${w.running.length}`,
                  // the runs it holds now, as celery inspect active listed tasks: each opens its run
                  w.running.length ? [": ", ...w.running.flatMap((id, i) => [i ? ", " : "", el("a", { className: "held", href: `#/runs/${id}`, title: id }, id.slice(0, 12))])] : null,
                  ` · done ${w.done} · failed ${w.failed}`,
                  w.store_id ? el("span", { className: other ? "bad" : "muted" }, ` · store ${w.store_id}`) : null,
                ),
                el("span", { className: "seen" }, `seen ${duration(w.last_seen_s)} ago`),
              );
            })
          : [el("li", { className: "bad" }, "no worker is running")]),
      );
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
    note.hidden = !noteText;
    if (note.textContent !== noteText) note.textContent = noteText;
  }

  function mostCommon(values) {
    const counts = new Map();
    for (const v of values) counts.set(v, (counts.get(v) || 0) + 1);
    return [...counts.entries()].sort((a, b) => b[1] - a[1])[0]?.[0];
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
    state.skewMs = Date.parse(overview.at) - Date.now();
    const mode = $("mode");
    mode.hidden = false;
    setText("mode", `${overview.mode} mode`);
    renderTotals(overview.totals);
    renderChart(overview.finished_per_minute);
    renderQueues(overview);
    renderSweeps(overview);
  }

  // -- the dead-letter queue ------------------------------------------------------------

  function openDead(queue) {
    state.deadQueue = queue;
    $("dead-panel").hidden = false;
    setText("dead-queue", queue);
    refreshDead();
  }

  async function refreshDead() {
    if (!state.deadQueue) return;
    const listed = await authorized(() => json(`api/monitor/queues/${encodeURIComponent(state.deadQueue)}/dead?limit=100`));
    const body = $("dead").tBodies[0];
    body.replaceChildren(
      ...listed.messages.map((m) =>
        el(
          "tr",
          { dataset: { messageId: m.message_id } },
          el("td", { className: "id", title: m.id }, m.message_id),
          el("td", {}, m.run_id ? el("a", { href: `#/runs/${m.run_id}` }, m.run_id.slice(0, 12)) : m.actor,
             " ", m.run_status ? el("span", { className: `badge ${m.run_status}` }, LABELS[m.run_status]) : el("span", { className: "muted" }, "(run gone)")),
          el("td", { title: m.dead_at }, ago(m.dead_at)),
          el("td", {}, m.retries),
          el("td", { className: "error" }, m.error || ""),
          el("td", { className: "actions" }, actionButton("requeue", `requeue:${m.id}`, () => requeueDead(m))),
        ),
      ),
    );
    $("dead-empty").hidden = listed.messages.length > 0;
    syncButtons();
  }

  async function requeueDead(message) {
    const key = `requeue:${message.id}`;
    state.inFlight.add(key);
    syncButtons();
    try {
      await authorized(() =>
        json(`api/monitor/queues/${encodeURIComponent(state.deadQueue)}/dead/${encodeURIComponent(message.id)}/requeue`, { method: "POST" }),
      );
      toast(`requeued ${message.message_id}${message.run_id ? ` (run ${message.run_id.slice(0, 12)})` : ""}`);
    } catch (error) {
      toast(`requeue failed: ${error.message}`);
    } finally {
      state.inFlight.delete(key);
    }
    await refreshDead().catch(() => {});
    refresh();
  }

  // -- actions: cancel, retry, delete ------------------------------------------------------

  function actionButton(label, key, onclick, className = label) {
    const button = el("button", { type: "button", className, dataset: { act: key } }, label);
    button.addEventListener("click", () => {
      if (!button.disabled) onclick();
    });
    button.disabled = state.offline || state.inFlight.has(key);
    return button;
  }

  function runActions(run) {
    const buttons = [];
    if (run.status === "PENDING" || run.status === "STARTED") {
      buttons.push(actionButton("cancel", `cancel:${run.run_id}`, () => cancelRun(run)));
    }
    if (run.status === "FAILURE" || run.status === "REVOKED") {
      buttons.push(actionButton("retry", `retry:${run.run_id}`, () => retryRun(run)));
    }
    return buttons;
  }

  function confirmAction(title, text, yes) {
    return new Promise((resolve) => {
      const dialog = $("confirm-dialog");
      setText("confirm-title", title);
      setText("confirm-text", text);
      setText("confirm-yes", yes);
      dialog.returnValue = "";
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "yes"), { once: true });
      dialog.showModal();
      $("confirm-no").focus();
    });
  }

  async function perform(key, action, done) {
    if (state.inFlight.has(key) || state.offline) return;
    state.inFlight.add(key); // before anything awaits: a second click finds the button disabled
    syncButtons();
    try {
      const answer = await authorized(action);
      done(answer);
    } catch (error) {
      toast(`${key.split(":")[0]} failed: ${error.message}`);
      if (error instanceof Unreachable) setOffline(true, error.message);
    } finally {
      state.inFlight.delete(key);
      syncButtons();
    }
    refresh();
  }

  async function cancelRun(run) {
    const running = run.status === "STARTED" ? " Its generation stops within two heartbeats and its partial files are removed." : "";
    if (!(await confirmAction(`Cancel “${run.episode_name}”?`, `The run becomes REVOKED.${running}`, "Cancel the run"))) return;
    await perform(`cancel:${run.run_id}`, () => json(run.links.cancel, { method: "POST" }), () =>
      toast(`cancelled ${run.episode_name}`));
  }

  async function retryRun(run) {
    const key = newKey(); // one per click: the API makes one run for it, however often it is sent
    await perform(
      `retry:${run.run_id}`,
      () => json(run.links.retry, { method: "POST", headers: { "Idempotency-Key": key } }),
      (answer) => {
        toast(`retrying ${run.episode_name} as a new run`, `#/runs/${answer.run_id}`);
      },
    );
  }

  async function deleteRun(run) {
    if (!(await confirmAction(`Delete “${run.episode_name}”?`, "Its record and its files are removed for good.", "Delete the run"))) return;
    await perform(`delete:${run.run_id}`, () => request(run.links.self, { method: "DELETE" }).then((response) => {
      if (!response.ok) return response.json().then((body) => { throw new Error(body.error.message); });
      return null;
    }), () => {
      toast(`deleted ${run.episode_name}`);
      location.hash = listHash({});
    });
  }

  // -- the list of runs ---------------------------------------------------------------

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

  function audioElement(run, onBlob) {
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
        onBlob(blobUrl);
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
        if (run.start_at && Date.parse(run.start_at) > Date.now()) {
          return [el("span", { className: "scheduled", title: run.start_at }, `scheduled for ${new Date(run.start_at).toLocaleString()}`)];
        }
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
          audioElement(run, (blobUrl) => {
            const row = state.rows.get(run.run_id);
            if (row) row.blobUrl = blobUrl;
          }),
          el("span", { className: "muted" }, length ? ` ${duration(length)} of audio` : ""),
        ];
      }
      default:
        return [];
    }
  }

  function fillRow(tr, run) {
    tr.className = `run ${run.status}`;
    tr.dataset.status = run.status;
    const attempt = run.attempt > 1 ? el("span", { className: "muted" }, ` attempt ${run.attempt}`) : null;
    const band = run.priority && run.priority !== "normal" ? el("span", { className: `priority ${run.priority}` }, ` ${run.priority}`) : null;
    tr.replaceChildren(
      el(
        "td",
        { className: "name" },
        el("a", { className: "episode", href: `#/runs/${run.run_id}` }, run.episode_name),
        el("span", { className: "id", title: run.run_id }, run.run_id.slice(0, 12)),
        el("span", { className: "muted profiles" }, `${run.episode_profile} · ${run.speaker_profile}`),
      ),
      el("td", {}, el("span", { className: `badge ${run.status}` }, LABELS[run.status] || run.status), band, attempt,
         el("span", { className: "elapsed muted" })),
      el("td", { className: "outcome" }, ...outcomeCell(run)),
      el("td", { className: "created", title: run.created_at }),
      el("td", { className: "actions" }, ...runActions(run)),
    );
  }

  function renderRuns(runs) {
    const body = $("runs").tBodies[0];
    const seen = new Set();
    runs.forEach((run, index) => {
      seen.add(run.run_id);
      let row = state.rows.get(run.run_id);
      if (!row) {
        row = { tr: el("tr", { dataset: { runId: run.run_id } }), signature: "", blobUrl: null };
        state.rows.set(run.run_id, row);
      }
      // rebuild a row only when what it shows changed, so a playing <audio> is left alone
      const signature = JSON.stringify([run.status, run.attempt, run.progress, run.error, run.result, run.enqueue_error, run.priority, run.start_at && Date.parse(run.start_at) > Date.now()]);
      if (signature !== row.signature) {
        fillRow(row.tr, run);
        row.signature = signature;
      }
      const created = row.tr.querySelector(".created");
      const when = ago(run.created_at);
      if (created.textContent !== when) created.textContent = when;
      const running = row.tr.querySelector(".elapsed");
      const took = run.status === "STARTED" && run.started_at ? ` · ${duration(elapsed(run))}` : "";
      if (running.textContent !== took) running.textContent = took;
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

  function listQuery(where) {
    const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (where.status) query.set("status", where.status);
    if (where.q) query.set("q", where.q);
    if (where.profile) query.set("episode_profile", where.profile);
    if (where.range) query.set("created_after", new Date(serverNow() - Number(where.range) * 1000).toISOString());
    if (where.at.length) query.set("cursor", where.at[where.at.length - 1]);
    return query;
  }

  function syncListControls(where) {
    for (const button of $("filters").querySelectorAll("button")) {
      button.setAttribute("aria-pressed", String(button.dataset.status === where.status));
    }
    const search = $("search");
    if (document.activeElement !== search && search.value !== where.q) search.value = where.q;
    if ($("profile").value !== where.profile) $("profile").value = where.profile;
    if ($("range").value !== where.range) $("range").value = where.range;
    setText("page", `page ${where.at.length + 1}`);
    $("newer").disabled = where.at.length === 0;
    $("older").disabled = !state.nextCursor;
  }

  async function loadProfiles() {
    if (state.profilesLoaded) return;
    const listed = await json("api/podcast/episode-profiles");
    const select = $("profile");
    for (const profile of listed.profiles) select.append(el("option", { value: profile.name }, profile.name));
    state.profilesLoaded = true;
    select.value = route().profile || "";
  }

  // -- one run ------------------------------------------------------------------------

  function attemptsOf(run) {
    // each attempt from the history: when it started, how it ended
    const attempts = new Map();
    for (const entry of run.history) {
      if (!entry.attempt) continue;
      const attempt = attempts.get(entry.attempt) || { n: entry.attempt, started: null, ended: null, outcome: "" };
      if (entry.status === "STARTED" && !attempt.started && !/^released|^lost/.test(entry.reason)) attempt.started = entry.at;
      else {
        attempt.ended = entry.at;
        attempt.outcome = entry.status === "STARTED" ? entry.reason : `${entry.status}: ${entry.reason}`;
      }
      attempts.set(entry.attempt, attempt);
    }
    const list = [...attempts.values()];
    const last = list[list.length - 1];
    if (last && !last.ended && run.status === "STARTED") last.outcome = "running";
    return list;
  }

  async function sourceTitles(ids) {
    const missing = ids.filter((id) => !state.sources.has(id));
    if (missing.length) {
      const listed = await json("api/sources?limit=500").catch(() => ({ sources: [] }));
      for (const source of listed.sources) state.sources.set(source.source_id, source.title || source.filename || source.source_id);
      for (const id of ids.filter((id) => !state.sources.has(id))) {
        const source = await json(`api/sources/${encodeURIComponent(id)}`).catch(() => null);
        state.sources.set(id, source ? source.title || source.filename || id : `${id} (deleted)`);
      }
    }
    return ids.map((id) => [id, state.sources.get(id)]);
  }

  function fact(dl, term, ...value) {
    dl.append(el("dt", {}, term), el("dd", {}, ...value));
  }

  // the completion webhook's delivery, as `podflow runs show` prints it
  function webhookText(hook) {
    const parts = [`${hook.url}: ${hook.state}`, `${hook.attempts} attempt${hook.attempts === 1 ? "" : "s"}`];
    const last = [hook.last_status, hook.last_error].filter((x) => x !== null && x !== undefined && x !== "");
    if (last.length) parts.push(`last ${last.join(" ")}`);
    if (hook.delivered_at) parts.push(`delivered ${ago(hook.delivered_at)}`);
    else if (hook.next_attempt_at) parts.push(`next ${new Date(hook.next_attempt_at).toLocaleTimeString()}`);
    return parts.join(", ");
  }

  async function renderRun(run) {
    const detail = state.detail;
    setText("run-title", run.episode_name);
    const badge = $("run-badge");
    badge.className = `badge ${run.status}`;
    setText("run-badge", LABELS[run.status] || run.status);
    setText("run-id", run.run_id);
    document.title = `${run.episode_name} · podflow`;

    const signature = JSON.stringify([run.status, run.attempt, run.progress, run.error, run.history.length, run.result, run.updated_at, run.webhook]);
    const changed = signature !== detail.signature;
    detail.signature = signature;

    // times: always (elapsed moves)
    const times = $("run-times");
    times.replaceChildren();
    fact(times, "created", el("span", { title: run.created_at }, ago(run.created_at)));
    if (run.started_at) fact(times, "waited", duration(since(run.created_at, Date.parse(run.started_at))));
    if (run.started_at) fact(times, run.finished_at ? "took" : "running for", duration(elapsed(run)));
    if (run.finished_at) fact(times, "finished", el("span", { title: run.finished_at }, ago(run.finished_at)));
    // attempts released because their worker stopped do not count toward PODFLOW_MAX_ATTEMPTS
    const counted = run.attempts_counted !== undefined && run.attempts_counted !== run.attempt;
    fact(times, "attempt", counted ? `${run.attempt} (${run.attempts_counted} counted)` : `${run.attempt}`);
    if (run.priority && run.priority !== "normal") fact(times, "priority", run.priority);
    if (run.start_at) fact(times, run.started_at ? "scheduled for" : "starts", el("span", { title: run.start_at }, new Date(run.start_at).toLocaleString()));
    if (run.heartbeat_at && run.status === "STARTED") fact(times, "heartbeat", ago(run.heartbeat_at));
    if (!changed) return;

    const actions = $("run-actions");
    actions.replaceChildren(...runActions(run));
    if (run.status !== "STARTED") actions.append(actionButton("delete", `delete:${run.run_id}`, () => deleteRun(run)));

    const progress = $("run-progress");
    progress.hidden = run.status !== "STARTED";
    progress.replaceChildren(...(run.status === "STARTED" ? progressCell(run) : []));

    const error = $("run-error");
    error.hidden = !run.error;
    error.replaceChildren(...(run.error ? [el("strong", {}, run.error.type), `: ${run.error.message}`] : []));

    // links: what it retries, and its retries
    const links = $("run-links");
    const parts = [];
    if (run.retry_of) parts.push(["retry of ", el("a", { href: `#/runs/${run.retry_of}`, className: "retry-of" }, run.retry_of.slice(0, 12))]);
    const retries = await json(`api/podcast/runs?retry_of=${encodeURIComponent(run.run_id)}&limit=20`).catch(() => ({ runs: [] }));
    if (retries.runs.length) {
      parts.push(["retried as ", ...retries.runs.flatMap((r, i) => [i ? ", " : "", el("a", { href: `#/runs/${r.run_id}`, className: "retried-as" }, r.run_id.slice(0, 12)), ` (${LABELS[r.status]})`])]);
    }
    if (run.message_id) parts.push([`message ${run.message_id}`]);
    links.replaceChildren(...parts.flatMap((p, i) => [i ? " · " : "", ...p]));

    const request = $("run-request");
    request.replaceChildren();
    fact(request, "episode profile", run.episode_profile);
    fact(request, "speaker profile", run.speaker_profile);
    fact(request, "episode name", run.episode_name);
    fact(request, "briefing", run.briefing_suffix || el("span", { className: "muted" }, "(the profile's own)"));
    if (run.webhook) fact(request, "webhook", webhookText(run.webhook));
    const titles = await sourceTitles(run.source_ids);
    fact(request, `sources (${titles.length})`, el("ul", { className: "sources" }, ...titles.map(([id, title]) =>
      el("li", {}, title, " ", el("code", { className: "muted" }, id)))));
    fact(request, "mode", run.mode);
    if (run.idempotency_key) fact(request, "idempotency key", el("code", {}, run.idempotency_key));

    $("attempts").tBodies[0].replaceChildren(
      ...attemptsOf(run).map((a) =>
        el("tr", { dataset: { attempt: String(a.n) } },
           el("td", {}, `#${a.n}`),
           el("td", { title: a.started || "" }, a.started ? stamp(a.started) : "–"),
           el("td", { title: a.ended || "" }, a.ended ? stamp(a.ended) : "–"),
           el("td", {}, a.started ? duration(since(a.started, a.ended ? Date.parse(a.ended) : undefined)) : "–"),
           el("td", { className: /FAILURE|released|lost/.test(a.outcome) ? "error" : "" }, a.outcome)),
      ),
    );

    let previous = null;
    $("timeline").replaceChildren(
      ...run.history.map((entry) => {
        const gap = previous ? ` +${duration(since(previous, Date.parse(entry.at)))}` : "";
        previous = entry.at;
        return el("li", { className: `step ${entry.status}` },
          el("span", { className: `badge ${entry.status}` }, LABELS[entry.status] || entry.status),
          el("span", { className: "when", title: entry.at }, stamp(entry.at), el("span", { className: "muted" }, gap)),
          el("span", { className: "attempt" }, entry.attempt ? `attempt ${entry.attempt}` : ""),
          el("span", { className: "reason" }, entry.reason));
      }),
    );

    await renderResults(run);
  }

  async function renderResults(run) {
    const results = $("results");
    const result = run.status === "SUCCESS" ? run.result : null;
    results.hidden = !result;
    if (!result || state.detail.docs === run.run_id) return;
    state.detail.docs = run.run_id;
    const audio = $("result-audio");
    audio.replaceChildren(
      audioElement(run, (blobUrl) => { state.detail.blobUrl = blobUrl; }) || el("p", { className: "muted" }, "no audio (PODFLOW_TTS=none?)"),
      result.duration_s ? el("span", { className: "muted" }, ` ${duration(result.duration_s)} of audio`) : null,
    );
    for (const [name, url] of [["outline", result.outline_url], ["transcript", result.transcript_url]]) {
      const box = $(`result-${name}`);
      if (!url) {
        box.replaceChildren(el("p", { className: "muted" }, `no ${name}`));
        continue;
      }
      try {
        const response = await authorized(() => request(url));
        const text = await response.text();
        let doc = null;
        try { doc = JSON.parse(text); } catch (_) { /* markdown or text: shown as it is */ }
        box.replaceChildren(...(doc ? (name === "outline" ? outlineView(doc) : transcriptView(doc)) : [el("pre", {}, text)]));
      } catch (error) {
        box.replaceChildren(el("p", { className: "error" }, `${name}: ${error.message}`));
      }
    }
  }

  function outlineView(doc) {
    const segments = doc.segments || [];
    return [el("ol", { className: "outline" }, ...segments.map((s) =>
      el("li", {}, el("strong", {}, s.title || `segment ${s.index}`),
         s.key_points && s.key_points.length ? el("ul", {}, ...s.key_points.map((p) => el("li", {}, p))) : null)))];
  }

  function transcriptView(doc) {
    const titles = new Map((doc.segments || []).map((s) => [s.index, s.title]));
    const nodes = [];
    let segment;
    for (const turn of doc.turns || []) {
      if (turn.segment !== segment && titles.has(turn.segment)) nodes.push(el("h4", {}, titles.get(turn.segment)));
      segment = turn.segment;
      nodes.push(el("p", { className: "turn" }, el("b", { className: "speaker" }, `${turn.speaker}: `), turn.text));
    }
    if (doc.word_count) nodes.push(el("p", { className: "muted" }, `${doc.word_count} words`));
    return nodes.length ? nodes : [el("pre", {}, JSON.stringify(doc, null, 2))];
  }

  // -- status line and messages -------------------------------------------------------

  function live(ok, text) {
    const node = $("live");
    node.classList.toggle("down", !ok);
    if (node.textContent !== text) node.textContent = text;
  }

  let toastTimer = null;

  function toast(text, href) {
    const node = $("toast");
    node.replaceChildren(text, href ? el("a", { href, className: "toast-link" }, " open it") : "");
    node.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { node.hidden = true; }, 4000);
  }

  // -- polling ------------------------------------------------------------------------

  let inFlight = null;
  let again = false; // the route changed while a refresh was in flight: refresh once more after it

  function showView(where) {
    $("view-list").hidden = where.view !== "list";
    $("view-run").hidden = where.view !== "run";
    if (where.view === "list") document.title = "podflow dashboard";
  }

  async function refreshList(where) {
    const hash = location.hash;
    const [overview, page] = await Promise.all([json("api/monitor/overview"), json(`api/podcast/runs?${listQuery(where)}`)]);
    if (location.hash !== hash) return; // the place changed meanwhile: the next refresh shows it
    renderOverview(overview);
    state.nextCursor = page.next_cursor;
    renderRuns(page.runs);
    syncListControls(where);
    if (state.deadQueue) await refreshDead();
    loadProfiles().catch(() => {});
  }

  async function refreshRun(where) {
    if (state.detail.runId !== where.runId) {
      if (state.detail.blobUrl) URL.revokeObjectURL(state.detail.blobUrl);
      state.detail = { runId: where.runId, signature: "", docs: null, blobUrl: null };
    }
    try {
      const run = await json(`api/podcast/runs/${encodeURIComponent(where.runId)}`);
      $("run-missing").hidden = true;
      await renderRun(run);
    } catch (error) {
      if (error.status !== 404) throw error;
      setText("run-missing", `Run ${where.runId} does not exist (deleted?).`);
      $("run-missing").hidden = false;
    }
  }

  function refresh() {
    if (inFlight) {
      again = true;
      return inFlight;
    }
    again = false;
    const where = route();
    showView(where);
    inFlight = authorized(() => (where.view === "run" ? refreshRun(where) : refreshList(where)))
      .then(() => {
        state.lastAnswer = new Date();
        if (state.offline) setOffline(false);
        live(true, `live · updated ${state.lastAnswer.toLocaleTimeString()}`);
        syncButtons();
      })
      .catch((error) => {
        if (error instanceof Unreachable) setOffline(true, error.message);
        else live(false, `error: ${error.message}`);
      })
      .finally(() => {
        inFlight = null;
        if (again) refresh();
      });
    return inFlight;
  }

  async function poll() {
    await refresh();
    setTimeout(poll, POLL_MS);
  }

  document.addEventListener("DOMContentLoaded", () => {
    // Escape would close the token dialog, leaving a page that can show nothing
    $("token-dialog").addEventListener("cancel", (event) => event.preventDefault());
    for (const button of $("filters").querySelectorAll("button")) {
      button.addEventListener("click", () => setFilter({ status: button.dataset.status }));
    }
    $("search-form").addEventListener("submit", (event) => {
      event.preventDefault();
      setFilter({ q: $("search").value.trim() });
    });
    let typing = null;
    $("search").addEventListener("input", () => {
      clearTimeout(typing);
      typing = setTimeout(() => setFilter({ q: $("search").value.trim() }), 300);
    });
    $("profile").addEventListener("change", () => setFilter({ profile: $("profile").value }));
    $("range").addEventListener("change", () => setFilter({ range: $("range").value }));
    $("older").addEventListener("click", () => {
      if (state.nextCursor) location.hash = listHash({ at: [...route().at, state.nextCursor] });
    });
    $("newer").addEventListener("click", () => {
      location.hash = listHash({ at: route().at.slice(0, -1) });
    });
    $("dead-close").addEventListener("click", () => {
      state.deadQueue = null;
      $("dead-panel").hidden = true;
    });
    window.addEventListener("hashchange", () => {
      window.scrollTo(0, 0);
      state.nextCursor = null;
      refresh();
    });
    poll();
  });
})();
