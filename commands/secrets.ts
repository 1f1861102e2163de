// Secrets (inline kubeconfigs, signing keys) are kept outside the event log, which is immutable and widely read.

export interface SecretStore {
  /** Stores `data` and returns its reference; the same data always gets the same reference. */
  put(data: string): Promise<string>;
  get(ref: string): Promise<string | undefined>;
  /** The secret stored under a fixed name, created by `make` when absent; every process sees the same one. */
  getOrCreate(name: string, make: () => string): Promise<string>;
}
