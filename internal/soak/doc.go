// Package soak runs xfer's receiver as a service would for a while: one
// long-lived transfer.Service, three senders, two hundred transfers by
// every method through a private Prosody that is killed in the middle, and
// checks that every file arrives verified (the cut ones resumed) and that
// goroutines, open files and memory do not grow. It has tests only; `make
// soak` prints its counts.
package soak
