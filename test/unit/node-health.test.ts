// GPU health facts from samples: given the known conditions, when a batch's samples arrive, then these facts.
import { expect } from 'chai';
import {
  applyGpuFact,
  deriveGpuFacts,
  gpuIdentity,
  healthSamples,
  throttleCauses,
  unfitReason,
  type GpuConditions,
  type GpuFact,
  type HealthSample,
} from '../../domain/node-health.js';

const GPU = 'GPU-8f6e1c2a-0000-4000-8000-000000000001';
const t = (second: number) => new Date(Date.UTC(2026, 0, 31, 12, 0, second)).toISOString();
const sample = (metric: HealthSample['metric'], value: number, second: number, gpu = GPU): HealthSample => ({ metric, gpu, value, at: t(second) });
const xid = (code: number, second: number) => sample('DCGM_FI_DEV_XID_ERRORS', code, second);
const throttle = (mask: number, second: number) => sample('DCGM_FI_DEV_CLOCK_THROTTLE_REASONS', mask, second);
const lost = (value: number, second: number) => sample('sentinel_gpu_lost', value, second);

/** Given the facts already recorded, when these samples come, then these facts. */
function given(past: GpuFact[] = []) {
  const conditions = past.reduce<GpuConditions>(applyGpuFact, {});
  return { when: (...samples: HealthSample[]) => deriveGpuFacts(conditions, samples) };
}

