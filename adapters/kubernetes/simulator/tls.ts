// The simulator's serving certificate: self-signed for 127.0.0.1 and localhost, made fresh at every start.
import { generate } from 'selfsigned';

export interface ServingCertificate {
  keyPem: string;
  certPem: string;
}

export async function servingCertificate(): Promise<ServingCertificate> {
  const notBefore = new Date(Date.now() - 60_000);
  const notAfter = new Date(notBefore.getTime() + 7 * 24 * 3600_000);
  const pems = await generate([{ name: 'commonName', value: 'sentinel-cluster-simulator' }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate: notBefore,
    notAfterDate: notAfter,
    extensions: [
      // Its own trust anchor: the kubeconfig hands this certificate to clients as the CA.
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', digitalSignature: true, keyCertSign: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 7, ip: '127.0.0.1' },
          { type: 2, value: 'localhost' },
        ],
      },
    ],
  });
  return { keyPem: pems.private, certPem: pems.cert };
}
