// npm run test:browser: end-to-end tests of the keys page and the <latchkey-keys> component in
// headless Chromium (the system's /usr/bin/chromium, driven by playwright-core: no browser download).
// Starts latchkey and a host page on another origin, runs every test in a fresh browser context, and
// always stops what it started. Prints "N passed, M failed"; exits non-zero on any failure.
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { startHost, startLatchkey } from "./servers.mjs";

const root = fileURLToPath(new URL("..", import.meta.url));
const PORT = Number(process.env.BROWSER_TEST_PORT ?? 8804);
const HOST_PORT = Number(process.env.BROWSER_TEST_HOST_PORT ?? 9004);
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const TEST_TIMEOUT_MS = 90_000;
const SCREENSHOT = `${root}docs/keys-page.png`;
const PHONE_SCREENSHOT = `${root}docs/keys-page-phone.png`;
const DETAIL_SCREENSHOT = `${root}docs/keys-page-detail.png`;
const AXE_SOURCE = readFileSync(`${root}node_modules/axe-core/axe.min.js`, "utf8");
const WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"];
const PHONE = { width: 390, height: 844 };
const DESKTOP = { width: 1280, height: 800 };
/** BROWSER_TEST_GREP=text runs only the tests whose name contains it (`a|b`: either; while working on them). */
const GREP = process.env.BROWSER_TEST_GREP ?? "";

let api = "";
let hostUrl = "";
const tests = [];
/** `options.bypassCSP`: the test injects axe-core, which the page's CSP (rightly) refuses. */
const test = (name, fn, options = {}) => tests.push({ name, fn, options });
const DAY_MS = 86_400_000;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---- helpers ----------------------------------------------------------------------------------

/** Each run starts from empty local state, so a plain name per test is unique. */
const newSubject = (name) => name;

/** A token for `sub` from the dev mint, as the page gets it. */
async function devToken(sub, org) {
  const response = await fetch(`${api}/ui/dev-token`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(org ? { sub, org } : { sub }),
  });
  assert.equal(response.status, 200, "dev-token");
  return (await response.json()).token;
}

async function apiCall(token, method, path, body) {
  const response = await fetch(`${api}${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

/** Waits until key `id` shows a last use: an isolate writes the uses it gathered every 15 s (service/last-use.ts). */
async function untilUsed(token, id) {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const { body } = await apiCall(token, "GET", `/v1/keys/${id}`);
    if (body?.last_used_at) return;
    await sleep(500);
  }
  assert.fail(`key ${id} shows no last use after 30 s`);
}

async function createKey(token, body) {
  const { status, body: created } = await apiCall(token, "POST", "/v1/keys", body);
  assert.equal(status, 201, JSON.stringify(created));
  return created;
}

async function verify(key) {
  const response = await fetch(`${api}/v1/verify`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ key }),
  });
  return (await response.json()).code;
}

/** The component's rows (pierces the shadow root). */
const rows = (page) => page.locator("latchkey-keys tbody tr");
const row = (page, name) => rows(page).filter({ has: page.locator("th", { hasText: name }) });
/** A key's row by id (a rotation's replacement keeps the name). */
const rowOf = (page, id) => page.locator(`latchkey-keys tbody tr[data-key-id="${id}"]`);
/** The row actions a row offers, in order. */
const actionsOf = (r) =>
  r.locator("td.actions button[data-action]").evaluateAll((buttons) => buttons.map((b) => b.dataset.action));

async function patchKey(token, id, body) {
  const { status, body: updated } = await apiCall(token, "PATCH", `/v1/keys/${id}`, body);
  assert.equal(status, 200, JSON.stringify(updated));
  return updated;
}

/** The keys whose `rotated_from` is `id`, as the API lists them. */
async function replacementsOf(token, id) {
  const { body } = await apiCall(token, "GET", "/v1/keys?limit=100");
  return body.data.filter((key) => key.rotated_from === id);
}

async function waitIdle(page) {
  await page.waitForFunction(() => {
    const el = document.querySelector("latchkey-keys");
    return el && !el.hasAttribute("aria-busy");
  });
}

/** Signs in on /ui/ with a dev token for `sub`, through the form. */
async function signIn(page, sub, org) {
  await page.goto(`${api}/ui/`);
  await page.getByLabel("Subject (user id)").fill(sub);
  if (org) await page.getByLabel("Workspace (optional)").fill(org);
  await page.getByRole("button", { name: "Sign in with a dev token" }).click();
  await page.getByText(`Signed in as ${sub}`).waitFor();
  await page.getByRole("button", { name: "Create key" }).and(page.locator(":enabled")).waitFor();
  await waitIdle(page);
}

/** Whether `text` appears anywhere in the document or the component's shadow tree (markup or form values). */
function inDom(page, text) {
  return page.evaluate((needle) => {
    const roots = [document];
    for (const el of document.querySelectorAll("*")) if (el.shadowRoot) roots.push(el.shadowRoot);
    return roots.some((r) => {
      const html = r === document ? document.documentElement.outerHTML : r.innerHTML;
      const values = [...r.querySelectorAll("input, textarea")].map((i) => i.value);
      return html.includes(needle) || values.some((v) => v.includes(needle));
    });
  }, text);
}

/** The element focused inside the component (or the page), described for assertions. */
function focused(page) {
  return page.evaluate(() => {
    let el = document.activeElement;
    while (el?.shadowRoot?.activeElement) el = el.shadowRoot.activeElement;
    return el ? `${el.tagName.toLowerCase()}:${el.getAttribute("aria-label") ?? el.textContent?.trim() ?? ""}` : "";
  });
}

/** Waits until the component's focused element is a row's `action` button. */
function waitForFocusOn(page, action) {
  return page.waitForFunction(
    (name) => document.querySelector("latchkey-keys").shadowRoot.activeElement?.dataset.action === name,
    action,
  );
}

/** Waits until the component's focused element is the detail view's `action` button. */
function waitForFocusIn(page, action) {
  return page.waitForFunction(
    (name) =>
      document.querySelector("latchkey-keys").shadowRoot.activeElement?.closest(".detail-actions") &&
      document.querySelector("latchkey-keys").shadowRoot.activeElement.dataset.action === name,
    action,
  );
}

/** Presses Tab until `label` (tag:text, or a RegExp for it) is focused; fails after `max` presses. */
async function tabTo(page, label, max = 40) {
  const matches = (text) => (label instanceof RegExp ? label.test(text) : text === label);
  for (let i = 0; i < max; i++) {
    if (matches(await focused(page))) return;
    await page.keyboard.press("Tab");
  }
  assert.fail(`Tab never reached ${label}; focus is on ${await focused(page)}`);
}

/**
 * Keyboard only, in the "Your new key" dialog: focus starts on Copy, Enter copies the key (checked on
 * the clipboard), Escape closes the dialog, the key is gone from the DOM and focus is back on Create key.
 */
async function copyNewKeyByKeyboard(page) {
  const secretDialog = page.getByRole("dialog", { name: /Your new key/ });
  await secretDialog.waitFor();
  assert.equal(await focused(page), "button:Copy key");
  const key = await secretDialog.locator("code[part=secret]").textContent();
  await page.keyboard.press("Enter");
  await secretDialog.getByText("Copied to the clipboard.").waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), key);
  await page.keyboard.press("Escape");
  await secretDialog.waitFor({ state: "hidden" });
  assert.equal(await inDom(page, key), false);
  assert.equal(await focused(page), "button:Create key", "focus returns to Create key");
  return key;
}

/**
 * axe-core's WCAG 2.1 A and AA rules over the whole page, the component's shadow tree included: no
 * violation allowed. Needs a context with bypassCSP (the page's CSP refuses injected scripts).
 */
async function expectAccessible(page, where) {
  if (!(await page.evaluate(() => "axe" in window))) await page.addScriptTag({ content: AXE_SOURCE });
  const violations = await page.evaluate(async (tags) => {
    const result = await window.axe.run(document, { runOnly: { type: "tag", values: tags } });
    return result.violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(" > ")).join(", ")}`);
  }, WCAG_AA);
  assert.deepEqual(violations, [], `axe-core (WCAG 2.1 AA) on ${where}`);
}

