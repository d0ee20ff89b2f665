#!/usr/bin/python3
"""Send one file with slixmpp: XEP-0095/0096 SI offer, XEP-0047 IBB.

Logs in, offers --file to the full JID --to with SI file transfer (name,
size, MD5 hash, the single stream method IBB), waits for the accept, opens
an in-band bytestream on the offer's sid, sends the file (stop-and-wait as
slixmpp's IBBytestream.sendfile does, or --window blocks in flight), closes
it and prints one result line:

  {"type": "result", "ok": true, "sid", "bytes", "block_size", "method",
   "md5"}

or {"ok": false, "error": ...} with exit status 1.
Password: SLIX_PASSWORD.  Run with Debian's /usr/bin/python3.
"""

import asyncio
import hashlib
import os
import uuid

from slixmpp.plugins.xep_0096 import File

from xferslix import common_args, emit, make_client, offline, online, run, IBB, FILE_TRANSFER


def md5_of(path):
    h = hashlib.md5()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 16), b''):
            h.update(block)
    return h.hexdigest()


async def send_windowed(stream, f, window, timeout):
    """Keep up to window data IQs unacknowledged.  Tasks start in creation
    order, and IBBytestream.send numbers and writes its stanza before its
    first await, so seq numbers go out in order."""
    pending = set()
    sent = 0
    while True:
        data = f.read(stream.block_size)
        if data:
            pending.add(asyncio.ensure_future(stream.send(data, timeout=timeout)))
            sent += len(data)
        if len(pending) >= window or (not data and pending):
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                t.result()  # raises IqError / IqTimeout
        if not data and not pending:
            return sent


def main():
    p = common_args(__doc__.splitlines()[0])
    p.add_argument('--to', required=True, help='recipient full JID')
    p.add_argument('--file', required=True)
    p.add_argument('--name', help='offer under this name')
    p.add_argument('--method', default=IBB, help='stream method to offer (default IBB)')
    p.add_argument('--block-size', type=int, default=4096, help="IBB block size (slixmpp's default 4096)")
    p.add_argument('--window', type=int, default=1, help='IBB blocks in flight (1: sendfile)')
    p.add_argument('--iq-timeout', type=float, default=30, help='limit for each IQ answer')
    args = p.parse_args()
    xmpp = make_client(args)

    async def send(loop):
        size = os.path.getsize(args.file)
        md5 = md5_of(args.file)
        sid = uuid.uuid4().hex
        await online(xmpp, args, loop)

        payload = File()
        payload['name'] = args.name or os.path.basename(args.file)
        payload['size'] = size
        payload['hash'] = md5
        # xep_0096.request_file_transfer passes no methods, so xep_0095.offer
        # offers every registered method; offer() is called directly to
        # offer only the one under test.  Options are given as dicts.
        result = await xmpp['xep_0095'].offer(
            args.to, sid=sid, mime_type='application/octet-stream', profile=FILE_TRANSFER,
            methods=[{'value': args.method, 'label': ''}], payload=payload, timeout=args.iq_timeout)
        method = result['si']['feature_neg']['form'].get_fields()['stream-method']['value']
        if method != IBB:
            raise RuntimeError('receiver chose %r, not IBB' % method)
        offset = result['si']['file']['range']['offset']
        if offset not in (None, '', '0', 0):
            raise RuntimeError('receiver asked for range offset %r' % offset)

        stream = await xmpp['xep_0047'].open_stream(args.to, sid=sid, block_size=args.block_size,
                                                    timeout=args.iq_timeout)
        with open(args.file, 'rb') as f:
            if args.window <= 1:
                await stream.sendfile(f, timeout=args.iq_timeout)
                sent = f.tell()
            else:
                sent = await send_windowed(stream, f, args.window, args.iq_timeout)
        await stream.close(timeout=args.iq_timeout)
        emit(type='result', ok=sent == size, sid=sid, bytes=sent, block_size=stream.block_size,
             method=method, md5=md5)
        await offline(xmpp)
        return 0 if sent == size else 1

    run(xmpp, send, args)


if __name__ == '__main__':
    main()
