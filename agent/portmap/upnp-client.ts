// UPnP IGD over the network: SSDP search answered by the gateway, its device description over
// HTTP, SOAP calls to its WAN connection service. Only the gateway is believed: answers from
// other hosts and URLs pointing elsewhere are dropped (anyone on the LAN can answer SSDP).
import { createSocket } from 'node:dgram';
import { request } from 'node:http';
import { isDecodeError } from '../../proto/errors.js';
import {
  decodeSsdpResponse, encodeSoapRequest, encodeSsdpSearch,
  SSDP_GROUP, SSDP_PORT, UPNP_XML_MAX_LEN, type SoapResponse, type WanService,
} from '../../proto/portmap/upnp.js';

/** The XML decoders, loaded at the first description or SOAP answer: most agents never meet a UPnP gateway. */
const upnpXml = (): Promise<typeof import('../../proto/portmap/upnp-xml.js')> => import('../../proto/portmap/upnp-xml.js');

export class UpnpHttpError extends Error {
  override readonly name = 'UpnpHttpError';
}

/** A SOAP fault from the gateway (errorCode: UPnP's, e.g. 718 ConflictInMappingEntry). */
export class UpnpFaultError extends Error {
  override readonly name = 'UpnpFaultError';
  constructor(readonly action: string, readonly errorCode: number | null, description: string) {
    super(`UPnP ${action}: ${errorCode ?? 'fault'} ${description}`);
  }
}

export interface UpnpCounters {
  /** SSDP answers, descriptions and SOAP bodies that did not parse, or came from another host. */
  malformed: number;
}

/**
 * Sends an IGD search to the gateway (unicast) and to the SSDP group, and returns the first
 * answer from the gateway's address; null if none within timeoutMs.
 */
export function searchGateway(gateway: string, localAddress: string, timeoutMs: number, counters: UpnpCounters): Promise<string | null> {
  return new Promise((resolve) => {
    const s = createSocket('udp4');
    let timer: NodeJS.Timeout | undefined;
    const done = (location: string | null): void => {
      clearTimeout(timer);
      s.removeAllListeners('message');
      try { s.close(); } catch { /* closed */ }
      resolve(location);
    };
    s.on('error', () => done(null));
    s.on('message', (msg, rinfo) => {
      if (rinfo.address !== gateway) {
        counters.malformed++;
        return;
      }
      try {
        const r = decodeSsdpResponse(msg);
        if (new URL(r.location).hostname !== gateway) {
          counters.malformed++;
          return;
        }
        done(r.location);
      } catch (err) {
        if (!isDecodeError(err)) throw err;
        counters.malformed++;
      }
    });
    s.bind(0, () => {
      const search = encodeSsdpSearch();
      // The group out of the gateway's link, not whatever the default route is (an exit node's tunnel).
      try { s.setMulticastInterface(localAddress); } catch { /* the unicast search still goes */ }
      s.send(search, SSDP_PORT, gateway, () => undefined);
      s.send(search, SSDP_PORT, SSDP_GROUP, () => undefined);
      timer = setTimeout(() => done(null), timeoutMs);
    });
  });
}

/** An HTTP exchange with a bounded body and a deadline. */
function http(url: string, opts: { method: 'GET' | 'POST'; headers?: Record<string, string>; body?: string; timeoutMs: number }): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: opts.method, headers: { Connection: 'close', ...opts.headers }, timeout: opts.timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > UPNP_XML_MAX_LEN) {
          req.destroy(new UpnpHttpError(`${url}: answer over ${UPNP_XML_MAX_LEN} bytes`));
          return;
        }
        chunks.push(c);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    const deadline = setTimeout(() => req.destroy(new UpnpHttpError(`${url}: no answer in ${opts.timeoutMs} ms`)), opts.timeoutMs);
    req.on('close', () => clearTimeout(deadline));
    req.on('timeout', () => req.destroy(new UpnpHttpError(`${url}: no answer in ${opts.timeoutMs} ms`)));
    req.on('error', (err) => reject(err instanceof UpnpHttpError ? err : new UpnpHttpError(`${url}: ${err.message}`)));
    if (opts.body !== undefined) req.end(opts.body);
    else req.end();
  });
}

/** Fetches the description at `location` and picks the WAN connection service (on the gateway only). */
export async function fetchWanService(location: string, gateway: string, timeoutMs: number): Promise<WanService> {
  const r = await http(location, { method: 'GET', timeoutMs });
  if (r.status !== 200) throw new UpnpHttpError(`${location}: HTTP ${r.status}`);
  const service = (await upnpXml()).decodeDeviceDescription(r.body, location);
  if (new URL(service.controlUrl).hostname !== gateway) throw new UpnpHttpError(`control URL ${service.controlUrl} is not on the gateway ${gateway}`);
  return service;
}

/** One SOAP action; a UPnP fault becomes UpnpFaultError, a malformed answer a DecodeError. */
export async function soapCall(service: WanService, action: string, args: ReadonlyArray<readonly [string, string | number]>, timeoutMs: number): Promise<Record<string, string>> {
  const { soapAction, body } = encodeSoapRequest(service.serviceType, action, args);
  const r = await http(service.controlUrl, {
    method: 'POST', timeoutMs, body,
    headers: { 'Content-Type': 'text/xml; charset="utf-8"', SOAPAction: soapAction, 'Content-Length': String(Buffer.byteLength(body)) },
  });
  const xml = await upnpXml();
  let answer: SoapResponse;
  try {
    answer = xml.decodeSoapResponse(r.body, action);
  } catch (err) {
    if (isDecodeError(err) && r.status !== 200) throw new UpnpHttpError(`UPnP ${action}: HTTP ${r.status}`);
    throw err;
  }
  if (!answer.ok) throw new UpnpFaultError(action, answer.errorCode, answer.errorDescription);
  return answer.values;
}