/** The page does not pan sideways: nothing is wider than the viewport. */
async function expectNoPan(page, where) {
  const { scrollWidth, innerWidth } = await page.evaluate(() => ({
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: window.innerWidth,
  }));
  assert.ok(scrollWidth <= innerWidth, `${where}: scrollWidth ${scrollWidth} > innerWidth ${innerWidth}`);
}

/** Every visible button of the component lies inside the viewport, so no action needs a sideways scroll. */
async function expectButtonsInView(page, where) {
  const outside = await page.evaluate(() => {
    const root = document.querySelector("latchkey-keys").shadowRoot;
    return [...root.querySelectorAll("button")]
      .filter((b) => b.offsetParent !== null)
      .map((b) => ({ label: b.getAttribute("aria-label") ?? b.textContent, box: b.getBoundingClientRect() }))
      .filter(({ box }) => box.left < 0 || box.right > window.innerWidth)
      .map(({ label, box }) => `${label} (${Math.round(box.left)}-${Math.round(box.right)})`);
  });
  assert.deepEqual(outside, [], `${where}: buttons outside the viewport`);
}

/** The detail view's section (in the shadow tree). */
const detail = (page) => page.locator("latchkey-keys section[part=detail]");

/** Opens a key's detail view from its row. */
async function openDetail(page, id) {
  await rowOf(page, id).locator("[data-action=details]").click();
  await detail(page).waitFor();
  await waitIdle(page);
}

/** Waits until the API's 30-day usage of `id` counts at least `total` verifications (counts land in batches). */
async function waitForUsage(token, id, total) {
  for (let i = 0; i < 90; i++) {
    const { body } = await apiCall(token, "GET", `/v1/keys/${id}/usage?granularity=day`);
    if (body.buckets.reduce((sum, b) => sum + b.total, 0) >= total) return body;
    await sleep(1000);
  }
  assert.fail(`usage of ${id} never reached ${total}`);
}

// ---- tests ------------------------------------------------------------------------------------

test("sign in with a dev token: the empty list, the token nowhere in storage or the URL", async ({ page }) => {
  const sub = newSubject("alice");
  await signIn(page, sub);
  await page.getByText("No keys yet.").waitFor();
  assert.equal(new URL(page.url()).search, "");
  assert.equal(await page.getByLabel("Subject (user id)").inputValue(), "");

  // Signing out forgets the token and everything shown for it.
  await createKey(await devToken(sub), { name: "Shown until sign-out" });
  await page.locator("latchkey-keys").evaluate((el) => el.refresh());
  await row(page, "Shown until sign-out").waitFor();
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByLabel("Subject (user id)").waitFor();
  assert.equal(await rows(page).count(), 0);
  assert.equal(await page.locator("latchkey-keys").evaluate((el) => el.token), null);
});

test("create: the key is shown once with a warning, the copy button copies it, closing removes it", async ({
  page,
}) => {
  const sub = newSubject("bob");
  await signIn(page, sub);
  await page.getByRole("button", { name: "Create key" }).click();
  const dialog = page.getByRole("dialog", { name: "Create an API key" });
  await dialog.getByLabel("Name").fill("CI deploys");
  await dialog.getByLabel("Scopes").fill("models:invoke metrics:read");
  await dialog.getByLabel("Limit to resources (optional)").fill("model_a");
  await dialog.getByLabel("Expires").selectOption({ label: "In 30 days" });
  await dialog.getByRole("button", { name: "Create key" }).click();

  const secretDialog = page.getByRole("dialog", { name: /Your new key/ });
  await secretDialog.waitFor();
  await secretDialog.getByText("you won't see this key again").waitFor();
  const key = await secretDialog.locator("code[part=secret]").textContent();
  assert.match(key, /^lk_[0-9A-Za-z]{49}$/);
  assert.equal(await verify(key), "VALID");

  await secretDialog.getByRole("button", { name: "Copy key" }).click();
  await secretDialog.getByText("Copied to the clipboard.").waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), key);

  assert.equal(await inDom(page, key), true);
  await secretDialog.getByRole("button", { name: "Done" }).click();
  await secretDialog.waitFor({ state: "hidden" });
  assert.equal(await inDom(page, key), false, "the key must be gone from the DOM once the dialog closes");

  const created = row(page, "CI deploys");
  await created.waitFor();
  assert.equal(await created.getAttribute("data-status"), "active");
  assert.equal(await created.locator("code[part=start]").textContent(), `${key.slice(0, 9)}…`);
  await created.getByText("models:invoke").waitFor();
  await created.getByText("on model_a").waitFor();
  await page.getByRole("status").filter({ hasText: "Key CI deploys created." }).waitFor();
});

