//go:build unix

package transfer

// What the file core needs from the operating system, where it has it
// (sys_other.go: where it does not).

import "syscall"

// freeSpace reports the bytes available to us on dir's file system.
func freeSpace(dir string) (uint64, bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, false
	}
	return st.Bavail * uint64(st.Bsize), true
}

// noFollow makes an open fail on a symlink: a link planted at a part
// file's name is never written through.
const noFollow = syscall.O_NOFOLLOW
