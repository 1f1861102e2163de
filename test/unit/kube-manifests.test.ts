import { expect } from 'chai';
import type { V1Deployment, V1Job, V1StatefulSet } from '@kubernetes/client-node';
import { kindFor, refFor, renderManifest, toLiveWorkload } from '../../adapters/kubernetes/manifests.js';
import { desiredTemplate, type DesiredWorkload } from '../../reactors/cluster-driver.js';
import type { Strategy } from '../../domain/deployment.js';
import type { WorkloadSpec } from '../../domain/workload.js';

const deploymentId = '7f1c2a9e-5b1d-4c1e-9d5e-0a1b2c3d4e5f';

function desired(spec: Partial<WorkloadSpec> = {}, rest: Partial<DesiredWorkload> = {}): DesiredWorkload {
  return {
    deploymentId,
    revision: 3,
    replicas: 2,
    strategy: { type: 'rolling', maxSurge: 1, maxUnavailable: '10%' },
    spec: {
      name: 'llm',
      namespace: 'team-a',
      type: 'inference',
      image: 'ghcr.io/acme/llm:1.2',
      env: { ZED: 'z', ALPHA: 'a' },
      resources: { cpu: '2', memory: '4Gi' },
      labels: { team: 'ml' },
      ...spec,
    },
    ...rest,
  };
}

const managed = { 'app.kubernetes.io/managed-by': 'sentinel', 'sentinel.io/deployment-id': deploymentId };

