/**
 * "Your sessions": turns the library's device summaries into what people recognise (browser and
 * OS instead of a raw User-Agent, a short IP, "5 minutes ago").
 */
import type { DeviceSummary } from '../src/index.js';

/** A rough "Firefox on Linux" from a User-Agent. Good enough to tell your own devices apart. */
export function describeBrowser(userAgent: string | null): string {
  if (!userAgent) return 'Unknown client';
  const ua = userAgent;
  const browser =
    /HeadlessChrome\//.test(ua) ? 'Headless Chrome'
    : /Edg\//.test(ua) ? 'Edge'
    : /OPR\//.test(ua) ? 'Opera'
    : /Firefox\//.test(ua) ? 'Firefox'
    : /Chrom(e|ium)\//.test(ua) ? 'Chrome'
    : /Safari\//.test(ua) && /Version\//.test(ua) ? 'Safari'
    : /^curl\//.test(ua) ? 'curl'
    : /^node|undici/i.test(ua) ? 'Node.js'
    : null;
  const os =
    /Android/.test(ua) ? 'Android'
    : /iPhone|iPad|iPod/.test(ua) ? 'iOS'
    : /Windows/.test(ua) ? 'Windows'
    : /Mac OS X|Macintosh/.test(ua) ? 'macOS'
    : /CrOS/.test(ua) ? 'ChromeOS'
    : /Linux|X11/.test(ua) ? 'Linux'
    : null;
  if (browser === null) return ua.length > 40 ? `${ua.slice(0, 40)}…` : ua;
  return os ? `${browser} on ${os}` : browser;
}

/** IPv4 clients on a dual-stack socket show up as ::ffff:1.2.3.4; show the familiar form. */
export function displayIp(ip: string | null): string {
  if (!ip) return 'unknown';
  return ip.startsWith('::ffff:') ? ip.slice('::ffff:'.length) : ip;
}

export function timeAgo(then: number, now: number): string {
  const seconds = Math.max(0, Math.round((now - then) / 1000));
  if (seconds < 60) return 'just now';
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.round(minutes / 60);
  if (hours < 48) return `${hours} h ago`;
  return `${Math.round(hours / 24)} days ago`;
}

/** The JSON API's shape of one device. */
export interface DeviceJson {
  handle: string;
  current: boolean;
  createdAt: string;
  lastSeenAt: string;
  ip: string | null;
  userAgent: string | null;
}

export function deviceJson(device: DeviceSummary): DeviceJson {
  return {
    handle: device.id,
    current: device.current,
    createdAt: new Date(device.createdAt).toISOString(),
    lastSeenAt: new Date(device.lastSeenAt).toISOString(),
    ip: device.ip,
    userAgent: device.userAgent,
  };
}
