export const root: string;
export function ensureDevVars(): boolean;
export function devVars(): Record<string, string>;
export function wranglerVars(): Record<string, string>;
export function signDevToken(sub: string, options?: { org?: string; ttlSeconds?: number }): Promise<string>;
