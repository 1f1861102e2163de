// The host collectors against a small /proc and /sys tree recorded from a Linux VM (test/fixtures/agent/host).
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { CollectorFailure, type Collector, type Sample } from '../../../agent/collector.js';
import { hostCollectors } from '../../../agent/host-collectors.js';

const HOST = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../fixtures/agent/host');
const AT = 1_700_000_000_000;

function collectorsAt(root: string): Record<string, Collector> {
  const collectors = hostCollectors({ procRoot: path.join(root, 'proc'), sysRoot: path.join(root, 'sys'), now: () => AT });
  return Object.fromEntries(collectors.map((collector) => [collector.name, collector]));
}

const value = (samples: Sample[], metric: string, labels: Record<string, string> = {}) =>
  samples.filter((s) => s.metric === metric && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).map((s) => s.value);

describe('agent host collectors', () => {
  const host = collectorsAt(HOST);

  it('given /proc/stat, then CPU time per cpu and mode is in seconds, with the other counters of the stat collector', async () => {
    const samples = await host.cpu!.collect();
    expect(value(samples, 'node_cpu_seconds_total', { cpu: '0', mode: 'user' })).to.deep.equal([100.38]);
    expect(value(samples, 'node_cpu_seconds_total', { cpu: '1', mode: 'idle' })).to.deep.equal([334.56]);
    expect(value(samples, 'node_cpu_seconds_total', { cpu: '1', mode: 'steal' })).to.deep.equal([0.24]);
    expect(value(samples, 'node_cpu_guest_seconds_total', { cpu: '1', mode: 'user' })).to.deep.equal([0.05]);
    // The aggregate "cpu" line is not a CPU.
    expect(new Set(samples.filter((s) => s.metric === 'node_cpu_seconds_total').map((s) => s.labels.cpu))).to.deep.equal(new Set(['0', '1']));
    expect(value(samples, 'node_context_switches_total')).to.deep.equal([1525792]);
    expect(value(samples, 'node_boot_time_seconds')).to.deep.equal([1796550815]);
    expect(value(samples, 'node_procs_blocked')).to.deep.equal([1]);
    expect(value(samples, 'node_intr_total')).to.deep.equal([559958]);
    expect(samples.every((s) => s.timestampUnixMs === AT)).to.equal(true);
  });

  it('given /proc/meminfo, then every field is node_memory_<field>_bytes in bytes, or without _bytes when it has no unit', async () => {
    const samples = await host.memory!.collect();
    expect(value(samples, 'node_memory_MemTotal_bytes')).to.deep.equal([24683772 * 1024]);
    expect(value(samples, 'node_memory_MemAvailable_bytes')).to.deep.equal([22784432 * 1024]);
    expect(value(samples, 'node_memory_Active_anon_bytes')).to.deep.equal([140900 * 1024]);
    expect(value(samples, 'node_memory_HugePages_Total')).to.deep.equal([0]);
    expect(samples).to.have.length(52);
  });

  it('given /proc/diskstats, then whole disks are reported in bytes and seconds, and partitions, loop and zram devices are not', async () => {
    const samples = await host.disk!.collect();
    expect(new Set(samples.map((s) => s.labels.device))).to.deep.equal(new Set(['vda']));
    expect(value(samples, 'node_disk_read_bytes_total', { device: 'vda' })).to.deep.equal([1955066 * 512]);
    expect(value(samples, 'node_disk_written_bytes_total', { device: 'vda' })).to.deep.equal([8677088 * 512]);
    expect(value(samples, 'node_disk_reads_completed_total', { device: 'vda' })).to.deep.equal([49757]);
    expect(value(samples, 'node_disk_io_time_seconds_total', { device: 'vda' })).to.deep.equal([11.908]);
    expect(value(samples, 'node_disk_flush_requests_total', { device: 'vda' })).to.deep.equal([11127]);
  });

  it('given /proc/net/dev and /sys/class/net, then byte, packet and error counters per device and whether the link is up', async () => {
    const samples = await host.network!.collect();
    expect(value(samples, 'node_network_receive_bytes_total', { device: 'eth0' })).to.deep.equal([186518392]);
    expect(value(samples, 'node_network_transmit_bytes_total', { device: 'eth0' })).to.deep.equal([702399]);
    expect(value(samples, 'node_network_receive_errs_total', { device: 'eth0' })).to.deep.equal([2]);
    expect(value(samples, 'node_network_receive_multicast_total', { device: 'eth0' })).to.deep.equal([7]);
    expect(value(samples, 'node_network_transmit_bytes_total', { device: 'lo' })).to.deep.equal([1508193965]);
    expect(value(samples, 'node_network_up', { device: 'eth0' })).to.deep.equal([1]);
    expect(value(samples, 'node_network_up', { device: 'lo' })).to.deep.equal([0]);
  });

  describe('given a broken tree', () => {
    let root: string;
    before(async () => {
      root = await mkdtemp(path.join(tmpdir(), 'agent-host-'));
      await cp(HOST, root, { recursive: true });
      await writeFile(path.join(root, 'proc/meminfo'), 'MemTotal: lots\n');
      await rm(path.join(root, 'proc/diskstats'));
    });
    after(() => rm(root, { recursive: true, force: true }));

    const failureOf = async (collector: Collector) => {
      try {
        await collector.collect();
      } catch (error) {
        expect(error).to.be.instanceOf(CollectorFailure);
        return error as CollectorFailure;
      }
      throw new Error(`expected ${collector.name} to fail`);
    };

    it('then an unreadable file is an io failure of its own collector only, and a line not understood a parse failure', async () => {
      const broken = collectorsAt(root);
      const disk = await failureOf(broken.disk!);
      expect(disk.reason).to.equal('io');
      expect(disk.message).to.include('diskstats');
      const memory = await failureOf(broken.memory!);
      expect(memory.reason).to.equal('parse');
      expect(memory.message).to.include('MemTotal: lots');
      expect(await broken.cpu!.collect()).to.have.length.greaterThan(0);
    });
  });
});
