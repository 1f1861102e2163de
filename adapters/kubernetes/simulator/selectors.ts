// Label and field selectors: the query-string forms (`k=v,k!=v,k in (a,b),k,!k`) and the LabelSelector object form.
import { badRequest } from './api-error.js';
import type { KubeObject, LabelSelector, LabelSelectorRequirement } from './types.js';

export interface Requirement {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  values: string[];
}

export type Selector = Requirement[];

/** Splits on commas that are not inside parentheses. */
function splitTerms(text: string): string[] {
  const terms: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of text) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      terms.push(current);
      current = '';
    } else {
      current += ch;
    }
  }
  terms.push(current);
  return terms.map((t) => t.trim()).filter((t) => t.length > 0);
}

const SET_TERM = /^([^\s!=(),]+)\s+(in|notin)\s*\(([^)]*)\)$/;
const EQUALITY_TERM = /^([^\s!=(),]+)\s*(==|=|!=)\s*([^\s!=(),]*)$/;
const EXISTS_TERM = /^(!?)\s*([^\s!=(),]+)$/;

/** Parses a `labelSelector` query value; 400 BadRequest for anything the API server would refuse. */
export function parseLabelSelector(text: string | undefined): Selector {
  if (!text) return [];
  return splitTerms(text).map((term): Requirement => {
    let m = SET_TERM.exec(term);
    if (m) {
      const values = m[3]!
        .split(',')
        .map((v) => v.trim())
        .filter((v) => v.length > 0);
      return { key: m[1]!, operator: m[2] === 'in' ? 'In' : 'NotIn', values };
    }
    m = EQUALITY_TERM.exec(term);
    if (m) return { key: m[1]!, operator: m[2] === '!=' ? 'NotIn' : 'In', values: [m[3]!] };
    m = EXISTS_TERM.exec(term);
    if (m) return { key: m[2]!, operator: m[1] ? 'DoesNotExist' : 'Exists', values: [] };
    throw badRequest(`unable to parse requirement: found '${term}', expected: key, key=value, key!=value, key in (a,b), !key`);
  });
}

/** The requirements of a LabelSelector object (matchLabels and matchExpressions together). */
export function fromLabelSelector(selector: LabelSelector | undefined): Selector {
  const requirements: Selector = [];
  for (const [key, value] of Object.entries(selector?.matchLabels ?? {})) requirements.push({ key, operator: 'In', values: [value] });
  for (const expr of selector?.matchExpressions ?? []) requirements.push(fromRequirement(expr));
  return requirements;
}

function fromRequirement(expr: LabelSelectorRequirement): Requirement {
  return { key: expr.key, operator: expr.operator, values: expr.values ?? [] };
}

export function matches(selector: Selector, labels: Record<string, string> | undefined): boolean {
  const have = labels ?? {};
  return selector.every((req) => {
    const present = Object.prototype.hasOwnProperty.call(have, req.key);
    switch (req.operator) {
      case 'In':
        return present && req.values.includes(have[req.key]!);
      case 'NotIn':
        return !present || !req.values.includes(have[req.key]!);
      case 'Exists':
        return present;
      case 'DoesNotExist':
        return !present;
    }
  });
}

/** A LabelSelector object matches labels; an empty or absent selector matches everything, as in the API. */
export function selectorMatches(selector: LabelSelector | undefined, labels: Record<string, string> | undefined): boolean {
  return matches(fromLabelSelector(selector), labels);
}

/** The string form of a LabelSelector, as the scale subresource reports it in status.selector. */
export function selectorString(selector: LabelSelector | undefined): string {
  return fromLabelSelector(selector)
    .map((req) => {
      switch (req.operator) {
        case 'In':
          return req.values.length === 1 ? `${req.key}=${req.values[0]}` : `${req.key} in (${req.values.join(',')})`;
        case 'NotIn':
          return `${req.key} notin (${req.values.join(',')})`;
        case 'Exists':
          return req.key;
        case 'DoesNotExist':
          return `!${req.key}`;
      }
    })
    .join(',');
}

export interface FieldRequirement {
  path: string[];
  equal: boolean;
  value: string;
}

/** Parses a `fieldSelector` query value: `a.b=v`, `a.b==v`, `a.b!=v`, comma separated. */
export function parseFieldSelector(text: string | undefined): FieldRequirement[] {
  if (!text) return [];
  return splitTerms(text).map((term) => {
    const m = /^([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*)$/.exec(term);
    if (!m) throw badRequest(`invalid selector: '${text}'; can't understand '${term}'`);
    return { path: m[1]!.split('.'), equal: m[2] !== '!=', value: m[3]!.trim() };
  });
}

/** Field selectors compare the string form of a field; an absent field reads as the empty string. */
export function fieldsMatch(requirements: FieldRequirement[], object: KubeObject): boolean {
  return requirements.every((req) => {
    let value: unknown = object;
    for (const part of req.path) value = value !== null && typeof value === 'object' ? (value as Record<string, unknown>)[part] : undefined;
    const text = value === undefined || value === null ? '' : String(value);
    return (text === req.value) === req.equal;
  });
}
