// Building blocks shared by the command bodies and event schemas of every aggregate.
import { z } from 'zod';
import { cpuMillicores, memoryBytes } from './quantity.js';

export const id = z.uuid({ error: 'a UUID' });

/** A DNS-1123 label, as Kubernetes names its objects. */
export const name = z
  .string()
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'lower-case letters, digits and "-", starting and ending with a letter or digit')
  .max(63, 'at most 63 characters');

const LABEL_NAME = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$/;
const LABEL_PREFIX = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

function isLabelKey(key: string): boolean {
  const slash = key.lastIndexOf('/');
  const prefix = slash === -1 ? undefined : key.slice(0, slash);
  const label = slash === -1 ? key : key.slice(slash + 1);
  if (prefix !== undefined && (prefix.length > 253 || !LABEL_PREFIX.test(prefix))) return false;
  return label.length <= 63 && LABEL_NAME.test(label);
}

/** Kubernetes labels: qualified keys, values of at most 63 characters. */
export const labels = z.record(
  z.string().refine(isLabelKey, 'a label key: an optional DNS prefix and "/", then a name of at most 63 characters'),
  z
    .string()
    .max(63, 'at most 63 characters')
    .regex(LABEL_VALUE, 'letters, digits, "-", "_" and ".", starting and ending with a letter or digit'),
);

export const cpu = z
  .string()
  .refine((text) => (cpuMillicores(text) ?? 0) > 0, 'a positive CPU quantity such as "2" or "500m"');

export const memory = z
  .string()
  .refine((text) => (memoryBytes(text) ?? 0) > 0, 'a positive memory quantity such as "4Gi" or "512Mi"');

/** A GPU model as the nodes advertise it, e.g. "nvidia-a100-80gb". */
export const gpuSku = z
  .string()
  .regex(/^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/, 'a GPU SKU such as "nvidia-a100-80gb"')
  .max(63, 'at most 63 characters');

export const timestamp = z.iso.datetime({ offset: true, error: 'an ISO 8601 date-time such as 2026-01-31T12:00:00Z' });

export const reason = z.string().min(1, 'a non-empty reason').max(1000, 'at most 1000 characters');
