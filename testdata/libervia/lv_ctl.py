#!/usr/bin/python3
"""A small frontend on the pb bridge of a Libervia backend started by
lv_backend.py: set a profile up and connect it, send one file, receive files.

    lv_ctl.py --dir DIR setup --jid USER@HOST/RES --password PW --server 127.0.0.1 --port N [--ca]
    lv_ctl.py --dir DIR send FILE FULLJID [--method jingle|si] [--transport s5b|ibb]
              [--s5b all|direct|proxy|none] [--block-size N] [--fix-proxy-activate] [--si-methods ibb]
    lv_ctl.py --dir DIR recv DIR --from BAREJID [--count N] [--overwrite] [--decline]
              [--s5b ...] [--si-methods ibb|s5b|s5b,ibb]

It talks to DIR/local/bridge_pb with Twisted's Perspective Broker, the way
Libervia's own frontends do, without importing Libervia. Every command has an
overall --timeout and prints JSON lines on stdout:

* setup: {"type": "setup", "ok": true, "jid": ..., "created": bool, "secs": ...}
* send:  one {"type": "result", "ok": ..., "progress_id": ..., "error": ...,
  "metadata": {...}, "secs": ...}. Exit 0 sent, 3 declined, 1 any other failure.
* recv:  "READY" once it listens (offers already pending are handled too), then
  one {"type": "received", "ok": ..., "path": ..., "size": ..., "sha256": ...,
  "hash_verified": bool, "hash_algo": ..., "from": FULLJID, "secs": ...} per
  offer from BAREJID (ok false with "error" for a failed, declined or refused
  one). Offers from other JIDs are left pending. Exit 0 when --count offers
  all succeeded, 1 if one failed, 2 on timeout.

The switches of send and recv (method, transport, candidates, ...) are written
to DIR/force.json, which lv_backend.py reads at each decision. send sets
method, jingle_transport, s5b_candidates, ibb_block_size, fix_proxy_activate,
si_methods;
recv sets s5b_candidates and si_methods; each to stock when not given. So a
switch lasts until the next command on that instance.
"""

import argparse
import hashlib
import json
import os
import sys
import time
import xml.etree.ElementTree as ET

from twisted.internet import defer, reactor, task
from twisted.spread import pb

NO_SECURITY_LIMIT = -1
T0 = time.monotonic()


def out(obj):
    line = obj if isinstance(obj, str) else json.dumps(obj, sort_keys=True)
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def note(msg):
    sys.stderr.write(f"lv_ctl {time.monotonic() - T0:7.3f} {msg}\n")
    sys.stderr.flush()


def secs(since):
    return round(time.monotonic() - since, 3)


class Signals(pb.Referenceable):
    """The signal handler given to initBridge: the backend calls
    remote_<signal>(*args) on it for every signal."""

    def __init__(self):
        self.handlers = {}

    def on(self, name, fn):
        self.handlers[name] = fn

    def __getattr__(self, name):
        if name.startswith("remote_"):
            fn = self.__dict__.get("handlers", {}).get(name[len("remote_"):])
            return fn or (lambda *args, **kwargs: None)
        raise AttributeError(name)


async def sleep(s):
    await task.deferLater(reactor, s, lambda: None)


class Factory(pb.PBClientFactory):
    """Calls on_lost when an established bridge connection goes away (the
    backend died): the command fails at once instead of at its timeout."""

    on_lost = None

    def clientConnectionLost(self, connector, reason, reconnecting=0):
        super().clientConnectionLost(connector, reason, reconnecting)
        if self.on_lost is not None:
            self.on_lost(reason)


async def bridge(dir_, deadline, on_lost):
    """Connect to the backend's socket and wait until it is initialised."""
    sock = os.path.join(dir_, "local", "bridge_pb")
    root = None
    while root is None:
        if os.path.exists(sock):
            factory = Factory()
            reactor.connectUNIX(sock, factory, timeout=5)
            try:
                root = await factory.getRootObject()
            except Exception as e:
                note(f"bridge not there yet: {e}")
        if root is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no backend on {sock}")
            await sleep(0.1)
    factory.on_lost = on_lost
    signals = Signals()
    await root.callRemote("initBridge", signals)
    while True:
        try:
            await root.callRemote("getReady")
            break
        except Exception as e:  # getReady is registered a little after the socket
            if time.monotonic() > deadline:
                raise TimeoutError(f"backend not ready: {e}")
            await sleep(0.1)
    return root, signals


