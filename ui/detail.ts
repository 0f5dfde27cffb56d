/**
 * The sections of a key's detail view below its title and actions: its settings in words, its usage
 * over the last 30 days (chart and summary) and its latest audit events. A section whose request
 * failed shows the problem's detail instead.
 */
import type { ApiKey, EventList, UsageReport } from "@latchkey/client/types";
import { ApiError } from "./api";
import { usageChart, usageSummary } from "./chart";
import { h, time } from "./dom";
import {
  allowListInWords,
  creditsInWords,
  eventInWords,
  rateLimitInWords,
  resourcesInWords,
  scopeInWords,
} from "./words";

type Child = Node | string | null;

const item = (term: string, ...value: Child[]) => [h("dt", {}, term), h("dd", {}, ...value)];
const list = (values: string[]): Child =>
  values.length === 1 ? (values[0] ?? "") : h("ul", {}, ...values.map((v) => h("li", {}, v)));
const failed = (result: PromiseRejectedResult) =>
  h("p", { class: "error" }, result.reason instanceof ApiError ? result.reason.detail : "Could not load this.");

export function detailSections(
  key: ApiKey,
  usage: PromiseSettledResult<UsageReport>,
  events: PromiseSettledResult<EventList>,
  uid: string,
): HTMLElement[] {
  const summaryId = `${uid}-usage-summary`;
  return [
    h(
      "dl",
      { part: "settings", class: "settings" },
      ...item("Scopes", list(key.scopes.map(scopeInWords))),
      ...item("Resources", resourcesInWords(key.resources)),
      ...item("Expires", time(key.expires_at, "Never")),
      ...item("Allowed from", allowListInWords(key.allowed_ips)),
      ...item("Rate limits", key.ratelimits.length ? list(key.ratelimits.map(rateLimitInWords)) : "None"),
      ...item("Credits", creditsInWords(key.credits)),
      ...item("Created", time(key.created_at, ""), ` by ${key.created_by}`),
      ...item("Last used", time(key.last_used_at, "Never")),
      ...(key.revoked_at ? item("Revoked", time(key.revoked_at, "")) : []),
    ),
    h("h3", {}, "Usage, last 30 days"),
    usage.status === "fulfilled"
      ? h(
          "figure",
          { class: "usage" },
          usageChart(usage.value.buckets, summaryId),
          h("figcaption", { id: summaryId, class: "muted small" }, usageSummary(usage.value.buckets)),
        )
      : failed(usage),
    h("h3", {}, "Activity"),
    events.status === "rejected"
      ? failed(events)
      : events.value.data.length
        ? h(
            "ol",
            { part: "events", class: "events" },
            ...events.value.data.map((event) =>
              h("li", { "data-action": event.action }, time(event.at, ""), " ", eventInWords(event)),
            ),
          )
        : h("p", { class: "muted" }, "No events."),
  ];
}
