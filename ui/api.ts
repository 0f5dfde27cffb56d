/**
 * The component's HTTP client: one function that sends the bearer token, reads JSON, and turns an RFC
 * 9457 problem into an ApiError carrying the server's `detail` and field `errors` for display. The
 * token is asked for on every request (the host's provider may refresh it) and never stored. The
 * newest `Latchkey-Bookmark` each latchkey answered with is sent back with the next request, so the
 * list read after a change shows it even when a D1 replica serves the read (kept for the page's life).
 */
const BOOKMARK = "Latchkey-Bookmark";
const bookmarks = new Map<string, string>();
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly detail: string,
    readonly errors: Readonly<Record<string, readonly string[]>> = {},
  ) {
    super(detail);
  }
}

export type TokenSource = () => Promise<string | null | undefined>;

interface Problem {
  detail?: unknown;
  title?: unknown;
  errors?: unknown;
}

export async function apiRequest<T>(
  base: string,
  token: TokenSource,
  method: string,
  path: string,
  body?: unknown,
): Promise<T> {
  let bearer: string | null | undefined;
  try {
    bearer = await token();
  } catch (error) {
    throw new ApiError(0, `Could not get a token: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (!bearer) throw new ApiError(0, "Not signed in: the page has not provided a token.");
  const headers: Record<string, string> = { Authorization: `Bearer ${bearer}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const bookmark = bookmarks.get(base);
  if (bookmark !== undefined) headers[BOOKMARK] = bookmark;
  let response: Response;
  try {
    response = await fetch(new URL(path, base), {
      method,
      headers,
      body: body === undefined ? null : JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
    } as RequestInit); // (the cast: the Workers types, which the tests compile this with, know no `credentials`)
  } catch {
    throw new ApiError(0, `Cannot reach ${base}: the network failed or this page's origin is not allowed to call it.`);
  }
  const received = response.headers.get(BOOKMARK);
  if (received && received > (bookmarks.get(base) ?? "")) bookmarks.set(base, received);
  if (response.status === 204) return undefined as T;
  const data: unknown = await response.json().catch(() => null);
  if (response.ok) return data as T;
  const problem = (data ?? {}) as Problem;
  const detail =
    typeof problem.detail === "string"
      ? problem.detail
      : typeof problem.title === "string"
        ? problem.title
        : `The request failed (${response.status}).`;
  const errors = typeof problem.errors === "object" && problem.errors !== null ? problem.errors : {};
  throw new ApiError(response.status, detail, errors as Record<string, string[]>);
}
