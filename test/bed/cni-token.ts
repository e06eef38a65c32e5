/**
 * The Calico CNI credential on a node: `<node>/etc/cni/net.d/calico-kubeconfig`, a kubeconfig
 * whose user token is a service-account JWT with `iat`/`exp`. calico-node (simulated) writes it;
 * the simulated kubelet reads it to decide whether CNI ADD/DEL are authorised.
 */
import { createPrivateKey, randomUUID, sign } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml, stringify as toYaml } from 'yaml';

/** Path of the CNI kubeconfig below a node directory. */
export const CNI_KUBECONFIG = 'etc/cni/net.d/calico-kubeconfig';

/** Claims of a CNI token that matter to the bed. */
export interface CniTokenClaims {
  iat: number;
  exp: number;
  sub: string;
  [claim: string]: unknown;
}

const b64url = (data: string | Buffer): string => Buffer.from(data).toString('base64url');

/**
 * Builds a JWT-shaped token for `system:serviceaccount:kube-system:calico-cni-plugin`, signed
 * RS256 with the bed's service-account key when given (random signature otherwise).
 */
export function makeCniToken(iat: number, exp: number, signingKeyPem?: string): string {
  const header = b64url(JSON.stringify({ alg: 'RS256', kid: 'kubemend-bed' }));
  const claims = {
    aud: ['https://kubernetes.default.svc.cluster.local'],
    exp,
    iat,
    nbf: iat,
    iss: 'https://kubernetes.default.svc.cluster.local',
    jti: randomUUID(),
    'kubernetes.io': {
      namespace: 'kube-system',
      serviceaccount: { name: 'calico-cni-plugin', uid: '5f3c1e2a-0000-4000-8000-00000000ca11' },
    },
    sub: 'system:serviceaccount:kube-system:calico-cni-plugin',
  };
  const input = `${header}.${b64url(JSON.stringify(claims))}`;
  const sig = signingKeyPem
    ? sign('RSA-SHA256', Buffer.from(input), createPrivateKey(signingKeyPem))
    : Buffer.from(randomUUID().repeat(8));
  return `${input}.${b64url(sig)}`;
}

/** Decodes (does not verify) a JWT's payload. */
export function decodeToken(token: string): CniTokenClaims {
  const payload = token.split('.')[1];
  if (!payload) throw new Error('token is not a JWT');
  return JSON.parse(Buffer.from(payload, 'base64url').toString()) as CniTokenClaims;
}

/** Writes the node's CNI kubeconfig atomically (readers never see half a file). */
export function writeCniKubeconfig(nodeDir: string, server: string, token: string): void {
  const file = join(nodeDir, CNI_KUBECONFIG);
  mkdirSync(join(nodeDir, 'etc/cni/net.d'), { recursive: true });
  const kc = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'local', cluster: { server, 'insecure-skip-tls-verify': true } }],
    users: [{ name: 'calico', user: { token } }],
    contexts: [{ name: 'calico-context', context: { cluster: 'local', user: 'calico' } }],
    'current-context': 'calico-context',
  };
  const header = '# Kubeconfig file for Calico CNI plugin. Installed by calico/node.\n';
  writeFileSync(`${file}.tmp`, header + toYaml(kc));
  renameSync(`${file}.tmp`, file);
}

/** Reads the token from the node's CNI kubeconfig; undefined if missing or unreadable. */
export function readCniToken(
  nodeDir: string,
): { token: string; claims: CniTokenClaims } | undefined {
  try {
    const kc = parseYaml(readFileSync(join(nodeDir, CNI_KUBECONFIG), 'utf8'));
    const token = kc?.users?.[0]?.user?.token as string | undefined;
    return token ? { token, claims: decodeToken(token) } : undefined;
  } catch {
    return undefined;
  }
}

/** Writes the Calico CNI network config that points at the kubeconfig (for realism). */
export function writeCniConflist(nodeDir: string): void {
  const conf = {
    name: 'k8s-pod-network',
    cniVersion: '0.3.1',
    plugins: [
      {
        type: 'calico',
        datastore_type: 'kubernetes',
        ipam: { type: 'calico-ipam' },
        policy: { type: 'k8s' },
        kubernetes: { kubeconfig: `${nodeDir}/${CNI_KUBECONFIG}` },
      },
      { type: 'portmap', snat: true, capabilities: { portMappings: true } },
    ],
  };
  mkdirSync(join(nodeDir, 'etc/cni/net.d'), { recursive: true });
  writeFileSync(
    join(nodeDir, 'etc/cni/net.d/10-calico.conflist'),
    JSON.stringify(conf, null, 2) + '\n',
  );
}
