// Measures the dashboard's first paint for bench/ (-mode dashboard): the
// time from navigation to the App list's rows drawn, in a fresh page each
// time. Prints the milliseconds as a JSON array.
import { cfg, launch } from "./lib.mjs";

const browser = await launch();
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const warm = await context.newPage();
  await warm.goto(cfg.url); // trades the token for the session cookie
  await warm.close();
  const base = new URL("/", cfg.url).toString();
  const out = [];
  for (let i = 0; i < cfg.runs; i++) {
    const page = await context.newPage();
    const t0 = Date.now();
    await page.goto(base + "#/?namespace=" + encodeURIComponent(cfg.namespace));
    await page.locator("caption", { hasText: cfg.total + " Apps" }).waitFor({ timeout: 30000 });
    await page.locator("table.apps tbody tr").nth(49).waitFor({ timeout: 30000 });
    out.push(Date.now() - t0);
    await page.close();
  }
  process.stdout.write(JSON.stringify(out) + "\n");
} finally {
  await browser.close();
}
