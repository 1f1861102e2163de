// The Node decider: registration, silence, GPU facts and unfitness, as given / when / then.
import { expect } from 'chai';
import { factEventId, isUnfit, nodeDecider, nodeEvents, nodeId, type NodeCommand, type NodeEvent } from '../../domain/node.js';
import type { HealthSample } from '../../domain/node-health.js';
import { given } from '../support/decider.js';

const clusterId = '0b4c1d1e-1111-4a4a-8a8a-000000000001';
const nodeName = 'gpu-node-1';
const agentId = 'agent-gpu-node-1';
const GPU = 'GPU-8f6e1c2a-0000-4000-8000-000000000001';
const t = (second: number) => new Date(Date.UTC(2026, 0, 31, 12, 0, second)).toISOString();

const observe = (second: number, ...samples: HealthSample[]): NodeCommand => ({
  type: 'ObserveBatch',
  clusterId,
  nodeName,
  agentId,
  samples,
  observedAt: t(second),
});
const checkSilence = (second: number, lastHeardAt?: string): NodeCommand => ({
  type: 'CheckSilence',
  now: t(second),
  silentAfterMs: 9_000,
  intervalMs: 3_000,
  ...(lastHeardAt ? { lastHeardAt } : {}),
});
const xid = (code: number, second: number): HealthSample => ({ metric: 'DCGM_FI_DEV_XID_ERRORS', gpu: GPU, value: code, at: t(second) });
const lost = (value: number, second: number): HealthSample => ({ metric: 'sentinel_gpu_lost', gpu: GPU, value, at: t(second) });

const registered: NodeEvent = { type: 'NodeRegistered', data: { clusterId, nodeName, agentId, firstSeenAt: t(0) } };
const xid79: NodeEvent = { type: 'GpuXidErrorObserved', data: { gpu: GPU, xid: 79, observedAt: t(1), unfit: true } };
const silent: NodeEvent = { type: 'NodeWentSilent', data: { lastSeenAt: t(0), silentSince: t(9), intervals: 3 } };

describe('Node decider', () => {
  it('derives a stable node id from the cluster and the node name', () => {
    expect(nodeId(clusterId, nodeName)).to.equal(nodeId(clusterId, nodeName));
    expect(nodeId(clusterId, nodeName)).to.match(/^[0-9a-f-]{36}$/);
    expect(nodeId(clusterId, 'gpu-node-2')).to.not.equal(nodeId(clusterId, nodeName));
  });

  describe('observing batches', () => {
    it('given nothing, when the first batch comes, then NodeRegistered and its facts', () => {
      given(nodeDecider).when(observe(0, xid(79, 1))).then([registered, xid79]);
    });
    it('given a registered node, when a batch says nothing new, then nothing', () => {
      given(nodeDecider, [registered]).when(observe(5)).then([]);
    });
    it('given the facts of a batch recorded, when the same batch comes again, then nothing', () => {
      given(nodeDecider, [registered, xid79]).when(observe(0, xid(79, 1))).then([]);
    });
    it('given a silent node, when a batch comes, then NodeHeardFromAgain first', () => {
      given(nodeDecider, [registered, silent])
        .when(observe(30))
        .then([{ type: 'NodeHeardFromAgain', data: { silentSince: t(9), seenAt: t(30) } }]);
    });
  });

  describe('silence', () => {
    it('given a node last heard from at 0, when checked at 8 s, then nothing; at 9 s, then NodeWentSilent after 3 intervals', () => {
      given(nodeDecider, [registered]).when(checkSilence(8, t(0))).then([]);
      given(nodeDecider, [registered]).when(checkSilence(9, t(0))).then([silent]);
    });
    it('judges by the later of the log and the checker: a batch heard at 5 s keeps the node reporting at 9 s', () => {
      given(nodeDecider, [registered]).when(checkSilence(9, t(5))).then([]);
    });
    it('given a silent node, when checked again, then nothing; given nothing, when checked, then nothing', () => {
      given(nodeDecider, [registered, silent]).when(checkSilence(60, t(0))).then([]);
      given(nodeDecider).when(checkSilence(60)).then([]);
    });
  });

  describe('unfitness', () => {
    it('given XID 79, then the node is unfit and says why; given only XID 13, then it is fit', () => {
      const { state } = given(nodeDecider, [registered, xid79]);
      expect(isUnfit(state)).to.equal(true);
      expect(state.status !== 'absent' && state.unfit.map((cause) => cause.reason)).to.deep.equal([`XID 79 (GPU has fallen off the bus) on GPU ${GPU}`]);
      const xid13: NodeEvent = { type: 'GpuXidErrorObserved', data: { gpu: GPU, xid: 13, observedAt: t(1), unfit: false } };
      expect(isUnfit(given(nodeDecider, [registered, xid13]).state)).to.equal(false);
    });
    it('given an XID fault, when the node was silent and is heard from again (a reboot), then it is fit again', () => {
      const heard: NodeEvent = { type: 'NodeHeardFromAgain', data: { silentSince: t(9), seenAt: t(30) } };
      expect(isUnfit(given(nodeDecider, [registered, xid79, silent, heard]).state)).to.equal(false);
    });
    it('given a GPU that fell off the bus, then unfit until it is back on it', () => {
      const fell = given(nodeDecider, [registered]).when(observe(2, lost(1, 2))).events();
      expect(fell).to.deep.equal([{ type: 'GpuFellOffBus', data: { gpu: GPU, at: t(2) } }]);
      expect(isUnfit(given(nodeDecider, [registered, ...fell]).state)).to.equal(true);
      const back = given(nodeDecider, [registered, ...fell]).when(observe(4, lost(0, 4))).events();
      expect(isUnfit(given(nodeDecider, [registered, ...fell, ...back]).state)).to.equal(false);
    });
  });

  describe('event ids', () => {
    const stream = `node-${nodeId(clusterId, nodeName)}`;
    it('derives the same id for the same fact, and different ids for different facts', () => {
      expect(factEventId(stream, xid79)).to.equal(factEventId(stream, structuredClone(xid79)));
      expect(factEventId(stream, xid79)).to.not.equal(factEventId(stream, { ...xid79, data: { ...xid79.data, observedAt: t(2) } }));
      expect(factEventId(stream, xid79)).to.not.equal(factEventId(`node-${nodeId(clusterId, 'other')}`, xid79));
    });
    it('names silence by the last time the node was seen, whoever checked and when', () => {
      const later: NodeEvent = { type: 'NodeWentSilent', data: { ...silent.data, intervals: 7 } } as NodeEvent;
      expect(factEventId(stream, later)).to.equal(factEventId(stream, silent));
    });
  });

  it('reads every event it decides back through its catalogue', () => {
    for (const event of [registered, xid79, silent, ...given(nodeDecider, [registered]).when(observe(2, lost(1, 2))).events()]) {
      expect(nodeEvents.parse(event.type, nodeEvents.version(event.type), JSON.parse(JSON.stringify(event.data)))).to.deep.equal(event);
    }
  });
});
