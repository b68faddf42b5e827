/**
 * Which IP addresses are not on the public internet: what an HTTP-file source may not reach unless its
 * allow-list entry says so (`private: true`), so a name that resolves to an internal address (DNS
 * rebinding, an internal host in a public zone) cannot make the service fetch from inside its network.
 *
 * @module
 */

/** Whether `address` (IPv4 dotted or IPv6) is loopback, private, link-local, unspecified or reserved. */
export function isNonPublicAddress(address: string): boolean {
  const v4 = parseIpv4(address);
  if (v4 !== undefined) return nonPublicIpv4(v4);
  const v6 = address.toLowerCase().replace(/^\[|\]$/g, "").split("%")[0]!;
  const mapped = /^(?:0*:)*:?ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(v6) ??
    /^::(\d+\.\d+\.\d+\.\d+)$/.exec(v6);
  if (mapped !== null) {
    const inner = parseIpv4(mapped[1]!);
    return inner === undefined || nonPublicIpv4(inner);
  }
  if (v6 === "::" || v6 === "::1") return true;
  const first = parseInt(v6.split(":")[0] || "0", 16);
  if (Number.isNaN(first)) return true;
  return (first & 0xfe00) === 0xfc00 || // fc00::/7 unique local
    (first & 0xffc0) === 0xfe80 || // fe80::/10 link-local
    (first & 0xffc0) === 0xfec0 || // fec0::/10 site-local
    (first & 0xff00) === 0xff00 || // multicast
    first === 0x2001 && parseInt(v6.split(":")[1] || "0", 16) === 0x0db8 || // documentation
    first === 0x0064 || // 64:ff9b::/96 NAT64 can reach IPv4 private space
    first === 0;
}

function parseIpv4(text: string): number[] | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  const octets = parts.map((p) => /^\d{1,3}$/.test(p) ? Number(p) : NaN);
  return octets.every((o) => o >= 0 && o <= 255) ? octets : undefined;
}

function nonPublicIpv4([a, b]: number[]): boolean {
  return a === 0 || a === 10 || a === 127 || a! >= 224 ||
    (a === 100 && b! >= 64 && b! <= 127) || // carrier-grade NAT
    (a === 169 && b === 254) ||
    (a === 172 && b! >= 16 && b! <= 31) ||
    (a === 192 && b === 168) ||
    (a === 192 && b === 0) ||
    (a === 198 && (b === 18 || b === 19));
}
