// Command xfer sends and receives files over XMPP: Stream Initiation
// (XEP-0095/0096) over SOCKS5 (XEP-0065) or in-band (XEP-0047) bytestreams.
package main

import "os"

func main() {
	stop := startProfile(os.Args[1:])
	code := Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(int(code))
}
