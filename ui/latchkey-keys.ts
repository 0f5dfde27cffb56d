/**
 * <latchkey-keys>: a "Settings > API keys" panel for any page. It lists the signed-in person's keys
 * (and their workspace's) as a table, or as cards when the panel is narrow; searches and filters the
 * loaded keys; opens a detail view per key (settings in words, a 30-day usage chart, audit events);
 * edits a key (one PATCH of what changed); creates keys and rotates them (showing the new key once),
 * disables and enables them, and revokes them; rotate, disable and revoke ask first. Plain custom
 * element and shadow DOM, no framework; styled by CSS custom properties and `::part`; native <button>
 * and <dialog> for keyboard use. Its API types are the client package's.
 *
 * Secrets: the host hands over the person's JWT as the `token` property or a `tokenProvider`
 * callback, never an attribute, URL or storage. A new key lives only in the "copy your key" dialog
 * and is removed from the DOM (and from memory) when that dialog closes.
 *
 * Row actions are a table (ROW_ACTIONS); which ones a key's row offers is decided by `keyActions` in
 * status.ts (pure, unit-tested), so a row never offers what the API would refuse for its state.
 */
import type { ApiKey, CreatedApiKey, EventList, KeyList, UsageReport, WhoAmI } from "@latchkey/client/types";
import { ApiError, apiRequest } from "./api";
import { detailSections } from "./detail";
import { append, h, time } from "./dom";
import { type EditField, editForm } from "./edit";
import styles from "./latchkey-keys.css";
import { patchFor } from "./patch";
import { type KeyAction, STATUS_LABELS, keyActions, keyStatus } from "./status";
import { type StatusFilter, filterKeys, scopeChip } from "./words";

export type { ApiKey } from "@latchkey/client/types";

type CreatedKey = CreatedApiKey;

/** A row action's button and what it does (`keyActions` decides where it is offered). */
interface RowAction {
  readonly label: string;
  readonly danger?: boolean;
  readonly run: (panel: LatchkeyKeys, key: ApiKey, opener: HTMLElement) => void;
}

const ROW_ACTIONS: Readonly<Record<KeyAction, RowAction>> = {
  rotate: { label: "Rotate", run: (panel, key, opener) => panel.confirmRotate(key, opener) },
  disable: { label: "Disable", run: (panel, key, opener) => panel.confirmDisable(key, opener) },
  enable: { label: "Enable", run: (panel, key) => void panel.enable(key) },
  revoke: { label: "Revoke", danger: true, run: (panel, key, opener) => panel.confirmRevoke(key, opener) },
};

/** How long the old key keeps working after a rotation (`grace_seconds`); the API's default, 0, first. */
const GRACE_CHOICES: readonly [string, string][] = [
  ["0", "Stop it now (best after a leak)"],
  ["3600", "For 1 hour"],
  ["86400", "For 24 hours"],
  ["604800", "For 7 days (the longest)"],
];

const DEFAULT_EXPIRING_DAYS = 7;
const PAGE_SIZE = 50;
const EXPIRY_CHOICES: readonly [string, string][] = [
  ["", "Never"],
  ["7", "In 7 days"],
  ["30", "In 30 days"],
  ["90", "In 90 days"],
  ["365", "In 1 year"],
  ["custom", "On a date…"],
];
const DAY_MS = 86_400_000;

const sheet = new CSSStyleSheet();
sheet.replaceSync(styles);

/** "a, b c" -> ["a", "b", "c"] */
const words = (value: string | null): string[] => (value ?? "").split(/[\s,]+/).filter(Boolean);

let ids = 0;

export class LatchkeyKeys extends HTMLElement {
  static readonly observedAttributes = ["api", "scopes", "expiring-days"];

  #token: string | null = null;
  #tokenProvider: (() => Promise<string> | string) | null = null;
  #scopes: string[] | null = null;
  #keys: ApiKey[] = [];
  #cursor: string | null = null;
  #me: WhoAmI | null = null;
  /** Bumped by every load and every change of credentials: an answer for an older one is dropped. */
  #generation = 0;
  #showRevoked = false;
  #query = "";
  #statusFilter: StatusFilter = "all";
  /** The key whose detail view is open (null: the list is shown). */
  #detailId: string | null = null;
  /** Bumped by each detail view opened and each change of credentials (older answers are dropped). */
  #views = 0;
  #detailOpener: HTMLElement | null = null;
  #uid = `lk${++ids}`;

