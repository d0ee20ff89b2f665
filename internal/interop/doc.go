// Package interop tests xfer against an independent implementation of the
// same XEPs: slixmpp (Debian's python3-slixmpp 1.8.3), speaking XEP-0095
// Stream Initiation with the XEP-0096 file-transfer profile and XEP-0047
// In-Band Bytestreams, through a private Prosody the tests start.
//
// xfer's own integration tests have xfer on both ends, so a
// misunderstanding of a XEP that both ends share would pass them. Here the
// other end is someone else's reading of the XEPs: slixmpp sends to xfer's
// receiver, and xfer's sender sends to slixmpp, including slixmpp's refusal
// of IBB blocks above 8192 bytes, which makes xfer retry the open with
// smaller blocks on the same sid.
//
// xfer runs in-process (internal/session and internal/transfer); slixmpp
// runs as the driver scripts in testdata/slixmpp, with /usr/bin/python3,
// and reports in JSON lines on stdout. If slixmpp is not installed the
// tests fail with the command that installs it; they do not skip.
// testdata/slixmpp/xferslix.py lists the slixmpp quirks the drivers work
// around.
package interop