test("list: personal and workspace keys with owners and status badges (screenshot)", async ({ page }) => {
  const sub = newSubject("carol");
  const token = await devToken(sub, "acme");
  const production = await createKey(token, {
    name: "Production server",
    scopes: ["models:invoke"],
    resources: ["model_a", "model_b"],
  });
  assert.equal((await apiCall(production.key, "GET", "/v1/whoami")).status, 200, "a use, for Last used");
  await createKey(token, {
    name: "Metrics dashboard",
    scopes: ["metrics:read"],
    expires_at: new Date(Date.now() + 3 * DAY_MS).toISOString(),
  });
  await createKey(token, { name: "Team automation", owner: "workspace", scopes: ["keys:read", "keys:write"] });
  const soon = await createKey(token, { name: "Load test", expires_at: new Date(Date.now() + 1500).toISOString() });
  const paused = await createKey(token, { name: "Nightly export", scopes: ["metrics:read"] });
  await patchKey(token, paused.id, { enabled: false });
  const revoked = await createKey(token, { name: "Old laptop" });
  assert.equal((await apiCall(token, "DELETE", `/v1/keys/${revoked.id}`)).status, 204);
  await sleep(Math.max(0, Date.parse(soon.expires_at) - Date.now() + 200));
  await untilUsed(token, production.id);

  await signIn(page, sub, "acme");
  const expected = {
    "Production server": "active",
    "Metrics dashboard": "expiring",
    "Team automation": "active",
    "Load test": "expired",
    "Nightly export": "disabled",
  };
  for (const [name, status] of Object.entries(expected)) {
    const r = row(page, name);
    await r.waitFor();
    assert.equal(await r.getAttribute("data-status"), status, name);
  }
  assert.equal(await row(page, "Old laptop").count(), 0, "revoked keys are hidden by default");
  await row(page, "Metrics dashboard").getByText("Expiring soon").waitFor();
  await row(page, "Load test").getByText("Expired", { exact: true }).waitFor();
  // Expiry dates are labelled, and a full-access key says so instead of a bare `*`.
  await row(page, "Load test")
    .getByText(/^Expired \w{3} \d+, \d{4}$/)
    .waitFor();
  await row(page, "Metrics dashboard")
    .getByText(/^Expires \w{3} \d+, \d{4}$/)
    .waitFor();
  await row(page, "Load test").getByText("Full access", { exact: true }).waitFor();
  assert.equal(await row(page, "Load test").getByText("*", { exact: true }).count(), 0);
  await row(page, "Nightly export").getByText("Disabled").waitFor();
  // Each row offers only what the API accepts in its state.
  assert.deepEqual(await actionsOf(row(page, "Production server")), ["rotate", "disable", "revoke"]);
  assert.deepEqual(
    await actionsOf(row(page, "Load test")),
    ["revoke"],
    "an expired key is neither rotated nor disabled",
  );
  assert.deepEqual(await actionsOf(row(page, "Nightly export")), ["rotate", "enable", "revoke"]);
  await row(page, "Team automation").getByText("Workspace acme").waitFor();
  await row(page, "Production server").getByText("You").waitFor();
  await row(page, "Metrics dashboard").getByText("Never").waitFor();
  assert.notEqual(await row(page, "Production server").locator("td").nth(5).textContent(), "Never");

  await page.getByLabel("Show revoked keys").check();
  await row(page, "Old laptop").waitFor();
  await waitIdle(page);
  assert.equal(await row(page, "Old laptop").getAttribute("data-status"), "revoked");
  await row(page, "Old laptop").getByText("Revoked").waitFor();
  assert.deepEqual(await actionsOf(row(page, "Old laptop")), [], "a revoked key offers no actions");
  assert.equal(await rows(page).count(), 6);

  await page.setViewportSize({ width: 1280, height: 560 });
  mkdirSync(`${root}docs`, { recursive: true });
  await page.screenshot({ path: SCREENSHOT, fullPage: true });

  // "Expiring soon" means within expiring-days (default 7): at 1 day, 3 days left is active.
  await page.locator("latchkey-keys").evaluate((el) => el.setAttribute("expiring-days", "1"));
  assert.equal(await row(page, "Metrics dashboard").getAttribute("data-status"), "active");
});

test("a long list pages with Load more", async ({ page }) => {
  const sub = newSubject("heidi");
  const token = await devToken(sub);
  for (let i = 1; i <= 52; i++) await createKey(token, { name: `Key ${String(i).padStart(2, "0")}` });
  await signIn(page, sub);
  assert.equal(await rows(page).count(), 50);
  await page.getByRole("button", { name: "Load more" }).click();
  await row(page, "Key 01").waitFor();
  assert.equal(await rows(page).count(), 52);
  await page.getByRole("button", { name: "Load more" }).waitFor({ state: "hidden" });
});

test("a failing token provider is reported, not swallowed", async ({ page }) => {
  await page.goto(hostUrl);
  await page.locator("latchkey-keys").evaluate((el) => {
    el.tokenProvider = async () => {
      throw new Error("session expired");
    };
  });
  await page
    .locator("latchkey-keys p[part=error]")
    .filter({ hasText: "Could not get a token: session expired" })
    .waitFor();
});

test("follows the light and dark colour schemes", async ({ page }) => {
  await signIn(page, "grace");
  const colours = () =>
    page.locator("latchkey-keys").evaluate((el) => [getComputedStyle(el).backgroundColor, getComputedStyle(el).color]);
  assert.deepEqual(await colours(), ["rgb(255, 255, 255)", "rgb(26, 29, 33)"]);
  await page.emulateMedia({ colorScheme: "dark" });
  assert.deepEqual(await colours(), ["rgb(22, 25, 29)", "rgb(231, 234, 238)"]);
});

test("revoke asks first: cancel keeps the key, confirm revokes it", async ({ page }) => {
  const sub = newSubject("dave");
  const token = await devToken(sub);
  const { key } = await createKey(token, { name: "Staging" });
  await signIn(page, sub);

  await row(page, "Staging").getByRole("button", { name: "Revoke Staging" }).click();
  const confirm = page.getByRole("alertdialog", { name: "Revoke “Staging”?" });
  await confirm.getByText("This cannot be undone").waitFor();
  await confirm.getByRole("button", { name: "Cancel" }).click();
  await confirm.waitFor({ state: "hidden" });
  assert.equal(await verify(key), "VALID");

  await row(page, "Staging").getByRole("button", { name: "Revoke Staging" }).click();
  await confirm.getByRole("button", { name: "Revoke key" }).click();
  await confirm.waitFor({ state: "hidden" });
  await row(page, "Staging").waitFor({ state: "detached" });
  await page.getByRole("status").filter({ hasText: "Key Staging revoked." }).waitFor();
  assert.equal(await verify(key), "REVOKED");
});

test("API errors are shown from the problem's detail, field by field", async ({ page }) => {
  const sub = newSubject("erin");
  await signIn(page, sub);
  await page.getByRole("button", { name: "Create key" }).click();
  const dialog = page.getByRole("dialog", { name: "Create an API key" });
  await dialog.getByLabel("Name").fill("Bad scopes");
  await dialog.getByLabel("Scopes").fill("Not-A-Scope");
  await dialog.getByRole("button", { name: "Create key" }).click();
  await dialog.getByRole("alert").filter({ hasText: "The request body is invalid" }).waitFor();
  await dialog.getByText("Must be lowercase resource:action, resource:* or *").waitFor();
  assert.equal(await dialog.getByLabel("Scopes").getAttribute("aria-invalid"), "true");
  await page.keyboard.press("Escape");
  await dialog.waitFor({ state: "hidden" });

  // A token the API refuses: the 401's detail is shown.
  await page.evaluate(() => (document.querySelector("latchkey-keys").token = "not.a.jwt"));
  const alert = page.locator("latchkey-keys p[part=error]").first();
  await alert.waitFor();
  assert.match(await alert.textContent(), /token/i);
});

