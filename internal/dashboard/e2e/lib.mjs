// What the dashboard's browser scripts share: their configuration, the
// STEP/GO conversation with the Go test that runs them
// (internal/dashboard/browser_test.go), failing with a message, and
// launching Debian's chromium headless.
import { chromium } from "playwright-core";
import { createInterface } from "node:readline";

// cfg is the test's configuration (TEND_E2E): at least url, chromium and,
// for the tests, screenshots.
export const cfg = JSON.parse(process.env.TEND_E2E);

// timeout is how long an expectation waits, in milliseconds.
export const timeout = 30000;

let lines = null;
const waiting = [];

// step prints "STEP <name>" and resolves once the test answered "GO".
export function step(name) {
  if (!lines) {
    lines = createInterface({ input: process.stdin });
    lines.on("line", (l) => { const w = waiting.shift(); if (w) w(l); });
  }
  process.stdout.write("STEP " + name + "\n");
  return new Promise((resolve) => waiting.push(resolve));
}

// fail ends the script with a message naming the failed expectation.
export function fail(msg) {
  console.error("FAIL: " + msg);
  process.exit(1);
}

// done tells the test the script got to its end, and lets stdin go.
export function done() {
  process.stdout.write("DONE\n");
  if (lines) lines.close();
}

// launch starts headless chromium without anything that reaches the
// network on its own.
export function launch() {
  return chromium.launch({
    executablePath: cfg.chromium,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
}
