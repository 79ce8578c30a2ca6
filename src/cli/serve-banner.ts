// What `jitgate serve` prints on standard error once it listens; tests and scripts parse its first two lines.
export interface BannerFacts {
  readonly address: string;
  readonly revision: string | undefined;
  readonly metricsUrl: string | undefined;
  readonly dev: boolean;
  /** Processes serving the address (`--workers`); the line is left out for one. */
  readonly workers?: number;
}

export function servingBanner(facts: BannerFacts): string {
  const next = facts.dev
    ? [
        `  DEV MODE: callers are whoever \`jitgate login\` says they are; never expose this server`,
        `  next:   ./bin/jitgate login --as alice --groups engineering`,
        `          ./bin/jitgate request db/orders --actions read --duration 30m --justification "investigate orders stuck in PAYING" --ticket INC-1`,
      ]
    : [`  next:   ./bin/jitgate requests --address ${facts.address}`];
  const metrics = facts.metricsUrl
    ? [`  metrics: ${facts.metricsUrl} (health: ${facts.metricsUrl.replace(/\/metrics$/, "/healthz")})`]
    : [];
  const workers = facts.workers !== undefined && facts.workers > 1 ? [`  workers: ${facts.workers}`] : [];
  return [`jitgate listening on ${facts.address} (policy revision ${facts.revision})`, ...metrics, ...workers, ...next, ""].join("\n");
}
