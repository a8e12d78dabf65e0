/** PURE: a URL fit for logs and printed settings: its password replaced (query strings are the caller's to drop). */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparseable URL)';
  }
}
