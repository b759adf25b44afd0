// Drives the dashboard `tend controller` serves to a team, in Debian's
// headless Chromium: sign in through the OIDC issuer (an OIDC provider on
// loopback), act as an operator, sign out, sign in as a viewer, and try
// what a viewer may not. internal/dashboard/team_e2e_test.go starts the
// dashboard and the issuer, runs this script and answers its requests:
// the script prints "STEP <name>" when the test must check or change
// something, and waits for a line "GO" on stdin.
import { cfg, step, fail, done, launch, timeout } from "./lib.mjs";

const browser = await launch();
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error" && !/403|Forbidden/.test(m.text())) errors.push(m.text()); });

  // Opening the dashboard goes through the issuer and back, signed in.
  await page.goto(cfg.url + "/#/apps/" + cfg.namespace + "/" + cfg.app);
  await page.getByRole("heading", { name: cfg.app }).waitFor({ timeout });
  await page.locator("#user", { hasText: cfg.operator }).waitFor({ timeout });
  await page.screenshot({ path: cfg.screenshots + "/dashboard-signed-in.png" });

  // An operator syncs.
  await page.getByRole("button", { name: "Sync", exact: true }).click();
  await page.locator("#toast", { hasText: "sync requested" }).waitFor({ timeout });
  await step("synced");

  // Sign out: the session is gone, the API refuses.
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByRole("heading", { name: "Signed out" }).waitFor({ timeout });
  // (The sign-out page's CSP allows it no fetch: ask with the browser's
  // cookies from outside.)
  const after = (await context.request.get(cfg.url + "/api/v1/apps")).status();
  if (after !== 401) fail("after signing out the API answered " + after + ", want 401");

  // A viewer: the App without buttons; a request forged in the page with
  // the session's own CSRF token is refused all the same.
  await step("viewer");
  await page.goto(cfg.url + "/#/apps/" + cfg.namespace + "/" + cfg.app);
  await page.locator("#user", { hasText: cfg.viewer }).waitFor({ timeout });
  await page.getByRole("heading", { name: cfg.app }).waitFor({ timeout });
  await page.locator("#read-only").waitFor({ timeout });
  if (await page.getByRole("button", { name: "Sync", exact: true }).count() > 0) fail("a viewer sees the Sync button");
  if (await page.getByRole("button", { name: /Roll back/ }).count() > 0) fail("a viewer sees a Roll back button");
  await page.screenshot({ path: cfg.screenshots + "/dashboard-viewer.png" });
  const forged = await page.evaluate(async (path) => {
    const csrf = document.querySelector('meta[name="tend-csrf"]').content;
    const res = await fetch(path, { method: "POST", headers: { "X-Tend-CSRF": csrf } });
    return { status: res.status, body: await res.text() };
  }, "/api/v1/apps/" + cfg.namespace + "/" + cfg.app + "/sync");
  if (forged.status !== 403 || !forged.body.includes("operator")) fail("a viewer's forged sync answered " + forged.status + " " + forged.body);
  await step("forged");

  // The admin token form, for the first sign-in.
  const fresh = await browser.newContext({ viewport: { width: 900, height: 500 } });
  const p2 = await fresh.newPage();
  await p2.goto(cfg.url + "/auth/token");
  await p2.getByLabel("Admin token").fill("not-the-token");
  await p2.getByRole("button", { name: "Sign in" }).click();
  await p2.getByText("That is not the admin token").waitFor({ timeout });
  await p2.screenshot({ path: cfg.screenshots + "/dashboard-token.png" });

  if (errors.length) fail("errors in the page: " + errors.join("; "));
  done();
} finally {
  await browser.close();
}
