// The guard `npm start` runs before anything else: with DEV_UI_TOKENS on, /ui/dev-token mints a JWT
// for any subject to any request whose Host names a loopback host; and anyone who reaches the port
// can send `Host: localhost`. So the dev mint is served only on a loopback address: `npm start`
// refuses `--ip 0.0.0.0` (or any non-loopback `--ip`, or `[dev] ip` in wrangler.toml) while
// DEV_UI_TOKENS is on, in `--var DEV_UI_TOKENS:...`, .dev.vars or wrangler.toml's [vars].
// Pure: takes the arguments and settings, returns the refusal's text or null (scripts/check-start.mjs
// tests it without starting anything).

/** Whether `host` (as `--ip` takes it) is a loopback address: only this machine can reach it. */
export function isLoopback(host) {
  const h = host
    .trim()
    .toLowerCase()
    .replace(/^\[(.*)\]$/, "$1");
  if (h === "localhost" || h === "::1" || h === "0:0:0:0:0:0:0:1") return true;
  const v4 = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(h);
  return v4 !== null && v4.slice(1).every((octet) => Number(octet) <= 255);
}

/** The values of option `name` in wrangler dev's arguments (`--name v`, `--name=v`; an array option takes every value up to the next option). */
export function optionValues(args, name, { array = false } = {}) {
  const values = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg.startsWith(`--${name}=`)) values.push(arg.slice(name.length + 3));
    else if (arg === `--${name}`) {
      for (let j = i + 1; j < args.length && !args[j].startsWith("-"); j++) {
        values.push(args[j]);
        if (!array) break;
      }
    }
  }
  return values;
}

/**
 * The refusal's text when DEV_UI_TOKENS is on and wrangler dev would listen on a non-loopback
 * address, else null. `devVars`: .dev.vars; `tomlVars`: wrangler.toml's [vars]; `tomlDevIp`: its
 * `[dev] ip`, if any. Precedence as in wrangler: `--var` over .dev.vars over [vars]; `--ip` over `[dev] ip`.
 */
export function devTokensExposure({ args, devVars = {}, tomlVars = {}, tomlDevIp = null }) {
  let devTokens = devVars.DEV_UI_TOKENS ?? tomlVars.DEV_UI_TOKENS;
  for (const pair of optionValues(args, "var", { array: true })) {
    const [key, ...value] = pair.split(":");
    if (key === "DEV_UI_TOKENS") devTokens = value.join(":");
  }
  if (devTokens?.trim() !== "true") return null;
  const ips = optionValues(args, "ip");
  const listening = ips.length > 0 ? ips : tomlDevIp === null ? [] : [tomlDevIp];
  const exposed = listening.filter((ip) => !isLoopback(ip));
  if (exposed.length === 0) return null;
  return [
    `npm start: refusing to listen on ${exposed.join(", ")} with DEV_UI_TOKENS on.`,
    "With DEV_UI_TOKENS=true, /ui/dev-token mints a token for any subject to any client that sends",
    "`Host: localhost`, and anyone who can reach a non-loopback address can send it.",
    "Listen on a loopback address (omit --ip, or --ip 127.0.0.1), or turn the mint off:",
    "`--var DEV_UI_TOKENS:false`, or remove DEV_UI_TOKENS=true from .dev.vars.",
  ].join("\n");
}
