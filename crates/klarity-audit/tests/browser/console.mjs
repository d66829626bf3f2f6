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

  // CloudWatch Logs will refuse it again: the customer moves demo-logs to its S3 bucket, with the
  // role it made for S3. The operator updates the tenant from its page, then replays the letter.
  await page.goto(`${relay}/console/tenants/demo-s3`);
  const s3Role = (await page.locator("#current-role-arn").textContent()).trim();
  await page.goto(`${relay}/console`);
  await page.locator('tr[data-tenant="demo-logs"]').getByRole("link", { name: "demo-logs" }).click();
  await page.getByRole("heading", { name: "Tenant demo-logs" }).waitFor();
  await page.getByLabel("Rollover, seconds").fill("not a number");
  await page.getByRole("button", { name: "Update demo-logs" }).click();
  await page.getByRole("status").filter({ hasText: "Rollover must be a whole number of seconds." }).waitFor();
  await page.getByLabel("Bucket ARN").fill("arn:aws:s3:::klarity-audit-demo");
  await page.getByLabel("Bucket region").fill("us-east-1");
  await page.getByLabel("Rollover, seconds").fill("1");
  await page.getByLabel("Role ARN").fill(s3Role);
  await page.getByRole("button", { name: "Update demo-logs" }).click();
  await page.getByRole("status").filter({ hasText: "Updated demo-logs: its events go to s3" }).waitFor();
  assert.equal((await page.locator("#current-role-arn").textContent()).trim(), s3Role);
  await page.screenshot({ path: `${shots}/tenant.png`, fullPage: true });
  await page.getByRole("link", { name: "Dead letters" }).click();
  await page.getByLabel("Select 0190a6b5-abcd-7a3f-9d2b-000000000001").check();
  await page.getByRole("button", { name: "Replay selected" }).click();
  await page.getByRole("status").filter({ hasText: "Replayed 1 dead letters of demo-logs" }).waitFor();

  // The replayed letter is found by its UID and watched until delivered, now into S3.
  const replayed = "0190a6b5-abcd-7a3f-9d2b-000000000001";
  await page.getByLabel("Find an event by UID").fill(replayed);
  await page.getByRole("button", { name: "Find" }).click();
  for (let i = 0; (await page.locator("#event-state").textContent()) !== "delivered"; i++) {
    assert.ok(i < 150, "the replayed dead letter was delivered");
    await page.waitForTimeout(100);
    await page.reload();
  }
  assert.match(await page.locator("dl.facts").textContent(), /Stored as.*eventDay=/s);
  await page.screenshot({ path: `${shots}/event.png`, fullPage: true });

  // Events for the audit-trail viewer: three by an auditor, one by someone else, into demo.
  const auditorUids = [];
  for (let i = 0; i < 4; i++) {
    const uid = `0190a6b5-abcd-7a3f-9d2b-00000000010${i}`;
    const principal = i < 3 ? "auditor@example.com" : "someone.else@example.com";
    const r = await fetch(`${relay}/v1/tenants/demo/events`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ version: "v1", userIdentity: { type: "USER", principalId: principal },
        eventSource: "com.nordcloudapp.com.autopatcher", eventName: "baselinePatching.started",
        eventTime: new Date().toISOString(), UID: uid, requestParameters: { machinesCount: 10 + i } }),
    });
    assert.equal(r.status, 202);
    if (i < 3) auditorUids.push(uid);
  }

  await page.goto(`${relay}/console/tokens`);
  const tokenRow = page.locator("tr", { hasText: "browser test" });
  await tokenRow.getByRole("button", { name: /Revoke/ }).click();
  await page.getByRole("status").filter({ hasText: "it is refused from the next request on" }).waitFor();
  await tokenRow.getByText("Revoked").waitFor();
  const refused = await publish("demo", new Date().toISOString(), "0190a6b5-abcd-7a3f-9d2b-000000000002");
  assert.ok(refused === 401 || refused === 403, `a revoked token published (${refused})`);

  // The audit-trail viewer: the operator finds the auditor's events by principal, sees one's
  // JSON, and exports them as CSV and NDJSON.
  await page.goto(`${relay}/console/tenants/demo`);
  await page.getByRole("link", { name: "Audit trail" }).click();
  await page.getByRole("heading", { name: "Events of demo" }).waitFor();
  await page.getByLabel("Principal").fill("auditor@example.com");
  await page.getByRole("button", { name: "Show" }).click();
  for (let i = 0; (await page.locator("#events tbody tr").count()) < 3; i++) {
    assert.ok(i < 150, "the auditor's three events reached the store");
    await page.waitForTimeout(100);
    await page.reload();
  }
  assert.equal(await page.locator("#events tbody tr").count(), 3);
  for (const cell of await page.locator("#events tbody tr td:nth-child(4)").allTextContents()) {
    assert.equal(cell.trim(), "auditor@example.com");
  }
  const operatorSaw = [];
  for (const row of await page.locator("#events tbody tr").all()) operatorSaw.push(await row.getAttribute("data-event"));
  await page.screenshot({ path: `${shots}/trail.png`, fullPage: true });
  const fs = await import("node:fs/promises");
  const csvDownload = page.waitForEvent("download");
  await page.getByRole("link", { name: "Export CSV" }).click();
  const csv = await fs.readFile(await (await csvDownload).path(), "utf8");
  const csvLines = csv.trim().split("\n");
  assert.ok(csvLines[0].startsWith("eventID,eventTime,"), csvLines[0]);
  assert.equal(csvLines.length, 4, csv);
  for (const uid of auditorUids) assert.ok(csv.includes(uid), `${uid} in the CSV`);
  assert.ok(!csv.includes("someone.else@example.com"), "the export follows the filter");
  const ndjsonDownload = page.waitForEvent("download");
  await page.getByRole("link", { name: "Export NDJSON" }).click();
  const ndjson = (await fs.readFile(await (await ndjsonDownload).path(), "utf8")).trim().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(ndjson.map((e) => e.eventData.UID).sort(), [...auditorUids].sort());
  assert.ok(ndjson.every((e) => e.eventData.userIdentity.principalId === "auditor@example.com"));
  await page.locator("#events tbody tr").first().getByRole("link", { name: /Detail of/ }).click();
  await page.locator("#event-json").getByText('"principalId": "auditor@example.com"').waitFor();
  await page.screenshot({ path: `${shots}/trail-event.png`, fullPage: true });

  // The SQL editor: a sample query from the catalog, its chart, saved, and in the history.
  await page.getByRole("link", { name: "SQL" }).click();
  await page.getByRole("link", { name: "AutoPatcher events by type" }).click();
  await page.locator("#results tbody tr").first().waitFor();
  await page.locator('#result-chart[role="img"]').waitFor();
  assert.match(await page.locator("#results").textContent(), /baselinePatching\.started/);
  await page.getByLabel("Save as").fill("Patching by type");
  await page.getByRole("button", { name: "Save query" }).click();
  await page.locator("ul.saved").getByRole("link", { name: "Patching by type" }).waitFor();
  await page.locator("ul.history").getByText(/GROUP BY eventData\.eventName/).first().waitFor();
  await page.screenshot({ path: `${shots}/sql.png`, fullPage: true });

  // A viewer link for demo: read-only, only demo's events, each use recorded; another tenant's
  // name in it breaks its signature.
  await page.goto(`${relay}/console/tenants/demo`);
  await page.getByLabel("A read-only link to this audit trail, valid for").selectOption("3600");
  await page.getByRole("button", { name: "Mint viewer link" }).click();
  const viewerPath = (await page.locator("#viewer-link").textContent()).trim();
  assert.match(viewerPath, /^\/console\/view\/kvl_/);
  const customer = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const view = await customer.newPage();
  view.on("request", (r) => { if (!r.url().startsWith(relay)) external.push(r.url()); });
  await view.goto(`${relay}${viewerPath}?principal=auditor%40example.com`);
  await view.getByText("Read-only link, valid until").waitFor();
  const viewerSaw = [];
  for (const row of await view.locator("#events tbody tr").all()) viewerSaw.push(await row.getAttribute("data-event"));
  assert.deepEqual(viewerSaw, operatorSaw, "the link shows demo's three auditor events, as the operator saw them");
  assert.equal(await view.getByRole("button", { name: /Save|Pause|Update/ }).count(), 0, "a viewer link changes nothing");
  await view.screenshot({ path: `${shots}/viewer.png`, fullPage: true });
  const [payload, tag] = viewerPath.slice("/console/view/kvl_".length).split(".");
  const forgedPayload = Buffer.from(Buffer.from(payload, "base64url").toString().replace(/^demo\./, "demo-logs.")).toString("base64url");
  assert.equal((await fetch(`${relay}/console/view/kvl_${forgedPayload}.${tag}`)).status, 403);
  assert.equal((await fetch(`${relay}/console/tenants/demo/trail`, { redirect: "manual" })).status, 303, "no session, no operator pages");

  // A link minted to live 3 seconds (by the admin API, as a SaaS application would) works, then is refused.
  const minted = await (await fetch(`${relay}/v1/admin/tenants/demo/viewer-links`, {
    method: "POST", headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
    body: JSON.stringify({ expires_in_seconds: 3 }),
  })).json();
  await view.goto(`${relay}${minted.path}`);
  await view.getByRole("heading", { name: "Events of demo" }).waitFor();
  for (let i = 0; ; i++) {
    const r = await view.goto(`${relay}${minted.path}`);
    if (r.status() === 403) break;
    assert.ok(i < 100, "the link was refused after it expired");
    await view.waitForTimeout(100);
  }
  await view.getByRole("alert").filter({ hasText: "This viewer link expired on" }).waitFor();
  await view.screenshot({ path: `${shots}/viewer-expired.png`, fullPage: true });
  await customer.close();

  // Each use of a link is an auditTrail.viewed event of the vendor in demo's own trail.
  await page.goto(`${relay}/console/tenants/demo/trail?name=auditTrail.viewed&principal=viewer-link%3A${minted.id}`);
  for (let i = 0; (await page.locator("#events tbody tr").count()) < 1; i++) {
    assert.ok(i < 150, "the minted link's uses were recorded in demo's trail");
    await page.waitForTimeout(100);
    await page.reload();
  }

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
  await page.locator('tr[data-tenant="demo-logs"]').getByText(/^Last error .* ago: TooOldLogEvent: .*\(dead-lettered\)$/).waitFor();
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
  for (const path of ["/console/tenants/demo", "/console/tenants/demo/trail", "/console/tenants/demo/trail/sql"]) {
    await page.goto(`${relay}${path}`);
    const wide = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(wide <= 390, `${path} is ${wide} px wide on a 390 px phone`);
  }
  await page.screenshot({ path: `${shots}/sql-phone.png`, fullPage: true });
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