def profile_of(args):
    if args.profile:
        return args.profile
    try:
        with open(os.path.join(args.dir, "profile")) as f:
            return f.read().strip()
    except FileNotFoundError:
        raise SystemExit("no --profile and no profile file: run setup first")


def update_force(dir_, values):
    """Merge values into DIR/force.json (atomically)."""
    path = os.path.join(dir_, "force.json")
    try:
        with open(path) as f:
            data = json.load(f)
    except (FileNotFoundError, ValueError):
        data = {}
    data.update(values)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, sort_keys=True)
    os.replace(tmp, path)
    note(f"switches: {data}")


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def xmlui_submit(action_data):
    try:
        return ET.fromstring(action_data["xmlui"].encode("utf-8")).get("submit") or None
    except (KeyError, ET.ParseError):
        return None


def xmlui_text(xmlui):
    try:
        root = ET.fromstring(xmlui.encode("utf-8"))
    except ET.ParseError:
        return xmlui
    # the dialog's title too: plugin_misc_file puts its message there
    # (note("Can't transfer file", msg) swaps message and title)
    texts = [root.get("title", "")] + [t.strip() for t in root.itertext()]
    return ": ".join(t for t in texts if t) or xmlui


# --- setup --------------------------------------------------------------------

async def cmd_setup(args, root, signals):
    t = time.monotonic()
    profile = args.profile or args.jid.split("@")[0]
    got_jid = []
    signals.on("connected", lambda jid_s, prof: prof == profile and got_jid.append(jid_s))
    created = False
    if profile not in await root.callRemote("profilesListGet"):
        await root.callRemote("profileCreate", profile, "", "")
        created = True
    await root.callRemote("profileStartSession", "", profile)
    params = [
        ("JabberID", args.jid, "Connection"),
        ("Password", args.password, "Connection"),
        ("Force server", args.server, "Connection"),
        ("Force port", str(args.port), "Connection"),
        ("check_certificate", "true" if args.ca else "false", "Connection"),
        ("autoconnect_backend", "false", "Connection"),
        ("allow_get_ip", "false", "General"),
    ]
    for name, value, category in params:
        await root.callRemote("setParam", name, value, category, NO_SECURITY_LIMIT, profile)
    with open(os.path.join(args.dir, "profile"), "w") as f:
        f.write(profile + "\n")
    note(f"profile {profile} ready (created={created}), connecting")
    await root.callRemote("connect", profile, "", {})
    # connect returns once the stream is up and the plugins have run their
    # connection callbacks; check it really is connected.
    while not await root.callRemote("isConnected", profile):
        await sleep(0.1)
    jid_s = got_jid[0] if got_jid else args.jid
    out({"type": "setup", "ok": True, "jid": jid_s, "profile": profile,
         "created": created, "secs": secs(t)})
    return 0


# --- send -----------------------------------------------------------------

async def cmd_send(args, root, signals):
    profile = profile_of(args)
    update_force(args.dir, {
        "method": args.method,
        "jingle_transport": args.transport,
        "s5b_candidates": args.s5b,
        "ibb_block_size": args.block_size or None,
        "fix_proxy_activate": args.fix_proxy_activate,
        "si_methods": args.si_methods or None,
    })
    path = os.path.abspath(args.file)
    result = {"type": "result", "ok": False, "to": args.jid, "file": path,
              "size": os.path.getsize(path), "sha256": sha256_of(path)}
    events = {}
    waiter = defer.Deferred()
    wanted = []

    def event(kind):
        def handler(pid, data, prof):
            if prof != profile:
                return
            events.setdefault(pid, []).append((kind, data))
            if wanted and pid == wanted[0] and kind != "started" and not waiter.called:
                waiter.callback(None)
        return handler

    for kind in ("started", "finished", "error"):
        signals.on("progress" + kind.capitalize(), event(kind))

    t = time.monotonic()
    try:
        res = await root.callRemote("fileSend", args.jid, path, args.name, "", "{}", profile)
    except Exception as e:
        result["error"] = f"fileSend: {getattr(e, 'value', e)}"
        out(result)
        return 1
    if "progress" not in res:
        result["error"] = xmlui_text(res.get("xmlui", "")) or f"fileSend returned {res!r}"
        out(result)
        return 1
    pid = result["progress_id"] = res["progress"]
    note(f"progress id {pid}")
    wanted.append(pid)
    if not any(k != "started" for k, _ in events.get(pid, [])):
        await waiter
    kind, data = next((k, d) for k, d in events[pid] if k != "started")
    result["secs"] = secs(t)
    if kind == "finished":
        result["ok"] = True
        result["metadata"] = data
        out(result)
        return 0
    result["error"] = data
    out(result)
    return 3 if data == "declined" else 1


