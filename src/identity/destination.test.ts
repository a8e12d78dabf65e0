import { describe, expect, it } from 'vitest';
import { addressAllowed, issuerUrlProblem, urlProblem } from './destination.js';

const strict = { allowHttpAndLoopback: false };
const dev = { allowHttpAndLoopback: true };

describe('identity provider destinations', () => {
  it('allows public unicast addresses only', () => {
    for (const ok of ['140.82.112.3', '2606:4700::6810:84e5', '::ffff:8.8.8.8'])
      expect(addressAllowed(ok, strict)).toBe(true);
    const refused = [
      '127.0.0.1',
      '127.9.9.9',
      '::1',
      '10.0.0.5',
      '172.16.3.4',
      '192.168.1.1',
      '169.254.169.254',
      '100.64.0.1',
      '0.0.0.0',
      '::',
      'fe80::1',
      'fd00::1',
      '224.0.0.1',
      '255.255.255.255',
      '::ffff:127.0.0.1',
      '::ffff:169.254.169.254',
      '64:ff9b::a9fe:a9fe',
      '2002:a9fe:a9fe::1',
      'not-an-ip',
    ];
    for (const bad of refused) expect(addressAllowed(bad, strict), bad).toBe(false);
  });

  it('under the test flag, loopback is allowed, nothing else internal', () => {
    expect(addressAllowed('127.0.0.1', dev)).toBe(true);
    expect(addressAllowed('::1', dev)).toBe(true);
    expect(addressAllowed('10.0.0.5', dev)).toBe(false);
    expect(addressAllowed('169.254.169.254', dev)).toBe(false);
  });

  it('wants https (http only under the flag) and no credentials in the URL', () => {
    expect(urlProblem('https://idp.example.com/.well-known/openid-configuration', strict)).toBeUndefined();
    expect(urlProblem('http://idp.example.com/x', strict)).toBe('not https');
    expect(urlProblem('http://127.0.0.1:8080/x', dev)).toBeUndefined();
    expect(urlProblem('file:///etc/passwd', dev)).toBe('not https');
    expect(urlProblem('https://user:pw@idp.example.com/', strict)).toBe('carries credentials');
    expect(urlProblem('::', strict)).toBe('not a URL');
  });

  it('refuses issuer URLs whose query or fragment would swallow the discovery suffix', () => {
    expect(issuerUrlProblem('https://idp.example.com/realms/acme')).toBeUndefined();
    expect(issuerUrlProblem('https://169.254.169.254/latest/meta-data?')).toBe('may not have a query');
    expect(issuerUrlProblem('https://idp.example.com/x?a=b')).toBe('may not have a query');
    expect(issuerUrlProblem('https://idp.example.com/x#')).toBe('may not have a fragment');
    expect(issuerUrlProblem('gopher://idp.example.com/')).toBe('must be an https URL');
    expect(issuerUrlProblem('https://a:b@idp.example.com/')).toBe('may not carry credentials');
  });
});
