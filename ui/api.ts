/**
 * The component's HTTP client: one function that sends the bearer token, reads JSON, and turns an RFC
 * 9457 problem into an ApiError carrying the server's `detail` and field `errors` for display. The
 * token is asked for on every request (the host's provider may refresh it) and never stored.
 */
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
  let response: Response;
  try {
    response = await fetch(new URL(path, base), {
      method,
      headers,
      body: body === undefined ? null : JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
    });
  } catch {
    throw new ApiError(0, `Cannot reach ${base}: the network failed or this page's origin is not allowed to call it.`);
  }
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
