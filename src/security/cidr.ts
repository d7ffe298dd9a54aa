/**
 * The network part of hook authentication: which address is the client, and is it allowlisted.
 *
 * IPv4-mapped IPv6 addresses (`::ffff:10.42.0.7`, what a dual-stack socket reports for IPv4 peers) are treated
 * as the IPv4 address, on both sides of the comparison.
 *
 * Forwarded headers are believed only when the socket peer is a proxy named in TRUST_PROXY. Then the client is
 * the right-most X-Forwarded-For entry that is not itself a trusted proxy: each proxy appends the address it saw,
 * so entries to the left of our own proxies' are whatever the client chose to send. Taking the left-most entry
 * (or any entry a client can write) would let anyone claim `127.0.0.1`; and without this rule, an allowlisted
 * `127.0.0.1/32` behind a local proxy would let every external client in, since they all reach us from the
 * proxy's loopback address. A trusted proxy that forwards without X-Forwarded-For yields no client address
 * (refused): we cannot tell who is behind it.
 */
import ipaddr from 'ipaddr.js';

type Address = ipaddr.IPv4 | ipaddr.IPv6;
type Range = [Address, number];

/** Parses an address, mapping IPv4-mapped IPv6 to IPv4; null when it is not an IP address. */
export function parseAddress(raw: string): Address | null {
  let text = raw.trim();
  // Some proxies bracket IPv6 entries in X-Forwarded-For.
  if (text.startsWith('[') && text.endsWith(']')) text = text.slice(1, -1);
  if (!ipaddr.isValid(text)) return null;
  try {
    return ipaddr.process(text);
  } catch {
    return null;
  }
}

/** The canonical text of an address (IPv4 dotted quad, or RFC 5952 IPv6), for logs and counters. */
export function formatAddress(address: Address): string {
  return address.kind() === 'ipv6' ? (address as ipaddr.IPv6).toRFC5952String() : address.toString();
}

/** Parses a CIDR (or a bare address, as a single-host range); IPv4-mapped IPv6 ranges become IPv4 ranges. */
export function parseRange(cidr: string): Range {
  const text = cidr.trim();
  const [address, bits] = text.includes('/')
    ? ipaddr.parseCIDR(text)
    : ((a: Address): Range => [a, a.kind() === 'ipv4' ? 32 : 128])(ipaddr.parse(text));
  if (address.kind() === 'ipv6' && (address as ipaddr.IPv6).isIPv4MappedAddress() && bits >= 96) {
    return [(address as ipaddr.IPv6).toIPv4Address(), bits - 96];
  }
  return [address, bits];
}

/** A set of CIDR ranges. */
export class CidrList {
  private readonly ranges: readonly Range[];

  /** @throws Error on an entry that is not an address or CIDR. */
  constructor(cidrs: readonly string[]) {
    this.ranges = cidrs.map(parseRange);
  }

  get isEmpty(): boolean {
    return this.ranges.length === 0;
  }

  /** True when `address` (text or parsed) lies in one of the ranges; false for anything unparsable. */
  contains(address: string | Address): boolean {
    const parsed = typeof address === 'string' ? parseAddress(address) : address;
    if (!parsed) return false;
    return this.ranges.some(([net, bits]) => net.kind() === parsed.kind() && parsed.match(net, bits));
  }
}

/** Where a request came from, as far as the transport can tell. */
export interface ClientAddressInput {
  /** The TCP peer (`socket.remoteAddress`). */
  socketAddress: string | undefined;
  /** Every X-Forwarded-For header value, in order (Node joins repeats with ", "; either form works). */
  forwardedFor: string | readonly string[] | undefined;
}

export type ClientAddress =
  | { readonly ok: true; readonly address: string; readonly viaProxy: boolean }
  | { readonly ok: false; readonly reason: 'CLIENT_ADDRESS_UNKNOWN'; readonly address?: string };

/**
 * The client's address: the socket peer, unless that peer is a trusted proxy, in which case the right-most
 * X-Forwarded-For entry that is not a trusted proxy (see the module comment for why).
 */
export function resolveClientAddress(input: ClientAddressInput, trustedProxies: CidrList): ClientAddress {
  const socket = input.socketAddress === undefined ? null : parseAddress(input.socketAddress);
  if (!socket) return { ok: false, reason: 'CLIENT_ADDRESS_UNKNOWN' };
  const socketText = formatAddress(socket);
  if (trustedProxies.isEmpty || !trustedProxies.contains(socket)) return { ok: true, address: socketText, viaProxy: false };

  const values = input.forwardedFor === undefined ? [] : typeof input.forwardedFor === 'string' ? [input.forwardedFor] : input.forwardedFor;
  const entries = values
    .flatMap((v) => v.split(','))
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (entries.length === 0) return { ok: false, reason: 'CLIENT_ADDRESS_UNKNOWN', address: socketText };
  for (let i = entries.length - 1; i >= 0; i--) {
    const hop = parseAddress(entries[i] as string);
    // Garbage where a proxy should have written an address: nothing to its left can be trusted either.
    if (!hop) return { ok: false, reason: 'CLIENT_ADDRESS_UNKNOWN', address: socketText };
    if (!trustedProxies.contains(hop)) return { ok: true, address: formatAddress(hop), viaProxy: true };
  }
  // Every hop is one of our proxies: the request originated at a proxy itself.
  const origin = parseAddress(entries[0] as string) as Address;
  return { ok: true, address: formatAddress(origin), viaProxy: true };
}
