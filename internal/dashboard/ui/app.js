// tend dashboard: plain JavaScript, no build step, no third-party code.
// Every value from the API reaches the page through textContent, never as
// HTML.
"use strict";

const csrf = document.querySelector('meta[name="tend-csrf"]').content;
const main = document.getElementById("main");
let refresh = null; // reloads the current view's data on a live update
let pending = null;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

// fill replaces parent's children; arrays (of arrays) and nulls allowed.
function fill(parent, ...children) {
  parent.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
}

function badge(state) {
  return el("span", { class: "badge s-" + String(state).replace(/[^A-Za-z]/g, ""), text: state });
}

function ago(t) {
  if (!t) return "never";
  const s = Math.max(0, (Date.now() - new Date(t).getTime()) / 1000);
  if (s < 60) return Math.round(s) + "s ago";
  if (s < 3600) return Math.round(s / 60) + "m ago";
  if (s < 86400) return Math.round(s / 3600) + "h ago";
  return Math.round(s / 86400) + "d ago";
}

function isCommit(r) { return /^[0-9a-f]{40}$/.test(r || ""); }

function shortRev(r) {
  return isCommit(r) ? r.slice(0, 12) : r || "";
}

function toast(msg) {
  const t = document.getElementById("toast");
  t.textContent = msg;
  t.classList.add("show");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => t.classList.remove("show"), 4000);
}

async function api(path, opts) {
  const res = await fetch(path, Object.assign({ credentials: "same-origin" }, opts || {}));
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.error || res.status + " " + res.statusText);
  return body;
}

function post(path) {
  return api(path, { method: "POST", headers: { "X-Tend-CSRF": csrf } });
}

