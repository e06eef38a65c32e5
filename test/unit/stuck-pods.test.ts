import { classifyPod, stillStuck, stuckState } from '../../activities/stuck-pods.js';
import type { PodOverrides } from '../support/pods.js';
import {
  CALICO_EVIDENCE,
  CNI_ADD_MESSAGE as CNI_ADD,
  ownedPod,
  sandboxEvent as event,
  waitingStatus,
} from '../support/pods.js';

const NOW = Date.parse('2026-12-03T12:00:00Z');
const ago = (s: number): Date => new Date(NOW - s * 1000);
const rules = {
  allowlist: ['kserve', 'kube-system'],
  evidence: CALICO_EVIDENCE,
  minStuckForMs: 30_000,
  now: NOW,
};
const pod = (o: PodOverrides = {}) => ownedPod(ago(120), o);

describe('stuckState', () => {
  it('calls a pod Terminating past its deletion time (grace included) stuck', () => {
    expect(stuckState(pod({ meta: { deletionTimestamp: ago(31) } }), rules)).toBe('terminating');
  });

  it('gives a Terminating pod the margin before calling it stuck', () => {
    expect(stuckState(pod({ meta: { deletionTimestamp: ago(10) } }), rules)).toBeUndefined();
  });

  it('calls an old scheduled Pending pod waiting in ContainerCreating stuck', () => {
    expect(stuckState(pod(), rules)).toBe('creating');
  });

  it('leaves young ContainerCreating pods, unscheduled pods and running pods alone', () => {
    expect(stuckState(pod({ meta: { creationTimestamp: ago(5) } }), rules)).toBeUndefined();
    expect(stuckState(pod({ spec: { nodeName: undefined } }), rules)).toBeUndefined();
    expect(stuckState(pod({ status: { phase: 'Running' } }), rules)).toBeUndefined();
  });

  it('does not count other waiting reasons (image pulls, crash loops)', () => {
    const pulling = pod({ status: waitingStatus('ImagePullBackOff') });
    expect(stuckState(pulling, rules)).toBeUndefined();
  });
});

describe('classifyPod', () => {
  it('marks a stuck, owned, allowlisted pod with CNI evidence as stuck', () => {
    const verdict = classifyPod(pod(), [event('uid-1')], rules);

    expect(verdict).toEqual({
      kind: 'stuck',
      pod: {
        namespace: 'kserve',
        name: 'p',
        uid: 'uid-1',
        node: 'node-1',
        state: 'creating',
        reason: `FailedCreatePodSandBox: ${CNI_ADD}`,
      },
    });
  });

  it('needs evidence about this very pod (same UID), not a namesake', () => {
    expect(classifyPod(pod(), [event('uid-old')], rules).kind).toBe('unexplained');
  });

  it('needs evidence matching the runbook cause', () => {
    expect(classifyPod(pod(), [event('uid-1', 'Back-off pulling image')], rules).kind).toBe(
      'unexplained',
    );
  });

  it.each([
    [
      'a namespace outside the allowlist',
      pod({ meta: { namespace: 'payments' } }),
      /not in the runbook's allowlist/,
    ],
    ['a bare pod', pod({ meta: { ownerReferences: [] } }), /no controller/],
    [
      'a StatefulSet pod',
      pod({
        meta: {
          ownerReferences: [
            { apiVersion: 'apps/v1', kind: 'StatefulSet', name: 's', uid: 's', controller: true },
          ],
        },
      }),
      /StatefulSet/,
    ],
    [
      'a pod with finalizers',
      pod({ meta: { finalizers: ['batch.kubernetes.io/job-tracking'] } }),
      /finalizers \(batch/,
    ],
    ['a host-network pod', pod({ spec: { hostNetwork: true } }), /host network/],
  ])('excludes %s and says why', (_what, subject, why) => {
    const verdict = classifyPod(subject, [event('uid-1')], rules);

    expect(verdict.kind).toBe('excluded');
    expect(verdict.kind === 'excluded' && verdict.why).toMatch(why);
  });

  it('calls a healthy pod healthy whatever its events say', () => {
    expect(classifyPod(pod({ status: { phase: 'Running' } }), [event('uid-1')], rules)).toEqual({
      kind: 'healthy',
    });
  });
});

describe('stillStuck', () => {
  const ref = {
    namespace: 'kserve',
    name: 'p',
    uid: 'uid-1',
    state: 'creating' as const,
    reason: '',
  };

  it('is true for the same pod still stuck', () => {
    expect(stillStuck(pod(), ref, rules)).toBe(true);
  });

  it('is false for a replacement with the same name', () => {
    expect(stillStuck(pod({ meta: { uid: 'uid-2' } }), ref, rules)).toBe(false);
  });

  it('is false once the pod recovered on its own', () => {
    expect(stillStuck(pod({ status: { phase: 'Running' } }), ref, rules)).toBe(false);
  });
});
