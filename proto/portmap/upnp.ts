// UPnP IGD messages: the SSDP search (UDP 1900), the device description (XML over HTTP) that
// names the WAN connection service and its control URL, and SOAP calls to that service
// (WANIPConnection v1 and v2: AddPortMapping, AddAnyPortMapping, DeletePortMapping,
// GetExternalIPAddress). Decoding XML is in upnp-xml.ts, loaded only once a gateway answers;
// nothing here does I/O.
//
//   M-SEARCH * HTTP/1.1            HTTP/1.1 200 OK
//   HOST: 239.255.255.250:1900     ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1
//   MAN: "ssdp:discover"           LOCATION: http://GATEWAY:PORT/rootDesc.xml
//   MX: 1                          ...
//   ST: <search target>
import { DecodeError } from '../errors.js';

export const SSDP_PORT = 1900;
export const SSDP_GROUP = '239.255.255.250';
export const IGD_SEARCH_TARGET = 'urn:schemas-upnp-org:device:InternetGatewayDevice:1';
/** The largest SSDP answer, device description and SOAP answer we read. */
export const SSDP_MAX_LEN = 2048;
export const UPNP_XML_MAX_LEN = 64 * 1024;

/** The WAN connection services we can drive, best first. */
export const WAN_SERVICES = [
  'urn:schemas-upnp-org:service:WANIPConnection:2',
  'urn:schemas-upnp-org:service:WANIPConnection:1',
  'urn:schemas-upnp-org:service:WANPPPConnection:1',
] as const;

/** UPnP error codes of WANIPConnection that change what a client does next. */
export const UPNP_ERROR = {
  conflictInMappingEntry: 718,
  onlyPermanentLeasesSupported: 725,
  noSuchEntryInArray: 714,
  invalidArgs: 402,
  actionNotAuthorized: 606,
} as const;

export function encodeSsdpSearch(searchTarget: string = IGD_SEARCH_TARGET): Uint8Array {
  return new TextEncoder().encode(
    `M-SEARCH * HTTP/1.1\r\nHOST: ${SSDP_GROUP}:${SSDP_PORT}\r\nMAN: "ssdp:discover"\r\nMX: 1\r\nST: ${searchTarget}\r\n\r\n`,
  );
}

export interface SsdpResponse {
  location: string;
  searchTarget: string | null;
  server: string | null;
}

/** Decodes an SSDP search answer (an HTTP/1.1 200 header block over UDP); needs LOCATION as an http URL. */
export function decodeSsdpResponse(buf: Uint8Array): SsdpResponse {
  if (buf.length > SSDP_MAX_LEN) throw new DecodeError('oversized', `SSDP: ${buf.length} bytes`);
  const text = new TextDecoder('utf-8', { fatal: false }).decode(buf);
  const lines = text.split(/\r?\n/);
  if (!/^HTTP\/1\.[01] 200\b/i.test(lines[0] ?? '')) throw new DecodeError('bad-type', 'SSDP: not an HTTP 200 answer');
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const i = line.indexOf(':');
    if (i <= 0) continue;
    headers.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim());
  }
  const location = headers.get('location');
  if (!location) throw new DecodeError('bad-value', 'SSDP: no LOCATION');
  let url: URL;
  try {
    url = new URL(location);
  } catch {
    throw new DecodeError('bad-syntax', 'SSDP: LOCATION is not a URL');
  }
  if (url.protocol !== 'http:') throw new DecodeError('bad-value', `SSDP: LOCATION scheme ${url.protocol}`);
  return { location: url.href, searchTarget: headers.get('st') ?? null, server: headers.get('server') ?? null };
}

export interface WanService {
  serviceType: (typeof WAN_SERVICES)[number];
  /** Absolute URL, resolved against the description's URLBase or location. */
  controlUrl: string;
}

const xmlEscape = (s: string): string => s.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);

export interface SoapRequest {
  /** The SOAPAction header value (quoted). */
  soapAction: string;
  body: string;
}

/** A SOAP call to `action` of `serviceType`; arguments keep their order (UPnP requires it). */
export function encodeSoapRequest(serviceType: string, action: string, args: ReadonlyArray<readonly [string, string | number]>): SoapRequest {
  if (!/^[A-Za-z]+$/.test(action)) throw new RangeError(`SOAP action ${action}`);
  const inner = args.map(([k, v]) => `<${k}>${xmlEscape(String(v))}</${k}>`).join('');
  return {
    soapAction: `"${serviceType}#${action}"`,
    body: '<?xml version="1.0"?>\r\n<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
      + 's:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>'
      + `<u:${action} xmlns:u="${xmlEscape(serviceType)}">${inner}</u:${action}></s:Body></s:Envelope>\r\n`,
  };
}

export type SoapResponse =
  | { ok: true; values: Record<string, string> }
  | { ok: false; errorCode: number | null; errorDescription: string };