function parseHash() {
  const h = location.hash.replace(/^#/, "") || "/";
  const [path, query] = h.split("?");
  return { parts: path.split("/").filter(Boolean).map(decodeURIComponent), params: new URLSearchParams(query || "") };
}

function setNav(section) {
  for (const a of document.querySelectorAll("[data-nav]")) {
    if (a.dataset.nav === section) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

function showError(where, err) {
  where.replaceChildren(el("p", { class: "error", role: "alert", text: String(err.message || err) }));
}

// ---- App list -------------------------------------------------------

function appListView(params) {
  setNav("apps");
  document.title = "Apps · tend";
  const state = Object.fromEntries(params.entries());
  const go = (changes) => {
    const next = Object.assign({}, state, changes);
    if (!("page" in changes)) next.page = "1";
    const q = new URLSearchParams(Object.entries(next).filter(([, v]) => v !== "" && v !== undefined));
    location.hash = "#/?" + q.toString();
  };
  const search = el("input", { type: "search", id: "q", value: state.q || "", placeholder: "name or namespace", "aria-label": "Search Apps" });
  let timer;
  search.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(() => go({ q: search.value }), 250); });
  const nsSelect = el("select", { id: "namespace", "aria-label": "Namespace", onchange: (e) => go({ namespace: e.target.value }) });
  const label = el("input", { type: "text", id: "label", value: state.label || "", placeholder: "team=web", "aria-label": "Label selector" });
  label.addEventListener("change", () => go({ label: label.value }));
  const counts = el("ul", { class: "counts", "aria-label": "Summary" });
  const table = el("div");
  const pager = el("div", { class: "pager" });
  main.replaceChildren(
    el("h1", { text: "Apps" }),
    counts,
    el("div", { class: "filters", role: "search" },
      el("label", { for: "q" }, "Search", search),
      el("label", { for: "namespace" }, "Namespace", nsSelect),
      el("label", { for: "label" }, "Labels", label)),
    table, pager);

  const sortHeader = (key, text) => el("th", { scope: "col", "aria-sort": state.sort === key ? "ascending" : null },
    el("button", { type: "button", onclick: () => go({ sort: key }), text }));

  async function load() {
    const q = new URLSearchParams(Object.entries(state).filter(([k, v]) => v && k !== "pageSize"));
    q.set("pageSize", "50");
    let data;
    try { data = await api("/api/v1/apps?" + q.toString()); } catch (e) { showError(table, e); return; }
    nsSelect.replaceChildren(el("option", { value: "", text: "all namespaces" }),
      ...(data.namespaces || []).map((n) => el("option", { value: n, selected: n === state.namespace, text: n })));
    const countButtons = (field, title) => [el("li", { class: "group", text: title }),
      Object.entries(data.counts[field]).sort().map(([k, n]) => el("li", {}, el("button", {
        type: "button", "aria-pressed": state[field] === k ? "true" : "false", "aria-label": title + " " + k + ": " + n + " Apps",
        onclick: () => go({ sync: "", health: "", [field]: state[field] === k ? "" : k }) }, badge(k), " ", String(n))))];
    fill(counts, countButtons("sync", "Sync"), countButtons("health", "Health"));
    const rows = data.items.map((a) => el("tr", {},
      el("td", { "data-label": "App" }, el("a", { href: "#/apps/" + encodeURIComponent(a.namespace) + "/" + encodeURIComponent(a.name), text: a.name }),
        el("div", { class: "kind", text: a.namespace })),
      el("td", { "data-label": "Sync" }, badge(a.suspended ? "Suspended" : a.sync)),
      el("td", { "data-label": "Health" }, badge(a.health)),
      el("td", { "data-label": "Revision" }, el("code", { text: shortRev(a.revision) }), el("div", { class: "kind", text: a.subject || "" })),
      el("td", { "data-label": "Last sync" }, a.lastSync ? ago(a.lastSync) + " · " + a.result : "never"),
      el("td", { "data-label": "Origin", text: a.origin }),
      el("td", { "data-label": "Depends on", text: (a.dependsOn || []).join(", ") }),
      el("td", { class: "msg", "data-label": "Message", text: a.message || "" })));
    table.replaceChildren(el("table", { class: "apps" },
      el("caption", { class: "muted", text: data.total + " Apps" }),
      el("thead", {}, el("tr", {}, sortHeader("name", "App"), sortHeader("sync", "Sync"), sortHeader("health", "Health"),
        el("th", { scope: "col", text: "Revision" }), sortHeader("lastSync", "Last sync"), el("th", { scope: "col", text: "Origin" }),
        el("th", { scope: "col", text: "Depends on" }), el("th", { scope: "col", text: "Message" }))),
      el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: "8", text: "No App matches." })))));
    const pages = Math.max(1, Math.ceil(data.total / data.pageSize));
    pager.replaceChildren(
      el("button", { type: "button", class: "act secondary", disabled: data.page <= 1, onclick: () => go({ page: String(data.page - 1) }), text: "Previous" }),
      el("span", { text: "page " + data.page + " of " + pages }),
      el("button", { type: "button", class: "act secondary", disabled: data.page >= pages, onclick: () => go({ page: String(data.page + 1) }), text: "Next" }));
  }
  refresh = load;
  return load();
}

// ---- App page -------------------------------------------------------

function treeList(nodes, top) {
  return el("ul", { role: top ? "tree" : "group", "aria-label": top ? "Resources" : null }, nodes.map((n) => el("li", { role: "treeitem" },
    el("span", { class: "kind", text: (n.group ? n.group + "/" : "") + n.kind + " " }),
    el("strong", { text: (n.namespace ? n.namespace + "/" : "") + n.name }), " ", badge(n.health),
    n.outOfSync ? treeDiffLink(n) : null,
    n.message && n.health !== "Healthy" ? el("div", { class: "kind", text: n.message }) : null,
    n.children && n.children.length ? treeList(n.children) : null)));
}

