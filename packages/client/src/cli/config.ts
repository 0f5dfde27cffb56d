/**
 * Where `latchkey login` keeps its base URL and token: $XDG_CONFIG_HOME/latchkey/config.json (or
 * ~/.config/latchkey/config.json), a file only its owner can read or write (0600, in a 0700 folder).
 * It never holds an API key: keys are shown once and are the caller's to keep. LATCHKEY_URL and
 * LATCHKEY_TOKEN override the file, for scripts and CI (a key used as a token stays in the environment).
 */
import { chmod, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";

export interface Config {
  url: string;
  token: string;
}

export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME || join(homedir(), ".config");
  return join(base, "latchkey", "config.json");
}

/** The stored login, with the environment's overrides; fields are missing when nothing sets them. */
export async function loadConfig(env: NodeJS.ProcessEnv = process.env): Promise<Partial<Config>> {
  let stored: Partial<Config> = {};
  try {
    stored = JSON.parse(await readFile(configPath(env), "utf8")) as Partial<Config>;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
  const url = env.LATCHKEY_URL || stored.url;
  const token = env.LATCHKEY_TOKEN || stored.token;
  return { ...(url ? { url } : {}), ...(token ? { token } : {}) };
}

export async function saveConfig(config: Config, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const path = configPath(env);
  const folder = join(path, "..");
  await mkdir(folder, { recursive: true, mode: 0o700 });
  // Remove first: writeFile's mode applies only to a new file, and an old one may be more open.
  await rm(path, { force: true });
  await writeFile(path, JSON.stringify(config, null, 2) + "\n", { mode: 0o600, flag: "wx" });
  await chmod(path, 0o600);
  return path;
}

/** Forgets the login; true when there was one. */
export async function removeConfig(env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  const path = configPath(env);
  try {
    await rm(path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw error;
  }
}
