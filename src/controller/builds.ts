/**
 * Coalesces rebuild requests: concurrent callers share one run, and a call made while a run is
 * going gets a fresh one after it, so no change is missed and no change costs two builds.
 */
export class Coalescer {
  private requested = 0;
  private done = 0;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(private readonly build: () => Promise<void>) {}

  async request(): Promise<void> {
    const want = ++this.requested;
    while (this.done < want && !this.stopped) {
      if (this.running) {
        await this.running;
        continue;
      }
      const generation = this.requested;
      this.running = this.build().finally(() => {
        this.done = generation;
        this.running = undefined;
      });
      await this.running;
    }
  }

  /** Lets a running build finish and starts no other. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.running;
  }
}
