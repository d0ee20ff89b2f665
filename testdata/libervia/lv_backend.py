#!/usr/bin/python3
"""Start the stock Libervia 0.9 backend (Debian 12 "libervia-backend") headless,
for tests: pb bridge, loopback-only network, per-instance switches.

    /usr/bin/python3 lv_backend.py --dir DIR [--log-level info] [--ca CERT]

DIR is the instance directory (created if missing). Everything the backend
writes goes under it: home/, config/libervia/libervia.conf (written here),
data/, cache/, local/ (libervia.db, libervia.log, the pb socket local/bridge_pb,
the pid file, gnupg-home/ of the OX plugin), xml.log (every stanza sent or
received, with a timestamp) and force.json (the switches, below).

The protocol code is left as Debian ships it. What this launcher changes, at
run time (no file under /usr is touched):

* IP discovery (plugin_misc_ip): getLocalIPs() returns $LV_S5B_HOSTS
  (default 127.0.0.1, comma-separated) and getExternalIP() returns None, so the
  backend never offers nor dials an interface address and never asks to fetch
  http://salut-a-toi.org/whereami/.
* S5B candidates and XEP-0065 streamhosts of the peer that are not loopback
  addresses (or "localhost") are not dialed: they fail as connection refused.
* The XEP-0065 SOCKS5 server listens on 127.0.0.1 on a free port chosen by
  the kernel ($LV_S5B_PORT to force one), instead of all interfaces.
* Switches read from DIR/force.json at each decision (a missing file or key
  means stock behaviour):
    method            "jingle" hides SI from fileSend's choice, "si" hides Jingle
    jingle_transport  "s5b" or "ibb": the transport put in session-initiate
    s5b_candidates    "all", "direct", "proxy", "none": which of our own
                      S5B candidates / XEP-0065 streamhosts we offer
    si_methods        "s5b", "ibb", "s5b,ibb", "ibb,s5b": SI stream methods
                      (what we offer as sender, what we accept as receiver)
    ibb_block_size    int: the IBB block size we use as IBB initiator
    fix_proxy_activate  bool: fix the XEP-0260 proxy activation call (the
                      stock code passes its arguments in the wrong order and
                      always falls back to IBB when it must activate a proxy)
* With --ca: a certificate DNS-ID that service_identity refuses as a
  pattern ("*.localhost": too few labels for a wildcard) is dropped instead
  of failing the whole verification (see patch_service_identity).
* Stanza log: every element sent or received goes to DIR/xml.log, with IBB
  payloads cut after 64 base64 characters.

Run with /usr/bin/python3: the Debian package installs the "sat" modules
under /usr/share/libervia, which this script puts first on sys.path.
"""

import argparse
import json
import os
import re
import sys
import time

LIBERVIA = "/usr/share/libervia"

CONFIG = """[DEFAULT]
bridge = pb
local_dir = {local}
log_level = {level}
log_colors = false
log_fmt = %%(levelname)s %%(name)s: %%(message)s
"""


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dir", required=True, help="instance directory")
    p.add_argument("--log-level", default="info", help="debug, info, warning, error")
    p.add_argument("--ca", default="", help="PEM file to trust for the server's TLS certificate")
    return p.parse_args()


def prepare(args):
    """Create the instance tree, write the config and point the environment
    at it; must run before any sat module is imported (they read XDG_* at
    import time)."""
    d = os.path.abspath(args.dir)
    paths = {k: os.path.join(d, k) for k in ("home", "config", "data", "cache", "local")}
    for p in paths.values():
        os.makedirs(p, exist_ok=True)
    os.makedirs(os.path.join(paths["config"], "libervia"), exist_ok=True)
    with open(os.path.join(paths["config"], "libervia", "libervia.conf"), "w") as f:
        f.write(CONFIG.format(local=paths["local"], level=args.log_level))
    os.environ.update({
        "HOME": paths["home"],
        "XDG_CONFIG_HOME": paths["config"],
        # no system-wide xdg dirs: nothing but our config is read
        "XDG_CONFIG_DIRS": paths["config"],
        "XDG_DATA_HOME": paths["data"],
        "XDG_CACHE_HOME": paths["cache"],
        "XDG_RUNTIME_DIR": paths["home"],
    })
    os.environ.pop("DBUS_SESSION_BUS_ADDRESS", None)
    os.environ.pop("LIBERVIA_BRIDGE_NAME", None)
    if args.ca:
        # OpenSSL's default verify paths honour it; Libervia verifies
        # against them when check_certificate is true.
        os.environ["SSL_CERT_FILE"] = os.path.abspath(args.ca)
    return d


# --- switches ---------------------------------------------------------------

FORCE_FILE = None


def switch(name, default=None):
    """The current value of a switch from force.json (re-read every time)."""
    try:
        with open(FORCE_FILE) as f:
            data = json.load(f)
    except FileNotFoundError:
        return default
    except (OSError, ValueError) as e:
        print(f"unreadable {FORCE_FILE}: {e}", file=sys.stderr)
        return default
    v = data.get(name)
    return default if v in (None, "", "auto") else v


