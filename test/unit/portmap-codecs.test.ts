// The port-mapping wire formats (proto/portmap/): NAT-PMP and PCP byte layouts against RFC 6886 /
// RFC 6887, UPnP's SSDP, device description and SOAP against what miniupnpd 2.3 sends, restart
// detection by epoch, and the default gateway from /proc/net/route. Every decoder gets random and
// near-valid input: it returns or throws DecodeError, never anything else.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DecodeError } from '../../proto/errors.js';
import {
  decodeNatPmpResponse, encodeNatPmpMapRequest, encodeNatPmpPublicAddressRequest, epochWentBack,
} from '../../proto/portmap/natpmp.js';
import { decodePcpResponse, encodePcpAnnounceRequest, encodePcpMapRequest } from '../../proto/portmap/pcp.js';
import { decodeSsdpResponse, encodeSoapRequest, encodeSsdpSearch } from '../../proto/portmap/upnp.js';
import { decodeDeviceDescription, decodeSoapResponse } from '../../proto/portmap/upnp-xml.js';
import { parseDefaultGateway } from '../../agent/portmap/gateway.js';

const RUNS = 20_000;
const onlyDecodeErrors = (f: () => unknown): boolean => {
  try {
    f();
    return true;
  } catch (err) {
    return err instanceof DecodeError;
  }
};
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

// --- NAT-PMP -------------------------------------------------------------------------------------

test('NAT-PMP requests have the RFC 6886 layout', () => {
  assert.equal(hex(encodeNatPmpPublicAddressRequest()), '0000');
  assert.equal(hex(encodeNatPmpMapRequest({ protocol: 'udp', internalPort: 41641, suggestedExternalPort: 41641, lifetimeSeconds: 7200 })),
    '00010000a2a9a2a900001c20');
  assert.equal(hex(encodeNatPmpMapRequest({ protocol: 'tcp', internalPort: 80, suggestedExternalPort: 0, lifetimeSeconds: 0 })), '000200000050000000000000');
  assert.throws(() => encodeNatPmpMapRequest({ protocol: 'udp', internalPort: 0, suggestedExternalPort: 1, lifetimeSeconds: 1 }), RangeError);
});

test('NAT-PMP responses decode: public address, mapping, a truncated failure', () => {
  assert.deepEqual(decodeNatPmpResponse(Buffer.from('008000000000002ac6336405', 'hex')),
    { kind: 'public-address', result: 0, epoch: 42, externalAddress: '198.51.100.5' });
  assert.deepEqual(decodeNatPmpResponse(Buffer.from('0081000000000007a2a9c35000000004', 'hex')),
    { kind: 'map', protocol: 'udp', result: 0, epoch: 7, internalPort: 41641, externalPort: 50000, lifetimeSeconds: 4 });
  assert.deepEqual(decodeNatPmpResponse(Buffer.from('00810002', 'hex')), { kind: 'error', opcode: 1, result: 2, epoch: null });
  for (const [bytes, code] of [['00', 'short'], ['02810000', 'bad-type'], ['0001000000000000', 'bad-type'], ['0081000000000007a2a9', 'short'], ['0080000000000000c633640500', 'bad-length']] as const) {
    assert.throws(() => decodeNatPmpResponse(Buffer.from(bytes, 'hex')), (e: unknown) => e instanceof DecodeError && e.code === code, bytes);
  }
});

test('NAT-PMP map responses round-trip any field values', () => {
  fc.assert(fc.property(fc.constantFrom<'udp' | 'tcp'>('udp', 'tcp'), fc.nat(65535), fc.nat(0xffffffff), fc.integer({ min: 1, max: 65535 }), fc.nat(65535), fc.nat(0xffffffff),
    (protocol, result, epoch, internalPort, externalPort, lifetimeSeconds) => {
      const b = Buffer.alloc(16);
      b[1] = (protocol === 'udp' ? 1 : 2) | 128;
      b.writeUInt16BE(result, 2);
      b.writeUInt32BE(epoch, 4);
      b.writeUInt16BE(internalPort, 8);
      b.writeUInt16BE(externalPort, 10);
      b.writeUInt32BE(lifetimeSeconds, 12);
      assert.deepEqual(decodeNatPmpResponse(b), { kind: 'map', protocol, result, epoch, internalPort, externalPort, lifetimeSeconds });
    }), { numRuns: 2000 });
});

test(`NAT-PMP decoder throws only DecodeError on ${RUNS} random inputs`, () => {
  const natpmpish = fc.tuple(fc.nat(3), fc.uint8Array({ maxLength: 20 })).map(([op, rest]) => Uint8Array.of(0, 128 | op, ...rest));
  fc.assert(fc.property(fc.oneof(fc.uint8Array({ maxLength: 40 }), natpmpish), (b) => onlyDecodeErrors(() => decodeNatPmpResponse(b))), { numRuns: RUNS });
});

