// Awaits a promise that must reject and returns what it rejected with.
export async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected the promise to reject');
}

/** The same, for a promise that must reject with an Error, whose message the test then reads. */
export async function rejectedError(promise: Promise<unknown>): Promise<Error> {
  const error = await rejection(promise);
  if (!(error instanceof Error)) throw new Error(`expected an Error, got ${String(error)}`);
  return error;
}
