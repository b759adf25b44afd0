// Drives tend's dashboard in Debian's headless Chromium, as a person would.
// internal/dashboard/e2e_test.go starts a dashboard over a test namespace,
// runs this script and answers its requests on stdin/stdout:
//   the script prints "STEP <name>" when it needs the test to change the
//   cluster, and waits for a line "GO" on stdin.
// Any failed expectation exits non-zero with a message naming it.
import { cfg, step, fail, done, launch, timeout } from "./lib.mjs";

const browser = await launch();
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });

  // The printed URL opens the App list.
  await page.goto(cfg.url);
  await page.getByRole("heading", { name: "Apps" }).waitFor({ timeout });
  await page.locator("#live", { hasText: "live" }).waitFor({ timeout });
  await page.getByRole("combobox", { name: "Namespace" }).selectOption(cfg.namespace);
  await page.locator("caption", { hasText: cfg.total + " Apps" }).waitFor({ timeout });
  await page.screenshot({ path: cfg.screenshots + "/dashboard-apps.png" });

  // Find one App among them by searching, open it.
  await page.getByRole("searchbox", { name: "Search Apps" }).fill(cfg.app);
  await page.locator("caption", { hasText: "1 Apps" }).waitFor({ timeout });
  await page.getByRole("link", { name: cfg.app, exact: true }).click();
  await page.getByRole("heading", { name: cfg.app }).waitFor({ timeout });

  // Its tree: the Deployment, its ReplicaSet, its Pod.
  const tree = page.getByRole("tree");
  await tree.waitFor({ timeout });
  for (const kind of ["Deployment", "ReplicaSet", "Pod"]) {
    await tree.getByText(new RegExp("^(apps/)?" + kind + " ")).first().waitFor({ timeout });
  }
  if (await tree.getByText(cfg.secretValue).count() > 0) fail("the tree shows a Secret's value");
  await page.screenshot({ path: cfg.screenshots + "/dashboard-app.png", fullPage: true });

  // A change in the cluster shows without a reload.
  await step("degrade");
  await page.locator("h1 .badge", { hasText: "Degraded" }).waitFor({ timeout });
  await page.getByText("What to do:").first().waitFor({ timeout });

  // Sync: the request reaches the cluster, the dashboard says so.
  await page.getByRole("button", { name: "Sync", exact: true }).click();
  await page.locator("#toast", { hasText: "sync requested" }).waitFor({ timeout });
  await step("synced");

  // Suspend turns the Sync button off until Resume.
  await page.getByRole("button", { name: "Suspend" }).click();
  await page.getByRole("button", { name: "Resume" }).waitFor({ timeout });
  if (!(await page.getByRole("button", { name: "Sync", exact: true }).isDisabled())) fail("Sync is enabled on a suspended App");
  await page.getByRole("button", { name: "Resume" }).click();
  await page.getByRole("button", { name: "Suspend" }).waitFor({ timeout });
  await step("resumed");

  // Roll back to the older sync (confirmed), see the pin, unpin.
  page.once("dialog", (d) => d.accept());
  await page.getByRole("button", { name: "Roll back to sync 1" }).click();
  await page.getByText("Pinned to").waitFor({ timeout });
  await step("pinned");
  await page.getByRole("button", { name: "Unpin" }).click();
  await page.getByText("Pinned to").waitFor({ state: "detached", timeout });
  await step("unpinned");
  await page.screenshot({ path: cfg.screenshots + "/dashboard-app-history.png", fullPage: true });

  // A drifted App: its hook runs, then what a sync would change, from the
  // Diff button and from the tree's link of the drifted Deployment.
  await page.goto(new URL("/#/apps/" + cfg.namespace + "/" + cfg.drifted, cfg.url).toString());
  await page.getByRole("heading", { name: cfg.drifted }).first().waitFor({ timeout });
  const hookTable = page.locator("table.hooks");
  await hookTable.getByText("smoke").waitFor({ timeout });
  if (await hookTable.locator(".badge", { hasText: "Succeeded" }).count() !== 2) fail("the hook runs do not show the two hook Jobs succeeded");
  await page.locator("#toast.show").waitFor({ state: "hidden", timeout });
  await hookTable.screenshot({ path: cfg.screenshots + "/dashboard-hooks.png" });
  await page.getByRole("link", { name: "Diff", exact: true }).click();
  await page.getByRole("heading", { name: "Diff of " + cfg.drifted }).waitFor({ timeout });
  const deployDiff = page.getByRole("region", { name: "update apps/Deployment " + cfg.namespace + "/" + cfg.drifted });
  await deployDiff.locator("ins", { hasText: "image: nginx:1.27" }).waitFor({ timeout });
  await deployDiff.locator("del", { hasText: "image: nginx:drifted" }).waitFor({ timeout });
  await page.locator("mark.mask", { hasText: "(changed secret value)" }).first().waitFor({ timeout });
  const text = await page.locator("main").innerText();
  for (const v of cfg.driftSecrets) if (text.includes(v)) fail("the diff shows a Secret value");
  await page.screenshot({ path: cfg.screenshots + "/dashboard-diff.png", fullPage: true });
  await page.getByRole("link", { name: "← " + cfg.drifted }).click();
  await page.getByRole("link", { name: "Diff of apps/Deployment " + cfg.namespace + "/" + cfg.drifted }).click();
  await deployDiff.waitFor({ timeout });
  await page.getByRole("link", { name: "All objects" }).waitFor({ timeout });
  if (await page.locator("section.objdiff").count() !== 1) fail("the Deployment's diff shows other objects too");

  // Keyboard: on a fresh page the skip link comes first.
  await page.goto(new URL("/", cfg.url).toString());
  await page.getByRole("heading", { name: "Apps" }).waitFor({ timeout });
  await page.keyboard.press("Tab");
  const first = await page.evaluate(() => document.activeElement && document.activeElement.textContent);
  if (first !== "Skip to content") fail("the first Tab stop is " + JSON.stringify(first) + ", not the skip link");

  // The other sections.
  for (const [name, text] of [["Sources", cfg.source], ["AppSets", "AppSets"], ["Notifiers", "Notifiers"], ["Clusters", "Clusters"]]) {
    await page.getByRole("link", { name, exact: true }).click();
    await page.getByRole("heading", { name }).waitFor({ timeout });
    await page.getByText(text).first().waitFor({ timeout });
    if (name === "Sources") await page.screenshot({ path: cfg.screenshots + "/dashboard-sources.png" });
  }

  // Stages: the pipeline, upstream first; approve what prod waits for.
  await page.getByRole("link", { name: "Stages", exact: true }).click();
  await page.getByRole("heading", { name: "Stages" }).waitFor({ timeout });
  const rows = page.locator("tbody tr");
  await rows.filter({ hasText: cfg.namespace + "/prod" }).getByText("WaitingForApproval").waitFor({ timeout });
  const order = await rows.evaluateAll((trs) => trs.map((tr) => tr.cells[0].textContent));
  if (order.join(",") !== cfg.namespace + "/dev," + cfg.namespace + "/prod") fail("the Stages are not in pipeline order: " + order.join(", "));
  if (await page.getByRole("button", { name: "Approve dev" }).count() !== 0) fail("a Stage without approval has an Approve button");
  await page.screenshot({ path: cfg.screenshots + "/dashboard-stages.png" });
  page.once("dialog", (d) => d.accept());
  await page.getByRole("button", { name: "Approve prod" }).click();
  await page.locator("#toast", { hasText: "approved freight bbbbbbbbbbbb (web:1.1.0) for prod" }).waitFor({ timeout });
  await step("approved");

  // A phone-sized screen.
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2 });
  const p2 = await phone.newPage();
  await p2.goto(cfg.url);
  await p2.getByRole("combobox", { name: "Namespace" }).selectOption(cfg.namespace);
  await p2.locator("caption", { hasText: cfg.total + " Apps" }).waitFor({ timeout });
  await p2.screenshot({ path: cfg.screenshots + "/dashboard-phone.png" });
  const overflow = await p2.evaluate(() => {
    const wide = [...document.querySelectorAll("body *")].filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1);
    return { by: document.documentElement.scrollWidth - window.innerWidth, what: wide.slice(0, 5).map((e) => e.tagName + "." + e.className + "#" + e.id).join(", ") };
  });
  if (overflow.by > 1) fail("the App list is " + overflow.by + "px wider than a 390px screen: " + overflow.what);

  if (errors.length) fail("errors in the page: " + errors.join("; "));
  done();
} finally {
  await browser.close();
}
