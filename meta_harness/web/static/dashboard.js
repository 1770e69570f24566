// meta-harness dashboard: plain JS, no build step.
// State comes from the JSON API; live changes from ONE EventSource per tab (the selected task's
// stream with all workspace events multiplexed in, or /api/events when no task is selected).
// The stream is closed while the tab is hidden and resumed from the last event id.
// Everything an agent wrote is put into the page with textContent only, never as HTML.
"use strict";

(() => {
  const TAIL_BYTES = 1 << 20; // transcript shown when a task is opened: its last MiB
  const REFRESH_DELAY_MS = 150; // events arriving together cause one refresh
  const REOPEN_DELAY_MS = 1000; // after the server closed the stream (restart, error)
  const MAX_REOPEN_FAILURES = 3; // then drop the cursor and start the view afresh

  const token = new URLSearchParams(location.search).get("token");
  const $ = (id) => document.getElementById(id);

  const state = {
    selected: null, // task id shown in the transcript view
    pendingSelect: null, // task submitted from this page, selected when it appears
    tasks: new Map(), // id -> summary
    es: null, // the one EventSource of this tab
    cursor: null, // last event id received: "t:<offset>,e:<offset>" or "e:<offset>"
    reopenFailures: 0,
    reopenTimer: null,
    refresh: new Set(),
    refreshTimer: null,
    view: null, // rendering state of the transcript view
  };
  window.__mh = state; // for tests and curious users

  // -- helpers ------------------------------------------------------------------------------

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function withToken(path) {
    if (!token) return path;
    return path + (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token);
  }

  async function api(path, body) {
    const init = { headers: {} };
    if (token) init.headers.Authorization = "Bearer " + token;
    if (body !== undefined) {
      init.method = "POST";
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.error || response.status + " " + response.statusText);
    return data;
  }

  function alertBox(text) {
    const item = el("li", "", text);
    item.title = "click to dismiss";
    item.addEventListener("click", () => item.remove());
    $("alerts").append(item);
    while ($("alerts").children.length > 5) $("alerts").firstElementChild.remove();
  }

  function fail(error) {
    alertBox(error && error.message ? error.message : String(error));
  }

  function when(ts) {
    return ts ? new Date(ts * 1000).toLocaleTimeString() : "";
  }

  // -- refreshes (coalesced) ------------------------------------------------------------------

  function schedule(...what) {
    for (const w of what) state.refresh.add(w);
    if (state.refreshTimer === null) state.refreshTimer = setTimeout(runRefresh, REFRESH_DELAY_MS);
  }

  async function runRefresh() {
    state.refreshTimer = null;
    const what = new Set(state.refresh);
    state.refresh.clear();
    const jobs = [];
    if (what.has("tree")) jobs.push(loadTree());
    if (what.has("permissions")) jobs.push(loadPermissions());
    if (what.has("stats")) jobs.push(loadStats());
    if (what.has("task") && state.selected) jobs.push(loadTaskHead(state.selected));
    await Promise.all(jobs.map((job) => job.catch(fail)));
  }

  // -- stats ------------------------------------------------------------------------------------

  function counts(obj) {
    return Object.entries(obj || {}).map(([k, v]) => k + " " + v).join(" · ") || "none";
  }

  async function loadStats() {
    const stats = await api("/api/stats");
    const box = $("stats");
    box.replaceChildren();
    box.append(el("span", "", "tasks: " + counts(stats.tasks)));
    box.append(el("span", "", "sessions: " + counts(stats.sessions)));
    const rt = stats.runtime;
    if (rt && rt.slots) {
      box.append(el("span", "", `slots ${rt.slots.live}/${rt.slots.max_live} · queue ${rt.slots.queue_depth}`));
      const p50 = rt.swaps.swap_in_p50;
      const swapIn = p50 === null || p50 === undefined ? "" : ` (p50 ${(p50 * 1000).toFixed(0)} ms)`;
      box.append(el("span", "", `swaps in ${rt.swaps.in}${swapIn} · out ${rt.swaps.out}`));
    }
    box.append(el("span", "", "pending permissions: " + stats.permissions.pending));
    box.append(el("span", "", "supervisor: " + (stats.supervisor.status || "not running")));
    return stats;
  }

  // -- task tree ----------------------------------------------------------------------------------

  async function loadTree() {
    const data = await api("/api/tasks");
    state.tasks.clear();
    const tree = $("tree");
    tree.replaceChildren(...data.tasks.map(renderNode));
    $("task-count").textContent = "(" + data.count + ")";
    if (state.pendingSelect && state.tasks.has(state.pendingSelect)) {
      const id = state.pendingSelect;
      state.pendingSelect = null;
      select(id);
    }
  }

  function renderNode(task) {
    state.tasks.set(task.id, task);
    const item = el("li");
    const button = el("button", "node" + (task.id === state.selected ? " selected" : ""));
    button.type = "button";
    button.dataset.task = task.id;
    button.title = task.id;
    button.append(el("span", "title", task.title || task.id));
    button.append(el("span", "badge phase-" + task.phase, task.phase));
    button.append(el("span", "badge session-" + task.session, task.session));
    if (task.pending_permissions) button.append(el("span", "badge perm", "⚠ " + task.pending_permissions));
    button.addEventListener("click", () => select(task.id));
    item.append(button);
    if (task.children.length) {
      const children = el("ul");
      children.append(...task.children.map(renderNode));
      item.append(children);
    }
    return item;
  }

  // -- permissions ---------------------------------------------------------------------------------

  async function loadPermissions() {
    const data = await api("/api/permissions");
    $("perm-count").textContent = data.requests.length ? "(" + data.requests.length + ")" : "";
    $("permissions").replaceChildren(...data.requests.map(renderRequest));
  }

  function renderRequest(request) {
    const item = el("li");
    item.dataset.request = request.id;
    const task = state.tasks.get(request.task);
    item.append(el("div", "meta", (task ? task.title + " · " : "") + request.task));
    item.append(el("div", "", `${request.title || "(untitled tool call)"} [${request.kind}]`));
    const call = request.tool_call || {};
    for (const part of call.content || []) item.append(renderToolContent(part));
    const actions = el("div", "actions");
    const choices = [
      ["Allow", "allow", false],
      ["Always allow", "allow", true],
      ["Reject", "reject", false],
    ];
    for (const [label, decision, always] of choices) {
      const button = el("button", "answer", label);
      button.type = "button";
      button.dataset.decision = decision + (always ? "-always" : "");
      if (request.answer_published) button.disabled = true;
      button.addEventListener("click", async () => {
        for (const b of actions.querySelectorAll("button")) b.disabled = true;
        try {
          await api(
            `/api/tasks/${encodeURIComponent(request.task)}/permissions/${encodeURIComponent(request.id)}`,
            { decision, always },
          );
          item.append(el("div", "meta", "answer sent: " + decision + (always ? " (always)" : "")));
        } catch (error) {
          fail(error);
          for (const b of actions.querySelectorAll("button")) b.disabled = false;
        }
      });
      actions.append(button);
    }
    item.append(actions);
    return item;
  }

  // -- the selected task ------------------------------------------------------------------------------

  async function loadTaskHead(id) {
    const task = await api("/api/tasks/" + encodeURIComponent(id));
    if (id !== state.selected) return;
    $("task-title").textContent = task.title || task.id;
    const bits = [task.id, "phase " + task.phase, "session " + task.session, "profile " + task.profile];
    if (task.inbox) bits.push(`messages ${task.inbox.delivered}/${task.inbox.accepted} delivered`);
    if (task.error) bits.push("error: " + task.error);
    if (task.result !== null && task.result !== undefined) bits.push("result: " + task.result);
    $("task-meta").textContent = bits.join(" · ");
    const ended = ["done", "failed", "cancelled"].includes(task.phase);
    $("cancel-button").hidden = ended;
    $("message-form").hidden = ended;
  }

  function select(id) {
    if (state.selected === id) return;
    state.selected = id;
    for (const node of document.querySelectorAll(".node")) {
      node.classList.toggle("selected", node.dataset.task === id);
    }
    resetView();
    // keep the events part of the cursor; the transcript starts at its tail
    const events = (state.cursor || "").split(",").find((part) => part.startsWith("e:"));
    state.cursor = events || null;
    openStream();
    loadTaskHead(id).catch(fail);
  }

  // -- the one stream of this tab ---------------------------------------------------------------------

  function streamUrl() {
    const query = new URLSearchParams();
    let path = "/api/events";
    if (state.selected) {
      path = `/api/tasks/${encodeURIComponent(state.selected)}/stream`;
      query.set("events", "all");
      query.set("tail", String(TAIL_BYTES));
    } else {
      query.set("tail", "0");
    }
    if (state.cursor) query.set("last_event_id", state.cursor);
    if (token) query.set("token", token);
    return path + "?" + query.toString();
  }

  function setConn(text, cls) {
    const conn = $("conn");
    conn.textContent = text;
    conn.className = "conn " + (cls || "");
  }

  function closeStream() {
    if (state.es) {
      state.es.close();
      state.es = null;
    }
    clearTimeout(state.reopenTimer);
    state.reopenTimer = null;
  }

  function openStream() {
    closeStream();
    if (document.visibilityState === "hidden") return;
    const es = new EventSource(streamUrl());
    state.es = es;
    es.onopen = () => {
      state.reopenFailures = 0;
      setConn("live", "live");
    };
    es.onerror = () => {
      if (es !== state.es) return;
      if (es.readyState === EventSource.CLOSED) {
        // the server refused the stream (or closed it for good): reopen ourselves
        setConn("reconnecting", "down");
        state.reopenFailures += 1;
        if (state.reopenFailures > MAX_REOPEN_FAILURES) {
          state.reopenFailures = 0;
          state.cursor = null;
          resetView();
          schedule("tree", "permissions", "stats", "task");
        }
        state.reopenTimer = setTimeout(openStream, REOPEN_DELAY_MS);
      } else {
        setConn("reconnecting", "down"); // the browser retries with Last-Event-ID
      }
    };
    es.addEventListener("transcript", (ev) => {
      state.cursor = ev.lastEventId || state.cursor;
      const item = JSON.parse(ev.data);
      renderRecord(item.offset, item.record);
      follow();
    });
    es.addEventListener("event", (ev) => {
      state.cursor = ev.lastEventId || state.cursor;
      onEvent(JSON.parse(ev.data).record);
    });
  }

  function onEvent(record) {
    const mine = record.task && record.task === state.selected;
    switch (record.type) {
      case "task.created":
      case "task.phase":
        schedule("tree", "stats");
        if (mine) schedule("task");
        break;
      case "session.phase":
        schedule("tree", "stats");
        if (mine) schedule("task");
        break;
      case "permission":
        schedule("permissions", "tree", "stats");
        break;
      case "message":
        if (mine) schedule("task");
        break;
      case "swap":
        schedule("stats");
        break;
      case "supervisor":
        schedule("tree", "permissions", "stats", "task");
        break;
      case "rejected":
        alertBox("rejected " + (record.file || "") + ": " + (record.reason || ""));
        break;
      case "warning":
        alertBox((record.task ? record.task + ": " : "") + (record.message || "warning"));
        break;
      default:
        break;
    }
  }

  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "hidden") {
      closeStream();
      setConn("paused", "");
    } else {
      openStream(); // resumes from state.cursor: nothing missed, nothing twice
      schedule("tree", "permissions", "stats", "task");
    }
  });

  // -- transcript rendering -------------------------------------------------------------------------------

  function resetView() {
    $("transcript").replaceChildren();
    state.view = {
      tools: new Map(),
      last: null,
      lastKind: null,
      plan: null,
      replayed: 0,
      replayNote: null,
      records: 0,
      follow: true,
    };
    if (!state.selected) {
      $("task-title").textContent = "Select a task";
      $("task-meta").textContent = "";
      $("cancel-button").hidden = true;
      $("message-form").hidden = true;
    }
  }

  function atBottom() {
    const box = $("transcript");
    return box.scrollTop + box.clientHeight >= box.scrollHeight - 40;
  }

  // the view follows new output while the reader is at the bottom; scrolling up stops it
  $("transcript").addEventListener("scroll", () => {
    if (state.view) state.view.follow = atBottom();
  });

  function follow() {
    if (state.view.follow) $("transcript").scrollTop = $("transcript").scrollHeight;
  }

  function append(node, kind) {
    $("transcript").append(node);
    if (kind) {
      state.view.last = node;
      state.view.lastKind = kind;
    }
  }

  function line(text, cls) {
    append(el("div", "line " + (cls || ""), text), "line");
  }

  function frameLine(record) {
    const frame = record.frame || {};
    const arrow = record.dir === "out" ? ">> " : "<< ";
    const what = frame.method || (frame.error ? "error" : "result");
    const node = el("div", "line frame", arrow + what + " " + JSON.stringify(frame).slice(0, 400));
    append(node, null);
  }

  function textOf(content) {
    if (!content) return "";
    if (content.type === "text") return content.text || "";
    if (content.type === "resource_link") return "[link " + (content.uri || "") + "]";
    if (content.type === "resource") return "[resource " + ((content.resource || {}).uri || "") + "]";
    return "[" + content.type + "]";
  }

  function stream(kind, cls, text) {
    // consecutive chunks of one kind grow one block
    const view = state.view;
    if (view.lastKind === kind && view.last) {
      view.last.append(document.createTextNode(text));
      return;
    }
    append(el("div", "block " + cls, text), kind);
  }

  function renderToolContent(part) {
    if (part.type === "diff") {
      const wrap = el("div");
      wrap.append(el("div", "meta", "diff " + (part.path || "")));
      if (part.oldText !== undefined && part.oldText !== null) wrap.append(el("pre", "old", part.oldText));
      wrap.append(el("pre", "new", part.newText || ""));
      return wrap;
    }
    if (part.type === "content") return el("pre", "", textOf(part.content));
    if (part.type === "terminal") return el("div", "meta", "terminal " + (part.terminalId || ""));
    return el("div", "meta", "[" + part.type + "]");
  }

  function renderTool(update) {
    const id = update.toolCallId;
    let card = state.view.tools.get(id);
    if (!card) {
      card = { node: el("div", "block tool"), head: el("div", "head"), status: el("span"), body: el("div") };
      card.node.append(card.head, card.status, card.body);
      card.node.dataset.toolCall = id || "";
      state.view.tools.set(id, card);
      append(card.node, "tool");
    }
    if (update.title || update.kind) {
      card.head.textContent = (update.title || card.title || "tool call") + (update.kind ? " [" + update.kind + "]" : "");
      card.title = update.title || card.title;
    }
    if (update.status) {
      card.status.textContent = update.status;
      card.status.className = "status-" + update.status;
    }
    if (update.content) card.body.replaceChildren(...update.content.map(renderToolContent));
  }

  function renderPlan(entries) {
    const view = state.view;
    if (!view.plan) {
      view.plan = el("div", "block plan");
      append(view.plan, "plan");
    }
    const list = el("ol");
    for (const entry of entries || []) list.append(el("li", entry.status || "", entry.content));
    view.plan.replaceChildren(el("div", "meta", "plan"), list);
  }

  function renderUpdate(update) {
    switch (update.sessionUpdate) {
      case "agent_message_chunk":
        stream("agent", "agent", textOf(update.content));
        break;
      case "agent_thought_chunk":
        stream("thought", "thought", textOf(update.content));
        break;
      case "user_message_chunk":
        break; // the prompt itself is shown from the outgoing session/prompt frame
      case "tool_call":
      case "tool_call_update":
        renderTool(update);
        break;
      case "plan":
        renderPlan(update.entries);
        break;
      case "usage_update":
        break;
      default:
        if (update.sessionUpdate) append(el("div", "line frame", update.sessionUpdate), null);
    }
  }

  function renderPrompt(params) {
    const blocks = (params && params.prompt) || [];
    let from = "";
    const texts = [];
    let attachments = 0;
    blocks.forEach((block, i) => {
      if (block.type !== "text") {
        attachments += 1;
        return;
      }
      let text = block.text || "";
      if (i === 0) {
        const match = /^\[meta-harness message id=(\S+) from=([^\]]*)\]\n?/.exec(text);
        if (match) {
          from = match[2];
          text = text.slice(match[0].length);
        }
      }
      texts.push(text);
    });
    const node = el("div", "block user");
    node.append(el("span", "from", (from || "prompt") + (attachments ? ` (+${attachments} attached)` : "")));
    node.append(document.createTextNode(texts.join("\n")));
    append(node, "user");
  }

  function renderRecord(offset, record) {
    const view = state.view;
    view.records += 1;
    if (record.load) {
      view.replayed += 1; // a session/load replays history the view already shows
      if (!view.replayNote) {
        view.replayNote = el("div", "line");
        append(view.replayNote, "line");
      }
      view.replayNote.textContent = `session restored (${view.replayed} replayed updates hidden)`;
      return;
    }
    view.replayNote = null;
    if (record.dir === "note") {
      const extra = Object.entries(record)
        .filter(([k]) => !["ts", "epoch", "dir", "note"].includes(k))
        .map(([k, v]) => k + "=" + (typeof v === "string" ? v : JSON.stringify(v)))
        .join(" ");
      line(`${when(record.ts)} -- ${record.note} ${extra}`);
      return;
    }
    if ("raw" in record) {
      line("agent printed: " + record.raw, "error");
      return;
    }
    const frame = record.frame;
    if (!frame || typeof frame !== "object") return;
    frameLine(record);
    if (frame.method === "session/update" && frame.params && frame.params.update) {
      renderUpdate(frame.params.update);
    } else if (record.dir === "out" && frame.method === "session/prompt") {
      renderPrompt(frame.params);
    } else if (frame.method === "session/request_permission") {
      const call = (frame.params && frame.params.toolCall) || {};
      line("permission asked: " + (call.title || call.toolCallId || ""));
    } else if (frame.error) {
      line("error: " + (frame.error.message || JSON.stringify(frame.error)), "error");
    } else if (frame.result && typeof frame.result === "object" && "stopReason" in frame.result) {
      line("turn ended: " + frame.result.stopReason);
      view.plan = null;
    }
  }

  // -- forms ----------------------------------------------------------------------------------------------

  function ctrlEnter(textarea, form) {
    textarea.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
        ev.preventDefault();
        form.requestSubmit();
      }
    });
  }

  $("submit-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = { prompt: $("submit-prompt").value };
    if ($("submit-title").value.trim()) body.title = $("submit-title").value.trim();
    if ($("submit-profile").value.trim()) body.profile = $("submit-profile").value.trim();
    $("submit-button").disabled = true;
    try {
      const result = await api("/api/tasks", body);
      $("submit-prompt").value = "";
      state.pendingSelect = result.task;
      schedule("tree");
    } catch (error) {
      fail(error);
    } finally {
      $("submit-button").disabled = false;
    }
  });

  $("message-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!state.selected) return;
    $("message-button").disabled = true;
    try {
      await api(`/api/tasks/${encodeURIComponent(state.selected)}/messages`, { text: $("message-text").value });
      $("message-text").value = "";
    } catch (error) {
      fail(error);
    } finally {
      $("message-button").disabled = false;
    }
  });

  $("cancel-button").addEventListener("click", async () => {
    if (!state.selected) return;
    try {
      await api(`/api/tasks/${encodeURIComponent(state.selected)}/cancel`, {});
    } catch (error) {
      fail(error);
    }
  });

  $("show-frames").addEventListener("change", (ev) => {
    document.body.classList.toggle("frames", ev.target.checked);
  });

  ctrlEnter($("submit-prompt"), $("submit-form"));
  ctrlEnter($("message-text"), $("message-form"));

  // -- start -------------------------------------------------------------------------------------------------

  async function start() {
    resetView();
    try {
      const stats = await loadStats(); // its events cursor first: later changes arrive as events
      state.cursor = stats.events_cursor || null;
      await Promise.all([loadTree(), loadPermissions()]);
    } catch (error) {
      fail(error);
    }
    openStream();
  }

  start();
})();