test('an epoch that goes back (or falls behind our clock by more than 1/8) means the gateway lost its state', () => {
  assert.equal(epochWentBack(100, 10, 110), false);
  assert.equal(epochWentBack(100, 10, 109), false, 'a gateway clock 1/8 slow is fine');
  assert.equal(epochWentBack(100, 10, 95), true);
  assert.equal(epochWentBack(100, 60, 2), true, 'restarted');
  assert.equal(epochWentBack(3, 0.5, 2), false, 'within the 2 s of slack');
});

// --- PCP -----------------------------------------------------------------------------------------

const nonce = Uint8Array.from({ length: 12 }, (_, i) => i + 1);

test('PCP ANNOUNCE and MAP requests have the RFC 6887 layout', () => {
  assert.equal(hex(encodePcpAnnounceRequest('198.18.1.2')), `0200000000000000${'00'.repeat(10)}ffffc6120102`);
  const map = encodePcpMapRequest({ clientAddress: '198.18.1.2', nonce, protocol: 'udp', internalPort: 41641, suggestedExternalPort: 41641, lifetimeSeconds: 7200 });
  assert.equal(map.length, 60);
  assert.equal(hex(map.subarray(0, 24)), `0201000000001c20${'00'.repeat(10)}ffffc6120102`);
  assert.equal(hex(map.subarray(24, 36)), hex(nonce));
  assert.equal(hex(map.subarray(36, 60)), `11000000a2a9a2a9${'00'.repeat(10)}ffff00000000`);
  assert.throws(() => encodePcpMapRequest({ clientAddress: '198.18.1.2', nonce: new Uint8Array(4), protocol: 'udp', internalPort: 1, suggestedExternalPort: 1, lifetimeSeconds: 1 }), RangeError);
});

/** A MAP response as a server builds it from a request: R bit, result, lifetime, epoch, assigned address. */
function pcpMapResponse(o: { result: number; lifetime: number; epoch: number; port: number; address: number[] }): Buffer {
  const b = Buffer.alloc(60);
  b[0] = 2;
  b[1] = 0x81;
  b[3] = o.result;
  b.writeUInt32BE(o.lifetime, 4);
  b.writeUInt32BE(o.epoch, 8);
  b.set(nonce, 24);
  b[36] = 17;
  b.writeUInt16BE(41641, 40);
  b.writeUInt16BE(o.port, 42);
  b.set([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...o.address], 44);
  return b;
}

test('PCP responses decode: MAP with its assigned address, ANNOUNCE, a short failure; requests and other versions are refused', () => {
  const r = decodePcpResponse(pcpMapResponse({ result: 0, lifetime: 4, epoch: 36, port: 50000, address: [198, 51, 100, 10] }));
  assert.equal(r.kind, 'map');
  assert.deepEqual(r.kind === 'map' && { ...r, nonce: hex(r.nonce) }, {
    kind: 'map', result: 0, lifetimeSeconds: 4, epoch: 36, nonce: hex(nonce), protocol: 17, internalPort: 41641, externalPort: 50000, externalAddress: '198.51.100.10',
  });
  const announce = Buffer.alloc(24);
  announce.set([2, 0x80, 0, 0]);
  announce.writeUInt32BE(9, 8);
  assert.deepEqual(decodePcpResponse(announce), { kind: 'announce', result: 0, lifetimeSeconds: 0, epoch: 9 });
  const refused = Buffer.from(announce);
  refused[1] = 0x81;
  refused[3] = 2;
  assert.deepEqual(decodePcpResponse(refused), { kind: 'other', opcode: 1, result: 2, lifetimeSeconds: 0, epoch: 9 });
  const shortOk = Buffer.from(refused);
  shortOk[3] = 0;
  assert.throws(() => decodePcpResponse(shortOk), (e: unknown) => e instanceof DecodeError && e.code === 'short');
  const request = encodePcpAnnounceRequest('198.18.1.2');
  assert.throws(() => decodePcpResponse(request), (e: unknown) => e instanceof DecodeError && e.code === 'bad-type');
  assert.throws(() => decodePcpResponse(Buffer.from('00800001', 'hex')), DecodeError);
});

test(`PCP decoder throws only DecodeError on ${RUNS} random inputs`, () => {
  const pcpish = fc.tuple(fc.nat(3), fc.uint8Array({ minLength: 22, maxLength: 80 })).map(([op, rest]) => {
    const b = Uint8Array.of(2, 0x80 | op, ...rest);
    return b.subarray(0, b.length - (b.length % 4));
  });
  fc.assert(fc.property(fc.oneof(fc.uint8Array({ maxLength: 120 }), pcpish), (b) => onlyDecodeErrors(() => decodePcpResponse(b))), { numRuns: RUNS });
});