function appView(ns, name) {
  setNav("apps");
  document.title = name + " · tend";
  const base = "/api/v1/apps/" + encodeURIComponent(ns) + "/" + encodeURIComponent(name);
  const head = el("div");
  const tree = el("div");
  const hooks = el("div");
  main.replaceChildren(el("p", {}, el("a", { href: "#/", text: "← Apps" })), head, el("h2", { text: "Resources" }), tree, hooks);

  async function act(action, query) {
    const what = action.split("?")[0];
    try {
      await post(base + "/" + action + (query ? "?" + query : ""));
      toast(what + " requested for " + ns + "/" + name);
    } catch (e) { toast(what + " refused: " + e.message); }
  }
  function rollback(h) {
    if (!window.confirm("Pin " + name + " to " + shortRev(h.revision) + " (sync " + h.id + ")? New commits will not reach it until you unpin it.")) return;
    act("rollback", "id=" + h.id);
  }

  async function load() {
    let a, t;
    try { [a, t] = await Promise.all([api(base), api(base + "/tree")]); } catch (e) { showError(head, e); return; }
    const facts = [["Namespace", a.namespace], ["Source", a.source], ["Path", a.path], ["Destination", a.destination],
      ["Project", a.project], ["Revision", shortRev(a.revision) + (a.subject ? " · " + a.subject : "")],
      ["Attempted", a.attempted && a.attempted !== a.revision ? shortRev(a.attempted) : ""],
      ["Pinned to", a.pinned ? shortRev(a.pinned) + " (rolled back: new commits wait until you unpin)" : ""], ["Objects", String(a.objects)],
      ["Origin", a.origin], ["Depends on", (a.dependsOn || []).join(", ")]].filter(([, v]) => v);
    fill(head,
      el("h1", {}, name, " ", badge(a.suspended ? "Suspended" : a.sync), " ", badge(a.health)),
      a.canAct ? el("div", { class: "actions" },
        el("button", { type: "button", class: "act", id: "sync", onclick: () => act("sync"), disabled: a.suspended, text: "Sync" }),
        el("button", { type: "button", class: "act secondary", id: "refresh", onclick: () => act("refresh"), text: "Refresh" }),
        a.suspended
          ? el("button", { type: "button", class: "act secondary", id: "resume", onclick: () => act("resume"), text: "Resume" })
          : el("button", { type: "button", class: "act secondary", id: "suspend", onclick: () => act("suspend"), text: "Suspend" }),
        a.pinned ? el("button", { type: "button", class: "act secondary", id: "unpin", onclick: () => act("unpin"), text: "Unpin" }) : null,
        diffLink(ns, name))
        : el("div", { class: "actions" },
          el("p", { class: "muted", id: "read-only", text: "You may look at this App but not act on it (that needs the operator role in namespace " + ns + ")." }),
          diffLink(ns, name)),
      el("dl", { class: "facts" }, facts.map(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })])),
      el("h2", { text: "Conditions" }),
      a.conditions.length ? a.conditions.map((c) => el("div", { class: "cond " + (c.status === "True" && c.type !== "Stalled" ? "ok" : c.type === "Reconciling" ? "" : "bad") },
        el("strong", { text: c.type }), " ", badge(c.status), " ", el("span", { class: "kind", text: c.reason + " · " + ago(c.since) }),
        el("div", { text: c.message }),
        c.advice ? el("div", { class: "advice", text: "What to do: " + c.advice }) : null)) : el("p", { class: "muted", text: "No conditions yet." }),
      a.outOfSync && a.outOfSync.length ? [el("h2", { text: "Out of sync" }), el("ul", {}, a.outOfSync.map((o) => el("li", { text: o })))] : null,
      el("h2", { text: "History" }),
      el("table", {}, el("thead", {}, el("tr", {}, ["#", "Revision", "Started", "Duration", "Result", "Changed", "Message", ""].map((h) => el("th", { scope: "col", text: h })))),
        el("tbody", {}, a.history.length ? a.history.map((h) => el("tr", {},
          el("td", { text: String(h.id) }), el("td", {}, el("code", { text: shortRev(h.revision) })), el("td", { text: ago(h.started) }),
          el("td", { text: h.duration }), el("td", {}, badge(h.result)), el("td", { text: String(h.changed) }),
          el("td", { class: "msg", text: h.message || "" }),
          el("td", {}, a.canAct && isCommit(h.revision) && h.revision !== (a.pinned || a.revision)
            ? el("button", { type: "button", class: "act secondary", "aria-label": "Roll back to sync " + h.id, onclick: () => rollback(h), text: "Roll back" }) : null))) : el("tr", {}, el("td", { colspan: "8", text: "No sync yet." })))),
      el("h2", { text: "Events" }),
      a.events.length ? el("table", {}, el("tbody", {}, a.events.map((e) => el("tr", {},
        el("td", {}, badge(e.type)), el("td", { text: e.reason }),
        el("td", { class: "msg", text: e.message }), el("td", { text: ago(e.last) }))))) : el("p", { class: "muted", text: "No events." }));
    tree.replaceChildren(t.nodes.length ? el("div", { class: "tree" }, treeList(t.nodes, true)) : el("p", { class: "muted", text: "Nothing applied yet." }));
    await loadHookRuns(hooks, base);
  }
  refresh = load;
  return load();
}

