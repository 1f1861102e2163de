// How rule messages print numbers: money, memory, cpu, ratios and latency, the same way in every rule.

const DOLLARS = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD' });
const GIB = new Intl.NumberFormat('en-US', { maximumFractionDigits: 2 });
const CORES = new Intl.NumberFormat('en-US', { maximumFractionDigits: 3 });
const COUNT = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const PERCENT = new Intl.NumberFormat('en-US', { style: 'percent', minimumFractionDigits: 2, maximumFractionDigits: 3 });
const SHARE = new Intl.NumberFormat('en-US', { style: 'percent', maximumFractionDigits: 1 });
const MS = new Intl.NumberFormat('en-US', { maximumFractionDigits: 1 });

/** "$1,234.50" */
export const usd = (dollars: number): string => DOLLARS.format(dollars);

/** Money is compared as it is printed, in whole cents, so "$400.00" is never "over" a ceiling of "$400.00". */
export const cents = (dollars: number): number => Math.round(dollars * 100);

/** "12.5 GiB" */
export const gib = (bytes: number): string => `${GIB.format(bytes / 2 ** 30)} GiB`;

/** "2.5 cores", "1 core" */
export const cores = (millicores: number): string => `${CORES.format(millicores / 1000)} ${millicores === 1000 ? 'core' : 'cores'}`;

/** "1,024" */
export const count = (n: number): string => COUNT.format(n);

/** A ratio as a precise percentage, for uptime and success rates: "99.90%", "99.995%". */
export const percent = (ratio: number): string => PERCENT.format(ratio);

/** A ratio as a rough share of something, such as an error budget: "50%", "12.5%". */
export const share = (ratio: number): string => SHARE.format(ratio);

/** "250 ms" */
export const ms = (milliseconds: number): string => `${MS.format(milliseconds)} ms`;

/** "1 day", "30 days" */
export const days = (n: number): string => (n === 1 ? '1 day' : `${n} days`);