// --- UPnP ----------------------------------------------------------------------------------------

/** What miniupnpd 2.3.1 answered in the lab (trimmed of headers we do not read). */
const SSDP_ANSWER = 'HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n'
  + 'USN: uuid:3f1e1a2b::urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nEXT:\r\nSERVER: Debian UPnP/1.1 MiniUPnPd/2.3.1\r\n'
  + 'LOCATION: http://198.18.1.1:36893/rootDesc.xml\r\n\r\n';

/** miniupnpd 2.3.1's root description, shortened to the service tree. */
const ROOT_DESC = '<?xml version="1.0"?>\r\n<root xmlns="urn:schemas-upnp-org:device-1-0" configId="1337"><specVersion><major>1</major><minor>1</minor></specVersion>'
  + '<device><deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:2</deviceType><serviceList><service><serviceType>urn:schemas-upnp-org:service:Layer3Forwarding:1</serviceType>'
  + '<controlURL>/ctl/L3F</controlURL></service></serviceList><deviceList><device><deviceType>urn:schemas-upnp-org:device:WANDevice:2</deviceType>'
  + '<serviceList><service><serviceType>urn:schemas-upnp-org:service:WANCommonInterfaceConfig:1</serviceType><controlURL>/ctl/CmnIfCfg</controlURL></service></serviceList>'
  + '<deviceList><device><deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:2</deviceType><serviceList>'
  + '<service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:2</serviceType><serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId><controlURL>/ctl/IPConn</controlURL></service>'
  + '<service><serviceType>urn:schemas-upnp-org:service:WANIPv6FirewallControl:1</serviceType><controlURL>/ctl/IP6FCtl</controlURL></service>'
  + '</serviceList></device></deviceList></device></deviceList></device></root>';

test('SSDP: the search asks for an IGD; the answer gives its description URL', () => {
  const search = new TextDecoder().decode(encodeSsdpSearch());
  assert.match(search, /^M-SEARCH \* HTTP\/1\.1\r\n/);
  assert.match(search, /\r\nMAN: "ssdp:discover"\r\n/);
  assert.match(search, /\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\r\n$/);
  assert.deepEqual(decodeSsdpResponse(Buffer.from(SSDP_ANSWER)), {
    location: 'http://198.18.1.1:36893/rootDesc.xml', searchTarget: 'urn:schemas-upnp-org:device:InternetGatewayDevice:1', server: 'Debian UPnP/1.1 MiniUPnPd/2.3.1',
  });
  for (const bad of ['NOTIFY * HTTP/1.1\r\nLOCATION: http://a/\r\n', 'HTTP/1.1 200 OK\r\nST: x\r\n', 'HTTP/1.1 200 OK\r\nLOCATION: file:///etc/passwd\r\n', 'HTTP/1.1 200 OK\r\nLOCATION: ::\r\n']) {
    assert.throws(() => decodeSsdpResponse(Buffer.from(bad)), DecodeError, bad);
  }
});

test('device description: the best WAN connection service, its control URL made absolute', () => {
  assert.deepEqual(decodeDeviceDescription(ROOT_DESC, 'http://198.18.1.1:36893/rootDesc.xml'),
    { serviceType: 'urn:schemas-upnp-org:service:WANIPConnection:2', controlUrl: 'http://198.18.1.1:36893/ctl/IPConn' });
  const v1 = ROOT_DESC.replace('WANIPConnection:2', 'WANIPConnection:1').replace('<URLBase>', '');
  assert.equal(decodeDeviceDescription(v1, 'http://198.18.1.1:5000/d.xml').serviceType, 'urn:schemas-upnp-org:service:WANIPConnection:1');
  const withBase = ROOT_DESC.replace('<specVersion>', '<URLBase>http://198.18.1.1:6000/</URLBase><specVersion>');
  assert.equal(decodeDeviceDescription(withBase, 'http://198.18.1.1:5000/d.xml').controlUrl, 'http://198.18.1.1:6000/ctl/IPConn');
  const none = ROOT_DESC.replace('WANIPConnection:2', 'SomethingElse:1');
  assert.throws(() => decodeDeviceDescription(none, 'http://198.18.1.1/'), (e: unknown) => e instanceof DecodeError && e.code === 'bad-value');
  const dtd = `<?xml version="1.0"?><!DOCTYPE root [<!ENTITY a "aaaa">]>${ROOT_DESC.slice(ROOT_DESC.indexOf('<root'))}`;
  assert.throws(() => decodeDeviceDescription(dtd, 'http://198.18.1.1/'), DecodeError);
  assert.throws(() => decodeDeviceDescription(`<root>${'<device>'.repeat(10)}`, 'http://198.18.1.1/'), DecodeError);
});