// ---- Other lists ----------------------------------------------------

function simpleList(section, title, columns) {
  setNav(section);
  document.title = title + " · tend";
  const body = el("div");
  main.replaceChildren(el("h1", { text: title }), body);
  async function load() {
    let data;
    try { data = await api("/api/v1/" + section); } catch (e) { showError(body, e); return; }
    body.replaceChildren(el("table", {},
      el("thead", {}, el("tr", {}, columns.map(([h]) => el("th", { scope: "col", text: h })))),
      el("tbody", {}, data.items.length ? data.items.map((it) => el("tr", {}, columns.map(([, f]) => {
        const v = f(it);
        return el("td", {}, v instanceof Node ? v : String(v ?? ""));
      }))) : el("tr", {}, el("td", { colspan: String(columns.length), text: "None." })))));
  }
  refresh = load;
  return load();
}

const lists = {
  sources: ["Sources", [["Source", (s) => s.namespace + "/" + s.name], ["Type", (s) => s.type], ["URL", (s) => s.url],
    ["Revision", (s) => shortRev(s.revision) + (s.subject ? " · " + s.subject : "")], ["Fetched", (s) => ago(s.fetchedAt)],
    ["Ready", (s) => badge(s.ready)], ["Message", (s) => s.message]]],
  appsets: ["AppSets", [["AppSet", (s) => s.namespace + "/" + s.name], ["Apps", (s) => s.apps.join(", ")],
    ["Orphaned", (s) => (s.orphaned || []).join(", ")], ["Ready", (s) => badge(s.ready)], ["Message", (s) => s.message]]],
  notifiers: ["Notifiers", [["Notifier", (n) => n.namespace + "/" + n.name], ["Provider", (n) => n.provider], ["Sent", (n) => n.sent],
    ["Failed", (n) => n.failed], ["Last sent", (n) => ago(n.lastSent)], ["Last failure", (n) => n.lastFailure ? ago(n.lastFailure) + " · " + (n.lastError || "") : "none"],
    ["Ready", (n) => badge(n.ready)]]],
  clusters: ["Clusters", [["Cluster", (c) => c.namespace + "/" + c.name], ["Kubernetes", (c) => c.kubeVersion],
    ["Ready", (c) => badge(c.ready)], ["Message", (c) => c.message]]],
  stages: ["Stages", [["Stage", (s) => s.namespace + "/" + s.name], ["Warehouse", (s) => s.warehouse], ["From", (s) => s.from],
    ["Freight", (s) => s.versions ? s.versions + " · " + s.freight : "none"],
    ["Promoted", (s) => s.promotedAt ? ago(s.promotedAt) + (s.by ? " · " + s.by : "") : ""],
    ["State", (s) => s.pullRequest ? el("a", { href: s.pullRequest, rel: "noopener noreferrer", target: "_blank" }, badge(s.state)) : badge(s.state)],
    ["Ready", (s) => badge(s.waiting || s.ready)], ["Message", (s) => s.message], ["", stageActions]]],
};

