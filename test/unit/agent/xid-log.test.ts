// The XID collector following a kernel log: only appended lines count, a line still being written waits, rotation starts over.
import { appendFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { CollectorFailure } from '../../../agent/collector.js';
import { xidLogCollector } from '../../../agent/xid-log.js';

const OLD = 'Jan 10 08:00:00 gpu-node-1 kernel: NVRM: Xid (PCI:0000:3b:00): 13, Graphics Exception\n';
const FELL_OFF = 'Jan 10 09:12:01 gpu-node-1 kernel: [12345.678] NVRM: Xid (PCI:0000:3b:00): 79, pid=4242, name=python, GPU has fallen off the bus.\n';
const ECC = 'Jan 10 09:13:00 gpu-node-1 kernel: NVRM: Xid (PCI:0000:86:00): 48, pid=17, name=train, An uncorrectable double bit error (DBE) has been detected\n';

describe('agent XID collector', () => {
  let dir: string;
  let log: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'agent-xid-'));
    log = path.join(dir, 'kern.log');
    await writeFile(log, `${OLD}Jan 10 08:01:00 gpu-node-1 kernel: eth0: link up\n`);
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  const collector = () => xidLogCollector({ file: log, hostname: 'gpu-node-1', now: () => 1 });
  const seen = (samples: { metric: string; labels: Record<string, string>; value: number }[]) =>
    samples.map((s) => `${s.metric}{${s.labels.pci_bus_id}} ${s.value}`);

  it('given lines already in the log at start, then they are not reported; lines appended later are, by normalised bus id', async () => {
    const xid = collector();
    expect(await xid.collect()).to.deep.equal([]);
    await appendFile(log, FELL_OFF + ECC);
    expect(seen(await xid.collect())).to.deep.equal([
      'DCGM_FI_DEV_XID_ERRORS{00000000:3B:00.0} 79',
      'sentinel_gpu_xid_errors_total{00000000:3B:00.0} 1',
      'DCGM_FI_DEV_XID_ERRORS{00000000:86:00.0} 48',
      'sentinel_gpu_xid_errors_total{00000000:86:00.0} 1',
    ]);
    // Nothing new: the last code stays, the count does not grow.
    expect(seen(await xid.collect())).to.include('sentinel_gpu_xid_errors_total{00000000:3B:00.0} 1');
  });

  it('given a line still being written, then it is read once it is complete', async () => {
    const xid = collector();
    await xid.collect();
    await appendFile(log, FELL_OFF.slice(0, 40));
    expect(await xid.collect()).to.deep.equal([]);
    await appendFile(log, FELL_OFF.slice(40));
    expect(seen(await xid.collect())).to.include('DCGM_FI_DEV_XID_ERRORS{00000000:3B:00.0} 79');
  });

  it('given the log truncated or replaced by rotation, then the new file is read from its start', async () => {
    const xid = collector();
    await xid.collect();
    await writeFile(log, ECC);
    expect(seen(await xid.collect())).to.include('DCGM_FI_DEV_XID_ERRORS{00000000:86:00.0} 48');
    await rm(log);
    await writeFile(log, FELL_OFF + FELL_OFF);
    expect(seen(await xid.collect())).to.include('sentinel_gpu_xid_errors_total{00000000:3B:00.0} 2');
  });

  it('given the log cannot be read, then the collector fails with an io failure naming the file', async () => {
    await rm(log);
    const failure = await collector().collect().then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(failure).to.be.instanceOf(CollectorFailure);
    expect((failure as CollectorFailure).reason).to.equal('io');
    expect((failure as CollectorFailure).message).to.include('kern.log');
  });
});
