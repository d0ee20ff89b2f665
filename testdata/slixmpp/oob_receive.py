#!/usr/bin/python3
"""Receive one file with slixmpp: XEP-0066 jabber:iq:oob.

Logs in, goes online, prints {"type": "ready", "jid": FULL_JID} once its
handler is in place, and answers the first jabber:iq:oob offer from the
allowed sender: it fetches the URL (http or https only, else not-acceptable)
with urllib into --dir under the URL's base name, and only then lets
slixmpp's xep_0066 send the empty result.  Offers from anyone else are
answered not-acceptable.  Prints one result line:

  {"type": "result", "ok": ..., "url", "path", "bytes", "md5", "from", "sid"}

slixmpp 1.8.3's xep_0066 calls the URL handler synchronously and replies
with an empty result once it returns (an XMPPError raised by it becomes the
error reply), so the download blocks slixmpp's event loop: fine for one
file.  Password: SLIX_PASSWORD.  Run with Debian's /usr/bin/python3.
"""

import hashlib
import os
import urllib.parse
import urllib.request

from slixmpp.exceptions import XMPPError

from xferslix import common_args, emit, make_client, offline, online, run


def main():
    p = common_args(__doc__.splitlines()[0])
    p.add_argument('--dir', required=True, help='where the file goes')
    p.add_argument('--from', dest='sender', required=True, help='bare JID allowed to send')
    args = p.parse_args()
    xmpp = make_client(args)
    xmpp.register_plugin('xep_0066')

    async def receive(loop):
        done = loop.create_future()

        def handler(iq):
            url = iq['oob_transfer']['url']
            if iq['from'].bare != args.sender:
                raise XMPPError('not-acceptable', text='not an allowed sender')
            parsed = urllib.parse.urlparse(url)
            if parsed.scheme not in ('http', 'https'):
                raise XMPPError('not-acceptable', text='http and https only')
            name = os.path.basename(urllib.parse.unquote(parsed.path)) or 'download'
            path = os.path.join(args.dir, name)
            h = hashlib.md5()
            n = 0
            try:
                # No proxy from the environment: the URL is on loopback.
                opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
                with opener.open(url, timeout=30) as resp, open(path, 'wb') as f:
                    for block in iter(lambda: resp.read(1 << 16), b''):
                        f.write(block)
                        h.update(block)
                        n += len(block)
            except Exception as e:  # noqa: BLE001 - reported as the XEP says
                if not done.done():
                    done.set_result(dict(ok=False, error=str(e), url=url))
                raise XMPPError('item-not-found', text='fetch failed')
            if not done.done():
                done.set_result(dict(ok=True, url=url, path=path, bytes=n, md5=h.hexdigest(),
                                     sid=iq['oob_transfer']['sid'] or '', **{'from': str(iq['from'])}))

        xmpp['xep_0066'].register_url_handler(handler=handler)
        await online(xmpp, args, loop)
        emit(type='ready', jid=str(xmpp.boundjid))
        result = await done
        emit(type='result', **result)
        await offline(xmpp)
        return 0 if result['ok'] else 1

    run(xmpp, receive, args)


if __name__ == '__main__':
    main()
