//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package events

import "os"

// lockDir only creates path where flock is not available: do not point
// two processes at one spool there.
func lockDir(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
}
