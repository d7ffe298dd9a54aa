import { describe, expect, it } from 'vitest';
import { DEFAULT_HMAC_ALLOWED_CIDRS } from '../config/config.js';
import { CidrList, parseAddress, resolveClientAddress } from './cidr.js';

const allowlist = new CidrList(DEFAULT_HMAC_ALLOWED_CIDRS.split(','));

describe('CidrList', () => {
  it.each([
    ['51.81.223.116', true],
    ['51.81.223.117', false],
    ['10.42.0.1', true],
    ['10.42.255.255', true],
    ['10.43.0.1', false],
    ['127.0.0.1', true],
    ['127.0.0.2', false],
    ['::1', true],
    ['::2', false],
    ['::ffff:10.42.1.2', true],
    ['::ffff:127.0.0.1', true],
    ['::ffff:8.8.8.8', false],
    ['::FFFF:51.81.223.116', true],
    ['8.8.8.8', false],
    ['not an address', false],
    ['', false],
    ['10.42.0.1.5', false],
  ])('%s → %s', (address, expected) => {
    expect(allowlist.contains(address)).toBe(expected);
  });

  it('reads IPv4-mapped ranges as IPv4 ranges, and bare addresses as single hosts', () => {
    const list = new CidrList(['::ffff:192.168.0.0/112', '203.0.113.9', '2001:db8::1']);
    expect(list.contains('192.168.3.4')).toBe(true);
    expect(list.contains('192.169.0.1')).toBe(false);
    expect(list.contains('203.0.113.9')).toBe(true);
    expect(list.contains('203.0.113.10')).toBe(false);
    expect(list.contains('2001:db8::1')).toBe(true);
    expect(list.contains('2001:db8::2')).toBe(false);
  });

  it('throws on a malformed entry', () => {
    expect(() => new CidrList(['10.0.0.0/33'])).toThrow();
    expect(() => new CidrList(['example.com'])).toThrow();
  });

  it('parses bracketed IPv6', () => {
    expect(parseAddress('[::1]')?.toString()).toBe('::1');
  });
});

describe('resolveClientAddress', () => {
  const noProxy = new CidrList([]);
  const proxy = new CidrList(['127.0.0.1/32', '10.0.0.0/30']);

  it('uses the socket address and ignores X-Forwarded-For without TRUST_PROXY', () => {
    expect(resolveClientAddress({ socketAddress: '203.0.113.5', forwardedFor: '127.0.0.1' }, noProxy)).toEqual({
      ok: true,
      address: '203.0.113.5',
      viaProxy: false,
    });
    expect(resolveClientAddress({ socketAddress: '::ffff:127.0.0.1', forwardedFor: undefined }, noProxy)).toMatchObject({
      address: '127.0.0.1',
    });
  });

  it('ignores X-Forwarded-For from a peer that is not a trusted proxy', () => {
    expect(resolveClientAddress({ socketAddress: '203.0.113.5', forwardedFor: '10.42.0.1' }, proxy)).toMatchObject({
      address: '203.0.113.5',
      viaProxy: false,
    });
  });

  it('takes the right-most entry that is not a trusted proxy', () => {
    const resolved = resolveClientAddress(
      { socketAddress: '127.0.0.1', forwardedFor: '127.0.0.1, 10.42.0.9, 203.0.113.7, 10.0.0.1' },
      proxy,
    );
    expect(resolved).toEqual({ ok: true, address: '203.0.113.7', viaProxy: true });
  });

  it('behind a proxy, a spoofed left-most 127.0.0.1 does not make the client local', () => {
    const resolved = resolveClientAddress({ socketAddress: '::ffff:127.0.0.1', forwardedFor: ['127.0.0.1', '198.51.100.4'] }, proxy);
    expect(resolved).toMatchObject({ ok: true, address: '198.51.100.4' });
    expect(allowlist.contains((resolved as { address: string }).address)).toBe(false);
  });

  it('behind a proxy, a request without X-Forwarded-For has no client address', () => {
    expect(resolveClientAddress({ socketAddress: '127.0.0.1', forwardedFor: undefined }, proxy)).toMatchObject({ ok: false });
    expect(resolveClientAddress({ socketAddress: '127.0.0.1', forwardedFor: ' , ' }, proxy)).toMatchObject({ ok: false });
  });

  it('refuses garbage in the proxy-written part of the chain', () => {
    expect(resolveClientAddress({ socketAddress: '127.0.0.1', forwardedFor: '203.0.113.7, evil' }, proxy)).toMatchObject({ ok: false });
    // Garbage to the left of the client entry is the client's own and does not matter.
    expect(resolveClientAddress({ socketAddress: '127.0.0.1', forwardedFor: 'evil, 203.0.113.7' }, proxy)).toMatchObject({
      ok: true,
      address: '203.0.113.7',
    });
  });

  it('when every hop is a trusted proxy, the origin is the left-most hop', () => {
    expect(resolveClientAddress({ socketAddress: '127.0.0.1', forwardedFor: '10.0.0.2, 127.0.0.1' }, proxy)).toMatchObject({
      ok: true,
      address: '10.0.0.2',
    });
  });

  it('maps IPv4-mapped forwarded entries to IPv4', () => {
    expect(resolveClientAddress({ socketAddress: '127.0.0.1', forwardedFor: '::ffff:10.42.0.8' }, proxy)).toMatchObject({
      address: '10.42.0.8',
    });
  });

  it('has no address without a socket address', () => {
    expect(resolveClientAddress({ socketAddress: undefined, forwardedFor: '10.42.0.1' }, proxy)).toMatchObject({ ok: false });
  });
});