test("a host page on another origin embeds the component (CORS), with a token provider", async ({ page }) => {
  const responses = [];
  page.on("response", (r) => r.url().startsWith(`${api}/v1/`) && responses.push(r));
  await page.goto(hostUrl);
  await page.getByRole("button", { name: "Create key" }).and(page.locator(":enabled")).waitFor();
  await page.getByRole("button", { name: "Create key" }).click();
  const dialog = page.getByRole("dialog", { name: "Create an API key" });
  await dialog.getByLabel("Name").fill("Embedded key");
  await dialog.getByLabel("Owner").selectOption("workspace");
  await dialog.getByRole("checkbox", { name: "metrics:read" }).check();
  await dialog.getByRole("button", { name: "Create key" }).click();
  const secretDialog = page.getByRole("dialog", { name: /Your new key/ });
  const key = await secretDialog.locator("code[part=secret]").textContent();
  await page.keyboard.press("Escape");
  await secretDialog.waitFor({ state: "hidden" });
  assert.equal(await inDom(page, key), false);
  await row(page, "Embedded key").getByText("Workspace acme").waitFor();
  await row(page, "Embedded key").getByText("metrics:read").waitFor();

  // A lifecycle change across origins: PATCH needs a preflight, which the API answers for the host.
  await row(page, "Embedded key").getByRole("button", { name: "Disable Embedded key" }).click();
  await page.getByRole("alertdialog").getByRole("button", { name: "Disable key" }).click();
  await row(page, "Embedded key").getByText("Disabled").waitFor();
  assert.equal(await verify(key), "DISABLED");

  // Themed by the host: a custom property and a ::part rule reach into the shadow tree.
  const create = page.getByRole("button", { name: "Create key" });
  assert.equal(await create.evaluate((b) => getComputedStyle(b).backgroundColor), "rgb(0, 128, 0)");
  const title = page.getByRole("heading", { name: "API keys" });
  assert.equal(await title.evaluate((t) => getComputedStyle(t).letterSpacing), "2px");

  const created = responses.find((r) => r.request().method() === "POST");
  assert.equal(created.status(), 201);
  assert.equal(await created.headerValue("access-control-allow-origin"), hostUrl);
  const listed = responses.find((r) => r.request().method() === "GET" && r.url().includes("/v1/keys"));
  assert.equal(await listed.headerValue("access-control-allow-origin"), hostUrl);
  const patched = responses.find((r) => r.request().method() === "PATCH");
  assert.equal(patched.status(), 200);
  assert.equal(await patched.headerValue("access-control-allow-origin"), hostUrl);
});

test("a host origin not in ALLOWED_ORIGINS gets no access, and is told", async ({ page }, expectConsoleErrors) => {
  expectConsoleErrors(/CORS|Failed to load resource|ERR_FAILED/);
  await page.goto(hostUrl.replace("127.0.0.1", "localhost"));
  const alert = page.locator("latchkey-keys p[part=error]").first();
  await alert.waitFor();
  assert.match(await alert.textContent(), /origin is not allowed/);
  assert.equal(await rows(page).count(), 0);
});

test("rotate asks first, shows the new key once, and the old key keeps working for the grace chosen", async ({
  page,
}) => {
  const sub = newSubject("ivan");
  const token = await devToken(sub);
  const billing = await createKey(token, { name: "Billing", scopes: ["models:invoke"] });
  const webhooks = await createKey(token, { name: "Webhooks" });
  await signIn(page, sub);

  // Cancel changes nothing; the grace defaults to 0 (the API's default: stop the old key at once).
  const rotateBilling = rowOf(page, billing.id).getByRole("button", { name: "Rotate Billing" });
  await rotateBilling.click();
  const confirm = page.getByRole("alertdialog", { name: "Rotate “Billing”?" });
  const grace = confirm.getByLabel("The old key keeps working");
  assert.equal(await grace.inputValue(), "0");
  await confirm.getByRole("button", { name: "Cancel" }).click();
  await confirm.waitFor({ state: "hidden" });
  assert.equal(await rows(page).count(), 2);

  // With a grace of an hour: a new key, shown once; the old one works until then and is "expiring".
  await rotateBilling.click();
  await grace.selectOption({ label: "For 1 hour" });
  await confirm.getByRole("button", { name: "Rotate key" }).click();
  const secretDialog = page.getByRole("dialog", { name: "Your new key “Billing”" });
  await secretDialog.getByText("you won't see this key again").waitFor();
  const key = await secretDialog.locator("code[part=secret]").textContent();
  assert.match(key, /^lk_[0-9A-Za-z]{49}$/);
  assert.notEqual(key, billing.key);
  await secretDialog.getByRole("button", { name: "Copy key" }).click();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), key);
  await secretDialog.getByRole("button", { name: "Done" }).click();
  await secretDialog.waitFor({ state: "hidden" });
  assert.equal(await inDom(page, key), false, "the new key must be gone from the DOM once the dialog closes");
  await page.getByRole("status").filter({ hasText: "Key Billing rotated." }).waitFor();

  const replacements = await replacementsOf(token, billing.id);
  assert.equal(replacements.length, 1);
  const [replacement] = replacements;
  assert.equal(replacement.start, key.slice(0, 9));
  const newRow = rowOf(page, replacement.id);
  await newRow.waitFor();
  assert.equal(await newRow.getAttribute("data-status"), "active");
  await newRow.getByText(`replaces ${billing.start}…`).waitFor();
  await newRow.getByText("models:invoke").waitFor();
  const oldRow = rowOf(page, billing.id);
  await oldRow.getByText(`replaced by ${replacement.start}…`).waitFor();
  assert.equal(await oldRow.getAttribute("data-status"), "expiring");
  const oldExpiry = Date.parse(await oldRow.locator("time").first().getAttribute("datetime"));
  assert.ok(Math.abs(oldExpiry - (Date.now() + 3600_000)) < 120_000, "the old key expires in an hour");
  assert.equal(await verify(key), "VALID");
  assert.equal(await verify(billing.key), "VALID", "the old key works during the grace");

  // With the default: the old key stops at once, shows as expired and offers only Revoke.
  await rowOf(page, webhooks.id).getByRole("button", { name: "Rotate Webhooks" }).click();
  await page.getByRole("alertdialog").getByRole("button", { name: "Rotate key" }).click();
  const secondDialog = page.getByRole("dialog", { name: "Your new key “Webhooks”" });
  const second = await secondDialog.locator("code[part=secret]").textContent();
  await page.keyboard.press("Escape");
  await secondDialog.waitFor({ state: "hidden" });
  assert.equal(await inDom(page, second), false);
  await page.waitForFunction(
    (id) =>
      document.querySelector("latchkey-keys").shadowRoot.querySelector(`tr[data-key-id="${id}"]`)?.dataset.status ===
      "expired",
    webhooks.id,
  );
  assert.deepEqual(await actionsOf(rowOf(page, webhooks.id)), ["revoke"]);
  assert.equal(await verify(webhooks.key), "EXPIRED");
  assert.equal(await verify(second), "VALID");
  assert.equal(await rows(page).count(), 4);
});

test("disable asks first and the badge follows; a disabled key fails verification until enabled", async ({ page }) => {
  const sub = newSubject("judy");
  const token = await devToken(sub);
  const feed = await createKey(token, { name: "Partner feed" });
  await signIn(page, sub);
  const feedRow = rowOf(page, feed.id);

  await feedRow.getByRole("button", { name: "Disable Partner feed" }).click();
  const confirm = page.getByRole("alertdialog", { name: "Disable “Partner feed”?" });
  await confirm.getByText("until you enable the key again").waitFor();
  await confirm.getByRole("button", { name: "Cancel" }).click();
  await confirm.waitFor({ state: "hidden" });
  assert.equal(await verify(feed.key), "VALID");

  await feedRow.getByRole("button", { name: "Disable Partner feed" }).click();
  await confirm.getByRole("button", { name: "Disable key" }).click();
  await confirm.waitFor({ state: "hidden" });
  await feedRow.getByText("Disabled").waitFor();
  assert.equal(await feedRow.getAttribute("data-status"), "disabled");
  await page.getByRole("status").filter({ hasText: "Key Partner feed disabled." }).waitFor();
  assert.equal(await verify(feed.key), "DISABLED");
  assert.equal((await apiCall(token, "GET", `/v1/keys/${feed.id}`)).body.enabled, false);
  assert.deepEqual(await actionsOf(feedRow), ["rotate", "enable", "revoke"]);
  await waitForFocusOn(page, "enable");

  // Focus is on Enable (above), so the keyboard undoes the disable; focus then moves to Disable.
  await page.keyboard.press("Enter");
  await feedRow.getByText("Active").waitFor();
  assert.equal(await feedRow.getAttribute("data-status"), "active");
  await page.getByRole("status").filter({ hasText: "Key Partner feed enabled." }).waitFor();
  assert.equal(await verify(feed.key), "VALID");
  assert.deepEqual(await actionsOf(feedRow), ["rotate", "disable", "revoke"]);
  await waitForFocusOn(page, "disable");
});

