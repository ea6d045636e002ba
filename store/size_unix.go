//go:build unix

package store

import (
	"os"
	"syscall"
)

// diskUsage is the space allocated to a file (sparse files count what
// they use, not their length).
func diskUsage(info os.FileInfo) int64 {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return int64(st.Blocks) * 512
	}
	return info.Size()
}
