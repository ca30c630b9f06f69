/** setTimeout's longest delay: a longer one (or Infinity) fires after 1 ms, so options are capped here. */
export const MAX_TIMER_MS = 2 ** 31 - 1;
