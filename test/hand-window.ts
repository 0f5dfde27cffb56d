/**
 * A window the test ends (for util/flush-window.ts and its users: last uses, verification counts):
 * pass `wait` where the code would sleep; `release()` lets every waiting window go on, and one never
 * released is a window whose request was cancelled.
 */
export function handWindow() {
  const waiting: (() => void)[] = [];
  /** The windows asked for, in ms. */
  const asked: number[] = [];
  const wait = (ms: number) => {
    asked.push(ms);
    return new Promise<void>((resolve) => waiting.push(resolve));
  };
  return { wait, asked, waits: () => waiting.length, release: () => waiting.splice(0).forEach((go) => go()) };
}
