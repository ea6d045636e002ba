//go:build !unix

package store

import "os"

// diskUsage is the length of a file.
func diskUsage(info os.FileInfo) int64 { return info.Size() }
