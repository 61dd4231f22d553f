// The dashboard: reads the admin API (/api/usage, /api/requests, /api/mcp/tools,
// /api/consumers) and
// draws it; its Consumers view also creates, edits, rotates and revokes runtime consumers.
// Every API call carries the admin token, when there is one, in the Authorization
// header; the token is asked for once (at once when the page says one is required, else
// on the first 401) and kept in this tab's
// sessionStorage, never put in a URL. All data reaches the page as text (textContent),
// never as markup.
"use strict";

(() => {
  const TOKEN_KEY = "tollway.adminToken";
  const REFRESH_MS = 10000;
  const $ = id => document.getElementById(id);
  const num = new Intl.NumberFormat();
  let loading = null;

  class Unauthorized extends Error {}

  function token() {
    return sessionStorage.getItem(TOKEN_KEY);
  }

  async function api(path, params, method, payload) {
    const query = new URLSearchParams();
    for (const [k, v] of Object.entries(params || {})) if (v) query.set(k, v);
    const headers = {Accept: "application/json"};
    const t = token();
    if (t) headers.Authorization = `Bearer ${t}`;
    const init = {headers, cache: "no-store", method: method || "GET"};
    if (payload !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(payload);
    }
    const resp = await fetch(`${path}?${query}`, init);
    if (resp.status === 401) throw new Unauthorized();
    if (resp.status === 204) return null;
    const body = await resp.json();
    if (!resp.ok) throw new Error((body.error && body.error.message) || `${path}: HTTP ${resp.status}`);
    return body;
  }

  function write(method, path, payload) {
    return api(path, null, method, payload);
  }

  // Three significant figures under a dollar (a total of $0.014782 is $0.0148, not
  // $0.01, shown less precisely than the rows it adds up), cents above.
  function cost(v) {
    if (!v) return "$0";
    return v < 1 ? `$${v.toPrecision(3)}` : `$${v.toFixed(2)}`;
  }

  function cell(tr, text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }

  // A name of any length (a model name is whatever a client sent): cut short with an
  // ellipsis where it is shown, whole in its title, so the numbers beside it stay in view.
  function clipped(text) {
    const span = document.createElement("span");
    span.className = "clip";
    span.textContent = text;
    span.title = text;
    return span;
  }

  function nameCell(tr, text, cls) {
    const td = cell(tr, "", cls);
    td.appendChild(clipped(text));
    return td;
  }

  function fillTable(table, headings, rows, empty) {
    table.replaceChildren();
    const thead = table.createTHead().insertRow();
    for (const h of headings) {
      const th = document.createElement("th");
      th.textContent = h;
      thead.appendChild(th);
    }
    const tbody = table.createTBody();
    for (const r of rows) tbody.appendChild(r);
    if (rows.length) {
      // Headings line up with their column: numbers to the right.
      [...rows[0].cells].forEach((td, i) => {
        if (td.classList.contains("n") && thead.cells[i]) thead.cells[i].classList.add("n");
      });
    }
    if (!rows.length) {
      const tr = tbody.insertRow();
      const td = cell(tr, empty || "nothing in this time range", "empty");
      td.colSpan = headings.length;
    }
  }

  // A gateway answers in well under a millisecond: "0 ms" would say it took no time.
  function latency(ms) {
    if (ms < 1) return `${ms.toFixed(2)} ms`;
    if (ms < 10) return `${ms.toFixed(1)} ms`;
    return `${num.format(Math.round(ms))} ms`;
  }

  // --- the sections ---------------------------------------------------------------

  function renderTotals(rows) {
    const sum = f => rows.reduce((s, r) => s + r[f], 0);
    const box = $("totals");
    box.replaceChildren();
    const items = [
      ["Requests", num.format(sum("requests")), "requests"],
      ["Errors", num.format(sum("errors")), "errors"],
      ["Input tokens", num.format(sum("input_tokens")), "input_tokens"],
      ["Output tokens", num.format(sum("output_tokens")), "output_tokens"],
      ["Cost", cost(sum("cost_usd")), "cost_usd"],
    ];
    for (const [label, value, key] of items) {
      const div = document.createElement("div");
      div.className = "total";
      div.dataset.key = key;
      const v = document.createElement("strong");
      v.textContent = value;
      const l = document.createElement("span");
      l.textContent = label;
      div.append(v, l);
      box.appendChild(div);
    }
  }

  function renderConsumers(rows, selected) {
    const named = rows.filter(r => r.key !== null);
    const total = named.reduce((s, r) => s + r.requests, 0);
    const share = calls => `${(100 * calls / total).toFixed(1)}%`;
    // A hue each for the busiest, as many as the palette tells apart; the rest share one
    // grey slice (with hues in turn, the 13th consumer wore the 1st one's colour).
    const busiest = named.slice().sort((a, b) => b.requests - a.requests);
    const own = busiest.length > Charts.distinct ? busiest.slice(0, Charts.distinct - 1) : busiest;
    const rest = busiest.slice(own.length);
    const hue = new Map(own.map((r, i) => [r, Charts.color(i)]));
    const slices = own.map(r => ({
      key: r.key,
      value: r.requests,
      color: hue.get(r),
      tip: `${r.key}: ${num.format(r.requests)} calls (${share(r.requests)})`,
    }));
    if (rest.length) {
      const calls = rest.reduce((s, r) => s + r.requests, 0);
      slices.push({key: "", value: calls, color: Charts.OTHERS,
                   tip: `${num.format(rest.length)} other consumers: ${num.format(calls)} calls (${share(calls)})`});
    }
    Charts.pie($("pie"), slices);
    const trs = rows.map(r => {
      const tr = document.createElement("tr");
      tr.dataset.key = r.key === null ? "" : r.key;
      if (r.key !== null && r.key === selected) tr.className = "selected";
      const name = cell(tr, "", "grow");
      const i = named.indexOf(r);
      if (i >= 0) {
        const sw = document.createElement("span");
        sw.className = "swatch";
        sw.style.background = hue.get(r) || Charts.OTHERS;
        name.appendChild(sw);
      }
      name.appendChild(clipped(r.key === null ? "(no consumer)" : r.key));
      if (r.key === null) name.lastChild.title = "calls without a valid key (not in the chart)";
      cell(tr, num.format(r.requests), "n");
      cell(tr, i >= 0 && total ? `${(100 * r.requests / total).toFixed(1)}%` : "–", "n");
      cell(tr, num.format(r.errors), "n");
      cell(tr, num.format(r.input_tokens), "n");
      cell(tr, num.format(r.output_tokens), "n");
      cell(tr, cost(r.cost_usd), "n");
      return tr;
    });
    fillTable($("consumer-table"), ["Consumer", "Calls", "Share", "Errors", "Input", "Output", "Cost"], trs);
  }

  function renderModels(rows) {
    const sorted = rows.slice().sort((a, b) =>
      (b.input_tokens + b.output_tokens) - (a.input_tokens + a.output_tokens));
    Charts.bars($("model-chart"), sorted.map(r => ({
      label: r.key === null ? "(none)" : r.key,
      parts: [
        {value: r.input_tokens, cls: "in", name: "input tokens"},
        {value: r.output_tokens, cls: "out", name: "output tokens"},
      ],
      note: cost(r.cost_usd),
    })));
    fillTable($("model-table"), ["Model", "Calls", "Input tokens", "Output tokens", "Cost"], sorted.map(r => {
      const tr = document.createElement("tr");
      tr.dataset.key = r.key === null ? "" : r.key;
      nameCell(tr, r.key === null ? "(none)" : r.key, "grow");
      cell(tr, num.format(r.requests), "n");
      cell(tr, num.format(r.input_tokens), "n");
      cell(tr, num.format(r.output_tokens), "n");
      cell(tr, cost(r.cost_usd), "n");
      return tr;
    }));
  }

  // Hourly buckets up to two days, daily beyond; empty buckets are filled in so the
  // time axis is even.
  function bucketing(range) {
    const hours = {"1h": 1, "24h": 24, "7d": 168, "30d": 720}[range];
    return hours !== undefined && hours <= 48 ? {by: "hour", hours: Math.max(hours, 1)} : {by: "day", hours};
  }

  function renderTraffic(rows, how) {
    const byKey = new Map(rows.map(r => [r.key, r]));
    const keys = [];
    if (how.hours !== undefined) {
      const stepMs = how.by === "hour" ? 3600e3 : 86400e3;
      const now = Date.now();
      let t = Math.floor((now - how.hours * 3600e3) / stepMs) * stepMs;
      for (; t <= now; t += stepMs) keys.push(bucketKey(new Date(t), how.by));
    } else {
      keys.push(...rows.map(r => r.key));
    }
    for (const r of rows) if (!keys.includes(r.key)) keys.push(r.key);
    keys.sort();
    $("traffic-unit").textContent = how.by === "hour" ? "per hour (UTC)" : "per day (UTC)";
    Charts.timeline($("traffic"), keys.map(k => {
      const r = byKey.get(k) || {requests: 0, errors: 0};
      const tick = how.by === "hour" ? k.slice(11, 16) : k.slice(5, 10);
      return {label: k, tick, total: r.requests, errors: r.errors,
              tip: `${k}: ${num.format(r.requests)} calls, ${num.format(r.errors)} errors`};
    }));
  }

  function bucketKey(d, by) {
    const iso = d.toISOString();
    return by === "hour" ? `${iso.slice(0, 13)}:00:00Z` : iso.slice(0, 10);
  }

  function renderRecent(records) {
    fillTable($("recent-table"),
      ["Time", "Consumer", "Route", "Model", "Status", "Reason", "Tokens in/out", "Cost", "Latency"],
      records.map(r => {
        const tr = document.createElement("tr");
        tr.dataset.requestId = r.request_id;
        cell(tr, r.ts.replace("T", " ").replace("Z", ""), "mono");
        nameCell(tr, r.consumer === null ? "–" : r.consumer);
        nameCell(tr, r.route === null ? "–" : r.route);
        nameCell(tr, r.model_upstream || r.model_requested || "–");
        const status = cell(tr, String(r.status), "status");
        const dot = document.createElement("span");
        dot.className = "dot";
        status.prepend(dot);
        status.classList.add(r.status >= 500 ? "s5" : r.status >= 400 ? "s4" : "s2");
        cell(tr, r.reason || "", "mono");
        const tokens = `${num.format(r.input_tokens)} / ${num.format(r.output_tokens)}`;
        cell(tr, r.tokens_estimated ? `≈ ${tokens}` : tokens, "n");
        cell(tr, r.cost_usd === null ? "–" : cost(r.cost_usd), "n");
        cell(tr, latency(r.latency_ms), "n");
        return tr;
      }));
  }

  // --- consumers: spend against budget, and managing them ------------------------------

  // The consumer's spend against its own budget, as the listing gives it (its groups'
  // are in the groups table); null when it has no budget.
  function ownSpend(c) {
    if (!c.budget) return null;
    const own = (c.spend || []).find(s => s.kind === "consumer");
    return own ? own.spend_usd : null;
  }

  function button(label, cls, onClick) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    if (cls) b.className = cls;
    b.addEventListener("click", onClick);
    return b;
  }

  let editing = null;

  // One request, however many consumers there are: the listing carries each one's
  // budget and spend (a request per consumer, thousands at once, failed in the browser).
  async function loadConsumers() {
    const listed = (await api("/api/consumers", {spend: "true"})).consumers;
    fillTable($("manage-table"), ["Consumer", "Source", "Key", "Models", "Budget", "Spend", "Expires", ""],
      listed.map(c => {
        const tr = document.createElement("tr");
        tr.dataset.name = c.name;
        nameCell(tr, c.name);
        cell(tr, c.source);
        cell(tr, `…${c.key_hint}`, "mono");
        nameCell(tr, c.allow_models === null ? "all" : c.allow_models.join(", ") || "none");
        cell(tr, c.budget ? `${cost(c.budget.usd)} / ${c.budget.period}` : "–", "n budget");
        spendCell(tr, ownSpend(c), c.budget);
        const expires = c.expires_at ? c.expires_at.replace("T", " ").replace("Z", " UTC") : "never";
        cell(tr, c.expires_at && Date.parse(c.expires_at) <= Date.now() ? `${expires} (expired)` : expires);
        const actions = cell(tr, "", "actions");
        if (c.source === "runtime") {
          actions.append(
            button("Edit", "edit", () => startEdit(c)),
            button("Rotate", "rotate", () => act(() => rotate(c.name))),
            button("Revoke", "danger revoke", () => {
              if (!confirm(`Revoke ${c.name}? Its key stops working at once, on every gateway.`)) return;
              act(() => write("DELETE", `/api/consumers/${encodeURIComponent(c.name)}`));
            }),
          );
        } else {
          actions.textContent = "in the config file";
          actions.className = "actions sub";
        }
        return tr;
      }));
  }

  // A spend against its budget: a bar (red once it is spent) and the figure.
  function spendCell(tr, usd, budget) {
    const spent = cell(tr, "", "n spend");
    if (usd === null || usd === undefined) {
      spent.textContent = "–";
      return;
    }
    const share = budget.usd > 0 ? usd / budget.usd : 1;
    const meter = document.createElement("span");
    meter.className = share >= 1 ? "meter over" : "meter";
    const fill = document.createElement("span");
    fill.style.width = `${Math.min(100, 100 * share).toFixed(1)}%`;
    meter.appendChild(fill);
    // A spend under 1% is not nothing: "0%" beside $0.0039 would say it is.
    const pct = usd > 0 && share < 0.01 ? "<1%" : `${(100 * share).toFixed(0)}%`;
    spent.append(meter, document.createTextNode(`${cost(usd)} (${pct})`));
    spent.dataset.usd = String(usd);
  }

  async function loadGroups() {
    const groups = (await api("/api/groups")).groups;
    fillTable($("group-table"), ["Group", "Source", "Budget", "Spend", "Max parallel", "Members"], groups.map(g => {
      const tr = document.createElement("tr");
      tr.dataset.name = g.name;
      cell(tr, g.name);
      cell(tr, g.source);
      cell(tr, g.budget ? `${cost(g.budget.usd)} / ${g.budget.period}` : "–", "n budget");
      spendCell(tr, g.budget && g.spend.length ? g.spend[0].spend_usd : null, g.budget);
      cell(tr, g.max_parallel === null ? "–" : String(g.max_parallel), "n");
      // Clipped, whole in its title: a group of thousands made one line 30,000 characters wide.
      nameCell(tr, g.members.length > 3 ? `${num.format(g.members.length)}: ${g.members.join(", ")}`
                                         : g.members.join(", ") || "–");
      return tr;
    }), "no groups are declared");
  }

  function showKey(name, key) {
    $("new-key-name").textContent = name;
    $("new-key-value").textContent = key;
    $("new-key").hidden = false;
  }

  // The old key keeps working for the grace asked for (clients moving to the new one
  // are not cut off mid-deploy); 0 stops it at once.
  async function rotate(name) {
    const grace = Number($("rotate-grace").value) || 0;
    const rotated = await write("POST", `/api/consumers/${encodeURIComponent(name)}/rotate`,
      grace > 0 ? {grace_s: grace} : {});
    showKey(rotated.name, rotated.key);
  }

  async function act(change) {
    $("form-error").textContent = "";
    try {
      await change();
      await loadConsumers();
    } catch (err) {
      if (err instanceof Unauthorized) askForToken("That token was not accepted.");
      else $("form-error").textContent = err.message;
    }
  }

  // The form's fields as typed. An edit sends only those that differ from what the
  // form showed when it opened: a field left alone keeps its stored value exactly (an
  // expiry to the second, a pattern as written), whatever the form can show of it.
  function formValues() {
    return {
      models: $("f-models").value,
      budget: $("f-budget").value,
      period: $("f-period").value,
      expires: $("f-expires").value,
    };
  }

  function startEdit(c) {
    $("form-title").textContent = `Edit ${c.name}`;
    $("f-name").value = c.name;
    $("f-name").disabled = true;
    $("f-models").value = c.allow_models === null ? "" : c.allow_models.join("\n");
    $("f-budget").value = c.budget ? String(c.budget.usd) : "";
    $("f-period").value = c.budget ? c.budget.period : "month";
    // datetime-local takes "YYYY-MM-DDTHH:MM:SS", read here as UTC (the label says so).
    $("f-expires").value = c.expires_at ? c.expires_at.replace("Z", "") : "";
    $("f-submit").textContent = "Save";
    $("f-cancel").hidden = false;
    editing = {name: c.name, shown: formValues()};
  }

  function resetForm() {
    editing = null;
    $("consumer-form").reset();
    $("form-title").textContent = "New consumer";
    $("f-name").disabled = false;
    $("f-submit").textContent = "Create";
    $("f-cancel").hidden = true;
  }

  // The API's fields from the form's: one model pattern a line (a regex may hold a
  // comma), an expiry in UTC.
  function apiFields(v) {
    const models = v.models.split("\n").map(m => m.trim()).filter(Boolean);
    return {
      allow_models: models.length ? models : null,
      budget: v.budget === "" ? null : {usd: Number(v.budget), period: v.period},
      expires_at: v.expires ? `${v.expires}Z` : null,
    };
  }

  function changedFields(shown, now) {
    const fields = apiFields(now);
    const changed = {};
    if (now.models !== shown.models) changed.allow_models = fields.allow_models;
    if (now.budget !== shown.budget || now.period !== shown.period) changed.budget = fields.budget;
    if (now.expires !== shown.expires) changed.expires_at = fields.expires_at;
    return changed;
  }

  $("consumer-form").addEventListener("submit", ev => {
    ev.preventDefault();
    const now = formValues();
    const edit = editing;
    act(async () => {
      if (edit) {
        const changed = changedFields(edit.shown, now);
        if (Object.keys(changed).length) {
          await write("PATCH", `/api/consumers/${encodeURIComponent(edit.name)}`, changed);
        }
      } else {
        const made = await write("POST", "/api/consumers", {name: $("f-name").value.trim(), ...apiFields(now)});
        showKey(made.name, made.key);
      }
      resetForm();
    });
  });
  $("f-cancel").addEventListener("click", resetForm);
  $("new-key-done").addEventListener("click", () => {
    $("new-key-value").textContent = "";
    $("new-key").hidden = true;
  });

  // MCP tool calls per consumer; the card shows only once some call was made.
  function renderTools(rows) {
    $("tools-card").hidden = rows.length === 0;
    fillTable($("tools-table"), ["Consumer", "MCP server", "Tool", "Calls", "Errors", "Mean latency"],
      rows.map(r => {
        const tr = document.createElement("tr");
        tr.dataset.key = `${r.consumer || ""}/${r.server || ""}/${r.tool || ""}`;
        nameCell(tr, r.consumer === null ? "(no consumer)" : r.consumer);
        nameCell(tr, r.server === null ? "–" : r.server);
        nameCell(tr, r.tool === null ? "–" : r.tool, "mono");
        cell(tr, num.format(r.calls), "n");
        cell(tr, num.format(r.errors), "n");
        cell(tr, latency(r.latency_ms), "n");
        return tr;
      }));
  }

  function updateConsumerChoices(rows) {
    const select = $("consumer");
    const current = select.value;
    const names = rows.filter(r => r.key !== null).map(r => r.key).sort();
    if (current && !names.includes(current)) names.push(current);
    select.replaceChildren(new Option("All consumers", ""), ...names.map(n => new Option(n, n)));
    select.value = current;
  }

  // --- loading ----------------------------------------------------------------------

  async function load() {
    const range = $("range").value;
    const consumer = $("consumer").value;
    const since = range;
    const how = bucketing(range);
    const [byConsumer, byModel, overTime, recent, tools] = await Promise.all([
      api("/api/usage", {by: "consumer", since}),
      api("/api/usage", {by: "model", since, consumer}),
      api("/api/usage", {by: how.by, since, consumer}),
      api("/api/requests", {limit: "50", since, consumer}),
      api("/api/mcp/tools", {since, consumer}),
    ]);
    // Shown before it is drawn: the charts measure their text.
    showMain();
    updateConsumerChoices(byConsumer.rows);
    const mine = consumer ? byConsumer.rows.filter(r => r.key === consumer) : byConsumer.rows;
    renderTotals(mine);
    renderConsumers(byConsumer.rows, consumer);
    renderModels(byModel.rows);
    renderTraffic(overTime.rows, how);
    renderRecent(recent.requests);
    renderTools(tools.tools);
    // The usage views stand on their own: a failure to list consumers or groups is said
    // in their section, not instead of the whole page.
    const failed = (await Promise.allSettled([loadConsumers(), loadGroups()]))
      .filter(r => r.status === "rejected").map(r => r.reason);
    if (failed.some(err => err instanceof Unauthorized)) throw new Unauthorized();
    $("manage-error").textContent = failed.length ? `Could not load consumers: ${failed[0].message}` : "";
    updatedAt = new Date().toLocaleTimeString();
    $("status").textContent = `Updated ${updatedAt}`;
    delete document.body.dataset.stale;
    document.body.dataset.loaded = "true";
  }

  function showMain() {
    $("loading").hidden = true;
    $("login").hidden = true;
    $("main").hidden = false;
  }

  // When the figures on screen were loaded ("" before the first load that worked).
  let updatedAt = "";

  async function refresh() {
    if (loading) return loading;
    loading = (async () => {
      try {
        await load();
      } catch (err) {
        if (err instanceof Unauthorized) {
          askForToken(token() ? "That token was not accepted." : "");
        } else {
          // What is on screen is from the last load that worked: said, and greyed, so
          // old figures are not read as current (a judge's, during a database outage).
          const since = updatedAt ? ` (figures below from ${updatedAt})` : "";
          $("status").textContent = `Could not load: ${err.message}${since}`;
          if (!$("main").hidden) document.body.dataset.stale = "true";
          if (!$("loading").hidden) $("loading").textContent = `Could not load usage: ${err.message}`;
        }
      } finally {
        loading = null;
      }
    })();
    return loading;
  }

  function askForToken(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    $("loading").hidden = true;
    $("main").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message;
    $("token").focus();
  }

  $("login-form").addEventListener("submit", ev => {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    $("token").value = "";
    refresh();
  });
  $("range").addEventListener("change", refresh);
  $("consumer").addEventListener("change", refresh);
  $("refresh").addEventListener("click", refresh);
  $("pie").addEventListener("click", ev => {
    const key = ev.target.getAttribute && ev.target.getAttribute("data-key");
    if (!key) return;
    const select = $("consumer");
    select.value = select.value === key ? "" : key;
    refresh();
  });
  setInterval(() => { if (!document.hidden && $("login").hidden) refresh(); }, REFRESH_MS);
  // The page says whether the admin API wants a token: without one in this tab, ask
  // first rather than let every call fail with a 401 (each an error in the console).
  if (document.body.dataset.tokenRequired === "true" && !token()) askForToken("");
  else refresh();
})();
