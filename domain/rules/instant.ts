// Times the rules read, each parsed once: every rule of a decision reads the change's time, and a freeze window's
// bounds are read again in every decision; parsing an ISO 8601 string costs more than the rest of a rule.
const parsed = new Map<string, number>();

/** `Date.parse(text)`, remembered: milliseconds since the epoch, NaN where `text` is not a time. */
export function instant(text: string): number {
  let ms = parsed.get(text);
  if (ms === undefined) {
    if (parsed.size >= 10_000) parsed.clear();
    ms = Date.parse(text);
    parsed.set(text, ms);
  }
  return ms;
}

const entries = new WeakMap<object, number>();

/**
 * The instant of an entry's `at`, parsed once for the entry's life: an admitted change in the ledger's history is
 * never changed and is shared by every ledger after it, so the ledger's fold and each rate-limit reading would
 * otherwise parse the whole history again, every time.
 */
export function instantAt(entry: { readonly at: string }): number {
  let ms = entries.get(entry);
  if (ms === undefined) entries.set(entry, (ms = Date.parse(entry.at)));
  return ms;
}
