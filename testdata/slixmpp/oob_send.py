#!/usr/bin/python3
"""Send one file with slixmpp: XEP-0066 jabber:iq:oob.

Serves --file with Python's http.server on 127.0.0.1 (a free port) under a
random path, logs in, offers the URL to the full JID --to with slixmpp's
xep_0066.send_oob, waits for the answer (the receiver replies only once it
has the whole file) and prints one result line:

  {"type": "result", "ok": true, "url", "requests"}
  or {"type": "result", "ok": false, "error", "condition", "url", "requests"}

--url offers that URL instead of serving the file.  Exits 0 when the
answer is a result.  Password: SLIX_PASSWORD.  Run with Debian's
/usr/bin/python3.
"""

import http.server
import os
import secrets
import threading
import urllib.parse

from slixmpp.exceptions import IqError

from xferslix import common_args, emit, make_client, offline, online, run


def serve(path):
    """Start a one-file HTTP server; returns (server, url, request counter)."""
    token = secrets.token_hex(16)
    name = os.path.basename(path)
    want = '/%s/%s' % (token, urllib.parse.quote(name))
    count = {'n': 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            count['n'] += 1
            if self.path != want:
                self.send_error(404)
                return
            with open(path, 'rb') as f:
                data = f.read()
            self.send_response(200)
            self.send_header('Content-Type', 'application/octet-stream')
            self.send_header('Content-Length', str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, 'http://127.0.0.1:%d%s' % (srv.server_address[1], want), count


def main():
    p = common_args(__doc__.splitlines()[0])
    p.add_argument('--to', required=True, help='recipient full JID')
    p.add_argument('--file', required=True)
    p.add_argument('--url', help='offer this URL instead of serving --file')
    p.add_argument('--desc', default='')
    p.add_argument('--iq-timeout', type=float, default=40)
    args = p.parse_args()
    xmpp = make_client(args)
    xmpp.register_plugin('xep_0066')

    async def send(loop):
        srv, url, count = serve(args.file)
        if args.url:
            url = args.url
        await online(xmpp, args, loop)
        try:
            await xmpp['xep_0066'].send_oob(args.to, url, desc=args.desc or None, timeout=args.iq_timeout)
        except IqError as e:
            emit(type='result', ok=False, error=e.text or e.condition, condition=e.condition,
                 url=url, requests=count['n'])
            return 1
        finally:
            srv.shutdown()
        emit(type='result', ok=True, url=url, requests=count['n'])
        await offline(xmpp)
        return 0

    run(xmpp, send, args)


if __name__ == '__main__':
    main()
