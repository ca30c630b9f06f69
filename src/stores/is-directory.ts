/** Whether `path` names an existing directory (any other stat failure: no, and the opener says why). */
import { statSync } from 'node:fs';

export function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
