/**
 * A tiny element builder. The component builds its DOM with it and never assigns HTML strings, so
 * nothing from the API (names, scopes, problem details) can become markup, and the page runs under
 * Trusted Types.
 */
type Child = Node | string | null | undefined | false;
type Props = Record<string, string | number | boolean | null | undefined | ((event: Event) => void)>;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Props = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (typeof value === "function") element.addEventListener(name.slice(2).toLowerCase(), value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  append(element, ...children);
  return element;
}

export function append(parent: Node, ...children: Child[]): void {
  for (const child of children)
    if (child) parent.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
}

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "long" });

/** A date as a <time> (the full date and time on hover), or `none` for null. */
export function time(iso: string | null, none: string): Node {
  if (iso === null) return document.createTextNode(none);
  const date = new Date(iso);
  return h("time", { datetime: iso, title: fullFormat.format(date) }, dateFormat.format(date));
}
