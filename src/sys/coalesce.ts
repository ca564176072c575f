/**
 * Runs `fn` one at a time. A call while it runs does not start a second run beside it: all
 * such calls share one more run after the current one (so none of them misses what changed
 * meanwhile), and their promises resolve when that run ends.
 */
export function coalesced(fn: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined;
  let again = false;
  return () => {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        await fn();
      } while (again);
    })().finally(() => (running = undefined));
    return running;
  };
}
