"""Shared set-up for xfer's slixmpp interoperability drivers.

The drivers (si_send.py, si_receive.py over IBB; s5b_send.py, s5b_receive.py
over SOCKS5 bytestreams) are run by xfer's Go test package internal/interop
with Debian's /usr/bin/python3 and python3-slixmpp 1.8.3, an independent
XEP-0095/0096 + XEP-0047 + XEP-0065 implementation.  They talk only to the
private Prosody or ejabberd the tests start on a loopback port and trust
only its self-signed certificate.

Every driver prints JSON objects on stdout, one per line, and exits non-zero
on failure.  The password comes from the environment (SLIX_PASSWORD), never
from argv.

slixmpp 1.8.3 quirks (checked against this version):

1. xep_0095 registers its 'SI Request' handler as a plain Callback although
   _handle_request is a coroutine: the coroutine is created and never
   awaited ("RuntimeWarning: coroutine 'XEP_0095._handle_request' was never
   awaited"), so every SI offer is silently dropped: no si_request event, no
   answer, the sender times out.  fix_si_request re-registers it as a
   CoroutineCallback; always applied, or slixmpp cannot receive at all.

2. xep_0095.offer (and so xep_0096.request_file_transfer, which passes no
   methods) builds the stream-method field with add_field(options=...),
   which calls add_option(**option): plain method strings raise "TypeError:
   ... add_option() argument after ** must be a mapping, not str".
   si_send.py calls xep_0095.offer itself with
   methods=[{'value': METHOD, 'label': ''}] and payload=File().

3. xep_0047's default authorized_sid consumes the pre-authorisation that
   xep_0095.accept made for the sid on the first <open/>, before the
   block-size check.  An open above max_block_size (8192) is answered
   resource-constraint, and the retry on the same sid with a smaller block
   is answered not-acceptable, since the pre-authorisation is gone: a stock
   slixmpp receiver accepts only a first open of at most 8192.
   fix_ibb_preauth keeps it until an open is accepted; si_receive.py
   applies it only with --ibb-retry-fix, so that the tests see both.

4. xep_0095 prefers IBB: it picks the first of its own methods in its order
   (IBB 50, SOCKS5 100) that the offer lists, so a slixmpp receiver offered
   both takes IBB.  xfer's sender must offer SOCKS5 alone (--method s5b)
   for slixmpp to receive over SOCKS5.

5. xep_0065 as a requester (handshake) offers only the proxies it
   discovered on its server: slixmpp has no SOCKS5 server of its own, so it
   never offers a direct streamhost, and with no proxy it cannot send over
   SOCKS5 at all.

6. xep_0065 as a target connects to every offered streamhost at once, uses
   the first one in the offer's order whose SOCKS5 handshake succeeded, and
   leaves the other connections open.  Its Socks5Protocol reports data and
   closing through global events ('socks5_data', 'socks5_closed') that do
   not say which connection; s5b_receive.py uses the connection xep_0065
   keeps for the sid to tell the stream's end from a spare connection's.
   Socks5Protocol has no close(): xep_0065.deactivate would raise, so the
   sender closes the transport itself.
"""

import argparse
import asyncio
import hashlib
import json
import logging
import os
import sys

import slixmpp
from slixmpp.xmlstream.handler import CoroutineCallback
from slixmpp.xmlstream.matcher import StanzaPath

IBB = 'http://jabber.org/protocol/ibb'
SOCKS5 = 'http://jabber.org/protocol/bytestreams'
FILE_TRANSFER = 'http://jabber.org/protocol/si/profile/file-transfer'


def md5_of(path):
    """Lower-case hex MD5 of the file at path."""
    h = hashlib.md5()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 16), b''):
            h.update(block)
    return h.hexdigest()


def emit(**fields):
    """Print one JSON object on stdout, flushed at once."""
    print(json.dumps(fields, sort_keys=True), flush=True)


