// How Sentinel's processes read numbers and optional values from environment variables, the same in each.
import { z } from 'zod';

/** Decimal digits only: no sign, exponent, hex or blank, any of which `Number()` would quietly accept. */
export const integer = (min: number, max: number) => {
  const rule = `an integer from ${min} to ${max}`;
  return z
    .string()
    .regex(/^[0-9]+$/, rule)
    .transform(Number)
    .pipe(z.number().int(rule).min(min, rule).max(max, rule));
};

/**
 * Only for a variable with no default (one that turns something on): there an empty value means unset. A
 * variable with a default refuses an empty value instead, so that `PORT=` is not silently some other port.
 */
export const emptyAsUndefined = (value: unknown) => (value === '' ? undefined : value);