test("errors on rotate and enable are shown from the problem's detail", async ({ page }, expectConsoleErrors) => {
  expectConsoleErrors(/status of (403|409)/);
  const sub = newSubject("mallory");
  const token = await devToken(sub);
  const full = await createKey(token, { name: "Full access" });
  const manager = await createKey(token, { name: "Key manager", scopes: ["keys:read", "keys:write"] });
  const paused = await createKey(token, { name: "Paused" });
  await patchKey(token, paused.id, { enabled: false });
  // What the API says to a key that may not manage a stronger one (and it changes nothing).
  const forbidden = await apiCall(manager.key, "POST", `/v1/keys/${full.id}/rotate`, {});
  assert.equal(forbidden.status, 403);

  // Signed in with the weaker key: rotating the stronger one is refused, and the dialog says why.
  await signIn(page, sub);
  await page.locator("latchkey-keys").evaluate((el, key) => (el.token = key), manager.key);
  await rowOf(page, full.id).waitFor();
  await waitIdle(page);
  await rowOf(page, full.id).getByRole("button", { name: "Rotate Full access" }).click();
  const confirm = page.getByRole("alertdialog", { name: "Rotate “Full access”?" });
  await confirm.getByRole("button", { name: "Rotate key" }).click();
  await confirm.getByRole("alert").filter({ hasText: forbidden.body.detail }).waitFor();
  assert.equal(await confirm.getByRole("button", { name: "Rotate key" }).isEnabled(), true, "the user may retry");
  await page.keyboard.press("Escape");
  await confirm.waitFor({ state: "hidden" });
  assert.deepEqual(await replacementsOf(token, full.id), [], "nothing was rotated");
  assert.equal(await verify(full.key), "VALID");

  // Enable has no confirmation: its error shows above the list.
  const refused = await apiCall(manager.key, "PATCH", `/v1/keys/${paused.id}`, { enabled: true });
  assert.equal(refused.status, 403);
  await rowOf(page, paused.id).getByRole("button", { name: "Enable Paused" }).click();
  await page.locator("latchkey-keys p[part=error]").filter({ hasText: refused.body.detail }).waitFor();
  assert.equal(await verify(paused.key), "DISABLED");

  // Revoked elsewhere while the dialog was open: the API's 409 detail.
  await page.locator("latchkey-keys").evaluate((el, jwt) => (el.token = jwt), token);
  await waitIdle(page);
  await rowOf(page, manager.id).getByRole("button", { name: "Rotate Key manager" }).click();
  assert.equal((await apiCall(token, "DELETE", `/v1/keys/${manager.id}`)).status, 204);
  const conflict = await apiCall(token, "POST", `/v1/keys/${manager.id}/rotate`, {});
  assert.equal(conflict.status, 409);
  const rotateManager = page.getByRole("alertdialog", { name: "Rotate “Key manager”?" });
  await rotateManager.getByRole("button", { name: "Rotate key" }).click();
  await rotateManager.getByRole("alert").filter({ hasText: conflict.body.detail }).waitFor();

  // Dismissed while the request is on its way: the failure shows above the list, not in a closed dialog.
  await page.keyboard.press("Escape");
  await rotateManager.waitFor({ state: "hidden" });
  let release;
  const held = new Promise((resolve) => (release = resolve));
  await page.route(`**/v1/keys/${manager.id}/rotate`, async (route) => {
    await held;
    await route.continue();
  });
  await rowOf(page, manager.id).getByRole("button", { name: "Rotate Key manager" }).click();
  await rotateManager.getByRole("button", { name: "Rotate key" }).click();
  await page.keyboard.press("Escape");
  await rotateManager.waitFor({ state: "hidden" });
  release();
  await page.locator("latchkey-keys section p[part=error]").filter({ hasText: conflict.body.detail }).waitFor();
});

test("keyboard only: rotate with a grace, copy, close with Escape", async ({ page }) => {
  const sub = newSubject("kim");
  const token = await devToken(sub);
  const old = await createKey(token, { name: "Keyboard rotate" });
  await signIn(page, sub);

  const rotateButton = /^button:Rotate Keyboard rotate \(lk_\w{6}…\)$/;
  await tabTo(page, rotateButton);
  await page.keyboard.press("Enter");
  const confirm = page.getByRole("alertdialog", { name: "Rotate “Keyboard rotate”?" });
  await confirm.waitFor();
  assert.match(await focused(page), /^select:/, "the grace choice has focus");
  await page.keyboard.press("Escape");
  await confirm.waitFor({ state: "hidden" });
  assert.match(await focused(page), rotateButton, "focus returns to the row's button");

  await page.keyboard.press("Enter");
  await confirm.waitFor();
  await page.keyboard.press("ArrowDown");
  assert.equal(await confirm.getByLabel("The old key keeps working").inputValue(), "3600");
  await page.keyboard.press("Tab");
  assert.equal(await focused(page), "button:Cancel");
  await page.keyboard.press("Tab");
  assert.equal(await focused(page), "button:Rotate key");
  await page.keyboard.press("Enter");
  const key = await copyNewKeyByKeyboard(page);
  assert.equal(await verify(key), "VALID");
  assert.equal(await verify(old.key), "VALID", "an hour's grace");
  await page.waitForFunction(
    (id) =>
      document.querySelector("latchkey-keys").shadowRoot.querySelector(`tr[data-key-id="${id}"]`)?.dataset.status ===
      "expiring",
    old.id,
  );
});