def common_args(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument('--jid', required=True, help='account, bare or full JID')
    p.add_argument('--host', required=True, help='server address (loopback)')
    p.add_argument('--port', required=True, type=int)
    p.add_argument('--cafile', required=True, help='PEM certificate to trust')
    p.add_argument('--timeout', type=float, default=120, help='overall limit in seconds')
    p.add_argument('--debug', action='store_true', help='slixmpp debug log on stderr')
    return p


def make_client(args):
    password = os.environ.get('SLIX_PASSWORD')
    if password is None:
        sys.exit('SLIX_PASSWORD is not set')
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        stream=sys.stderr, format='%(asctime)s %(levelname)s %(name)s: %(message)s')
    # slixmpp takes asyncio.get_event_loop(); give it one explicitly (newer
    # Pythons no longer create one on demand).
    asyncio.set_event_loop(asyncio.new_event_loop())
    xmpp = slixmpp.ClientXMPP(args.jid, password)
    for plugin in ('xep_0030', 'xep_0047', 'xep_0095', 'xep_0096'):
        xmpp.register_plugin(plugin)
    # Trust only the test server's self-signed certificate; host-name
    # checking stays on (the certificate is for "localhost", the JID's
    # domain).
    xmpp.ca_certs = args.cafile
    fix_si_request(xmpp)
    return xmpp


def fix_si_request(xmpp):
    """Quirk 1: make xep_0095's offer handler actually run."""
    xmpp.remove_handler('SI Request')
    xmpp.register_handler(CoroutineCallback(
        'SI Request', StanzaPath('iq@type=set/si'), xmpp['xep_0095']._handle_request))


def fix_ibb_preauth(xmpp):
    """Quirk 3: keep a sid's pre-authorisation across resource-constraint retries."""
    ibb = xmpp['xep_0047']

    def authorized_sid(jid, sid, ifrom, iq):
        key = (jid, sid, ifrom)
        if key not in ibb._preauthed_sids:
            return False
        size = iq['ibb_open']['block_size'] or ibb.block_size
        if size <= ibb.max_block_size:
            del ibb._preauthed_sids[key]
        return True

    ibb.api.register(authorized_sid, 'authorized_sid')


async def online(xmpp, args, loop):
    """Connect and log in; returns once the session has started."""
    started = loop.create_future()

    def fail(why):
        if not started.done():
            started.set_exception(RuntimeError(why))

    xmpp.add_event_handler('session_start', lambda _: started.done() or started.set_result(True))
    xmpp.add_event_handler('failed_auth', lambda _: fail('authentication failed'))
    xmpp.add_event_handler('connection_failed', lambda e: fail('connection failed: %s' % e))
    xmpp.add_event_handler('ssl_invalid_chain', lambda e: fail('TLS certificate not trusted: %s' % e))
    xmpp.add_event_handler('disconnected', lambda e: fail('disconnected before the session started: %s' % e))
    xmpp.connect(address=(args.host, args.port), force_starttls=True)
    await started
    xmpp.send_presence()


async def offline(xmpp):
    try:
        await asyncio.wait_for(xmpp.disconnect(), 5)
    except Exception:  # noqa: BLE001 - leaving anyway
        pass


async def report(xmpp, state, **extra):
    """Close the received file, check it against the offer, print the result
    line, go offline, and return the exit status (0 when it verified)."""
    state['file'].close()
    md5 = state['md5'].hexdigest()
    ok = state['bytes'] == state['size'] and (not state['hash'] or state['hash'].lower() == md5)
    emit(type='result', ok=ok, name=state['name'], size=state['size'], hash=state['hash'],
         bytes=state['bytes'], md5=md5, sid=state['sid'], path=state['path'],
         **extra, **{'from': state['peer'].full})
    await offline(xmpp)
    return 0 if ok else 1


def run(xmpp, main, args):
    """Run main(loop) under the overall timeout and exit with the status it
    returns; any exception is reported as a failed result, exit status 1."""
    loop = xmpp.loop
    try:
        status = loop.run_until_complete(asyncio.wait_for(main(loop), args.timeout))
    except asyncio.TimeoutError:
        emit(type='result', ok=False, error='timed out after %gs' % args.timeout)
        status = 1
    except Exception as e:  # noqa: BLE001 - reported, then exit 1
        emit(type='result', ok=False, error='%s: %s' % (type(e).__name__, e))
        status = 1
    sys.exit(status)
