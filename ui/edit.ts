/**
 * The edit form of one key: name, scopes, resources, expiry, allow-list, rate limits and credits,
 * filled with the key's values. `read()` checks what the browser can (a name, numbers) and returns
 * the values; the server decides the rest (what the signed-in person may grant, valid addresses) and
 * its problem's detail and field errors are shown by the component.
 */
import type { ApiKey, RateLimit } from "@latchkey/client/types";
import { h } from "./dom";
import type { EditValues } from "./patch";
import { WINDOWS } from "./words";

const DAY_MS = 86_400_000;

export const EDIT_FIELDS = [
  "name",
  "scopes",
  "resources",
  "expires_at",
  "allowed_ips",
  "ratelimits",
  "credits",
] as const;
export type EditField = (typeof EDIT_FIELDS)[number];

export interface EditForm {
  readonly fields: HTMLElement[];
  /** Each field's first control and its message paragraph, for the server's field errors. */
  readonly inputs: Record<EditField, HTMLElement>;
  readonly errors: Record<EditField, HTMLElement>;
  /** The values, or the field the browser already knows is wrong, with why. */
  read(): { values: EditValues } | { field: EditField; message: string };
}

/** "a, b c" -> ["a", "b", "c"] */
const words = (value: string): string[] => value.split(/[\s,]+/).filter(Boolean);
const listOrNull = (value: string): string[] | null => (words(value).length > 0 ? words(value) : null);

