// One spelling of a PCI bus id, so that nvidia-smi's rows, its error lines and kernel XID lines name a GPU alike.

const BUS_ID = /^([0-9a-f]{4,8}):([0-9a-f]{2}):([0-9a-f]{2})(?:\.([0-7]))?$/i;

/**
 * nvidia-smi's own form, `00000000:3B:00.0` (the pci_bus_id label dcgm-exporter sets), from any of the forms the
 * driver prints: `0000:3B:00.0` in nvidia-smi's errors, `0000:3b:00` (no function: a GPU is function 0) in the
 * kernel log. Undefined for anything else.
 */
export function normalBusId(text: string): string | undefined {
  const match = BUS_ID.exec(text.trim());
  if (!match) return undefined;
  const [, domain = '', bus = '', device = '', fn = '0'] = match;
  return `${domain.padStart(8, '0')}:${bus}:${device}.${fn}`.toUpperCase();
}