test('SOAP: arguments escaped and in order; answers give values, faults their UPnP error code', () => {
  const r = encodeSoapRequest('urn:schemas-upnp-org:service:WANIPConnection:1', 'AddPortMapping', [['NewExternalPort', 41641], ['NewPortMappingDescription', 'a<b&"c"']]);
  assert.equal(r.soapAction, '"urn:schemas-upnp-org:service:WANIPConnection:1#AddPortMapping"');
  assert.match(r.body, /<u:AddPortMapping xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:1"><NewExternalPort>41641<\/NewExternalPort><NewPortMappingDescription>a&#60;b&#38;&#34;c&#34;<\/NewPortMappingDescription><\/u:AddPortMapping>/);
  assert.throws(() => encodeSoapRequest('x', 'Bad Action<', []), RangeError);
  const ok = '<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><u:AddAnyPortMappingResponse xmlns:u="urn:x">'
    + '<NewReservedPort>50000</NewReservedPort></u:AddAnyPortMappingResponse></s:Body></s:Envelope>';
  assert.deepEqual(decodeSoapResponse(ok, 'AddAnyPortMapping'), { ok: true, values: { NewReservedPort: '50000' } });
  const empty = '<s:Envelope xmlns:s="x"><s:Body><u:AddPortMappingResponse xmlns:u="y"></u:AddPortMappingResponse></s:Body></s:Envelope>';
  assert.deepEqual(decodeSoapResponse(empty, 'AddPortMapping'), { ok: true, values: {} });
  const fault = '<s:Envelope xmlns:s="x"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail>'
    + '<UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>718</errorCode><errorDescription>ConflictInMappingEntry</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>';
  assert.deepEqual(decodeSoapResponse(fault, 'AddPortMapping'), { ok: false, errorCode: 718, errorDescription: 'ConflictInMappingEntry' });
  assert.throws(() => decodeSoapResponse(ok, 'AddPortMapping'), DecodeError, 'an answer to another action');
  assert.throws(() => decodeSoapResponse('not xml <', 'AddPortMapping'), DecodeError);
});

test(`UPnP decoders throw only DecodeError on ${RUNS} random and XML-like inputs`, () => {
  const pieces = ['<root>', '</root>', '<device>', '</device>', '<deviceList>', '</deviceList>', '<serviceList>', '</serviceList>', '<service>', '</service>',
    '<serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType>', '<controlURL>', '</controlURL>', '/ctl', 'http://198.18.1.1:1/', 'javascript:x', '<URLBase>', '</URLBase>',
    '<s:Envelope>', '</s:Envelope>', '<s:Body>', '</s:Body>', '<s:Fault>', '<detail>', '<UPnPError>', '<errorCode>', '</errorCode>', '<u:XResponse>', '</u:XResponse>', '<a>', '</a>',
    '&amp;', '&#60;', '&bogus;', '<![CDATA[', ']]>', '<!--', '-->', '<?xml version="1.0"?>', '"', '=', ' ', '\r\n', 'HTTP/1.1 200 OK\r\n', 'LOCATION: ', 'ST: '];
  const xmlish = fc.array(fc.constantFrom(...pieces), { maxLength: 50 }).map((p) => p.join(''));
  fc.assert(fc.property(fc.oneof(xmlish, fc.string({ maxLength: 300 })), (s) =>
    onlyDecodeErrors(() => decodeDeviceDescription(s, 'http://198.18.1.1:1/d.xml'))
      && onlyDecodeErrors(() => decodeSoapResponse(s, 'X'))
      && onlyDecodeErrors(() => decodeSsdpResponse(Buffer.from(s)))), { numRuns: RUNS / 4 });
});

// --- the default gateway ---------------------------------------------------------------------------

test('/proc/net/route: the default route with the lowest metric, little-endian addresses', () => {
  const table = [
    'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT',
    'eth1\t00000000\t010212C6\t0003\t0\t0\t200\t00000000\t0\t0\t0',
    'eth0\t00000000\t010112C6\t0003\t0\t0\t100\t00000000\t0\t0\t0',
    'eth0\t000112C6\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0',
  ].join('\n');
  assert.deepEqual(parseDefaultGateway(table), { address: '198.18.1.1', interface: 'eth0' });
  assert.equal(parseDefaultGateway(table.split('\n').filter((l) => !l.includes('\t00000000\t0')).join('\n')), null);
  assert.equal(parseDefaultGateway('Iface\nwg0\t00000000\t00000000\t0001\t0\t0\t0\t00000000'), null, 'a default route without a gateway (a TUN)');
  fc.assert(fc.property(fc.string({ maxLength: 400 }), (s) => { parseDefaultGateway(s); }), { numRuns: 2000 });
});
