/** A clock the test moves by hand. */
export class ManualClock {
  constructor(public time = Date.UTC(2026, 0, 1)) {}
  now = (): number => this.time;
  advance(seconds: number): void {
    this.time += seconds * 1000;
  }
}
