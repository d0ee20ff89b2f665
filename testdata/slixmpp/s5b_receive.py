#!/usr/bin/python3
"""Receive one file with slixmpp: XEP-0095/0096 SI offer, XEP-0065 SOCKS5.

Logs in, goes online, prints {"type": "ready", "jid": FULL_JID} once its
handlers are in place, accepts the first SI file-transfer offer from the
allowed sender (others are declined), and lets slixmpp's own target side
(xep_0065, pre-authorised for the sid by xep_0095.accept) connect to the
offered streamhosts and answer streamhost-used.  It writes the bytes that
arrive to --dir under the offered base name until the sender closes the
stream, and prints one result line:

  {"type": "result", "ok": ..., "name", "size" (declared), "hash" (declared),
   "bytes" (received), "md5" (of the received bytes), "sid", "method",
   "path", "from", "streamhost" (host:port it used)}

Exits 0 only when the received bytes match the declared size and hash.
The offer must list SOCKS5 alone: slixmpp prefers IBB (quirk 4 in
xferslix.py).  Password: SLIX_PASSWORD.  Run with Debian's /usr/bin/python3.
"""

import hashlib
import os

from xferslix import common_args, emit, make_client, online, report, run, FILE_TRANSFER, SOCKS5


def main():
    p = common_args(__doc__.splitlines()[0])
    p.add_argument('--dir', required=True, help='where the file goes')
    p.add_argument('--from', dest='sender', required=True, help='bare JID allowed to send')
    args = p.parse_args()
    xmpp = make_client(args)
    s5b = xmpp['xep_0065']

    async def receive(loop):
        offered = loop.create_future()
        finished = loop.create_future()  # set when the used connection closes
        state = {}

        async def on_offer(iq):
            sender = iq['from']
            sid = iq['si']['id']
            if sender.bare != args.sender or offered.done() or iq['si']['profile'] != FILE_TRANSFER:
                await xmpp['xep_0095'].decline(sender, sid)
                return
            f = iq['si']['file']
            name = os.path.basename(f['name']) or 'unnamed'
            state.update(sid=sid, peer=sender, name=f['name'], size=int(f['size'] or 0),
                         hash=f['hash'] or '', path=os.path.join(args.dir, name),
                         md5=hashlib.md5(), bytes=0, streamhost='')
            state['file'] = open(state['path'], 'wb')
            offered.set_result(True)
            methods = [o['value'] for o in iq['si']['feature_neg']['form'].get_fields()['stream-method']['options']]
            if methods != [SOCKS5]:
                finished.set_exception(RuntimeError(
                    'offer lists %s: slixmpp takes IBB when offered, SOCKS5 only when alone' % methods))
            await xmpp['xep_0095'].accept(sender, sid)

        def used():
            return s5b.get_socket(state['sid']) if 'sid' in state else None

        def on_stream(conn):
            if conn is used():
                host, port = conn.transport.get_extra_info('peername')[:2]
                state['streamhost'] = '%s:%s' % (host, port)

        def on_data(data):
            # Only the used connection carries data; spare ones stay idle.
            if 'file' in state:
                state['file'].write(data)
                state['md5'].update(data)
                state['bytes'] += len(data)

        def on_closed(exc):
            conn = used()
            if conn is not None and conn.transport.is_closing() and not finished.done():
                finished.set_result(exc)

        xmpp.add_event_handler('si_request', on_offer)
        xmpp.add_event_handler('socks5_stream', on_stream)
        xmpp.add_event_handler('socks5_data', on_data)
        xmpp.add_event_handler('socks5_closed', on_closed)

        await online(xmpp, args, loop)
        emit(type='ready', jid=xmpp.boundjid.full)
        await finished
        return await report(xmpp, state, method=SOCKS5, streamhost=state['streamhost'])

    run(xmpp, receive, args)


if __name__ == '__main__':
    main()
