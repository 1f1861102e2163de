// The GPU collector against fake nvidia-smi programs: recorded output with MIG, a lost GPU, a hang, garbage, a failure, no binary.
import { readFile } from 'node:fs/promises';
import { expect } from 'chai';
import { CollectorFailure, type Sample } from '../../../agent/collector.js';
import { nvidiaSmiCollector, QUERY_FIELDS } from '../../../agent/nvidia-smi.js';
import { fakeNvidiaSmi as writeFake, LOST_GPU_NODE, MIG_NODE, type FakeNvidiaSmi } from '../../fixtures/agent/fake-nvidia-smi.js';

const AT = 1_700_000_000_000;

function collector(command: string, timeoutMs = 5000) {
  return nvidiaSmiCollector({ command, timeoutMs, hostname: 'gpu-node-1', now: () => AT });
}

async function failureOf(promise: Promise<unknown>): Promise<CollectorFailure> {
  try {
    await promise;
  } catch (error) {
    expect(error).to.be.instanceOf(CollectorFailure);
    return error as CollectorFailure;
  }
  throw new Error('expected the collector to fail');
}

const find = (samples: Sample[], metric: string, labels: Record<string, string>) =>
  samples.filter((s) => s.metric === metric && Object.entries(labels).every(([k, v]) => s.labels[k] === v));

/** Whether a process is gone: no such pid, or a zombie waiting for its new parent to reap it. */
async function gone(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return / Z /.test(stat.slice(stat.lastIndexOf(')')));
}

