/**
 * The vendor dialects: each serves one published API-key endpoint exactly as its page documents it,
 * as a thin adapter over the same service (docs/dialects.md). DIALECTS says
 * which are mounted.
 */
import type { DialectName } from "../../config";
import type { Route } from "../route";
import { autocallsRoutes } from "./autocalls";
import { basetenRoutes } from "./baseten";
import { fastapiRoutes } from "./fastapi";
import { replicasRoutes } from "./replicas";

const DIALECTS: Record<DialectName, readonly Route[]> = {
  replicas: replicasRoutes,
  fastapi: fastapiRoutes,
  autocalls: autocallsRoutes,
  baseten: basetenRoutes,
};

export function dialectRoutes(names: readonly DialectName[]): Route[] {
  return names.flatMap((name) => DIALECTS[name]);
}
