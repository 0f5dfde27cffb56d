/**
 * The microbenchmark cases (bench/verify.ts) as a Worker, so they run in workerd, which is what
 * production runs: its own WebCrypto, Request and Response. Time cannot be read inside workerd
 * during pure computation, so bench/verify.mjs times each `run` request from outside and reads the
 * workerd process's CPU around it.
 *
 *   GET /list                        the suites' case names, as JSON
 *   POST /prepare/<suite>/<index>    untimed set-up for one case
 *   POST /run/<suite>/<index>?calls  the timed loop; answers its storage counts as JSON
 */
import { type Suites, benchSuites } from "./verify";

let suites: Promise<Suites> | undefined;

export default {
  async fetch(request: Request): Promise<Response> {
    suites ??= benchSuites();
    const all = await suites;
    const { pathname, searchParams } = new URL(request.url);
    if (pathname === "/list") {
      return Response.json(
        Object.fromEntries(
          Object.entries(all).map(([suite, cases]) => [
            suite,
            cases.map((c) => ({ name: c.name, inFlight: c.inFlight })),
          ]),
        ),
      );
    }
    const [, action, suite, index] = pathname.split("/");
    const bench = suite === "verify" || suite === "router" ? all[suite][Number(index)] : undefined;
    if (!bench) return new Response(`no case ${pathname}`, { status: 404 });
    try {
      if (action === "prepare") {
        await bench.prepare();
        return new Response(null, { status: 204 });
      }
      if (action === "run") return Response.json(await bench.run(Number(searchParams.get("calls"))));
      return new Response(`no action ${action}`, { status: 404 });
    } catch (error) {
      return new Response(error instanceof Error ? error.message : String(error), { status: 500 });
    }
  },
};
