// Time comes into the domain on commands; this port is where the write side reads it.
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };
