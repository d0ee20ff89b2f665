#!/usr/bin/python3
"""Send one file with slixmpp: XEP-0095/0096 SI offer, XEP-0065 SOCKS5.

Logs in, offers --file to the full JID --to with SI file transfer (name,
size, MD5 hash, the single stream method SOCKS5 bytestreams), waits for the
accept, and runs slixmpp's own requester side, xep_0065.handshake: it
discovers its server's proxies (disco#items, disco#info, the proxy's
streamhost), offers them (slixmpp offers no direct streamhost, quirk 5 in
xferslix.py), connects to the one the receiver used and activates it.  It
then writes the file, closes the connection, waits until it is closed and
prints one result line:

  {"type": "result", "ok": true, "sid", "bytes", "method", "md5",
   "proxies" (discovered JIDs), "used" (the proxy JID)}

or {"ok": false, "error": ...} with exit status 1.
Password: SLIX_PASSWORD.  Run with Debian's /usr/bin/python3.
"""

import asyncio
import os
import uuid

from slixmpp.plugins.xep_0096 import File

from xferslix import common_args, emit, make_client, md5_of, offline, online, run, FILE_TRANSFER, SOCKS5


def main():
    p = common_args(__doc__.splitlines()[0])
    p.add_argument('--to', required=True, help='recipient full JID')
    p.add_argument('--file', required=True)
    p.add_argument('--chunk', type=int, default=64 << 10, help='bytes per write')
    p.add_argument('--iq-timeout', type=float, default=30, help='limit for each IQ answer')
    args = p.parse_args()
    xmpp = make_client(args)
    s5b = xmpp['xep_0065']

    async def send(loop):
        size = os.path.getsize(args.file)
        md5 = md5_of(args.file)
        sid = uuid.uuid4().hex
        closed = loop.create_future()
        xmpp.add_event_handler('socks5_closed', lambda exc: closed.done() or closed.set_result(exc))
        await online(xmpp, args, loop)

        proxies = await s5b.discover_proxies(timeout=args.iq_timeout)
        if not proxies:
            raise RuntimeError('slixmpp found no SOCKS5 proxy on its server, and it has no direct streamhost')

        payload = File()
        payload['name'] = os.path.basename(args.file)
        payload['size'] = size
        payload['hash'] = md5
        result = await xmpp['xep_0095'].offer(
            args.to, sid=sid, mime_type='application/octet-stream', profile=FILE_TRANSFER,
            methods=[{'value': SOCKS5, 'label': ''}], payload=payload, timeout=args.iq_timeout)
        method = result['si']['feature_neg']['form'].get_fields()['stream-method']['value']
        if method != SOCKS5:
            raise RuntimeError('receiver chose %r, not SOCKS5' % method)

        # handshake returns None when the receiver names a streamhost it
        # was not offered or the proxy cannot be reached.
        sock = await s5b.handshake(args.to, sid=sid, timeout=args.iq_timeout)
        if sock is None:
            raise RuntimeError('SOCKS5 handshake failed (see --debug)')
        used_jid = ''
        host, port = sock.transport.get_extra_info('peername')[:2]
        for jid, (h, pt) in proxies.items():
            if (h, int(pt)) == (host, port):
                used_jid = str(jid)

        sent = 0
        with open(args.file, 'rb') as f:
            for data in iter(lambda: f.read(args.chunk), b''):
                await sock.write(data)  # waits while the transport is paused
                sent += len(data)
        sock.transport.close()  # flushes what is buffered, then closes
        await asyncio.wait_for(closed, args.iq_timeout)
        emit(type='result', ok=sent == size, sid=sid, bytes=sent, method=method, md5=md5,
             proxies=sorted(str(j) for j in proxies), used=used_jid)
        await offline(xmpp)
        return 0 if sent == size else 1

    run(xmpp, send, args)


if __name__ == '__main__':
    main()
