// CPU time per process, read from Linux's /proc, so a benchmark can say where a request's CPU goes:
// latchkey's Worker (its workerd process), wrangler dev's proxy (a second workerd), wrangler's Node
// process, and the load generator. Each process's time is the sum of its threads' run time
// (/proc/<pid>/task/<tid>/schedstat, nanoseconds) for the threads alive when it is read: fine for
// workerd, Node and autocannon, whose threads live as long as they do. The process tree is read once,
// so a process restarted during a run is missed. Elsewhere than Linux it reports nothing.
import { readFileSync, readdirSync } from "node:fs";

const read = (path) => {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return null;
  }
};

/** Parent pid of `pid`, or null if it is gone. */
function parentOf(pid) {
  const stat = read(`/proc/${pid}/stat`);
  if (!stat) return null;
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after its last ")".
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
}

/** `root` and every process below it, with their command lines. */
export function processTree(root) {
  let pids;
  try {
    pids = readdirSync("/proc").filter((name) => /^\d+$/.test(name));
  } catch {
    return [];
  }
  const children = new Map();
  for (const name of pids) {
    const parent = parentOf(name);
    if (parent === null) continue;
    if (!children.has(parent)) children.set(parent, []);
    children.get(parent).push(Number(name));
  }
  const tree = [];
  const visit = (pid) => {
    const cmdline = read(`/proc/${pid}/cmdline`);
    if (cmdline === null) return;
    tree.push({ pid, cmdline: cmdline.split("\0").join(" ").trim() });
    for (const child of children.get(pid) ?? []) visit(child);
  };
  visit(root);
  return tree;
}

/** CPU time of one process so far, in nanoseconds (all its threads), or 0 if it is gone. */
export function cpuNanos(pid) {
  let tasks;
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return 0;
  }
  let total = 0;
  for (const tid of tasks) {
    const schedstat = read(`/proc/${pid}/task/${tid}/schedstat`);
    if (schedstat) total += Number(schedstat.split(" ")[0]);
  }
  return total;
}

/**
 * The processes of a `wrangler dev` started by bench/server.mjs (pid: its process group leader),
 * grouped by role, plus this process (the load generator runs in it).
 */
export function serverRoles(serverPid, port) {
  const roles = new Map();
  const add = (role, pid) => roles.set(role, [...(roles.get(role) ?? []), pid]);
  for (const { pid, cmdline } of processTree(serverPid)) {
    if (/\bworkerd\b/.test(cmdline.split(" ")[0])) {
      // wrangler's proxy listens on the public port; the Worker's own runtime on a random one.
      add(cmdline.includes(`:${port} `) ? "workerd: wrangler's proxy" : "workerd: latchkey's Worker", pid);
    } else if (cmdline.includes("wrangler-dist/cli.js")) add("wrangler (Node)", pid);
    else add("other (npm start, esbuild)", pid);
  }
  add("load generator (this process)", process.pid);
  return roles;
}

/** Total CPU nanoseconds of each role now. */
export function sampleRoles(roles) {
  const sample = new Map();
  for (const [role, pids] of roles)
    sample.set(
      role,
      pids.reduce((sum, pid) => sum + cpuNanos(pid), 0),
    );
  return sample;
}
