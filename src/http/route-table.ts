/** The routes one Fastify instance registered (its `onRoute` hook feeds it): for 405's Allow and for the API description's test. */
export interface RegisteredRoute {
  readonly method: string;
  /** Fastify's pattern, e.g. `/v1/internal/matches/:id`. */
  readonly url: string;
}

/** The parts of a Fastify instance the table listens on. */
export interface RouteSource {
  addHook(name: 'onRoute', hook: (route: { method: string | string[]; url: string }) => void): unknown;
}

export class RouteTable {
  private readonly entries: { route: RegisteredRoute; pattern: RegExp }[] = [];

  /** Starts recording; call before any route is registered (before the Nest application initialises). */
  static listen(fastify: RouteSource): RouteTable {
    const table = new RouteTable();
    fastify.addHook('onRoute', (route) => {
      for (const method of Array.isArray(route.method) ? route.method : [route.method]) table.add({ method, url: route.url });
    });
    return table;
  }

  add(route: RegisteredRoute): void {
    if (route.url === '*' || route.url === '/*') return; // catch-alls (the not-found handler) name no resource
    const source = route.url
      .split('/')
      .map((part) => (part.startsWith(':') ? '[^/]+' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
      .join('/');
    this.entries.push({ route, pattern: new RegExp(`^${source}/?$`) });
  }

  get routes(): readonly RegisteredRoute[] {
    return this.entries.map((e) => e.route);
  }

  /** The methods some route answers on this path (without its query), sorted; empty when no route has the path. */
  methodsFor(path: string): string[] {
    const bare = path.split('?')[0] ?? '';
    return [...new Set(this.entries.filter((e) => e.pattern.test(bare)).map((e) => e.route.method))].sort();
  }
}
