export const root: string;
export function ensureDevVars(): boolean;
export function devEnv(env?: NodeJS.ProcessEnv): NodeJS.ProcessEnv;
export function devVars(): Record<string, string>;
export function wranglerVars(): Record<string, string>;
export function wranglerDevIp(): string | null;
export function wranglerEnv(name: string): {
  vars: Record<string, string>;
  bindings: string[];
  namespaceIds: string[];
  queues: { producers: string[]; consumers: string[] };
} | null;
export function wranglerTopLevel(): {
  bindings: string[];
  optional: string[];
  namespaceIds: string[];
  queues: { producers: string[]; consumers: string[] };
};
export function signDevToken(
  sub: string,
  options?: { org?: string; roles?: string[]; operator?: boolean; ttlSeconds?: number },
): Promise<string>;
