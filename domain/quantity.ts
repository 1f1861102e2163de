// Kubernetes resource quantities ("500m", "2", "4Gi", "1.5e3") read into plain numbers.

const SUFFIXES: Record<string, number> = {
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  '': 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

const QUANTITY = /^([+]?(?:\d+(?:\.\d*)?|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E))?$/;

/** The value of a quantity in base units (cores for cpu, bytes for memory), or undefined when malformed. */
export function parseQuantity(text: string): number | undefined {
  const match = QUANTITY.exec(text);
  if (!match) return undefined;
  const [, number, exponent, suffix] = match;
  const value = Number(number) * (exponent ? 10 ** Number(exponent.slice(1)) : SUFFIXES[suffix ?? '']!);
  return Number.isFinite(value) ? value : undefined;
}

/** CPU in millicores, rounded up as Kubernetes does. */
export function cpuMillicores(text: string): number | undefined {
  const cores = parseQuantity(text);
  const millicores = cores === undefined ? undefined : Math.ceil(Math.round(cores * 1e9) / 1e6);
  return millicores !== undefined && Number.isSafeInteger(millicores) ? millicores : undefined;
}

/** Memory in bytes, rounded up. */
export function memoryBytes(text: string): number | undefined {
  const bytes = parseQuantity(text);
  return bytes !== undefined && Number.isSafeInteger(Math.ceil(bytes)) ? Math.ceil(bytes) : undefined;
}
