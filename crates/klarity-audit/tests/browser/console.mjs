// The console in Debian's Chromium, driven by Playwright, against a running `serve`.
// Usage: node console.mjs RELAY_URL SIGN_IN_LINK ADMIN_TOKEN SCREENSHOT_DIR
// Prints "console ok" when every step held; throws (exit 1) at the first that did not.
import { chromium } from "playwright-core";
import assert from "node:assert/strict";

const [relay, link, adminToken, shots] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
const external = [];
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  // No request may leave the relay's origin.
  page.on("request", (r) => { if (!r.url().startsWith(relay)) external.push(r.url()); });

  // Without a session, the console asks to sign in; a wrong token is refused.
  await page.goto(`${relay}/console`);
  assert.equal(new URL(page.url()).pathname, "/console/sign-in");
  await page.getByLabel("Admin token").fill("kadm_wrong");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("alert").filter({ hasText: "That is not the admin token." }).waitFor();
  await page.screenshot({ path: `${shots}/sign-in.png`, fullPage: true });

  // The one-time link signs in once.
  await page.goto(link);
  assert.equal(new URL(page.url()).pathname, "/console");
  await page.getByRole("heading", { name: "Tenants" }).waitFor();
  for (const id of ["demo", "demo-logs", "demo-s3"]) {
    await page.locator(`tr[data-tenant="${id}"]`).getByText("Active").waitFor();
  }
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === "klarity_console");
  assert.ok(session && session.httpOnly && session.sameSite === "Strict", JSON.stringify(cookies));
  await page.screenshot({ path: `${shots}/tenants.png`, fullPage: true });

  // Pause a tenant with a reason, keyboard only, and see the reason; then resume it.
  const row = page.locator('tr[data-tenant="demo-logs"]');
  await row.getByLabel("Why pause demo-logs").focus();
  await page.keyboard.type("customer migrating");
  await page.keyboard.press("Enter");
  await page.getByRole("status").filter({ hasText: "Paused demo-logs: customer migrating." }).waitFor();
  await row.getByText("Paused by an operator").waitFor();
  await row.getByText("customer migrating").waitFor();
  await page.screenshot({ path: `${shots}/tenant-paused.png`, fullPage: true });
  await row.getByRole("button", { name: "Resume demo-logs" }).click();
  await page.getByRole("status").filter({ hasText: "Resumed demo-logs." }).waitFor();
  await row.getByText("Active").waitFor();

  // A change without the session's CSRF token is refused, even with the session's cookie.
  const forged = await page.evaluate(async () => {
    const r = await fetch("/console/tenants/demo/pause", {
      method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: "reason=forged",
    });
    return r.status;
  });
  assert.equal(forged, 403);
  await page.reload();
  await page.locator('tr[data-tenant="demo"]').getByText("Active").waitFor();

  // On a phone.
  await page.setViewportSize({ width: 390, height: 844 });
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 390, `the page is ${width} px wide on a 390 px phone (only the table may scroll)`);
  await page.screenshot({ path: `${shots}/tenants-phone.png`, fullPage: true });
  await page.setViewportSize({ width: 1280, height: 800 });

  // The link was for one use; signing out ends the session.
  const again = await browser.newPage();
  await again.goto(link);
  await again.getByRole("alert").filter({ hasText: "used already" }).waitFor();
  await again.close();
  await page.getByRole("button", { name: "Sign out" }).click();
  assert.equal(new URL(page.url()).pathname, "/console/sign-in");
  await page.goto(`${relay}/console`);
  assert.equal(new URL(page.url()).pathname, "/console/sign-in");

  // The admin token signs in too.
  await page.getByLabel("Admin token").fill(adminToken);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Tenants" }).waitFor();

  assert.deepEqual(external, [], "requests outside the relay");
  console.log("console ok");
} finally {
  await browser.close();
}
