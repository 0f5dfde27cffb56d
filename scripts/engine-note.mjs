// The root's postinstall: on a Node older than 22, one line saying why `npm install` printed EBADENGINE
// warnings and why they are harmless. Some of the tools (wrangler, vitest, ...) declare Node >= 22; the
// `node` devDependency installs Node 22 into node_modules/.bin, and every `npm run` script runs on it.
// npm's own Node is read from its user agent (this script itself already runs on the installed Node 22).
const npmNode = /\bnode\/v(\d+)/.exec(process.env.npm_config_user_agent ?? "")?.[1];
if (npmNode !== undefined && Number(npmNode) < 22) {
  console.log(
    `latchkey: the EBADENGINE warnings above are expected on Node ${npmNode}: the tools that ask for Node 22 run on the Node 22 that npm just installed (the \`node\` devDependency), which every \`npm run\` script uses.`,
  );
}