# --- recv -----------------------------------------------------------------

async def cmd_recv(args, root, signals):
    profile = profile_of(args)
    # the receiving side's switches, back to stock when not given
    update_force(args.dir, {"s5b_candidates": args.s5b or "all", "si_methods": args.si_methods or None})
    dest = os.path.abspath(args.dest)
    want = args.from_jid.split("/")[0]
    accepted = {}  # progress id -> transfer data
    answered = set()  # xmlui submit ids already answered
    refused_overwrite = set()
    results = []
    done = defer.Deferred()

    def expected(from_jid):
        return want == "*" or from_jid.split("/")[0] == want

    def report(pid, **kw):
        tr = accepted.get(pid, {})
        line = {"type": "received", "progress_id": pid, "from": tr.get("from", ""),
                "path": tr.get("path", ""), "secs": secs(tr["t"]) if "t" in tr else None}
        line.update(kw)
        out(line)
        results.append(line)
        accepted.pop(pid, None)
        if args.count and len(results) >= args.count and not done.called:
            done.callback(None)

    pending = []  # launchAction calls not answered yet

    def answer(xid, data):
        d = root.callRemote("launchAction", xid, data, profile)
        d.addErrback(lambda f: note(f"launchAction {xid}: {f.value}"))
        pending.append(d)
        return d

    def on_action(action_data, action_id, security_limit, prof):
        if prof != profile:
            return
        xid = xmlui_submit(action_data)
        meta_type = action_data.get("meta_type")
        from_jid = action_data.get("meta_from_jid", "")
        pid = action_data.get("meta_progress_id", "")
        if xid is None or xid in answered:
            return
        if meta_type == "file":
            if not expected(from_jid):
                note(f"IGNORED offer {pid} from {from_jid}")
                return
            answered.add(xid)
            if args.decline or pid in refused_overwrite:
                why = "declined" if args.decline else "refused: file exists"
                accepted.setdefault(pid, {"from": from_jid, "t": time.monotonic()})
                answer(xid, {"cancelled": "true"}).addBoth(
                    lambda _: report(pid, ok=False, error=why))
                return
            note(f"accepting offer {pid} from {from_jid} into {dest}")
            accepted[pid] = {"from": from_jid, "t": time.monotonic()}
            answer(xid, {"path": dest})
        elif meta_type == "overwrite":
            if pid not in accepted:
                return
            answered.add(xid)
            if not args.overwrite:
                refused_overwrite.add(pid)
            note(f"overwrite {pid}: {args.overwrite}")
            answer(xid, {"answer": "true" if args.overwrite else "false"})
        elif meta_type == "not_in_roster_leak":
            if not expected(from_jid):
                note(f"IGNORED not-in-roster request from {from_jid}")
                return
            answered.add(xid)
            note(f"confirming not-in-roster request from {from_jid}")
            answer(xid, {"answer": "true"})
        else:
            note(f"leaving action {meta_type!r} ({action_id}) unanswered")

    def on_started(pid, metadata, prof):
        if prof == profile and pid in accepted:
            accepted[pid]["path"] = metadata.get("name", "")

    def on_finished(pid, metadata, prof):
        if prof != profile or pid not in accepted:
            return
        path = accepted[pid].get("path", "")
        try:
            size, sha = os.path.getsize(path), sha256_of(path)
        except OSError as e:
            report(pid, ok=False, error=f"finished, but {e}")
            return
        report(pid, ok=True, size=size, sha256=sha,
               hash_verified=metadata.get("hash_verified") == "true",
               hash_algo=metadata.get("hash_algo", ""), hash=metadata.get("hash", ""))

    def on_error(pid, error, prof):
        if prof == profile and pid in accepted:
            path = accepted[pid].get("path", "")
            size = os.path.getsize(path) if path and os.path.exists(path) else None
            report(pid, ok=False, error=error, size=size)

    signals.on("actionNew", on_action)
    signals.on("progressStarted", on_started)
    signals.on("progressFinished", on_finished)
    signals.on("progressError", on_error)
    out("READY")
    for action in await root.callRemote("actionsGet", profile):
        on_action(action[0], action[1], action[2], profile)
    await done
    await defer.DeferredList(pending)  # deliver every answer before exiting
    return 0 if all(r.get("ok") for r in results) else 1