test("keyboard only: disable asks first (Escape keeps the key), Space confirms, Enter enables again", async ({
  page,
}) => {
  const sub = newSubject("kurt");
  const token = await devToken(sub);
  const feed = await createKey(token, { name: "Keyboard disable" });
  await signIn(page, sub);
  const feedRow = rowOf(page, feed.id);

  const disableButton = /^button:Disable Keyboard disable \(lk_\w{6}…\)$/;
  await tabTo(page, disableButton);
  await page.keyboard.press("Enter");
  const confirm = page.getByRole("alertdialog", { name: "Disable “Keyboard disable”?" });
  await confirm.waitFor();
  assert.equal(await focused(page), "button:Cancel", "the safe choice has focus");
  await page.keyboard.press("Escape");
  await confirm.waitFor({ state: "hidden" });
  assert.match(await focused(page), disableButton, "focus returns to the row's button");
  assert.equal(await verify(feed.key), "VALID");
  assert.equal((await apiCall(token, "GET", `/v1/keys/${feed.id}`)).body.enabled, true, "Escape changes nothing");

  await page.keyboard.press("Space");
  await confirm.waitFor();
  await page.keyboard.press("Tab");
  assert.equal(await focused(page), "button:Disable key");
  await page.keyboard.press("Space");
  await confirm.waitFor({ state: "hidden" });
  await feedRow.getByText("Disabled").waitFor();
  assert.equal(await feedRow.getAttribute("data-status"), "disabled");
  await page.getByRole("status").filter({ hasText: "Key Keyboard disable disabled." }).waitFor();
  assert.equal((await apiCall(token, "GET", `/v1/keys/${feed.id}`)).body.enabled, false);
  assert.equal(await verify(feed.key), "DISABLED");
  assert.deepEqual(await actionsOf(feedRow), ["rotate", "enable", "revoke"]);
  await waitForFocusOn(page, "enable");

  await page.keyboard.press("Enter");
  await feedRow.getByText("Active").waitFor();
  assert.equal((await apiCall(token, "GET", `/v1/keys/${feed.id}`)).body.enabled, true);
  assert.equal(await verify(feed.key), "VALID");
  await waitForFocusOn(page, "disable");
});

test("keyboard only: sign in, create, copy, close with Escape, revoke", async ({ page }) => {
  const sub = newSubject("frank");
  await page.goto(`${api}/ui/`);
  await tabTo(page, "input:");
  await page.keyboard.type(sub);
  await page.keyboard.press("Enter");
  await page.getByText(`Signed in as ${sub}`).waitFor();
  await waitIdle(page);

  await tabTo(page, "button:Create key");
  await page.keyboard.press("Enter");
  const dialog = page.getByRole("dialog", { name: "Create an API key" });
  await dialog.waitFor();
  assert.equal(await focused(page), "input:", "the name field has focus");
  await page.keyboard.type("Keyboard key");
  await page.keyboard.press("Enter");
  const key = await copyNewKeyByKeyboard(page);

  await row(page, "Keyboard key").waitFor();
  const revokeButton = /^button:Revoke Keyboard key \(lk_\w{6}…\)$/;
  await tabTo(page, revokeButton);
  await page.keyboard.press("Enter");
  const confirm = page.getByRole("alertdialog");
  await confirm.waitFor();
  assert.equal(await focused(page), "button:Cancel", "the safe choice has focus");
  await page.keyboard.press("Escape");
  await confirm.waitFor({ state: "hidden" });
  assert.match(await focused(page), revokeButton, "focus returns to the row's button");
  assert.equal(await verify(key), "VALID");

  await page.keyboard.press("Enter");
  await confirm.waitFor();
  await page.keyboard.press("Tab");
  assert.equal(await focused(page), "button:Revoke key");
  await page.keyboard.press("Enter");
  await confirm.waitFor({ state: "hidden" });
  await row(page, "Keyboard key").waitFor({ state: "detached" });
  assert.equal(await verify(key), "REVOKED");
  assert.equal(await focused(page), "button:Create key");
});

test(
  "phone (390 px) and 320 px: cards, no sideways pan, every action in view; axe finds nothing (screenshots)",
  async ({ page }) => {
    const sub = newSubject("paula");
    const token = await devToken(sub, "globex");
    await createKey(token, { name: "Production server", scopes: ["models:invoke"], resources: ["model_a"] });
    await createKey(token, { name: "Team automation", owner: "workspace", scopes: ["keys:read", "keys:write"] });
    const paused = await createKey(token, {
      name: "Nightly export with a rather long name",
      expires_at: new Date(Date.now() + 3 * DAY_MS).toISOString(),
    });
    await patchKey(token, paused.id, { enabled: false });
    await page.setViewportSize(PHONE);
    await signIn(page, sub, "globex");
    await page.getByText("Signed in as paula · workspace globex").waitFor();
    await expectNoPan(page, "list at 390 px");
    await expectButtonsInView(page, "list at 390 px");
    // Rows are cards: each cell on its own line, labelled.
    const display = await rowOf(page, paused.id).evaluate((tr) => getComputedStyle(tr).display);
    assert.equal(display, "block");
    assert.deepEqual(await actionsOf(rowOf(page, paused.id)), ["rotate", "enable", "revoke"]);
    await expectAccessible(page, "the list at 390 px");
    await page.screenshot({ path: PHONE_SCREENSHOT, fullPage: true });

    await openDetail(page, paused.id);
    await expectNoPan(page, "detail at 390 px");
    await expectButtonsInView(page, "detail at 390 px");
    await expectAccessible(page, "the detail view at 390 px");
    await detail(page).getByRole("button", { name: "Edit" }).click();
    const edit = page.getByRole("dialog", { name: /^Edit/ });
    await edit.waitFor();
    await expectNoPan(page, "edit at 390 px");
    await expectAccessible(page, "the edit form at 390 px");
    await page.keyboard.press("Escape");

    await page.setViewportSize({ width: 320, height: 700 });
    await detail(page).getByRole("button", { name: "All keys" }).click();
    await expectNoPan(page, "list at 320 px");
    await expectButtonsInView(page, "list at 320 px");
  },
  { bypassCSP: true },
);

test(
  "axe at 1280 px: the list, the detail view, the edit form and the shown-once dialog",
  async ({ page }) => {
    const sub = newSubject("quinn");
    const token = await devToken(sub, "acme");
    const key = await createKey(token, {
      name: "Checked",
      scopes: ["metrics:read"],
      ratelimits: [{ name: "burst", limit: 5, duration_ms: 1000 }],
    });
    await page.setViewportSize(DESKTOP);
    await signIn(page, sub, "acme");
    await expectAccessible(page, "the list at 1280 px");
    await openDetail(page, key.id);
    await expectAccessible(page, "the detail view at 1280 px");
    await detail(page).getByRole("button", { name: "Edit" }).click();
    await page.getByRole("dialog", { name: "Edit “Checked”" }).waitFor();
    await expectAccessible(page, "the edit form at 1280 px");
    await page.keyboard.press("Escape");
    await detail(page).getByRole("button", { name: "All keys" }).click();
    await page.getByRole("button", { name: "Create key" }).click();
    await page.getByRole("dialog", { name: "Create an API key" }).getByLabel("Name").fill("Shown once");
    await page.keyboard.press("Enter");
    const secret = page.getByRole("dialog", { name: /Your new key/ });
    await secret.waitFor();
    await expectAccessible(page, "the shown-once dialog at 1280 px");
    await page.setViewportSize(PHONE);
    await expectAccessible(page, "the shown-once dialog at 390 px");
    await expectNoPan(page, "the shown-once dialog at 390 px");
    await page.keyboard.press("Escape");
    await secret.waitFor({ state: "hidden" });
  },
  { bypassCSP: true },
);