describe('GPU health facts', () => {
  describe('samples', () => {
    it('names a GPU by its UUID, else its PCI bus id, else its index', () => {
      expect(gpuIdentity({ UUID: GPU, pci_bus_id: '00000000:3B:00.0', gpu: '0' })).to.equal(GPU);
      expect(gpuIdentity({ pci_bus_id: '00000000:3B:00.0', gpu: '0' })).to.equal('00000000:3B:00.0');
      expect(gpuIdentity({ gpu: '0' })).to.equal('0');
      expect(gpuIdentity({ device: 'nvidia0' })).to.equal(undefined);
    });
    it('keeps only health metrics about a GPU, with the sample time or else the receive time', () => {
      const received = new Date(t(30));
      const trimmed = healthSamples(
        [
          { metric: 'DCGM_FI_DEV_XID_ERRORS', labels: { UUID: GPU, modelName: 'A100' }, value: 79, timestampUnixMs: Date.parse(t(5)) },
          { metric: 'sentinel_gpu_lost', labels: { pci_bus_id: '00000000:3B:00.0' }, value: 1, timestampUnixMs: 0 },
          { metric: 'DCGM_FI_DEV_GPU_UTIL', labels: { UUID: GPU }, value: 90, timestampUnixMs: Date.parse(t(5)) },
          { metric: 'DCGM_FI_DEV_XID_ERRORS', labels: {}, value: 13, timestampUnixMs: Date.parse(t(5)) },
        ],
        received,
      );
      expect(trimmed).to.deep.equal([
        { metric: 'DCGM_FI_DEV_XID_ERRORS', gpu: GPU, value: 79, at: t(5) },
        { metric: 'sentinel_gpu_lost', gpu: '00000000:3B:00.0', value: 1, at: t(30) },
      ]);
    });
  });

  describe('XID errors', () => {
    const observed = (code: number, second: number, unfit: boolean): GpuFact => ({
      type: 'GpuXidErrorObserved',
      data: { gpu: GPU, xid: code, observedAt: t(second), unfit },
    });
    it('given nothing, when XID 79 is reported, then one unfit occurrence', () => {
      expect(given().when(xid(79, 1))).to.deep.equal([observed(79, 1, true)]);
    });
    it('given XID 79 recorded, when the gauge repeats the same code and time, then nothing', () => {
      expect(given([observed(79, 1, true)]).when(xid(79, 1), xid(79, 1))).to.deep.equal([]);
    });
    it('given XID 13 recorded, when XID 13 comes again at a later time, then a new occurrence that leaves the node fit', () => {
      expect(given([observed(13, 1, false)]).when(xid(13, 9))).to.deep.equal([observed(13, 9, false)]);
    });
    it('given an XID recorded, when another code comes at the same time, then it is an occurrence; an older one is not', () => {
      expect(given([observed(13, 5, false)]).when(xid(48, 5), xid(31, 4))).to.deep.equal([observed(48, 5, true)]);
    });
    it('ignores 0, which says no XID', () => {
      expect(given().when(xid(0, 1))).to.deep.equal([]);
    });
    it('makes a node unfit for the XIDs of the table, and names the fault', () => {
      for (const code of [48, 63, 64, 74, 79, 94, 95]) expect(unfitReason(observed(code, 1, true)), `XID ${code}`).to.match(new RegExp(`XID ${code} \\(`));
      expect(unfitReason(observed(13, 1, false))).to.equal(undefined);
    });
  });

  describe('double-bit ECC errors', () => {
    const grew = (counter: 'aggregate' | 'volatile', from: number, to: number, second: number): GpuFact => ({
      type: 'GpuEccDoubleBitErrorsGrew',
      data: { gpu: GPU, counter, from, to, observedAt: t(second) },
    });
    it('given no count, when 0 is reported, then nothing; when 2 is, then it grew from 0 to 2', () => {
      expect(given().when(sample('DCGM_FI_DEV_ECC_DBE_AGG_TOTAL', 0, 1))).to.deep.equal([]);
      expect(given().when(sample('DCGM_FI_DEV_ECC_DBE_AGG_TOTAL', 2, 1))).to.deep.equal([grew('aggregate', 0, 2, 1)]);
    });
    it('given a count of 2, when 2 is reported again, then nothing; when 3, then it grew from 2 to 3', () => {
      const past = [grew('aggregate', 0, 2, 1)];
      expect(given(past).when(sample('DCGM_FI_DEV_ECC_DBE_AGG_TOTAL', 2, 5))).to.deep.equal([]);
      expect(given(past).when(sample('DCGM_FI_DEV_ECC_DBE_AGG_TOTAL', 3, 5))).to.deep.equal([grew('aggregate', 2, 3, 5)]);
    });
    it('when the batch has both counters for a GPU, then only the aggregate one is judged; alone, the volatile one is', () => {
      const both = [sample('DCGM_FI_DEV_ECC_DBE_VOL_TOTAL', 1, 1), sample('DCGM_FI_DEV_ECC_DBE_AGG_TOTAL', 4, 1)];
      expect(given().when(...both)).to.deep.equal([grew('aggregate', 0, 4, 1)]);
      expect(given().when(sample('DCGM_FI_DEV_ECC_DBE_VOL_TOTAL', 1, 1))).to.deep.equal([grew('volatile', 0, 1, 1)]);
    });
    it('makes the node unfit', () => {
      expect(unfitReason(grew('aggregate', 2, 3, 1))).to.equal(`double-bit ECC errors on GPU ${GPU} grew from 2 to 3`);
    });
  });

  describe('throttling', () => {
    const began = (cause: 'thermal' | 'power', reasons: number, second: number): GpuFact => ({
      type: 'GpuThrottlingBegan',
      data: { gpu: GPU, cause, reasons, at: t(second) },
    });
    const ended = (cause: 'thermal' | 'power', reasons: number, second: number): GpuFact => ({
      type: 'GpuThrottlingEnded',
      data: { gpu: GPU, cause, reasons, at: t(second) },
    });
    it('reads the causes from the mask', () => {
      expect([...throttleCauses(0x40)]).to.deep.equal(['thermal']);
      expect([...throttleCauses(0x20)]).to.deep.equal(['thermal']);
      expect([...throttleCauses(0x80 | 0x8)]).to.deep.equal(['power']);
      expect([...throttleCauses(0x4)]).to.deep.equal(['power']);
      expect([...throttleCauses(0x8)]).to.deep.equal(['thermal']);
      expect([...throttleCauses(0x1)]).to.deep.equal([]);
    });
    it('given nothing, when HW thermal throttling is reported in three samples, then it began once', () => {
      expect(given().when(throttle(0x40, 1), throttle(0x40, 2), throttle(0x48, 3))).to.deep.equal([began('thermal', 0x40, 1)]);
    });
    it('given thermal throttling, when the mask clears, then it ended; when it clears again, then nothing', () => {
      expect(given([began('thermal', 0x40, 1)]).when(throttle(0, 5))).to.deep.equal([ended('thermal', 0, 5)]);
      expect(given([began('thermal', 0x40, 1), ended('thermal', 0, 5)]).when(throttle(0, 6))).to.deep.equal([]);
    });
    it('given nothing, when power and then thermal throttling come and go within one batch, then each edge in time order', () => {
      const facts = given().when(throttle(0, 4), throttle(0x40, 3), throttle(0x4, 2), throttle(0x1, 1));
      expect(facts).to.deep.equal([began('power', 0x4, 2), began('thermal', 0x40, 3), ended('power', 0x40, 3), ended('thermal', 0, 4)]);
    });
    it('given throttling that ended at second 5, when a stale sample from second 3 says throttled, then nothing', () => {
      expect(given([began('thermal', 0x40, 1), ended('thermal', 0, 5)]).when(throttle(0x40, 3))).to.deep.equal([]);
    });
  });

  describe('the bus', () => {
    const BUS = '00000000:3B:00.0';
    const fell: GpuFact = { type: 'GpuFellOffBus', data: { gpu: BUS, at: t(1) } };
    it('given a GPU on the bus, when it is lost, then it fell off, once; when present again, then it is back', () => {
      expect(given().when(sample('sentinel_gpu_lost', 0, 0, BUS), sample('sentinel_gpu_lost', 1, 1, BUS), sample('sentinel_gpu_lost', 1, 2, BUS))).to.deep.equal([fell]);
      expect(given([fell]).when(sample('sentinel_gpu_lost', 0, 9, BUS))).to.deep.equal([{ type: 'GpuBackOnBus', data: { gpu: BUS, at: t(9) } }]);
    });
    it('given nothing, when a GPU is reported present, then nothing', () => {
      expect(given().when(lost(0, 1))).to.deep.equal([]);
    });
  });
});