describe('Kubernetes manifests', () => {
  describe('kind and name', () => {
    it('given an inference workload, then a Deployment named for the spec in its namespace', () => {
      expect(refFor(desired())).to.deep.equal({ kind: 'Deployment', namespace: 'team-a', name: 'llm' });
    });
    it('given training or batch, then a Job', () => {
      expect(kindFor(desired({ type: 'training' }))).to.equal('Job');
      expect(kindFor(desired({ type: 'batch' }))).to.equal('Job');
    });
    it('given the label sentinel.io/kind=StatefulSet, then a StatefulSet whatever the type', () => {
      expect(kindFor(desired({ labels: { 'sentinel.io/kind': 'StatefulSet' } }))).to.equal('StatefulSet');
      expect(kindFor(desired({ type: 'training', labels: { 'sentinel.io/kind': 'StatefulSet' } }))).to.equal('StatefulSet');
    });
  });

  describe('a Deployment', () => {
    const manifest = renderManifest(desired()) as V1Deployment;

    it('carries the managed labels and workload labels on the object and the pods, and the revision annotation', () => {
      expect(manifest).to.deep.include({ apiVersion: 'apps/v1', kind: 'Deployment' });
      expect(manifest.metadata).to.deep.equal({
        name: 'llm',
        namespace: 'team-a',
        labels: { team: 'ml', ...managed },
        annotations: { 'sentinel.io/revision': '3' },
      });
      expect(manifest.spec!.template.metadata).to.deep.equal({ labels: { team: 'ml', ...managed } });
    });
    it('selects its pods by the deployment id alone', () => {
      expect(manifest.spec!.selector).to.deep.equal({ matchLabels: { 'sentinel.io/deployment-id': deploymentId } });
    });
    it('runs one container named main with env sorted by name and equal requests and limits', () => {
      expect(manifest.spec!.template.spec!.containers).to.deep.equal([
        {
          name: 'main',
          image: 'ghcr.io/acme/llm:1.2',
          env: [
            { name: 'ALPHA', value: 'a' },
            { name: 'ZED', value: 'z' },
          ],
          resources: { requests: { cpu: '2', memory: '4Gi' }, limits: { cpu: '2', memory: '4Gi' } },
        },
      ]);
      expect(manifest.spec!.template.spec!.nodeSelector).to.equal(undefined);
    });
    it('rolls with the strategy maxSurge and maxUnavailable', () => {
      expect(manifest.spec!.replicas).to.equal(2);
      expect(manifest.spec!.strategy).to.deep.equal({ type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: '10%' } });
      expect(manifest.spec).not.to.have.property('progressDeadlineSeconds');
    });
    it('given a progress deadline, then progressDeadlineSeconds', () => {
      const withDeadline = renderManifest(desired({}, { progressDeadlineSeconds: 120 })) as V1Deployment;
      expect(withDeadline.spec!.progressDeadlineSeconds).to.equal(120);
    });
    it('given command and args, then they are on the container', () => {
      const withCommand = renderManifest(desired({ command: ['python', '-m', 'serve'], args: ['--port', '8080'] })) as V1Deployment;
      expect(withCommand.spec!.template.spec!.containers[0]).to.deep.include({ command: ['python', '-m', 'serve'], args: ['--port', '8080'] });
    });
    it('given canary or blue/green, then still a RollingUpdate Deployment', () => {
      const strategies: Strategy[] = [
        { type: 'canary', steps: [{ weight: 10 }, { weight: 100 }] },
        { type: 'blue_green', autoPromote: false, scaleDownDelaySeconds: 30 },
      ];
      for (const strategy of strategies) {
        const manifest = renderManifest(desired({}, { strategy })) as V1Deployment;
        expect(manifest.kind).to.equal('Deployment');
        expect(manifest.spec!.strategy!.type).to.equal('RollingUpdate');
      }
    });
    it('given restartedAt, then the pod template carries it', () => {
      const restarted = renderManifest(desired({}, { restartedAt: '2025-01-02T03:04:05Z' })) as V1Deployment;
      expect(restarted.spec!.template.metadata!.annotations).to.deep.equal({ 'sentinel.io/restarted-at': '2025-01-02T03:04:05Z' });
    });
    it('given omitReplicas (an HPA owns them), then no spec.replicas', () => {
      const withoutReplicas = renderManifest(desired(), { omitReplicas: true }) as V1Deployment;
      expect(withoutReplicas.spec).not.to.have.property('replicas');
    });
    it('given workload labels that name Sentinel labels, then Sentinel values win', () => {
      const forged = renderManifest(desired({ labels: { 'app.kubernetes.io/managed-by': 'helm' } })) as V1Deployment;
      expect(forged.metadata!.labels).to.deep.equal(managed);
    });
    it('given the same desired workload twice, then the same manifest byte for byte', () => {
      expect(JSON.stringify(renderManifest(desired()))).to.equal(JSON.stringify(renderManifest(desired({ env: { ALPHA: 'a', ZED: 'z' } }))));
    });
  });

  describe('GPUs', () => {
    it('given a GPU request, then a nvidia.com/gpu limit and the SKU node selector, with extra selector terms', () => {
      const manifest = renderManifest(
        desired({ resources: { cpu: '8', memory: '64Gi', gpu: { count: 2, sku: 'nvidia-a100-80gb' } } }, { nodeSelector: { zone: 'b' } }),
      ) as V1Deployment;
      const pod = manifest.spec!.template.spec!;
      expect(pod.containers[0]!.resources!.limits).to.deep.equal({ cpu: '8', memory: '64Gi', 'nvidia.com/gpu': '2' });
      expect(pod.containers[0]!.resources!.requests).to.deep.equal({ cpu: '8', memory: '64Gi' });
      expect(pod.nodeSelector).to.deep.equal({ 'nvidia.com/gpu.product': 'nvidia-a100-80gb', zone: 'b' });
    });
  });

  describe('a Job', () => {
    const manifest = renderManifest(desired({ type: 'training' }, { replicas: 4 })) as V1Job;
    it('runs replicas pods in parallel, restarting on failure, three retries', () => {
      expect(manifest).to.deep.include({ apiVersion: 'batch/v1', kind: 'Job' });
      expect(manifest.spec).to.deep.include({ parallelism: 4, backoffLimit: 3 });
      expect(manifest.spec!.template.spec!.restartPolicy).to.equal('OnFailure');
    });
    it('leaves the selector to the Job controller', () => {
      expect(manifest.spec).not.to.have.property('selector');
      expect(manifest.spec!.template.metadata!.labels).to.deep.include(managed);
    });
  });

  describe('a StatefulSet', () => {
    it('has replicas, the deployment-id selector and a rolling update', () => {
      const manifest = renderManifest(desired({ labels: { 'sentinel.io/kind': 'StatefulSet' } })) as V1StatefulSet;
      expect(manifest).to.deep.include({ apiVersion: 'apps/v1', kind: 'StatefulSet' });
      expect(manifest.spec).to.deep.include({ replicas: 2, serviceName: 'llm', updateStrategy: { type: 'RollingUpdate' } });
      expect(manifest.spec!.selector).to.deep.equal({ matchLabels: { 'sentinel.io/deployment-id': deploymentId } });
    });
  });

  describe('reading a live object', () => {
    it('given a rendered manifest, then its template facts are the desired template', () => {
      for (const d of [
        desired(),
        desired({ command: ['run'], args: ['--fast'], resources: { cpu: '500m', memory: '1Gi', gpu: { count: 1, sku: 'nvidia-h100' } } }),
        desired({ type: 'batch', env: {} }),
      ]) {
        const live = toLiveWorkload(kindFor(d), renderManifest(d));
        expect(live.template).to.deep.equal(desiredTemplate(d));
        expect(live).to.deep.include({ deploymentId, revision: 3 });
      }
    });
    it('given a Deployment with status, then the rollout fields and conditions', () => {
      const object = {
        ...(renderManifest(desired()) as V1Deployment),
        metadata: { ...renderManifest(desired()).metadata, resourceVersion: '42', generation: 5 },
        status: {
          observedGeneration: 5,
          replicas: 3,
          updatedReplicas: 2,
          readyReplicas: 2,
          availableReplicas: 1,
          conditions: [
            { type: 'Available', status: 'True', reason: 'MinimumReplicasAvailable', message: 'ok' },
            { type: 'Progressing', status: 'Maybe' },
          ],
        },
      } as V1Deployment;
      const live = toLiveWorkload('Deployment', object);
      expect(live).to.deep.include({ resourceVersion: '42', generation: 5, replicas: 2 });
      expect(live.rollout).to.deep.equal({
        observedGeneration: 5,
        replicas: 3,
        updatedReplicas: 2,
        readyReplicas: 2,
        availableReplicas: 1,
        conditions: [
          { type: 'Available', status: 'True', reason: 'MinimumReplicasAvailable', message: 'ok' },
          { type: 'Progressing', status: 'Unknown' },
        ],
      });
    });
    it('given a Job, then no replicas, and active plus succeeded pods as the rollout', () => {
      const job = {
        ...(renderManifest(desired({ type: 'batch' }, { replicas: 3 })) as V1Job),
        status: { active: 1, ready: 1, succeeded: 2, conditions: [] },
      } as V1Job;
      const live = toLiveWorkload('Job', job);
      expect(live).not.to.have.property('replicas');
      expect(live.rollout).to.deep.include({ replicas: 3, updatedReplicas: 3, readyReplicas: 3, availableReplicas: 3 });
    });
    it('given an object someone else made, then empty facts instead of an error', () => {
      const live = toLiveWorkload('Deployment', { metadata: { name: 'x', namespace: 'y' } });
      expect(live).to.deep.include({ deploymentId: '', revision: 0, resourceVersion: '', generation: 0 });
      expect(live.template).to.deep.equal({ image: '', env: {}, cpu: '', memory: '', nodeSelector: {} });
    });
  });
});
