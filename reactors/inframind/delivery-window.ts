// The bound on events sent to InfraMind and not yet acknowledged: the link's backpressure.
import { comparePositions, type Position } from '../../domain/event-store.js';

/** An acknowledgement that names something the session never sent, or goes backwards; the stream is refused. */
export class InvalidAcknowledgement extends Error {
  override name = 'InvalidAcknowledgement';
}

/**
 * Positions sent and not yet acknowledged, in order. The sender waits for `room()` before each event, so at most
 * `size` events are ever in flight: a slow or stalled InfraMind stops the sending, and nothing piles up in memory.
 */
export class DeliveryWindow {
  private readonly inFlight: Position[] = [];
  private wake: (() => void) | undefined;
  private closed = false;

  /** `lastSent`: where the session resumed, which counts as sent and processed already. */
  constructor(
    readonly size: number,
    private lastSent: Position | undefined,
  ) {
    if (!Number.isSafeInteger(size) || size < 1) throw new RangeError(`a delivery window holds at least 1 event, not ${size}`);
  }

  get unacknowledged(): number {
    return this.inFlight.length;
  }

  /** Resolves once another event may be sent, or once the window is closed. */
  async room(): Promise<void> {
    while (!this.closed && this.inFlight.length >= this.size) {
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  sent(position: Position): void {
    this.inFlight.push(position);
    this.lastSent = position;
  }

  /**
   * Everything at or before `position` is processed. A position at or before one acknowledged earlier (or before the
   * resume point) releases nothing; one past the last event sent is refused, since InfraMind cannot have processed it.
   */
  acknowledge(position: Position): void {
    if (this.lastSent === undefined || comparePositions(position, this.lastSent) > 0) {
      throw new InvalidAcknowledgement(
        `acknowledged position ${position} lies past the last event sent (${this.lastSent ?? 'none yet'}); acknowledge only positions received`,
      );
    }
    while (this.inFlight.length > 0 && comparePositions(this.inFlight[0]!, position) <= 0) this.inFlight.shift();
    this.release();
  }

  /** Lets a waiting sender go: the session is over. */
  close(): void {
    this.closed = true;
    this.release();
  }

  private release(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}
