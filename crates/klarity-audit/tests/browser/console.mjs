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

  // Issue an app token (shown once), publish with it, see a refused event as a dead letter with
  // its reason, replay it; then revoke the token and see the next publish refused.
  await page.getByRole("link", { name: "App tokens" }).click();
  await page.getByLabel("Name").fill("browser test");
  await page.getByLabel("Event source").selectOption("com.nordcloudapp.com.autopatcher");
  await page.getByLabel("Tenants").fill("demo,demo-logs");
  await page.getByRole("button", { name: "Issue" }).click();
  const token = (await page.locator("#new-token").textContent()).trim();
  assert.match(token, /^kat_/);
  const publish = async (tenant, eventTime, uid) => {
    const r = await fetch(`${relay}/v1/tenants/${tenant}/events`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ version: "v1", userIdentity: { type: "USER", principalId: "ops@example.com" },
        eventSource: "com.nordcloudapp.com.autopatcher", eventName: "baselinePatching.started", eventTime, UID: uid,
        requestParameters: { machinesCount: 3 } }),
    });
    return r.status;
  };
  // CloudWatch Logs refuses an event 20 days old: a dead letter with CloudWatch's reason.
  const old = new Date(Date.now() - 20 * 86400_000).toISOString();
  assert.equal(await publish("demo-logs", old, "0190a6b5-abcd-7a3f-9d2b-000000000001"), 202);
  await page.screenshot({ path: `${shots}/tokens.png`, fullPage: true });
  for (let i = 0; ; i++) {
    await page.goto(`${relay}/console/tenants/demo-logs/dead-letters`);
    if (await page.locator('tr[data-uid="0190a6b5-abcd-7a3f-9d2b-000000000001"]').count() > 0) break;
    assert.ok(i < 100, "the too-old event became a dead letter");
    await page.waitForTimeout(100);
  }
  await page.getByText("TooOldLogEvent").waitFor();
  await page.screenshot({ path: `${shots}/dead-letters.png`, fullPage: true });
  await page.getByRole("button", { name: "Replay selected" }).click();
  await page.getByRole("status").filter({ hasText: "Select the dead letters to replay" }).waitFor();
  await page.getByLabel("Select 0190a6b5-abcd-7a3f-9d2b-000000000001").check();
  await page.getByRole("button", { name: "Replay selected" }).click();
  await page.getByRole("status").filter({ hasText: "Replayed 1 dead letters of demo-logs" }).waitFor();

  // An event published now is found by its UID (on the tenant's page) and seen delivered.
  const fresh = "0190a6b5-abcd-7a3f-9d2b-000000000003";
  assert.equal(await publish("demo-logs", new Date().toISOString(), fresh), 202);
  await page.getByLabel("Find an event by UID").fill(fresh);
  await page.getByRole("button", { name: "Find" }).click();
  for (let i = 0; (await page.locator("#event-state").textContent()) !== "delivered"; i++) {
    assert.ok(i < 100, "the event was delivered");
    await page.waitForTimeout(100);
    await page.reload();
  }
  await page.screenshot({ path: `${shots}/event.png`, fullPage: true });

  await page.goto(`${relay}/console/tokens`);
  const tokenRow = page.locator("tr", { hasText: "browser test" });
  await tokenRow.getByRole("button", { name: /Revoke/ }).click();
  await page.getByRole("status").filter({ hasText: "it is refused from the next request on" }).waitFor();
  await tokenRow.getByText("Revoked").waitFor();
  const refused = await publish("demo", new Date().toISOString(), "0190a6b5-abcd-7a3f-9d2b-000000000002");
  assert.ok(refused === 401 || refused === 403, `a revoked token published (${refused})`);

  // The catalog: applications, event types, typed parameters and examples.
  await page.getByRole("link", { name: "Catalog" }).click();
  await page.getByRole("heading", { name: /AutoPatcher/ }).waitFor();
  await page.locator("summary", { hasText: "baselinePatching.started" }).click();
  await page.getByText("machinesCount").first().waitFor();
  await page.screenshot({ path: `${shots}/catalog.png`, fullPage: true });
  // A tenant checked from the page: a canary through its destination.
  await page.goto(`${relay}/console`);
  await page.getByRole("button", { name: "Verify demo-s3" }).click();
  await page.getByRole("status").filter({ hasText: "Tenant demo-s3 works" }).waitFor();
  await page.getByText("PutObject wrote the canary to s3://klarity-audit-demo/klarity-audit/").waitFor();
  await page.screenshot({ path: `${shots}/verify.png`, fullPage: true });

  // The tenants' charts of the last hour count the traffic of the minute under way.
  await page.goto(`${relay}/console`);
  const logsChart = page.locator('tr[data-tenant="demo-logs"] svg[role="img"]');
  assert.match(await logsChart.getAttribute("aria-label"), /^Last hour: [1-9]\d* accepted, [1-9]\d* delivered, [1-9]\d* failed$/);
  assert.equal(await page.locator('svg[role="img"][aria-label^="Last hour:"]').count(), 3);
  await page.screenshot({ path: `${shots}/tenants.png`, fullPage: true });

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
