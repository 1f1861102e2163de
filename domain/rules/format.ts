// How rule messages print numbers: money, memory, cpu, ratios and latency, the same way in every rule.
// Hand-rolled rather than Intl.NumberFormat: a decision may print thousands of numbers, and Intl costs
// about a microsecond per call where this costs a tenth of that.

/** `n` with at most `max` and at least `min` fraction digits, and thousands separated by commas. */
function fixed(n: number, max: number, min = 0): string {
  // Most numbers in messages are whole: replicas, GPUs, cores, GiB.
  let text = min === 0 && Number.isSafeInteger(n) ? String(Math.abs(n)) : Math.abs(n).toFixed(max);
  if (text.length <= 3 && n >= 0 && min === 0 && Number.isInteger(n)) return text;
  if (max > min && text.includes('.')) {
    let end = text.length;
    while (end > text.length - (max - min) && text.charCodeAt(end - 1) === 48 /* 0 */) end--;
    if (text.charCodeAt(end - 1) === 46 /* . */) end--;
    text = text.slice(0, end);
  }
  const dot = text.indexOf('.');
  const whole = dot === -1 ? text : text.slice(0, dot);
  let grouped = whole;
  if (whole.length > 3) {
    grouped = '';
    for (let i = whole.length; i > 0; i -= 3) grouped = whole.slice(Math.max(0, i - 3), i) + (grouped ? `,${grouped}` : '');
  }
  const sign = n < 0 && Number(text) !== 0 ? '-' : '';
  return sign + grouped + (dot === -1 ? '' : text.slice(dot));
}

/**
 * A printer that prints each number once: a decision of a thousand policies prints the same few figures (the
 * change's totals, the fleet's cost) once per policy, and a policy set's limits again in every decision.
 */
function remembered(print: (n: number) => string): (n: number) => string {
  const printed = new Map<number, string>();
  return (n) => {
    let text = printed.get(n);
    if (text === undefined) {
      if (printed.size >= 4096) printed.clear();
      text = print(n);
      printed.set(n, text);
    }
    return text;
  };
}

/** "$1,234.50" */
export const usd = remembered((dollars: number): string => {
  const text = fixed(dollars, 2, 2);
  return text.startsWith('-') ? `-$${text.slice(1)}` : `$${text}`;
});

/** Money is compared as it is printed, in whole cents, so "$400.00" is never "over" a ceiling of "$400.00". */
export const cents = (dollars: number): number => Math.round(dollars * 100);

/** "12.5 GiB" */
export const gib = remembered((bytes: number): string => `${fixed(bytes / 2 ** 30, 2)} GiB`);

/** "2.5 cores", "1 core" */
export const cores = remembered((millicores: number): string => `${fixed(millicores / 1000, 3)} ${millicores === 1000 ? 'core' : 'cores'}`);

/** "1,024" */
export const count = remembered((n: number): string => fixed(n, 0));

/** A ratio as a precise percentage, for uptime and success rates: "99.90%", "99.995%". */
export const percent = remembered((ratio: number): string => `${fixed(ratio * 100, 3, 2)}%`);

/** A ratio as a rough share of something, such as an error budget: "50%", "12.5%". */
export const share = remembered((ratio: number): string => `${fixed(ratio * 100, 1)}%`);

/** "250 ms" */
export const ms = remembered((milliseconds: number): string => `${fixed(milliseconds, 1)} ms`);

/** "1 day", "30 days" */
export const days = (n: number): string => (n === 1 ? '1 day' : `${n} days`);
