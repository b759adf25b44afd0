// tend dashboard: an App's Diff view, what a sync would change object by
// object (GET /api/v1/apps/NS/NAME/diff, the engine's server-side apply
// dry run, as `tend diff APP`), and the links to it from the App page.
// Loaded before app.js, whose helpers (el, fill, badge, api, main, setNav,
// showError, shortRev, parseHash, refresh) it uses once the page runs.
// Secret values never reach the page: the server sends masks in their place.
"use strict";

function appHref(ns, name) {
  return "#/apps/" + encodeURIComponent(ns) + "/" + encodeURIComponent(name);
}

function diffHref(ns, name, key) {
  return appHref(ns, name) + "/diff" + (key ? "?object=" + encodeURIComponent(key) : "");
}

function objectTitle(o) {
  return (o.group ? o.group + "/" : "") + o.kind + " " + (o.namespace ? o.namespace + "/" : "") + o.name;
}

// diffLink is the App page's way to its Diff view.
function diffLink(ns, name) {
  return el("a", { class: "act secondary", href: diffHref(ns, name), text: "Diff" });
}

// treeDiffLink links a tree node the App's status lists as out of sync
// to that object's diff.
function treeDiffLink(n) {
  const { parts } = parseHash();
  const key = [n.group || "", n.kind, n.namespace || "", n.name].join("/");
  return el("a", { class: "difflink", href: diffHref(parts[1], parts[2], key), "aria-label": "Diff of " + objectTitle(n) }, "out of sync: diff");
}

// masked marks the masks the server put in place of Secret values.
function masked(line) {
  return line.split(/(\((?:changed |generated )?secret value\))/).filter(Boolean).map((part) =>
    /^\((?:changed |generated )?secret value\)$/.test(part) ? el("mark", { class: "mask", text: part }) : part);
}

// unified draws a unified diff: removed lines (the live object's) as
// deletions, added ones (what a sync applies) as insertions, so that
// screen readers say which is which, and the text copies as a diff.
function unified(text, title) {
  const lines = text.replace(/\n$/, "").split("\n");
  return el("pre", { class: "unified", tabindex: "0", "aria-label": "Unified diff of " + title + ": lines with a minus are the live object's, lines with a plus what a sync applies" },
    lines.map((l) => {
      if (l.startsWith("+++") || l.startsWith("---")) return el("span", { class: "hdr" }, masked(l), "\n");
      if (l.startsWith("@@")) return el("span", { class: "hunk" }, l, "\n");
      if (l.startsWith("+")) return el("ins", {}, masked(l), "\n");
      if (l.startsWith("-")) return el("del", {}, masked(l), "\n");
      return el("span", {}, masked(l), "\n");
    }));
}

function objectSection(o, i) {
  const title = objectTitle(o);
  return el("section", { class: "objdiff", id: "objdiff-" + i, "aria-label": o.action + " " + title },
    el("h2", {}, badge(o.action), " ", title),
    unified(o.unified, title));
}

// diffView shows what a sync of App ns/name would change: every changed
// object, or the one ?object= names. It is computed when opened or on
// "Compare again", not on live updates: each one renders the App and asks
// the API server for a dry run.
function diffView(ns, name, params) {
  setNav("apps");
  document.title = "Diff · " + name + " · tend";
  refresh = null;
  const object = params.get("object") || "";
  const url = "/api/v1/apps/" + encodeURIComponent(ns) + "/" + encodeURIComponent(name) + "/diff" + (object ? "?object=" + encodeURIComponent(object) : "");
  const status = el("p", { class: "muted", role: "status", "aria-live": "polite" });
  const body = el("div");
  const again = el("button", { type: "button", class: "act secondary", onclick: () => load(), text: "Compare again" });
  main.replaceChildren(
    el("p", {}, el("a", { href: appHref(ns, name), text: "← " + name })),
    el("h1", {}, "Diff of ", name),
    el("p", { class: "muted", text: "What a sync would change: the live objects against what applying git would make of them, from a server-side apply dry run (as tend diff). Secret values are never shown, only whether they changed." }),
    el("div", { class: "actions" }, again, object ? el("a", { class: "act secondary", href: diffHref(ns, name), text: "All objects" }) : null),
    status, body);

  async function load() {
    again.disabled = true;
    status.textContent = "Rendering the App and asking the API server for a dry run…";
    let d;
    try { d = await api(url); } catch (e) {
      status.textContent = "";
      showError(body, e);
      return;
    } finally { again.disabled = false; }
    status.textContent = "Revision " + shortRev(d.revision) + ": " + d.summary +
      (d.hooks ? " · " + d.hooks + " hooks run during a sync and are not compared" : "");
    const changed = d.objects.filter((o) => o.action !== "unchanged");
    const unchanged = d.objects.filter((o) => o.action === "unchanged");
    fill(body,
      d.errors.length ? [el("h2", { text: "Objects a sync would fail on" }),
        el("ul", { class: "error" }, d.errors.map((e) => el("li", { text: e })))] : null,
      changed.length > 1 ? el("nav", { class: "toc", "aria-label": "Changed objects" }, el("ul", {}, changed.map((o, i) =>
        el("li", {}, badge(o.action), " ", el("button", { type: "button", class: "linkish",
          onclick: () => document.getElementById("objdiff-" + i).scrollIntoView(), text: objectTitle(o) }))))) : null,
      changed.length ? changed.map(objectSection)
        : d.errors.length ? null : el("p", { class: "nochange", text: object ? "This object is unchanged: a sync would not change it." : "No changes: a sync would change nothing." }),
      d.notes.length || d.warnings.length ? [el("h2", { text: "Notes" }),
        el("ul", {}, d.notes.concat(d.warnings).map((n) => el("li", { text: n })))] : null,
      unchanged.length && changed.length ? el("details", {}, el("summary", { text: unchanged.length + " unchanged" }),
        el("ul", {}, unchanged.map((o) => el("li", { text: objectTitle(o) })))) : null);
  }
  return load();
}
