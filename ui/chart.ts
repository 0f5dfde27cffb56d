/**
 * A key's usage over the last 30 days as a small inline SVG bar chart, drawn node by node (no HTML
 * strings, no inline style: colours come from the component's stylesheet through classes). Each day is
 * one bar: verifications that passed, with the refused ones stacked on top. The chart is an image with
 * a text alternative; the summary beside it says the same in words.
 */
import type { UsageBucket } from "@latchkey/client/types";
import { usageTotals } from "./words";

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 300;
const HEIGHT = 80;

function svg<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attributes: Record<string, string | number>,
  ...children: (Node | string)[]
): SVGElementTagNameMap[K] {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  for (const child of children) element.append(child);
  return element;
}

const dayFormat = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", timeZone: "UTC" });

/** The chart, labelled by `labelId` (the summary's id). */
export function usageChart(buckets: readonly UsageBucket[], labelId: string): SVGSVGElement {
  const max = Math.max(1, ...buckets.map((b) => b.total));
  const step = WIDTH / Math.max(1, buckets.length);
  const bars = buckets.map((bucket, i) => {
    const x = i * step + 1;
    const width = Math.max(1, step - 2);
    const validHeight = (bucket.valid / max) * (HEIGHT - 2);
    const refusedHeight = ((bucket.total - bucket.valid) / max) * (HEIGHT - 2);
    const day = dayFormat.format(new Date(bucket.start));
    const refused = bucket.total - bucket.valid;
    return svg(
      "g",
      { "data-day": bucket.start.slice(0, 10), "data-total": bucket.total },
      svg("title", {}, `${day}: ${bucket.total} verifications${refused ? `, ${refused} refused` : ""}`),
      svg("rect", { class: "bar-track", x, y: 0, width, height: HEIGHT }),
      svg("rect", { class: "bar-valid", x, y: HEIGHT - validHeight, width, height: validHeight }),
      svg("rect", {
        class: "bar-refused",
        x,
        y: HEIGHT - validHeight - refusedHeight,
        width,
        height: refusedHeight,
      }),
    );
  });
  return svg(
    "svg",
    {
      part: "chart",
      class: "chart",
      viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
      preserveAspectRatio: "none",
      role: "img",
      "aria-labelledby": labelId,
    },
    svg("line", { class: "axis", x1: 0, y1: HEIGHT - 0.5, x2: WIDTH, y2: HEIGHT - 0.5 }),
    ...bars,
  );
}

/** "42 verifications in the last 30 days: 40 passed, 2 refused. Busiest: Dec 5 (30)." */
export function usageSummary(buckets: readonly UsageBucket[]): string {
  const { total, valid, busiest } = usageTotals(buckets);
  if (total === 0) return "No verifications in the last 30 days (the last half minute may not be counted yet).";
  const busiestDay = busiest ? ` Busiest day: ${dayFormat.format(new Date(busiest.start))} (${busiest.total}).` : "";
  return `${total} verifications in the last 30 days: ${valid} passed, ${total - valid} refused.${busiestDay}`;
}
