import { describe, expect, it } from 'vitest';
import { buildInfo, versionLine } from './version.js';

describe('floe --version', () => {
  it('says which commit it was built from, or that it does not know', () => {
    const commit = 'a'.repeat(40);
    const line = versionLine({ version: '1.2.3', commit, dirty: false });
    expect(line).toBe(`floe 1.2.3 (commit ${commit}, Node ${process.version})`);
    expect(versionLine({ version: '1.2.3', commit, dirty: true })).toContain(`commit ${commit} with local changes`);
    expect(versionLine({ version: '1.2.3', commit: null, dirty: false })).toContain('(commit unknown,');
  });

  it('reads the version from package.json and the commit from the stamp or git', () => {
    const info = buildInfo();
    expect(info.version).toMatch(/^\d+\.\d+\.\d+/);
    // In this checkout: the stamp of the last build, or git's HEAD when there is none; either is a full hash.
    expect(info.commit).toMatch(/^[0-9a-f]{40}$/);
  });
});