# --- patches ----------------------------------------------------------------

def is_loopback(host):
    import ipaddress
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def patch_ip(log):
    from twisted.internet import defer
    from sat.plugins import plugin_misc_ip as ip

    hosts = [h for h in os.environ.get("LV_S5B_HOSTS", "127.0.0.1").split(",") if h]

    def getLocalIPs(self, client):
        return defer.succeed(list(hosts))  # a fresh list: callers pop from it

    def getExternalIP(self, client):
        return defer.succeed(None)

    ip.IPPlugin.getLocalIPs = getLocalIPs
    ip.IPPlugin.getExternalIP = getExternalIP
    log.info(f"IP discovery patched: local IPs {hosts}, no external IP")


def patch_s5b(log):
    from twisted.internet import reactor
    from sat.plugins import plugin_xep_0065 as s5b

    def getSocks5ServerFactory(self):
        if self._server_factory is None:
            self._server_factory = s5b.Socks5ServerFactory(self)
            port = int(os.environ.get("LV_S5B_PORT", "0") or 0)
            listening = reactor.listenTCP(port, self._server_factory, interface="127.0.0.1")
            self._server_factory_port = listening.getHost().port
            log.info(f"Socks5 Stream server on 127.0.0.1:{self._server_factory_port}")
        return self._server_factory

    s5b.XEP_0065.getSocks5ServerFactory = getSocks5ServerFactory

    # A peer may offer interface addresses (a stock xfer or Libervia does):
    # never dial them, treat them as unreachable.
    from twisted.internet import defer, error

    orig_connect = s5b.XEP_0065.connectCandidate

    def connectCandidate(self, client, candidate, *args, **kwargs):
        if not is_loopback(candidate.host):
            log.warning(f"not dialing non-loopback candidate {candidate}")
            return defer.fail(error.ConnectionRefusedError(
                f"lv_backend: {candidate.host} is not a loopback address"))
        return orig_connect(self, client, candidate, *args, **kwargs)

    s5b.XEP_0065.connectCandidate = connectCandidate

    orig_get_candidates = s5b.XEP_0065.getCandidates

    def getCandidates(self, client, local_jid):
        d = orig_get_candidates(self, client, local_jid)

        def filt(candidates):
            which = switch("s5b_candidates", "all")
            if which == "all":
                return candidates
            if which == "none":
                kept = []
            elif which == "direct":
                kept = [c for c in candidates if c.type == s5b.XEP_0065.TYPE_DIRECT]
            elif which == "proxy":
                kept = [c for c in candidates if c.type == s5b.XEP_0065.TYPE_PROXY]
            else:
                log.error(f"unknown s5b_candidates {which!r}, offering all")
                return candidates
            log.info(f"s5b_candidates={which}: offering {[str(c) for c in kept]}")
            return kept

        return d.addCallback(filt)

    s5b.XEP_0065.getCandidates = getCandidates

    orig_activate = s5b.Candidate.activate

    def activate(self, *args):
        # plugin_xep_0260 calls activate(sid, peer_jid, client); the method
        # takes (client, sid, peer_jid, local_jid).
        if len(args) == 3 and isinstance(args[0], str):
            if not switch("fix_proxy_activate", False):
                return orig_activate(self, *args)  # stock behaviour: TypeError
            sid, peer_jid, client = args
            log.info("fix_proxy_activate: activating the proxy")
            return orig_activate(self, client, sid, peer_jid, client.jid)
        return orig_activate(self, *args)

    s5b.Candidate.activate = activate


def patch_method(log):
    from sat.plugins import plugin_xep_0234 as ft, plugin_xep_0096 as si

    for cls, hidden_by in ((ft.XEP_0234, "si"), (si.XEP_0096, "jingle")):
        orig = cls.canHandleFileSend

        def make(orig, hidden_by, name):
            async def canHandleFileSend(self, client, peer_jid, filepath):
                if switch("method") == hidden_by:
                    log.info(f"method={hidden_by}: not using {name}")
                    return False
                return await orig(self, client, peer_jid, filepath)
            return canHandleFileSend

        cls.canHandleFileSend = make(orig, hidden_by, cls.__name__)


def patch_jingle_transport(host, log):
    j = host.plugins["XEP-0166"]
    ns = {
        "s5b": "urn:xmpp:jingle:transports:s5b:1",
        "ibb": "urn:xmpp:jingle:transports:ibb:1",
    }

    class Transports(dict):
        def __getitem__(self, key):
            transports = list(dict.__getitem__(self, key))
            want = switch("jingle_transport")
            if key == j.TRANSPORT_STREAMING and want:
                first = [t for t in transports if t.namespace == ns.get(want)]
                if not first:
                    log.error(f"unknown jingle_transport {want!r}")
                else:
                    log.info(f"jingle_transport={want}")
                    transports = first + [t for t in transports if t not in first]
            return transports

    j._type_transports = Transports(j._type_transports)


