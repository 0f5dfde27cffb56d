/**
 * The standalone keys page (/ui/): signs in, then hands the token to <latchkey-keys> on the same page.
 * In local development (the Worker has DEV_UI_TOKENS on, in HS256 mode) it mints a token for a subject
 * you type; otherwise it asks for a JWT. The token lives in this tab's memory only: reloading signs out.
 */
import "./latchkey-keys";

const $ = <T extends HTMLElement>(id: string): T => {
  const element = document.getElementById(id);
  if (!element) throw new Error(`#${id} is missing`);
  return element as T;
};

const form = $<HTMLFormElement>("sign-in");
const failure = $<HTMLParagraphElement>("sign-in-error");
const signedIn = $<HTMLDivElement>("signed-in");
const who = $<HTMLElement>("who");
const workspace = $<HTMLElement>("workspace");
const keys = $<HTMLElementTagNameMap["latchkey-keys"]>("keys");

// The component says who it signed in as (from /v1/whoami): the workspace joins the header.
keys.addEventListener("latchkey-signed-in", (event) => {
  const org = (event as CustomEvent<{ org_id: string | null }>).detail.org_id;
  workspace.textContent = org ? ` · workspace ${org}` : "";
});

/** The `sub` claim, for display only (the API checks the token). */
function subjectOf(token: string): string {
  try {
    const payload = JSON.parse(atob((token.split(".")[1] ?? "").replace(/-/g, "+").replace(/_/g, "/"))) as {
      sub?: unknown;
    };
    return typeof payload.sub === "string" ? payload.sub : "an unnamed subject";
  } catch {
    return "a token holder";
  }
}

async function devToken(sub: string, org: string): Promise<string> {
  const response = await fetch("/ui/dev-token", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ sub, ...(org ? { org } : {}) }),
  });
  const body = (await response.json().catch(() => ({}))) as { token?: string; detail?: string };
  if (!response.ok || !body.token) throw new Error(body.detail ?? `Signing in failed (${response.status})`);
  return body.token;
}

function signIn(token: string): void {
  keys.token = token;
  who.textContent = subjectOf(token);
  form.hidden = true;
  signedIn.hidden = false;
  for (const input of form.querySelectorAll("input")) input.value = "";
  $<HTMLButtonElement>("sign-out").focus();
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  failure.hidden = true;
  const field = (id: string) => (document.getElementById(id) as HTMLInputElement | null)?.value.trim() ?? "";
  const pending = form.dataset.mode === "dev" ? devToken(field("sub"), field("org")) : Promise.resolve(field("jwt"));
  Promise.all([pending, customElements.whenDefined("latchkey-keys")]).then(
    ([token]) => signIn(token),
    (error: unknown) => {
      failure.textContent = error instanceof Error ? error.message : String(error);
      failure.hidden = false;
    },
  );
});

$<HTMLButtonElement>("sign-out").addEventListener("click", () => {
  keys.token = null;
  workspace.textContent = "";
  signedIn.hidden = true;
  form.hidden = false;
  form.querySelector("input")?.focus();
});