// stageActions are the buttons of a Stage with approval: approve what it
// waits for, roll back to the freight it ran before.
function stageActions(s) {
  if (!s.approval) return "";
  const act = (action, label, question) => el("button", {
    class: "act" + (action === "rollback" ? " secondary" : ""), type: "button", "aria-label": label + " " + s.name, text: label,
    onclick: async () => {
      if (!confirm(question)) return;
      try {
        const r = await post("/api/v1/stages/" + encodeURIComponent(s.namespace) + "/" + encodeURIComponent(s.name) + "/" + action);
        toast((action === "approve" ? "approved" : "rolling back to") + " freight " + r.freight + " (" + r.versions + ") for " + s.name);
        reload();
      } catch (e) { toast(e.message); }
    },
  });
  return el("span", { class: "actions" },
    s.waiting === "WaitingForApproval" ? act("approve", "Approve", "Promote to " + s.name + " the freight it waits for?") : null,
    s.freight ? act("rollback", "Roll back", "Roll " + s.name + " back to the freight it ran before?") : null);
}

// ---- Routing and live updates -----------------------------------------

function route() {
  const { parts, params } = parseHash();
  // A filter typed into the App list re-renders it: keep the focus and
  // the caret where they were.
  const focused = document.activeElement && document.activeElement.id;
  const caret = focused && document.activeElement.selectionStart;
  if (parts[0] === "apps" && parts.length === 3) appView(parts[1], parts[2]);
  else if (parts[0] === "apps" && parts.length === 4 && parts[3] === "diff") diffView(parts[1], parts[2], params);
  else if (lists[parts[0]]) simpleList(parts[0], ...lists[parts[0]]);
  else appListView(params);
  const again = focused && document.getElementById(focused);
  if (again) {
    again.focus();
    if (typeof caret === "number" && again.setSelectionRange) again.setSelectionRange(caret, caret);
  }
}

// reload runs the current view's load, one at a time: a change during a
// load runs it once more afterwards.
let loading = false, again = false;
async function reload() {
  if (!refresh) return;
  if (loading) { again = true; return; }
  loading = true;
  try { await refresh(); } finally {
    loading = false;
    if (again) { again = false; reload(); }
  }
}

function connect() {
  const live = document.getElementById("live");
  const es = new EventSource("/api/v1/events");
  es.addEventListener("open", () => { live.textContent = "live"; });
  es.addEventListener("error", () => { live.textContent = "reconnecting…"; });
  es.addEventListener("change", (e) => {
    let c = {};
    try { c = JSON.parse(e.data); } catch (_) { return; }
    // An App's page changes with that App only (its tree reads the
    // cluster); lists change with their kind (Apps also with Sources,
    // whose commit subjects they show).
    const { parts } = parseHash();
    const view = parts[0] === "apps" && parts.length === 3 ? "app" : parts[0] || "apps";
    const wanted = view === "app" ? c.kind === "App" && c.namespace === parts[1] && c.name === parts[2]
      : view === "apps" ? c.kind === "App" || c.kind === "Source"
      : c.kind.toLowerCase() + "s" === view;
    if (!wanted || pending) return;
    pending = setTimeout(() => { pending = null; reload(); }, 300);
  });
}

// who shows the signed-in user and a sign-out button (the controller's
// dashboard; `tend dashboard` has no sign-in).
async function who() {
  let me;
  try { me = await api("/api/v1/me"); } catch (_) { return; }
  if (me.local) return;
  const form = el("form", { method: "post", action: "/auth/logout", class: "signout" },
    el("input", { type: "hidden", name: "csrf", value: csrf }),
    el("button", { type: "submit", class: "act secondary", id: "sign-out", text: "Sign out" }));
  const title = me.admin ? "signed in with the admin token" : "groups: " + ((me.groups || []).join(", ") || "none");
  document.querySelector("header.top").append(el("span", { class: "user", id: "user", title, text: me.name }), form);
}

window.addEventListener("hashchange", route);
route();
connect();
who();
