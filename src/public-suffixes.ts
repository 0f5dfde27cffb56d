/**
 * Domains under which anyone may hold a name: a wildcard directly under one (`https://*.com`,
 * `https://*.workers.dev`) names sites of strangers, not yours. Not the Public Suffix List (thousands
 * of entries, and changing), but a small list of what an operator is likely to type: every single
 * label (a TLD: `com`, `uk`, `dev`), the common two-label country registries (`co.uk`, `com.au`),
 * and shared-hosting domains where each customer gets a subdomain (`workers.dev`, `github.io`).
 * Pure: config.ts reads UI_FRAME_ANCESTORS with it.
 */
const REGISTRY_SUFFIXES = [
  "co.uk org.uk me.uk ltd.uk plc.uk net.uk ac.uk gov.uk",
  "com.au net.au org.au edu.au gov.au id.au",
  "co.nz net.nz org.nz ac.nz",
  "co.jp ne.jp or.jp ac.jp go.jp",
  "co.kr or.kr co.in net.in org.in co.za org.za co.il co.id co.th co.ke",
  "com.br net.br org.br com.cn net.cn org.cn com.hk com.tw com.sg com.my",
  "com.mx com.ar com.co com.tr com.pl com.ua com.ph com.vn com.sa com.eg",
  "com.pk com.ng",
].flatMap((line) => line.split(" "));

const SHARED_HOSTING_SUFFIXES = [
  // Cloudflare
  "workers.dev pages.dev r2.dev trycloudflare.com",
  // Code hosts and their pages
  "github.io githubusercontent.com gitlab.io bitbucket.io readthedocs.io",
  // Application platforms
  "vercel.app now.sh netlify.app herokuapp.com fly.dev onrender.com railway.app",
  "deno.dev web.app firebaseapp.com appspot.com azurewebsites.net azurestaticapps.net",
  "cloudfront.net amazonaws.com ondigitalocean.app glitch.me repl.co replit.app",
  "replit.dev surge.sh pythonanywhere.com codesandbox.io csb.app stackblitz.io",
  "ngrok.io ngrok.app ngrok-free.app loca.lt",
  // Site builders and blogs
  "blogspot.com wordpress.com wixsite.com myshopify.com neocities.org ghost.io",
].flatMap((line) => line.split(" "));

const LISTED = new Set([...REGISTRY_SUFFIXES, ...SHARED_HOSTING_SUFFIXES]);

/** Whether anyone may register a name directly under `domain` (lowercase; empty labels, as in `com.`, are dropped). */
export function isPublicSuffix(domain: string): boolean {
  const name = domain.split(".").filter(Boolean).join(".");
  return !name.includes(".") || LISTED.has(name);
}