test("detail view: scopes in words, expiry, allow-list, rate limits, credits, a usage chart and events (screenshot)", async ({
  page,
}) => {
  const sub = newSubject("rita");
  const token = await devToken(sub);
  const metered = await createKey(token, {
    name: "Metered partner",
    resources: ["model_a", "model_b"],
    expires_at: new Date(Date.now() + 60 * DAY_MS).toISOString(),
    allowed_ips: ["127.0.0.1", "10.0.0.0/8"],
    ratelimits: [{ name: "burst", limit: 10, duration_ms: 1000 }],
    credits: { remaining: 1000, refill: { amount: 1000, interval: "month" } },
  });
  // Three uses, counted in batches: the first flush comes with a request after half a minute.
  const use = () =>
    fetch(`${api}/v1/verify`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ key: metered.key, ip: "127.0.0.1" }),
    });
  for (let i = 0; i < 3; i++) assert.equal((await use()).status, 200);
  await patchKey(token, metered.id, { name: "Metered partner", metadata: { team: "growth" } });
  await sleep(31_000);
  await use();
  const usage = await waitForUsage(token, metered.id, 3);
  const { body: now } = await apiCall(token, "GET", `/v1/keys/${metered.id}`);

  await page.setViewportSize(DESKTOP);
  await signIn(page, sub);
  await openDetail(page, metered.id);
  const view = detail(page);
  await view.getByRole("heading", { name: "Metered partner" }).waitFor();
  assert.equal(await focused(page), "h2:Metered partner", "focus moves to the view's title");
  const setting = async (term) =>
    (await view.locator("dt", { hasText: term }).locator("xpath=following-sibling::dd[1]").textContent()).trim();
  assert.equal(await setting("Scopes"), "Full access: every action on every resource");
  assert.equal(await setting("Resources"), "Only model_a, model_b");
  assert.match(await setting("Expires"), /^\w{3} \d+, \d{4}$/);
  assert.equal(await setting("Allowed from"), "127.0.0.1, 10.0.0.0/8");
  assert.equal(await setting("Rate limits"), "10 requests per second (burst)");
  assert.equal(
    await setting("Credits"),
    `${now.credits.remaining.toLocaleString("en-US")} left · Refilled to 1,000 every month`,
  );
  assert.ok(now.credits.remaining < 1000, "the uses spent credits");

  // The chart: one bar per day of the range, today's as tall as its count, with a summary in words.
  const chart = view.locator("svg[part=chart]");
  assert.equal(await chart.getAttribute("role"), "img");
  const bars = await chart.locator("g[data-total]").evaluateAll((gs) => gs.map((g) => Number(g.dataset.total)));
  assert.deepEqual(
    bars,
    usage.buckets.map((b) => b.total),
  );
  const total = bars.reduce((a, b) => a + b, 0);
  await view.getByText(new RegExp(`^${total} verifications in the last 30 days: ${total} passed, 0 refused`)).waitFor();
  assert.ok(Number(await chart.locator("g[data-total]").last().locator("rect.bar-valid").getAttribute("height")) > 0);

  // The audit events, newest first.
  const events = await view.locator("ol[part=events] li").evaluateAll((lis) => lis.map((li) => li.dataset.action));
  assert.deepEqual(events, ["updated", "created"]);
  await view.getByText(`Updated by user:${sub}: metadata`).waitFor();
  await view.getByText(`Created by user:${sub}`).waitFor();
  await page.screenshot({ path: DETAIL_SCREENSHOT, fullPage: true });

  // Back to the list: focus returns to the key's name.
  await page.keyboard.press("Shift+Tab");
  assert.equal(await focused(page), "button:← All keys");
  await page.keyboard.press("Enter");
  await detail(page).waitFor({ state: "hidden" });
  assert.match(await focused(page), /^button:Metered partner \(lk_\w{6}…\): details$/);
});

test("edit: a PATCH round trip by keyboard, then a refused edit shows the server's detail", async ({
  page,
}, expectConsoleErrors) => {
  expectConsoleErrors(/status of 403/);
  const sub = newSubject("sam");
  const token = await devToken(sub);
  const key = await createKey(token, { name: "Reports", scopes: ["metrics:read"] });
  const manager = await createKey(token, { name: "Manager", scopes: ["keys:read", "keys:write", "metrics:read"] });
  await signIn(page, sub);

  // Keyboard only: the key's name opens its detail view, Edit opens the form.
  await tabTo(page, /^button:Reports \(lk_\w{6}…\): details$/);
  await page.keyboard.press("Enter");
  await detail(page).waitFor();
  await tabTo(page, "button:Edit");
  await page.keyboard.press("Enter");
  const edit = page.getByRole("dialog", { name: "Edit “Reports”" });
  await edit.waitFor();
  assert.equal(await focused(page), "input:", "the name field has focus");
  await page.keyboard.press("ControlOrMeta+a");
  await page.keyboard.type("Monthly reports");
  await edit.getByLabel("Scopes").fill("metrics:read models:invoke");
  await edit.getByLabel("Allowed addresses").fill("192.0.2.0/24");
  await edit.getByLabel("Expires").selectOption({ label: "In 30 days" });
  await edit.getByRole("button", { name: "Add a rate limit" }).click();
  await edit.getByLabel("Name", { exact: true }).last().fill("per-minute");
  await edit.getByLabel("Requests").fill("60");
  await edit.getByLabel("Per").selectOption("60000");
  await edit.getByLabel("Limit this key with credits").check();
  await edit.getByLabel("Balance").fill("500");
  await edit.getByLabel("Refill", { exact: true }).selectOption("day");
  await edit.getByLabel("Refill to").fill("500");
  const patched = page.waitForRequest((r) => r.method() === "PATCH");
  await edit.getByLabel("Refill to").press("Enter");
  const sent = (await patched).postDataJSON();
  assert.deepEqual(Object.keys(sent).sort(), ["allowed_ips", "credits", "expires_at", "name", "ratelimits", "scopes"]);
  await edit.waitFor({ state: "hidden" });
  await page.getByRole("status").filter({ hasText: "Key Monthly reports updated." }).waitFor();
  const { body: stored } = await apiCall(token, "GET", `/v1/keys/${key.id}`);
  assert.equal(stored.name, "Monthly reports");
  assert.deepEqual(stored.scopes, ["metrics:read", "models:invoke"]);
  assert.deepEqual(stored.allowed_ips, ["192.0.2.0/24"]);
  assert.deepEqual(stored.ratelimits, [{ name: "per-minute", limit: 60, duration_ms: 60000 }]);
  assert.deepEqual(stored.credits, { remaining: 500, refill: { amount: 500, interval: "day" }, low_threshold: null });
  assert.ok(Math.abs(Date.parse(stored.expires_at) - (Date.now() + 30 * DAY_MS)) < 120_000);
  await detail(page).getByRole("heading", { name: "Monthly reports" }).waitFor();
  await detail(page).getByText("60 requests per minute (per-minute)").waitFor();
  await waitForFocusIn(page, "edit");

  // Nothing changed: no request, the form just closes.
  await page.keyboard.press("Enter");
  const again = page.getByRole("dialog", { name: "Edit “Monthly reports”" });
  await again.waitFor();
  await again.getByRole("button", { name: "Save changes" }).click();
  await again.waitFor({ state: "hidden" });
  await page.getByRole("status").filter({ hasText: "Nothing changed." }).waitFor();

  // Signed in with a weaker key: widening its own scopes is refused; the form shows the server's detail.
  const refused = await apiCall(manager.key, "PATCH", `/v1/keys/${manager.id}`, { scopes: ["*"] });
  assert.equal(refused.status, 403);
  await page.locator("latchkey-keys").evaluate((el, k) => (el.token = k), manager.key);
  await waitIdle(page);
  await openDetail(page, manager.id);
  await detail(page).getByRole("button", { name: "Edit" }).click();
  const editManager = page.getByRole("dialog", { name: "Edit “Manager”" });
  await editManager.getByLabel("Scopes").fill("*");
  await editManager.getByRole("button", { name: "Save changes" }).click();
  await editManager.getByRole("alert").filter({ hasText: refused.body.detail }).waitFor();
  assert.equal(await editManager.getByRole("button", { name: "Save changes" }).isEnabled(), true);
  assert.deepEqual((await apiCall(token, "GET", `/v1/keys/${manager.id}`)).body.scopes, [
    "keys:read",
    "keys:write",
    "metrics:read",
  ]);

  // A 422 names its field: the allow-list's message sits under it.
  await editManager.getByLabel("Scopes").fill("keys:read keys:write metrics:read");
  await editManager.getByLabel("Allowed addresses").fill("not-an-address");
  await editManager.getByRole("button", { name: "Save changes" }).click();
  await editManager.getByRole("alert").filter({ hasText: "invalid" }).waitFor();
  assert.equal(await editManager.getByLabel("Allowed addresses").getAttribute("aria-invalid"), "true");
  await page.keyboard.press("Escape");
  await editManager.waitFor({ state: "hidden" });
  assert.equal(await focused(page), "button:Edit", "focus returns to Edit");
});