export function editForm(key: ApiKey, uid: string): EditForm {
  const id = (field: string) => `${uid}-edit-${field}`;
  const errors = Object.fromEntries(
    EDIT_FIELDS.map((field) => [field, h("p", { id: id(`${field}-error`), class: "field-error", hidden: true })]),
  ) as unknown as Record<EditField, HTMLElement>;
  const text = (field: EditField, value: string, extra: Record<string, string> = {}) =>
    h("input", {
      id: id(field),
      name: field,
      value,
      autocomplete: "off",
      "aria-describedby": `${id(`${field}-hint`)} ${id(`${field}-error`)}`,
      ...extra,
    });
  const hint = (field: EditField, message: string) => h("p", { id: id(`${field}-hint`), class: "hint" }, message);
  const field = (name: EditField, label: string, input: HTMLElement, help: string, ...more: HTMLElement[]) =>
    h("div", { class: "field" }, h("label", { for: input.id }, label), input, ...more, hint(name, help), errors[name]);

  const name = text("name", key.name, { required: "", maxlength: "100" });
  const scopes = text("scopes", key.scopes.join(" "));
  const resources = text("resources", key.resources?.join(" ") ?? "");
  const ips = text("allowed_ips", key.allowed_ips?.join(" ") ?? "", { placeholder: "e.g. 203.0.113.7 10.0.0.0/8" });

  const expiry = h(
    "select",
    {
      id: id("expires_at"),
      name: "expires_at",
      "aria-describedby": `${id("expires_at-hint")} ${id("expires_at-error")}`,
    },
    h("option", { value: "keep" }, key.expires_at ? `Keep (${key.expires_at.slice(0, 10)})` : "Keep (never)"),
    h("option", { value: "never" }, "Never"),
    ...[7, 30, 90, 365].map((days) => h("option", { value: String(days) }, `In ${days} days`)),
    h("option", { value: "custom" }, "On a date…"),
  );
  const date = h("input", {
    type: "date",
    id: id("date"),
    name: "date",
    min: new Date(Date.now() + DAY_MS).toISOString().slice(0, 10),
    hidden: true,
    "aria-label": "Expiry date",
  });
  expiry.addEventListener("change", () => (date.hidden = expiry.value !== "custom"));

  // Rate limits: one row per limit, added and removed in place.
  const limitList = h("div", { class: "limits" });
  let rows = 0;
  const limitRow = (limit: RateLimit | null) => {
    const n = ++rows;
    const rowName = h("input", {
      id: id(`rl${n}-name`),
      value: limit?.name ?? "",
      autocomplete: "off",
      "data-rl": "name",
    });
    const count = h("input", {
      id: id(`rl${n}-limit`),
      type: "number",
      min: "1",
      step: "1",
      value: limit ? String(limit.limit) : "",
      "data-rl": "limit",
    });
    const windows = [...WINDOWS];
    if (limit && !windows.some(([ms]) => ms === limit.duration_ms))
      windows.push([limit.duration_ms, `${limit.duration_ms / 1000} s`]);
    const per = h(
      "select",
      { id: id(`rl${n}-per`), "data-rl": "per" },
      ...windows.map(([ms, label]) => h("option", { value: String(ms), selected: ms === limit?.duration_ms }, label)),
    );
    const row: HTMLElement = h(
      "fieldset",
      { class: "limit" },
      h("legend", {}, `Rate limit ${n}`),
      h("div", { class: "field" }, h("label", { for: rowName.id }, "Name"), rowName),
      h("div", { class: "field" }, h("label", { for: count.id }, "Requests"), count),
      h("div", { class: "field" }, h("label", { for: per.id }, "Per"), per),
      h(
        "button",
        {
          type: "button",
          part: "button",
          class: "quiet",
          onclick: () => {
            row.remove();
            addLimit.focus();
          },
        },
        `Remove rate limit ${n}`,
      ),
    );
    limitList.append(row);
    return rowName;
  };
  for (const limit of key.ratelimits ?? []) limitRow(limit);
  const addLimit = h(
    "button",
    { type: "button", part: "button", onclick: () => limitRow(null).focus() },
    "Add a rate limit",
  );

  // Credits: a balance and an optional refill.
  const credits = key.credits;
  const hasCredits = h("input", { type: "checkbox", id: id("credits"), checked: credits !== null });
  const remaining = h("input", {
    id: id("remaining"),
    type: "number",
    min: "0",
    step: "1",
    value: credits ? String(credits.remaining) : "",
  });
  const refill = h(
    "select",
    { id: id("refill") },
    ...[
      ["", "No refill"],
      ["day", "Every day (UTC midnight)"],
      ["month", "Every month (the 1st)"],
    ].map(([value = "", label]) =>
      h("option", { value, selected: value === (credits?.refill?.interval ?? "") }, label),
    ),
  );
  const refillAmount = h("input", {
    id: id("refill-amount"),
    type: "number",
    min: "1",
    step: "1",
    value: credits?.refill ? String(credits.refill.amount) : "",
  });
  const creditFields = h(
    "div",
    { class: "credit-fields", hidden: credits === null },
    h("div", { class: "field" }, h("label", { for: remaining.id }, "Balance"), remaining),
    h("div", { class: "field" }, h("label", { for: refill.id }, "Refill"), refill),
    h("div", { class: "field" }, h("label", { for: refillAmount.id }, "Refill to"), refillAmount),
  );
  hasCredits.addEventListener("change", () => (creditFields.hidden = !hasCredits.checked));

  const fields = [
    field("name", "Name", name, "Shown in lists; not secret."),
    field("scopes", "Scopes", scopes, "Separate with spaces; * is full access. You can grant only what you hold."),
    field("resources", "Limit to resources", resources, "Resource ids separated by spaces. Empty: every resource."),
    field("expires_at", "Expires", expiry, "A new expiry applies within seconds.", date),
    field("allowed_ips", "Allowed addresses", ips, "Addresses or CIDR ranges, separated by spaces. Empty: any."),
    h(
      "fieldset",
      { "aria-describedby": id("ratelimits-error") },
      h("legend", {}, "Rate limits"),
      limitList,
      addLimit,
      errors.ratelimits,
    ),
    h(
      "fieldset",
      { "aria-describedby": id("credits-error") },
      h("legend", {}, "Credits"),
      h("label", { class: "check" }, hasCredits, "Limit this key with credits"),
      creditFields,
      errors.credits,
    ),
  ];

  const whole = (input: HTMLInputElement) => (input.value.trim() === "" ? NaN : Number(input.value));
  return {
    fields,
    inputs: {
      name,
      scopes,
      resources,
      expires_at: expiry,
      allowed_ips: ips,
      ratelimits: addLimit,
      credits: hasCredits,
    },
    errors,
    read() {
      if (!name.value.trim()) return { field: "name", message: "Give the key a name." };
      let expires: string | null | undefined;
      if (expiry.value === "never") expires = null;
      else if (expiry.value === "custom") {
        if (!date.value) return { field: "expires_at", message: "Choose a date." };
        expires = new Date(`${date.value}T23:59:59`).toISOString();
      } else if (expiry.value !== "keep") expires = new Date(Date.now() + Number(expiry.value) * DAY_MS).toISOString();
      const ratelimits: RateLimit[] = [];
      for (const row of limitList.children) {
        const get = (part: string) => row.querySelector<HTMLInputElement>(`[data-rl="${part}"]`);
        const limit = whole(get("limit") as HTMLInputElement);
        const rowName = get("name")?.value.trim() ?? "";
        if (!rowName || !Number.isInteger(limit) || limit < 1) {
          return { field: "ratelimits", message: "Each rate limit needs a name and a whole number of requests." };
        }
        ratelimits.push({ name: rowName, limit, duration_ms: Number(get("per")?.value) });
      }
      let creditValues: EditValues["credits"] = null;
      if (hasCredits.checked) {
        const balance = whole(remaining);
        const amount = whole(refillAmount);
        if (!Number.isInteger(balance) || balance < 0)
          return { field: "credits", message: "The balance is a whole number." };
        if (refill.value && (!Number.isInteger(amount) || amount < 1)) {
          return { field: "credits", message: "Say how many credits a refill tops up to." };
        }
        creditValues = {
          remaining: balance,
          refill: refill.value ? { amount, interval: refill.value as "day" | "month" } : null,
          // Not edited here: the key's own is kept (a PATCH of credits replaces the whole object).
          low_threshold: credits?.low_threshold ?? null,
        };
      }
      return {
        values: {
          name: name.value.trim(),
          scopes: words(scopes.value),
          resources: listOrNull(resources.value),
          expires_at: expires,
          allowed_ips: listOrNull(ips.value),
          ratelimits,
          credits: creditValues,
        },
      };
    },
  };
}