# --- main -----------------------------------------------------------------

def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dir", required=True, help="the backend's instance directory")
    p.add_argument("--profile", default="", help="profile (default: the one setup made)")
    p.add_argument("--timeout", type=float, default=120, help="overall limit in seconds")
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("setup", help="create/update the profile and connect it")
    s.add_argument("--jid", required=True, help="full JID, user@host/resource")
    s.add_argument("--password", required=True)
    s.add_argument("--server", default="127.0.0.1", help="Force server")
    s.add_argument("--port", type=int, required=True, help="Force port")
    s.add_argument("--ca", action="store_true",
                   help="verify the certificate (the backend runs with SSL_CERT_FILE)")

    s = sub.add_parser("send", help="send one file")
    s.add_argument("file")
    s.add_argument("jid", help="recipient (full JID: Jingle or SI; bare: Jingle with JMI)")
    s.add_argument("--name", default="", help="file name to announce")
    s.add_argument("--method", choices=["auto", "jingle", "si"], default="auto")
    s.add_argument("--transport", choices=["auto", "s5b", "ibb"], default="auto")
    s.add_argument("--s5b", choices=["all", "direct", "proxy", "none"], default="all")
    s.add_argument("--block-size", type=int, default=0, help="IBB block size")
    s.add_argument("--fix-proxy-activate", action="store_true")
    s.add_argument("--si-methods", default="", help="SI stream methods offered: s5b, ibb, s5b,ibb")

    s = sub.add_parser("recv", help="accept files from one sender")
    s.add_argument("dest", help="directory to store the files in")
    s.add_argument("--from", dest="from_jid", required=True, help="bare JID to accept from, or *")
    s.add_argument("--count", type=int, default=1, help="offers to handle before exiting (0: no limit)")
    s.add_argument("--overwrite", action="store_true", help="answer yes to overwrite dialogs")
    s.add_argument("--decline", action="store_true", help="decline the offers instead")
    s.add_argument("--s5b", choices=["all", "direct", "proxy", "none"], default="")
    s.add_argument("--si-methods", default="", help="s5b, ibb, s5b,ibb or ibb,s5b")
    return p.parse_args()


def main():
    args = parse_args()
    args.dir = os.path.abspath(args.dir)
    code = [1]

    async def run():
        deadline = time.monotonic() + args.timeout
        root, signals = await bridge(args.dir, deadline, lost)
        cmd = {"setup": cmd_setup, "send": cmd_send, "recv": cmd_recv}[args.cmd]
        return await cmd(args, root, signals)

    ended = []

    def end(rc, line=None):
        """The command's one outcome: later ones (errors while the reactor
        shuts down) are ignored."""
        if ended:
            return
        ended.append(rc)
        if line is not None:
            out(line)
        code[0] = rc
        if timer.active():
            timer.cancel()
        reactor.stop()

    def timeout():
        note(f"timeout after {args.timeout}s")
        end(2, {"type": "error", "ok": False, "error": f"timeout after {args.timeout}s"})

    def lost(reason):
        if not ended:
            note(f"bridge connection lost: {reason.value}")
        end(1, {"type": "error", "ok": False, "error": f"backend connection lost: {reason.value}"})

    def finished(rc):
        end(rc)

    def failed(f):
        note(f.getTraceback())
        end(1, {"type": "error", "ok": False, "error": str(f.value)})

    timer = reactor.callLater(args.timeout, timeout)
    reactor.callWhenRunning(lambda: defer.ensureDeferred(run()).addCallbacks(finished, failed))
    reactor.run()
    sys.exit(code[0])


if __name__ == "__main__":
    main()
