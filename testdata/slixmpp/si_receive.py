#!/usr/bin/python3
"""Receive one file with slixmpp: XEP-0095/0096 SI offer, XEP-0047 IBB.

Logs in, goes online, prints {"type": "ready", "jid": FULL_JID} once its
handlers are in place, accepts the first SI file-transfer offer from the
allowed sender (others are declined), receives the in-band bytestream on
the offer's sid, writes the file to --dir under the offered base name, and
prints one result line:

  {"type": "result", "ok": ..., "name", "size" (declared), "hash" (declared),
   "bytes" (received), "md5" (of the received bytes), "sid", "block_size",
   "path", "from"}

Exits 0 only when the received bytes match the declared size and hash.
IBB is slixmpp's stock receiver (max_block_size 8192) unless
--ibb-retry-fix (see xferslix.py, quirk 3).
Password: SLIX_PASSWORD.  Run with Debian's /usr/bin/python3.
"""

import hashlib
import os

from xferslix import common_args, emit, fix_ibb_preauth, make_client, online, report, run, IBB, FILE_TRANSFER


def main():
    p = common_args(__doc__.splitlines()[0])
    p.add_argument('--dir', required=True, help='where the file goes')
    p.add_argument('--from', dest='sender', required=True, help='bare JID allowed to send')
    p.add_argument('--ibb-retry-fix', action='store_true',
                   help='let a sender retry IBB open with a smaller block (slixmpp quirk 3)')
    args = p.parse_args()
    xmpp = make_client(args)
    if args.ibb_retry_fix:
        fix_ibb_preauth(xmpp)

    async def receive(loop):
        offered = loop.create_future()  # the accepted offer's details
        finished = loop.create_future()  # set when the stream ends
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
                         md5=hashlib.md5(), bytes=0, block_size=None)
            state['file'] = open(state['path'], 'wb')
            offered.set_result(True)
            methods = [o['value'] for o in iq['si']['feature_neg']['form'].get_fields()['stream-method']['options']]
            if IBB not in methods:
                finished.set_exception(RuntimeError('offer without IBB: %s' % methods))
            await xmpp['xep_0095'].accept(sender, sid)

        def ours(stream):
            return 'sid' in state and stream.sid == state['sid'] and stream.peer_jid == state['peer']

        def drain(stream):
            while not stream.recv_queue.empty():
                data = stream.recv_queue.get_nowait()
                state['file'].write(data)
                state['md5'].update(data)
                state['bytes'] += len(data)

        def on_start(stream):
            if ours(stream):
                state['block_size'] = stream.block_size

        def on_data(stream):
            if ours(stream):
                drain(stream)

        def on_end(stream):
            if ours(stream):
                drain(stream)
                if not finished.done():
                    finished.set_result(True)

        xmpp.add_event_handler('si_request', on_offer)
        xmpp.add_event_handler('ibb_stream_start', on_start)
        xmpp.add_event_handler('ibb_stream_data', on_data)
        xmpp.add_event_handler('ibb_stream_end', on_end)

        await online(xmpp, args, loop)
        emit(type='ready', jid=xmpp.boundjid.full)
        await finished
        return await report(xmpp, state, block_size=state['block_size'])

    run(xmpp, receive, args)


if __name__ == '__main__':
    main()