describe('agent GPU collector (nvidia-smi)', () => {
  const fakes: FakeNvidiaSmi[] = [];
  const fakeNvidiaSmi = async (body: string) => {
    const fake = await writeFake(body);
    fakes.push(fake);
    return fake;
  };
  after(async () => {
    await Promise.all(fakes.map((fake) => fake.remove()));
  });

  it('given several GPUs, one in MIG mode, then every DCGM metric carries dcgm-exporter\'s labels and each GPU instance is listed', async () => {
    const fake = await fakeNvidiaSmi(MIG_NODE);
    const samples = await collector(fake.command).collect();

    expect(await fake.calls()).to.deep.equal([[`--query-gpu=${QUERY_FIELDS.join(',')}`, '--format=csv,noheader,nounits'], ['mig', '-lgi']]);
    const gpu1 = { gpu: '1', UUID: 'GPU-6e2a1c4f-0b9e-2f7a-8d31-5c6f0e9a7b12', device: 'nvidia1', modelName: 'NVIDIA A100-SXM4-40GB', pci_bus_id: '00000000:0F:00.0', Hostname: 'gpu-node-1' };
    const valueOf = (metric: string, gpu: string) => find(samples, metric, { gpu }).map((s) => s.value);
    expect(find(samples, 'DCGM_FI_DEV_GPU_UTIL', { gpu: '1' })).to.deep.equal([{ metric: 'DCGM_FI_DEV_GPU_UTIL', labels: gpu1, value: 87, timestampUnixMs: AT }]);
    expect(valueOf('DCGM_FI_DEV_FB_USED', '1')).to.deep.equal([30512]);
    expect(valueOf('DCGM_FI_DEV_FB_FREE', '1')).to.deep.equal([9814]);
    expect(valueOf('DCGM_FI_DEV_GPU_TEMP', '1')).to.deep.equal([64]);
    expect(valueOf('DCGM_FI_DEV_POWER_USAGE', '1')).to.deep.equal([312.45]);
    expect(valueOf('DCGM_FI_DEV_SM_CLOCK', '1')).to.deep.equal([1410]);
    expect(valueOf('DCGM_FI_DEV_MEM_CLOCK', '1')).to.deep.equal([1215]);
    expect(valueOf('DCGM_FI_DEV_ECC_SBE_VOL_TOTAL', '1')).to.deep.equal([2]);
    expect(valueOf('DCGM_FI_DEV_ECC_DBE_VOL_TOTAL', '1')).to.deep.equal([0]);
    expect(valueOf('DCGM_FI_DEV_ECC_SBE_AGG_TOTAL', '1')).to.deep.equal([14]);
    expect(valueOf('DCGM_FI_DEV_ECC_DBE_AGG_TOTAL', '1')).to.deep.equal([1]);
    expect(valueOf('DCGM_FI_DEV_RETIRED_SBE', '1')).to.deep.equal([1]);
    expect(valueOf('DCGM_FI_DEV_RETIRED_DBE', '1')).to.deep.equal([0]);
    expect(valueOf('DCGM_FI_DEV_CLOCK_THROTTLE_REASONS', '1')).to.deep.equal([4]);
    expect(valueOf('DCGM_FI_DEV_MIG_MODE', '0')).to.deep.equal([1]);
    expect(valueOf('DCGM_FI_DEV_MIG_MODE', '1')).to.deep.equal([0]);
    expect(valueOf('sentinel_gpu_lost', '1')).to.deep.equal([0]);

    // [N/A] and [Not Supported] are no value, not an error.
    expect(valueOf('DCGM_FI_DEV_GPU_UTIL', '2')).to.deep.equal([]);
    expect(valueOf('DCGM_FI_DEV_POWER_USAGE', '2')).to.deep.equal([]);
    expect(valueOf('DCGM_FI_DEV_ECC_DBE_VOL_TOTAL', '2')).to.deep.equal([]);
    expect(valueOf('DCGM_FI_DEV_FB_USED', '2')).to.deep.equal([1024]);

    const instances = find(samples, 'sentinel_gpu_mig_instance_info', {}).map((s) => [s.labels.gpu, s.labels.UUID, s.labels.GPU_I_PROFILE, s.labels.GPU_I_ID, s.value]);
    expect(instances).to.deep.equal([
      ['0', 'GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77', '3g.20gb', '1', 1],
      ['0', 'GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77', '1g.5gb', '7', 1],
    ]);
  });

  it('given a GPU fallen off the bus and one that needs a reset, then each is reported lost and the healthy one still is', async () => {
    const fake = await fakeNvidiaSmi(LOST_GPU_NODE);
    const samples = await collector(fake.command).collect();

    const lost = find(samples, 'sentinel_gpu_lost', {}).map((s) => ({ ...s.labels, value: s.value }));
    expect(lost).to.have.deep.members([
      { gpu: '0', pci_bus_id: '00000000:18:00.0', Hostname: 'gpu-node-1', value: 0 },
      { pci_bus_id: '00000000:3B:00.0', Hostname: 'gpu-node-1', value: 1 },
      { gpu: '2', pci_bus_id: '00000000:4C:00.0', Hostname: 'gpu-node-1', value: 1 },
    ]);
    expect(find(samples, 'DCGM_FI_DEV_GPU_UTIL', {}).map((s) => [s.labels.gpu, s.labels.modelName, s.value])).to.deep.equal([['0', 'NVIDIA H100 80GB HBM3', 12]]);
    // MIG is off everywhere: no instance listing is asked for.
    expect((await fake.calls()).map((args) => args[0])).to.deep.equal([`--query-gpu=${QUERY_FIELDS.join(',')}`]);
  });

  it('given nvidia-smi hangs, then the collector fails with a timeout and the command and what it started are killed', async () => {
    const fake = await fakeNvidiaSmi('echo $$ > "$PIDS"\nsleep 60 &\necho $! >> "$PIDS"\nwait');
    const failure = await failureOf(collector(fake.command, 300).collect());

    expect(failure.reason).to.equal('timeout');
    expect(failure.message).to.match(/did not finish within 300 ms and was killed/);
    const pids = (await readFile(fake.pidFile, 'utf8')).trim().split('\n').map(Number);
    expect(pids).to.have.length(2);
    for (const pid of pids) expect(await gone(pid), `process ${pid} is gone`).to.equal(true);
  });

  it('given garbage on stdout, then the collector fails with a parse failure that quotes it', async () => {
    const fake = await fakeNvidiaSmi('echo "Failed to initialize NVML: Driver/library version mismatch"');
    const failure = await failureOf(collector(fake.command).collect());
    expect(failure.reason).to.equal('parse');
    expect(failure.message).to.include('Driver/library version mismatch');
  });

  it('given a number field that is not a number, then the collector fails with a parse failure naming the field', async () => {
    const fake = await fakeNvidiaSmi(`sed 's/, 87, /, lots, /' "$FIXTURES/query-mig.csv"`);
    const failure = await failureOf(collector(fake.command).collect());
    expect(failure.reason).to.equal('parse');
    expect(failure.message).to.include('utilization.gpu is "lots"');
  });

  it('given nvidia-smi exits with status 9, then the collector fails with an exit failure saying what it printed', async () => {
    const fake = await fakeNvidiaSmi('echo "NVIDIA-SMI has failed because it couldn\'t communicate with the NVIDIA driver." >&2\nexit 9');
    const failure = await failureOf(collector(fake.command).collect());
    expect(failure.reason).to.equal('exit');
    expect(failure.message).to.match(/exited with status 9: NVIDIA-SMI has failed/);
  });

  it('given the driver sees no GPU, then there are no samples and no failure', async () => {
    const fake = await fakeNvidiaSmi('echo "No devices were found"\nexit 6');
    expect(await collector(fake.command).collect()).to.deep.equal([]);
  });

  it('given no nvidia-smi at all, then there are no samples and no failure', async () => {
    expect(await collector('/nonexistent/bin/nvidia-smi').collect()).to.deep.equal([]);
  });

  it('given MIG on and the instance listing fails, then the collector fails with an exit failure', async () => {
    const fake = await fakeNvidiaSmi('case "$1" in mig) echo "Insufficient Permissions" >&2; exit 4 ;; *) cat "$FIXTURES/query-mig.csv" ;; esac');
    const failure = await failureOf(collector(fake.command).collect());
    expect(failure.reason).to.equal('exit');
    expect(failure.message).to.match(/mig -lgi exited with status 4: Insufficient Permissions/);
  });
});
