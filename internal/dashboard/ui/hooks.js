// tend dashboard: an App's hook runs (GET /api/v1/apps/NS/NAME/hooks),
// its hook Jobs by phase with their state, on the App page. Loaded before
// app.js, whose helpers (el, fill, badge, api, ago) it uses.
"use strict";

const hookPhaseNames = { "pre-sync": "PreSync", "post-sync": "PostSync", "sync-fail": "SyncFail", "post-delete": "PostDelete" };

function podCounts(h) {
  return [[h.active, "active"], [h.succeeded, "succeeded"], [h.failed, "failed"]]
    .filter(([n]) => n > 0).map(([n, what]) => n + " " + what).join(", ") || "no pods yet";
}

// loadHookRuns fills where with the hook runs of the App at base (its API
// path).
async function loadHookRuns(where, base) {
  let d;
  try { d = await api(base + "/hooks"); } catch (e) {
    fill(where, el("h2", { text: "Hook runs" }), el("p", { class: "error", role: "alert", text: String(e.message || e) }));
    return;
  }
  const rows = d.phases.flatMap((p) => p.hooks.map((h) => el("tr", {},
    el("td", { "data-label": "Phase", text: hookPhaseNames[p.phase] || p.phase }),
    el("td", { "data-label": "Job" }, el("code", { text: h.namespace + "/" + h.name })),
    el("td", { "data-label": "State" }, badge(h.state)),
    el("td", { "data-label": "Pods", text: podCounts(h) }),
    el("td", { "data-label": "Started", text: h.started ? ago(h.started) : "not yet" }),
    el("td", { "data-label": "Finished", text: h.completed ? ago(h.completed) : "not yet" }),
    el("td", { class: "msg", "data-label": "Message", text: h.message || "" }))));
  fill(where, el("h2", { text: "Hook runs" }),
    d.note ? el("p", { class: "muted", text: d.note }) : null,
    rows.length ? el("table", { class: "hooks" },
      el("caption", { class: "muted", text: "The Jobs of the App's hooks, from their last run" }),
      el("thead", {}, el("tr", {}, ["Phase", "Job", "State", "Pods", "Started", "Finished", "Message"].map((h) => el("th", { scope: "col", text: h })))),
      el("tbody", {}, rows))
      : d.note ? null : el("p", { class: "muted", text: "No hook Jobs of this App in the cluster (a hook whose delete policy removed it after it ran no longer shows)." }));
}