  readonly #root: ShadowRoot;
  readonly #status = h("p", { role: "status", "aria-live": "polite", part: "announcement", class: "announcement" });
  readonly #alert = h("p", { role: "alert", part: "error", class: "error", hidden: true });
  readonly #body = h("tbody");
  readonly #table: HTMLTableElement;
  readonly #empty = h("p", { part: "empty", class: "empty", hidden: true }, "No keys yet.");
  readonly #count = h("p", { class: "muted small count", "aria-live": "polite" });
  readonly #more = h(
    "button",
    { type: "button", part: "button", hidden: true, onclick: () => void this.#load(true) },
    "Load more",
  );
  readonly #createButton = h(
    "button",
    { type: "button", part: "button button-primary", class: "primary" },
    "Create key",
  );
  readonly #list = h("div", { class: "list" });
  readonly #detail = h("section", { part: "detail", class: "detail", hidden: true });
  readonly #createDialog = h("dialog", { part: "dialog", "aria-labelledby": `${this.#uid}-create-title` });
  readonly #editDialog = h("dialog", { part: "dialog", "aria-labelledby": `${this.#uid}-edit-title` });
  readonly #secretDialog = h("dialog", { part: "dialog", "aria-labelledby": `${this.#uid}-secret-title` });
  readonly #confirmDialog = h("dialog", {
    part: "dialog",
    role: "alertdialog",
    "aria-labelledby": `${this.#uid}-confirm-title`,
  });

  constructor() {
    super();
    this.#root = this.attachShadow({ mode: "open" });
    this.#root.adoptedStyleSheets = [sheet];
    this.#createButton.addEventListener("click", () => this.#openCreate());
    const uid = this.#uid;
    const titleId = `${uid}-title`;
    this.#table = h(
      "table",
      { part: "table", "aria-labelledby": titleId },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ...["Name", "Key", "Owner", "Scopes", "Status", "Created", "Last used"].map((label) =>
            h("th", { scope: "col" }, label),
          ),
          h("th", { scope: "col" }, h("span", { class: "sr-only" }, "Actions")),
        ),
      ),
      this.#body,
    );
    const showRevoked = h("input", {
      type: "checkbox",
      id: `${uid}-revoked`,
      onchange: (event: Event) => {
        this.#showRevoked = (event.target as HTMLInputElement).checked;
        void this.#load(false);
      },
    });
    const search = h("input", {
      type: "search",
      id: `${uid}-search`,
      autocomplete: "off",
      "aria-describedby": `${uid}-search-hint`,
      oninput: (event: Event) => {
        this.#query = (event.target as HTMLInputElement).value;
        this.#renderRows();
      },
    });
    const statusFilter = h(
      "select",
      {
        id: `${uid}-filter`,
        onchange: (event: Event) => {
          const value = (event.target as HTMLSelectElement).value as StatusFilter;
          const reload = (value === "revoked") !== (this.#statusFilter === "revoked");
          this.#statusFilter = value;
          if (reload && !this.#showRevoked) void this.#load(false);
          else this.#renderRows();
        },
      },
      h("option", { value: "all" }, "All"),
      ...(["active", "expiring", "expired", "disabled", "revoked"] as const).map((status) =>
        h("option", { value: status }, STATUS_LABELS[status]),
      ),
    );
    append(
      this.#list,
      h("header", { part: "header" }, h("h2", { id: titleId, part: "title" }, "API keys"), this.#createButton),
      h(
        "div",
        { class: "filters", part: "filters" },
        h("div", { class: "field" }, h("label", { for: search.id }, "Search by name"), search),
        h("div", { class: "field" }, h("label", { for: statusFilter.id }, "Status"), statusFilter),
        h("label", { class: "toggle" }, showRevoked, "Show revoked keys"),
      ),
      h("p", { id: `${uid}-search-hint`, class: "hint" }, "Searches the keys loaded on this page."),
      this.#count,
      h("div", { class: "scroll" }, this.#table),
      this.#empty,
      this.#more,
    );
    append(
      this.#root,
      h("section", { part: "panel", class: "panel" }, this.#alert, this.#status, this.#list, this.#detail),
      this.#createDialog,
      this.#editDialog,
      this.#secretDialog,
      this.#confirmDialog,
    );
    // The new key lives only while its dialog is open, whatever closes it: Done and Escape ("cancel")
    // remove it before the dialog closes, and "close" (a task later) catches any other way.
    this.#secretDialog.addEventListener("cancel", () => this.#closeSecret());
    this.#secretDialog.addEventListener("close", () => this.#secretDialog.replaceChildren());
    for (const dialog of [this.#createDialog, this.#confirmDialog, this.#editDialog]) {
      dialog.addEventListener("close", () => dialog.replaceChildren());
    }
  }

  /** The signed-in person's JWT. Write-only in spirit: kept in memory, never reflected to an attribute. */
  set token(value: string | null) {
    this.#token = value || null;
    this.#reset();
  }
  get token(): string | null {
    return this.#token;
  }

  /** Called before every request for a current JWT (e.g. your auth SDK's getToken); wins over `token`. */
  set tokenProvider(value: (() => Promise<string> | string) | null) {
    this.#tokenProvider = typeof value === "function" ? value : null;
    this.#reset();
  }
  get tokenProvider(): (() => Promise<string> | string) | null {
    return this.#tokenProvider;
  }

  /** The scopes offered when creating a key (the `scopes` attribute, space- or comma-separated). */
  set scopes(value: readonly string[] | null) {
    this.#scopes = value ? [...value] : null;
  }
  get scopes(): string[] {
    return this.#scopes ?? words(this.getAttribute("scopes"));
  }

  /** Keys expiring within this many days are shown as "Expiring soon" (attribute `expiring-days`). */
  get expiringDays(): number {
    const days = Number(this.getAttribute("expiring-days"));
    return this.hasAttribute("expiring-days") && Number.isFinite(days) && days >= 0 ? days : DEFAULT_EXPIRING_DAYS;
  }
  set expiringDays(value: number) {
    this.setAttribute("expiring-days", String(value));
  }

  /** The API's base URL (attribute `api`); by default the origin that served this script. */
  get api(): string {
    return this.getAttribute("api") || new URL(import.meta.url).origin;
  }
  set api(value: string) {
    this.setAttribute("api", value);
  }

  connectedCallback(): void {
    // A host may set properties before this module loads: they landed on the plain element, shadowing
    // the accessors. Take them over.
    let signedIn = false;
    for (const property of ["token", "tokenProvider", "scopes"] as const) {
      if (!Object.prototype.hasOwnProperty.call(this, property)) continue;
      const own = this as unknown as Record<string, unknown>;
      const value = own[property];
      delete own[property];
      own[property] = value; // the token setters load the list
      signedIn ||= property !== "scopes";
    }
    if (signedIn) return;
    if (this.#hasCredentials()) void this.refresh();
    else this.#renderRows();
  }

  attributeChangedCallback(name: string, old: string | null, value: string | null): void {
    if (old === value || !this.isConnected) return;
    if (name === "api") this.#reset();
    else if (name === "expiring-days") this.#renderRows();
  }

  /** Reloads the list (and who is signed in) from the API. */
  async refresh(): Promise<void> {
    this.#showError(null);
    const generation = ++this.#generation;
    try {
      const me = await this.#request<WhoAmI>("GET", "/v1/whoami");
      if (generation !== this.#generation) return;
      this.#me = me;
      this.#emit("latchkey-signed-in", { owner_id: me.owner_id, org_id: me.org_id ?? null });
    } catch (error) {
      if (generation !== this.#generation) return;
      this.#me = null;
      this.#keys = [];
      this.#renderRows();
      this.#showError(error);
      return;
    }
    await this.#load(false);
  }

  #hasCredentials(): boolean {
    return this.#token !== null || this.#tokenProvider !== null;
  }

  /** New credentials or API: forget everything shown for the previous ones. */
  #reset(): void {
    this.#generation++;
    this.removeAttribute("aria-busy");
    this.#keys = [];
    this.#me = null;
    this.#cursor = null;
    this.#views++;
    this.#closeSecret();
    for (const dialog of [this.#createDialog, this.#confirmDialog, this.#editDialog]) dialog.close();
    if (this.#detailId !== null) this.#closeDetail(null);
    if (!this.isConnected) return;
    if (this.#hasCredentials()) void this.refresh();
    else {
      this.#renderRows();
      this.#showError(null);
    }
  }

  #request<T>(method: string, path: string, body?: unknown): Promise<T> {
    return apiRequest<T>(
      this.api,
      async () => (this.#tokenProvider ? await this.#tokenProvider() : this.#token),
      method,
      path,
      body,
    );
  }

  /** Loads the first page (or, with `more`, the next one); a newer load or sign-out wins over it. */
  async #load(more: boolean): Promise<void> {
    const generation = ++this.#generation;
    this.setAttribute("aria-busy", "true");
    const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (this.#showRevoked || this.#statusFilter === "revoked") query.set("include_revoked", "true");
    if (more && this.#cursor) query.set("cursor", this.#cursor);
    let failure: unknown = null;
    let page: KeyList | null = null;
    try {
      page = await this.#request<KeyList>("GET", `/v1/keys?${query}`);
    } catch (error) {
      failure = error;
    }
    if (generation !== this.#generation) return;
    if (page) {
      this.#keys = more ? [...this.#keys, ...page.data] : page.data;
      this.#cursor = page.next_cursor;
    }
    this.#showError(failure);
    this.removeAttribute("aria-busy");
    this.#renderRows();
  }

  #renderRows(): void {
    const now = Date.now();
    const shown = filterKeys(this.#keys, this.#query, this.#statusFilter, now, this.expiringDays);
    const rows = shown.map((key) => {
      const status = keyStatus(key, now, this.expiringDays);
      const details = h(
        "button",
        {
          type: "button",
          class: "link",
          part: "key-link",
          // The start tells apart keys of the same name (a rotation's replacement keeps the name).
          "aria-label": `${key.name} (${key.start}…): details`,
          "data-action": "details",
        },
        key.name,
      );
      details.addEventListener("click", () => void this.openDetail(key.id, details));
      // A rotation's two keys share a name: each says which the other is (when both are listed).
      const replaced = key.rotated_from ? this.#keys.find((other) => other.id === key.rotated_from) : undefined;
      const successor = this.#keys.find((other) => other.rotated_from === key.id);
      const rotation = replaced ? `replaces ${replaced.start}…` : successor ? `replaced by ${successor.start}…` : null;
      const cell = (label: string, ...content: (Node | string | null)[]) =>
        h("td", { "data-label": label }, ...content);
      return h(
        "tr",
        { "data-key-id": key.id, "data-status": status, part: `row row-${status}` },
        h(
          "th",
          { scope: "row", class: "name" },
          details,
          rotation ? h("span", { part: "rotation", class: "muted small block" }, rotation) : null,
        ),
        cell("Key", h("code", { part: "start" }, `${key.start}…`)),
        cell("Owner", this.#owner(key)),
        h("td", { class: "scopes", "data-label": "Scopes" }, ...this.#scopeChips(key)),
        cell("Status", ...this.#statusOf(key, status)),
        cell("Created", time(key.created_at, "")),
        cell("Last used", time(key.last_used_at, "Never")),
        h("td", { class: "actions" }, ...this.#actionButtons(key, now)),
      );
    });
    this.#body.replaceChildren(...rows);
    const filtered = shown.length !== this.#keys.length;
    this.#table.hidden = rows.length === 0;
    this.#empty.textContent = this.#keys.length === 0 ? "No keys yet." : "No loaded key matches.";
    this.#empty.hidden = rows.length > 0 || !this.#me;
    this.#count.textContent = filtered ? `${shown.length} of ${this.#keys.length} loaded keys match.` : "";
    this.#more.hidden = this.#cursor === null;
    this.#createButton.disabled = !this.#me;
  }

  #owner(key: ApiKey): string {
    if (key.owner_type === "workspace") return `Workspace ${key.owner_id}`;
    return key.owner_id === this.#me?.owner_id ? "You" : key.owner_id;
  }

  /** The scope chips ("Full access" for `*`) and the resources the key is limited to. */
  #scopeChips(key: ApiKey): (Node | null)[] {
    return [
      ...key.scopes.map((scope) =>
        h(
          "code",
          { part: scope === "*" ? "scope scope-full" : "scope", class: scope === "*" ? "scope full" : "scope" },
          scopeChip(scope),
        ),
      ),
      key.resources ? h("span", { class: "muted" }, `on ${key.resources.join(", ")}`) : null,
    ];
  }

  /** The badge and, for a key with an expiry, "Expires <date>" (or "Expired <date>"). */
  #statusOf(key: ApiKey, status: ReturnType<typeof keyStatus>): (Node | null)[] {
    const expired = key.expires_at !== null && Date.parse(key.expires_at) <= Date.now();
    return [
      h("span", { part: `badge badge-${status}`, class: `badge ${status}` }, STATUS_LABELS[status]),
      key.expires_at && status !== "revoked"
        ? h("span", { class: "muted small expiry" }, expired ? "Expired " : "Expires ", time(key.expires_at, ""))
        : null,
    ];
  }

  /** A key's action buttons (`keyActions` decides which), for its row or its detail view. */
  #actionButtons(key: ApiKey, now: number): HTMLButtonElement[] {
    return keyActions(key, now).map((id) => {
      const action = ROW_ACTIONS[id];
      const button = h(
        "button",
        {
          type: "button",
          part: action.danger ? "button button-danger" : "button",
          class: action.danger ? "danger quiet" : "",
          "aria-label": `${action.label} ${key.name} (${key.start}…)`,
          "data-action": id,
        },
        action.label,
      );
      button.addEventListener("click", () => action.run(this, key, button));
      return button;
    });
  }

  /**
   * Opens a key's detail view in place of the list: its settings in words, a usage chart of the last
   * 30 days and its audit events. `opener` gets focus back when the view closes.
   */
  async openDetail(id: string, opener?: HTMLElement, focus: string | null = null): Promise<void> {
    const generation = ++this.#views;
    const path = `/v1/keys/${encodeURIComponent(id)}`;
    this.#showError(null);
    this.setAttribute("aria-busy", "true");
    const [key, usage, events] = await Promise.allSettled([
      this.#request<ApiKey>("GET", path),
      this.#request<UsageReport>("GET", `${path}/usage?granularity=day`),
      this.#request<EventList>("GET", `${path}/events?limit=20`),
    ]);
    if (generation !== this.#views) return;
    this.removeAttribute("aria-busy");
    if (key.status === "rejected") return this.#showError(key.reason);
    this.#detailId = id;
    this.#detailOpener = opener ?? null;
    this.#renderDetail(key.value, usage, events);
    const target = focus && this.#detail.querySelector<HTMLElement>(`.detail-actions [data-action="${focus}"]`);
    (target || this.#home()).focus();
  }

  #renderDetail(key: ApiKey, usage: PromiseSettledResult<UsageReport>, events: PromiseSettledResult<EventList>): void {
    const uid = this.#uid;
    const now = Date.now();
    const status = keyStatus(key, now, this.expiringDays);
    const back = h("button", { type: "button", part: "button", class: "back", "data-action": "back" }, "← All keys");
    back.addEventListener("click", () => this.#closeDetail(this.#detailOpener));
    const edit = h(
      "button",
      { type: "button", part: "button button-primary", class: "primary", "data-action": "edit" },
      "Edit",
    );
    edit.addEventListener("click", () => this.openEdit(key, edit));
    const title = h("h2", { id: `${uid}-detail-title`, part: "title", tabindex: "-1" }, key.name);
    this.#detail.setAttribute("aria-labelledby", title.id);
    this.#detail.setAttribute("data-key-id", key.id);
    this.#detail.replaceChildren();
    append(
      this.#detail,
      back,
      h(
        "header",
        { part: "header" },
        h(
          "div",
          {},
          title,
          h("p", { class: "muted" }, h("code", { part: "start" }, `${key.start}…`), " · ", this.#owner(key)),
        ),
      ),
      h("div", { class: "detail-status" }, ...this.#statusOf(key, status)),
      h(
        "div",
        { class: "detail-actions", role: "group", "aria-label": "Actions" },
        key.revoked_at === null ? edit : null,
        ...this.#actionButtons(key, now),
      ),
      ...detailSections(key, usage, events, uid),
    );
    this.#list.hidden = true;
    this.#detail.hidden = false;
  }

  /** Back to the list; focus goes to the key's row (its name) or `opener`. */
  #closeDetail(opener: HTMLElement | null): void {
    const id = this.#detailId;
    this.#detailId = null;
    this.#detail.hidden = true;
    this.#detail.replaceChildren();
    this.#list.hidden = false;
    const row = id && this.#body.querySelector<HTMLElement>(`tr[data-key-id="${id}"] [data-action="details"]`);
    (row || (opener?.isConnected ? opener : null) || this.#createButton).focus();
  }

  /** Shows a problem's detail (or hides the message with null). */
  #showError(error: unknown, target: HTMLElement = this.#alert): void {
    if (error === null) {
      target.hidden = true;
      target.textContent = "";
      return;
    }
    const detail = error instanceof ApiError ? error.detail : "Something went wrong.";
    target.textContent = detail;
    target.hidden = false;
    if (error instanceof ApiError) this.#emit("latchkey-error", { status: error.status, detail });
  }

  #announce(message: string): void {
    this.#status.textContent = message;
  }

  #openCreate(): void {
    const uid = this.#uid;
    const error = h("p", { role: "alert", part: "error", class: "error", hidden: true });
    const fieldError = (field: string) => h("p", { id: `${uid}-${field}-error`, class: "field-error", hidden: true });
    const errors = {
      name: fieldError("name"),
      scopes: fieldError("scopes"),
      resources: fieldError("resources"),
      expires_at: fieldError("expires_at"),
    };
    const name = h("input", {
      id: `${uid}-name`,
      name: "name",
      required: true,
      maxlength: 100,
      autocomplete: "off",
      "aria-describedby": `${uid}-name-error`,
    });
    const offered = this.scopes;
    const scopeBoxes = offered.map((scope) => h("input", { type: "checkbox", name: "scope", value: scope }));
    const scopeText = h("input", {
      id: `${uid}-scopes`,
      name: "scopes",
      autocomplete: "off",
      placeholder: "e.g. models:invoke metrics:read",
      "aria-describedby": `${uid}-scopes-hint ${uid}-scopes-error`,
    });
    const scopes =
      offered.length > 0
        ? h(
            "fieldset",
            { "aria-describedby": `${uid}-scopes-error` },
            h("legend", {}, "Scopes"),
            ...scopeBoxes.map((box, i) => h("label", { class: "check" }, box, h("code", {}, offered[i] ?? ""))),
            errors.scopes,
          )
        : h(
            "div",
            { class: "field" },
            h("label", { for: `${uid}-scopes` }, "Scopes"),
            scopeText,
            h("p", { id: `${uid}-scopes-hint`, class: "hint" }, "Separate with spaces. Leave empty for full access."),
            errors.scopes,
          );
    const resources = h("input", {
      id: `${uid}-resources`,
      name: "resources",
      autocomplete: "off",
      placeholder: "e.g. model_a model_b",
      "aria-describedby": `${uid}-resources-hint ${uid}-resources-error`,
    });
    const expiry = h(
      "select",
      { id: `${uid}-expiry`, name: "expiry", "aria-describedby": `${uid}-expires_at-error` },
      ...EXPIRY_CHOICES.map(([value, label]) => h("option", { value }, label)),
    );
    const tomorrow = new Date(Date.now() + DAY_MS).toISOString().slice(0, 10);
    const date = h("input", {
      type: "date",
      id: `${uid}-date`,
      name: "date",
      min: tomorrow,
      hidden: true,
      "aria-label": "Expiry date",
    });
    expiry.addEventListener("change", () => {
      date.hidden = expiry.value !== "custom";
      date.required = !date.hidden;
    });
    const canUseWorkspace = Boolean(this.#me?.org_id);
    const owner = h(
      "select",
      { id: `${uid}-owner`, name: "owner" },
      h("option", { value: "user" }, "Me (personal key)"),
      h("option", { value: "workspace" }, `Workspace ${this.#me?.org_id ?? ""}`),
    );
    const submit = h("button", { type: "submit", part: "button button-primary", class: "primary" }, "Create key");
    const form = h(
      "form",
      { method: "dialog", novalidate: true },
      h("h3", { id: `${uid}-create-title` }, "Create an API key"),
      error,
      h("div", { class: "field" }, h("label", { for: name.id }, "Name"), name, errors.name),
      canUseWorkspace ? h("div", { class: "field" }, h("label", { for: owner.id }, "Owner"), owner) : null,
      scopes,
      h(
        "div",
        { class: "field" },
        h("label", { for: resources.id }, "Limit to resources (optional)"),
        resources,
        h(
          "p",
          { id: `${uid}-resources-hint`, class: "hint" },
          "Resource ids separated by spaces. Empty: every resource.",
        ),
        errors.resources,
      ),
      h("div", { class: "field" }, h("label", { for: expiry.id }, "Expires"), expiry, date, errors.expires_at),
      h(
        "div",
        { class: "buttons" },
        h("button", { type: "button", part: "button", onclick: () => this.#createDialog.close() }, "Cancel"),
        submit,
      ),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      for (const message of Object.values(errors)) this.#showError(null, message);
      for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
      this.#showError(null, error);
      const chosenScopes =
        offered.length > 0 ? scopeBoxes.filter((box) => box.checked).map((box) => box.value) : words(scopeText.value);
      if (!name.value.trim()) return this.#fieldError(errors.name, name, "Give the key a name.");
      if (offered.length > 0 && chosenScopes.length === 0) {
        return this.#fieldError(errors.scopes, scopeBoxes[0] ?? name, "Choose at least one scope.");
      }
      let expiresAt: string | undefined;
      if (expiry.value === "custom") {
        if (!date.value) return this.#fieldError(errors.expires_at, date, "Choose a date.");
        expiresAt = new Date(`${date.value}T23:59:59`).toISOString();
      } else if (expiry.value) {
        expiresAt = new Date(Date.now() + Number(expiry.value) * DAY_MS).toISOString();
      }
      const chosenResources = words(resources.value);
      const body = {
        name: name.value.trim(),
        ...(chosenScopes.length > 0 ? { scopes: chosenScopes } : {}),
        ...(chosenResources.length > 0 ? { resources: chosenResources } : {}),
        ...(expiresAt ? { expires_at: expiresAt } : {}),
        ...(canUseWorkspace && owner.value === "workspace" ? { owner: "workspace" } : {}),
      };
      submit.disabled = true;
      this.#request<CreatedKey>("POST", "/v1/keys", body)
        .then((created) => {
          this.#createDialog.close();
          this.#showSecret(created, "created");
          void this.#load(false);
        })
        .catch((failure: unknown) => {
          submit.disabled = false;
          this.#showError(failure, error);
          if (!(failure instanceof ApiError)) return;
          const inputs: Record<string, HTMLElement> = {
            name,
            scopes: scopeBoxes[0] ?? scopeText,
            resources,
            expires_at: expiry,
          };
          let first: HTMLElement | null = null;
          for (const [path, messages] of Object.entries(failure.errors)) {
            const field = path.split(".")[0] ?? "";
            const target = errors[field as keyof typeof errors];
            const input = inputs[field];
            if (!target || !input) continue;
            this.#fieldError(target, input, messages.join(" "));
            first ??= input;
          }
          (first ?? name).focus();
        });
    });
    this.#createDialog.replaceChildren(form);
    this.#createDialog.showModal();
    name.focus();
  }

  #fieldError(target: HTMLElement, input: HTMLElement, message: string): void {
    target.textContent = message;
    target.hidden = false;
    input.setAttribute("aria-invalid", "true");
    input.focus();
  }

  /** Removes the new key and closes its dialog; focus goes back to Create key at once if it was open. */
  #closeSecret(): void {
    const open = this.#secretDialog.open;
    this.#secretDialog.replaceChildren();
    this.#secretDialog.close();
    if (open) this.#home().focus();
  }

  /** Where focus goes when nothing better is left: the detail view's title, or Create key. */
  #home(): HTMLElement {
    return (this.#detailId !== null && this.#detail.querySelector<HTMLElement>("h2")) || this.#createButton;
  }

  /** A `latchkey-*` event for the host page (never carrying a key). */
  #emit(type: string, detail: object): void {
    this.dispatchEvent(new CustomEvent(type, { detail, bubbles: true, composed: true }));
  }

  /** The new key (created or rotated), once: a copy button, a warning, nothing left when the dialog closes. */
  #showSecret(created: CreatedKey, done: "created" | "rotated"): void {
    const uid = this.#uid;
    const copied = h("p", { role: "status", "aria-live": "polite", class: "copied" });
    const secret = h("code", { id: `${uid}-secret`, part: "secret", class: "secret" }, created.key);
    const copy = h(
      "button",
      { type: "button", part: "button", class: "copy", "aria-describedby": secret.id },
      "Copy key",
    );
    copy.addEventListener("click", () => {
      const text = secret.textContent ?? "";
      navigator.clipboard.writeText(text).then(
        () => (copied.textContent = "Copied to the clipboard."),
        () => (copied.textContent = "Copying failed: select the key and copy it yourself."),
      );
    });
    const close = h(
      "button",
      { type: "button", part: "button button-primary", class: "primary", onclick: () => this.#closeSecret() },
      "Done",
    );
    this.#secretDialog.replaceChildren(
      h("h3", { id: `${uid}-secret-title` }, `Your new key “${created.name}”`),
      h(
        "p",
        { part: "warning", class: "warning" },
        h("strong", {}, "Copy it now: you won't see this key again."),
        " Store it somewhere safe, such as a secrets manager.",
      ),
      h("div", { class: "secret-row" }, secret, copy),
      copied,
      h("div", { class: "buttons" }, close),
    );
    this.#secretDialog.showModal();
    copy.focus();
    this.#announce(`Key ${created.name} ${done}.`);
    const { id, name, start, rotated_from } = created;
    this.#emit(`latchkey-key-${done}`, done === "rotated" ? { id, name, start, rotated_from } : { id, name, start });
  }

  /**
   * Asks before a change: Cancel, any `fields`, and the button that runs `change`. A failure keeps the
   * dialog open with the problem's detail; success closes it. Focus starts on `fields`' first control or
   * else on Cancel (the safe choice), and goes back to `opener` when the dialog is dismissed. Dismissed
   * while `change` runs, the dialog is gone: a later failure shows above the list instead, and a later
   * success closes no other dialog.
   */
  #confirm(
    opener: HTMLElement,
    options: { title: string; text: (Node | string)[]; fields?: HTMLElement; confirm: string; danger?: boolean },
    change: () => Promise<void>,
  ): void {
    const uid = this.#uid;
    const error = h("p", { role: "alert", part: "error", class: "error", hidden: true });
    const cancel = h(
      "button",
      { type: "button", part: "button", onclick: () => this.#confirmDialog.close() },
      "Cancel",
    );
    const button = h(
      "button",
      {
        type: "button",
        part: options.danger ? "button button-danger" : "button button-primary",
        class: options.danger ? "danger" : "primary",
      },
      options.confirm,
    );
    let dismissed = true;
    button.addEventListener("click", () => {
      button.disabled = true;
      this.#showError(null, error);
      change().then(
        () => {
          dismissed = false;
          if (button.isConnected) this.#confirmDialog.close();
        },
        (failure: unknown) => {
          button.disabled = false;
          this.#showError(failure, button.isConnected ? error : this.#alert);
        },
      );
    });
    this.#confirmDialog.replaceChildren();
    append(
      this.#confirmDialog,
      h("h3", { id: `${uid}-confirm-title` }, options.title),
      h("p", {}, ...options.text),
      options.fields,
      error,
      h("div", { class: "buttons" }, cancel, button),
    );
    this.#confirmDialog.addEventListener("close", () => dismissed && opener.isConnected && opener.focus(), {
      once: true,
    });
    this.#confirmDialog.showModal();
    (options.fields?.querySelector<HTMLElement>("select, input") ?? cancel).focus();
  }

  /** Reloads the list after a change, then focuses `action`'s button on the key's row (or Create key). */
  async #reloadAndFocus(key: ApiKey, action: KeyAction | "edit" | null): Promise<void> {
    await this.#load(false);
    if (this.#detailId !== null) return this.openDetail(this.#detailId, this.#detailOpener ?? undefined, action);
    const next =
      action && this.#body.querySelector<HTMLElement>(`tr[data-key-id="${key.id}"] [data-action="${action}"]`);
    (next || this.#createButton).focus();
  }

  /**
   * Edits a key (name, scopes, resources, expiry, allow-list, rate limits, credits) with one PATCH of
   * only what changed. The server decides what the signed-in person may grant: its 403 or 422 detail
   * (and field errors) show in the form, which stays open.
   */
  openEdit(key: ApiKey, opener: HTMLElement): void {
    const uid = this.#uid;
    const form = editForm(key, uid);
    const error = h("p", { role: "alert", part: "error", class: "error", hidden: true });
    const submit = h("button", { type: "submit", part: "button button-primary", class: "primary" }, "Save changes");
    const element = h(
      "form",
      { method: "dialog", novalidate: true },
      h("h3", { id: `${uid}-edit-title` }, `Edit “${key.name}”`),
      error,
      ...form.fields,
      h(
        "div",
        { class: "buttons" },
        h("button", { type: "button", part: "button", onclick: () => this.#editDialog.close() }, "Cancel"),
        submit,
      ),
    );
    const clear = () => {
      for (const message of Object.values(form.errors)) this.#showError(null, message);
      for (const input of element.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
      this.#showError(null, error);
    };
    element.addEventListener("submit", (event) => {
      event.preventDefault();
      clear();
      const read = form.read();
      if ("field" in read) return this.#fieldError(form.errors[read.field], form.inputs[read.field], read.message);
      const body = patchFor(key, read.values);
      if (Object.keys(body).length === 0) {
        this.#editDialog.close();
        return this.#announce("Nothing changed.");
      }
      submit.disabled = true;
      this.#request<ApiKey>("PATCH", `/v1/keys/${encodeURIComponent(key.id)}`, body).then(
        (updated) => {
          this.#editDialog.close();
          this.#announce(`Key ${updated.name} updated.`);
          this.#emit("latchkey-key-updated", { id: key.id });
          void this.#reloadAndFocus(key, "edit");
        },
        (failure: unknown) => {
          submit.disabled = false;
          this.#showError(failure, error);
          let first: HTMLElement | null = null;
          if (failure instanceof ApiError) {
            for (const [path, messages] of Object.entries(failure.errors)) {
              const field = (path.split(".")[0] ?? "") as EditField;
              if (!(field in form.inputs)) continue;
              this.#fieldError(form.errors[field], form.inputs[field], messages.join(" "));
              first ??= form.inputs[field];
            }
          }
          (first ?? error).focus();
        },
      );
    });
    error.tabIndex = -1;
    this.#editDialog.replaceChildren(element);
    this.#editDialog.addEventListener("close", () => opener.isConnected && opener.focus(), { once: true });
    this.#editDialog.showModal();
    form.inputs.name.focus();
  }

  #patch(key: ApiKey, body: { enabled: boolean }): Promise<ApiKey> {
    return this.#request<ApiKey>("PATCH", `/v1/keys/${encodeURIComponent(key.id)}`, body);
  }

  /** Asks before revoking; the revoke row action. */
  confirmRevoke(key: ApiKey, opener: HTMLElement): void {
    this.#confirm(
      opener,
      {
        title: `Revoke “${key.name}”?`,
        text: [
          "Anything using ",
          h("code", {}, `${key.start}…`),
          " stops working within seconds. This cannot be undone.",
        ],
        confirm: "Revoke key",
        danger: true,
      },
      async () => {
        await this.#request<void>("DELETE", `/v1/keys/${encodeURIComponent(key.id)}`);
        this.#announce(`Key ${key.name} revoked.`);
        this.#emit("latchkey-key-revoked", { id: key.id });
        void this.#reloadAndFocus(key, null);
      },
    );
  }

  /**
   * Asks before rotating, with the old key's grace period (default 0, the API's: after a leak the old
   * key must stop at once); the new key is then shown once, like a created one.
   */
  confirmRotate(key: ApiKey, opener: HTMLElement): void {
    const uid = this.#uid;
    const grace = h(
      "select",
      { id: `${uid}-grace`, name: "grace", "aria-describedby": `${uid}-grace-hint` },
      ...GRACE_CHOICES.map(([value, label]) => h("option", { value }, label)),
    );
    this.#confirm(
      opener,
      {
        title: `Rotate “${key.name}”?`,
        text: [
          "A new key replaces ",
          h("code", {}, `${key.start}…`),
          ", with the same name, scopes, resources and expiry. You will see it once.",
        ],
        fields: h(
          "div",
          { class: "field" },
          h("label", { for: grace.id }, "The old key keeps working"),
          grace,
          h(
            "p",
            { id: `${uid}-grace-hint`, class: "hint" },
            "Long enough to put the new key in place; the old key then expires.",
          ),
        ),
        confirm: "Rotate key",
      },
      async () => {
        const created = await this.#request<CreatedKey>("POST", `/v1/keys/${encodeURIComponent(key.id)}/rotate`, {
          grace_seconds: Number(grace.value),
        });
        this.#showSecret(created, "rotated");
        void this.#load(false);
      },
    );
  }

  /** Asks before disabling (the key is refused until enabled again); the disable row action. */
  confirmDisable(key: ApiKey, opener: HTMLElement): void {
    this.#confirm(
      opener,
      {
        title: `Disable “${key.name}”?`,
        text: [
          "Anything using ",
          h("code", {}, `${key.start}…`),
          " is refused within seconds, until you enable the key again.",
        ],
        confirm: "Disable key",
        danger: true,
      },
      async () => {
        await this.#patch(key, { enabled: false });
        this.#announce(`Key ${key.name} disabled.`);
        this.#emit("latchkey-key-disabled", { id: key.id });
        void this.#reloadAndFocus(key, "enable");
      },
    );
  }

  /** Enables a disabled key at once (nothing to confirm: it undoes a disable); errors show above the list. */
  async enable(key: ApiKey): Promise<void> {
    this.#showError(null);
    try {
      await this.#patch(key, { enabled: true });
    } catch (failure) {
      this.#showError(failure);
      return;
    }
    this.#announce(`Key ${key.name} enabled.`);
    this.#emit("latchkey-key-enabled", { id: key.id });
    await this.#reloadAndFocus(key, "disable");
  }
}

if (!customElements.get("latchkey-keys")) customElements.define("latchkey-keys", LatchkeyKeys);

declare global {
  interface HTMLElementTagNameMap {
    "latchkey-keys": LatchkeyKeys;
  }
}