test("search and filter the loaded keys by name and status, by keyboard", async ({ page }) => {
  const sub = newSubject("tara");
  const token = await devToken(sub);
  await createKey(token, { name: "Billing prod" });
  await createKey(token, { name: "Billing staging" });
  const paused = await createKey(token, { name: "Exporter" });
  await patchKey(token, paused.id, { enabled: false });
  const gone = await createKey(token, { name: "Billing old" });
  assert.equal((await apiCall(token, "DELETE", `/v1/keys/${gone.id}`)).status, 204);
  await signIn(page, sub);
  const names = () =>
    rows(page)
      .locator("th")
      .evaluateAll((ths) => ths.map((th) => th.textContent).sort());

  await tabTo(page, "input:");
  assert.equal(await page.getByLabel("Search by name").evaluate((i) => i.matches(":focus")), true);
  await page.keyboard.type("billing");
  assert.deepEqual(await names(), ["Billing prod", "Billing staging"]);
  await page.getByText("2 of 3 loaded keys match.").waitFor();
  await page.keyboard.type(" st");
  assert.deepEqual(await names(), ["Billing staging"]);
  await page.getByLabel("Search by name").fill("zzz");
  await page.getByText("No loaded key matches.").waitFor();
  await page.getByLabel("Search by name").fill("");

  await page.keyboard.press("Tab");
  await page.getByLabel("Status").selectOption("disabled");
  assert.deepEqual(await names(), ["Exporter"]);
  await page.getByLabel("Status").selectOption("active");
  assert.deepEqual(await names(), ["Billing prod", "Billing staging"]);
  // Revoked keys are loaded when asked for.
  await page.getByLabel("Status").selectOption("revoked");
  await row(page, "Billing old").waitFor();
  await waitIdle(page);
  assert.deepEqual(await names(), ["Billing old"]);
  await page.getByLabel("Search by name").fill("prod");
  await page.getByText("No loaded key matches.").waitFor();
  await page.getByLabel("Status").selectOption("all");
  await waitIdle(page);
  assert.deepEqual(await names(), ["Billing prod"]);
});

// ---- runner -----------------------------------------------------------------------------------

async function runOne(browser, { fn, options }) {
  const context = await browser.newContext({
    bypassCSP: options.bypassCSP === true,
    permissions: ["clipboard-read", "clipboard-write"],
    locale: "en-US",
    timezoneId: "UTC",
    colorScheme: "light",
    viewport: { width: 1180, height: 800 },
  });
  context.setDefaultTimeout(15_000);
  const page = await context.newPage();
  const consoleErrors = [];
  let allowed = null;
  page.on("console", (message) => message.type() === "error" && consoleErrors.push(message.text()));
  page.on("pageerror", (error) => consoleErrors.push(`uncaught: ${error.message}`));
  try {
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${TEST_TIMEOUT_MS} ms`)), TEST_TIMEOUT_MS);
    });
    await Promise.race([fn({ page, context }, (pattern) => (allowed = pattern)), timeout]).finally(() =>
      clearTimeout(timer),
    );
    // Whatever happened, nothing may be left in the page's storage, on any origin it used.
    const storage = await page.evaluate(() => ({
      local: localStorage.length,
      session: sessionStorage.length,
      cookie: document.cookie,
    }));
    assert.deepEqual(storage, { local: 0, session: 0, cookie: "" }, "storage must stay empty");
    const { cookies, origins } = await context.storageState();
    assert.deepEqual({ cookies, origins }, { cookies: [], origins: [] }, "no origin may have stored anything");
    // CSP violations, script errors and failed requests show up here; 4xx the test provoked are expected.
    const unexpected = consoleErrors.filter(
      (text) =>
        !/Failed to load resource: the server responded with a status of (401|422)/.test(text) && !allowed?.test(text),
    );
    assert.deepEqual(unexpected, [], "console errors");
  } catch (error) {
    await page.screenshot({ path: `${root}.tmp/browser-failure.png`, fullPage: true }).catch(() => {});
    throw error;
  } finally {
    await context.close();
  }
}

async function main() {
  const logFile = `${root}.tmp/browser-latchkey.log`;
  mkdirSync(`${root}.tmp`, { recursive: true });
  const hostOrigin = `http://127.0.0.1:${HOST_PORT}`;
  let server;
  let host;
  let browser;
  let passed = 0;
  let failed = 0;
  const selected = tests.filter((t) => GREP.split("|").some((part) => t.name.includes(part)));
  const stopAll = async () => {
    await browser?.close().catch(() => {});
    await host?.stop().catch(() => {});
    await server?.stop().catch(() => {});
  };
  for (const signal of ["SIGINT", "SIGTERM"]) {
    process.once(signal, () => void stopAll().finally(() => process.exit(130)));
  }
  try {
    server = await startLatchkey({ port: PORT, allowedOrigin: hostOrigin, logFile });
    api = server.api;
    host = await startHost({ port: HOST_PORT, api });
    hostUrl = host.url;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
      ],
    });
    for (const t of selected) {
      try {
        await runOne(browser, t);
        passed++;
        console.log(`ok - ${t.name}`);
      } catch (error) {
        failed++;
        console.log(
          `not ok - ${t.name}\n  ${String(error?.stack ?? error)
            .split("\n")
            .join("\n  ")}`,
        );
      }
    }
  } catch (error) {
    failed = selected.length - passed;
    console.log(`setup failed: ${error?.stack ?? error}`);
  } finally {
    await stopAll();
  }
  const skipped = tests.length - selected.length;
  console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} not selected (BROWSER_TEST_GREP)` : ""}`);
  process.exitCode = failed === 0 && passed === selected.length ? 0 : 1;
}

await main();
