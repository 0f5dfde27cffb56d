/** Retries a read-check-write on a concurrent change (a guarded write refused, or nothing written), then answers 409. */
import { ConcurrentChangeError } from "../store/store";
import { ConflictError } from "./errors";

/** How many times an update or rotation re-reads a key that changed under it before answering 409. */
const CONCURRENT_ATTEMPTS = 3;

/**
 * Runs `write` (read, check, conditional write) again while it reports a concurrent change (null, or
 * a guarded write's ConcurrentChangeError), at most CONCURRENT_ATTEMPTS times, then answers 409.
 */
export async function retryOnConcurrentChange<T>(write: () => Promise<T | null>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    let result: T | null = null;
    try {
      result = await write();
    } catch (error) {
      if (!(error instanceof ConcurrentChangeError)) throw error;
    }
    if (result !== null) return result;
    if (attempt === CONCURRENT_ATTEMPTS) throw new ConflictError("The key is being changed by another request; retry");
  }
}
