//go:build !unix

package transfer

// freeSpace is unknown here: the free-space check is skipped.
func freeSpace(dir string) (uint64, bool) { return 0, false }

// noFollow: no O_NOFOLLOW on this system; part files are opened as named.
const noFollow = 0
