/** Types of scripts/tcp-proxy.mjs (a plain ESM script, imported by the chaos run and, through these, by tests). */
export interface TcpProxy {
  /** The proxy's port on 127.0.0.1. */
  readonly port: number;
  /**
   * Drops every connection and refuses new ones (the server looks down): until `restore()`, or for `refuseMs`.
   * Returns how many connections it dropped.
   */
  cut(refuseMs?: number): number;
  /** Keeps connections open but forwards nothing, either way (the server looks hung). */
  hang(): void;
  /** Accepts and forwards again (connections dropped by `cut` stay dropped; hung ones resume). */
  restore(): void;
  close(): Promise<void>;
}

export function tcpProxy(targetHost: string, targetPort: number): Promise<TcpProxy>;
