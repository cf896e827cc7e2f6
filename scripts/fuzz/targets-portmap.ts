// Fuzz target for what a gateway sends the port mapper: NAT-PMP and PCP datagrams, SSDP answers,
// UPnP device descriptions and SOAP answers (proto/portmap/). Each input goes through every
// decoder (as bytes, and as text for the XML ones); only DecodeError may come out.
import { decodeNatPmpResponse } from '../../proto/portmap/natpmp.js';
import { decodePcpResponse } from '../../proto/portmap/pcp.js';
import { decodeSsdpResponse } from '../../proto/portmap/upnp.js';
import { decodeDeviceDescription, decodeSoapResponse } from '../../proto/portmap/upnp-xml.js';
import { invariant, rejects, type FuzzTarget } from './target.js';

const text = (s: string): Uint8Array => new TextEncoder().encode(s);

function pcpMap(): Uint8Array {
  const b = new Uint8Array(60);
  b.set([2, 0x81, 0, 0, 0, 0, 0, 4, 0, 0, 0, 36]);
  b[36] = 17;
  b.set([0xa2, 0xa9, 0xc3, 0x50], 40);
  b.set([0xff, 0xff, 198, 51, 100, 10], 54);
  return b;
}

export function portmap(): FuzzTarget {
  return {
    name: 'portmap',
    corpus: [
      Uint8Array.from([0, 128, 0, 0, 0, 0, 0, 42, 198, 51, 100, 5]),
      Uint8Array.from([0, 129, 0, 0, 0, 0, 0, 7, 0xa2, 0xa9, 0xc3, 0x50, 0, 0, 0, 4]),
      pcpMap(),
      text('HTTP/1.1 200 OK\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nLOCATION: http://198.18.1.1:5000/rootDesc.xml\r\n\r\n'),
      text('<?xml version="1.0"?><root><device><serviceList><service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:2</serviceType>'
        + '<controlURL>/ctl/IPConn</controlURL></service></serviceList><deviceList><device></device></deviceList></device></root>'),
      text('<s:Envelope xmlns:s="x"><s:Body><u:XResponse xmlns:u="y"><NewReservedPort>50000</NewReservedPort></u:XResponse></s:Body></s:Envelope>'),
      text('<s:Envelope xmlns:s="x"><s:Body><s:Fault><detail><UPnPError><errorCode>718</errorCode><errorDescription>Conflict</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>'),
    ],
    run(input) {
      rejects(() => decodeNatPmpResponse(input));
      rejects(() => decodePcpResponse(input));
      rejects(() => decodeSsdpResponse(input));
      const s = new TextDecoder().decode(input);
      rejects(() => {
        const svc = decodeDeviceDescription(s, 'http://198.18.1.1:5000/rootDesc.xml');
        invariant(svc.controlUrl.startsWith('http://'), 'a control URL that is not http');
      });
      rejects(() => decodeSoapResponse(s, 'X'));
    },
  };
}
