// The XML a UPnP gateway sends: its device description (which WAN connection service, at which
// control URL) and SOAP answers. Through fast-xml-parser, bounded, no DTD; nothing here does I/O.
// A module of its own so that the parser is loaded only once a gateway has answered SSDP: most
// agents never meet one (the agent's memory at idle, docs/protocol.md).
import { XMLParser } from 'fast-xml-parser';
import { DecodeError } from '../errors.js';
import { UPNP_XML_MAX_LEN, WAN_SERVICES, type SoapResponse, type WanService } from './upnp.js';

function parser(): XMLParser {
  return new XMLParser({
    removeNSPrefix: true, ignoreAttributes: true, parseTagValue: false, processEntities: true,
    isArray: (name) => name === 'service' || name === 'device',
  });
}

/** Parses XML from a gateway: bounded, no DTD (entity tricks), a DecodeError for anything malformed. */
function parseXml(text: string): Record<string, unknown> {
  if (text.length > UPNP_XML_MAX_LEN) throw new DecodeError('oversized', `UPnP XML: ${text.length} characters`);
  if (/<!DOCTYPE|<!ENTITY/i.test(text)) throw new DecodeError('bad-value', 'UPnP XML: a DTD is not accepted');
  let doc: unknown;
  try {
    doc = parser().parse(text, true);
  } catch (err) {
    throw new DecodeError('bad-syntax', `UPnP XML: ${(err as Error).message.split('\n')[0]}`);
  }
  if (typeof doc !== 'object' || doc === null) throw new DecodeError('bad-syntax', 'UPnP XML: no document');
  return doc as Record<string, unknown>;
}

const isRecord = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
const asList = (x: unknown): unknown[] => (Array.isArray(x) ? x : x === undefined ? [] : [x]);
const text = (x: unknown): string | null => (typeof x === 'string' ? x.trim() : null);

/** Finds the best WAN connection service in a device description fetched from `location`. */
export function decodeDeviceDescription(xml: string, location: string): WanService {
  const doc = parseXml(xml);
  const root = doc['root'];
  if (!isRecord(root)) throw new DecodeError('bad-value', 'UPnP description: no <root>');
  const base = text(root['URLBase']) || location;
  const found = new Map<string, string>();
  // The IGD nests WANDevice > WANConnectionDevice > service; walk every device, bounded in depth.
  const walk = (devices: unknown, depth: number): void => {
    if (depth > 6) return;
    for (const d of asList(devices)) {
      if (!isRecord(d)) continue;
      const services = isRecord(d['serviceList']) ? d['serviceList']['service'] : undefined;
      for (const s of asList(services)) {
        if (!isRecord(s)) continue;
        const type = text(s['serviceType']);
        const control = text(s['controlURL']);
        if (type && control && !found.has(type)) found.set(type, control);
      }
      if (isRecord(d['deviceList'])) walk(d['deviceList']['device'], depth + 1);
    }
  };
  walk(root['device'], 0);
  for (const serviceType of WAN_SERVICES) {
    const control = found.get(serviceType);
    if (control === undefined) continue;
    let url: URL;
    try {
      url = new URL(control, base);
    } catch {
      throw new DecodeError('bad-syntax', `UPnP description: bad controlURL ${JSON.stringify(control.slice(0, 100))}`);
    }
    if (url.protocol !== 'http:') throw new DecodeError('bad-value', `UPnP description: controlURL scheme ${url.protocol}`);
    return { serviceType, controlUrl: url.href };
  }
  throw new DecodeError('bad-value', 'UPnP description: no WANIPConnection or WANPPPConnection service');
}

/** Decodes the answer to `action`: its output arguments, or the UPnP fault the gateway sent. */
export function decodeSoapResponse(xml: string, action: string): SoapResponse {
  const doc = parseXml(xml);
  const env = doc['Envelope'];
  const body = isRecord(env) ? env['Body'] : undefined;
  if (!isRecord(body)) throw new DecodeError('bad-value', 'SOAP: no Envelope/Body');
  const fault = body['Fault'];
  if (isRecord(fault)) {
    const detail = isRecord(fault['detail']) ? fault['detail'] : {};
    const err = isRecord(detail['UPnPError']) ? detail['UPnPError'] : {};
    const code = text(err['errorCode']);
    const n = code !== null && /^\d{1,4}$/.test(code) ? Number(code) : null;
    return { ok: false, errorCode: n, errorDescription: (text(err['errorDescription']) ?? text(fault['faultstring']) ?? 'SOAP fault').slice(0, 200) };
  }
  const out = body[`${action}Response`];
  if (out === '') return { ok: true, values: {} };
  if (!isRecord(out)) throw new DecodeError('bad-value', `SOAP: no ${action}Response`);
  const values: Record<string, string> = {};
  for (const [k, v] of Object.entries(out)) {
    const t = text(v);
    if (t !== null) values[k] = t;
  }
  return { ok: true, values };
}
