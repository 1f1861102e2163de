// Status conditions as controllers keep them: times move only when something about the condition changes.
import type { Condition } from './types.js';

/**
 * Sets a condition in a list. An unchanged status, reason and message keeps the stored condition as it is (so a
 * resync writes nothing); a changed status moves lastTransitionTime, any change moves lastUpdateTime.
 */
export function setCondition(conditions: Condition[] | undefined, next: Omit<Condition, 'lastTransitionTime' | 'lastUpdateTime'>, at: string, withUpdateTime: boolean): Condition[] {
  const list = conditions ?? [];
  const current = list.find((c) => c.type === next.type);
  if (current && current.status === next.status && current.reason === next.reason && current.message === next.message) return list;
  const condition: Condition = {
    type: next.type,
    status: next.status,
    ...(withUpdateTime ? { lastUpdateTime: at } : {}),
    lastTransitionTime: current && current.status === next.status && current.lastTransitionTime ? current.lastTransitionTime : at,
    ...(next.reason ? { reason: next.reason } : {}),
    ...(next.message !== undefined ? { message: next.message } : {}),
  };
  return current ? list.map((c) => (c === current ? condition : c)) : [...list, condition];
}

export function removeCondition(conditions: Condition[] | undefined, type: string): Condition[] {
  return (conditions ?? []).filter((c) => c.type !== type);
}

export function findCondition(conditions: Condition[] | undefined, type: string): Condition | undefined {
  return (conditions ?? []).find((c) => c.type === type);
}

/** Drops zero counts, as the API's omitempty integer fields do on the wire. */
export function withoutZeros(status: Record<string, unknown>, keep: string[] = []): Record<string, unknown> {
  return Object.fromEntries(Object.entries(status).filter(([k, v]) => keep.includes(k) || (v !== 0 && v !== undefined)));
}