def patch_si_methods(host, log):
    from sat.plugins import plugin_xep_0096 as si

    names = {
        "s5b": host.plugins["XEP-0065"].NAMESPACE,
        "ibb": host.plugins["XEP-0047"].NAMESPACE,
    }

    def get(self):
        stock = self.__dict__["_lv_stream_m"]
        want = switch("si_methods")
        if not want:
            return stock
        return [names[m.strip()] for m in want.split(",") if m.strip() in names]

    def set_(self, value):
        self.__dict__["_lv_stream_m"] = value

    inst = host.plugins["XEP-0096"]
    stock = inst.__dict__.pop("managed_stream_m")
    si.XEP_0096.managed_stream_m = property(get, set_)
    inst.managed_stream_m = stock


def patch_ibb_block_size(log):
    from sat.plugins import plugin_xep_0047 as ibb, plugin_xep_0261 as jibb

    orig_init = jibb.XEP_0261.jingleSessionInit

    def jingleSessionInit(self, client, session, content_name):
        elt = orig_init(self, client, session, content_name)
        size = switch("ibb_block_size")
        if size:
            session["contents"][content_name]["transport_data"]["block_size"] = int(size)
            elt["block-size"] = str(int(size))
        return elt

    jibb.XEP_0261.jingleSessionInit = jingleSessionInit

    orig_start = ibb.XEP_0047.startStream

    def startStream(self, client, stream_object, local_jid, to_jid, sid, block_size=None):
        if block_size is None and switch("ibb_block_size"):
            block_size = int(switch("ibb_block_size"))
        return orig_start(self, client, stream_object, local_jid, to_jid, sid, block_size)

    ibb.XEP_0047.startStream = startStream


IBB_PAYLOAD = re.compile(r"([A-Za-z0-9+/]{64})[A-Za-z0-9+/=]{16,}")


def install_xml_log(host, path):
    from functools import partial
    from twisted.words.xish import domish

    out = open(path, "a", buffering=1, encoding="utf-8")

    def write(direction, obj, client):
        if isinstance(obj, domish.Element):
            text = obj.toXml()
        elif isinstance(obj, bytes):
            text = obj.decode("utf-8", "replace")
        else:
            text = str(obj)
        text = IBB_PAYLOAD.sub(r"\1…", text)
        out.write(f"{time.time():.3f} {client.profile} {direction} {text}\n")

    def add_hooks(client, receive_hooks, send_hooks):
        receive_hooks.append(partial(write, "IN", client=client))
        send_hooks.append(partial(write, "OUT", client=client))
        return True

    host.trigger.add("stream_hooks", add_hooks)


def patch_service_identity():
    """service_identity (python3-service-identity 21.1) raises on a
    certificate whose SAN lists a wildcard with too few labels, such as
    "*.localhost" in internal/testserver's certificate, even when another
    SAN ("localhost") matches. Drop such a pattern instead: it could match
    nothing anyway; the other names are still verified."""
    from service_identity import pyopenssl as sip
    from service_identity.exceptions import CertificateError

    orig = sip.DNSPattern

    def DNSPattern(pattern):
        try:
            return orig(pattern)
        except CertificateError as e:
            print(f"lv_backend: ignoring certificate DNS-ID {pattern!r}: {e}", file=sys.stderr)
            return orig(b"dropped-wildcard.invalid")

    sip.DNSPattern = DNSPattern


def install_patches(sat_main):
    from sat.core.log import getLogger
    log = getLogger("lv_backend")
    orig = sat_main.SAT._import_plugins

    def _import_plugins(self):
        orig(self)
        patch_ip(log)
        patch_s5b(log)
        patch_method(log)
        patch_jingle_transport(self, log)
        patch_si_methods(self, log)
        patch_ibb_block_size(log)
        install_xml_log(self, os.environ["LV_XMLLOG"])
        log.info("patches installed")

    sat_main.SAT._import_plugins = _import_plugins


def main():
    global FORCE_FILE
    args = parse_args()
    d = prepare(args)
    FORCE_FILE = os.environ.get("LV_FORCE") or os.path.join(d, "force.json")
    os.environ.setdefault("LV_XMLLOG", os.path.join(d, "xml.log"))
    sys.path.insert(0, LIBERVIA)
    if args.ca:
        patch_service_identity()

    # twistd finds the "libervia" service in /usr/share/libervia/twisted/plugins;
    # we wrap its makeService, which installs the asyncio reactor, configures
    # the logs and only then imports sat_main.
    from twisted.plugins import sat_plugin

    orig_make = sat_plugin.SatMaker.makeService

    def makeService(self, options):
        service = orig_make(self, options)
        from sat.core import sat_main
        install_patches(sat_main)
        return service

    sat_plugin.SatMaker.makeService = makeService

    import launcher
    sys.argv = [os.path.join(LIBERVIA, "libervia-backend"), "fg"]
    launcher.Launcher.run()


if __name__ == "__main__":
    main()
