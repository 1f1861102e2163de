// Runs the cluster simulator on its own, as a separate process: writes its kubeconfig and serves until stopped.
//   npm run simulator -- --kubeconfig ./sim.kubeconfig
import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { startClusterSimulator } from './index.js';

function milliseconds(value: string): number {
  const ms = Number(value);
  if (!Number.isInteger(ms) || ms < 0) throw new InvalidArgumentError('a whole number of milliseconds, 0 or more');
  return ms;
}

const program = new Command('sentinel-cluster-simulator')
  .description('A loopback Kubernetes API server with controllers, for trying Sentinel and for tests')
  .requiredOption('--kubeconfig <path>', 'where to write the kubeconfig that reaches it')
  .option('--pod-ready-after <ms>', 'how long a scheduled pod takes to become Ready', milliseconds, 200)
  .parse();
const options = program.opts<{ kubeconfig: string; podReadyAfter: number }>();

const simulator = await startClusterSimulator({ podReadyAfterMs: options.podReadyAfter });
const path = resolve(options.kubeconfig);
await writeFile(path, simulator.kubeconfig(), { mode: 0o600 });
// One line on stdout, for whoever started it: where it listens and where its kubeconfig is.
process.stdout.write(`${JSON.stringify({ url: simulator.url, kubeconfig: path })}\n`);

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) process.exit(1);
    stopping = true;
    void simulator.close().then(() => process.exit(0));
  });
}
