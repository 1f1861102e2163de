import { expect } from 'chai';
import { clusterBody, clusterDecider, clusterEvents, clusterPatchBody, type ClusterSpec } from '../../domain/cluster.js';
import { InvalidTransition, NotFound, UnknownEvent } from '../../domain/decider.js';
import { given } from '../support/decider.js';

const clusterId = '0b4c1d1e-1111-4a4a-8a8a-000000000001';
const spec: ClusterSpec = {
  name: 'gpu-east',
  apiServer: 'https://10.0.0.1:6443',
  credentials: { source: 'in-cluster' },
  region: 'us-east-1',
  labels: { team: 'ml' },
  gpuSkus: ['nvidia-a100-80gb'],
};
const registered = { type: 'ClusterRegistered', data: { clusterId, spec } } as const;
const cordoned = { type: 'ClusterCordoned', data: { clusterId, reason: 'maintenance' } } as const;
const deregistered = { type: 'ClusterDeregistered', data: { clusterId, reason: undefined } } as const;

describe('Cluster decider', () => {
  describe('register', () => {
    it('given nothing, when registered, then ClusterRegistered', () => {
      given(clusterDecider).when({ type: 'RegisterCluster', clusterId, spec }).then([registered]);
    });
    it('given a registered cluster, when registered again, then InvalidTransition', () => {
      given(clusterDecider, [registered])
        .when({ type: 'RegisterCluster', clusterId, spec })
        .thenThrows(InvalidTransition, /already registered/);
    });
  });

  describe('update', () => {
    it('given a registered cluster, when the region changes, then ClusterUpdated with only the changed fields', () => {
      given(clusterDecider, [registered])
        .when({ type: 'UpdateCluster', clusterId, changes: { region: 'us-west-2', name: 'gpu-east' } })
        .then([{ type: 'ClusterUpdated', data: { clusterId, changes: { region: 'us-west-2' } } }]);
    });
    it('given a registered cluster, when the labels it already has are sent, then nothing', () => {
      given(clusterDecider, [registered]).when({ type: 'UpdateCluster', clusterId, changes: { labels: { team: 'ml' } } }).then([]);
    });
    it('given an update, then the state carries the new spec', () => {
      const { state } = given(clusterDecider, [registered, { type: 'ClusterUpdated', data: { clusterId, changes: { gpuSkus: [] } } }]);
      expect(state).to.deep.include({ status: 'active' });
      expect(state.status !== 'absent' && state.spec.gpuSkus).to.deep.equal([]);
    });
    it('given nothing, when updated, then NotFound', () => {
      given(clusterDecider).when({ type: 'UpdateCluster', clusterId, changes: { region: 'x' } }).thenThrows(NotFound);
    });
  });

  describe('cordon and uncordon', () => {
    it('given an active cluster, when cordoned, then ClusterCordoned', () => {
      given(clusterDecider, [registered]).when({ type: 'CordonCluster', clusterId, reason: 'maintenance' }).then([cordoned]);
    });
    it('given a cordoned cluster, when cordoned again, then nothing', () => {
      given(clusterDecider, [registered, cordoned]).when({ type: 'CordonCluster', clusterId }).then([]);
    });
    it('given a cordoned cluster, when uncordoned, then ClusterUncordoned', () => {
      given(clusterDecider, [registered, cordoned])
        .when({ type: 'UncordonCluster', clusterId })
        .then([{ type: 'ClusterUncordoned', data: { clusterId } }]);
    });
    it('given an active cluster, when uncordoned, then nothing', () => {
      given(clusterDecider, [registered]).when({ type: 'UncordonCluster', clusterId }).then([]);
    });
    it('given nothing, when cordoned, then NotFound', () => {
      given(clusterDecider).when({ type: 'CordonCluster', clusterId }).thenThrows(NotFound);
    });
  });

  describe('connection', () => {
    const connected = { type: 'ClusterConnected', data: { clusterId } } as const;
    const unreachable = { type: 'ClusterUnreachable', data: { clusterId, cause: 'Unauthorized: the token was refused' } } as const;
    it('given a registered cluster, when reached, then ClusterConnected; when reached again, then nothing', () => {
      given(clusterDecider, [registered]).when({ type: 'RecordClusterConnected', clusterId }).then([connected]);
      given(clusterDecider, [registered, connected]).when({ type: 'RecordClusterConnected', clusterId }).then([]);
    });
    it('given a connected cluster, when it cannot be reached, then ClusterUnreachable with the cause, once however often it is tried', () => {
      given(clusterDecider, [registered, connected]).when({ type: 'RecordClusterUnreachable', clusterId, cause: unreachable.data.cause }).then([unreachable]);
      given(clusterDecider, [registered, connected, unreachable]).when({ type: 'RecordClusterUnreachable', clusterId, cause: 'connect ECONNREFUSED' }).then([]);
    });
    it('given an unreachable cluster, when reached again, then ClusterConnected', () => {
      given(clusterDecider, [registered, unreachable]).when({ type: 'RecordClusterConnected', clusterId }).then([connected]);
    });
    it('given an unreachable cluster, when its credentials change, then its connection is unknown again and the next failure is recorded', () => {
      const updated = { type: 'ClusterUpdated', data: { clusterId, changes: { credentials: { source: 'in-cluster' as const } } } } as const;
      const { state } = given(clusterDecider, [registered, unreachable, updated]);
      expect(state.status !== 'absent' && state.connection).to.equal('unknown');
      given(clusterDecider, [registered, unreachable, updated]).when({ type: 'RecordClusterUnreachable', clusterId, cause: 'x' }).then([{ type: 'ClusterUnreachable', data: { clusterId, cause: 'x' } }]);
      const relabelled = { type: 'ClusterUpdated', data: { clusterId, changes: { labels: {} } } } as const;
      expect(given(clusterDecider, [registered, unreachable, relabelled]).state).to.deep.include({ connection: 'unreachable' });
    });
    it('given a cordoned cluster that is uncordoned, then its connection is kept', () => {
      const { state } = given(clusterDecider, [registered, connected, cordoned, { type: 'ClusterUncordoned', data: { clusterId } }]);
      expect(state).to.deep.include({ status: 'active', connection: 'connected' });
      expect(state).to.not.have.property('cordonReason');
    });
    it('given a deregistered cluster, when a reactor reports on it, then nothing', () => {
      given(clusterDecider, [registered, deregistered]).when({ type: 'RecordClusterUnreachable', clusterId, cause: 'closed' }).then([]);
      given(clusterDecider, [registered, deregistered]).when({ type: 'RecordClusterConnected', clusterId }).then([]);
    });
  });

  describe('node drains', () => {
    const drain = { type: 'StartNodeDrain', clusterId, node: 'sim-gpu-1', reason: 'XID 79' } as const;
    const drainStarted = { type: 'NodeDrainStarted', data: { clusterId, node: 'sim-gpu-1', reason: 'XID 79' } } as const;
    it('given an active or a cordoned cluster, when a node drain starts, then NodeDrainStarted', () => {
      given(clusterDecider, [registered]).when(drain).then([drainStarted]);
      given(clusterDecider, [registered, cordoned]).when(drain).then([drainStarted]);
    });
    it('given a drain of the node already started, when another starts, then NodeDrainStarted again: each drain is a change of its own', () => {
      given(clusterDecider, [registered, drainStarted]).when(drain).then([drainStarted]);
    });
    it('given a drain started, then the cluster is as it was', () => {
      expect(given(clusterDecider, [registered, drainStarted]).state).to.deep.equal(given(clusterDecider, [registered]).state);
    });
    it('given nothing, when a node drain starts, then NotFound', () => {
      given(clusterDecider).when(drain).thenThrows(NotFound);
    });
    it('given a deregistered cluster, when a node drain starts, then InvalidTransition naming the node', () => {
      given(clusterDecider, [registered, deregistered]).when(drain).thenThrows(InvalidTransition, /deregistered: cannot drain node sim-gpu-1/);
    });
  });

  describe('deregister', () => {
    it('given a cordoned cluster, when deregistered, then ClusterDeregistered', () => {
      given(clusterDecider, [registered, cordoned]).when({ type: 'DeregisterCluster', clusterId }).then([deregistered]);
    });
    it('given nothing, when deregistered, then NotFound', () => {
      given(clusterDecider).when({ type: 'DeregisterCluster', clusterId }).thenThrows(NotFound);
    });
    for (const command of [
      { type: 'UpdateCluster', clusterId, changes: { region: 'x' } },
      { type: 'CordonCluster', clusterId },
      { type: 'UncordonCluster', clusterId },
      { type: 'DeregisterCluster', clusterId },
    ] as const) {
      it(`given a deregistered cluster, when ${command.type}, then InvalidTransition`, () => {
        given(clusterDecider, [registered, deregistered]).when(command).thenThrows(InvalidTransition, /deregistered/);
      });
    }
  });

  describe('bodies and events', () => {
    it('accepts a full body and fills defaults', () => {
      const body = clusterBody.parse({ name: 'a', apiServer: 'https://k8s:6443', credentials: { source: 'in-cluster' }, region: 'r' });
      expect(body).to.deep.include({ labels: {}, gpuSkus: [] });
    });
    it('rejects unknown fields, bad names and duplicate SKUs with their paths', () => {
      const result = clusterBody.safeParse({
        name: 'Not_A_Name',
        apiServer: 'ftp://x',
        credentials: { source: 'kubeconfig-file' },
        region: 'r',
        gpuSkus: ['a', 'a'],
        extra: 1,
      });
      expect(result.success).to.equal(false);
      const paths = result.error!.issues.map((issue) => issue.path.join('.'));
      expect(paths).to.include.members(['name', 'apiServer', 'credentials.path', 'gpuSkus', '']);
    });
    it('rejects an empty patch', () => {
      expect(clusterPatchBody.safeParse({}).success).to.equal(false);
    });
    it('parses its own events and refuses an unknown schema version', () => {
      expect(clusterEvents.parse('ClusterRegistered', 1, registered.data)).to.deep.equal(registered);
      expect(() => clusterEvents.parse('ClusterRegistered', 2, registered.data)).to.throw(UnknownEvent);
      expect(() => clusterEvents.parse('ClusterExploded', 1, {})).to.throw(UnknownEvent);
    });
  });
});
