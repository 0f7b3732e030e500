// Every part of Tally reads time through a Clock so tests can move time forward
// (retry schedules, expiries, pending points) without sleeping.

export interface Clock {
  now(): Date;
  nowMs(): number;
  nowIso(): string;
}

export const systemClock: Clock = {
  now: () => new Date(),
  nowMs: () => Date.now(),
  nowIso: () => new Date().toISOString(),
};

/** A clock that starts at real time (or `start`) and only moves when told to. */
export class ManualClock implements Clock {
  private ms: number;
  constructor(start: Date | number = Date.now()) {
    this.ms = typeof start === 'number' ? start : start.getTime();
  }
  now(): Date {
    return new Date(this.ms);
  }
  nowMs(): number {
    return this.ms;
  }
  nowIso(): string {
    return new Date(this.ms).toISOString();
  }
  advance(ms: number): void {
    this.ms += ms;
  }
  set(at: Date | number | string): void {
    this.ms = typeof at === 'number' ? at : new Date(at).getTime();
  }
}
